"""The report per promotion and per campaign, and the plugin's KPIs for the dashboard.

A report covers a period of shop days (UTC+8, both included, at most
:data:`server.services.attribution.MAX_PERIOD_DAYS`). Its **promotion orders** are the orders
placed in the period, in the promotion's currency, not cancelled, that hold a RESERVED
redemption of the promotion (of any promotion of the campaign). The figures, all from SQL
aggregates in a fixed number of statements whatever the number of orders
(docs/plugins/promotions.md, "Reports"):

- ``orders``, ``gmv`` (Σ their totals) and ``discount`` (Σ the redemptions' amounts: product,
  order and shipping discounts of the promotion);
- ``aov`` = gmv / orders, against ``baseline_aov``: every order not cancelled placed in the
  period before (as long as the period; ``report_baseline_days`` when no ``from`` was given);
- coupons issued in the period and, of them, those redeemed by an order not cancelled;
- new customers: customers whose first purchase ever (paid, not cancelled) is a promotion order;
- ``gross_margin`` = Σ lines (unit price before the promotion − cost) × quantity over the lines
  whose cost is known (the variant's, else the product's); ``incremental_margin`` =
  gross_margin − discount; ``roi`` = incremental_margin / discount.

Money is integer minor units; AOVs round half up to a minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    LedgerEntry,
    Promotion,
    PromotionClass,
    Redemption,
    RedemptionStatus,
)
from plugins.promotions.service import ledger
from server.models import Order, OrderLine, OrderStatus, Product, ProductVariant
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.services.attribution import MAX_PERIOD_DAYS, Period, period
from server.services.forecasts import day_start, shop_day, shop_day_sql
from server.services.insight_runs import dialect_of
from server.services.rfm import PURCHASE_STATUSES

# --- the period --------------------------------------------------------------------------------


def report_periods(
    first: date | None,
    last: date | None,
    *,
    starts_at: datetime | None,
    ends_at: datetime | None,
    created_at: datetime,
    today: date,
    baseline_days: int,
) -> tuple[Period, Period]:
    """The report's period and the period its AOV is compared with.

    Left out, ``first`` is the day the promotion (campaign) starts (or was created) and
    ``last`` the day it ends, today at the latest; a period so found longer than
    :data:`MAX_PERIOD_DAYS` keeps its last days. The baseline is the period of the same length
    just before, or the ``baseline_days`` before when ``first`` was left out."""
    if last is None:
        last = today if ends_at is None else min(shop_day(ends_at), today)
    if first is None:
        first = min(shop_day(starts_at or created_at), last)
        first = max(first, last - timedelta(days=MAX_PERIOD_DAYS - 1))
        days = baseline_days
    else:
        days = 0
    span = period(first, last)
    days = days or span.days
    return span, Period(first - timedelta(days=days), first - timedelta(days=1))


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A promotion's (a campaign's) figures over ``period``; money in minor units."""

    period: Period
    baseline: Period
    currency: str
    orders: int
    gmv: int
    discount: int
    baseline_orders: int
    baseline_gmv: int
    coupons_issued: int
    coupons_redeemed: int
    new_customers: int
    gross_margin: int
    # Σ unit price × quantity of the promotion orders' lines, and of those whose cost is known.
    line_revenue: int
    costed_revenue: int

    @property
    def aov(self) -> int | None:
        return half_up(self.gmv, self.orders)

    @property
    def baseline_aov(self) -> int | None:
        return half_up(self.baseline_gmv, self.baseline_orders)

    @property
    def aov_change(self) -> float | None:
        """aov / baseline_aov − 1 (exact figures, not the rounded ones)."""
        if not self.orders or not self.baseline_orders or not self.baseline_gmv:
            return None
        return (self.gmv / self.orders) / (self.baseline_gmv / self.baseline_orders) - 1

    @property
    def coupon_redemption_rate(self) -> float | None:
        return self.coupons_redeemed / self.coupons_issued if self.coupons_issued else None

    @property
    def cost_coverage(self) -> float | None:
        """The share of the lines' revenue whose cost is known (the margin's coverage)."""
        return self.costed_revenue / self.line_revenue if self.line_revenue else None

    @property
    def incremental_margin(self) -> int:
        return self.gross_margin - self.discount

    @property
    def roi(self) -> float | None:
        return self.incremental_margin / self.discount if self.discount else None


def half_up(total: int, count: int) -> int | None:
    """total / count rounded half up to a whole minor unit; None for no count."""
    return ledger.half_up(total, count) if count else None


def _not_cancelled_in(span: Period, currency: str) -> list[ColumnElement[bool]]:
    return [
        col(Order.status) != OrderStatus.CANCELLED,
        col(Order.placed_at) >= span.start,
        col(Order.placed_at) < span.end,
        col(Order.currency) == currency,
    ]


