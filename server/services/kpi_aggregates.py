"""The KPI aggregates: what the KPI query, the funnel and the cohorts read instead of the
orders, payments and behaviour events.

``kpi_aggregate`` has a row per shop day (UTC+8), ISO week and calendar month: counters that
add up over periods (orders, GMV, visits, searches, payment attempts …) and, for the figures
that do not add up (distinct customers and visitors, the funnel's steps), the sets of ids they
count, as roaring bitmaps (pyroaring). A period made of several rows counts the union of their
sets, so every distinct count over any range is exact. Customers stand in the sets by their
id; an anonymous visitor by 2³¹ plus the id ``kpi_visitor`` gives their session.

The periodic job ``core.kpis`` refreshes them incrementally (:func:`refresh`): it recomputes
the days of every order placed or changed, every payment made or changed and every event
recorded since its watermark (the moment its last run started, less a margin for
transactions that committed late, and the highest ids it saw), the days a customer's first
purchase moved from or to, and the weeks and months of those days. ``shopgraph insights
kpis-rebuild`` recomputes everything (:func:`rebuild`). Each write transaction takes the
insights lock of ``kpis`` first (PostgreSQL: an advisory lock; SQLite: the write lock of
BEGIN IMMEDIATE), so refreshes from several processes take turns.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyroaring import BitMap
from sqlalchemy import (
    ColumnElement,
    Date,
    Interval,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from server.config import Settings
from server.db import mark_write
from server.hooktypes import Job, JobContext
from server.models import (
    CustomerEvent,
    CustomerEventKind,
    KpiAggregate,
    KpiCustomerFirst,
    KpiPeriod,
    KpiVisitor,
    KpiWatermark,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    utcnow,
)
from server.progress import Progress
from server.services import insight_runs
from server.services.forecasts import SHOP_UTC_OFFSET, shop_day
from server.services.rfm import PURCHASE_STATUSES

STEP = "kpis"
JOB_NAME = "kpis"  # runs as "core.kpis"
# The figures lag the shop by at most this (plus the refresh's own time).
JOB_INTERVAL_SECONDS = 300
WATERMARK = "kpis"
# Changes whose transaction committed up to this long after it stamped them are still seen.
MARGIN = timedelta(minutes=10)
# Anonymous visitors' ids in the sets start here (customers' ids are below).
SESSION_BASE = 1 << 31
# Days per transaction of a rebuild.
REBUILD_CHUNK_DAYS = 31
_IN_CHUNK = 1000

RETURN_STATUSES = (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
SUCCESSFUL_PAYMENTS = (PaymentStatus.AUTHORISED, PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)
EVENT_KINDS = tuple(CustomerEventKind)

# Counters that add up over periods.
ADDITIVE = (
    "placed_orders",
    "paid_orders",
    "purchases",
    "gmv",
    "refunded_orders",
    "returned_orders",
    "new_customers",
    "visits",
    "bounced_visits",
    "searches",
    "zero_result_searches",
    "payment_attempts",
    "payment_successes",
)
# Counts of sets (or of intersections of sets), which do not.
DISTINCT = (
    "paying_customers",
    "visitors",
    "viewers",
    "view_cart",
    "view_cart_order",
    "view_cart_order_paid",
    "carters",
    "cart_order",
    "payers",
)
SETS = (
    "customers_set",
    "new_customers_set",
    "visitors_set",
    "viewers_set",
    "carters_set",
    "orderers_set",
    "payers_set",
)


# ---------------------------------------------------------------------------------------------
# Days and periods


def day_start(day: date) -> datetime:
    """The first moment (UTC) of a shop day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - SHOP_UTC_OFFSET


def today() -> date:
    return shop_day(utcnow())


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_bounds(period: KpiPeriod, day: date) -> tuple[date, date]:
    """The period of kind ``period`` that holds ``day``: its first day and the day after it."""
    if period is KpiPeriod.DAY:
        return day, day + timedelta(days=1)
    if period is KpiPeriod.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    return start, next_month(start)


Piece = tuple[KpiPeriod, date]


