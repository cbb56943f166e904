"""Own-price elasticity of a product, or of its category when the product's data is thin
(docs/plugins/pricing.md, "Elasticity").

The data (one statement each): the product's daily units (order lines of purchases: paid and
not cancelled orders, per shop day, UTC+8), the unit price actually paid that day (units-weighted
mean of the lines' unit prices) or, on a day without a sale, the public price the history shows
for that day, and whether a promotion adjusted the price that day (a line whose stored
adjustments hold a discount of another plugin than pricing).

The model: log-log demand, ``ln E[q_t] = a + e·ln p_t + β·promo_t + weekday_t + season_t``,
fitted as a Poisson pseudo-maximum-likelihood GLM with a log link (zero-sale days kept;
consistent for the log-log mean whatever the dispersion) with heteroskedasticity-robust (HC1)
standard errors. The season is yearly Fourier terms (one pair from 180 days of data, two from
a year), none on shorter data where it could not be told apart from the price changes.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import PriceHistory
from server.models import Order, OrderLine, Product, utcnow
from server.services.forecasts import day_start, shop_day
from server.services.rfm import PURCHASE_STATUSES as PURCHASES

FloatArray = npt.NDArray[np.float64]

PLUGIN = "pricing"
YEAR_DAYS = 365.25
Z95 = 1.959963984540054


class EstimateStatus(StrEnum):
    OK = "OK"
    INSUFFICIENT = "INSUFFICIENT"


class EstimateLevel(StrEnum):
    PRODUCT = "PRODUCT"
    CATEGORY = "CATEGORY"


@dataclass(frozen=True)
class Estimate:
    """An elasticity and its 95% interval (None when INSUFFICIENT, with ``reason``)."""

    status: EstimateStatus
    level: EstimateLevel
    observations: int
    price_levels: int
    reason: str = ""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    std_error: float | None = None
    product_id: int | None = None
    category_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is EstimateStatus.OK


@dataclass
class Series:
    """One product's days: units sold, the price of the day (minor units) and promotion days."""

    start: date
    units: FloatArray
    prices: FloatArray
    promo: FloatArray

    @property
    def days(self) -> int:
        return int(self.units.size)

    def price_levels(self) -> int:
        return int(np.unique(np.round(self.prices)).size)


# --- the fit (pure, CPU: call it in a worker thread) ------------------------------------------


def _controls(start: date, n: int) -> list[FloatArray]:
    """Weekday dummies (Monday the reference) and yearly Fourier pairs by the data's length."""
    ordinals = start.toordinal() + np.arange(n, dtype=np.float64)
    weekday = (np.asarray([start.weekday()]) + np.arange(n)) % 7
    columns = [(weekday == d).astype(np.float64) for d in range(1, 7)]
    harmonics = 2 if n >= 365 else 1 if n >= 180 else 0
    for k in range(1, harmonics + 1):
        angle = 2 * np.pi * k * ordinals / YEAR_DAYS
        columns += [np.sin(angle), np.cos(angle)]
    return columns


def _insufficient(
    level: EstimateLevel, observations: int, levels: int, reason: str, **ids: int | None
) -> Estimate:
    return Estimate(EstimateStatus.INSUFFICIENT, level, observations, levels, reason, **ids)


def _thin(observations: int, levels: int, min_days: int, min_levels: int) -> str:
    if observations < min_days:
        return f"{observations} days of data, fewer than {min_days}"
    if levels < min_levels:
        return f"{levels} distinct price levels, fewer than {min_levels}"
    return ""


def _glm(y: FloatArray, design: FloatArray) -> tuple[float, float]:
    """The price coefficient (column 0) of a Poisson PML fit and its HC1 standard error."""
    import statsmodels.api as sm  # heavy: imported when a fit runs

    model = sm.GLM(y, design, family=sm.families.Poisson())
    result = model.fit(cov_type="HC1", maxiter=100)
    value = float(result.params[0])
    se = float(result.bse[0])
    if not (math.isfinite(value) and math.isfinite(se)):
        raise ValueError("the fit is not finite")
    return value, se


def _keep(columns: Sequence[FloatArray]) -> list[FloatArray]:
    return [c for c in columns if float(np.ptp(c)) > 0]


def fit_product(
    series: Series, min_days: int, min_levels: int, product_id: int | None = None
) -> Estimate:
    """A product's elasticity from its own days, or INSUFFICIENT."""
    n, levels = series.days, series.price_levels() if series.days else 0
    level = EstimateLevel.PRODUCT
    if reason := _thin(n, levels, min_days, min_levels):
        return _insufficient(level, n, levels, reason, product_id=product_id)
    if float(series.units.sum()) <= 0:
        return _insufficient(level, n, levels, "no sale in the data", product_id=product_id)
    design = np.column_stack(
        [
            np.log(series.prices),
            np.ones(n),
            *_keep([series.promo, *_controls(series.start, n)]),
        ]
    )
    return _estimate(series.units, design, level, n, levels, product_id=product_id)


