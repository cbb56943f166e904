"""Periods of shop days cut into buckets (server/services/periods.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from server.hooktypes import KpiBucket
from server.services.errors import ValidationFailed
from server.services.forecasts import day_start
from server.services.periods import MAX_BUCKETS, Granularity, buckets


def spans(first: date, last: date, granularity: Granularity) -> list[tuple[str, str]]:
    return [(b.start.isoformat(), b.end.isoformat()) for b in buckets(first, last, granularity)]


def test_months_cross_the_year_and_are_cut_to_the_period() -> None:
    assert spans(date(2025, 12, 30), date(2026, 2, 2), Granularity.MONTH) == [
        ("2025-12-30", "2026-01-01"),
        ("2026-01-01", "2026-02-01"),
        ("2026-02-01", "2026-02-03"),
    ]


def test_weeks_run_monday_to_sunday() -> None:
    # 2026-03-01 is a Sunday: a bucket of its own, then whole weeks, then the cut end.
    assert spans(date(2026, 3, 1), date(2026, 3, 17), Granularity.WEEK) == [
        ("2026-03-01", "2026-03-02"),
        ("2026-03-02", "2026-03-09"),
        ("2026-03-09", "2026-03-16"),
        ("2026-03-16", "2026-03-18"),
    ]


def test_one_day_is_one_bucket_whatever_the_granularity() -> None:
    for granularity in Granularity:
        assert buckets(date(2024, 2, 29), date(2024, 2, 29), granularity) == [
            KpiBucket(date(2024, 2, 29), date(2024, 3, 1))
        ]


def test_too_many_buckets_or_a_reversed_period_are_refused() -> None:
    last = date(2026, 1, 1)
    first = date.fromordinal(last.toordinal() - MAX_BUCKETS + 1)
    assert len(buckets(first, last, Granularity.DAY)) == MAX_BUCKETS
    with pytest.raises(ValidationFailed) as many:
        buckets(date.fromordinal(first.toordinal() - 1), last, Granularity.DAY)
    assert many.value.field == "granularity"
    with pytest.raises(ValidationFailed) as reversed_:
        buckets(last, first, Granularity.MONTH)
    assert reversed_.value.field == "to"


def test_days_at_the_calendars_ends_are_refused_not_crashed_on() -> None:
    with pytest.raises(ValidationFailed) as late:
        buckets(date(9999, 12, 31), date(9999, 12, 31), Granularity.MONTH)
    assert late.value.field == "to"
    with pytest.raises(ValidationFailed) as early:
        buckets(date(1, 1, 1), date(1, 1, 2), Granularity.DAY)
    assert early.value.field == "from"
    assert buckets(date(9998, 12, 31), date(9998, 12, 31), Granularity.MONTH) == [
        KpiBucket(date(9998, 12, 31), date(9999, 1, 1))
    ]


def test_a_shop_day_starts_at_16_utc_the_day_before() -> None:
    assert day_start(date(2026, 6, 1)) == datetime(2026, 5, 31, 16, 0, tzinfo=UTC)