async def promotion_report(
    session: AsyncSession,
    promotion_id: int,
    first: date | None,
    last: date | None,
    *,
    baseline_days: int,
    today: date,
) -> Report | None:
    """The report of one promotion (None: no such promotion); ValidationFailed for a bad
    period."""
    promotion = await session.get(Promotion, promotion_id)
    if promotion is None:
        return None
    span, baseline = report_periods(
        first,
        last,
        starts_at=promotion.starts_at,
        ends_at=promotion.ends_at,
        created_at=promotion.created_at,
        today=today,
        baseline_days=baseline_days,
    )
    scope = select(col(Promotion.id)).where(col(Promotion.id) == promotion_id)
    return await _report(session, scope, span, baseline, promotion.currency)


async def campaign_report(
    session: AsyncSession,
    campaign_id: int,
    first: date | None,
    last: date | None,
    *,
    baseline_days: int,
    today: date,
) -> Report | None:
    """The report of a campaign: its promotions (those it holds now) taken together."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    span, baseline = report_periods(
        first,
        last,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        created_at=campaign.created_at,
        today=today,
        baseline_days=baseline_days,
    )
    scope = select(col(Promotion.id)).where(col(Promotion.campaign_id) == campaign_id)
    return await _report(session, scope, span, baseline, campaign.currency)


def _redeemed(scope: Select[Any]) -> list[ColumnElement[bool]]:
    return [
        col(Redemption.promotion_id).in_(scope),
        col(Redemption.status) == RedemptionStatus.RESERVED,
    ]


async def _report(
    session: AsyncSession, scope: Select[Any], span: Period, baseline: Period, currency: str
) -> Report:
    in_span = _not_cancelled_in(span, currency)
    promo_orders = (
        select(col(Redemption.order_id))
        .join(Order, col(Order.id) == col(Redemption.order_id))
        .where(*_redeemed(scope), *in_span)
        .distinct()
    )
    orders, gmv = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(Order.total_amount)), 0)).where(
                col(Order.id).in_(promo_orders)
            )
        )
    ).one()
    discount = await session.scalar(
        select(func.coalesce(func.sum(col(Redemption.amount)), 0))
        .join(Order, col(Order.id) == col(Redemption.order_id))
        .where(*_redeemed(scope), *in_span)
    )
    baseline_orders, baseline_gmv = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(Order.total_amount)), 0)).where(
                *_not_cancelled_in(baseline, currency)
            )
        )
    ).one()

    # The margin: the unit prices already hold the promotion's product discount (its ledger
    # rows), added back so that the discount is taken off once, as part of ``discount``.
    product_discount = (
        select(
            col(LedgerEntry.order_line_id).label("line_id"),
            func.sum(col(LedgerEntry.amount)).label("amount"),
        )
        .where(
            col(LedgerEntry.promotion_id).in_(scope),
            col(LedgerEntry.promotion_class) == PromotionClass.PRODUCT,
            col(LedgerEntry.order_id).in_(promo_orders),
        )
        .group_by(col(LedgerEntry.order_line_id))
        .subquery()
    )
    cost = func.coalesce(col(ProductVariant.cost_amount), col(Product.cost_amount))
    revenue = col(OrderLine.unit_price_amount) * col(OrderLine.quantity)
    costed = cost.is_not(None)
    margin_row = (
        await session.execute(
            select(
                func.coalesce(func.sum(revenue), 0),
                func.coalesce(func.sum(case((costed, revenue), else_=0)), 0),
                func.coalesce(
                    func.sum(
                        case(
                            (
                                costed,
                                revenue
                                - cost * col(OrderLine.quantity)
                                + func.coalesce(product_discount.c.amount, 0),
                            ),
                            else_=0,
                        )
                    ),
                    0,
                ),
            )
            .select_from(OrderLine)
            .join(Product, col(Product.id) == col(OrderLine.product_id))
            .outerjoin(ProductVariant, col(ProductVariant.id) == col(OrderLine.variant_id))
            .outerjoin(product_discount, product_discount.c.line_id == col(OrderLine.id))
            .where(col(OrderLine.order_id).in_(promo_orders))
        )
    ).one()
    line_revenue, costed_revenue, gross_margin = (int(v) for v in margin_row)

    used = exists().where(
        col(Redemption.code_id) == col(CouponCode.id),
        col(Redemption.status) == RedemptionStatus.RESERVED,
        col(Order.id) == col(Redemption.order_id),
        col(Order.status) != OrderStatus.CANCELLED,
    )
    issued, redeemed = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((used, 1), else_=0)), 0)).where(
                col(CouponCode.promotion_id).in_(scope),
                col(CouponCode.issued_at) >= span.start,
                col(CouponCode.issued_at) < span.end,
            )
        )
    ).one()

    new_customers = await session.scalar(
        select(func.count(func.distinct(col(Order.customer_id)))).where(
            col(Order.id).in_(promo_orders),
            col(Order.status).in_(PURCHASE_STATUSES),
            _first_purchase(),
        )
    )
    return Report(
        period=span,
        baseline=baseline,
        currency=currency,
        orders=int(orders),
        gmv=int(gmv),
        discount=int(discount or 0),
        baseline_orders=int(baseline_orders),
        baseline_gmv=int(baseline_gmv),
        coupons_issued=int(issued),
        coupons_redeemed=int(redeemed),
        new_customers=int(new_customers or 0),
        gross_margin=gross_margin,
        line_revenue=line_revenue,
        costed_revenue=costed_revenue,
    )


def _first_purchase() -> ColumnElement[bool]:
    """The order is its customer's first purchase ever: no purchase of theirs before it
    (ties broken by id)."""
    earlier = aliased(Order)
    return and_(
        col(Order.customer_id).is_not(None),
        ~exists().where(
            col(earlier.customer_id) == col(Order.customer_id),
            col(earlier.status).in_(PURCHASE_STATUSES),
            or_(
                col(earlier.placed_at) < col(Order.placed_at),
                and_(
                    col(earlier.placed_at) == col(Order.placed_at),
                    col(earlier.id) < col(Order.id),
                ),
            ),
        ),
    )


# --- KPIs --------------------------------------------------------------------------------------


def _as_date(value: Any) -> date:
    """A shop day as SQL answers it: a date on PostgreSQL, ``YYYY-MM-DD`` on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _span(buckets: Sequence[KpiBucket]) -> tuple[datetime, datetime]:
    return day_start(min(b.start for b in buckets)), day_start(max(b.end for b in buckets))


