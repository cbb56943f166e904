"""Attribution: which channels (and which promotions) the shop's paid orders are owed to, what
each channel cost, its ROI and its cost of acquiring a customer; and the channel KPIs.

- **Paid orders** of a period are purchases (:data:`server.services.rfm.PURCHASE_STATUSES`:
  paid, not cancelled) in the shop's currency placed on its shop days (UTC+8,
  :func:`server.services.forecasts.shop_day`), a guest's included. Their revenue is their GMV:
  the orders' totals.
- **The touches** of an order are its visitor's events carrying a channel (the customer's;
  a guest's: the session's the order was placed with) in the ``lookback`` before it was
  placed, oldest first, then the order's own channel as the last touch; consecutive touches of
  one channel are one touch (a visit reports its channel on several events; an order that took
  its channel from the latest touch is that touch).
- **The models**: FIRST_TOUCH credits the whole order to the first touch, LAST_TOUCH to the
  last, LINEAR an equal share to each. An order without any touch is credited to no channel
  (the report's unattributed row, channel None): it is not ORGANIC, which is a channel a
  client said.
- Per channel: orders and revenue credited, the marketing cost of its days in the period,
  ROI = (revenue - cost) / cost, new customers (customers whose first purchase ever is in the
  period, credited by the same rule) and CAC = cost / new customers.

The report reads three statements whatever the number of orders: the paid orders (with
whether each is its customer's first purchase), every touch of their visitors in the period
and its lookback, and the costs per channel; the crediting is done in Python.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from server.hooktypes import Kpi, KpiBucket, KpiUnit
from server.models import CustomerEvent, MarketingCost, Order, OrderLine, SalesChannel
from server.services.channels import CHANNEL_LABELS, DEFAULT_LOOKBACK, PRIVATE_DOMAIN
from server.services.errors import ValidationFailed
from server.services.forecasts import day_start, shop_day_sql
from server.services.insight_runs import dialect_of
from server.services.pricing import GUARDRAIL_KEY
from server.services.rfm import PURCHASE_STATUSES

MAX_PERIOD_DAYS = 366
UNATTRIBUTED_LABEL = "直接/未知 Direct / unknown"


class AttributionModel(StrEnum):
    FIRST_TOUCH = "FIRST_TOUCH"
    LAST_TOUCH = "LAST_TOUCH"
    LINEAR = "LINEAR"


# --- the period -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The shop days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        """The first moment of ``first`` (UTC)."""
        return day_start(self.first)

    @property
    def end(self) -> datetime:
        """The first moment after ``last`` (UTC)."""
        return day_start(self.last + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def period(first: date, last: date) -> Period:
    """The shop days ``first`` to ``last`` (both included), at most :data:`MAX_PERIOD_DAYS`."""
    if first > last:
        raise ValidationFailed("from must be on or before to", field="from")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(f"a period spans at most {MAX_PERIOD_DAYS} days", field="from")
    return Period(first, last)


def _paid_in(start: datetime, end: datetime, currency: str | None) -> list[ColumnElement[bool]]:
    conditions = [
        col(Order.status).in_(PURCHASE_STATUSES),
        col(Order.placed_at) >= start,
        col(Order.placed_at) < end,
    ]
    if currency is not None:
        conditions.append(col(Order.currency) == currency)
    return conditions


def _first_purchase() -> ColumnElement[bool]:
    """Whether the order is its customer's first purchase (of any currency): no purchase of
    theirs was placed before it (ties broken by id)."""
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


# --- crediting ----------------------------------------------------------------------------------


def touch_path(
    touches: Sequence[SalesChannel], order_channel: SalesChannel | None
) -> list[SalesChannel]:
    """The touches of an order, oldest first, its own channel last, with consecutive touches
    of one channel made one."""
    path: list[SalesChannel] = []
    for channel in [*touches, *([order_channel] if order_channel is not None else [])]:
        if not path or path[-1] is not channel:
            path.append(channel)
    return path


def credit(
    path: Sequence[SalesChannel], model: AttributionModel
) -> dict[SalesChannel | None, float]:
    """Each channel's share of an order (the shares add up to 1); an order without touches
    is the unattributed row's (None)."""
    if not path:
        return {None: 1.0}
    if model is AttributionModel.FIRST_TOUCH:
        return {path[0]: 1.0}
    if model is AttributionModel.LAST_TOUCH:
        return {path[-1]: 1.0}
    shares: dict[SalesChannel | None, float] = defaultdict(float)
    for channel in path:
        shares[channel] += 1 / len(path)
    return dict(shares)


