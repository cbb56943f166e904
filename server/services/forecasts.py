"""Daily demand forecasts per product, per category or for the whole shop, with prediction
intervals, and the rolling-origin backtest that measures them (docs/insights.md, "Demand
forecasts").

- **Demand** is the units of the order lines of purchases — orders whose status is one of
  :data:`server.services.rfm.PURCHASE_STATUSES` (paid, and not cancelled) — summed per day
  by one aggregate statement (:func:`daily_demand`). Days are calendar days of China Standard
  Time (UTC+8, :data:`SHOP_UTC_OFFSET`), the days the promotion calendar is about; a day
  without a sale counts 0. The history runs from the series' first sale to the last whole day
  before "now"; the forecast starts with today.
- **The model** (:func:`forecast_units`, ``regression``): a linear autoregression of
  ``log(1 + units)`` on yesterday's value, the weekday, three Fourier pairs of the year (with a
  year of history or more) and the promotion calendar (:func:`calendar_regressors`: 618,
  Double 11, Double 12, the Spring Festival, the other public holidays), fitted by least squares
  with statsmodels' ``AutoReg``. Its prediction intervals on the log scale (the forecast's
  standard error times the empirical quantiles of the standardised residuals) are mapped back
  with ``exp(x) - 1``; the mean is Duan's smearing estimate over the same residuals.
- **The fallback** (``sba``): the Syntetos-Boylan approximation of Croston's method for
  intermittent demand — a flat daily rate ``(1 - a/2) z / p`` from the exponentially smoothed
  sizes ``z`` of the sales and the days ``p`` between them (a = 0.1) — with negative binomial
  (or Poisson) intervals. :func:`choose_model` takes it for short or sparse histories.
- **The backtest** (:func:`backtest`): rolling origins over the end of the history; MASE
  (scaled by the in-sample error of the seasonal naive forecast, season 7) and sMAPE of each
  model against the seasonal naive and moving-average baselines.

Fitting takes a few tens of milliseconds of CPU; :func:`demand_forecast` runs it in a worker
thread so as not to hold the event loop. It reads and fits on every call;
:func:`cached_demand_forecast` (the GraphQL query's) keeps a fit, with its history, in the
process for the rest of the shop's day.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal

import holidays
import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Date, Interval, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from server.models import Category, Order, OrderLine, Product, utcnow
from server.progress import Progress
from server.services.catalog import descendants_query
from server.services.errors import NotFound, ValidationFailed
from server.services.rfm import PURCHASE_STATUSES

FloatArray = npt.NDArray[np.float64]

# The shop's day: China Standard Time, which has no daylight saving time.
SHOP_UTC_OFFSET = timedelta(hours=8)
# The prediction intervals a forecast carries unless asked for others.
LEVELS = (0.8, 0.95)
# The most intervals one forecast carries.
MAX_LEVELS = 5
# The longest forecast asked of the service.
MAX_DAYS = 366

# The regression: AR order, yearly Fourier pairs, the shortest history it is fitted on, the
# share of days with a sale below which the fallback is used, and the longest history it reads.
AR_LAGS = 1
YEARLY_HARMONICS = 3
YEAR_DAYS = 365.25
MIN_MODEL_DAYS = 56
MIN_SALE_DAY_SHARE = 0.25
MAX_FIT_DAYS = 3 * 365 + 1
# The fallback: the smoothing constant of sizes and intervals, and the days of history its
# intervals' dispersion is measured on.
SBA_ALPHA = 0.1
DISPERSION_DAYS = 182
# The baselines: the season of the seasonal naive forecast and the moving average's window.
SEASON = 7
MOVING_AVERAGE_DAYS = 28

ModelName = Literal["regression", "sba", "none"]
MODELS: tuple[str, ...] = ("seasonal_naive", "moving_average", "sba", "regression", "forecast")
MODEL_LABELS: Mapping[str, str] = {
    "seasonal_naive": "seasonal naive (same weekday last week)",
    "moving_average": f"moving average ({MOVING_AVERAGE_DAYS} days)",
    "sba": "SBA (Croston, Syntetos-Boylan)",
    "regression": "regression (weekday, year, promotions, AR(1))",
    "forecast": "demand_forecast (regression, or SBA when sparse)",
}


# --- the promotion calendar -------------------------------------------------------------------

# Each regressor of the calendar: 1 on its days, 0 elsewhere (docs/insights.md has the table).
CALENDAR: Mapping[str, str] = {
    "june18_window": "618: June 1-17",
    "june18": "618: June 18, the peak",
    "double11_window": "Double 11 (双11): November 1-10",
    "double11": "Double 11: November 11, the peak",
    "double12": "Double 12 (双12): December 12",
    "spring_festival_before": "Spring Festival (春节): 10 to 2 days before New Year's Day",
    "spring_festival": "Spring Festival: New Year's Eve to the 6th day",
    "spring_festival_after": "Spring Festival: the 7th to the 14th day",
    "public_holiday": "another day off of China's public holidays (with substituted days off)",
}
# The days of one occurrence of each regressor: the regression learns an event's effect only
# from a history that holds as many of its days (a whole window, not its first day alone).
OCCURRENCE_DAYS: Mapping[str, int] = {
    "june18_window": 17,
    "june18": 1,
    "double11_window": 10,
    "double11": 1,
    "double12": 1,
    "spring_festival_before": 9,
    "spring_festival": 8,
    "spring_festival_after": 8,
    "public_holiday": 7,
}
# Days from the lunar New Year's Day (正月初一) of each Spring Festival window.
SPRING_FESTIVAL_WINDOWS: Mapping[str, tuple[int, int]] = {
    "spring_festival_before": (-10, -2),
    "spring_festival": (-1, 6),
    "spring_festival_after": (7, 14),
}


@cache
def _china(year: int) -> Mapping[date, str]:
    return dict(holidays.China(years=year, language="en_US").items())


@cache
def spring_festival(year: int) -> date:
    """The lunar New Year's Day (正月初一) of ``year``, from the China calendar of the
    ``holidays`` package (computed from the Chinese lunisolar calendar, 1950-2100)."""
    days = [day for day, name in _china(year).items() if "Spring Festival" in name]
    if not days:
        raise ValidationFailed(f"no Spring Festival is known for {year}", field="year")
    return min(days)


def calendar_regressors(start: date, length: int) -> tuple[list[str], FloatArray]:
    """The promotion calendar's regressors (:data:`CALENDAR`) of the ``length`` days from
    ``start``: their names and a ``length`` x 9 matrix of 0s and 1s."""
    days = [start + timedelta(days=i) for i in range(length)]
    names = list(CALENDAR)
    matrix = np.zeros((length, len(names)), dtype=np.float64)
    if not days:
        return names, matrix
    column = {name: i for i, name in enumerate(names)}
    years = range(days[0].year - 1, days[-1].year + 2)
    festive: dict[date, str] = {}
    for year in years:
        new_year = spring_festival(year)
        for name, (first, last) in SPRING_FESTIVAL_WINDOWS.items():
            for offset in range(first, last + 1):
                festive[new_year + timedelta(days=offset)] = name
    for i, day in enumerate(days):
        month, dom = day.month, day.day
        names_of_day = []
        if month == 6 and dom <= 18:
            names_of_day.append("june18" if dom == 18 else "june18_window")
        elif month == 11 and dom <= 11:
            names_of_day.append("double11" if dom == 11 else "double11_window")
        elif month == 12 and dom == 12:
            names_of_day.append("double12")
        if day in festive:
            names_of_day.append(festive[day])
        elif day in _china(day.year):
            names_of_day.append("public_holiday")
        for name in names_of_day:
            matrix[i, column[name]] = 1.0
    return names, matrix


def _yearly(start: date, length: int) -> FloatArray:
    t = start.toordinal() + np.arange(length, dtype=np.float64)
    columns = []
    for k in range(1, YEARLY_HARMONICS + 1):
        angle = 2 * np.pi * k * t / YEAR_DAYS
        columns += [np.sin(angle), np.cos(angle)]
    return np.column_stack(columns)


# --- forecasts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastInterval:
    """A prediction interval of each forecast day: the day's units fall between ``lower[i]``
    and ``upper[i]`` with probability ``level`` (0.8, 0.95)."""

    level: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]


@dataclass(frozen=True)
class Forecast:
    """Units expected on each of ``days`` (``mean``, the expected value) with prediction
    intervals (:data:`LEVELS` unless others were asked for). ``model``: ``regression``, ``sba`` (sparse or short history)
    or ``none`` (no sale in the history: every figure 0); ``reason`` says why it was chosen;
    ``history_days``: the days of history it was fitted on."""

    days: tuple[date, ...]
    mean: tuple[float, ...]
    intervals: tuple[ForecastInterval, ...]
    model: ModelName
    reason: str
    history_days: int

    def interval(self, level: float) -> ForecastInterval:
        """The interval of ``level`` (one of the forecast's levels)."""
        for interval in self.intervals:
            if math.isclose(interval.level, level):
                return interval
        raise KeyError(level)

    @property
    def total(self) -> float:
        """The units expected over all the days."""
        return float(sum(self.mean))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reason": self.reason,
            "history_days": self.history_days,
            "days": [day.isoformat() for day in self.days],
            "mean": list(self.mean),
            "intervals": [
                {"level": i.level, "lower": list(i.lower), "upper": list(i.upper)}
                for i in self.intervals
            ],
        }


