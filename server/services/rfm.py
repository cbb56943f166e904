"""RFM: each buyer's recency, frequency and monetary figures, their 1-5 scores within the shop,
and the eight segments (docs/insights.md, "RFM segments").

A recomputation reads every buyer's figures with one aggregate statement over the orders,
scores them with numpy, and writes only what changed: the rows of ``customer_rfm`` whose
figures moved, and a ``customer_segment_change`` row for each customer whose segment did.
It runs inside one write transaction that first takes a lock (PostgreSQL: a transaction-level
advisory lock; SQLite: the write lock of ``BEGIN IMMEDIATE``), so runs from several
processes queue and each sees what the one before it wrote.

- A **purchase** is an order in the shop's currency, placed by a customer whose account is
  not erased, with status PAID, FULFILLING, SHIPPED, DELIVERED or COMPLETED (paid and not
  cancelled: a cancelled order was refunded), placed at or before the "as of" moment.
- **Recency**: whole days from the day of the last purchase to the day of the "as of" moment
  (UTC days); **frequency**: the number of purchases; **monetary**: the sum of their totals
  (what the customer paid, shipping and fees included, discounts taken off), in minor units.
- **Scores** (:func:`quintile_scores`): each customer's mid-rank percentile ``p = (below +
  equal / 2) / n`` among the shop's ``n`` buyers (``below``: customers with a worse value;
  ``equal``: customers with the same value, the customer included), and the score ``ceil(5p)``.
  Equal values get equal scores. Fewer recent days is better for R; more is better for F, M.
- **Segments** (:func:`segments`): a dimension is "high" when its score is above the average
  of that dimension's scores over the shop's buyers; the three highs and lows name one of
  the eight segments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Customer,
    CustomerRfm,
    CustomerSegment,
    CustomerSegmentChange,
    Order,
    OrderStatus,
    utcnow,
)
from server.services import insight_runs
from server.services.insight_runs import chunks, utc

STEP = "rfm"
PURCHASE_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.FULFILLING,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.COMPLETED,
)

S = CustomerSegment
# (R high, F high, M high) -> segment: the operators' table (docs/insights.md).
SEGMENT_RULES: Mapping[tuple[bool, bool, bool], CustomerSegment] = {
    (True, True, True): S.IMPORTANT_VALUE,
    (True, False, True): S.IMPORTANT_DEVELOP,
    (False, True, True): S.IMPORTANT_KEEP,
    (False, False, True): S.IMPORTANT_WIN_BACK,
    (True, True, False): S.GENERAL_VALUE,
    (True, False, False): S.GENERAL_DEVELOP,
    (False, True, False): S.GENERAL_KEEP,
    (False, False, False): S.GENERAL_WIN_BACK,
}
SEGMENT_LABELS: Mapping[CustomerSegment, str] = {
    S.IMPORTANT_VALUE: "重要价值",
    S.IMPORTANT_DEVELOP: "重要发展",
    S.IMPORTANT_KEEP: "重要保持",
    S.IMPORTANT_WIN_BACK: "重要挽留",
    S.GENERAL_VALUE: "一般价值",
    S.GENERAL_DEVELOP: "一般发展",
    S.GENERAL_KEEP: "一般保持",
    S.GENERAL_WIN_BACK: "一般挽留",
}
# The segment of code ``4 * R high + 2 * F high + M high``.
_BY_CODE: tuple[CustomerSegment, ...] = tuple(
    SEGMENT_RULES[(bool(code & 4), bool(code & 2), bool(code & 1))] for code in range(8)
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# --- scoring ----------------------------------------------------------------------------------


def quintile_scores(values: Sequence[int] | IntArray) -> IntArray:
    """1-5 scores of ``values`` (higher value, higher score): ``ceil(5p)`` of each value's
    mid-rank percentile ``p = (below + equal / 2) / n``, computed in integers
    (``ceil(5 (2 below + equal) / 2n)``), so equal values get equal scores and nothing
    depends on floating point or on the order of the input."""
    array = np.asarray(values, dtype=np.int64)
    n = array.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    distinct, inverse, counts = np.unique(array, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts
    numerator = 5 * (2 * below + counts)
    scores: IntArray = (numerator + 2 * n - 1) // (2 * n)
    return scores[inverse.reshape(-1)]


def above_average(scores: IntArray) -> BoolArray:
    """Whether each score is above the average of ``scores`` (exactly: ``s * n > sum``)."""
    high: BoolArray = scores * scores.size > scores.sum()
    return high


def segments(r: IntArray, f: IntArray, m: IntArray) -> list[CustomerSegment]:
    """The segment of each customer from their three scores, against the shop's averages."""
    codes = (
        above_average(r).astype(np.int64) * 4
        + above_average(f).astype(np.int64) * 2
        + above_average(m).astype(np.int64)
    )
    return [_BY_CODE[code] for code in codes.tolist()]