@dataclass(frozen=True)
class ChannelFigures:
    """One channel's part of a period (channel None: the orders no touch explains). Orders,
    revenue and new customers are credited shares (fractions under LINEAR); revenue and cost
    are minor units."""

    channel: SalesChannel | None
    orders: float
    revenue: float
    cost: int
    new_customers: float

    @property
    def label(self) -> str:
        return CHANNEL_LABELS[self.channel] if self.channel is not None else UNATTRIBUTED_LABEL

    @property
    def private_domain(self) -> bool:
        return self.channel in PRIVATE_DOMAIN

    @property
    def roi(self) -> float | None:
        """(revenue - cost) / cost; None without a cost."""
        return (self.revenue - self.cost) / self.cost if self.cost else None

    @property
    def cac(self) -> float | None:
        """Cost per new customer (minor units): 0 for a channel that cost nothing; None
        without a new customer, and for the unattributed row, which has no cost to share."""
        if self.new_customers <= 0 or (self.channel is None and not self.cost):
            return None
        return self.cost / self.new_customers


@dataclass(frozen=True)
class AttributionReport:
    period: Period
    model: AttributionModel
    lookback_days: int
    currency: str
    # Every channel in the enum's order, then the unattributed row.
    channels: list[ChannelFigures]
    # The whole period: paid orders, their revenue, every channel's cost, new customers.
    totals: ChannelFigures

    def of(self, channel: SalesChannel | None) -> ChannelFigures:
        return next(c for c in self.channels if c.channel is channel)


@dataclass(frozen=True)
class _PaidOrder:
    id: int
    customer_id: int | None
    session_id: str | None
    channel: SalesChannel | None
    placed_at: datetime
    total: int
    first: bool

    @property
    def visitor(self) -> tuple[str, Any] | None:
        if self.customer_id is not None:
            return ("c", self.customer_id)
        if self.session_id:
            return ("s", self.session_id)
        return None


async def _paid_orders(session: AsyncSession, in_period: Period, currency: str) -> list[_PaidOrder]:
    stmt = select(
        col(Order.id),
        col(Order.customer_id),
        col(Order.session_id),
        col(Order.channel),
        col(Order.placed_at),
        col(Order.total_amount),
        _first_purchase().label("first"),
    ).where(*_paid_in(in_period.start, in_period.end, currency))
    return [
        _PaidOrder(
            id=row.id,
            customer_id=row.customer_id,
            session_id=row.session_id,
            channel=row.channel,
            placed_at=row.placed_at,
            total=int(row.total_amount),
            first=bool(row.first),
        )
        for row in (await session.execute(stmt)).all()
    ]


async def _touches(
    session: AsyncSession, in_period: Period, currency: str, lookback: timedelta
) -> dict[tuple[str, Any], tuple[list[datetime], list[SalesChannel]]]:
    """Every touch of the period's buyers (and guests' sessions) from ``lookback`` before
    its start to its end, by visitor, in time order: one statement."""
    paid = _paid_in(in_period.start, in_period.end, currency)
    buyers = select(col(Order.customer_id)).where(*paid, col(Order.customer_id).is_not(None))
    guests = select(col(Order.session_id)).where(
        *paid, col(Order.customer_id).is_(None), col(Order.session_id).is_not(None)
    )
    stmt = (
        select(
            col(CustomerEvent.customer_id),
            col(CustomerEvent.session_id),
            col(CustomerEvent.channel),
            col(CustomerEvent.occurred_at),
        )
        .where(
            col(CustomerEvent.channel).is_not(None),
            col(CustomerEvent.occurred_at) >= in_period.start - lookback,
            col(CustomerEvent.occurred_at) < in_period.end,
            or_(
                col(CustomerEvent.customer_id).in_(buyers),
                and_(
                    col(CustomerEvent.customer_id).is_(None),
                    col(CustomerEvent.session_id).in_(guests),
                ),
            ),
        )
        .order_by(col(CustomerEvent.occurred_at), col(CustomerEvent.id))
    )
    found: dict[tuple[str, Any], tuple[list[datetime], list[SalesChannel]]] = {}
    for row in (await session.execute(stmt)).all():
        key = ("c", row.customer_id) if row.customer_id is not None else ("s", row.session_id)
        times, channels = found.setdefault(key, ([], []))
        times.append(row.occurred_at)
        channels.append(row.channel)
    return found


async def costs_by_channel(
    session: AsyncSession, in_period: Period, currency: str
) -> dict[SalesChannel, int]:
    """The marketing costs of the period's days per channel (minor units of ``currency``)."""
    stmt = (
        select(col(MarketingCost.channel), func.sum(col(MarketingCost.amount)))
        .where(
            col(MarketingCost.day) >= in_period.first,
            col(MarketingCost.day) <= in_period.last,
            col(MarketingCost.currency) == currency,
        )
        .group_by(col(MarketingCost.channel))
    )
    return {channel: int(total or 0) for channel, total in (await session.execute(stmt)).all()}