class CannotFit(Exception):
    """The regression cannot be fitted on this history (too short, or a degenerate fit)."""


@dataclass(frozen=True)
class _Raw:
    mean: FloatArray
    bounds: dict[float, tuple[FloatArray, FloatArray]]


def _fit_window(units: FloatArray) -> FloatArray:
    return units[-MAX_FIT_DAYS:]


def choose_model(units: FloatArray) -> tuple[ModelName, str]:
    """The model :func:`demand_forecast` uses on a history, and why: the regression, unless
    the history is shorter than :data:`MIN_MODEL_DAYS` or has a sale on fewer than
    :data:`MIN_SALE_DAY_SHARE` of its days (then SBA: as accurate on such series, and its
    intervals err on the wide side); ``none`` without any sale."""
    window = _fit_window(units)
    sale_days = int(np.count_nonzero(window > 0))
    if sale_days == 0:
        return "none", "no sale in the history"
    if window.size < MIN_MODEL_DAYS:
        return "sba", f"{window.size} days of history, fewer than {MIN_MODEL_DAYS}"
    share = sale_days / window.size
    if share < MIN_SALE_DAY_SHARE:
        return "sba", f"sales on {share:.0%} of the days, fewer than {MIN_SALE_DAY_SHARE:.0%}"
    return "regression", f"sales on {share:.0%} of {window.size} days"