def pieces(start: date, end: date) -> list[Piece]:
    """Stored periods that exactly cover the days ``start`` to ``end`` (exclusive): whole
    months where they fit, whole weeks where they fit without keeping a whole month from
    starting, days for the rest."""
    found: list[Piece] = []
    day = start
    while day < end:
        month_end = next_month(day)
        if day.day == 1 and month_end <= end:
            found.append((KpiPeriod.MONTH, day))
            day = month_end
            continue
        week_end = day + timedelta(days=7)
        boundary = month_end if day.day != 1 else day
        crosses_a_whole_month = week_end > boundary and next_month(boundary) <= end
        if day.weekday() == 0 and week_end <= end and not crosses_a_whole_month:
            found.append((KpiPeriod.WEEK, day))
            day = week_end
            continue
        found.append((KpiPeriod.DAY, day))
        day += timedelta(days=1)
    return found


def cast_int(value: Any) -> int:
    """An integer column's value (typed ``int | None`` by the ORM where it is never null)."""
    return int(value)


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def day_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """The shop day of a UTC timestamp column, in SQL (a date on PostgreSQL, its ISO text on
    SQLite)."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column) + literal(SHOP_UTC_OFFSET, Interval()), Date)
    seconds = int(SHOP_UTC_OFFSET.total_seconds())
    return func.date(column, f"{seconds:+d} seconds")


def runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days ``[start, end)``."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if out and out[-1][1] == day:
            out[-1] = (out[-1][0], day + timedelta(days=1))
        else:
            out.append((day, day + timedelta(days=1)))
    return out


# ---------------------------------------------------------------------------------------------
# Figures: one period's counters and sets


@dataclass
class Figures:
    """One period's figures (a row of ``kpi_aggregate``, or the union of several)."""

    placed_orders: int = 0
    paid_orders: int = 0
    purchases: int = 0
    gmv: int = 0
    refunded_orders: int = 0
    returned_orders: int = 0
    new_customers: int = 0
    visits: int = 0
    bounced_visits: int = 0
    searches: int = 0
    zero_result_searches: int = 0
    payment_attempts: int = 0
    payment_successes: int = 0
    paying_customers: int = 0
    visitors: int = 0
    viewers: int = 0
    view_cart: int = 0
    view_cart_order: int = 0
    view_cart_order_paid: int = 0
    carters: int = 0
    cart_order: int = 0
    payers: int = 0


@dataclass
class Sets:
    customers: BitMap = field(default_factory=BitMap)
    new_customers: BitMap = field(default_factory=BitMap)
    visitors: BitMap = field(default_factory=BitMap)
    viewers: BitMap = field(default_factory=BitMap)
    carters: BitMap = field(default_factory=BitMap)
    orderers: BitMap = field(default_factory=BitMap)
    payers: BitMap = field(default_factory=BitMap)

    def update(self, other: Sets) -> None:
        for f in fields(self):
            getattr(self, f.name).update(getattr(other, f.name))

    @classmethod
    def load(cls, row: Mapping[Any, Any]) -> Sets:
        return cls(
            **{
                name.removesuffix("_set"): BitMap.deserialize(row[name]) if row[name] else BitMap()
                for name in SETS
            }
        )

    def dump(self) -> dict[str, bytes]:
        return {f"{f.name}_set": getattr(self, f.name).serialize() for f in fields(self)}


def distinct_counts(sets: Sets) -> dict[str, int]:
    """The distinct counts of a period from its sets."""
    view_cart = sets.viewers & sets.carters
    view_cart_order = view_cart & sets.orderers
    return {
        "paying_customers": len(sets.customers),
        "visitors": len(sets.visitors),
        "viewers": len(sets.viewers),
        "view_cart": len(view_cart),
        "view_cart_order": len(view_cart_order),
        "view_cart_order_paid": view_cart_order.intersection_cardinality(sets.payers),
        "carters": len(sets.carters),
        "cart_order": sets.carters.intersection_cardinality(sets.orderers),
        "payers": len(sets.payers),
    }


def combine(rows: Sequence[Mapping[Any, Any]]) -> tuple[Figures, Sets]:
    """The figures of the periods of ``rows`` together: counters summed, sets united."""
    counters = dict.fromkeys(ADDITIVE, 0)
    sets = Sets()
    for row in rows:
        for name in ADDITIVE:
            counters[name] += int(row[name])
        sets.update(Sets.load(row))
    return Figures(**counters, **distinct_counts(sets)), sets


def figures_of(row: Mapping[Any, Any] | None) -> Figures:
    if row is None:
        return Figures()
    return Figures(**{f.name: int(row[f.name]) for f in fields(Figures)})


# ---------------------------------------------------------------------------------------------
# Reading