async def channel_attribution(
    session: AsyncSession,
    in_period: Period,
    model: AttributionModel,
    *,
    currency: str,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> AttributionReport:
    """Each channel's credited orders, revenue, cost, ROI, new customers and CAC over the
    period, by ``model`` (see the module's docstring); three statements."""
    orders = await _paid_orders(session, in_period, currency)
    touches = await _touches(session, in_period, currency, lookback)
    costs = await costs_by_channel(session, in_period, currency)
    credited_orders: dict[SalesChannel | None, float] = defaultdict(float)
    revenue: dict[SalesChannel | None, float] = defaultdict(float)
    new: dict[SalesChannel | None, float] = defaultdict(float)
    for order in orders:
        visitor = order.visitor
        seen: list[SalesChannel] = []
        if visitor is not None and visitor in touches:
            times, channels = touches[visitor]
            low = bisect.bisect_left(times, order.placed_at - lookback)
            high = bisect.bisect_right(times, order.placed_at)
            seen = channels[low:high]
        for channel, share in credit(touch_path(seen, order.channel), model).items():
            credited_orders[channel] += share
            revenue[channel] += share * order.total
            if order.first:
                new[channel] += share
    rows = [
        ChannelFigures(
            channel=channel,
            orders=credited_orders[channel],
            revenue=revenue[channel],
            cost=costs.get(channel, 0) if channel is not None else 0,
            new_customers=new[channel],
        )
        for channel in [*SalesChannel, None]
    ]
    totals = ChannelFigures(
        channel=None,
        orders=float(len(orders)),
        revenue=float(sum(o.total for o in orders)),
        cost=sum(costs.values()),
        new_customers=float(sum(1 for o in orders if o.first)),
    )
    return AttributionReport(
        period=in_period,
        model=model,
        lookback_days=lookback.days,
        currency=currency,
        channels=rows,
        totals=totals,
    )


# --- promotions ---------------------------------------------------------------------------------


@dataclass
class PromotionFigures:
    """One promotion (a plugin's ``source`` and its ``rule``) over a period: the paid orders
    that got a discount from it, their revenue (GMV), and the discount it gave (minor units)."""

    source: str
    rule: str
    label: str
    orders: int = 0
    revenue: int = 0
    discount: int = 0

    @property
    def revenue_per_discount(self) -> float | None:
        return self.revenue / self.discount if self.discount else None


@dataclass(frozen=True)
class PromotionReport:
    period: Period
    currency: str
    # Most discount given first.
    promotions: list[PromotionFigures]
    orders: int  # every paid order of the period
    revenue: int
    promoted_orders: int  # those with a discount from any promotion
    promoted_revenue: int
    discount: int


def _discounts(adjustments: Any, quantity: int = 1) -> list[tuple[str, str, str, int]]:
    """(source, rule, label, discount) of each discount among stored adjustments: a negative
    amount, per unit for a line (times ``quantity``); guardrail clamps are not promotions."""
    found: list[tuple[str, str, str, int]] = []
    for step in adjustments or ():
        if not isinstance(step, Mapping) or step.get(GUARDRAIL_KEY):
            continue
        amount = int(step.get("amount") or 0)
        if amount < 0:
            found.append(
                (
                    str(step.get("source") or ""),
                    str(step.get("rule") or ""),
                    str(step.get("label") or ""),
                    -amount * quantity,
                )
            )
    return found


async def promotion_attribution(
    session: AsyncSession, in_period: Period, *, currency: str
) -> PromotionReport:
    """Per promotion found in the adjustments of the period's paid orders (order-level) and
    of their lines (per unit): orders, their revenue, the discount given and revenue per unit
    of discount. Three statements: the period's totals, the orders with order adjustments,
    the lines with unit adjustments."""
    paid = _paid_in(in_period.start, in_period.end, currency)
    totals = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(Order.total_amount)), 0)).where(*paid)
        )
    ).one()
    with_order_adjustments = select(
        col(Order.id), col(Order.total_amount), col(Order.adjustments)
    ).where(*paid, func.json_array_length(col(Order.adjustments)) > 0)
    with_line_adjustments = (
        select(
            col(OrderLine.order_id),
            col(Order.total_amount),
            col(OrderLine.quantity),
            col(OrderLine.adjustments),
        )
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(*paid, func.json_array_length(col(OrderLine.adjustments)) > 0)
    )
    figures: dict[tuple[str, str], PromotionFigures] = {}
    orders_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    order_totals: dict[int, int] = {}
    discount_total = 0

    def add(order_id: int, total: int, found: list[tuple[str, str, str, int]]) -> None:
        nonlocal discount_total
        for source, rule, label, discount in found:
            key = (source, rule)
            promo = figures.setdefault(key, PromotionFigures(source, rule, label))
            promo.label = promo.label or label
            promo.discount += discount
            orders_of[key].add(order_id)
            order_totals[order_id] = total
            discount_total += discount

    for order_id, total, adjustments in (await session.execute(with_order_adjustments)).all():
        add(order_id, int(total), _discounts(adjustments))
    for order_id, total, quantity, adjustments in (
        await session.execute(with_line_adjustments)
    ).all():
        add(order_id, int(total), _discounts(adjustments, int(quantity)))
    for key, promo in figures.items():
        promo.orders = len(orders_of[key])
        promo.revenue = sum(order_totals[i] for i in orders_of[key])
    return PromotionReport(
        period=in_period,
        currency=currency,
        promotions=sorted(figures.values(), key=lambda p: (-p.discount, p.source, p.rule)),
        orders=int(totals[0]),
        revenue=int(totals[1]),
        promoted_orders=len(order_totals),
        promoted_revenue=sum(order_totals.values()),
        discount=discount_total,
    )