def _regression(
    units: FloatArray, start: date, days: int, levels: Sequence[float] = LEVELS
) -> _Raw:
    history = _fit_window(units)
    n = history.size
    first = start + timedelta(days=units.size - n)
    if n < MIN_MODEL_DAYS:
        raise CannotFit(f"{n} days of history, fewer than {MIN_MODEL_DAYS}")
    _, calendar = calendar_regressors(first, n + days)
    blocks = [calendar]
    if n >= 365:
        blocks.insert(0, _yearly(first, n + days))
    design = np.hstack(blocks)
    seen, future = design[:n], design[n:]
    # A regressor is kept when the fitted days (after the first lag) show it off and, at least
    # for one occurrence's days, on: an event never seen (or seen for a day of its window)
    # has no effect to learn, and one always on is the constant.
    fitted = seen[AR_LAGS:]
    keep = fitted.min(axis=0) < fitted.max(axis=0)
    days_on = fitted[:, -calendar.shape[1] :].sum(axis=0)
    keep[-calendar.shape[1] :] &= days_on >= np.array([OCCURRENCE_DAYS[c] for c in CALENDAR])
    exog = seen[:, keep] if keep.any() else None
    exog_future = future[:, keep] if keep.any() else None
    z = np.log1p(history)
    from statsmodels.tsa.ar_model import AutoReg  # heavy: imported when a forecast is fitted

    try:
        result = AutoReg(z, lags=AR_LAGS, trend="c", seasonal=True, period=SEASON, exog=exog).fit()
        prediction = result.get_prediction(start=n, end=n + days - 1, exog_oos=exog_future)
        mu = np.asarray(prediction.predicted_mean, dtype=np.float64)
        se = np.sqrt(np.asarray(prediction.var_pred_mean, dtype=np.float64))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise CannotFit(str(exc)) from exc
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(se))):
        raise CannotFit("the fit is not finite")
    residuals = np.asarray(result.resid, dtype=np.float64)
    scale = float(np.sqrt(result.sigma2))
    if residuals.size < SEASON or not scale > 0:
        raise CannotFit("no residual spread to measure")
    shapes = residuals / scale
    with np.errstate(over="ignore"):
        mean = np.mean(np.exp(mu[:, None] + se[:, None] * shapes[None, :]), axis=1) - 1
        bounds = {}
        for level in levels:
            low, high = np.quantile(shapes, [(1 - level) / 2, (1 + level) / 2])
            bounds[level] = (np.expm1(mu + low * se), np.expm1(mu + high * se))
    if not np.all(np.isfinite(mean)):
        raise CannotFit("the forecast overflows")
    return _Raw(mean, bounds)


def _smoothed(values: FloatArray) -> float:
    if np.ptp(values) == 0:
        # Constant values are their own smoothing (and would make the fit's unused
        # information criteria log(0)).
        return float(values[0])
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing  # heavy: imported on first use

    model = SimpleExpSmoothing(
        values, initialization_method="known", initial_level=float(values.mean())
    )
    fit = model.fit(smoothing_level=SBA_ALPHA, optimized=False)
    return float(fit.forecast(1)[0])


def sba_rate(units: FloatArray) -> float:
    """The SBA daily rate of a history: ``(1 - a/2) z / p``, ``z`` and ``p`` the sizes of the
    sales and the days between them (from the day before the history for the first),
    exponentially smoothed with ``a`` = :data:`SBA_ALPHA` from their means. With fewer than
    two sales, the history's mean."""
    sold = np.flatnonzero(units > 0)
    if sold.size < 2:
        return float(units.mean()) if units.size else 0.0
    sizes = units[sold].astype(np.float64)
    gaps = np.diff(np.concatenate(([-1], sold))).astype(np.float64)
    return (1 - SBA_ALPHA / 2) * _smoothed(sizes) / _smoothed(gaps)


def _sba(units: FloatArray, days: int, levels: Sequence[float] = LEVELS) -> _Raw:
    from scipy import stats  # heavy: imported on first use (command lines start faster)

    rate = sba_rate(units)
    mean = np.full(days, rate)
    recent = units[-DISPERSION_DAYS:]
    m = float(recent.mean()) if recent.size else 0.0
    v = float(recent.var(ddof=1)) if recent.size > 1 else 0.0
    bounds = {}
    for level in levels:
        tail = (1 - level) / 2
        if rate <= 0:
            low = high = 0.0
        elif v > m > 0:
            size = m * m / (v - m)  # the negative binomial's dispersion of the recent days
            p = size / (size + rate)
            low = float(stats.nbinom.ppf(tail, size, p))
            high = float(stats.nbinom.ppf(1 - tail, size, p))
        else:
            low = float(stats.poisson.ppf(tail, rate))
            high = float(stats.poisson.ppf(1 - tail, rate))
        bounds[level] = (np.full(days, float(low)), np.full(days, float(high)))
    return _Raw(mean, bounds)