async def read_rows(
    session: AsyncSession, wanted: Iterable[Piece], *, with_sets: bool
) -> dict[Piece, Mapping[Any, Any]]:
    """The stored rows of ``wanted`` (missing ones are absent: nothing happened then, or they
    were never computed), counters only unless ``with_sets``."""
    by_period: dict[KpiPeriod, list[date]] = defaultdict(list)
    for period, start in wanted:
        by_period[period].append(start)
    names = ["period", "start", *ADDITIVE, *DISTINCT, *(SETS if with_sets else ())]
    columns = [getattr(KpiAggregate, name) for name in names]
    found: dict[Piece, Mapping[Any, Any]] = {}
    for period, starts in by_period.items():
        want = set(starts)
        stmt = select(*columns).where(
            col(KpiAggregate.period) == period,
            col(KpiAggregate.start) >= min(want),
            col(KpiAggregate.start) <= max(want),
        )
        for row in (await session.execute(stmt)).mappings():
            start = as_date(row["start"])
            if start in want:
                found[(period, start)] = row
    return found


async def figures(session: AsyncSession, buckets: Sequence[tuple[date, date]]) -> list[Figures]:
    """The figures of each ``[start, end)`` of ``buckets``, from the stored rows: a bucket that
    is one stored period reads its counters, any other the union of its pieces' sets."""
    split = [pieces(start, end) for start, end in buckets]
    single = {p[0] for p in split if len(p) == 1}
    several = {piece for p in split if len(p) != 1 for piece in p}
    rows = await read_rows(session, single - several, with_sets=False)
    rows.update(await read_rows(session, several, with_sets=True))
    out: list[Figures] = []
    for parts in split:
        if len(parts) == 1:
            out.append(figures_of(rows.get(parts[0])))
        else:
            out.append(combine([rows[p] for p in parts if p in rows])[0])
    return out


async def sets_of(session: AsyncSession, start: date, end: date) -> Sets:
    """The sets of the days ``start`` to ``end`` (exclusive)."""
    wanted = pieces(start, end)
    rows = await read_rows(session, wanted, with_sets=True)
    return combine([rows[p] for p in wanted if p in rows])[1]


async def watermark(session: AsyncSession) -> KpiWatermark | None:
    return await session.scalar(select(KpiWatermark).where(col(KpiWatermark.name) == WATERMARK))


# ---------------------------------------------------------------------------------------------
# Computing days from the orders, payments and events


@dataclass
class _Day:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ADDITIVE, 0))
    sets: Sets = field(default_factory=Sets)

    def row(self, day: date, now: datetime) -> dict[str, Any]:
        return _row(KpiPeriod.DAY, day, day + timedelta(days=1), self.counters, self.sets, now)


def _row(
    period: KpiPeriod,
    start: date,
    end: date,
    counters: Mapping[str, int],
    sets: Sets,
    now: datetime,
) -> dict[str, Any]:
    return {
        "period": period,
        "start": start,
        "end": end,
        **counters,
        **distinct_counts(sets),
        **sets.dump(),
        "computed_at": now,
    }


async def _visitor_ids(session: AsyncSession, session_ids: set[str]) -> dict[str, int]:
    """The integers standing for anonymous visitors' session ids, new ones allocated."""
    if not session_ids:
        return {}
    insert = insight_runs.insert(insight_runs.dialect_of(session))
    ordered = sorted(session_ids)
    found: dict[str, int] = {}
    for i in range(0, len(ordered), _IN_CHUNK):
        part = ordered[i : i + _IN_CHUNK]
        await session.execute(
            insert(KpiVisitor)
            .values([{"session_id": s} for s in part])
            .on_conflict_do_nothing(index_elements=["session_id"])
        )
        rows = await session.execute(
            select(col(KpiVisitor.session_id), col(KpiVisitor.id)).where(
                col(KpiVisitor.session_id).in_(part)
            )
        )
        found.update({str(s): SESSION_BASE + cast_int(i_) for s, i_ in rows})
    return found