def _per_bucket(
    buckets: Sequence[KpiBucket], days: dict[date, tuple[int, int]]
) -> list[float | None]:
    """Per bucket: Σ numerators / Σ denominators of its days (None: nothing to share)."""
    out: list[float | None] = []
    for b in buckets:
        top = sum(n for day, (n, _) in days.items() if b.start <= day < b.end)
        bottom = sum(d for day, (_, d) in days.items() if b.start <= day < b.end)
        out.append(top / bottom if bottom else None)
    return out


def _promoted() -> ColumnElement[bool]:
    return exists().where(
        col(Redemption.order_id) == col(Order.id),
        col(Redemption.status) == RedemptionStatus.RESERVED,
    )


async def _orders_by_day(
    session: AsyncSession, buckets: Sequence[KpiBucket], numerator: Any, denominator: Any
) -> dict[date, tuple[int, int]]:
    """Per shop day of the purchases placed in the buckets: (Σ numerator, Σ denominator);
    ``denominator`` None: the purchases' count."""
    start, end = _span(buckets)
    day = shop_day_sql(col(Order.placed_at), dialect_of(session))
    rows = await session.execute(
        select(
            day,
            func.coalesce(func.sum(numerator), 0),
            func.count() if denominator is None else func.coalesce(func.sum(denominator), 0),
        )
        .where(
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) >= start,
            col(Order.placed_at) < end,
        )
        .group_by(day)
    )
    return {_as_date(d): (int(n), int(t)) for d, n, t in rows.all()}


async def discount_share(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: the promotions' discount on the purchases placed in it / their GMV."""
    if not buckets:
        return []
    given = (
        select(func.coalesce(func.sum(col(Redemption.amount)), 0))
        .where(
            col(Redemption.order_id) == col(Order.id),
            col(Redemption.status) == RedemptionStatus.RESERVED,
        )
        .scalar_subquery()
    )
    days = await _orders_by_day(session, buckets, given, col(Order.total_amount))
    return _per_bucket(buckets, days)


async def promoted_order_share(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """Per bucket: the share of the purchases placed in it with a promotion applied."""
    if not buckets:
        return []
    days = await _orders_by_day(session, buckets, case((_promoted(), 1), else_=0), None)
    return _per_bucket(buckets, days)


async def coupon_redemption_rate(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """Per bucket: of the coupon codes issued in it, the share redeemed since by an order not
    cancelled."""
    if not buckets:
        return []
    start, end = _span(buckets)
    used = exists().where(
        col(Redemption.code_id) == col(CouponCode.id),
        col(Redemption.status) == RedemptionStatus.RESERVED,
        col(Order.id) == col(Redemption.order_id),
        col(Order.status) != OrderStatus.CANCELLED,
    )
    day = shop_day_sql(col(CouponCode.issued_at), dialect_of(session))
    rows = await session.execute(
        select(day, func.coalesce(func.sum(case((used, 1), else_=0)), 0), func.count())
        .where(col(CouponCode.issued_at) >= start, col(CouponCode.issued_at) < end)
        .group_by(day)
    )
    return _per_bucket(buckets, {_as_date(d): (int(n), int(t)) for d, n, t in rows.all()})


def kpis() -> list[Kpi]:
    return [
        Kpi(
            "promotions.discount_share",
            "Promotion discount share of GMV",
            KpiUnit.RATIO,
            discount_share,
            description="The promotions' discounts on the purchases (paid orders not "
            "cancelled) placed in the period, over those purchases' GMV.",
            higher_is_better=False,
        ),
        Kpi(
            "promotions.coupon_redemption_rate",
            "Coupon redemption rate",
            KpiUnit.RATIO,
            coupon_redemption_rate,
            description="Of the coupon codes issued in the period, the share redeemed since "
            "by an order not cancelled.",
        ),
        Kpi(
            "promotions.promoted_order_share",
            "Orders with a promotion",
            KpiUnit.RATIO,
            promoted_order_share,
            description="The share of the purchases placed in the period that a promotion "
            "applied to.",
        ),
    ]
