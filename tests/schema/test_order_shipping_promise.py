"""The chosen shipping quote is frozen on the order: its code, carrier, quoting plugin and
promised delivery window (``promised_from``/``promised_by``), shown on the cart's quotes and
on the order over GraphQL. With no quote (free shipping) the order promises nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Order
from server.plugin import CartView, ShippingQuote
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin
from tests.support.graphql import GraphQLClient
from tests.support.orders import cart_with, make_product, only_plugins, order_input

QUOTED = {"on": True}


def quotes(cart: CartView) -> list[ShippingQuote]:
    if not QUOTED["on"]:
        return []
    return [
        ShippingQuote(
            code="sf-std",
            carrier="顺丰速运",
            label="标快",
            amount=1200,
            promised_days=3,
            promised_from=date(2030, 5, 7),
            promised_by=date(2030, 5, 9),
        ),
        ShippingQuote(code="zto", carrier="中通快递", label="经济", amount=600),
    ]


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings, FakePlugin("dated", shipping_quotes=quotes))


PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on PlaceOrderSuccess {
      order { shippingMethod shippingCarrier promisedFrom promisedBy shipping { amount } }
    }
    ... on Error { code message }
  }
}"""


async def _place(gql: GraphQLClient, token: str, key: str, **extra: Any) -> dict[str, Any]:
    data = await gql(PLACE, order_input(token, key, **extra))
    assert data["placeOrder"]["__typename"] == "PlaceOrderSuccess", data
    return dict(data["placeOrder"]["order"])


async def test_the_chosen_quotes_promise_is_frozen_on_the_order(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    QUOTED["on"] = True
    product = await make_product(session, price=5000)
    token = await cart_with(gql, [(product, 1)])
    shown = await gql(
        "query($t: String!) { cart(token: $t) { shippingQuotes { code promisedFrom promisedBy } } }",
        {"t": token},
    )
    assert shown["cart"]["shippingQuotes"] == [
        {"code": "sf-std", "promisedFrom": "2030-05-07", "promisedBy": "2030-05-09"},
        {"code": "zto", "promisedFrom": None, "promisedBy": None},
    ]
    order = await _place(gql, token, "promise-1", shippingMethod="sf-std")
    assert order == {
        "shippingMethod": "sf-std",
        "shippingCarrier": "顺丰速运",
        "promisedFrom": "2030-05-07",
        "promisedBy": "2030-05-09",
        "shipping": {"amount": "12.00"},
    }
    row = await session.scalar(select(Order).where(Order.shipping_method == "sf-std"))
    assert row is not None
    assert (row.shipping_source, row.promised_from, row.promised_by) == (
        "dated",
        date(2030, 5, 7),
        date(2030, 5, 9),
    )

    # Without a choice the cheapest is taken, and it promises no dates.
    cheapest = await _place(gql, await cart_with(gql, [(product, 1)]), "promise-2")
    assert (cheapest["shippingMethod"], cheapest["promisedFrom"], cheapest["promisedBy"]) == (
        "zto",
        None,
        None,
    )

    # No quote at all: shipping is free, nothing is promised.
    QUOTED["on"] = False
    try:
        free = await _place(gql, await cart_with(gql, [(product, 1)]), "promise-3")
    finally:
        QUOTED["on"] = True
    assert free == {
        "shippingMethod": None,
        "shippingCarrier": None,
        "promisedFrom": None,
        "promisedBy": None,
        "shipping": {"amount": "0.00"},
    }
