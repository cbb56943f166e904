"""Clicks and conversions on recommendations, and what they add up to.

A client reports a click with the answer's recommendation id and the product clicked (once
per answer and product, however often it retries), and the order that followed with the
answer's id and the order's (the order must be the asking customer's, or the anonymous
session's the answer was served to). The figures count an answer, its clicks and its orders
on the shop day the answer was served:

- click-through = clicks / products shown;
- conversion = answers followed by an order / answers (per component: products shown that
  an order then held / products shown);
- revenue = what the orders paid for the recommended products they held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    Component,
    RecommendationClick,
    RecommendationContext,
    RecommendationConversion,
    RecommendationImpression,
)
from server.models import Order, OrderLine, utcnow
from server.plugin import Kpi, KpiBucket, KpiUnit, NotFound, ValidationFailed
from server.services.forecasts import day_start, shop_day_sql
from server.services.periods import FIRST_DAY, LAST_DAY, MAX_PERIOD_DAYS

RECOMMENDATION_ID_MAX = 32


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _insert(session: AsyncSession) -> Any:
    return sqlite.insert if _dialect(session) == "sqlite" else postgresql.insert


async def _impression(session: AsyncSession, recommendation_id: str) -> RecommendationImpression:
    rid = recommendation_id.strip()
    found = (
        await session.get(RecommendationImpression, rid)
        if 0 < len(rid) <= RECOMMENDATION_ID_MAX
        else None
    )
    if found is None:
        raise NotFound("Recommendation", rid, field="recommendationId")
    return found


# --- clicks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickRecorded:
    recommendation_id: str
    product_id: int
    component: Component
    position: int
    recorded: bool  # False: this click was reported before (nothing new was written)


async def record_click(
    session: AsyncSession, recommendation_id: str, product_id: int
) -> ClickRecorded:
    """Record a click on ``product_id`` in the answer ``recommendation_id``: once per answer
    and product (a repeat changes nothing). A product the answer did not show is NotFound."""
    impression = await _impression(session, recommendation_id)
    item = next((i for i in impression.items if i.get("product_id") == product_id), None)
    if item is None:
        raise NotFound("Product", product_id, field="productId")
    component = Component(item["component"])
    position = int(item["position"])
    result = await session.execute(
        _insert(session)(RecommendationClick)
        .values(
            impression_id=impression.id,
            product_id=product_id,
            component=component,
            position=position,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["impression_id", "product_id"])
        .returning(col(RecommendationClick.id))
    )
    recorded = result.first() is not None
    return ClickRecorded(impression.id, product_id, component, position, recorded)


# --- conversions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversionRecorded:
    recommendation_id: str
    order_id: int
    product_ids: tuple[int, ...]  # the recommended products the order holds
    revenue_amount: int  # what the order paid for them (minor units)
    currency: str
    recorded: bool  # False: this order was reported for this answer before


async def record_conversion(
    session: AsyncSession,
    recommendation_id: str,
    order_id: int,
    *,
    customer_id: int | None,
) -> ConversionRecorded:
    """Record that the order ``order_id`` followed the answer ``recommendation_id``.

    A customer reports their own orders, following answers served to them (or to them before
    they signed in); an anonymous visitor reports a guest order of the session the answer was
    served to. Anything else is NotFound, as a missing order or answer. Once per answer and
    order: a repeat answers what was recorded."""
    impression = await _impression(session, recommendation_id)
    if impression.customer_id is not None and impression.customer_id != customer_id:
        raise NotFound("Recommendation", impression.id, field="recommendationId")
    order = await session.get(Order, order_id)
    if customer_id is not None:
        mine = order is not None and order.customer_id == customer_id
    else:
        mine = (
            order is not None
            and order.customer_id is None
            and order.session_id is not None
            and order.session_id == impression.session_id
        )
    if order is None or not mine:
        raise NotFound("Order", order_id, field="orderId")
    if order.placed_at < impression.created_at:
        raise ValidationFailed(
            "the order was placed before the recommendation was shown", field="orderId"
        )
    shown = {int(i["product_id"]) for i in impression.items}
    lines = await session.execute(
        select(col(OrderLine.product_id), col(OrderLine.line_total_amount)).where(
            col(OrderLine.order_id) == order_id
        )
    )
    revenue: dict[int, int] = defaultdict(int)
    for pid, amount in lines:
        if pid in shown:
            revenue[pid] += int(amount)
    product_ids = sorted(revenue)
    result = await session.execute(
        _insert(session)(RecommendationConversion)
        .values(
            impression_id=impression.id,
            order_id=order_id,
            product_ids=product_ids,
            revenue_amount=sum(revenue.values()),
            currency=order.currency,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["impression_id", "order_id"])
        .returning(col(RecommendationConversion.id))
    )
    recorded = result.first() is not None
    if not recorded:
        existing = await session.scalar(
            select(RecommendationConversion).where(
                col(RecommendationConversion.impression_id) == impression.id,
                col(RecommendationConversion.order_id) == order_id,
            )
        )
        assert existing is not None
        return ConversionRecorded(
            impression.id,
            order_id,
            tuple(existing.product_ids),
            existing.revenue_amount,
            existing.currency,
            False,
        )
    return ConversionRecorded(
        impression.id, order_id, tuple(product_ids), sum(revenue.values()), order.currency, True
    )


# --- the figures -----------------------------------------------------------------------------


@dataclass
class Figures:
    """An answer set's figures: answers served, products shown, clicks on them, orders that
    followed (and the answers they followed), and the revenue of the recommended products
    those orders held."""

    answers: int = 0
    shown: int = 0
    clicks: int = 0
    orders: int = 0
    converted: int = 0
    revenue: int = 0

    @property
    def click_through(self) -> float | None:
        return self.clicks / self.shown if self.shown else None

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.answers if self.answers else None


@dataclass
class ComponentFigures:
    """One component's products: shown, clicked, and held by an order that followed."""

    shown: int = 0
    clicks: int = 0
    converted: int = 0

    @property
    def click_through(self) -> float | None:
        return self.clicks / self.shown if self.shown else None

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.shown if self.shown else None