async def compute_days(
    session: AsyncSession, start: date, end: date, currency: str
) -> dict[date, _Day]:
    """Every day's figures from ``start`` to ``end`` (exclusive), read from the orders,
    payments, events and first purchase days (which must be up to date)."""
    dialect = insight_runs.dialect_of(session)
    lo, hi = day_start(start), day_start(end)
    days: dict[date, _Day] = defaultdict(_Day)

    # Orders, by the day they were placed.
    day = day_of(dialect, col(Order.placed_at))
    paid = col(Order.paid_at).is_not(None)
    purchase = col(Order.status).in_(PURCHASE_STATUSES)
    refunded = and_(
        paid,
        exists().where(
            col(Payment.order_id) == col(Order.id),
            col(Payment.status) == PaymentStatus.REFUNDED,
        ),
    )
    in_range = and_(
        col(Order.placed_at) >= lo, col(Order.placed_at) < hi, col(Order.currency) == currency
    )
    stmt = (
        select(
            day.label("day"),
            func.count().label("placed"),
            func.sum(case((paid, 1), else_=0)).label("paid"),
            func.sum(case((purchase, 1), else_=0)).label("purchases"),
            func.sum(case((purchase, col(Order.total_amount)), else_=0)).label("gmv"),
            func.sum(case((refunded, 1), else_=0)).label("refunded"),
            func.sum(
                case((and_(refunded, col(Order.status).in_(RETURN_STATUSES)), 1), else_=0)
            ).label("returned"),
        )
        .where(in_range)
        .group_by(day)
    )
    for row in (await session.execute(stmt)).mappings():
        c = days[as_date(row["day"])].counters
        c["placed_orders"] = int(row["placed"])
        c["paid_orders"] = int(row["paid"] or 0)
        c["purchases"] = int(row["purchases"] or 0)
        c["gmv"] = int(row["gmv"] or 0)
        c["refunded_orders"] = int(row["refunded"] or 0)
        c["returned_orders"] = int(row["returned"] or 0)
    # The status is tested after grouping: in WHERE, SQLite would pick the status index and
    # read every purchase of the shop instead of the day's orders.
    buyers = (
        select(day.label("day"), col(Order.customer_id))
        .where(in_range, col(Order.customer_id).is_not(None))
        .group_by(day, col(Order.customer_id))
        .having(func.max(case((purchase, 1), else_=0)) == 1)
    )
    for d, customer_id in await session.execute(buyers):
        days[as_date(d)].sets.customers.add(int(customer_id))

    # New customers: their first purchase day.
    first = select(col(KpiCustomerFirst.first_day), col(KpiCustomerFirst.customer_id)).where(
        col(KpiCustomerFirst.first_day) >= start, col(KpiCustomerFirst.first_day) < end
    )
    for d, customer_id in await session.execute(first):
        entry = days[as_date(d)]
        entry.sets.new_customers.add(int(customer_id))
        entry.counters["new_customers"] += 1

    # Payment attempts, by the day they were made.
    pday = day_of(dialect, col(Payment.created_at))
    stmt = (
        select(
            pday.label("day"),
            func.sum(case((col(Payment.status) != PaymentStatus.PENDING, 1), else_=0)),
            func.sum(case((col(Payment.status).in_(SUCCESSFUL_PAYMENTS), 1), else_=0)),
        )
        .where(col(Payment.created_at) >= lo, col(Payment.created_at) < hi)
        .group_by(pday)
    )
    for d, attempts, successes in await session.execute(stmt):
        c = days[as_date(d)].counters
        c["payment_attempts"] = int(attempts or 0)
        c["payment_successes"] = int(successes or 0)

    # Behaviour events (the kind is named so that the (kind, occurred_at) index serves).
    eday = day_of(dialect, col(CustomerEvent.occurred_at))
    events_in_range = and_(
        col(CustomerEvent.kind).in_(EVENT_KINDS),
        col(CustomerEvent.occurred_at) >= lo,
        col(CustomerEvent.occurred_at) < hi,
    )
    result_count = col(CustomerEvent.data)["result_count"].as_integer()
    stmt = (
        select(
            eday.label("day"),
            func.count(),
            func.sum(case((result_count == 0, 1), else_=0)),
        )
        .where(
            col(CustomerEvent.kind) == CustomerEventKind.SEARCH,
            col(CustomerEvent.occurred_at) >= lo,
            col(CustomerEvent.occurred_at) < hi,
        )
        .group_by(eday)
    )
    for d, searches, zero in await session.execute(stmt):
        c = days[as_date(d)].counters
        c["searches"] = int(searches)
        c["zero_result_searches"] = int(zero or 0)

    kind = col(CustomerEvent.kind)
    customer = col(CustomerEvent.customer_id)
    anonymous = case((customer.is_(None), col(CustomerEvent.session_id)), else_=None)
    stmt = (
        select(
            eday.label("day"),
            customer,
            anonymous.label("session"),
            func.count(),
            func.max(case((kind == CustomerEventKind.VIEW, 1), else_=0)),
            func.max(case((kind == CustomerEventKind.ADD_TO_CART, 1), else_=0)),
            func.max(case((kind == CustomerEventKind.PURCHASE, 1), else_=0)),
            func.max(
                case(
                    (
                        and_(
                            kind == CustomerEventKind.PURCHASE,
                            col(Order.paid_at).is_not(None),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
        )
        .select_from(CustomerEvent)
        .outerjoin(Order, col(Order.id) == col(CustomerEvent.order_id))
        .where(
            events_in_range,
            (customer.is_not(None)) | (col(CustomerEvent.session_id).is_not(None)),
        )
        .group_by(eday, customer, anonymous)
    )
    visits = (await session.execute(stmt)).all()
    ids = await _visitor_ids(session, {str(v[2]) for v in visits if v[1] is None})
    for d, customer_id, session_id, n, viewed, carted, ordered, paid_ in visits:
        entry = days[as_date(d)]
        key = int(customer_id) if customer_id is not None else ids[str(session_id)]
        entry.counters["visits"] += 1
        if int(n) == 1:
            entry.counters["bounced_visits"] += 1
        entry.sets.visitors.add(key)
        if viewed:
            entry.sets.viewers.add(key)
        if carted:
            entry.sets.carters.add(key)
        if ordered:
            entry.sets.orderers.add(key)
        if paid_:
            entry.sets.payers.add(key)
    return {d: v for d, v in days.items() if start <= d < end}


async def _upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = insight_runs.insert(insight_runs.dialect_of(session))
    for i in range(0, len(rows), 200):
        stmt = insert(KpiAggregate).values(rows[i : i + 200])
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["period", "start"],
                set_={
                    name: stmt.excluded[name]
                    for name in ("end", *ADDITIVE, *DISTINCT, *SETS, "computed_at")
                },
            )
        )


async def write_days(
    session: AsyncSession, start: date, end: date, currency: str, now: datetime
) -> int:
    """Recompute and store every day from ``start`` to ``end`` (exclusive); days without
    anything get a row of zeros. Returns the number of days."""
    computed = await compute_days(session, start, end, currency)
    rows = []
    day = start
    while day < end:
        rows.append(computed.get(day, _Day()).row(day, now))
        day += timedelta(days=1)
    await _upsert(session, rows)
    return len(rows)


async def roll_up(
    session: AsyncSession, period: KpiPeriod, starts: Iterable[date], now: datetime
) -> int:
    """Recompute the weeks or months starting on ``starts`` from their stored days."""
    rows = []
    for start in sorted(set(starts)):
        _, end = period_bounds(period, start)
        stmt = select(
            *(getattr(KpiAggregate, n) for n in ("start", *ADDITIVE, *DISTINCT, *SETS))
        ).where(
            col(KpiAggregate.period) == KpiPeriod.DAY,
            col(KpiAggregate.start) >= start,
            col(KpiAggregate.start) < end,
        )
        days = (await session.execute(stmt)).mappings().all()
        counters = dict.fromkeys(ADDITIVE, 0)
        sets = Sets()
        for row in days:
            for name in ADDITIVE:
                counters[name] += int(row[name])
            sets.update(Sets.load(row))
        rows.append(_row(period, start, end, counters, sets, now))
    await _upsert(session, rows)
    return len(rows)


async def refresh_first_days(
    session: AsyncSession, currency: str, customers: set[int] | None
) -> set[date]:
    """Bring ``kpi_customer_first`` up to date for ``customers`` (None: everyone); return the
    days a first purchase moved from or to."""
    # The purchase conditions are inside the MIN, not in WHERE: there SQLite would read every
    # purchase of the shop by the status index instead of the customers' orders.
    purchase = and_(col(Order.status).in_(PURCHASE_STATUSES), col(Order.currency) == currency)
    first = func.min(case((purchase, col(Order.placed_at)), else_=None))
    base = (
        select(col(Order.customer_id), first)
        .where(col(Order.customer_id).is_not(None))
        .group_by(col(Order.customer_id))
        .having(first.is_not(None))
    )
    stored = select(col(KpiCustomerFirst.customer_id), col(KpiCustomerFirst.first_day))
    now_first: dict[int, date] = {}
    before: dict[int, date] = {}
    if customers is None:
        now_first = {cast_int(c): shop_day(m) for c, m in await session.execute(base)}
        before = {cast_int(c): as_date(d) for c, d in await session.execute(stored)}
    else:
        ordered = sorted(customers)
        for i in range(0, len(ordered), _IN_CHUNK):
            part = ordered[i : i + _IN_CHUNK]
            rows = await session.execute(base.where(col(Order.customer_id).in_(part)))
            now_first.update({cast_int(c): shop_day(m) for c, m in rows})
            rows = await session.execute(stored.where(col(KpiCustomerFirst.customer_id).in_(part)))
            before.update({cast_int(c): as_date(d) for c, d in rows})
    moved: set[date] = set()
    changed: list[dict[str, Any]] = []
    for customer_id in now_first.keys() | before.keys():
        old, new = before.get(customer_id), now_first.get(customer_id)
        if old == new:
            continue
        moved.update(d for d in (old, new) if d is not None)
        if new is not None:
            changed.append({"customer_id": customer_id, "first_day": new})
    gone = [c for c in before if c not in now_first]
    for i in range(0, len(gone), _IN_CHUNK):
        await session.execute(
            delete(KpiCustomerFirst).where(
                col(KpiCustomerFirst.customer_id).in_(gone[i : i + _IN_CHUNK])
            )
        )
    insert = insight_runs.insert(insight_runs.dialect_of(session))
    for i in range(0, len(changed), insight_runs.CHUNK):
        stmt = insert(KpiCustomerFirst).values(changed[i : i + insight_runs.CHUNK])
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["customer_id"], set_={"first_day": stmt.excluded.first_day}
            )
        )
    return moved