def _zeros(days: int, levels: Sequence[float] = LEVELS) -> _Raw:
    return _Raw(np.zeros(days), {level: (np.zeros(days), np.zeros(days)) for level in levels})


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """The interval levels of a forecast, each above 0 and below 1, at most
    :data:`MAX_LEVELS`, in increasing order (one given twice counts once)."""
    chosen = tuple(sorted(set(levels)))
    if not chosen or len(chosen) > MAX_LEVELS:
        raise ValidationFailed(f"give 1 to {MAX_LEVELS} interval levels", field="levels")
    if not all(0 < level < 1 for level in chosen):
        raise ValidationFailed("an interval level is above 0 and below 1", field="levels")
    return chosen


def forecast_units(
    units: Sequence[float] | FloatArray,
    start: date,
    days: int,
    *,
    model: Literal["auto", "regression", "sba"] = "auto",
    levels: Sequence[float] = LEVELS,
) -> Forecast:
    """Forecast the ``days`` days after a daily history ``units`` (units sold on each day
    from ``start``, zeros included), with an interval of each of ``levels``
    (:func:`check_levels`). ``model="auto"`` chooses with :func:`choose_model` (and uses SBA
    when the regression cannot be fitted); ``"regression"`` raises :class:`CannotFit` when
    it cannot be fitted."""
    history = np.asarray(units, dtype=np.float64)
    levels = check_levels(levels)
    if days < 1:
        raise ValidationFailed("forecast at least one day", field="days")
    if np.any(history < 0) or not np.all(np.isfinite(history)):
        raise ValidationFailed("units sold are finite and not negative", field="units")
    chosen: ModelName
    if model == "auto":
        chosen, reason = choose_model(history)
    else:
        chosen, reason = model, "asked for"
    raw: _Raw
    if chosen == "regression":
        try:
            raw = _regression(history, start, days, levels)
        except CannotFit as exc:
            if model == "regression":
                raise
            chosen, reason = "sba", f"the regression cannot be fitted: {exc}"
    if chosen == "sba":
        raw = _sba(history, days, levels)
    elif chosen == "none":
        raw = _zeros(days, levels)
    first = start + timedelta(days=history.size)
    mean = np.clip(raw.mean, 0, None)
    return Forecast(
        days=tuple(first + timedelta(days=i) for i in range(days)),
        mean=tuple(float(x) for x in mean),
        intervals=tuple(
            ForecastInterval(
                level=level,
                lower=tuple(float(x) for x in np.clip(raw.bounds[level][0], 0, None)),
                upper=tuple(float(x) for x in np.clip(raw.bounds[level][1], 0, None)),
            )
            for level in levels
        ),
        model=chosen,
        reason=reason,
        history_days=int(min(history.size, MAX_FIT_DAYS)),
    )


# --- the shop's demand --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemandHistory:
    """Units sold on each day from ``start`` (zeros filled) up to ``end``, the last whole day
    before the moment it was read at; ``today`` is the first day a forecast is for. Empty
    (``start`` is ``today``) when nothing was ever sold."""

    start: date
    units: FloatArray
    today: date

    @property
    def end(self) -> date:
        return self.today - timedelta(days=1)


def shop_day(moment: datetime, utc_offset: timedelta = SHOP_UTC_OFFSET) -> date:
    """The shop's calendar day of a moment."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) + utc_offset).date()


def _today(as_of: datetime | None, utc_offset: timedelta) -> tuple[date, datetime]:
    """The shop's day of ``as_of`` (now), and its first moment in UTC: the end of history."""
    today = shop_day(as_of or utcnow(), utc_offset)
    return today, datetime(today.year, today.month, today.day, tzinfo=UTC) - utc_offset


def day_start(day: date, utc_offset: timedelta = SHOP_UTC_OFFSET) -> datetime:
    """The first moment (UTC) of a shop day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - utc_offset


def shop_day_sql(
    moment: ColumnElement[Any] | Mapped[Any], dialect: str, utc_offset: timedelta = SHOP_UTC_OFFSET
) -> ColumnElement[Any]:
    """The shop's day of a stored moment, in SQL (UTC stored; a fixed offset added): a
    ``date`` on PostgreSQL, ``YYYY-MM-DD`` text on SQLite."""
    if dialect == "postgresql":
        wall = func.timezone("UTC", moment) + literal(utc_offset, Interval())
        return cast(wall, Date)
    # SQLite stores naive UTC text; date() applies the offset as a modifier.
    seconds = int(utc_offset.total_seconds())
    return func.date(moment, f"{seconds:+d} seconds")


def _day_of_order(dialect: str, utc_offset: timedelta) -> ColumnElement[Any]:
    """The shop's day of ``order.placed_at`` in SQL."""
    return shop_day_sql(col(Order.placed_at), dialect, utc_offset)


def _series_filter(product_id: int | None, category_id: int | None) -> list[ColumnElement[bool]]:
    if product_id is not None:
        return [col(OrderLine.product_id) == product_id]
    if category_id is not None:
        in_tree = select(col(Product.id)).where(
            col(Product.category_id).in_(descendants_query(category_id))
        )
        return [col(OrderLine.product_id).in_(in_tree)]
    return []


