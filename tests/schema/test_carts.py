"""Carts: tokens, lines, prices explained by plugins, shipping addresses, and who may touch them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Address, Cart, CartLine, CustomerEvent, CustomerEventKind
from server.plugin import Adjustment, PluginInfo, PriceItem, ShippingQuote, hookimpl
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    ADD_LINES,
    ADDRESS,
    cart_with,
    count,
    gid,
    make_product,
    new_cart,
    only_plugins,
)


class MemberPricing:
    PLUGIN_INFO = PluginInfo(name="member-pricing", version="1.0")

    @hookimpl
    def price_adjustments(
        self, items: Mapping[int, PriceItem], customer: Any
    ) -> dict[int, list[Adjustment]]:
        if customer is None:
            return {}
        return {
            pid: [Adjustment("member", "会员价", -(item.product.price_amount // 10))]
            for pid, item in items.items()
        }

    @hookimpl
    def order_adjustments(self, cart: Any) -> list[Adjustment]:
        return [Adjustment("coupon", "新人券", -500)] if cart.lines else []

    @hookimpl
    def shipping_quotes(self, cart: Any, address: Any) -> list[ShippingQuote]:
        if not address:
            return []
        return [ShippingQuote("jd", "京东物流", "次日达", 600, 1)]


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings, MemberPricing())


CART = """
query($token: String!) {
  cart(token: $token) {
    token status currency itemCount
    lines {
      id quantity product { name }
      unitPrice { amount } lineTotal { amount }
      priceBreakdown { basePrice { amount } unitPrice { amount } adjustments { source rule amount { amount } } }
    }
    subtotal { amount } discount { amount } shipping { amount } total { amount currency }
    orderAdjustments { rule amount { amount } }
    shippingQuotes { code carrier price { amount } promisedDays }
    shippingAddress { recipientName city street }
  }
}"""

UPDATE = """
mutation CartUpdateLine($input: CartUpdateLineInput!) {
  cartUpdateLine(input: $input) {
    __typename
    ... on CartUpdateLineSuccess { cart { itemCount lines { quantity } } }
    ... on Error { code field }
  }
}"""

REMOVE = """
mutation CartRemoveLine($input: CartRemoveLineInput!) {
  cartRemoveLine(input: $input) {
    __typename
    ... on CartRemoveLineSuccess { cart { itemCount } }
    ... on Error { code field }
  }
}"""

SET_ADDRESS = """
mutation CartSetShippingAddress($input: CartSetShippingAddressInput!) {
  cartSetShippingAddress(input: $input) {
    __typename
    ... on CartSetShippingAddressSuccess {
      cart { shippingAddress { recipientName city } shippingQuotes { code } total { amount } }
    }
    ... on Error { code field message }
  }
}"""


async def add(gql: GraphQLClient, token: str, *lines: tuple[Any, int]) -> Any:
    data = await gql(
        ADD_LINES,
        {
            "input": {
                "cartToken": token,
                "lines": [{"productId": gid("Product", p.id), "quantity": q} for p, q in lines],
            }
        },
    )
    return data["cartAddLines"]


async def test_a_retried_add_with_its_idempotency_key_adds_once(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tea = await make_product(session, price=8800, name="西湖龙井")
    cup = await make_product(session, price=3900, name="玻璃杯")
    token = await new_cart(gql)

    def request(key: str, *lines: tuple[Any, int]) -> dict[str, Any]:
        items = [{"productId": gid("Product", p.id), "quantity": q} for p, q in lines]
        return {"input": {"cartToken": token, "lines": items, "idempotencyKey": key}}

    first = (await gql(ADD_LINES, request("add-1", (tea, 2))))["cartAddLines"]
    assert first["cart"]["itemCount"] == 2
    # The answer was lost and the client retries, several times at once: nothing is added.
    retries = await asyncio.gather(*(gql(ADD_LINES, request("add-1", (tea, 2))) for _ in range(4)))
    assert [r["cartAddLines"]["cart"]["itemCount"] for r in retries] == [2] * 4
    # The same key for other lines is a mistake, answered as such; nothing changes.
    misuse = (await gql(ADD_LINES, request("add-1", (cup, 1))))["cartAddLines"]
    assert misuse["__typename"] == "IdempotencyConflict"
    # A new key is a new addition.
    second = (await gql(ADD_LINES, request("add-2", (tea, 2))))["cartAddLines"]
    assert second["cart"]["itemCount"] == 4
    assert await count(session, CartLine) == 1


async def test_anonymous_cart_lines_merge_and_record_behaviour(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tea = await make_product(session, price=8800, name="西湖龙井")
    cup = await make_product(session, price=3900, name="玻璃杯")
    token = await new_cart(gql)
    assert len(token) >= 40

    first = await add(gql, token, (tea, 1), (cup, 2))
    assert first["cart"]["itemCount"] == 3
    again = await add(gql, token, (tea, 2))
    assert again["cart"]["itemCount"] == 5
    assert await count(session, CartLine) == 2

    cart = (await gql(CART, {"token": token}))["cart"]
    lines = {line["product"]["name"]: line for line in cart["lines"]}
    assert lines["西湖龙井"]["quantity"] == 3
    # A guest gets no member price; with no address, no shipping quote: shipping is free.
    assert lines["西湖龙井"]["priceBreakdown"]["adjustments"] == []
    assert lines["西湖龙井"]["lineTotal"]["amount"] == "264.00"
    assert cart["subtotal"]["amount"] == "342.00"
    assert cart["orderAdjustments"] == [{"rule": "coupon", "amount": {"amount": "-5.00"}}]
    assert cart["discount"]["amount"] == "5.00"
    assert cart["shippingQuotes"] == []
    assert cart["shipping"]["amount"] == "0.00"
    assert cart["total"] == {"amount": "337.00", "currency": "CNY"}

    events = list(
        await session.scalars(
            select(CustomerEvent).where(CustomerEvent.kind == CustomerEventKind.ADD_TO_CART)
        )
    )
    assert sorted((e.product_id, e.quantity) for e in events) == sorted(
        [(tea.id, 1), (cup.id, 2), (tea.id, 2)]
    )
    # Anonymous shoppers are followed by their cart, never by the secret token.
    assert {e.customer_id for e in events} == {None}
    assert all(e.session_id and token not in e.session_id for e in events)


async def test_customer_cart_prices_with_member_adjustments_and_shipping(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = await make_customer(session)
    me = gql.as_(token_for(settings, buyer))
    tea = await make_product(session, price=8800)
    token = await cart_with(me, [(tea, 2)])
    assert await session.scalar(select(Cart.customer_id)) == buyer.id

    result = await me(SET_ADDRESS, {"input": {"cartToken": token, "address": ADDRESS}})
    assert result["cartSetShippingAddress"]["cart"]["shippingAddress"]["city"] == "杭州市"
    cart = (await me(CART, {"token": token}))["cart"]
    line = cart["lines"][0]
    assert line["priceBreakdown"] == {
        "basePrice": {"amount": "88.00"},
        "unitPrice": {"amount": "79.20"},
        "adjustments": [
            {"source": "member-pricing", "rule": "member", "amount": {"amount": "-8.80"}}
        ],
    }
    assert cart["shippingQuotes"] == [
        {"code": "jd", "carrier": "京东物流", "price": {"amount": "6.00"}, "promisedDays": 1}
    ]
    # 158.40 - 5 + 6
    assert cart["total"]["amount"] == "159.40"

    events = list(await session.scalars(select(CustomerEvent.customer_id)))
    assert events == [buyer.id]


async def test_update_and_remove_lines(gql: GraphQLClient, session: AsyncSession) -> None:
    tea = await make_product(session)
    cup = await make_product(session)
    token = await cart_with(gql, [(tea, 1), (cup, 1)])
    line_ids = [line["id"] for line in (await gql(CART, {"token": token}))["cart"]["lines"]]

    set5 = await gql(UPDATE, {"input": {"cartToken": token, "lineId": line_ids[0], "quantity": 5}})
    assert set5["cartUpdateLine"]["cart"]["itemCount"] == 6
    too_many = await gql(
        UPDATE, {"input": {"cartToken": token, "lineId": line_ids[0], "quantity": 1000}}
    )
    assert too_many["cartUpdateLine"] == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "quantity",
    }
    zero = await gql(UPDATE, {"input": {"cartToken": token, "lineId": line_ids[0], "quantity": 0}})
    assert zero["cartUpdateLine"]["cart"]["itemCount"] == 1
    removed = await gql(REMOVE, {"input": {"cartToken": token, "lineId": line_ids[1]}})
    assert removed["cartRemoveLine"]["cart"]["itemCount"] == 0
    gone = await gql(REMOVE, {"input": {"cartToken": token, "lineId": line_ids[1]}})
    assert gone["cartRemoveLine"]["__typename"] == "NotFoundError"
    assert await count(session, CartLine) == 0


async def test_bad_cart_input_is_typed_and_changes_nothing(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tea = await make_product(session)
    token = await cart_with(gql, [(tea, 1)])

    zero = await add(gql, token, (tea, 0))
    assert (zero["__typename"], zero["field"]) == ("ValidationError", "lines.0.quantity")
    unknown = await gql(
        ADD_LINES,
        {
            "input": {
                "cartToken": token,
                "lines": [{"productId": gid("Product", 4242), "quantity": 1}],
            }
        },
    )
    assert unknown["cartAddLines"]["__typename"] == "NotFoundError"
    malformed = await gql(
        ADD_LINES,
        {"input": {"cartToken": token, "lines": [{"productId": "not-an-id", "quantity": 1}]}},
    )
    assert malformed["cartAddLines"]["field"] == "lines.0.productId"
    # One bad line spoils the request: the good line next to it is not added either.
    mixed = await gql(
        ADD_LINES,
        {
            "input": {
                "cartToken": token,
                "lines": [
                    {"productId": gid("Product", tea.id), "quantity": 3},
                    {"productId": gid("Product", 4242), "quantity": 1},
                ],
            }
        },
    )
    assert mixed["cartAddLines"]["__typename"] == "NotFoundError"
    assert (await gql(CART, {"token": token}))["cart"]["itemCount"] == 1

    no_street = {**ADDRESS, "street": " "}
    bad_address = await gql(SET_ADDRESS, {"input": {"cartToken": token, "address": no_street}})
    assert bad_address["cartSetShippingAddress"]["__typename"] == "ValidationError"
    assert "street" in bad_address["cartSetShippingAddress"]["message"]
    bad_currency = await gql(
        'mutation { createCart(input: {currency: "yuan"}) { __typename ... on Error { field } } }'
    )
    assert bad_currency["createCart"] == {"__typename": "ValidationError", "field": "currency"}
    assert (await gql(CART, {"token": "no-such-token"}))["cart"] is None
    assert await session.scalar(select(Cart.shipping_address)) is None


async def test_saved_address_and_another_customers_cart(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    alice = await make_customer(session)
    bob = await make_customer(session)
    as_alice = gql.as_(token_for(settings, alice))
    as_bob = gql.as_(token_for(settings, bob))
    home = Address(
        customer_id=alice.id,
        recipient_name="李华",
        phone="13900139000",
        province="广东省",
        city="深圳市",
        street="科技园南路 1 号",
    )
    session.add(home)
    await session.commit()
    tea = await make_product(session)
    token = await cart_with(as_alice, [(tea, 1)])

    saved = await as_alice(
        SET_ADDRESS, {"input": {"cartToken": token, "addressId": gid("Address", home.id)}}
    )
    assert saved["cartSetShippingAddress"]["cart"]["shippingAddress"] == {
        "recipientName": "李华",
        "city": "深圳市",
    }

    # Bob holds Alice's token: to him the cart does not exist, for reading or for writing.
    assert (await as_bob(CART, {"token": token}))["cart"] is None
    assert (await gql(CART, {"token": token}))["cart"] is None
    assert (await add(as_bob, token, (tea, 5)))["__typename"] == "NotFoundError"
    steal = await as_bob(SET_ADDRESS, {"input": {"cartToken": token, "address": ADDRESS}})
    assert steal["cartSetShippingAddress"]["__typename"] == "NotFoundError"
    # Nor can he ship his cart to Alice's saved address.
    his = await cart_with(as_bob, [(tea, 1)])
    borrowed = await as_bob(
        SET_ADDRESS, {"input": {"cartToken": his, "addressId": gid("Address", home.id)}}
    )
    assert borrowed["cartSetShippingAddress"]["__typename"] == "NotFoundError"
    assert (await as_alice(CART, {"token": token}))["cart"]["itemCount"] == 1