def fit_pooled(
    series: Mapping[int, Series],
    min_days: int,
    min_levels: int,
    category_id: int | None = None,
) -> Estimate:
    """One elasticity for several products (a category): product fixed effects in place of
    the intercept, a common price, promotion, weekday and season effect. Its price levels are
    the independent price variations it learns from: one plus, over the products, each one's
    distinct prices less one."""
    used = {pid: s for pid, s in series.items() if s.days and float(s.units.sum()) > 0}
    n = sum(s.days for s in used.values())
    levels = 1 + sum(s.price_levels() - 1 for s in used.values()) if used else 0
    level = EstimateLevel.CATEGORY
    if reason := _thin(n, levels, min_days, min_levels):
        return _insufficient(level, n, levels, reason, category_id=category_id)
    ids = sorted(used)
    y = np.concatenate([used[pid].units for pid in ids])
    log_price = np.concatenate([np.log(used[pid].prices) for pid in ids])
    promo = np.concatenate([used[pid].promo for pid in ids])
    controls = [
        np.concatenate(parts)
        for parts in zip(*[_controls(used[pid].start, used[pid].days) for pid in ids], strict=False)
    ]
    # Controls need the same columns for every product: the shortest series decides the season.
    shortest = min(used[pid].days for pid in ids)
    width = len(_controls(used[ids[0]].start, shortest))
    controls = controls[:width]
    effects = [
        np.concatenate([np.full(used[q].days, 1.0 if q == pid else 0.0) for q in ids])
        for pid in ids
    ]
    design = np.column_stack([log_price, *effects, *_keep([promo, *controls])])
    return _estimate(y, design, level, n, levels, category_id=category_id)


def _estimate(
    y: FloatArray,
    design: FloatArray,
    level: EstimateLevel,
    n: int,
    levels: int,
    **ids: int | None,
) -> Estimate:
    try:
        value, se = _glm(y, design)
    except (ValueError, np.linalg.LinAlgError, OverflowError) as exc:
        return _insufficient(level, n, levels, f"the fit failed: {exc}", **ids)
    return Estimate(
        EstimateStatus.OK,
        level,
        n,
        levels,
        "",
        value,
        value - Z95 * se,
        value + Z95 * se,
        se,
        **ids,
    )


# --- the data (SQL) -------------------------------------------------------------------------


def is_promotion(adjustments: Sequence[Mapping[str, Any]] | None) -> bool:
    """A stored line's adjustments hold a discount of another plugin than pricing."""
    for adj in adjustments or ():
        if str(adj.get("source", "")) != PLUGIN and int(adj.get("amount") or 0) < 0:
            return True
    return False


@dataclass
class _Day:
    units: float = 0.0
    paid: float = 0.0
    promo: bool = False


@dataclass
class Data:
    """What the fits read, for some products: their series and categories."""

    series: dict[int, Series] = field(default_factory=dict)
    categories: dict[int, int | None] = field(default_factory=dict)


async def load(
    session: AsyncSession,
    product_ids: Sequence[int],
    *,
    as_of: datetime | None = None,
    history_days: int = 365,
) -> Data:
    """Each product's daily series over the ``history_days`` shop days before ``as_of``'s day,
    from its first sale (three statements for any number of products)."""
    data = Data()
    if not product_ids:
        return data
    today = shop_day(as_of or utcnow())
    first_day = today - timedelta(days=history_days)
    since, until = day_start(first_day), day_start(today)
    products = (
        await session.execute(
            select(col(Product.id), col(Product.category_id), col(Product.price_amount)).where(
                col(Product.id).in_(product_ids)
            )
        )
    ).all()
    catalogue: dict[int, int] = {pid: price for pid, _, price in products if pid is not None}
    data.categories = {pid: cat for pid, cat, _ in products if pid is not None}
    lines = (
        await session.execute(
            select(
                col(OrderLine.product_id),
                col(Order.placed_at),
                col(OrderLine.quantity),
                col(OrderLine.unit_price_amount),
                col(OrderLine.adjustments),
            )
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(
                col(OrderLine.product_id).in_(list(catalogue)),
                col(Order.status).in_(PURCHASES),
                col(Order.placed_at) >= since,
                col(Order.placed_at) < until,
            )
        )
    ).all()
    days: dict[int, dict[date, _Day]] = defaultdict(lambda: defaultdict(_Day))
    for pid, placed_at, quantity, unit_price, adjustments in lines:
        day = days[pid][shop_day(placed_at)]
        day.units += quantity
        day.paid += quantity * unit_price
        day.promo = day.promo or is_promotion(adjustments)
    history = (
        await session.execute(
            select(
                col(PriceHistory.product_id),
                col(PriceHistory.effective_at),
                col(PriceHistory.amount),
                col(PriceHistory.previous_amount),
            )
            .where(col(PriceHistory.product_id).in_(list(catalogue)))
            .where(col(PriceHistory.effective_at) < until)
            .order_by(col(PriceHistory.product_id), col(PriceHistory.effective_at))
        )
    ).all()
    changes: dict[int, list[tuple[date, int, int | None]]] = defaultdict(list)
    for pid, effective_at, amount, previous in history:
        changes[pid].append((shop_day(effective_at), amount, previous))
    for pid, price in catalogue.items():
        sold = days.get(pid, {})
        if not sold:
            continue
        start = min(sold)
        n = (today - start).days
        units = np.zeros(n)
        prices = np.zeros(n)
        promo = np.zeros(n)
        public = _public_prices(start, n, changes.get(pid, []), price)
        for i in range(n):
            seen = sold.get(start + timedelta(days=i))
            if seen is not None and seen.units > 0:
                units[i] = seen.units
                prices[i] = seen.paid / seen.units
                promo[i] = 1.0 if seen.promo else 0.0
            else:
                prices[i] = public[i]
        prices = np.maximum(prices, 1.0)
        data.series[pid] = Series(start, units, prices, promo)
    return data


