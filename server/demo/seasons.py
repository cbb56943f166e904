"""Demo data: the shopping calendar of this market — 618 in June, Double 11 in November, the
Spring Festival lull — as day-by-day weights of how much shopping happens, and the time change
that turns a steady rhythm into a seasonal one.

A customer who buys at a rate λ "on an ordinary day" buys at λ·w(d) on day d. Counting time in
*shopping days* (the running sum of the weights) instead of calendar days, every customer's
purchases are a plain Poisson process again: :class:`Season` converts between the two clocks.
The weights are scaled to average 1 over the history, so a rate per week is the customer's
average rate over the history.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta

# The first day of the lunar new year (春节), which moves between late January and February.
# fmt: off
SPRING_FESTIVAL = {
    2019: date(2019, 2, 5), 2020: date(2020, 1, 25), 2021: date(2021, 2, 12),
    2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10),
    2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
    2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
    2031: date(2031, 1, 23), 2032: date(2032, 2, 11), 2033: date(2033, 1, 31),
    2034: date(2034, 2, 19), 2035: date(2035, 2, 8),
}
# fmt: on

# The days the big sales peak on: 618 (June 18) and Double 11 (November 11). Their orders
# start at midnight, when the sale prices go live.
PEAK_DAYS = ((6, 18), (11, 11))


def spring_festival(year: int) -> date:
    """The Spring Festival of ``year`` (early February when the table does not know it)."""
    return SPRING_FESTIVAL.get(year, date(year, 2, 1))


def _spring_offset(day: date) -> int:
    """Days from the nearest Spring Festival (negative before it)."""
    return min(
        ((day - spring_festival(year)).days for year in (day.year - 1, day.year, day.year + 1)),
        key=abs,
    )


def is_peak_day(day: date) -> bool:
    return (day.month, day.day) in PEAK_DAYS


def _in_sale(day: date) -> bool:
    """The run-up to a peak day: June 1–17 and October 31 – November 10."""
    if day.month == 6:
        return day.day < 18
    return (day.month, day.day) == (10, 31) or (day.month == 11 and day.day < 11)


def shop_weight(day: date) -> float:
    """The whole shop's seasonality: a modest lift through 618 and Double 11 and on their
    peak days, the New Year goods fair (年货节) before the Spring Festival, and its lull, when
    couriers stop and people travel home."""
    spring = _spring_offset(day)
    if -7 <= spring <= 7:
        return 0.55
    if -21 <= spring < -7:
        return 1.1
    if is_peak_day(day):
        return 2.2 if day.month == 11 else 1.9
    if _in_sale(day):
        return 1.25
    return 1.0


def promotion_weight(day: date) -> float:
    """Seasonal buyers: mostly on 618 and Double 11, little in between."""
    if -7 <= _spring_offset(day) <= 7:
        return 0.05
    if is_peak_day(day):
        return 10.0 if day.month == 11 else 8.0
    if _in_sale(day):
        return 2.5
    return 0.2


class Season:
    """A day-by-day weight over ``days`` days from midnight ``start``, averaging 1, and the
    clock of shopping days it defines (:meth:`position`, :meth:`moment`)."""

    def __init__(self, start: datetime, days: int, weight: Callable[[date], float]) -> None:
        raw = [weight((start + timedelta(days=d)).date()) for d in range(days)]
        mean = sum(raw) / days
        self.start = start
        self.weights = [w / mean for w in raw]
        # cumulative[d]: shopping days from the start to the start of day d.
        self.cumulative = [0.0, *itertools.accumulate(self.weights)]

    @property
    def total(self) -> float:
        return self.cumulative[-1]

    def position(self, at: datetime) -> float:
        """Shopping days from the start to ``at`` (clamped to the history)."""
        days = (at - self.start).total_seconds() / 86400
        if days <= 0:
            return 0.0
        d = int(days)
        if d >= len(self.weights):
            return self.total
        return self.cumulative[d] + (days - d) * self.weights[d]

    def moment(self, position: float) -> datetime:
        """The moment ``position`` shopping days after the start."""
        position = min(max(position, 0.0), self.total)
        d = min(bisect.bisect_right(self.cumulative, position) - 1, len(self.weights) - 1)
        fraction = (position - self.cumulative[d]) / self.weights[d]
        return self.start + timedelta(days=d + min(fraction, 1.0))
