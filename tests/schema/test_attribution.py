"""Channel and promotion attribution for staff, over HTTP, on a hand-computed shop, on SQLite
and PostgreSQL; the channel KPIs on the same shop.

The shop (November 2026, shop days UTC+8; the lookback is the default 30 days; amounts in yuan):

| order | visitor     | placed (shop time) | touches before it (in lookback)     | its channel | total | first buy |
| ----- | ----------- | ------------------ | ----------------------------------- | ----------- | ----- | --------- |
| A1    | customer A  | Nov 5              | PAID Oct 20, LIVE_STREAM Nov 3      | APP         | 300   | yes       |
| A2    | customer A  | Nov 20             | LIVE_STREAM Nov 3 (PAID Oct 20 is 31 days back: out) | COMMUNITY_GROUP | 100 | no |
| B1    | customer B  | Nov 10             | ORGANIC, ORGANIC Nov 9, MINI_PROGRAM Nov 10 | MINI_PROGRAM (the latest touch's) | 200 | no (bought in September) |
| C1    | customer C  | Nov 1, 00:30       | none                                | none        | 50    | yes       |
| G1    | guest "g-1" | Nov 25             | PAID Nov 25 (the session's)         | PAID        | 80    | (a guest) |

Not counted: A's cancelled order and pending order in November, D's order at Dec 1, 00:30 shop
time (Nov 30 in UTC), an order in USD. Paths (consecutive touches of one channel are one):
A1 = PAID, LIVE_STREAM, APP; A2 = LIVE_STREAM, COMMUNITY_GROUP; B1 = ORGANIC, MINI_PROGRAM;
C1 = (none); G1 = PAID.

Costs of the period: PAID 100 (Nov 1, campaign "a") + 50 (Nov 2), LIVE_STREAM 60 (Nov 3),
COMMUNITY_GROUP 10 (Nov 20); PAID 999 on Dec 1 is outside. Totals: 5 orders, 730 revenue,
220 cost, ROI 510/220, 2 new customers (A, C), CAC 110.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server.config import Settings
from server.hooktypes import KpiBucket
from server.models import (
    Customer,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    SalesChannel,
    StaffRole,
)
from server.plugins import PluginRuntime
from server.services import attribution, variants
from server.services.kpi_registry import registered_kpis
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.statements import counting

C = SalesChannel
SHOP = timedelta(hours=8)

ATTRIBUTION = """query($input: ChannelAttributionInput!) { channelAttribution(input: $input) {
  __typename
  ... on ChannelAttributionReport { from to model lookbackDays
    channels { channel label privateDomain orders revenue { amount currency } cost { amount }
               roi newCustomers cac { amount } }
    totals { orders revenue { amount } cost { amount } roi newCustomers cac { amount }
             privateDomainRevenueShare } }
  ... on Error { code field message } } }"""
PROMOTIONS = """query($input: PromotionAttributionInput!) { promotionAttribution(input: $input) {
  __typename
  ... on PromotionAttributionReport { from to orders revenue { amount } promotedOrders
    promotedRevenue { amount } discount { amount }
    promotions { source rule label orders revenue { amount } discount { amount }
                 revenuePerDiscount } }
  ... on Error { code field message } } }"""
IMPORT = """mutation($input: ImportMarketingCostsInput!) { importMarketingCosts(input: $input) {
  __typename
  ... on ImportMarketingCostsSuccess { rows replaced total { amount } firstDay lastDay }
  ... on InvalidImportRow { code field row column message }
  ... on Error { code field message } } }"""
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


def shop_time(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """A moment of a shop day (UTC+8), as stored (UTC)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - SHOP


_numbers = iter(range(1, 10_000))