async def daily_demand(
    session: AsyncSession,
    *,
    product_id: int | None = None,
    category_id: int | None = None,
    as_of: datetime | None = None,
    utc_offset: timedelta = SHOP_UTC_OFFSET,
) -> DemandHistory:
    """Units of purchases sold per shop day — of one product, of a category and every category
    below it, or (neither given) of the whole shop — from the series' first sale up to the day
    before ``as_of``'s day (now), zeros filled: one aggregate statement ``GROUP BY`` day.

    A purchase is an order with a status of :data:`~server.services.rfm.PURCHASE_STATUSES`
    (paid and not cancelled), a guest's included, dated by when it was placed."""
    if product_id is not None and category_id is not None:
        raise ValidationFailed("give a product or a category, not both", field="categoryId")
    today, cutoff = _today(as_of, utc_offset)
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    day = _day_of_order(dialect, utc_offset).label("day")
    stmt = (
        select(day, func.sum(col(OrderLine.quantity)))
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) < cutoff,
            *_series_filter(product_id, category_id),
        )
        .group_by(day)
        .order_by(day)
    )
    rows = [
        (value if isinstance(value, date) else date.fromisoformat(str(value)), int(units or 0))
        for value, units in (await session.execute(stmt)).all()
    ]
    if not rows:
        return DemandHistory(start=today, units=np.zeros(0), today=today)
    start = rows[0][0]
    units = np.zeros((today - start).days, dtype=np.float64)
    for day_value, sold in rows:
        units[(day_value - start).days] += sold
    return DemandHistory(start=start, units=units, today=today)


@dataclass(frozen=True)
class TopProduct:
    product_id: int
    sku: str
    name: str
    units: int


async def top_products(
    session: AsyncSession, limit: int, *, as_of: datetime | None = None
) -> list[TopProduct]:
    """The ``limit`` products with the most units purchased before the shop's day of
    ``as_of`` (now): over the days of :func:`daily_demand`."""
    _, cutoff = _today(as_of, SHOP_UTC_OFFSET)
    units = func.sum(col(OrderLine.quantity)).label("units")
    stmt = (
        select(col(Product.id), col(Product.sku), col(Product.name), units)
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .join(Product, col(Product.id) == col(OrderLine.product_id))
        .where(col(Order.status).in_(PURCHASE_STATUSES), col(Order.placed_at) < cutoff)
        .group_by(col(Product.id), col(Product.sku), col(Product.name))
        .order_by(units.desc(), col(Product.id))
        .limit(limit)
    )
    return [
        TopProduct(pid, str(sku), str(name), int(sold or 0))
        for pid, sku, name, sold in (await session.execute(stmt)).all()
        if pid is not None
    ]


async def demand_forecast(
    session: AsyncSession,
    *,
    product_id: int | None = None,
    category_id: int | None = None,
    days: int = 28,
    as_of: datetime | None = None,
    levels: Sequence[float] = LEVELS,
) -> Forecast:
    """The daily demand of the next ``days`` days (today first) — of a product, of a category
    and the categories below it, or of the whole shop — with intervals of ``levels`` (80% and
    95%), from the purchases up to yesterday: the regression, or SBA on a short or sparse
    history (:func:`choose_model`). Read and fitted on every call, in a worker thread
    (:func:`cached_demand_forecast` keeps fits for the rest of the day)."""
    levels = _check_request(days, levels)
    await _check_target(session, product_id, category_id)
    history = await daily_demand(
        session, product_id=product_id, category_id=category_id, as_of=as_of
    )
    return await asyncio.to_thread(
        forecast_units, history.units, history.start, days, levels=levels
    )


def _check_request(days: int, levels: Sequence[float]) -> tuple[float, ...]:
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"days must be between 1 and {MAX_DAYS}", field="days")
    return check_levels(levels)


async def _check_target(
    session: AsyncSession, product_id: int | None, category_id: int | None
) -> None:
    if product_id is not None and category_id is not None:
        raise ValidationFailed("give a product or a category, not both", field="categoryId")
    if product_id is not None and await session.get(Product, product_id) is None:
        raise NotFound("Product", product_id, field="productId")
    if category_id is not None and await session.get(Category, category_id) is None:
        raise NotFound("Category", category_id, field="categoryId")


# --- fitted forecasts kept for the day ------------------------------------------------------------


@dataclass(frozen=True)
class DemandReport:
    """A forecast and the daily history it was fitted on."""

    history: DemandHistory
    forecast: Forecast


# (product id, category id, the shop's day, days, levels)
_CacheKey = tuple[int | None, int | None, date, int, tuple[float, ...]]


class ForecastCache:
    """The forecasts fitted today on one database, the most recently used :data:`size` of
    them. The history ends yesterday, so today's orders do not change a fit: one stays good
    until the shop's day turns, when every entry is dropped."""

    size = 1024

    def __init__(self) -> None:
        self._day: date | None = None
        self._entries: OrderedDict[_CacheKey, DemandReport] = OrderedDict()

    def get(self, key: _CacheKey) -> DemandReport | None:
        self._turn(key[2])
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: _CacheKey, report: DemandReport) -> None:
        self._turn(key[2])
        if self._day != key[2]:
            return  # a request of an earlier day, answered late: not worth keeping
        self._entries[key] = report
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _turn(self, day: date) -> None:
        if self._day is None or day > self._day:
            self._day = day
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# One cache per database (its engine), in this process; gone with the engine.
_caches: weakref.WeakKeyDictionary[Any, ForecastCache] = weakref.WeakKeyDictionary()


