"""Store and locker pickup (自提): when an order is ready at a pickup point, from its opening
hours, and the public list of a city's points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import PickupPoint
from plugins.logistics.service import geo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A point closed for longer than this is not offered.
LOOKAHEAD_DAYS = 8


def _clock(text: Any) -> time | None:
    """ "HH:MM" as a time; "24:00" is the end of the day (None: not a time)."""
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
    except ValueError:
        return None
    if (hours, minutes) == (24, 0):
        return time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        return None
    return time(hours, minutes)


def intervals(hours: Mapping[str, Any], weekday: int) -> list[tuple[time, time]]:
    """The opening intervals of a weekday (0 = Monday), in order; malformed ones left out."""
    found: list[tuple[time, time]] = []
    for interval in hours.get(WEEKDAYS[weekday]) or []:
        if not isinstance(interval, Sequence) or len(interval) != 2:
            continue
        start, end = _clock(interval[0]), _clock(interval[1])
        if start is not None and end is not None and start < end:
            found.append((start, end))
    return sorted(found)


def ready_at(earliest: datetime, hours: Mapping[str, Any]) -> datetime | None:
    """The first moment at or after ``earliest`` (local, aware) the point is open: when the
    shopper can collect an order prepared by ``earliest``. None: closed for over a week."""
    for offset in range(LOOKAHEAD_DAYS):
        day = earliest.date() + timedelta(days=offset)
        for start, end in intervals(hours, day.weekday()):
            opens = datetime.combine(day, start, earliest.tzinfo)
            closes = datetime.combine(day, end, earliest.tzinfo)
            if earliest < closes:
                return max(earliest, opens)
    return None


async def points_in(
    session: AsyncSession, *, city: str | None, province: str | None, limit: int
) -> list[PickupPoint]:
    """The active pickup points of a city and/or province (names with or without their
    suffix, 杭州 or 杭州市), by code; at most ``limit``."""
    rows = await session.scalars(
        select(PickupPoint).where(col(PickupPoint.is_active)).order_by(col(PickupPoint.code))
    )
    found = [
        p
        for p in rows
        if (not city or geo.same_region(p.city, city))
        and (not province or geo.same_region(p.province, province))
    ]
    return found[:limit]
