"""The promotion and campaign reports and the plugin's KPIs, on a small set of orders whose
figures are worked out by hand below (both backends)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    LedgerEntry,
    Promotion,
    PromotionClass,
    PromotionKind,
    Redemption,
    RedemptionStatus,
)
from plugins.promotions.service import report
from server.config import Settings
from server.models import Order, OrderLine, OrderStatus, Product, ProductVariant, StaffRole
from server.plugin import KpiBucket
from server.plugins import PluginRuntime
from server.services.kpi_registry import registered_kpis
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid, make_product

FIRST, LAST = date(2025, 3, 10), date(2025, 3, 16)

REPORT = """
query($promotion: ID!, $campaign: ID!, $from: Date, $to: Date) {
  promotionReport(input: {promotionId: $promotion, from: $from, to: $to}) {
    __typename ...Figures ... on Error { code field }
  }
  campaignReport(input: {campaignId: $campaign, from: $from, to: $to}) {
    __typename ...Figures ... on Error { code field }
  }
}
fragment Figures on PromotionReport {
  from to baselineFrom baselineTo orders gmv { amount } discountCost { amount }
  aov { amount } baselineOrders baselineAov { amount } aovChange
  couponsIssued couponsRedeemed couponRedemptionRate newCustomers
  grossMargin { amount } costCoverage incrementalMargin { amount } roi
}
"""


@dataclass
class Shop:
    x: int  # a coupon promotion of the campaign
    y: int  # another promotion of the campaign
    z: int  # a promotion outside it
    campaign: int
    p1: Product


def _at(day: int, hour: int = 4, month: int = 3) -> datetime:
    """A moment of 2025 (UTC); 04:00 UTC is 12:00 of the same shop day (UTC+8)."""
    return datetime(2025, month, day, hour, tzinfo=UTC)


async def _seed(session: AsyncSession, extra_orders: int = 0) -> Shop:
    # P1: ¥100, the variant's cost ¥60; P2: ¥50, no cost known; P3: ¥200, only the
    # product's cost ¥120.
    p1 = await make_product(session, price=10000)
    p2 = await make_product(session, price=5000)
    p3 = await make_product(session, price=20000)
    variants: dict[int, ProductVariant] = {}
    for product in (p1, p2, p3):
        variant = (await session.execute(_variant_of(product.id))).scalar_one()
        variants[product.id or 0] = variant
    variants[p1.id or 0].cost_amount = 6000
    p3.cost_amount = 12000
    a = await make_customer(session)  # first purchase in the period: new
    b = await make_customer(session)  # bought in January: not new
    c = await make_customer(session)
    d = await make_customer(session)
    campaign = Campaign(name="春季焕新", budget_amount=100000)
    session.add(campaign)
    await session.flush()
    x = Promotion(name="满200减30 券", kind=PromotionKind.COUPON, campaign_id=campaign.id)
    y = Promotion(name="满赠", kind=PromotionKind.SPEND_SAVE, campaign_id=campaign.id)
    z = Promotion(name="限时特惠", kind=PromotionKind.FLASH_SALE)
    session.add_all([x, y, z])
    await session.flush()

    def order(
        customer: int | None, at: datetime, total: int, status: OrderStatus = OrderStatus.PAID
    ) -> Order:
        row = Order(
            number=f"PR{at:%m%d%H%M}-{total}-{customer}",
            customer_id=customer,
            status=status,
            total_amount=total,
            subtotal_amount=total,
            placed_at=at,
        )
        session.add(row)
        return row

    order(b.id, _at(5, month=1), 8000)
    o1 = order(a.id, _at(10), 18000)
    o2 = order(b.id, _at(12), 21500)
    # 15:00 UTC on the 16th is 23:00 of the shop's 16th: the period's last hour.
    o3 = order(None, _at(16, hour=15), 9000)
    o4 = order(c.id, _at(13), 30000, OrderStatus.CANCELLED)
    # 16:30 UTC on the 16th is the shop's 17th: after the period.
    o5 = order(a.id, datetime(2025, 3, 16, 16, 30, tzinfo=UTC), 12000)
    o6 = order(d.id, _at(14), 7000)
    o7 = order(d.id, _at(15), 4500)
    # The week before: two orders not cancelled (one awaiting payment) and a cancelled one.
    order(None, _at(3), 10000)
    order(None, _at(9), 15001, OrderStatus.PENDING_PAYMENT)
    order(None, _at(5), 99999, OrderStatus.CANCELLED)
    more = [order(None, _at(11, hour=h % 12), 1000 + h) for h in range(extra_orders)]
    await session.flush()

    def line(o: Order, product: Product, quantity: int, unit: int) -> OrderLine:
        row = OrderLine(
            order_id=o.id or 0,
            product_id=product.id or 0,
            variant_id=variants[product.id or 0].id or 0,
            sku=product.sku,
            product_name=product.name,
            quantity=quantity,
            base_unit_price_amount=product.price_amount,
            unit_price_amount=unit,
            line_total_amount=unit * quantity,
        )
        session.add(row)
        return row

    l1 = line(o1, p1, 2, 9000)  # ¥10 a unit off by X (a product discount)
    l2 = line(o2, p2, 1, 5000)
    l3 = line(o2, p3, 1, 20000)
    line(o3, p1, 1, 10000)
    line(o4, p1, 3, 10000)
    line(o5, p1, 1, 10000)
    line(o6, p1, 1, 7000)
    line(o7, p2, 1, 4500)
    for extra in more:
        line(extra, p3, 1, 20000)
        line(extra, p1, 1, 10000)
    await session.flush()

    codes = {
        "c1": CouponCode(promotion_id=x.id or 0, code="R-C1", issued_at=_at(10, hour=1)),
        "c2": CouponCode(promotion_id=x.id or 0, code="R-C2", issued_at=_at(12)),
        "c3": CouponCode(promotion_id=x.id or 0, code="R-C3", issued_at=_at(13)),
        # Issued before the period: used in it, but not one of its issued codes.
        "c4": CouponCode(promotion_id=x.id or 0, code="R-C4", issued_at=_at(1)),
    }
    session.add_all(codes.values())
    await session.flush()

    def redeemed(
        o: Order,
        promotion: Promotion,
        amount: int,
        code: str | None = None,
        status: RedemptionStatus = RedemptionStatus.RESERVED,
    ) -> None:
        session.add(
            Redemption(
                order_id=o.id or 0,
                promotion_id=promotion.id or 0,
                customer_id=o.customer_id,
                campaign_id=promotion.campaign_id,
                code_id=codes[code].id if code else None,
                amount=amount,
                status=status,
            )
        )

    redeemed(o1, x, 2000, "c1")
    redeemed(o2, x, 3000, "c4")
    redeemed(o2, y, 500)
    redeemed(o3, y, 1000)
    redeemed(o4, x, 3000, "c3", RedemptionStatus.RELEASED)
    redeemed(o5, x, 1000)
    redeemed(o6, z, 700)
    for extra in more:
        redeemed(extra, x, 100)
    # The ledger: X's product discount on L1, its order discount split over O2's lines.
    session.add_all(
        [
            LedgerEntry(
                order_id=o1.id or 0,
                order_line_id=l1.id,
                promotion_id=x.id or 0,
                promotion_class=PromotionClass.PRODUCT,
                amount=2000,
            ),
            LedgerEntry(
                order_id=o2.id or 0, order_line_id=l2.id, promotion_id=x.id or 0, amount=600
            ),
            LedgerEntry(
                order_id=o2.id or 0, order_line_id=l3.id, promotion_id=x.id or 0, amount=2400
            ),
        ]
    )
    await session.commit()
    return Shop(x.id or 0, y.id or 0, z.id or 0, campaign.id or 0, p1)


def _variant_of(product_id: int | None) -> Any:
    from sqlalchemy import select

    return select(ProductVariant).where(ProductVariant.product_id == product_id)  # type: ignore[arg-type]


# The promotion X over 2025-03-10…16, by hand:
# orders O1 (¥180) and O2 (¥215): 2, GMV ¥395, discount ¥20 + ¥30 = ¥50, AOV ¥197.50.
# Baseline 03-03…09: ¥100 and ¥150.01 (awaiting payment counts, cancelled does not):
#   AOV 12500.5 fen, rounded half up to ¥125.01; change 19750 / 12500.5 − 1.
# Margin: L1 (9000 + 1000 back − 6000) × 2 = 8000; L2 no cost; L3 20000 − 12000 = 8000:
#   16000; revenue 43000 of which 38000 costed; incremental 16000 − 5000 = 11000, ROI 2.2.
# Codes issued in the period: c1 (used by O1), c2 (unused), c3 (used by a cancelled order): 1/3.
# New customers: A (O1 is their first purchase); B bought in January.
X_FIGURES = {
    "__typename": "PromotionReport",
    "from": "2025-03-10",
    "to": "2025-03-16",
    "baselineFrom": "2025-03-03",
    "baselineTo": "2025-03-09",
    "orders": 2,
    "gmv": {"amount": "395.00"},
    "discountCost": {"amount": "50.00"},
    "aov": {"amount": "197.50"},
    "baselineOrders": 2,
    "baselineAov": {"amount": "125.01"},
    "aovChange": pytest.approx(19750 / 12500.5 - 1),
    "couponsIssued": 3,
    "couponsRedeemed": 1,
    "couponRedemptionRate": pytest.approx(1 / 3),
    "newCustomers": 1,
    "grossMargin": {"amount": "160.00"},
    "costCoverage": pytest.approx(38000 / 43000),
    "incrementalMargin": {"amount": "110.00"},
    "roi": pytest.approx(2.2),
}
# The campaign (X and Y) adds O3 (a guest, ¥90, Y ¥10) and Y's ¥5 on O2: 3 orders, ¥485,
# discount ¥65, AOV 16166.67 → ¥161.67; margin + L4 (10000 − 6000) = 20000, revenue 53000
# of which 48000 costed; incremental 13500, ROI 13500 / 6500.
CAMPAIGN_FIGURES = {
    **X_FIGURES,
    "orders": 3,
    "gmv": {"amount": "485.00"},
    "discountCost": {"amount": "65.00"},
    "aov": {"amount": "161.67"},
    "aovChange": pytest.approx((48500 / 3) / 12500.5 - 1),
    "grossMargin": {"amount": "200.00"},
    "costCoverage": pytest.approx(48000 / 53000),
    "incrementalMargin": {"amount": "135.00"},
    "roi": pytest.approx(13500 / 6500),
}


async def test_reports_over_http_match_the_hand_computed_figures(
    session: AsyncSession, gql: GraphQLClient, settings: Settings
) -> None:
    shop = await _seed(session)
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    ids = {"promotion": gid("Promotion", shop.x), "campaign": gid("Campaign", shop.campaign)}
    period = {"from": FIRST.isoformat(), "to": LAST.isoformat()}

    data = await admin(REPORT, {**ids, **period})
    assert data["promotionReport"] == X_FIGURES
    assert data["campaignReport"] == CAMPAIGN_FIGURES

    # A bad period, an unknown or malformed id, or another type's id: typed, nothing else.
    refused = await admin(REPORT, {**ids, "from": "2025-03-17", "to": "2025-03-16"})
    assert refused["promotionReport"] == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "from",
    }
    long = await admin(REPORT, {**ids, "from": "2024-03-15", "to": "2025-03-16"})
    assert long["campaignReport"]["__typename"] == "ValidationError"
    missing = await admin(
        REPORT,
        {"promotion": gid("Promotion", 10**6), "campaign": gid("Promotion", shop.x), **period},
    )
    assert missing["promotionReport"] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "field": "promotionId",
    }
    assert missing["campaignReport"]["__typename"] == "NotFoundError"

    # Staff without the plugin's permissions, and customers, are refused.
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    customer = gql.as_(token_for(settings, await make_customer(session)))
    for who in (support, customer, gql):
        body = await who.execute(REPORT, {**ids, **period})
        assert body["errors"] and body.get("data") is None


async def test_statements_do_not_grow_with_orders(session: AsyncSession) -> None:
    """Twelve more promotion orders change the figures, not the number of statements."""
    shop = await _seed(session, extra_orders=12)
    seen: list[str] = []
    from sqlalchemy import event

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = session.bind.sync_engine  # type: ignore[union-attr]
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await report.promotion_report(
            session, shop.x, FIRST, LAST, baseline_days=28, today=date(2025, 4, 1)
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert found is not None
    assert found.orders == 14 and found.discount == 5000 + 12 * 100
    # Each extra order: (20000 − 12000) + (10000 − 6000) of margin.
    assert found.gross_margin == 16000 + 12 * 12000
    assert len([s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))]) == 7


async def test_a_default_period_runs_from_the_start_against_the_baseline_days(
    session: AsyncSession,
) -> None:
    shop = await _seed(session)
    promotion = await session.get(Promotion, shop.x)
    assert promotion is not None
    promotion.starts_at = _at(10)  # 12:00 on the shop's 10th
    promotion.ends_at = _at(16, hour=15)
    await session.commit()
    found = await report.promotion_report(
        session, shop.x, None, None, baseline_days=7, today=date(2025, 6, 1)
    )
    assert found is not None
    assert (found.period.first, found.period.last) == (FIRST, LAST)
    assert (found.baseline.first, found.baseline.last) == (date(2025, 3, 3), date(2025, 3, 9))
    assert (found.orders, found.gmv, found.baseline_aov) == (2, 39500, 12501)
    # Still running: up to today; 28 baseline days.
    promotion.ends_at = None
    await session.commit()
    running = await report.promotion_report(
        session, shop.x, None, None, baseline_days=28, today=date(2025, 3, 13)
    )
    assert running is not None
    assert (running.period.first, running.period.last) == (FIRST, date(2025, 3, 13))
    assert running.baseline.first == date(2025, 2, 10) and running.orders == 2


def test_aov_roundshalf_up() -> None:
    assert report.half_up(25001, 2) == 12501  # 12500.5
    assert report.half_up(25003, 2) == 12502  # 12501.5
    assert report.half_up(48500, 3) == 16167
    assert report.half_up(10, 4) == 3  # 2.5
    assert report.half_up(5, 0) is None


async def test_kpis_per_bucket(session: AsyncSession, plugins: PluginRuntime) -> None:
    await _seed(session)
    week_before = KpiBucket(date(2025, 3, 3), date(2025, 3, 10))
    week = KpiBucket(FIRST, date(2025, 3, 17))
    buckets = [week_before, week]
    # The week: purchases O1, O2, O3, O6, O7 (O4 cancelled), GMV 18000 + 21500 + 9000 + 7000
    # + 4500 = 60000; discounts 2000 + 3500 + 1000 + 700 = 7200; four of five with one.
    # The week before: one purchase (the other awaits payment), no promotion.
    assert await report.discount_share(session, buckets) == [0.0, pytest.approx(7200 / 60000)]
    assert await report.promoted_order_share(session, buckets) == [0.0, pytest.approx(4 / 5)]
    # Codes issued: none the week before; c1, c2, c3 in the week, c1 redeemed.
    assert await report.coupon_redemption_rate(session, buckets) == [None, pytest.approx(1 / 3)]
    # The dashboard offers them.
    keys = set(registered_kpis(plugins))
    assert {
        "promotions.discount_share",
        "promotions.coupon_redemption_rate",
        "promotions.promoted_order_share",
    } <= keys