def forecast_cache(session: AsyncSession) -> ForecastCache:
    """The cache of the database ``session`` reads."""
    engine = session.get_bind()
    found = _caches.get(engine)
    if found is None:
        found = _caches[engine] = ForecastCache()
    return found


async def cached_demand_forecast(
    session: AsyncSession,
    *,
    product_id: int | None = None,
    category_id: int | None = None,
    days: int = 28,
    levels: Sequence[float] = LEVELS,
    as_of: datetime | None = None,
) -> DemandReport:
    """:func:`demand_forecast` with its history, kept in this process for the rest of the
    shop's day (of ``as_of``, now) per target, days and levels: a second call of the day
    reads only whether the product or category exists."""
    levels = _check_request(days, levels)
    await _check_target(session, product_id, category_id)
    today, _ = _today(as_of, SHOP_UTC_OFFSET)
    cache = forecast_cache(session)
    key: _CacheKey = (product_id, category_id, today, days, levels)
    found = cache.get(key)
    if found is not None:
        return found
    history = await daily_demand(
        session, product_id=product_id, category_id=category_id, as_of=as_of
    )
    forecast = await asyncio.to_thread(
        forecast_units, history.units, history.start, days, levels=levels
    )
    report = DemandReport(history, forecast)
    cache.put(key, report)
    return report


# --- the backtest -------------------------------------------------------------------------------


def mase(actual: FloatArray, predicted: FloatArray, train: FloatArray) -> float:
    """Mean absolute error scaled by the in-sample mean absolute error of the seasonal naive
    forecast (season 7) on ``train``; NaN when that error is 0."""
    scale = float(np.mean(np.abs(train[SEASON:] - train[:-SEASON])))
    if scale == 0:
        return math.nan
    return float(np.mean(np.abs(actual - predicted))) / scale


def smape(actual: FloatArray, predicted: FloatArray) -> float:
    """Symmetric mean absolute percentage error, 0-200%: ``200 |y - f| / (|y| + |f|)``
    averaged over the days, a day with both 0 counting 0."""
    total = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(
        2 * np.abs(actual - predicted), total, out=np.zeros_like(total), where=total > 0
    )
    return float(100 * ratio.mean())


def seasonal_naive(train: FloatArray, days: int) -> FloatArray:
    """Each day as the same weekday of the history's last week."""
    last_week = train[-SEASON:]
    return np.asarray(np.resize(last_week, days), dtype=np.float64)


def moving_average(train: FloatArray, days: int) -> FloatArray:
    """Every day as the mean of the history's last :data:`MOVING_AVERAGE_DAYS` days."""
    return np.full(days, float(train[-MOVING_AVERAGE_DAYS:].mean()))


