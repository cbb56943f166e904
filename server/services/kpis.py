"""The shop's KPIs: the core's own (:func:`core_kpis`, offered through the ``kpis`` hook like
every plugin's), the KPI query over a period against the period before and the same dates a
year earlier (:func:`shop_kpis`), the shopping funnel and the monthly cohort retention.

Every core KPI is computed from the aggregates of server/services/kpi_aggregates.py, never from
the orders or events themselves; the definitions are in docs/insights.md ("KPIs").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.hooktypes import Kpi, KpiBucket, KpiUnit
from server.models import KpiPeriod
from server.services import kpi_aggregates as agg
from server.services import periods
from server.services.errors import ValidationFailed
from server.services.kpi_aggregates import Figures
from server.services.periods import Granularity

MAX_KEYS = 100
MAX_KEY_LENGTH = 100
MAX_COHORT_MONTHS = 36
# The earliest and latest days a period may touch (its comparisons included).
EARLIEST = date(1971, 1, 1)
LATEST = date(9000, 1, 1)


# The longest period per granularity, in days: 400 days by day, five years by week or month.
MAX_DAYS: Mapping[Granularity, int] = {
    Granularity.DAY: 400,
    Granularity.WEEK: 5 * 366,
    Granularity.MONTH: 5 * 366,
}
FUNNEL_MAX_DAYS = 5 * 366


# ---------------------------------------------------------------------------------------------
# The core's KPIs


def ratio(numerator: int, denominator: int) -> float | None:
    """A share, or None when there is nothing to share out."""
    return numerator / denominator if denominator else None


_CACHE = "shopgraph.kpi_figures"


async def cached_figures(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[Figures]:
    """The figures of ``buckets``, read once per transaction: the core's KPIs of one query
    share them (each KPI's compute asks for the same buckets)."""
    transaction = session.get_transaction()
    held: tuple[Any, dict[tuple[tuple[date, date], ...], list[Figures]]] | None
    held = session.info.get(_CACHE)
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_CACHE] = held
    key = tuple((b.start, b.end) for b in buckets)
    found: list[Figures] | None = held[1].get(key)
    if found is None:
        found = await agg.figures(session, key)
        held[1][key] = found
    return found


Compute = Callable[[AsyncSession, Sequence[KpiBucket]], Awaitable[Sequence[float | None]]]