# ---------------------------------------------------------------------------------------------
# What changed since the watermark


@dataclass(frozen=True)
class Marks:
    """The highest ids and the moment a refresh starts from."""

    at: datetime
    max_order_id: int
    max_payment_id: int
    max_event_id: int


async def _marks(session: AsyncSession) -> Marks:
    at = utcnow()
    row = (
        await session.execute(
            select(
                select(func.coalesce(func.max(col(Order.id)), 0)).scalar_subquery(),
                select(func.coalesce(func.max(col(Payment.id)), 0)).scalar_subquery(),
                select(func.coalesce(func.max(col(CustomerEvent.id)), 0)).scalar_subquery(),
            )
        )
    ).one()
    return Marks(at, int(row[0]), int(row[1]), int(row[2]))


async def changed_since(
    session: AsyncSession, mark: KpiWatermark, margin: timedelta = MARGIN
) -> tuple[set[date], set[int]]:
    """The days whose figures may have changed since ``mark``, and the customers whose first
    purchase may have moved: rows added after its highest ids, or stamped (placed, updated,
    paid, recorded) since its moment less ``margin``. Each condition is a statement of its
    own, so that each uses its index."""
    dialect = insight_runs.dialect_of(session)
    since = insight_runs.utc(mark.refreshed_at) - margin
    days: set[date] = set()
    customers: set[int] = set()
    order_day = day_of(dialect, col(Order.placed_at))
    for condition in (
        col(Order.id) > mark.max_order_id,
        col(Order.placed_at) >= since,
        col(Order.updated_at) >= since,
    ):
        stmt = select(order_day, col(Order.customer_id)).where(condition).distinct()
        for d, customer_id in await session.execute(stmt):
            days.add(as_date(d))
            if customer_id is not None:
                customers.add(int(customer_id))
    payment_day = day_of(dialect, col(Payment.created_at))
    for condition in (
        col(Payment.id) > mark.max_payment_id,
        col(Payment.created_at) >= since,
        col(Payment.updated_at) >= since,
    ):
        stmt = (
            select(payment_day, order_day)
            .select_from(Payment)
            .join(Order, col(Order.id) == col(Payment.order_id))
            .where(condition)
            .distinct()
        )
        for d1, d2 in await session.execute(stmt):
            days.update((as_date(d1), as_date(d2)))
    event_day = day_of(dialect, col(CustomerEvent.occurred_at))
    for condition in (
        col(CustomerEvent.id) > mark.max_event_id,
        and_(col(CustomerEvent.kind).in_(EVENT_KINDS), col(CustomerEvent.occurred_at) >= since),
    ):
        stmt = select(event_day).where(condition).distinct()
        days.update(as_date(d) for (d,) in await session.execute(stmt))
    return days, customers