def _public_prices(
    start: date, n: int, changes: Sequence[tuple[date, int, int | None]], catalogue: int
) -> FloatArray:
    """The public price of each day: the history's last change on or before it; before the
    first change, that change's previous amount (else its own); no history: the catalogue's."""
    prices = np.full(n, float(catalogue))
    if not changes:
        return prices
    first = changes[0]
    prices[:] = float(first[2] if first[2] is not None else first[1])
    for day, amount, _ in changes:
        offset = max(0, (day - start).days)
        if offset < n:
            prices[offset:] = float(amount)
    return prices


# --- the service ----------------------------------------------------------------------------


def fit_all(
    data: Data, wanted: Sequence[int], min_days: int, min_levels: int
) -> dict[int, Estimate]:
    out: dict[int, Estimate] = {}
    pooled: dict[int, Estimate] = {}
    for pid in wanted:
        own = fit_product(
            data.series.get(pid, Series(date.today(), np.zeros(0), np.zeros(0), np.zeros(0))),
            min_days,
            min_levels,
            product_id=pid,
        )
        category = data.categories.get(pid)
        if own.ok or category is None:
            out[pid] = own
            continue
        if category not in pooled:
            members = {q: s for q, s in data.series.items() if data.categories.get(q) == category}
            pooled[category] = fit_pooled(members, min_days, min_levels, category_id=category)
        fallback = pooled[category]
        if fallback.ok:
            out[pid] = Estimate(
                **{
                    **fallback.__dict__,
                    "product_id": pid,
                    "reason": f"the product's own data is thin ({own.reason}): its "
                    "category's estimate",
                }
            )
        else:
            out[pid] = own
    return out


async def estimates(
    session: AsyncSession,
    config: Any,
    product_ids: Sequence[int],
    *,
    as_of: datetime | None = None,
) -> dict[int, Estimate]:
    """Each product's elasticity: its own, or its category's (level CATEGORY) when its own
    data is below the thresholds, or INSUFFICIENT. The fits run in a worker thread."""
    if not product_ids:
        return {}
    # The category fallback needs the other products of the same categories.
    categories = {
        cat
        for cat in await session.scalars(
            select(col(Product.category_id)).where(col(Product.id).in_(product_ids))
        )
        if cat is not None
    }
    members = list(product_ids)
    if categories:
        members += [
            pid
            for pid in await session.scalars(
                select(col(Product.id)).where(col(Product.category_id).in_(categories))
            )
            if pid is not None and pid not in product_ids
        ]
    data = await load(session, members, as_of=as_of, history_days=config.elasticity_history_days)
    return await asyncio.to_thread(
        fit_all,
        data,
        list(product_ids),
        config.elasticity_min_days,
        config.elasticity_min_price_levels,
    )


async def category_estimate(
    session: AsyncSession, config: Any, category_id: int, *, as_of: datetime | None = None
) -> Estimate:
    """The pooled estimate of a category's products (product fixed effects)."""
    members = [
        pid
        for pid in await session.scalars(
            select(col(Product.id)).where(col(Product.category_id) == category_id)
        )
        if pid is not None
    ]
    data = await load(session, members, as_of=as_of, history_days=config.elasticity_history_days)
    return await asyncio.to_thread(
        fit_pooled,
        data.series,
        config.elasticity_min_days,
        config.elasticity_min_price_levels,
        category_id,
    )
