"""The anomaly detector: the robust z-score by hand, the forecast of a weekly pattern, silence
without enough history, injected spikes and drops flagged, no false alarm on clean seasonal
noise with an old outlier, the plain mean/standard-deviation baseline fooled where the robust
detector is not, and anomaly alerts raised from a plugin's KPI on both databases."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import create_engine, session_factory
from server.models import Alert, AlertDirection, AlertKind
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import load_plugins
from server.services import alerts, anomalies
from server.services.anomalies import examine, forecast_next, plain_zscore, robust_zscore
from tests.plugins.fakes import FakePlugin

# A shop's week, Monday first: quiet early in the week, busy at the weekend.
WEEKLY = np.array([1.0, 0.9, 0.92, 0.95, 1.05, 1.3, 1.25])


def seasonal(days: int, *, level: float = 300.0, seed: int = 0) -> list[float]:
    """Poisson counts around ``level`` × the weekly pattern (day 0 a Monday)."""
    rng = np.random.default_rng(seed)
    mean = level * WEEKLY[np.arange(days) % 7]
    return [float(v) for v in rng.poisson(mean)]


# --- the formulas, by hand ----------------------------------------------------------------------


def test_the_robust_z_score_by_hand() -> None:
    misses = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 10.0]
    # median 1; absolute deviations 3 2 1 0 1 2 9: MAD 2.
    assert robust_zscore(misses, 12.0) == pytest.approx((12 - 1) / (1.4826 * 2))
    assert robust_zscore(misses, -4.0) == pytest.approx((-4 - 1) / (1.4826 * 2))
    # Half the misses the same: MAD 0, no scale to judge by.
    assert robust_zscore([0.0, 0.0, 0.0, 1.0], 5.0) is None


def test_the_plain_z_score_by_hand() -> None:
    pattern = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    # Week one 2 under the pattern, week two 2 over: weekday means are the pattern, the
    # deviations ±2 (seven each), their standard deviation 2·√(14/13).
    history = [v - 2 for v in pattern] + [v + 2 for v in pattern]
    z = plain_zscore([*history, 10.0 + 10])  # the day after: a Monday, 10 over its mean
    assert z == pytest.approx(10 / (2 * math.sqrt(14 / 13)))


def test_a_weekly_pattern_is_forecast_exactly() -> None:
    pattern = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    history = np.array(pattern * 6)
    assert forecast_next(history) == pytest.approx(10.0)  # day 42: a Monday
    assert forecast_next(history[:-1]) == pytest.approx(70.0)
    # Grown by 100 from one week to the next: the level follows (the last 7 days' median).
    grown = np.array(pattern * 5 + [v + 100 for v in pattern])
    assert forecast_next(grown) == pytest.approx(110.0)
    # Every day as forecast: the misses do not vary, nothing can be judged.
    assert examine([*(pattern * 7), 500.0]) is None


def test_silent_without_enough_history_or_a_value() -> None:
    series = seasonal(80, seed=3)
    assert examine(series[:41] + [900.0]) is None  # 41 days of history: too few
    assert examine(series[:42] + [900.0]) is not None  # 42 days: enough
    assert examine([*series[:60], None]) is None  # the day has no value
    # Days before the KPI had anything to count are not history: 30 zeros and 30 days is 30.
    assert examine([0.0] * 30 + series[:30] + [900.0]) is None
    assert examine([None] * 30 + series[:50] + [900.0]) is not None
    # A few days without a value (a ratio of nothing) are skipped, not fatal.
    gappy: list[float | None] = list(series[:56])
    gappy[10] = gappy[33] = None
    assert examine([*gappy, 900.0]) is not None


# --- on synthetic series ------------------------------------------------------------------------


def test_an_injected_spike_and_drop_on_the_last_day_are_flagged() -> None:
    series = seasonal(57, seed=1)
    true_mean = 300.0 * WEEKLY[56 % 7]
    normal = examine(series)
    assert normal is not None and not normal.is_anomaly()
    assert normal.expected == pytest.approx(true_mean, rel=0.1)
    assert normal.errors == 56 - anomalies.MIN_FIT_DAYS
    spike = examine([*series[:-1], true_mean * 1.6])
    drop = examine([*series[:-1], true_mean * 0.5])
    assert spike is not None and spike.is_anomaly() and spike.score > 3.5
    assert drop is not None and drop.is_anomaly() and drop.score < -3.5
    assert spike.expected == pytest.approx(normal.expected)  # the day never moves its forecast


def test_clean_seasonal_noise_with_an_old_outlier_raises_no_false_alarm() -> None:
    for seed in range(30):
        series = seasonal(57, seed=100 + seed)
        series[20] *= 4  # a flash sale three weeks ago
        found = examine(series)
        assert found is not None and not found.is_anomaly(), (seed, found)


def test_the_robust_detector_catches_a_drop_the_plain_z_score_misses() -> None:
    series = seasonal(57, seed=7)
    series[25] *= 6  # one huge day a month ago inflates the standard deviation
    expected = 300.0 * WEEKLY[56 % 7]
    series[-1] = expected * 0.72  # a traffic drop of 28%
    robust = examine(series)
    plain = plain_zscore(series)
    assert robust is not None and plain is not None
    assert robust.is_anomaly() and robust.score < -3.5
    assert abs(plain) < 3.5, plain
    # Without the old outlier both see it: the difference is robustness alone.
    series[25] /= 6
    clean_plain = plain_zscore(series)
    assert clean_plain is not None and clean_plain < -3.5


def test_false_alarms_are_rare_and_doubled_days_are_caught() -> None:
    """Over 200 simulated shops (negative binomial counts of about 200 a day, 10% noise, a weekly
    pattern, one past outlier each), the detector flags at most 1% of clean days and catches
    95% of doubled ones."""
    rng = np.random.default_rng(2024)
    false_alarms = caught = 0
    for _ in range(200):
        mean = 200.0 * WEEKLY[np.arange(57) % 7]
        series = rng.negative_binomial(200, 200 / (200 + mean)).astype(float)
        series[rng.integers(5, 48)] *= rng.choice([0.2, 3.0])
        clean = examine(list(series))
        assert clean is not None
        false_alarms += clean.is_anomaly()
        doubled = examine([*series[:-1], series[-1] * 2])
        assert doubled is not None
        caught += doubled.is_anomaly()
    assert false_alarms <= 2
    assert caught >= 190


# --- alerts from the shop's KPIs ----------------------------------------------------------------


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def series_kpi(
    key: str, by_day: Mapping[date, float], *, unit: KpiUnit, higher_is_better: bool = True
) -> Kpi:
    """A KPI whose daily values are ``by_day`` (None on other days)."""

    async def compute(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [by_day.get(b.start) for b in buckets]

    return Kpi(key, key.split(".")[1].title(), unit, compute, higher_is_better=higher_is_better)


AS_OF = datetime(2026, 3, 11, 2, 0, tzinfo=UTC)  # shop day March 11, 10:00
YESTERDAY = date(2026, 3, 10)  # a Tuesday


def by_day(values: Sequence[float]) -> dict[date, float]:
    """``values`` ending yesterday."""
    first = YESTERDAY - timedelta(days=len(values) - 1)
    return {first + timedelta(days=i): v for i, v in enumerate(values)}


async def test_anomaly_alerts_name_the_direction(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    # 57 days ending yesterday (a Tuesday): day 0 is a Tuesday, so shift the weekly pattern.
    def shop_series(level: float, seed: int) -> list[float]:
        return seasonal(58, level=level, seed=seed)[1:]

    visitors = shop_series(2000, 1)
    visitors[-1] = 2000 * WEEKLY[1] * 0.6  # a traffic drop
    returns = [v / 1000 for v in shop_series(40, 2)]
    returns[-1] = 40 * WEEKLY[1] / 1000 * 2.5  # a return-rate spike
    gmv = shop_series(900, 3)
    gmv[-1] = 900 * WEEKLY[1] * 1.8  # a good day
    quiet = shop_series(500, 4)
    plugin = FakePlugin(
        "shop",
        kpis=lambda: [
            series_kpi("shop.visitors", by_day(visitors), unit=KpiUnit.COUNT),
            series_kpi(
                "shop.return_rate", by_day(returns), unit=KpiUnit.RATIO, higher_is_better=False
            ),
            series_kpi("shop.gmv", by_day(gmv), unit=KpiUnit.MONEY),
            series_kpi("shop.quiet", by_day(quiet), unit=KpiUnit.COUNT),
        ],
    )
    settings = Settings(
        database_url=database_url,
        plugins="",
        anomaly_kpis="shop.visitors, shop.return_rate,shop.gmv,shop.quiet,shop.missing",
    )
    runtime = load_plugins(settings, extra=[plugin])
    report = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF)
    assert (report.thresholds, report.anomalies, report.stock_outs) == (0, 3, 0)
    async with sessions() as s:
        rows = (await s.execute(select(Alert).order_by(Alert.kpi_key))).scalars().all()
    found = {a.kpi_key: a for a in rows}
    assert set(found) == {"shop.gmv", "shop.return_rate", "shop.visitors"}
    for alert in rows:
        assert alert.kind is AlertKind.ANOMALY and alert.rule_id is None
        assert (alert.bucket_start, alert.bucket_end) == (YESTERDAY, date(2026, 3, 11))
        assert alert.threshold == 3.5 and alert.created_at == AS_OF
        assert alert.key == f"anomaly:{alert.kpi_key}:2026-03-10"
    drop, spike, good = found["shop.visitors"], found["shop.return_rate"], found["shop.gmv"]
    assert drop.direction is AlertDirection.DOWN and drop.bad_news and drop.score < -3.5
    assert drop.value == pytest.approx(visitors[-1])
    assert drop.expected == pytest.approx(2000 * WEEKLY[1], rel=0.1)
    assert drop.message.startswith("Visitors drop on 2026-03-10: 1,080, ")
    assert spike.direction is AlertDirection.UP and spike.bad_news and spike.score > 3.5
    assert spike.message.startswith("Return_Rate spike on 2026-03-10: 9.0%, ")
    assert good.direction is AlertDirection.UP and not good.bad_news
    assert good.message.startswith("Gmv spike on 2026-03-10: 14.58 CNY, ")
    # The same day again: nothing new.
    again = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF + timedelta(hours=1))
    assert again.anomalies == 0
