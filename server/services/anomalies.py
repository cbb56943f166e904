"""The anomaly detector: is a day's KPI value out of line with its recent history?
(docs/insights.md, "Alerts").

A day is compared with what its history forecasts for it, and the miss with the misses the same
forecast made on the days before: the day is an anomaly when its robust z-score

    z = (r − median(e)) / (1.4826 · MAD(e))

passes the threshold (3.5 by default), r being the day's miss (value − forecast) and e the
misses of the last weeks, each day forecast from the days before it. A spike when z > 0, a
drop when z < 0.

The forecast removes the weekly pattern with a median-by-weekday decomposition: a centred
running median over 7 days is the level; each weekday's offset is the median of its days'
distances from the level; the forecast of a day is the median of the last 7 values with their
weekday offsets taken off, plus the day's own offset. Medians everywhere, so that an earlier
spike or drop neither moves the forecast nor inflates the scale the next day is judged by.

Why not STL (statsmodels, ``robust=True``, period 7) on the history and the z-score of its
residuals: STL fits each day's own value, so its residuals are smaller than the miss of a day
it has not seen, and a normal day looks unusual (25% of clean simulated days flagged at 3.5);
fitted with the day itself, the fit bends towards the day and hides it. ``bench/anomalies.py``
measures both and :func:`plain_zscore`, the mean and standard-deviation baseline.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from server.hooktypes import Kpi, KpiBucket

WEEK = 7
# A day is forecast from at least four weeks before it (four of each weekday)…
MIN_FIT_DAYS = 28
# …and judged by at least two weeks of such forecasts' misses: 42 days of history at least.
MIN_ERRORS = 14
MIN_HISTORY_DAYS = MIN_FIT_DAYS + MIN_ERRORS
DEFAULT_HISTORY_DAYS = 56
DEFAULT_THRESHOLD = 3.5
# MAD × 1.4826 estimates the standard deviation of normal data.
MAD_SCALE = 1.4826

Array = npt.NDArray[np.float64]
log = logging.getLogger("shopgraph.alerts")


def _median(values: Array) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


def _running_median(values: Array, half: int = WEEK // 2) -> Array:
    """The centred running median over 2·half + 1 days (fewer at the ends), NaNs left out."""
    padded = np.pad(values, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    with warnings.catch_warnings():
        # A window without a value is NaN, which the callers expect: no warning about it.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(windows, axis=1)


def forecast_next(history: Array) -> float:
    """The value of the day after ``history`` (daily values, oldest first, NaN where unknown)
    as its weekly pattern and level give it; NaN when they cannot say."""
    n = history.shape[0]
    weekday = np.arange(n) % WEEK
    detrended = history - _running_median(history)
    offsets = np.array([_median(detrended[weekday == w]) for w in range(WEEK)])
    offsets = np.where(np.isfinite(offsets), offsets, 0.0)
    offsets -= offsets.mean()
    level = _median((history - offsets[weekday])[-WEEK:])
    return level + float(offsets[n % WEEK])


@dataclass(frozen=True)
class Detection:
    """What the detector found about a day: its value, the value expected of it (the forecast
    corrected by the median miss of the days before), and its robust z-score."""

    value: float
    expected: float
    score: float
    errors: int  # how many past misses the scale was measured on

    def is_anomaly(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        return abs(self.score) > threshold


def _as_array(series: Sequence[float | None]) -> Array:
    return np.array([math.nan if v is None else float(v) for v in series], dtype=np.float64)


def _history(values: Array) -> Array:
    """The days before the last one, from the first with a value other than 0 (days before
    the shop sold, or before a KPI had anything to count, are not history)."""
    history = values[:-1]
    started = np.flatnonzero(np.isfinite(history) & (history != 0))
    return history[started[0] :] if started.size else history[:0]


def examine(series: Sequence[float | None]) -> Detection | None:
    """The robust z-score of the last day of ``series`` (daily values, oldest first; None where
    the KPI had no value). None — silent — when the day has no value, the history is shorter
    than :data:`MIN_HISTORY_DAYS` days or gives fewer than :data:`MIN_ERRORS` misses, or the
    misses do not vary (MAD 0: the KPI is nearly always exactly as forecast)."""
    values = _as_array(series)
    if values.size == 0 or not math.isfinite(values[-1]):
        return None
    history = _history(values)
    if history.shape[0] < MIN_HISTORY_DAYS:
        return None
    misses = np.array(
        [
            history[t] - forecast_next(history[:t])
            for t in range(MIN_FIT_DAYS, history.shape[0])
            if math.isfinite(history[t])
        ]
    )
    misses = misses[np.isfinite(misses)]
    if misses.size < MIN_ERRORS:
        return None
    forecast = forecast_next(history)
    if not math.isfinite(forecast):
        return None
    value = float(values[-1])
    score = robust_zscore(misses, value - forecast)
    if score is None:
        return None
    return Detection(
        value=value,
        expected=forecast + float(np.median(misses)),
        score=score,
        errors=int(misses.size),
    )


def robust_zscore(misses: Sequence[float] | Array, miss: float) -> float | None:
    """(miss − median(misses)) / (1.4826 · MAD(misses)); None when the MAD is 0."""
    past = np.asarray(misses, dtype=np.float64)
    centre = float(np.median(past))
    mad = float(np.median(np.abs(past - centre)))
    if mad == 0:
        return None
    return (miss - centre) / (MAD_SCALE * mad)


def plain_zscore(series: Sequence[float | None]) -> float | None:
    """The textbook baseline: the last day's distance from the mean of its weekday over the
    history, over the standard deviation of every history day's distance from its weekday's
    mean. One earlier outlier inflates that deviation (and moves its weekday's mean), which
    :func:`examine`'s medians do not let happen."""
    values = _as_array(series)
    history = _history(values)
    n = history.shape[0]
    if n < 2 * WEEK or not math.isfinite(values[-1]):
        return None
    weekday = np.arange(n) % WEEK
    means = np.array([np.nanmean(history[weekday == w]) for w in range(WEEK)])
    deviations = history - means[weekday]
    deviations = deviations[np.isfinite(deviations)]
    spread = float(np.std(deviations, ddof=1))
    if spread == 0:
        return None
    return (float(values[-1]) - float(means[n % WEEK]) - float(deviations.mean())) / spread


# --- the shop's KPIs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    """A day on which a KPI was out of line."""

    kpi: Kpi
    day: date
    detection: Detection

    @property
    def spike(self) -> bool:
        return self.detection.score > 0

    @property
    def bad_news(self) -> bool:
        """A spike of a KPI where lower is better (refunds), a drop of one where higher is
        better (visitors)."""
        return self.spike != self.kpi.higher_is_better


async def kpi_values(
    session: AsyncSession, kpi: Kpi, buckets: Sequence[KpiBucket]
) -> list[float | None] | None:
    """``kpi.compute`` of ``buckets``, or None — logged — when it raises or answers with a
    number of values other than the buckets': one KPI's fault (a plugin's) must not stop the
    others' alerts. Run in a savepoint, so that a failed statement leaves the session usable."""
    try:
        async with session.begin_nested():
            values = list(await kpi.compute(session, buckets))
    except Exception:  # noqa: BLE001 - a plugin's KPI may fail in any way
        log.exception("KPI %s failed to compute; skipped", kpi.key)
        return None
    if len(values) != len(buckets):
        log.error(
            "KPI %s gave %d values for %d periods; skipped", kpi.key, len(values), len(buckets)
        )
        return None
    return values


def daily_buckets(first: date, last: date) -> list[KpiBucket]:
    """One bucket per shop day from ``first`` to ``last``, both included."""
    return [
        KpiBucket(first + timedelta(days=i), first + timedelta(days=i + 1))
        for i in range((last - first).days + 1)
    ]


async def find_anomalies(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    keys: Sequence[str],
    *,
    first_day: date,
    last_day: date,
    history_days: int = DEFAULT_HISTORY_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Anomaly]:
    """The anomalies of the KPIs ``keys`` (those ``kpis`` holds; others are skipped) on each
    day from ``first_day`` to ``last_day``, each day judged by the ``history_days`` before it.
    One ``compute`` call per KPI, for every day at once."""
    found: list[Anomaly] = []
    start = first_day - timedelta(days=history_days)
    buckets = daily_buckets(start, last_day)
    for key in dict.fromkeys(keys):
        kpi = kpis.get(key)
        if kpi is None:
            continue
        series = await kpi_values(session, kpi, buckets)
        if series is None:
            continue
        for offset in range((last_day - first_day).days + 1):
            end = history_days + offset + 1
            detection = examine(series[offset:end])
            if detection is not None and detection.is_anomaly(threshold):
                found.append(Anomaly(kpi, first_day + timedelta(days=offset), detection))
    return found
