"""The promise calendar: the public working days of mainland China (holidays library) for
warehouses, each carrier's own days for the road, cut-offs and handling days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from plugins.logistics.models import Carrier
from plugins.logistics.service import calendar

SHANGHAI = timezone(timedelta(hours=8))
TZ = "Asia/Shanghai"
EXPRESS = Carrier(code="SF", name="顺丰", works_weekends=True)
FLEET = Carrier(code="OWN", name="自营", works_weekends=False)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    """A moment given in Shanghai time, as the UTC instant the service receives."""
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def leaves(
    moment: datetime, carrier: Carrier = EXPRESS, *, cutoff: int = 16 * 60, handling: int = 0
) -> date:
    return calendar.leaves_on(
        moment, cutoff_minutes=cutoff, handling_days=handling, carrier=carrier, tz=TZ
    )


def test_the_cut_off_just_missed_leaves_the_next_working_day() -> None:
    tuesday = date(2026, 3, 10)
    assert leaves(at(tuesday, 15, 59)) == tuesday
    assert leaves(at(tuesday, 16, 0)) == date(2026, 3, 11)
    # The cut-off is read in the shop's time zone: 08:30 UTC is 16:30 in Shanghai.
    assert leaves(datetime(2026, 3, 10, 8, 30, tzinfo=UTC)) == date(2026, 3, 11)
    assert leaves(datetime(2026, 3, 10, 7, 59, tzinfo=UTC)) == tuesday
    # Handling days are dispatch days after the day it could leave.
    assert leaves(at(tuesday, 10), handling=2) == date(2026, 3, 12)
    assert leaves(at(date(2026, 3, 12), 17), handling=1) == date(2026, 3, 16)


def test_friday_evening_reaches_monday_for_a_carrier_off_at_weekends() -> None:
    friday = date(2026, 3, 13)
    # Warehouses keep the public calendar: nothing leaves on Saturday or Sunday.
    assert leaves(at(friday, 18), FLEET) == date(2026, 3, 16)
    assert leaves(at(friday, 18), EXPRESS) == date(2026, 3, 16)
    # Left on Friday afternoon with one day on the road: the express company delivers on
    # Saturday, the fleet on Monday.
    for carrier, first in ((EXPRESS, date(2026, 3, 14)), (FLEET, date(2026, 3, 16))):
        window = calendar.promise(
            at(friday, 15),
            cutoff_minutes=16 * 60,
            handling_days=0,
            min_days=1,
            max_days=2,
            carrier=carrier,
            tz=TZ,
        )
        assert window.leaves == friday
        assert window.earliest == first
    assert calendar.add_working_days(friday, 2, EXPRESS) == date(2026, 3, 15)
    assert calendar.add_working_days(friday, 2, FLEET) == date(2026, 3, 17)


def test_an_order_during_spring_festival_leaves_after_the_holiday() -> None:
    # The 2026 break runs from Sunday 15 to Monday 23 February, weekends inside it included.
    for day in (date(2026, 2, 15), date(2026, 2, 17), date(2026, 2, 21), date(2026, 2, 23)):
        assert calendar.is_public_holiday(day)
        assert not calendar.warehouse_works(day)
        assert not calendar.carrier_works(day, EXPRESS)
    assert leaves(at(date(2026, 2, 16), 10)) == date(2026, 2, 24)
    assert leaves(at(date(2026, 2, 13), 17), FLEET) == date(2026, 2, 14)
    # Left on Friday 13th: the express company delivers on the working Saturday, then not
    # before the break ends.
    window = calendar.promise(
        at(date(2026, 2, 13), 9),
        cutoff_minutes=16 * 60,
        handling_days=0,
        min_days=1,
        max_days=2,
        carrier=EXPRESS,
        tz=TZ,
    )
    assert (window.leaves, window.earliest, window.latest) == (
        date(2026, 2, 13),
        date(2026, 2, 14),
        date(2026, 2, 24),
    )
    # An ordinary weekend next to no holiday is not a holiday.
    assert not calendar.is_public_holiday(date(2026, 3, 14))
    # The New Year break (1-3 January) takes in its Saturday.
    assert calendar.is_public_holiday(date(2026, 1, 3))


def test_an_adjusted_working_saturday_counts_as_a_working_day() -> None:
    saturday = date(2026, 2, 14)  # 调休: worked for the Spring Festival break
    assert calendar.warehouse_works(saturday)
    assert calendar.carrier_works(saturday, FLEET)
    assert leaves(at(saturday, 10), FLEET) == saturday
    # An ordinary Saturday: the order waits for Monday.
    assert leaves(at(date(2026, 3, 14), 10), FLEET) == date(2026, 3, 16)
    assert not calendar.carrier_works(date(2026, 3, 14), FLEET)
    assert calendar.carrier_works(date(2026, 3, 14), EXPRESS)


def test_a_carriers_own_non_working_day() -> None:
    closed = Carrier(code="YT", name="圆通", works_weekends=True, non_working_days=["2026-03-11"])
    # Missed Tuesday's cut-off: Wednesday is the carrier's day off, so Thursday.
    assert leaves(at(date(2026, 3, 10), 17), closed) == date(2026, 3, 12)
    assert leaves(at(date(2026, 3, 10), 17), EXPRESS) == date(2026, 3, 11)
    # Nor does it deliver that day.
    assert calendar.add_working_days(date(2026, 3, 10), 1, closed) == date(2026, 3, 12)