# --- KPIs ---------------------------------------------------------------------------------------


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _span(buckets: Sequence[KpiBucket]) -> tuple[date, date]:
    return min(b.start for b in buckets), max(b.end for b in buckets)


def _per_bucket(buckets: Sequence[KpiBucket], by_day: Mapping[date, float]) -> list[float]:
    return [
        sum(value for day, value in by_day.items() if bucket.start <= day < bucket.end)
        for bucket in buckets
    ]


async def _gmv_by_day(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> tuple[dict[date, float], dict[date, float]]:
    """Paid GMV per shop day, and the part of it from private-domain orders: one statement."""
    first, end = _span(buckets)
    day = shop_day_sql(col(Order.placed_at), dialect_of(session)).label("day")
    private = case(
        (col(Order.channel).in_(sorted(PRIVATE_DOMAIN)), col(Order.total_amount)), else_=0
    )
    stmt = (
        select(day, func.sum(col(Order.total_amount)), func.sum(private))
        .where(*_paid_in(day_start(first), day_start(end), None))
        .group_by(day)
    )
    total: dict[date, float] = {}
    private_part: dict[date, float] = {}
    for value, gmv, own in (await session.execute(stmt)).all():
        total[_as_date(value)] = float(gmv or 0)
        private_part[_as_date(value)] = float(own or 0)
    return total, private_part


async def _cost_by_day(session: AsyncSession, buckets: Sequence[KpiBucket]) -> dict[date, float]:
    first, end = _span(buckets)
    stmt = (
        select(col(MarketingCost.day), func.sum(col(MarketingCost.amount)))
        .where(col(MarketingCost.day) >= first, col(MarketingCost.day) < end)
        .group_by(col(MarketingCost.day))
    )
    return {_as_date(d): float(a or 0) for d, a in (await session.execute(stmt)).all()}


async def _new_customers_by_day(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> dict[date, float]:
    """Customers whose first purchase was placed on each shop day: one statement."""
    first, end = _span(buckets)
    day = shop_day_sql(col(Order.placed_at), dialect_of(session)).label("day")
    stmt = (
        select(day, func.count())
        .where(*_paid_in(day_start(first), day_start(end), None), _first_purchase())
        .group_by(day)
    )
    return {_as_date(d): float(n) for d, n in (await session.execute(stmt)).all()}


async def private_domain_share(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    if not buckets:
        return []
    total, private_part = await _gmv_by_day(session, buckets)
    gmv = _per_bucket(buckets, total)
    own = _per_bucket(buckets, private_part)
    return [o / g if g else None for o, g in zip(own, gmv, strict=True)]


async def marketing_cost(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    if not buckets:
        return []
    return list(_per_bucket(buckets, await _cost_by_day(session, buckets)))


async def cac(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    if not buckets:
        return []
    cost = _per_bucket(buckets, await _cost_by_day(session, buckets))
    new = _per_bucket(buckets, await _new_customers_by_day(session, buckets))
    return [c / n if n else None for c, n in zip(cost, new, strict=True)]


def channel_kpis() -> list[Kpi]:
    """The channel KPIs the core offers through the ``kpis`` hook."""
    return [
        Kpi(
            "private_domain_share",
            "Private-domain share of GMV",
            KpiUnit.RATIO,
            private_domain_share,
            description="The share of paid GMV from orders whose channel is the shop's private "
            "domain (MINI_PROGRAM, COMMUNITY_GROUP).",
        ),
        Kpi(
            "marketing_cost",
            "Marketing cost",
            KpiUnit.MONEY,
            marketing_cost,
            description="What the imported marketing costs of the period's days add up to.",
            higher_is_better=False,
        ),
        Kpi(
            "cac",
            "Customer acquisition cost",
            KpiUnit.MONEY,
            cac,
            description="Marketing cost per new customer (a customer whose first purchase is "
            "in the period); none without a new customer.",
            higher_is_better=False,
        ),
    ]