@dataclass
class Performance:
    first: date
    last: date
    total: Figures
    by_context: dict[RecommendationContext, Figures] = field(default_factory=dict)
    by_blend: dict[str, Figures] = field(default_factory=dict)
    by_component: dict[Component, ComponentFigures] = field(default_factory=dict)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _day(session: AsyncSession) -> ColumnElement[Any]:
    return shop_day_sql(col(RecommendationImpression.created_at), _dialect(session)).label("day")


def _served_in(start: date, end: date) -> list[ColumnElement[bool]]:
    at = col(RecommendationImpression.created_at)
    return [at >= day_start(start), at < day_start(end)]


async def _answers(
    session: AsyncSession, start: date, end: date
) -> list[tuple[date, RecommendationContext, str, int]]:
    """(day, context, blend, answers) of the answers served on the days ``start`` to ``end``
    (excluded)."""
    t = RecommendationImpression
    day = _day(session)
    rows = await session.execute(
        select(day, col(t.context), col(t.blend), func.count())
        .where(*_served_in(start, end))
        .group_by(day, col(t.context), col(t.blend))
    )
    return [(_as_date(d), RecommendationContext(c), str(b), int(n)) for d, c, b, n in rows]


def _items(session: AsyncSession) -> tuple[Any, ColumnElement[Any]]:
    """The table of an impression's items, and an item's component, on this database."""
    items = col(RecommendationImpression.items)
    if _dialect(session) == "sqlite":
        each = func.json_each(items).table_valued("value")
        return each, func.json_extract(each.c.value, "$.component")
    each = func.json_array_elements(items).table_valued("value")
    return each, each.c.value.op("->>")("component")


async def _shown(
    session: AsyncSession, start: date, end: date
) -> list[tuple[date, RecommendationContext, str, Component, int]]:
    """(day, context, blend, component, products shown)."""
    t = RecommendationImpression
    day = _day(session)
    each, component = _items(session)
    component = component.label("component")
    rows = await session.execute(
        select(day, col(t.context), col(t.blend), component, func.count())
        .select_from(t)
        .join(each, true())
        .where(*_served_in(start, end))
        .group_by(day, col(t.context), col(t.blend), component)
    )
    return [
        (_as_date(d), RecommendationContext(c), str(b), Component(k), int(n))
        for d, c, b, k, n in rows
    ]


async def _clicks(
    session: AsyncSession, start: date, end: date
) -> list[tuple[date, RecommendationContext, str, Component, int]]:
    """(day the answer was served, context, blend, component, clicks)."""
    t = RecommendationImpression
    c = RecommendationClick
    day = _day(session)
    rows = await session.execute(
        select(day, col(t.context), col(t.blend), col(c.component), func.count())
        .select_from(c)
        .join(t, col(t.id) == c.impression_id)
        .where(*_served_in(start, end))
        .group_by(day, col(t.context), col(t.blend), col(c.component))
    )
    return [
        (_as_date(d), RecommendationContext(x), str(b), Component(k), int(n))
        for d, x, b, k, n in rows
    ]


@dataclass(frozen=True)
class _Conversion:
    day: date
    impression_id: str
    context: RecommendationContext
    blend: str
    components: tuple[Component, ...]  # of the recommended products the order held
    revenue: int