def _from_figures(value: Callable[[Figures], float | None]) -> Compute:
    async def compute(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        today = agg.today()
        found = await cached_figures(session, buckets)
        # A period that has not begun has no figures yet.
        return [None if b.start > today else value(f) for b, f in zip(buckets, found, strict=True)]

    return compute


def _kpi(
    key: str,
    label: str,
    unit: KpiUnit,
    value: Callable[[Figures], float | None],
    description: str,
    *,
    higher_is_better: bool = True,
) -> Kpi:
    return Kpi(
        key,
        label,
        unit,
        _from_figures(value),
        description=description,
        higher_is_better=higher_is_better,
    )


def core_kpis() -> list[Kpi]:
    """The core's KPIs, in the order the dashboard shows them."""
    money, count, share = KpiUnit.MONEY, KpiUnit.COUNT, KpiUnit.RATIO
    return [
        _kpi(
            "gmv",
            "GMV",
            money,
            lambda f: f.gmv,
            "Totals of the purchases (paid orders not cancelled) placed in the period.",
        ),
        _kpi(
            "orders",
            "Orders",
            count,
            lambda f: f.purchases,
            "Purchases (paid orders not cancelled) placed in the period.",
        ),
        _kpi(
            "aov",
            "Average order value",
            money,
            lambda f: ratio(f.gmv, f.purchases),
            "GMV / orders.",
        ),
        _kpi(
            "paying_customers",
            "Paying customers",
            count,
            lambda f: f.paying_customers,
            "Distinct customers with a purchase in the period.",
        ),
        _kpi(
            "new_customers",
            "New customers",
            count,
            lambda f: f.new_customers,
            "Customers whose first purchase ever was placed in the period.",
        ),
        _kpi(
            "returning_customers",
            "Returning customers",
            count,
            lambda f: f.paying_customers - f.new_customers,
            "Paying customers of the period who had bought before it.",
        ),
        _kpi(
            "visitors",
            "Visitors",
            count,
            lambda f: f.visitors,
            "Distinct customers and anonymous sessions with any behaviour event.",
        ),
        _kpi(
            "bounce_rate",
            "Bounce rate",
            share,
            lambda f: ratio(f.bounced_visits, f.visits),
            "Visits (a visitor's events on one shop day) of a single event / visits.",
            higher_is_better=False,
        ),
        _kpi(
            "view_to_cart_rate",
            "View to cart",
            share,
            lambda f: ratio(f.view_cart, f.viewers),
            "Visitors who viewed and added to cart / visitors who viewed.",
        ),
        _kpi(
            "cart_to_order_rate",
            "Cart to order",
            share,
            lambda f: ratio(f.view_cart_order, f.view_cart),
            "Visitors who viewed, added to cart and ordered / those who viewed and added.",
        ),
        _kpi(
            "order_to_paid_rate",
            "Order to paid",
            share,
            lambda f: ratio(f.view_cart_order_paid, f.view_cart_order),
            "Visitors who viewed, added, ordered and paid / those who viewed, added and ordered.",
        ),
        _kpi(
            "conversion_rate",
            "Conversion rate",
            share,
            lambda f: ratio(f.payers, f.visitors),
            "Visitors who placed an order that was paid / visitors.",
        ),
        _kpi(
            "cart_abandonment_rate",
            "Cart abandonment",
            share,
            lambda f: ratio(f.carters - f.cart_order, f.carters),
            "Visitors who added to cart and placed no order / visitors who added to cart.",
            higher_is_better=False,
        ),
        _kpi(
            "zero_result_search_rate",
            "Searches without results",
            share,
            lambda f: ratio(f.zero_result_searches, f.searches),
            "Searches that reported 0 results / searches.",
            higher_is_better=False,
        ),
        _kpi(
            "repurchase_rate",
            "Repurchase rate",
            share,
            lambda f: ratio(f.paying_customers - f.new_customers, f.paying_customers),
            "Returning customers / paying customers.",
        ),
        _kpi(
            "refund_rate",
            "Refund rate",
            share,
            lambda f: ratio(f.refunded_orders, f.paid_orders),
            "Paid orders with a refunded payment / paid orders placed in the period.",
            higher_is_better=False,
        ),
        _kpi(
            "return_rate",
            "Return rate",
            share,
            lambda f: ratio(f.returned_orders, f.paid_orders),
            "Paid orders refunded after they were shipped / paid orders placed in the period.",
            higher_is_better=False,
        ),
        _kpi(
            "payment_success_rate",
            "Payment success rate",
            share,
            lambda f: ratio(f.payment_successes, f.payment_attempts),
            "Payment attempts authorised or captured / attempts with an outcome.",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Periods, buckets and comparisons


def year_earlier(day: date, years: int = 1) -> date:
    """The same date ``years`` earlier (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _plus_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def buckets(start: date, end: date, granularity: Granularity) -> list[KpiBucket]:
    """The points of the days ``start`` to ``end`` (exclusive): :func:`periods.buckets`."""
    return periods.buckets(start, end - timedelta(days=1), granularity)


def _whole_months(start: date, end: date) -> int | None:
    if start.day == 1 and end.day == 1:
        return (end.year - start.year) * 12 + end.month - start.month
    return None


def previous_shift(start: date, end: date, granularity: Granularity) -> Callable[[date], date]:
    """How a day of the period maps into the period just before of equal length: back by the
    period's days, or, for whole calendar months by month, back by as many months."""
    months = _whole_months(start, end)
    if granularity is Granularity.MONTH and months is not None:
        return lambda day: _plus_months(day, -months) if day.day == 1 else day - (end - start)
    length = end - start
    return lambda day: day - length


def shifted(bucket: KpiBucket, shift: Callable[[date], date]) -> KpiBucket:
    return KpiBucket(shift(bucket.start), shift(bucket.end))


@dataclass(frozen=True)
class Period:
    start: date
    end: date


@dataclass(frozen=True)
class Point:
    start: date
    end: date
    value: float | None
    previous: float | None
    last_year: float | None


def change(now: float | None, before: float | None) -> float | None:
    """now / before − 1 (None when either is unknown or before is 0)."""
    if now is None or before is None or before == 0:
        return None
    return now / before - 1


@dataclass(frozen=True)
class Series:
    kpi: Kpi
    total: float | None
    previous_total: float | None
    last_year_total: float | None
    points: list[Point]

    @property
    def change(self) -> float | None:
        return change(self.total, self.previous_total)

    @property
    def last_year_change(self) -> float | None:
        return change(self.total, self.last_year_total)


@dataclass(frozen=True)
class KpiReport:
    period: Period
    granularity: Granularity
    previous: Period
    last_year: Period
    refreshed_at: datetime | None
    series: list[Series]


def _check_period(start: date, end: date, longest: int) -> None:
    if start >= end:
        raise ValidationFailed("from must be before to", field="from")
    if start < EARLIEST or end > LATEST:
        raise ValidationFailed(f"a period lies between {EARLIEST} and {LATEST}", field="from")
    if (end - start).days > longest:
        raise ValidationFailed(f"this period spans at most {longest} days", field="to")


def select_kpis(registry: Mapping[str, Kpi], keys: Sequence[str] | None) -> list[Kpi]:
    """The KPIs named (every one when ``keys`` is None), in the order named."""
    if keys is None:
        return list(registry.values())
    if len(keys) > MAX_KEYS:
        raise ValidationFailed(f"at most {MAX_KEYS} keys", field="keys")
    chosen: dict[str, Kpi] = {}
    for key in keys:
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed(f"a key has at most {MAX_KEY_LENGTH} characters", field="keys")
        kpi = registry.get(key)
        if kpi is None:
            raise ValidationFailed(f"no KPI has the key {key!r}", field="keys")
        chosen[key] = kpi
    return list(chosen.values())


async def _series_values(
    session: AsyncSession, kpi: Kpi, points: Sequence[KpiBucket], whole: KpiBucket
) -> tuple[list[float | None], float | None]:
    """One compute call: the points, and the whole period as a last bucket."""
    values = list(await kpi.compute(session, [*points, whole]))
    if len(values) != len(points) + 1:
        raise RuntimeError(
            f"KPI {kpi.key!r} returned {len(values)} values for {len(points) + 1} buckets"
        )
    return [None if v is None else float(v) for v in values[:-1]], (
        None if values[-1] is None else float(values[-1])
    )


async def shop_kpis(
    session: AsyncSession,
    registry: Mapping[str, Kpi],
    start: date,
    end: date,
    granularity: Granularity = Granularity.DAY,
    keys: Sequence[str] | None = None,
) -> KpiReport:
    """Each KPI of ``keys`` (all by default) over the days ``start`` to ``end`` (exclusive),
    per bucket of ``granularity``, with the period just before and the same dates a year
    earlier. Each KPI's compute runs once per series (the period, the previous one, last
    year), with the whole period as the last bucket."""
    _check_period(start, end, MAX_DAYS[granularity])
    chosen = select_kpis(registry, keys)
    points = buckets(start, end, granularity)
    whole = KpiBucket(start, end)
    back = previous_shift(start, end, granularity)
    previous = [shifted(b, back) for b in points]
    year = [shifted(b, year_earlier) for b in points]
    whole_previous, whole_year = shifted(whole, back), shifted(whole, year_earlier)
    if whole_year.start < EARLIEST or whole_previous.start < EARLIEST:
        raise ValidationFailed(f"a period lies between {EARLIEST} and {LATEST}", field="from")
    series: list[Series] = []
    for kpi in chosen:
        now, total = await _series_values(session, kpi, points, whole)
        before, previous_total = await _series_values(session, kpi, previous, whole_previous)
        ago, year_total = await _series_values(session, kpi, year, whole_year)
        series.append(
            Series(
                kpi=kpi,
                total=total,
                previous_total=previous_total,
                last_year_total=year_total,
                points=[
                    Point(b.start, b.end, v, p, y)
                    for b, v, p, y in zip(points, now, before, ago, strict=True)
                ],
            )
        )
    mark = await agg.watermark(session)
    return KpiReport(
        period=Period(start, end),
        granularity=granularity,
        previous=Period(whole_previous.start, whole_previous.end),
        last_year=Period(whole_year.start, whole_year.end),
        refreshed_at=None if mark is None else agg.insight_runs.utc(mark.refreshed_at),
        series=series,
    )


# ---------------------------------------------------------------------------------------------
# The shopping funnel


class FunnelStepKind(StrEnum):
    VIEW = "VIEW"
    ADD_TO_CART = "ADD_TO_CART"
    ORDER = "ORDER"
    PAID = "PAID"


@dataclass(frozen=True)
class FunnelStep:
    step: FunnelStepKind
    visitors: int
    # This step's visitors / the step before's (None for the first, or when it had none).
    step_rate: float | None
    # This step's visitors / the first step's.
    overall_rate: float | None


@dataclass(frozen=True)
class Funnel:
    period: Period
    visitors: int
    steps: list[FunnelStep]

    @property
    def conversion_rate(self) -> float | None:
        """The last step's visitors / the first step's."""
        return self.steps[-1].overall_rate


async def shopping_funnel(session: AsyncSession, start: date, end: date) -> Funnel:
    """The closed funnel of the days ``start`` to ``end`` (exclusive): each step counts the
    visitors who did it and every step before it in the period."""
    _check_period(start, end, FUNNEL_MAX_DAYS)
    (f,) = await agg.figures(session, [(start, end)])
    counts = [
        (FunnelStepKind.VIEW, f.viewers),
        (FunnelStepKind.ADD_TO_CART, f.view_cart),
        (FunnelStepKind.ORDER, f.view_cart_order),
        (FunnelStepKind.PAID, f.view_cart_order_paid),
    ]
    steps = [
        FunnelStep(
            step=kind,
            visitors=n,
            step_rate=None if i == 0 else ratio(n, counts[i - 1][1]),
            overall_rate=ratio(n, counts[0][1]),
        )
        for i, (kind, n) in enumerate(counts)
    ]
    return Funnel(period=Period(start, end), visitors=f.visitors, steps=steps)


# ---------------------------------------------------------------------------------------------
# Monthly cohort retention


@dataclass(frozen=True)
class CohortMonth:
    offset: int
    month: date
    customers: int
    share: float | None


@dataclass(frozen=True)
class Cohort:
    month: date
    size: int
    retention: list[CohortMonth]


async def cohort_retention(session: AsyncSession, from_month: date, months: int) -> list[Cohort]:
    """The cohorts of the ``months`` months from ``from_month``'s (not past the current month):
    each month's new customers (first purchase that month) and, for each following month up to
    the window's last (or the current one), how many of them bought in it and their share."""
    if not 1 <= months <= MAX_COHORT_MONTHS:
        raise ValidationFailed(f"months must be between 1 and {MAX_COHORT_MONTHS}", field="months")
    first = from_month.replace(day=1)
    current = agg.today().replace(day=1)
    if first < EARLIEST:
        raise ValidationFailed(f"fromMonth is at least {EARLIEST}", field="fromMonth")
    if first > current:
        raise ValidationFailed("fromMonth is in the future", field="fromMonth")
    last = min(_plus_months(first, months - 1), current)
    starts = []
    month = first
    while month <= last:
        starts.append(month)
        month = agg.next_month(month)
    rows = await agg.read_rows(session, [(KpiPeriod.MONTH, m) for m in starts], with_sets=True)
    sets = {
        m: agg.Sets.load(rows[(KpiPeriod.MONTH, m)]) for m in starts if (KpiPeriod.MONTH, m) in rows
    }
    empty = agg.Sets()
    cohorts: list[Cohort] = []
    for i, cohort_month in enumerate(starts):
        members = sets.get(cohort_month, empty).new_customers
        retention = []
        for offset, later in enumerate(starts[i + 1 :], start=1):
            bought = members.intersection_cardinality(sets.get(later, empty).customers)
            retention.append(CohortMonth(offset, later, bought, ratio(bought, len(members))))
        cohorts.append(Cohort(month=cohort_month, size=len(members), retention=retention))
    return cohorts
