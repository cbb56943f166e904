"""Dynamic pricing over HTTP, on SQLite and PostgreSQL: a product's elasticity from its sales,
a suggestion inside the guardrails on a price point, superseded by a newer one, auto-applied
under an AUTO rule; concurrent approvals apply once; decided and unknown suggestions are typed
errors; customers and staff without the permissions see none of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from plugins.pricing.models import DynamicPrice, PriceSuggestion
from server.db import create_engine, session_factory
from server.models import (
    Category,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
    StaffRole,
)
from server.services.forecasts import shop_day
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.product_health import shop_time

LEVELS = (900, 1000, 1100, 950, 1050)
DAYS = 140
TRUE_E = -2.0

DECIDE = """mutation($id: ID!) { %s(input: {id: $id}) {
  __typename ... on Error { code }
} }"""
SUGGEST = """mutation($ids: [ID!]) { suggestPrices(input: {productIds: $ids}) {
  __typename
  ... on SuggestPricesSuccess { suggestions { id status
    currentPrice { minorUnits } suggestedPrice { minorUnits } factors { name value detail } } }
  ... on Error { code message }
} }"""
SET_RULE = """mutation($cat: ID!, $mode: DynamicPricingMode!) {
  setDynamicPricing(input: {categoryId: $cat, mode: $mode, autoMaxChangeBp: 1000}) {
    __typename ... on SetDynamicPricingSuccess { rule { mode autoMaxChangeBp active } }
  } }"""
ELASTICITY = """query($id: ID) { priceElasticity(productId: $id) {
  status level estimate low high observations priceLevels reason } }"""
LIST = """query($status: PriceSuggestionStatus) { priceSuggestions(status: $status, first: 20) {
  edges { node { id status product { sku } } } } }"""


def _gid(kind: str, pk: int) -> str:
    return str(relay.GlobalID(kind, str(pk)))


async def _product(session: AsyncSession, sku: str, category: int, cost: int) -> tuple[int, int]:
    product = Product(sku=sku, name=sku, price_amount=1000, cost_amount=cost, category_id=category)
    session.add(product)
    await session.flush()
    assert product.id is not None
    variant = ProductVariant(product_id=product.id, sku=sku, price_amount=1000, cost_amount=cost)
    session.add(variant)
    await session.flush()
    assert variant.id is not None
    return product.id, variant.id


async def _seed(session: AsyncSession) -> dict[str, Any]:
    tea_cat, other = Category(name="茶", slug="tea"), Category(name="杯", slug="cups")
    session.add_all([tea_cat, other])
    await session.flush()
    assert tea_cat.id is not None and other.id is not None
    tea, tea_variant = await _product(session, "TEA", tea_cat.id, 700)
    cup, _ = await _product(session, "CUP", other.id, 500)
    pen, _ = await _product(session, "PEN", other.id, 500)
    # TEA: DAYS days of Poisson sales at a known elasticity, the price moving weekly.
    rng = np.random.default_rng(5)
    today = shop_day(datetime.now(UTC))
    orders, lines = [], []
    for i in range(DAYS):
        day = today - timedelta(days=DAYS - i)
        price = LEVELS[(i // 7) % len(LEVELS)]
        units = int(rng.poisson(10 * (price / 1000) ** TRUE_E))
        if units == 0:
            continue
        orders.append(
            {
                "number": f"SG-DYN-{i:04d}",
                "status": OrderStatus.PAID,
                "currency": "CNY",
                "placed_at": shop_time(day),
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
            }
        )
        lines.append((f"SG-DYN-{i:04d}", units, price))
    await session.execute(insert(Order), orders)
    ids = dict((await session.execute(select(Order.number, Order.id))).all())
    await session.execute(
        insert(OrderLine),
        [
            {
                "order_id": ids[number],
                "product_id": tea,
                "variant_id": tea_variant,
                "sku": "TEA",
                "product_name": "TEA",
                "options": {},
                "quantity": units,
                "base_unit_price_amount": price,
                "unit_price_amount": price,
                "line_total_amount": price * units,
                "adjustments": [],
            }
            for number, units, price in lines
        ],
    )
    pending = {}
    for sku, pid in (("CUP", cup), ("PEN", pen)):
        row = PriceSuggestion(product_id=pid, current_amount=1000, suggested_amount=1099)
        session.add(row)
        await session.flush()
        pending[sku] = row.id
    await session.commit()
    return {
        "products": {"TEA": tea, "CUP": cup, "PEN": pen},
        "categories": {"tea": tea_cat.id},
        "pending": pending,
        "admin": await make_staff(session, role=StaffRole.ADMIN),
        "catalog": await make_staff(session, role=StaffRole.CATALOG),
        "customer": await make_customer(session),
    }


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


def _as(gql: GraphQLClient, shop: ModuleShop, who: str) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded[who]))


async def _db(shop: ModuleShop, stmt: Any) -> list[Any]:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.execute(stmt)).all())
    finally:
        await engine.dispose()


async def test_elasticity_and_suggestions(gql: GraphQLClient, shop: ModuleShop) -> None:
    admin = _as(gql, shop, "admin")
    tea = _gid("Product", shop.seeded["products"]["TEA"])
    found = (await admin(ELASTICITY, {"id": tea}))["priceElasticity"]
    assert found["status"] == "OK" and found["level"] == "PRODUCT"
    assert -2.6 < found["estimate"] < -1.4 and found["low"] < found["estimate"] < found["high"]
    assert found["priceLevels"] == len(LEVELS) and found["observations"] >= DAYS - 2
    cat = _gid("Category", shop.seeded["categories"]["tea"])
    rule = (await admin(SET_RULE, {"cat": cat, "mode": "SUGGEST"}))["setDynamicPricing"]
    assert rule["rule"] == {"mode": "SUGGEST", "autoMaxChangeBp": 1000, "active": True}
    first = (await admin(SUGGEST, {"ids": [tea]}))["suggestPrices"]["suggestions"]
    # Cost 700, e ≈ -2: the optimum 1400 is beyond the 10% daily change cap (1100); the price
    # points in [900, 1100] are 900, 999 and 1099: 1099.
    assert [(s["status"], s["suggestedPrice"]["minorUnits"]) for s in first] == [("PENDING", 1099)]
    factors = {f["name"]: f for f in first[0]["factors"]}
    assert factors["bound"]["detail"] == "maximum change per day"
    assert factors["stock_cover_days"]["value"] is None
    assert -2.6 < factors["elasticity"]["value"] < -1.4
    second = (await admin(SUGGEST, {"ids": [tea]}))["suggestPrices"]["suggestions"]
    listed = (await admin(LIST, {"status": "PENDING"}))["priceSuggestions"]["edges"]
    tea_pending = [e["node"]["id"] for e in listed if e["node"]["product"]["sku"] == "TEA"]
    assert tea_pending == [second[0]["id"]]
    superseded = (await admin(LIST, {"status": "SUPERSEDED"}))["priceSuggestions"]["edges"]
    assert first[0]["id"] in [e["node"]["id"] for e in superseded]
    # AUTO within 10%: applied at once.
    await admin(SET_RULE, {"cat": cat, "mode": "AUTO"})
    auto = (await admin(SUGGEST, {"ids": [tea]}))["suggestPrices"]["suggestions"]
    assert [s["status"] for s in auto] == ["AUTO_APPLIED"]
    rows = await _db(
        shop,
        select(DynamicPrice.amount).where(
            DynamicPrice.product_id == shop.seeded["products"]["TEA"]
        ),
    )
    assert rows == [(1099,)]


async def test_concurrent_approvals_apply_once(gql: GraphQLClient, shop: ModuleShop) -> None:
    admin = _as(gql, shop, "admin")
    sid = _gid("PriceSuggestion", shop.seeded["pending"]["CUP"])
    answers = await asyncio.gather(
        *(admin(DECIDE % "approvePriceSuggestion", {"id": sid}) for _ in range(6))
    )
    kinds = sorted(a["approvePriceSuggestion"]["__typename"] for a in answers)
    assert kinds == ["ApprovePriceSuggestionSuccess"] + ["ConflictError"] * 5
    assert {a["approvePriceSuggestion"].get("code") for a in answers} == {None, "ALREADY_DECIDED"}
    rows = await _db(
        shop,
        select(DynamicPrice.amount, DynamicPrice.suggestion_id).where(
            DynamicPrice.product_id == shop.seeded["products"]["CUP"]
        ),
    )
    assert rows == [(1099, shop.seeded["pending"]["CUP"])]
    again = await admin(DECIDE % "rejectPriceSuggestion", {"id": sid})
    assert again["rejectPriceSuggestion"] == {
        "__typename": "ConflictError",
        "code": "ALREADY_DECIDED",
    }
    missing = await admin(DECIDE % "rejectPriceSuggestion", {"id": _gid("PriceSuggestion", 99999)})
    assert missing["rejectPriceSuggestion"]["code"] == "NOT_FOUND"


async def test_only_pricing_staff_see_it(gql: GraphQLClient, shop: ModuleShop) -> None:
    tea = _gid("Product", shop.seeded["products"]["TEA"])
    pen = _gid("PriceSuggestion", shop.seeded["pending"]["PEN"])
    for client in (gql, _as(gql, shop, "customer")):
        for query, variables in ((ELASTICITY, {"id": tea}), (LIST, {"status": None})):
            body = await client.execute(query, variables)
            # Refused: nothing answered (a nullable field is null, a non-null one nulls data).
            assert not any((body["data"] or {}).values())
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await client.execute(DECIDE % "rejectPriceSuggestion", {"id": pen})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        node = await client.execute("query($id: ID!) { node(id: $id) { id } }", {"id": pen})
        assert node["data"]["node"] is None
    # pricing.manage (CATALOG) reads, but only pricing.approve decides.
    catalog = _as(gql, shop, "catalog")
    assert (await catalog(LIST, {"status": "PENDING"}))["priceSuggestions"]["edges"]
    body = await catalog.execute(DECIDE % "rejectPriceSuggestion", {"id": pen})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
