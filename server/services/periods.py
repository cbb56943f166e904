"""Periods of shop days cut into buckets by a granularity, and the shop's day of a stored moment
in SQL.

A period is given as its first and last shop day, both included (what an operator picks: "1 to
30 November"); its buckets are :class:`~server.hooktypes.KpiBucket` values, shop days with the
end excluded. A shop day is a day of the shop's time zone (UTC+8,
:func:`server.services.forecasts.shop_day`).

- ``DAY``: one bucket per day;
- ``WEEK``: weeks from Monday to Sunday;
- ``MONTH``: calendar months;

the first and the last bucket are cut to the period, so that the buckets cover it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from server.hooktypes import KpiBucket
from server.models.insights import Granularity
from server.services.errors import ValidationFailed

# The longest period a query covers, and the most buckets it is cut into.
MAX_PERIOD_DAYS = 5 * 366
MAX_BUCKETS = 400
# The days a period may hold: far from the calendar's ends, whose neighbours (a day later,
# the UTC moment a shop day starts) Python cannot represent.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)


def _next_start(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return day + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return day + timedelta(days=7 - day.weekday())
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def buckets(first: date, last: date, granularity: Granularity) -> list[KpiBucket]:
    """The buckets of the days ``first`` to ``last`` (both included), in order. A reversed or
    over-long period, or one cut into more than :data:`MAX_BUCKETS`, is refused."""
    if first < FIRST_DAY:
        raise ValidationFailed(f"from must be {FIRST_DAY} or later", field="from")
    if last > LAST_DAY:
        raise ValidationFailed(f"to must be {LAST_DAY} or earlier", field="to")
    if last < first:
        raise ValidationFailed("to must not be before from", field="to")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(f"a period spans at most {MAX_PERIOD_DAYS} days", field="to")
    out: list[KpiBucket] = []
    end = last + timedelta(days=1)
    start = first
    while start < end:
        stop = min(_next_start(start, granularity), end)
        out.append(KpiBucket(start, stop))
        start = stop
        if len(out) > MAX_BUCKETS:
            raise ValidationFailed(
                f"a period is cut into at most {MAX_BUCKETS} buckets: choose a coarser "
                "granularity or a shorter period",
                field="granularity",
            )
    return out


@dataclass(frozen=True)
class Moments:
    """The moments at or after ``start`` and before ``end`` (what search analytics and
    satisfaction figures count over)."""

    start: datetime
    end: datetime


def moments(
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    *,
    default: timedelta,
    longest: timedelta,
) -> Moments:
    """``[start, end)``: ``end`` defaults to now, ``start`` to ``default`` before ``end``; a
    time without an offset is UTC. An empty, reversed or over-long period is refused."""
    end = aware(end) if end is not None else now
    start = aware(start) if start is not None else end - default
    if start >= end:
        raise ValidationFailed("from must be before to", field="from")
    if end - start > longest:
        raise ValidationFailed(f"a period spans at most {longest.days} days", field="from")
    return Moments(start, end)


def aware(at: datetime) -> datetime:
    """``at`` with UTC as its offset when it has none (SQLite gives naive UTC moments)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