@dataclass(frozen=True)
class Scored:
    """The shop's buyers, scored: parallel arrays, one entry per customer."""

    customer_ids: list[int]
    recency_days: IntArray
    frequency: IntArray
    monetary: IntArray
    last_purchase_at: list[datetime]
    r: IntArray
    f: IntArray
    m: IntArray
    segments: list[CustomerSegment]


def score(
    customer_ids: list[int],
    recency_days: IntArray,
    frequency: IntArray,
    monetary: IntArray,
    last_purchase_at: list[datetime],
) -> Scored:
    """Score the figures (R on fewer days, F and M on more) and name each segment."""
    r = quintile_scores(-recency_days)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    return Scored(
        customer_ids=customer_ids,
        recency_days=recency_days,
        frequency=frequency,
        monetary=monetary,
        last_purchase_at=last_purchase_at,
        r=r,
        f=f,
        m=m,
        segments=segments(r, f, m),
    )


# --- reading ------------------------------------------------------------------------------------


def purchase_conditions(as_of: datetime, currency: str) -> list[ColumnElement[bool]]:
    """The rule of what counts as a purchase, as conditions on ``Order`` joined to its
    ``Customer``: an order of a customer whose account is not erased, in the shop's currency,
    paid and not cancelled (:data:`PURCHASE_STATUSES`), placed at or before ``as_of``. Every
    insight that reads purchases (RFM, lifetime value) uses it."""
    return [
        col(Order.customer_id).is_not(None),
        col(Order.status).in_(PURCHASE_STATUSES),
        col(Order.placed_at) <= as_of,
        col(Order.currency) == currency,
        col(Customer.is_active).is_(True),
    ]


async def buyers(session: AsyncSession, as_of: datetime, currency: str) -> Scored:
    """Every buyer's figures as of ``as_of``, from one aggregate statement, scored."""
    stmt = (
        select(
            col(Order.customer_id),
            func.count(),
            func.sum(col(Order.total_amount)),
            func.max(col(Order.placed_at)),
        )
        .join(Customer, col(Customer.id) == col(Order.customer_id))
        .where(*purchase_conditions(as_of, currency))
        .group_by(col(Order.customer_id))
        .order_by(col(Order.customer_id))
    )
    today = as_of.astimezone(UTC).date().toordinal()
    ids: list[int] = []
    counts: list[int] = []
    totals: list[int] = []
    last: list[datetime] = []
    for customer_id, purchases, spent, latest in (await session.execute(stmt)).all():
        assert customer_id is not None  # only customers' orders are purchases
        ids.append(customer_id)
        counts.append(int(purchases))
        totals.append(int(spent or 0))
        last.append(utc(latest))
    return score(
        customer_ids=ids,
        recency_days=np.array([today - t.date().toordinal() for t in last], dtype=np.int64),
        frequency=np.array(counts, dtype=np.int64),
        monetary=np.array(totals, dtype=np.int64),
        last_purchase_at=last,
    )