def _order(
    customer: Customer | None,
    total: int,
    at: datetime,
    channel: SalesChannel | None = None,
    *,
    status: OrderStatus = OrderStatus.COMPLETED,
    currency: str = "CNY",
    session_id: str | None = None,
    adjustments: list[dict[str, Any]] | None = None,
) -> Order:
    return Order(
        number=f"ATTR-{next(_numbers)}",
        customer_id=customer.id if customer is not None else None,
        email="buyer@example.cn",
        status=status,
        currency=currency,
        subtotal_amount=total,
        total_amount=total,
        placed_at=at,
        channel=channel,
        session_id=session_id,
        adjustments=adjustments or [],
    )


def _touch(
    customer: Customer | None, channel: SalesChannel, at: datetime, session_id: str | None = None
) -> CustomerEvent:
    return CustomerEvent(
        kind=CustomerEventKind.VIEW,
        customer_id=customer.id if customer is not None else None,
        session_id=session_id,
        channel=channel,
        utm_source="test",
        occurred_at=at,
    )


async def seed_shop(session: AsyncSession) -> dict[str, Any]:
    a, b, c, d = [await make_customer(session) for _ in range(4)]
    product = await make_product(session, "保温杯", commit=False)
    assert product.id is not None
    [variant] = await variants.variants_of(session, product.id)
    nov = lambda day: date(2026, 11, day)  # noqa: E731
    spend = {"source": "promotions", "rule": "spend-300-save-30", "label": "满300减30"}
    flash = {"source": "promotions", "rule": "flash", "label": "限时特惠"}
    a1 = _order(
        a,
        30000,
        shop_time(nov(5)),
        C.APP,
        adjustments=[
            spend | {"amount": -3000},
            {"source": "shop", "rule": "packaging", "label": "包装费", "amount": 500},
        ],
    )
    a2 = _order(
        a, 10000, shop_time(nov(20)), C.COMMUNITY_GROUP, adjustments=[spend | {"amount": -1000}]
    )
    b1 = _order(b, 20000, shop_time(nov(10), 20), C.MINI_PROGRAM)
    c1 = _order(c, 5000, shop_time(nov(1), 0, 30))
    g1 = _order(None, 8000, shop_time(nov(25), 21), C.PAID, session_id="g-1")
    session.add_all(
        [
            a1,
            a2,
            b1,
            c1,
            g1,
            # Not in the report: before it, cancelled, unpaid, after it, another currency.
            _order(b, 9900, shop_time(date(2026, 9, 3)), C.WEB),
            _order(a, 7000, shop_time(nov(6)), C.PAID, status=OrderStatus.CANCELLED),
            _order(a, 6000, shop_time(nov(7)), C.PAID, status=OrderStatus.PENDING_PAYMENT),
            _order(d, 4000, shop_time(date(2026, 12, 1), 0, 30), C.PAID),
            _order(d, 3000, shop_time(nov(8)), C.PAID, currency="USD"),
            # The touches.
            _touch(a, C.PAID, shop_time(date(2026, 10, 20), 10)),
            _touch(a, C.LIVE_STREAM, shop_time(nov(3), 20)),
            _touch(a, C.WEB, shop_time(nov(21))),  # after both of A's orders
            _touch(b, C.ORGANIC, shop_time(nov(9), 9)),
            _touch(b, C.ORGANIC, shop_time(nov(9), 10)),
            _touch(b, C.MINI_PROGRAM, shop_time(nov(10), 19)),
            _touch(None, C.PAID, shop_time(nov(25), 20), session_id="g-1"),
            _touch(None, C.LIVE_STREAM, shop_time(nov(25), 20), session_id="g-2"),
        ]
    )
    await session.flush()
    # B1 has a line with a flash-sale discount (per unit, two units) and a guardrail clamp;
    # A2 a line with one unit of it.
    for order, quantity, steps in (
        (b1, 2, [flash | {"amount": -1000}, {"source": "core", "rule": "floor", "label": "",
                                             "amount": 200, "guardrail": True}]),
        (a2, 1, [flash | {"amount": -500}]),
    ):  # fmt: skip
        session.add(
            OrderLine(
                order_id=order.id,
                product_id=product.id,
                variant_id=variant.id,
                sku=product.sku,
                product_name=product.name,
                quantity=quantity,
                base_unit_price_amount=product.price_amount,
                unit_price_amount=product.price_amount,
                line_total_amount=product.price_amount * quantity,
                adjustments=steps,
            )
        )
    await session.commit()
    return {"customers": [a, b, c, d]}