async def _save_watermark(session: AsyncSession, marks: Marks, currency: str) -> None:
    insert = insight_runs.insert(insight_runs.dialect_of(session))
    values = {
        "name": WATERMARK,
        "refreshed_at": marks.at,
        "max_order_id": marks.max_order_id,
        "max_payment_id": marks.max_payment_id,
        "max_event_id": marks.max_event_id,
        "currency": currency,
    }
    stmt = insert(KpiWatermark).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={k: stmt.excluded[k] for k in values if k != "name"},
        )
    )


# ---------------------------------------------------------------------------------------------
# Refresh and rebuild


@dataclass(frozen=True)
class KpiRefresh:
    """What a refresh or a rebuild did."""

    rebuilt: bool
    days: int
    weeks: int
    months: int
    customers: int
    seconds: float
    first_day: date | None = None
    last_day: date | None = None

    def summary(self) -> str:
        what = "rebuilt" if self.rebuilt else "refreshed"
        span = f" from {self.first_day} to {self.last_day}" if self.first_day else ""
        return (
            f"kpis: {what} {self.days} days, {self.weeks} weeks, {self.months} months"
            f"{span}; {self.customers} customers' first purchase checked "
            f"({self.seconds:.2f} s)"
        )


async def _begin(session: AsyncSession) -> None:
    await mark_write(session)
    await insight_runs.lock(session, STEP)