async def fingerprint(session: AsyncSession, currency: str) -> str:
    """What the recomputation's input looks like, cheaply: the number of orders in each status
    with the highest order id, the number of erased customers, and the currency. Orders only
    move forward through their statuses (placed, paid, shipped ..., or cancelled), so any new
    order or change of status changes the counts, and equal fingerprints on the same day give
    equal figures. (A change made behind the services' back, e.g. a direct SQL fix of an
    order's total, is not seen: recompute with ``force``.)"""
    by_status = (
        await session.execute(
            select(col(Order.status), func.count(), func.max(col(Order.id)))
            .group_by(col(Order.status))
            .order_by(col(Order.status))
        )
    ).all()
    erased = await session.scalar(
        select(func.count()).select_from(Customer).where(col(Customer.is_active).is_(False))
    )
    seen = ";".join(f"{status}:{count}:{last}" for status, count, last in by_status)
    text = f"orders={seen};erased={erased};currency={currency}"
    return hashlib.sha256(text.encode()).hexdigest()


# --- the recomputation ------------------------------------------------------------------------


@dataclass(frozen=True)
class RfmRebuild:
    """What a recomputation did. ``skipped``: nothing changed since the last run on the same
    day, so nothing was computed (the figures are those of ``as_of``)."""

    as_of: datetime
    skipped: bool
    customers: int
    written: int = 0
    removed: int = 0
    segment_changes: int = 0

    def summary(self) -> str:
        if self.skipped:
            return f"rfm: unchanged since {self.as_of.isoformat()}, {self.customers} customers"
        return (
            f"rfm: {self.customers} customers scored, {self.written} rows written, "
            f"{self.removed} removed, {self.segment_changes} segment changes"
        )


_VALUES = (
    "recency_days",
    "frequency",
    "monetary",
    "last_purchase_at",
    "r_score",
    "f_score",
    "m_score",
    "segment",
)


async def _current(session: AsyncSession) -> dict[int, tuple[Any, ...]]:
    stmt = select(col(CustomerRfm.customer_id), *(getattr(CustomerRfm, name) for name in _VALUES))
    rows = (await session.execute(stmt)).all()
    return {int(row[0]): (*row[1:4], utc(row[4]), *row[5:]) for row in rows}


async def rebuild(
    session: AsyncSession,
    *,
    currency: str,
    as_of: datetime | None = None,
    force: bool = False,
) -> RfmRebuild:
    """Recompute every customer's RFM figures and segment as of ``as_of`` (now) in the
    session's transaction, which the caller has marked a write (``mark_write``) and commits.

    Skips (``skipped``) when the last run was on the same day and the :func:`fingerprint` of
    the orders is unchanged, unless ``force``. Writes the rows whose figures changed (upserts),
    removes the rows of customers left without a purchase, and records each segment change."""
    moment = utc(as_of or utcnow())
    dialect = insight_runs.dialect_of(session)
    await insight_runs.lock(session, STEP)
    seen = await fingerprint(session, currency)
    last = await insight_runs.last_run(session, STEP)
    if not force and last is not None and insight_runs.unchanged(last, seen, moment):
        count = await session.scalar(select(func.count()).select_from(CustomerRfm))
        return RfmRebuild(as_of=last[1], skipped=True, customers=int(count or 0))

    scored = await buyers(session, moment, currency)
    current = await _current(session)
    upserts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    recency = scored.recency_days.tolist()
    frequency = scored.frequency.tolist()
    monetary = scored.monetary.tolist()
    r, f, m = scored.r.tolist(), scored.f.tolist(), scored.m.tolist()
    for i, customer_id in enumerate(scored.customer_ids):
        segment = scored.segments[i]
        values = (
            recency[i],
            frequency[i],
            monetary[i],
            scored.last_purchase_at[i],
            r[i],
            f[i],
            m[i],
            segment,
        )
        before = current.pop(customer_id, None)
        if before == values:
            continue
        upserts.append(
            {"customer_id": customer_id, **dict(zip(_VALUES, values, strict=True))}
            | {"computed_at": moment}
        )
        previous = before[-1] if before is not None else None
        if previous != segment:
            changes.append(
                {"customer_id": customer_id, "from_segment": previous, "to_segment": segment}
            )
    # Whoever is left had a row and has no purchase now (their orders were cancelled).
    gone = sorted(current)
    changes += [
        {"customer_id": customer_id, "from_segment": current[customer_id][-1], "to_segment": None}
        for customer_id in gone
    ]

    connection = await session.connection()
    upsert = insight_runs.insert(dialect)(CustomerRfm)
    upsert = upsert.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={name: upsert.excluded[name] for name in (*_VALUES, "computed_at")},
    )
    for chunk in chunks(upserts):
        await connection.execute(upsert, list(chunk))
    for ids in chunks(gone):
        await connection.execute(delete(CustomerRfm).where(col(CustomerRfm.customer_id).in_(ids)))
    for chunk in chunks(changes):
        await connection.execute(
            insert(CustomerSegmentChange), [change | {"at": moment} for change in chunk]
        )
    await insight_runs.record_run(
        session, STEP, fingerprint=seen, as_of=moment, customers=len(scored.customer_ids)
    )
    return RfmRebuild(
        as_of=moment,
        skipped=False,
        customers=len(scored.customer_ids),
        written=len(upserts),
        removed=len(gone),
        segment_changes=len(changes),
    )