async def _conversions(session: AsyncSession, start: date, end: date) -> list[_Conversion]:
    """The orders that followed the answers served on those days (few: read as they are)."""
    t = RecommendationImpression
    v = RecommendationConversion
    day = _day(session)
    rows = await session.execute(
        select(
            day,
            col(t.id),
            col(t.context),
            col(t.blend),
            col(t.items),
            col(v.product_ids),
            col(v.revenue_amount),
        )
        .select_from(v)
        .join(t, col(t.id) == v.impression_id)
        .where(*_served_in(start, end))
    )
    out = []
    for d, rid, context, blend, items, product_ids, revenue in rows:
        component = {int(i["product_id"]): Component(i["component"]) for i in items}
        held = tuple(component[p] for p in product_ids if p in component)
        out.append(
            _Conversion(
                _as_date(d),
                str(rid),
                RecommendationContext(context),
                str(blend),
                held,
                int(revenue),
            )
        )
    return out


def check_period(first: date, last: date) -> None:
    """A period of shop days, both included, as the core's insights queries take it."""
    if first < FIRST_DAY:
        raise ValidationFailed(f"from must be {FIRST_DAY} or later", field="from")
    if last > LAST_DAY:
        raise ValidationFailed(f"to must be {LAST_DAY} or earlier", field="to")
    if last < first:
        raise ValidationFailed("to must not be before from", field="to")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(f"a period spans at most {MAX_PERIOD_DAYS} days", field="to")


async def performance(session: AsyncSession, first: date, last: date) -> Performance:
    """Click-through and conversion of the answers served on the shop days ``first`` to
    ``last`` (both included): in all, per context, per blend and per component. Four
    statements, whatever the period."""
    check_period(first, last)
    end = last + timedelta(days=1)
    report = Performance(first, last, Figures())

    def groups(context: RecommendationContext, blend: str) -> Iterable[Figures]:
        yield report.total
        yield report.by_context.setdefault(context, Figures())
        yield report.by_blend.setdefault(blend, Figures())

    for _, context, blend, n in await _answers(session, first, end):
        for f in groups(context, blend):
            f.answers += n
    for _, context, blend, component, n in await _shown(session, first, end):
        for f in groups(context, blend):
            f.shown += n
        report.by_component.setdefault(component, ComponentFigures()).shown += n
    for _, context, blend, component, n in await _clicks(session, first, end):
        for f in groups(context, blend):
            f.clicks += n
        report.by_component.setdefault(component, ComponentFigures()).clicks += n
    converted: set[str] = set()
    for conv in await _conversions(session, first, end):
        once = conv.impression_id not in converted
        converted.add(conv.impression_id)
        for f in groups(conv.context, conv.blend):
            f.orders += 1
            f.revenue += conv.revenue
        for component in conv.components:
            report.by_component.setdefault(component, ComponentFigures()).converted += 1
        if once:  # an answer two orders followed converted once
            for f in groups(conv.context, conv.blend):
                f.converted += 1
    return report


# --- KPIs ------------------------------------------------------------------------------------


def _span(buckets: Sequence[KpiBucket]) -> tuple[date, date]:
    return min(b.start for b in buckets), max(b.end for b in buckets)


def _per_bucket(buckets: Sequence[KpiBucket], by_day: Mapping[date, int]) -> list[int]:
    return [
        sum(n for day, n in by_day.items() if bucket.start <= day < bucket.end)
        for bucket in buckets
    ]


async def click_through(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: clicks / products shown, of the answers served in it."""
    if not buckets:
        return []
    start, end = _span(buckets)
    shown: dict[date, int] = defaultdict(int)
    for day, _, _, _, n in await _shown(session, start, end):
        shown[day] += n
    clicks: dict[date, int] = defaultdict(int)
    for day, _, _, _, n in await _clicks(session, start, end):
        clicks[day] += n
    return [
        c / s if s else None
        for c, s in zip(_per_bucket(buckets, clicks), _per_bucket(buckets, shown), strict=True)
    ]


async def conversion(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: answers followed by an order / answers, of the answers served in it."""
    if not buckets:
        return []
    start, end = _span(buckets)
    answers: dict[date, int] = defaultdict(int)
    for day, _, _, n in await _answers(session, start, end):
        answers[day] += n
    converted: dict[date, set[str]] = defaultdict(set)
    for conv in await _conversions(session, start, end):
        converted[conv.day].add(conv.impression_id)
    counts = {day: len(ids) for day, ids in converted.items()}
    return [
        c / a if a else None
        for c, a in zip(_per_bucket(buckets, counts), _per_bucket(buckets, answers), strict=True)
    ]


def recommendation_kpis() -> list[Kpi]:
    return [
        Kpi(
            "recommendation.click_through",
            "Recommendation click-through",
            KpiUnit.RATIO,
            click_through,
            description="Clicks on recommended products / recommended products shown, of the "
            "answers served in the period.",
        ),
        Kpi(
            "recommendation.conversion",
            "Recommendation conversion",
            KpiUnit.RATIO,
            conversion,
            description="Answers followed by an order the shopper reported / answers served "
            "in the period.",
        ),
    ]
