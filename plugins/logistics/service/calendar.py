"""The working-day calendar of promises (docs/plugins/logistics.md, "Delivery promises").

Two calendars meet in a promise:

- **Warehouses** work on the public calendar of mainland China, from the ``holidays``
  library: Monday to Friday, plus the adjusted working Saturdays and Sundays (调休), minus the
  public holidays (Spring Festival, National Day ...).
- **Carriers** collect and deliver on their own: never on a public holiday nor on one of the
  carrier's ``non_working_days``; on a weekend only when the carrier ``works_weekends`` (most
  express companies do) or when the weekend day is an adjusted working day.

A parcel leaves on a *dispatch day*: a day the warehouse works and the carrier collects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import holidays

# No calendar walk goes further than this: a carrier that never works would loop forever.
MAX_WALK_DAYS = 400


class CarrierDays(Protocol):
    """What the calendar reads of a carrier (a Carrier row fits)."""

    works_weekends: bool
    non_working_days: list[str]


@cache
def _public(year: int) -> Any:
    # One library object per year: building it walks the year's rules.
    return holidays.country_holidays("CN", years=year)


@cache
def _breaks(year: int) -> frozenset[date]:
    """The holiday breaks around the public holidays of ``year``: each holiday with the
    non-working days it runs into, so the weekend inside the Spring Festival break
    (2026-02-15..23) is part of it, not an ordinary weekend."""
    days: set[date] = set()
    for holiday in _public(year):
        for step in (-1, 1):
            day = holiday
            while not warehouse_works(day):
                days.add(day)
                day += timedelta(days=step)
    return frozenset(days)


def is_public_holiday(day: date) -> bool:
    """A day of a public holiday break of mainland China: a holiday, a day off moved next to
    one, or a weekend day inside the break."""
    return any(day in _breaks(year) for year in (day.year - 1, day.year, day.year + 1))


def warehouse_works(day: date) -> bool:
    """A public working day: weekdays and adjusted working weekend days, not holidays."""
    return bool(_public(day.year).is_working_day(day))


def carrier_works(day: date, carrier: CarrierDays) -> bool:
    """The carrier collects and delivers on ``day``."""
    if day.isoformat() in carrier.non_working_days or is_public_holiday(day):
        return False
    if day.weekday() < 5:
        return True
    return carrier.works_weekends or day in _public(day.year).weekend_workdays


def dispatch_day(day: date, carrier: CarrierDays) -> bool:
    """A parcel can leave on ``day``: the warehouse works and the carrier collects."""
    return warehouse_works(day) and carrier_works(day, carrier)


def _next(day: date, ok: Any) -> date:
    for _ in range(MAX_WALK_DAYS):
        day += timedelta(days=1)
        if ok(day):
            return day
    raise ValueError("no working day within a year")


def add_working_days(day: date, n: int, carrier: CarrierDays) -> date:
    """The ``n``-th day after ``day`` the carrier works (``day`` itself for n = 0)."""
    for _ in range(n):
        day = _next(day, lambda d: carrier_works(d, carrier))
    return day


def local_time(moment: datetime, tz: str) -> datetime:
    """``moment`` (aware) in the time zone ``tz``."""
    return moment.astimezone(ZoneInfo(tz))


def leaves_on(
    order_time: datetime,
    *,
    cutoff_minutes: int,
    handling_days: int,
    carrier: CarrierDays,
    tz: str,
) -> date:
    """The day a parcel ordered at ``order_time`` leaves the warehouse: the order day when it
    is a dispatch day and the order came before the cut-off (local minutes after midnight),
    else the next dispatch day; then ``handling_days`` dispatch days later."""
    local = local_time(order_time, tz)
    day = local.date()
    if not dispatch_day(day, carrier) or local.hour * 60 + local.minute >= cutoff_minutes:
        day = _next(day, lambda d: dispatch_day(d, carrier))
    for _ in range(handling_days):
        day = _next(day, lambda d: dispatch_day(d, carrier))
    return day


@dataclass(frozen=True)
class Window:
    """A promised delivery: the day the parcel leaves and the days it arrives between."""

    leaves: date
    earliest: date
    latest: date


def promise(
    order_time: datetime,
    *,
    cutoff_minutes: int,
    handling_days: int,
    min_days: int,
    max_days: int,
    carrier: CarrierDays,
    tz: str,
) -> Window:
    """leaves_on, then ``min_days``..``max_days`` of the carrier's working days on the road."""
    leaves = leaves_on(
        order_time,
        cutoff_minutes=cutoff_minutes,
        handling_days=handling_days,
        carrier=carrier,
        tz=tz,
    )
    return Window(
        leaves,
        add_working_days(leaves, min_days, carrier),
        add_working_days(leaves, max(min_days, max_days), carrier),
    )