# --- reading the results ----------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentSummary:
    """One segment of the shop: its customers, their spend, and the moves in and out of it
    since a moment (every move recorded when ``since`` is None)."""

    segment: CustomerSegment
    customers: int
    share: float
    revenue: int
    average_monetary: int | None
    moved_in: int
    moved_out: int

    @property
    def label(self) -> str:
        return SEGMENT_LABELS[self.segment]


async def segment_summaries(
    session: AsyncSession, since: datetime | None = None
) -> list[SegmentSummary]:
    """The eight segments in the operators' order, each with its customers, share of all
    scored customers, revenue (sum of monetary), average monetary (rounded half up to a minor
    unit; None when empty) and the moves in and out of it since ``since``."""
    totals = {
        segment: (int(count), int(revenue or 0))
        for segment, count, revenue in (
            await session.execute(
                select(
                    col(CustomerRfm.segment), func.count(), func.sum(col(CustomerRfm.monetary))
                ).group_by(col(CustomerRfm.segment))
            )
        ).all()
    }
    moved_in = await _moves(session, col(CustomerSegmentChange.to_segment), since)
    moved_out = await _moves(session, col(CustomerSegmentChange.from_segment), since)
    everyone = sum(count for count, _ in totals.values())
    out = []
    for segment in CustomerSegment:
        count, revenue = totals.get(segment, (0, 0))
        out.append(
            SegmentSummary(
                segment=segment,
                customers=count,
                share=count / everyone if everyone else 0.0,
                revenue=revenue,
                average_monetary=(2 * revenue + count) // (2 * count) if count else None,
                moved_in=moved_in.get(segment, 0),
                moved_out=moved_out.get(segment, 0),
            )
        )
    return out


async def _moves(
    session: AsyncSession, column: Any, since: datetime | None
) -> dict[CustomerSegment, int]:
    stmt = select(column, func.count()).where(column.is_not(None)).group_by(column)
    if since is not None:
        stmt = stmt.where(col(CustomerSegmentChange.at) >= since)
    return {segment: int(count) for segment, count in (await session.execute(stmt)).all()}


def in_segment(segment: CustomerSegment) -> Any:
    """The ids of the customers now in ``segment`` (a subquery for the customer list)."""
    return select(col(CustomerRfm.customer_id)).where(col(CustomerRfm.segment) == segment)


async def erase(session: AsyncSession, customer_id: int) -> None:
    """Forget a customer's figures and segment history (their account is being erased)."""
    await session.execute(delete(CustomerRfm).where(col(CustomerRfm.customer_id) == customer_id))
    await session.execute(
        delete(CustomerSegmentChange).where(col(CustomerSegmentChange.customer_id) == customer_id)
    )
