"""Clicks and conversions reported over HTTP, and the figures they add up to
(``recommendationPerformance`` and the KPIs), counted by hand, on SQLite and PostgreSQL.

The answers the figures count (written as served on two shop days D1 and D2, UTC+8), with the
clicks and orders recorded after them:

| answer | day | context | blend        | who   | items (component)                              | clicks           | orders                 |
| I1     | D1  | HOME    | default      | ann   | 耳机 POPULAR, 充电器 BOUGHT_WITH, 牛奶 REPEAT     | 耳机 (twice), 充电器 | REC-3 (耳机 199.00)      |
| I2     | D1  | HOME    | popular-only | guest | 薯片 POPULAR, 饼干 POPULAR                       | 薯片              | guest's (薯片 10.00)     |
| I3     | D2  | PRODUCT | default      | ann   | 牛奶 REPEAT, 茶 SIMILAR, 咖啡 BOUGHT_WITH, 花瓶 SIMILAR | 茶          | REC-2 (牛奶 10.00), REC-3 (none of them) |
| I4     | D2  | CART    | default      | bob   | 充电器 BOUGHT_WITH                                | 充电器            |                        |
| I5     | D1 - 1 second | HOME | default | guest | 薯片 POPULAR                                    | 薯片              |                        |
| I6     | D2 + 1 day    | HOME | default | guest | 薯片 POPULAR                                    |                  |                        |

The reporting mutations are tested on answers of their own, served ten days before D1 (T1:
ann's, 耳机 and 牛奶; T2: the guest's, 薯片; T3: for concurrent clicks), so that every test
stands alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import (
    Component,
    RecommendationClick,
    RecommendationContext,
    RecommendationConversion,
    RecommendationImpression,
)
from server.db import create_engine, session_factory
from server.models import Order, Product, StaffRole, utcnow
from server.services.forecasts import day_start, shop_day
from tests.plugins.recommendation.shop import _order, seed
from tests.support.accounts import token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid

CLICK = """mutation($input: RecordRecommendationClickInput!) {
  recordRecommendationClick(input: $input) {
    __typename
    ... on RecordRecommendationClickSuccess { recommendationId component position recorded
                                              product { name } }
    ... on Error { code field } } }"""
CONVERT = """mutation($input: RecordRecommendationConversionInput!) {
  recordRecommendationConversion(input: $input) {
    __typename
    ... on RecordRecommendationConversionSuccess { recommendationId recorded
        revenue { amount currency } products { name } }
    ... on Error { code field } } }"""
FIGURES = "answers shown clicks clickThrough orders converted conversionRate revenue { amount }"
PERFORMANCE = f"""query($from: Date!, $to: Date!) {{
  recommendationPerformance(from: $from, to: $to) {{
    __typename
    ... on RecommendationPerformance {{
      from to
      total {{ {FIGURES} }}
      byContext {{ context figures {{ {FIGURES} }} }}
      byBlend {{ blend figures {{ {FIGURES} }} }}
      byComponent {{ component shown clicks clickThrough converted conversionRate }}
    }}
    ... on Error {{ code field }} }} }}"""
KPIS = """query($input: ShopKpisInput!) { shopKpis(input: $input) {
  ... on ShopKpis { kpis { key unit total previousTotal points { start value } } } } }"""


def _items(*pairs: tuple[int, str]) -> list[dict[str, Any]]:
    return [
        {"product_id": pid, "component": component, "position": i, "score": 1.0 / i}
        for i, (pid, component) in enumerate(pairs, 1)
    ]


async def _seed(session: AsyncSession) -> dict[str, Any]:
    seeded = await seed(session)
    p = seeded["products"]
    ann, bob = seeded["customers"]["ann"].id, seeded["customers"]["bob"].id
    now = utcnow()
    d1 = shop_day(now) - timedelta(days=30)
    d2 = d1 + timedelta(days=1)
    noon = timedelta(hours=12)
    products = {key: await session.get(Product, pid) for key, pid in p.items()}
    guest = await _order(
        session, None, [products["s1"], products["coffee"]], now - timedelta(days=2), "REC-G1"
    )
    guest.session_id = "rec-guest"
    stranger = await _order(session, None, [products["s1"]], now - timedelta(days=2), "REC-G2")
    stranger.session_id = "rec-stranger"
    early = await _order(
        session, ann, [products["milk"]], day_start(d1) - timedelta(days=20), "REC-OLD"
    )
    answers = {
        "I1": (d1, RecommendationContext.HOME, "default", ann, None,
               _items((p["phone"], "POPULAR"), (p["charger"], "BOUGHT_WITH"), (p["milk"], "REPEAT"))),
        "I2": (d1, RecommendationContext.HOME, "popular-only", None, "rec-guest",
               _items((p["s1"], "POPULAR"), (p["s2"], "POPULAR"))),
        "I3": (d2, RecommendationContext.PRODUCT, "default", ann, None,
               _items((p["milk"], "REPEAT"), (p["tea"], "SIMILAR"), (p["coffee"], "BOUGHT_WITH"),
                      (p["vase"], "SIMILAR"))),
        "I4": (d2, RecommendationContext.CART, "default", bob, None,
               _items((p["charger"], "BOUGHT_WITH"))),
    }  # fmt: skip
    ids = {}
    for name, (day, context, blend, customer_id, session_id, items) in answers.items():
        ids[name] = f"{name.lower()}{'0' * 30}"
        session.add(
            RecommendationImpression(
                id=ids[name],
                context=context,
                customer_id=customer_id,
                session_id=session_id,
                blend=blend,
                items=items,
                created_at=day_start(day) + noon,
            )
        )
    for name, at in (
        ("I5", day_start(d1) - timedelta(seconds=1)),
        ("I6", day_start(d2 + timedelta(days=1))),
    ):
        ids[name] = f"{name.lower()}{'0' * 30}"
        session.add(
            RecommendationImpression(
                id=ids[name],
                context=RecommendationContext.HOME,
                session_id="rec-guest",
                items=_items((p["s1"], "POPULAR")),
                created_at=at,
            )
        )
    earlier = day_start(d1 - timedelta(days=10))
    for name, customer_id, session_id, items in (
        ("T1", ann, None, _items((p["phone"], "POPULAR"), (p["milk"], "REPEAT"))),
        ("T2", None, "rec-guest", _items((p["s1"], "POPULAR"))),
        ("T3", None, "rec-guest", _items((p["s1"], "POPULAR"))),
    ):
        ids[name] = f"{name.lower()}{'0' * 30}"
        session.add(
            RecommendationImpression(
                id=ids[name],
                context=RecommendationContext.HOME,
                customer_id=customer_id,
                session_id=session_id,
                items=items,
                created_at=earlier,
            )
        )
    orders = {
        o.number: o.id
        for o in await session.scalars(select(Order).where(Order.number.like("REC-%")))
    }
    await session.flush()
    # What the figures count, as the table above says.
    for name, key, component, position in (
        ("I1", "phone", Component.POPULAR, 1),
        ("I1", "charger", Component.BOUGHT_WITH, 2),
        ("I2", "s1", Component.POPULAR, 1),
        ("I3", "tea", Component.SIMILAR, 2),
        ("I4", "charger", Component.BOUGHT_WITH, 1),
        ("I5", "s1", Component.POPULAR, 1),
    ):
        session.add(
            RecommendationClick(
                impression_id=ids[name], product_id=p[key], component=component, position=position
            )
        )
    for name, order_id, held, revenue in (
        ("I1", orders["REC-3"], [p["phone"]], 19900),
        ("I2", guest.id, [p["s1"]], 1000),
        ("I3", orders["REC-2"], [p["milk"]], 1000),
        ("I3", orders["REC-3"], [], 0),
    ):
        session.add(
            RecommendationConversion(
                impression_id=ids[name], order_id=order_id, product_ids=held, revenue_amount=revenue
            )
        )
    await session.commit()
    return seeded | {
        "d1": d1,
        "d2": d2,
        "answers": ids,
        "orders": orders,
        "guest": guest.id,
        "stranger": stranger.id,
        "early": early.id,
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


@asynccontextmanager
async def database(shop: ModuleShop) -> AsyncIterator[AsyncSession]:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


def rid(shop: ModuleShop, name: str) -> str:
    return str(shop.seeded["answers"][name])


def pid(shop: ModuleShop, key: str) -> str:
    return gid("Product", shop.seeded["products"][key])


def oid(shop: ModuleShop, number: str) -> str:
    return gid("Order", shop.seeded["orders"][number])


async def click(client: GraphQLClient, shop: ModuleShop, answer: str, key: str) -> dict[str, Any]:
    data = await client(
        CLICK, {"input": {"recommendationId": rid(shop, answer), "productId": pid(shop, key)}}
    )
    result: dict[str, Any] = data["recordRecommendationClick"]
    return result


async def convert(
    client: GraphQLClient, shop: ModuleShop, answer: str, order: str
) -> dict[str, Any]:
    data = await client(
        CONVERT, {"input": {"recommendationId": rid(shop, answer), "orderId": order}}
    )
    result: dict[str, Any] = data["recordRecommendationConversion"]
    return result


async def test_clicks_are_recorded_once_per_answer_and_product(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    first = await click(gql, shop, "T1", "milk")
    assert first == {
        "__typename": "RecordRecommendationClickSuccess",
        "recommendationId": rid(shop, "T1"),
        "component": "REPEAT",
        "position": 2,
        "recorded": True,
        "product": {"name": "牛奶"},
    }
    again = await click(gql, shop, "T1", "milk")
    assert again["recorded"] is False and again["position"] == 2
    assert (await click(gql, shop, "T1", "phone"))["recorded"] is True
    async with database(shop) as session:
        found = await session.execute(
            select(RecommendationClick.product_id, RecommendationClick.component).where(
                RecommendationClick.impression_id == rid(shop, "T1")
            )
        )
        p = shop.seeded["products"]
        assert sorted(found.all()) == sorted(
            [(p["milk"], Component.REPEAT), (p["phone"], Component.POPULAR)]
        )
    # A product the answer did not show, an answer that does not exist: nothing recorded.
    not_shown = await click(gql, shop, "T2", "phone")
    assert (not_shown["code"], not_shown["field"]) == ("NOT_FOUND", "productId")
    data = await gql(CLICK, {"input": {"recommendationId": "f" * 32, "productId": pid(shop, "s1")}})
    missing = data["recordRecommendationClick"]
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", "recommendationId")


async def test_clicks_race_to_one_row(gql: GraphQLClient, shop: ModuleShop) -> None:
    answers = await asyncio.gather(*(click(gql, shop, "T3", "s1") for _ in range(6)))
    assert sorted(a["recorded"] for a in answers) == [False] * 5 + [True]
    async with database(shop) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(RecommendationClick)
            .where(RecommendationClick.impression_id == rid(shop, "T3"))
        )
    assert count == 1


async def test_an_order_converts_only_for_its_own_customer_or_session(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    seeded = shop.seeded
    ann = as_(gql, shop, seeded["customers"]["ann"])
    bob = as_(gql, shop, seeded["customers"]["bob"])
    # Someone else's order, someone else's answer, a guest order of another session.
    for client, answer, order in (
        (ann, "T1", oid(shop, "REC-4")),  # bob's order
        (bob, "T1", oid(shop, "REC-4")),  # ann's answer
        (gql, "T2", gid("Order", seeded["stranger"])),
        (gql, "T2", oid(shop, "REC-3")),  # a customer's order, asked anonymously
        (ann, "T1", gid("Order", 987654)),
    ):
        refused = await convert(client, shop, answer, order)
        assert refused["code"] == "NOT_FOUND", (answer, order)
    before = await convert(ann, shop, "T1", gid("Order", seeded["early"]))
    assert (before["code"], before["field"]) == ("VALIDATION_FAILED", "orderId")

    done = await convert(ann, shop, "T1", oid(shop, "REC-3"))
    assert done["recorded"] is True and done["products"] == [{"name": "耳机"}]
    assert done["revenue"] == {"amount": "199.00", "currency": "CNY"}
    again = await convert(ann, shop, "T1", oid(shop, "REC-3"))
    assert again["recorded"] is False and again["revenue"]["amount"] == "199.00"
    milk = await convert(ann, shop, "T1", oid(shop, "REC-2"))
    assert milk["products"] == [{"name": "牛奶"}] and milk["revenue"]["amount"] == "10.00"
    guest = await convert(gql, shop, "T2", gid("Order", seeded["guest"]))
    assert guest["products"] == [{"name": "薯片"}] and guest["revenue"]["amount"] == "10.00"
    async with database(shop) as session:
        rows = await session.execute(
            select(RecommendationConversion.order_id, RecommendationConversion.revenue_amount)
            .where(RecommendationConversion.impression_id == rid(shop, "T1"))
            .order_by(RecommendationConversion.revenue_amount)
        )
        orders = seeded["orders"]
        assert rows.all() == [(orders["REC-2"], 1000), (orders["REC-3"], 19900)]


def _figures(
    answers: int,
    shown: int,
    clicks: int,
    orders: int,
    converted: int,
    revenue: str,
) -> dict[str, Any]:
    return {
        "answers": answers,
        "shown": shown,
        "clicks": clicks,
        "clickThrough": clicks / shown if shown else None,
        "orders": orders,
        "converted": converted,
        "conversionRate": converted / answers if answers else None,
        "revenue": {"amount": revenue},
    }


async def test_performance_adds_up_by_hand(gql: GraphQLClient, shop: ModuleShop) -> None:
    analyst = as_(gql, shop, shop.seeded["staff"][StaffRole.ANALYST])
    d1, d2 = shop.seeded["d1"], shop.seeded["d2"]
    period = {"from": str(d1), "to": str(d2)}
    report = (await analyst(PERFORMANCE, period))["recommendationPerformance"]
    assert (report["from"], report["to"]) == (str(d1), str(d2))
    # I1-I4: 10 products shown, 5 clicks (I1's second click on 耳机 is the same click, I5
    # was served the day before); 4 orders after I1, I2 and I3 (twice).
    assert report["total"] == _figures(4, 10, 5, 4, 3, "219.00")
    assert report["byContext"] == [
        {"context": "HOME", "figures": _figures(2, 5, 3, 2, 2, "209.00")},
        {"context": "PRODUCT", "figures": _figures(1, 4, 1, 2, 1, "10.00")},
        {"context": "CART", "figures": _figures(1, 1, 1, 0, 0, "0.00")},
    ]
    assert report["byBlend"] == [
        {"blend": "default", "figures": _figures(3, 8, 4, 3, 2, "209.00")},
        {"blend": "popular-only", "figures": _figures(1, 2, 1, 1, 1, "10.00")},
    ]
    assert report["byComponent"] == [
        {"component": "REPEAT", "shown": 2, "clicks": 0, "clickThrough": 0.0,
         "converted": 1, "conversionRate": 0.5},
        {"component": "BOUGHT_WITH", "shown": 3, "clicks": 2, "clickThrough": 2 / 3,
         "converted": 0, "conversionRate": 0.0},
        {"component": "SIMILAR", "shown": 2, "clicks": 1, "clickThrough": 0.5,
         "converted": 0, "conversionRate": 0.0},
        {"component": "POPULAR", "shown": 3, "clicks": 2, "clickThrough": 2 / 3,
         "converted": 2, "conversionRate": 2 / 3},
    ]  # fmt: skip
    # One day: D2 alone.
    day = (await analyst(PERFORMANCE, {"from": str(d2), "to": str(d2)}))[
        "recommendationPerformance"
    ]
    assert day["total"] == _figures(2, 5, 2, 2, 1, "10.00")
    # Nothing served: no ratios.
    empty = (await analyst(PERFORMANCE, {"from": "2020-01-01", "to": "2020-01-02"}))[
        "recommendationPerformance"
    ]
    assert empty["total"] == _figures(0, 0, 0, 0, 0, "0.00")


async def test_the_kpis_count_the_same(gql: GraphQLClient, shop: ModuleShop) -> None:
    analyst = as_(gql, shop, shop.seeded["staff"][StaffRole.ANALYST])
    d1, d2 = shop.seeded["d1"], shop.seeded["d2"]
    keys = ["recommendation.click_through", "recommendation.conversion"]
    data = await analyst(
        KPIS, {"input": {"from": str(d1), "to": str(d2), "granularity": "DAY", "keys": keys}}
    )
    series = {k["key"]: k for k in data["shopKpis"]["kpis"]}
    ctr, conversion = series[keys[0]], series[keys[1]]
    assert ctr["unit"] == conversion["unit"] == "RATIO"
    # D1: 3 clicks of 5 shown; D2: 2 of 5. The day before (I5): 1 of 1.
    assert [(p["start"], p["value"]) for p in ctr["points"]] == [(str(d1), 0.6), (str(d2), 0.4)]
    assert (ctr["total"], ctr["previousTotal"]) == (0.5, 1.0)
    # D1: both answers followed by an order; D2: one of two. The day before: none of one.
    assert [p["value"] for p in conversion["points"]] == [1.0, 0.5]
    assert (conversion["total"], conversion["previousTotal"]) == (0.75, 0.0)


async def test_only_insights_readers_see_the_figures(gql: GraphQLClient, shop: ModuleShop) -> None:
    period = {"from": str(shop.seeded["d1"]), "to": str(shop.seeded["d2"])}
    for client in (
        gql,
        as_(gql, shop, shop.seeded["customers"]["ann"]),
        as_(gql, shop, shop.seeded["staff"][StaffRole.CATALOG]),
    ):
        body = await client.execute(PERFORMANCE, period)
        assert body["data"] is None and body["errors"]
    admin = as_(gql, shop, shop.seeded["staff"][StaffRole.ADMIN])
    for period, field in (
        ({"from": "2026-02-02", "to": "2026-02-01"}, "to"),
        ({"from": "2010-01-01", "to": "2026-01-01"}, "to"),
    ):
        refused = (await admin(PERFORMANCE, period))["recommendationPerformance"]
        assert (refused["__typename"], refused["code"], refused["field"]) == (
            "ValidationError",
            "VALIDATION_FAILED",
            field,
        )