@dataclass(frozen=True)
class ModelScore:
    """A model's scores averaged over the origins: MASE and sMAPE (%); ``bias``, the units it
    forecast over all the held-out days against those sold, less 1 (-0.1: 10% short; NaN
    when none were sold); for the models with intervals, the share of held-out days inside
    each (``coverage`` by level). ``seconds``: the CPU time of a forecast, on average."""

    model: str
    mase: float
    smape: float
    bias: float
    coverage: Mapping[float, float] | None
    seconds: float


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin evaluation of a history: at each origin every model forecasts the
    ``horizon`` days after it from the history before it. ``chosen``: the model
    :func:`choose_model` takes at each origin."""

    label: str
    start: date
    end: date
    horizon: int
    origins: tuple[date, ...]
    scores: tuple[ModelScore, ...]
    chosen: tuple[str, ...]
    forecasts: Mapping[str, tuple[FloatArray, ...]] = field(repr=False)
    actual: tuple[FloatArray, ...] = field(repr=False)

    def score(self, model: str) -> ModelScore:
        return next(s for s in self.scores if s.model == model)

    @property
    def winner(self) -> str:
        """The model with the lowest MASE (``forecast`` aside: it is one of the others)."""
        ranked = [s for s in self.scores if s.model != "forecast" and not math.isnan(s.mase)]
        return min(ranked, key=lambda s: s.mase).model if ranked else ""

    @property
    def beats_seasonal_naive(self) -> bool:
        forecast, naive = self.score("forecast").mase, self.score("seasonal_naive").mase
        return not math.isnan(forecast) and not math.isnan(naive) and forecast < naive

    def describe(self) -> str:
        lines = [
            f"{self.label}: {(self.end - self.start).days + 1} days, {self.start} to "
            f"{self.end}; {len(self.origins)} origins from {self.origins[0]}, "
            f"horizon {self.horizon} days",
            f"  {'model':<52} {'MASE':>7} {'sMAPE':>7} {'bias':>7} {'cover 80%':>10} "
            f"{'cover 95%':>10}",
        ]
        for s in self.scores:
            cover = [
                _shown(s.coverage[level], f"{s.coverage[level]:>10.0%}", 10)
                if s.coverage
                else " " * 10
                for level in LEVELS
            ]
            mark = " *" if s.model == self.winner else ""
            lines.append(
                f"  {MODEL_LABELS[s.model]:<52} {_shown(s.mase, f'{s.mase:>7.3f}', 7)} "
                f"{_shown(s.smape, f'{s.smape:>6.1f}%', 7)} {_shown(s.bias, f'{s.bias:>+7.0%}', 7)} "
                f"{' '.join(cover)}{mark}"
            )
        used = ", ".join(f"{m} x{self.chosen.count(m)}" for m in dict.fromkeys(self.chosen))
        verdict = "beats" if self.beats_seasonal_naive else "does NOT beat"
        winner = self.winner or "none (no MASE: nothing varied before the origins)"
        lines.append(f"  winner (lowest MASE, *): {winner}; demand_forecast used {used}")
        lines.append(f"  demand_forecast {verdict} the seasonal naive forecast")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        def number(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "horizon": self.horizon,
            "origins": [o.isoformat() for o in self.origins],
            "models": {
                s.model: {
                    "mase": number(s.mase),
                    "smape": number(s.smape),
                    "bias": number(s.bias),
                    "coverage": {str(k): v for k, v in s.coverage.items()} if s.coverage else None,
                    "seconds_per_fit": s.seconds,
                }
                for s in self.scores
            },
            "winner": self.winner,
            "chosen": list(self.chosen),
            "beats_seasonal_naive": self.beats_seasonal_naive,
        }


def _shown(value: float, text: str, width: int) -> str:
    return f"{'n/a':>{width}}" if math.isnan(value) else text


def backtest_days(horizon: int, origins: int) -> int:
    """The shortest history a backtest of ``origins`` x ``horizon`` days runs on: the held-out
    days and :data:`MIN_MODEL_DAYS` before the first origin."""
    return origins * horizon + MIN_MODEL_DAYS


def backtest(
    units: Sequence[float] | FloatArray,
    start: date,
    *,
    horizon: int = 28,
    origins: int = 4,
    label: str = "series",
    progress: Progress | None = None,
) -> Backtest:
    """Rolling-origin evaluation on the end of a history: ``origins`` consecutive windows of
    ``horizon`` days; at each, every model of :data:`MODELS` forecasts the window from all the
    days before it. Scores are averaged over the origins (MASE: NaN at an origin whose history
    has no seasonal-naive error; such an origin is left out of the mean)."""
    history = np.asarray(units, dtype=np.float64)
    if horizon < 1 or origins < 1:
        raise ValidationFailed("horizon and origins are at least 1", field="horizon")
    needed = backtest_days(horizon, origins)
    if history.size < needed:
        raise ValidationFailed(
            f"{label}: {history.size} days of history; {origins} origins of {horizon} days "
            f"need at least {needed}",
            field="origins",
        )
    cuts = [history.size - horizon * (origins - k) for k in range(origins)]
    scored: dict[str, list[tuple[float, float]]] = {m: [] for m in MODELS}
    totals: dict[str, float] = dict.fromkeys(MODELS, 0.0)
    unfit: set[str] = set()  # models that could not forecast at some origin
    covered: dict[str, dict[float, list[float]]] = {
        m: {level: [] for level in LEVELS} for m in ("sba", "regression", "forecast")
    }
    seconds: dict[str, float] = dict.fromkeys(MODELS, 0.0)
    forecasts: dict[str, list[FloatArray]] = {m: [] for m in MODELS}
    actuals: list[FloatArray] = []
    chosen: list[str] = []
    for cut in cuts:
        train, actual = history[:cut], history[cut : cut + horizon]
        actuals.append(actual)
        results: dict[str, Forecast | FloatArray | None] = {}
        took: dict[str, float] = {}
        for name, baseline in (
            ("seasonal_naive", seasonal_naive),
            ("moving_average", moving_average),
        ):
            began = time.process_time()
            results[name] = baseline(train, horizon)
            took[name] = time.process_time() - began
        fitted: tuple[Literal["sba", "regression"], ...] = ("sba", "regression")
        for kind in fitted:
            began = time.process_time()
            try:
                results[kind] = forecast_units(train, start, horizon, model=kind)
            except CannotFit:
                results[kind] = None
            took[kind] = time.process_time() - began
        pick, _ = choose_model(train)
        if pick == "regression" and results["regression"] is None:
            pick = "sba"
        chosen.append(pick)
        if pick == "none":
            results["forecast"] = forecast_units(train, start, horizon)
            took["forecast"] = 0.0
        else:
            results["forecast"], took["forecast"] = results[pick], took[pick]
        for name, spent in took.items():
            seconds[name] += spent
        for name in MODELS:
            result = results[name]
            if result is None:
                unfit.add(name)
                scored[name].append((math.nan, math.nan))
                forecasts[name].append(np.full(horizon, math.nan))
                continue
            predicted = (
                np.asarray(result.mean, dtype=np.float64)
                if isinstance(result, Forecast)
                else result
            )
            forecasts[name].append(predicted)
            scored[name].append((mase(actual, predicted, train), smape(actual, predicted)))
            totals[name] += float(predicted.sum())
            if isinstance(result, Forecast):
                for level in LEVELS:
                    interval = result.interval(level)
                    inside = (actual >= np.asarray(interval.lower)) & (
                        actual <= np.asarray(interval.upper)
                    )
                    covered[name][level].append(float(inside.mean()))
        if progress is not None:
            progress.advance(f"{label}: origin {start + timedelta(days=cut)}")

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else math.nan

    sold = float(sum(a.sum() for a in actuals))
    scores = tuple(
        ModelScore(
            model=name,
            mase=mean([m for m, _ in scored[name]]),
            bias=totals[name] / sold - 1 if sold > 0 and name not in unfit else math.nan,
            smape=mean([s for _, s in scored[name]]),
            coverage=(
                {level: mean(values) for level, values in covered[name].items()}
                if name in covered and any(covered[name].values())
                else None
            ),
            seconds=seconds[name] / len(cuts),
        )
        for name in MODELS
    )
    return Backtest(
        label=label,
        start=start,
        end=start + timedelta(days=history.size - 1),
        horizon=horizon,
        origins=tuple(start + timedelta(days=cut) for cut in cuts),
        scores=scores,
        chosen=tuple(chosen),
        forecasts={name: tuple(values) for name, values in forecasts.items()},
        actual=tuple(actuals),
    )


# --- the command ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A demand series to backtest: a product, a category (with those below it) or the shop."""

    label: str
    product_id: int | None = None
    category_id: int | None = None