async def refresh_in(
    session: AsyncSession, currency: str, *, margin: timedelta = MARGIN
) -> KpiRefresh | None:
    """Recompute what changed since the watermark, in the session's write transaction (the
    caller commits); None when there is no watermark for ``currency`` (a rebuild is due)."""
    started = time.perf_counter()
    await _begin(session)
    mark = await watermark(session)
    if mark is None or mark.currency != currency:
        return None
    marks = await _marks(session)
    days, customers = await changed_since(session, mark, margin)
    days |= await refresh_first_days(session, currency, customers)
    now = utcnow()
    written = 0
    for start, end in runs(days):
        written += await write_days(session, start, end, currency, now)
    weeks = {period_bounds(KpiPeriod.WEEK, d)[0] for d in days}
    months = {period_bounds(KpiPeriod.MONTH, d)[0] for d in days}
    await roll_up(session, KpiPeriod.WEEK, weeks, now)
    await roll_up(session, KpiPeriod.MONTH, months, now)
    await _save_watermark(session, marks, currency)
    return KpiRefresh(
        rebuilt=False,
        days=written,
        weeks=len(weeks),
        months=len(months),
        customers=len(customers),
        seconds=time.perf_counter() - started,
    )


async def _history(session: AsyncSession) -> tuple[date, date] | None:
    """The first and last days anything happened on."""
    lows, highs = [], []
    for column in (
        col(Order.placed_at),
        col(Payment.created_at),
        col(CustomerEvent.occurred_at),
    ):
        low, high = (await session.execute(select(func.min(column), func.max(column)))).one()
        if low is not None:
            lows.append(shop_day(low))
            highs.append(shop_day(high))
    return (min(lows), max(highs)) if lows else None


def span(history: tuple[date, date] | None, at: datetime) -> tuple[date, date]:
    """The days a rebuild covers: from the first day anything happened on to today (or the
    last such day, if later)."""
    today_ = shop_day(at)
    if history is None:
        return today_, today_
    return history[0], max(history[1], today_)


def rebuild_chunks(first: date, last: date) -> list[tuple[date, date]]:
    """The days ``first`` to ``last`` (inclusive) in calendar months: a transaction each."""
    chunks: list[tuple[date, date]] = []
    day = first
    while day <= last:
        end = min(next_month(day), last + timedelta(days=1))
        chunks.append((day, end))
        day = end
    return chunks


