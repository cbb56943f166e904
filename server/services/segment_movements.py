"""Who moved between the RFM segments over a period: the recorded segment changes
(``customer_segment_change``, written by :func:`server.services.rfm.rebuild`) counted per
bucket of shop days and per pair of segments (docs/insights.md, "Segment movements").

A change is dated by the moment of the recomputation that recorded it (its "as of"). A change
from no segment is a customer's first purchase ("entered"); a change to no segment is a
customer left without a purchase ("left"); the others are moves between two segments
("moved").
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.hooktypes import KpiBucket
from server.models import CustomerSegment, CustomerSegmentChange
from server.services.forecasts import day_start, shop_day_sql

# Segments in the operators' order; no segment (a first purchase, or none left) sorts first as
# a source and last as a destination.
_ORDER = {segment: i for i, segment in enumerate(CustomerSegment)}


@dataclass(frozen=True)
class SegmentFlow:
    """Customers' moves from one segment to another over the whole period (``source`` None: a
    first purchase; ``target`` None: no purchase left)."""

    source: CustomerSegment | None
    target: CustomerSegment | None
    count: int


@dataclass(frozen=True)
class MovementBucket:
    """The changes recorded in one bucket."""

    start: date
    end: date
    moved: int
    entered: int
    left: int


@dataclass(frozen=True)
class SegmentMovements:
    buckets: list[MovementBucket]
    flows: list[SegmentFlow]

    @property
    def total(self) -> int:
        return sum(flow.count for flow in self.flows)


def _flow_key(flow: SegmentFlow) -> tuple[int, int]:
    source = -1 if flow.source is None else _ORDER[flow.source]
    target = len(_ORDER) if flow.target is None else _ORDER[flow.target]
    return source, target


async def segment_movements(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> SegmentMovements:
    """The changes recorded from the first bucket's start to the last one's end: per bucket,
    and per (from, to) pair over the whole period (pairs with no change left out; first
    purchases first, then by the segments' order). One aggregate statement ``GROUP BY`` shop
    day and pair."""
    if not buckets:
        return SegmentMovements([], [])
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    at = col(CustomerSegmentChange.at)
    day = shop_day_sql(at, dialect).label("day")
    source = col(CustomerSegmentChange.from_segment)
    target = col(CustomerSegmentChange.to_segment)
    stmt = (
        select(day, source, target, func.count())
        .where(at >= day_start(buckets[0].start), at < day_start(buckets[-1].end))
        .group_by(day, source, target)
    )
    starts = [bucket.start for bucket in buckets]
    kinds: list[Counter[str]] = [Counter() for _ in buckets]
    pairs: Counter[tuple[CustomerSegment | None, CustomerSegment | None]] = Counter()
    for shop_day, came_from, went_to, count in (await session.execute(stmt)).all():
        # SQLite's date() answers text, PostgreSQL a date.
        when = shop_day if isinstance(shop_day, date) else date.fromisoformat(shop_day)
        index = bisect_right(starts, when) - 1
        kind = "entered" if came_from is None else "left" if went_to is None else "moved"
        kinds[index][kind] += int(count)
        pairs[came_from, went_to] += int(count)
    flows = sorted(
        (SegmentFlow(source=a, target=b, count=n) for (a, b), n in pairs.items()), key=_flow_key
    )
    return SegmentMovements(
        buckets=[
            MovementBucket(
                start=bucket.start,
                end=bucket.end,
                moved=counted["moved"],
                entered=counted["entered"],
                left=counted["left"],
            )
            for bucket, counted in zip(buckets, kinds, strict=True)
        ],
        flows=flows,
    )
