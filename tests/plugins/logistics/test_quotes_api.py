"""Quotes and the frozen promise over HTTP: the cart's shipping quotes carry the promised
window, placeOrder freezes the chosen one on the order (``promisedFrom``/``promisedBy``,
``deliveryPromise``), a pickup order names its point, ``pickupPoints`` lists a city's points
with their hours, and a page of orders reads its promises in one statement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import Carrier, Promise
from plugins.logistics.service import calendar
from server.db import create_engine, session_factory
from server.models import utcnow
from tests.plugins.logistics.quotes_support import Net, pickup_code, seed_network
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import ADD_LINES, ADDRESS, gid, new_cart
from tests.support.statements import counting

SHANGHAI_ADDRESS = {**ADDRESS, "province": "上海市", "city": "上海市", "district": "静安区"}

QUOTES = """
query($t: String!) {
  cart(token: $t) {
    shippingQuotes { code carrier label price { amount } promisedDays promisedFrom promisedBy }
  }
}"""

SET_ADDRESS = """
mutation($input: CartSetShippingAddressInput!) {
  cartSetShippingAddress(input: $input) {
    __typename
    ... on Error { code message }
  }
}"""

PROMISE = """
deliveryPromise {
  level carrierName serviceLabel earliest latest deliverBy
  pickupPoint { code name kind }
}"""

PLACE = f"""
mutation($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{
    __typename
    ... on PlaceOrderSuccess {{
      order {{
        id shippingMethod shippingCarrier promisedFrom promisedBy shipping {{ amount }}
        {PROMISE}
      }}
    }}
    ... on Error {{ code message field }}
  }}
}}"""

ORDERS = f"""
query($n: Int!) {{ orders(first: $n) {{ nodes {{ id {PROMISE} }} }} }}
"""

POINTS = """
query($city: String, $province: String) {
  pickupPoints(city: $city, province: $province) {
    code name kind city address readyHours hours { day intervals }
  }
}"""


async def _seed(session: AsyncSession) -> dict[str, Any]:
    net = await seed_network(
        session, stock={"HZ": {"A": 100, "B": 100}, "STORE": {"A": 100, "B": 100}}
    )
    staff = await make_staff(session)
    return {"net": net, "staff": staff}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


async def _cart(gql: GraphQLClient, net: Net) -> str:
    token = await new_cart(gql)
    lines = [
        {"variantId": gid("ProductVariant", net.variants["A"]), "quantity": 2},
        {"variantId": gid("ProductVariant", net.variants["B"]), "quantity": 1},
    ]
    data = await gql(ADD_LINES, {"input": {"cartToken": token, "lines": lines}})
    assert data["cartAddLines"]["__typename"] == "CartAddLinesSuccess", data
    data = await gql(SET_ADDRESS, {"input": {"cartToken": token, "address": SHANGHAI_ADDRESS}})
    assert data["cartSetShippingAddress"]["__typename"] == "CartSetShippingAddressSuccess", data
    return token


async def _place(gql: GraphQLClient, token: str, method: str, key: str) -> dict[str, Any]:
    data = await gql(
        PLACE,
        {
            "input": {
                "cartToken": token,
                "idempotencyKey": key,
                "shippingAddress": SHANGHAI_ADDRESS,
                "email": "buyer@example.cn",
                "shippingMethod": method,
            }
        },
    )
    assert data["placeOrder"]["__typename"] == "PlaceOrderSuccess", data
    return dict(data["placeOrder"]["order"])


def _standard_window() -> tuple[date, date]:
    """Hangzhou → Shanghai, 1..2 days of the express company, from now."""
    window = calendar.promise(
        utcnow(),
        cutoff_minutes=16 * 60,
        handling_days=0,
        min_days=1,
        max_days=2,
        carrier=Carrier(code="x", name="x", works_weekends=True),
        tz="Asia/Shanghai",
    )
    return window.earliest, window.latest


async def test_the_chosen_quote_is_frozen_on_the_order(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    net: Net = shop.seeded["net"]
    token = await _cart(gql, net)
    before = _standard_window()
    quotes = {q["code"]: q for q in (await gql(QUOTES, {"t": token}))["cart"]["shippingQuotes"]}
    after = _standard_window()
    std = quotes[net.codes["STD"]]
    assert (std["carrier"], std["label"], std["price"]["amount"]) == (
        "顺丰速运",
        "顺丰标快",
        "9.00",
    )
    assert (date.fromisoformat(std["promisedFrom"]), date.fromisoformat(std["promisedBy"])) in {
        before,
        after,
    }
    assert pickup_code(net) in quotes

    order = await _place(gql, token, net.codes["STD"], "lq-standard")
    assert order["shippingMethod"] == net.codes["STD"]
    assert order["shippingCarrier"] == "顺丰速运"
    assert order["shipping"]["amount"] == "9.00"
    assert (order["promisedFrom"], order["promisedBy"]) == (std["promisedFrom"], std["promisedBy"])
    assert order["deliveryPromise"] == {
        "level": "STANDARD",
        "carrierName": "顺丰速运",
        "serviceLabel": "顺丰标快",
        "earliest": std["promisedFrom"],
        "latest": std["promisedBy"],
        "deliverBy": None,
        "pickupPoint": None,
    }
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            row = await session.scalar(
                select(Promise).where(Promise.quote_code == net.codes["STD"])
            )
    finally:
        await engine.dispose()
    assert row is not None
    assert (row.warehouse_id, row.from_region, row.to_region, row.service_id) == (
        net.warehouses["HZ"],
        "浙江省",
        "上海市",
        net.services["STD"],
    )


async def test_a_pickup_order_names_its_point(gql: GraphQLClient, shop: ModuleShop) -> None:
    net: Net = shop.seeded["net"]
    token = await _cart(gql, net)
    quotes = {q["code"]: q for q in (await gql(QUOTES, {"t": token}))["cart"]["shippingQuotes"]}
    code = pickup_code(net)
    assert quotes[code]["price"]["amount"] == "0.00"
    assert quotes[code]["label"] == "门店自提 · 南京西路店"
    order = await _place(gql, token, code, "lq-pickup")
    promise = order["deliveryPromise"]
    assert promise["level"] == "PICKUP"
    assert promise["pickupPoint"] == {
        "code": net.codes["PP1"],
        "name": "南京西路店",
        "kind": "STORE",
    }
    assert promise["deliverBy"] is not None
    assert promise["earliest"] == promise["latest"] == quotes[code]["promisedFrom"]


async def test_pickup_points_of_a_city_with_their_hours(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    net: Net = shop.seeded["net"]
    points = (await gql(POINTS, {"city": "上海"}))["pickupPoints"]
    assert [p["code"] for p in points] == [net.codes["PP1"], net.codes["PP2"]]
    store = points[0]
    assert (store["kind"], store["address"], store["readyHours"]) == ("STORE", "南京西路 1 号", 2)
    assert store["hours"][0] == {"day": "mon", "intervals": [["09:00", "21:00"]]}
    assert store["hours"][5] == {"day": "sat", "intervals": []}
    assert points[1]["hours"][0] == {"day": "mon", "intervals": [["00:00", "24:00"]]}
    hangzhou = (await gql(POINTS, {"province": "浙江"}))["pickupPoints"]
    assert [p["code"] for p in hangzhou] == [net.codes["PP3"]]


async def test_a_page_of_orders_reads_its_promises_in_one_statement(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    net: Net = shop.seeded["net"]
    for n in range(3):
        await _place(gql, await _cart(gql, net), net.codes["EXP"], f"lq-page-{n}")
    staff = gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded["staff"]))
    for size in (1, 3):
        with counting(shop.app) as statements:
            nodes = (await staff(ORDERS, {"n": size}))["orders"]["nodes"]
        assert len(nodes) == size
        assert all(n["deliveryPromise"] is not None for n in nodes)
        assert sum("logistics_promise" in s for s in statements) == 1