async def resolve_series(
    session: AsyncSession,
    *,
    product: str | None = None,
    category: str | None = None,
    top: int | None = None,
    as_of: datetime | None = None,
) -> list[Series]:
    """The series the command names: the product of a SKU, the category of a slug, the ``top``
    best-selling products, or (none given) the whole shop."""
    from server.services.catalog import category_by_slug, product_by_sku

    if sum(x is not None for x in (product, category, top)) > 1:
        raise ValidationFailed("give one of --product, --category and --top", field="product")
    if product is not None:
        found = await product_by_sku(session, product)
        if found is None or found.id is None:
            raise NotFound("Product with SKU", product, field="product")
        return [Series(f"product {found.sku} {found.name}", product_id=found.id)]
    if category is not None:
        slugged = await category_by_slug(session, category)
        if slugged is None or slugged.id is None:
            raise NotFound("Category", category, field="category")
        return [Series(f"category {slugged.slug} {slugged.name}", category_id=slugged.id)]
    if top is not None:
        if top < 1:
            raise ValidationFailed("--top is at least 1", field="top")
        best = await top_products(session, top, as_of=as_of)
        return [Series(f"product {p.sku} {p.name}", product_id=p.product_id) for p in best]
    return [Series("the shop")]


@dataclass(frozen=True)
class BacktestReport:
    """The command's result: a backtest per series, and the series too short for one."""

    horizon: int
    origins: int
    backtests: tuple[Backtest, ...]
    skipped: tuple[str, ...]

    def describe(self) -> str:
        parts = [b.describe() for b in self.backtests] + list(self.skipped)
        if len(self.backtests) > 1:
            beats = sum(b.beats_seasonal_naive for b in self.backtests)
            means = {
                model: float(np.nanmean([b.score(model).mase for b in self.backtests]))
                for model in MODELS
            }
            parts.append(
                f"over {len(self.backtests)} series: demand_forecast beats the seasonal naive "
                f"forecast on {beats}; mean MASE "
                + ", ".join(f"{model} {value:.3f}" for model, value in means.items())
            )
        if not parts:
            parts.append("nothing was sold: no series to backtest")
        return "\n\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "origins": self.origins,
            "series": [b.as_dict() for b in self.backtests],
            "skipped": list(self.skipped),
        }


async def backtest_shop(
    session: AsyncSession,
    series: Sequence[Series],
    *,
    horizon: int = 28,
    origins: int = 4,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> BacktestReport:
    """Read each series' daily demand and backtest it; a series whose history is too short is
    reported as skipped (an error when it is the only one)."""
    done: list[Backtest] = []
    skipped: list[str] = []
    for one in series:
        history = await daily_demand(
            session, product_id=one.product_id, category_id=one.category_id, as_of=as_of
        )
        needed = backtest_days(horizon, origins)
        if history.units.size < needed:
            message = (
                f"{one.label}: {history.units.size} days of history; {origins} origins of "
                f"{horizon} days need at least {needed}"
            )
            if len(series) == 1:
                raise ValidationFailed(message, field="origins")
            skipped.append(f"skipped {message}")
            if progress is not None:
                progress.advance(f"{one.label}: skipped", origins)
            continue
        done.append(
            await asyncio.to_thread(
                backtest,
                history.units,
                history.start,
                horizon=horizon,
                origins=origins,
                label=one.label,
                progress=progress,
            )
        )
    return BacktestReport(horizon, origins, tuple(done), tuple(skipped))


def backtest_command(
    database_url: str,
    *,
    product: str | None = None,
    category: str | None = None,
    top: int | None = None,
    horizon: int = 28,
    origins: int = 4,
    as_of: datetime | None = None,
) -> BacktestReport:
    """``shopgraph insights backtest``: the series named, backtested with a progress bar."""
    from server.db import create_engine, session_factory
    from server.migrate import run_async

    async def _main() -> BacktestReport:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                series = await resolve_series(
                    session, product=product, category=category, top=top, as_of=as_of
                )
                with Progress("backtest", max(1, len(series) * origins)) as progress:
                    return await backtest_shop(
                        session,
                        series,
                        horizon=horizon,
                        origins=origins,
                        as_of=as_of,
                        progress=progress,
                    )
        finally:
            await engine.dispose()

    return run_async(_main)