COSTS = [
    {"day": "2026-11-01", "channel": "PAID", "campaign": "a", "amount": "100"},
    {"day": "2026-11-02", "channel": "paid", "amount": "50.00"},
    {"day": "2026-11-03", "channel": "LIVE_STREAM", "campaign": "618", "amount": "60"},
    {"day": "2026-11-20", "channel": "COMMUNITY_GROUP", "amount": "10"},
    {"day": "2026-12-01", "channel": "PAID", "amount": "999"},
]


@pytest.fixture
async def admin(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> GraphQLClient:
    await seed_shop(session)
    client = gql.as_(token_for(settings, await make_staff(session)))
    imported = (await client(IMPORT, {"input": {"rows": COSTS}}))["importMarketingCosts"]
    assert imported["__typename"] == "ImportMarketingCostsSuccess", imported
    return client


def rows(report: dict[str, Any]) -> dict[str | None, tuple[Any, ...]]:
    """Per channel: orders, revenue, cost, ROI, new customers, CAC (None where null)."""
    return {
        r["channel"]: (
            pytest.approx(r["orders"]),
            r["revenue"]["amount"],
            r["cost"]["amount"],
            None if r["roi"] is None else pytest.approx(r["roi"]),
            pytest.approx(r["newCustomers"]),
            r["cac"]["amount"] if r["cac"] else None,
        )
        for r in report["channels"]
        if r["orders"] or r["cost"]["amount"] != "0.00" or r["channel"] is None
    }


async def report(client: GraphQLClient, model: str) -> dict[str, Any]:
    data = await client(ATTRIBUTION, {"input": NOVEMBER | {"model": model}})
    answer = data["channelAttribution"]
    assert answer["__typename"] == "ChannelAttributionReport", answer
    return dict(answer)


async def test_first_touch_credits_each_order_to_its_first_touch(admin: GraphQLClient) -> None:
    found = await report(admin, "FIRST_TOUCH")
    assert (found["from"], found["to"], found["model"], found["lookbackDays"]) == (
        "2026-11-01",
        "2026-11-30",
        "FIRST_TOUCH",
        30,
    )
    assert rows(found) == {
        # A1 (300, A new) + G1 (80): cost 150, ROI 230/150, CAC 150/1.
        "PAID": (2, "380.00", "150.00", 230 / 150, 1, "150.00"),
        # A2: PAID Oct 20 fell out of its lookback, so its first touch is the live stream.
        "LIVE_STREAM": (1, "100.00", "60.00", 40 / 60, 0, None),
        "ORGANIC": (1, "200.00", "0.00", None, 0, None),
        "COMMUNITY_GROUP": (0, "0.00", "10.00", -1.0, 0, None),
        None: (1, "50.00", "0.00", None, 1, None),  # C1: no touch at all
    }
    assert [r["channel"] for r in found["channels"]] == [c.value for c in C] + [None]
    totals = found["totals"]
    assert totals == {
        "orders": 5,
        "revenue": {"amount": "730.00"},
        "cost": {"amount": "220.00"},
        "roi": pytest.approx(510 / 220),
        "newCustomers": 2,
        "cac": {"amount": "110.00"},
        "privateDomainRevenueShare": 0.0,
    }
    labels = {r["channel"]: (r["label"], r["privateDomain"]) for r in found["channels"]}
    assert labels["MINI_PROGRAM"] == ("小程序 Mini program", True)
    assert labels["COMMUNITY_GROUP"][1] and not labels["APP"][1] and not labels[None][1]


async def test_last_touch_credits_each_order_to_its_last_touch(admin: GraphQLClient) -> None:
    found = await report(admin, "LAST_TOUCH")
    assert rows(found) == {
        "APP": (1, "300.00", "0.00", None, 1, "0.00"),  # A1: a new customer who cost nothing
        "COMMUNITY_GROUP": (1, "100.00", "10.00", 9.0, 0, None),
        "MINI_PROGRAM": (1, "200.00", "0.00", None, 0, None),
        "PAID": (1, "80.00", "150.00", (80 - 150) / 150, 0, None),  # G1
        "LIVE_STREAM": (0, "0.00", "60.00", -1.0, 0, None),
        None: (1, "50.00", "0.00", None, 1, None),
    }
    assert found["totals"]["privateDomainRevenueShare"] == pytest.approx(300 / 730)


async def test_linear_shares_each_order_equally_among_its_touches(admin: GraphQLClient) -> None:
    found = await report(admin, "LINEAR")
    third, half = 1 / 3, 1 / 2
    assert rows(found) == {
        # A1 / 3 + G1: 1/3 + 1 orders, 100 + 80 revenue, 1/3 of A: CAC 150 / (1/3) = 450.
        "PAID": (third + 1, "180.00", "150.00", 30 / 150, third, "450.00"),
        # A1 / 3 + A2 / 2: 100 + 50 revenue, CAC 60 / (1/3) = 180.
        "LIVE_STREAM": (third + half, "150.00", "60.00", 90 / 60, third, "180.00"),
        "APP": (third, "100.00", "0.00", None, third, "0.00"),
        "COMMUNITY_GROUP": (half, "50.00", "10.00", 4.0, 0, None),
        "ORGANIC": (half, "100.00", "0.00", None, 0, None),  # two visits: one touch
        "MINI_PROGRAM": (half, "100.00", "0.00", None, 0, None),
        None: (1, "50.00", "0.00", None, 1, None),
    }
    credited = sum(r["orders"] for r in found["channels"])
    assert credited == pytest.approx(5)
    assert found["totals"]["privateDomainRevenueShare"] == pytest.approx(150 / 730)


async def test_a_longer_lookback_reaches_older_touches(
    admin: GraphQLClient, app: Starlette
) -> None:
    """The lookback is a setting: at 40 days, A2's first touch is A's paid ad of Oct 20."""
    app.state.shopgraph.settings.attribution_lookback_days = 40
    found = await report(admin, "FIRST_TOUCH")
    assert found["lookbackDays"] == 40
    assert rows(found)["PAID"][:3] == (3, "480.00", "150.00")
    assert rows(found)["LIVE_STREAM"][:2] == (0, "0.00")


async def test_promotions_are_credited_with_their_orders(admin: GraphQLClient) -> None:
    found = (await admin(PROMOTIONS, {"input": NOVEMBER}))["promotionAttribution"]
    assert found["__typename"] == "PromotionAttributionReport"
    assert found["promotions"] == [
        {
            # A1 30 off and A2 10 off, on orders of 300 and 100.
            "source": "promotions",
            "rule": "spend-300-save-30",
            "label": "满300减30",
            "orders": 2,
            "revenue": {"amount": "400.00"},
            "discount": {"amount": "40.00"},
            "revenuePerDiscount": 10.0,
        },
        {
            # B1: 10 off each of two units (the guardrail's clamp is not a promotion); A2: 5.
            "source": "promotions",
            "rule": "flash",
            "label": "限时特惠",
            "orders": 2,
            "revenue": {"amount": "300.00"},
            "discount": {"amount": "25.00"},
            "revenuePerDiscount": 12.0,
        },
    ]
    assert (found["orders"], found["revenue"], found["promotedOrders"]) == (
        5,
        {"amount": "730.00"},
        3,
    )
    assert found["promotedRevenue"] == {"amount": "600.00"}
    assert found["discount"] == {"amount": "65.00"}


async def test_reports_answer_in_statements_that_do_not_grow_with_the_orders(
    admin: GraphQLClient, app: Starlette, session: AsyncSession
) -> None:
    async def statements() -> int:
        with counting(app) as seen:
            await report(admin, "LINEAR")
            await admin(PROMOTIONS, {"input": NOVEMBER})
        return len(seen)

    before = await statements()
    customers = [await make_customer(session) for _ in range(20)]
    for i, customer in enumerate(customers):
        at = shop_time(date(2026, 11, 1 + i))
        session.add(_touch(customer, C.PAID, at - timedelta(hours=2)))
        session.add(
            _order(
                customer,
                1000,
                at,
                C.APP,
                adjustments=[
                    {"source": "promotions", "rule": "flash", "label": "限时特惠", "amount": -100}
                ],
            )
        )
    await session.commit()
    assert await statements() == before
    found = await report(admin, "LINEAR")
    assert found["totals"]["orders"] == 25
    assert rows(found)["PAID"][0] == pytest.approx(1 / 3 + 1 + 20 / 2)


@pytest.mark.parametrize(
    ("period", "field"),
    [
        ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
        ({"from": "2025-10-31", "to": "2026-11-01"}, "from"),  # 367 days
    ],
)
async def test_a_bad_period_is_a_typed_error(
    admin: GraphQLClient, period: dict[str, str], field: str
) -> None:
    for query, name in ((ATTRIBUTION, "channelAttribution"), (PROMOTIONS, "promotionAttribution")):
        answer = (await admin(query, {"input": period}))[name]
        assert (answer["__typename"], answer["field"]) == ("ValidationError", field)
    year = {"from": "2025-11-01", "to": "2026-11-01"}  # 366 days: the longest
    answer = (await admin(ATTRIBUTION, {"input": year}))["channelAttribution"]
    assert answer["__typename"] == "ChannelAttributionReport"


async def test_only_staff_with_insights_read_see_the_reports(
    admin: GraphQLClient, gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = gql.as_(token_for(settings, await make_customer(session)))
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    for client in (gql, customer, support):
        for query in (ATTRIBUTION, PROMOTIONS):
            body = await client.execute(query, {"input": NOVEMBER})
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert (await report(analyst, "LAST_TOUCH"))["totals"]["orders"] == 5


# --- the KPIs -----------------------------------------------------------------------------------


async def test_channel_kpis_over_buckets(
    session: AsyncSession, plugins: PluginRuntime, admin: GraphQLClient
) -> None:
    kpis = registered_kpis(plugins)
    nov = lambda day: date(2026, 11, day)  # noqa: E731
    buckets = [
        KpiBucket(nov(10), nov(11)),  # B1 alone: all private domain
        KpiBucket(nov(1), nov(8)),  # C1 (none) and A1 (APP); PAID 100 + 50, LIVE 60; C new
        KpiBucket(nov(1), date(2026, 12, 1)),  # November
        KpiBucket(nov(2), nov(3)),  # a cost, no new customer
        KpiBucket(date(2026, 12, 10), date(2026, 12, 11)),  # nothing at all
    ]
    share = await kpis["private_domain_share"].compute(session, buckets)
    assert share == [1.0, 0.0, pytest.approx(300 / 760), None, None]
    # November's paid GMV counts every currency (the KPIs know no shop currency): 730 + 30.
    cost = await kpis["marketing_cost"].compute(session, buckets)
    assert cost == [0.0, 21000.0, 22000.0, 5000.0, 0.0]
    cac = await kpis["cac"].compute(session, buckets)
    # A and C are new in November (D's first order, in USD, is also its first purchase).
    assert cac == [None, 21000.0 / 2, 22000.0 / 3, None, None]
    assert kpis["cac"].higher_is_better is False
    assert attribution.channel_kpis()[0].unit.value == "RATIO"