async def _finish_rebuild(
    session: AsyncSession, marks: Marks, currency: str, days: tuple[date, date], now: datetime
) -> tuple[int, int]:
    """A rebuild's last part, once its days are written: every week and month of the days
    ``first`` to ``last``, rows outside them dropped, the watermark saved. Returns how many
    weeks and months were rolled up."""
    first, last = days
    weeks = []
    week = period_bounds(KpiPeriod.WEEK, first)[0]
    while week <= last:
        weeks.append(week)
        week += timedelta(days=7)
    months = [start.replace(day=1) for start, _ in rebuild_chunks(first, last)]
    await roll_up(session, KpiPeriod.WEEK, weeks, now)
    await roll_up(session, KpiPeriod.MONTH, months, now)
    # Rows of days outside the history are of data since deleted.
    await session.execute(
        delete(KpiAggregate).where(
            (col(KpiAggregate.end) <= first) | (col(KpiAggregate.start) > last)
        )
    )
    await _save_watermark(session, marks, currency)
    return len(weeks), len(months)


async def rebuild_in(session: AsyncSession, currency: str) -> None:
    """Every aggregate, in the session's transaction (the caller commits): for a shop written
    in one transaction, such as the demo shop, whose alerts read the KPIs before it commits."""
    await _begin(session)
    marks = await _marks(session)
    await refresh_first_days(session, currency, None)
    first, last = span(await _history(session), marks.at)
    now = utcnow()
    for start, end in rebuild_chunks(first, last):
        await write_days(session, start, end, currency, now)
    await _finish_rebuild(session, marks, currency, (first, last), now)


async def rebuild(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    progress: Progress | None = None,
) -> KpiRefresh:
    """Recompute every aggregate: the first purchase days, then the days a month at a time
    (each month a transaction of its own), then every week and month; the watermark is the
    moment the rebuild started, so that what changed meanwhile is refreshed next time."""
    started = time.perf_counter()
    currency = settings.currency
    async with sessions() as session:
        await _begin(session)
        marks = await _marks(session)
        await refresh_first_days(session, currency, None)
        checked = int(await session.scalar(select(func.count()).select_from(KpiCustomerFirst)) or 0)
        first, last = span(await _history(session), marks.at)
        await session.commit()
    chunks = rebuild_chunks(first, last)
    now = utcnow()
    written = 0
    for start, end in chunks:
        async with sessions() as session:
            await _begin(session)
            written += await write_days(session, start, end, currency, now)
            await session.commit()
        if progress is not None:
            progress.advance(f"{start:%Y-%m}")
    async with sessions() as session:
        await _begin(session)
        weeks, months = await _finish_rebuild(session, marks, currency, (first, last), now)
        await session.commit()
    if progress is not None:
        progress.advance("weeks and months")
    return KpiRefresh(
        rebuilt=True,
        days=written,
        weeks=weeks,
        months=months,
        customers=checked,
        seconds=time.perf_counter() - started,
        first_day=first,
        last_day=last,
    )


async def refresh(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    progress: Progress | None = None,
    margin: timedelta = MARGIN,
) -> KpiRefresh:
    """The periodic job's work: an incremental refresh, or a rebuild when nothing was built
    yet (or the shop's currency changed). ``margin``: how late a change's transaction may
    commit after stamping it and still be seen (changes that recent are seen twice)."""
    async with sessions() as session:
        done = await refresh_in(session, settings.currency, margin=margin)
        await session.commit()
    if done is not None:
        return done
    return await rebuild(sessions, settings, progress=progress)


async def run_job(ctx: JobContext) -> None:
    await refresh(ctx.sessions, ctx.settings)


def jobs() -> list[Job]:
    return [
        Job(
            JOB_NAME,
            JOB_INTERVAL_SECONDS,
            run_job,
            description="Refresh the KPI aggregates: recompute the days whose orders, "
            "payments or behaviour events changed since the last run, and their weeks and "
            "months (everything, the first time).",
        )
    ]


async def rebuild_steps(sessions: async_sessionmaker[AsyncSession]) -> int:
    """The steps a rebuild reports now: one per month of days, one for the weeks and months."""
    async with sessions() as session:
        first, last = span(await _history(session), utcnow())
    return len(rebuild_chunks(first, last)) + 1


def rebuild_command(settings: Settings) -> str:
    """``shopgraph insights kpis-rebuild``: everything, with a progress bar; the summary."""
    from server.db import create_engine, session_factory
    from server.migrate import run_async

    async def _main() -> KpiRefresh:
        engine = create_engine(settings.database_url)
        try:
            sessions = session_factory(engine)
            with Progress("kpis", await rebuild_steps(sessions)) as progress:
                return await rebuild(sessions, settings, progress=progress)
        finally:
            await engine.dispose()

    return run_async(_main).summary()
