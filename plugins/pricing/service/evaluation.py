"""``shopgraph pricing evaluate``: elasticity estimation and the price optimiser measured on
synthetic shops whose right answers are known (docs/plugins/pricing.md, "Evaluation").

(a) Elasticity recovery: Poisson daily sales from a known constant elasticity, with promotion
days, a weekday shape, a yearly season and price changes; the estimator's error against two
baselines fitted on the same days: a naive log-log least-squares fit on the sale days without
controls, and the arc elasticity between the two most common price levels.

(b) Pricing: products with a known demand curve ``q(p) = v·(p/p0)^e`` (the truth); each policy
picks a price, and its profit over the horizon is measured on the true curve (expected units,
stock-limited, holding cost on what is left). The optimiser sees an elasticity estimated from
simulated history (not the truth). Baselines: keep today's price, cost plus a fixed markup, and
match the cheapest competitor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from plugins.pricing.service import optimiser
from plugins.pricing.service.elasticity import Series, fit_product

# The true effects of the synthetic shops: a promotion lifts demand by this factor, the
# weekday shape (Monday first) and the yearly season's amplitude.
PROMO_LIFT = 1.6
WEEKDAY = np.array([0.85, 0.85, 0.9, 0.95, 1.05, 1.25, 1.15])
SEASON_AMPLITUDE = 0.3
# Promotions in the simulation cut the price by this share on promotion days.
PROMO_CUT = 0.2
ELASTICITIES = (-0.8, -1.5, -2.0, -3.0)
# Cost-plus markup and the competitor's price relative to the profit-maximising one.
COST_PLUS_MARKUP = 0.5
MIN_DAYS = 56
MIN_LEVELS = 3


@dataclass(frozen=True)
class Simulated:
    series: Series
    elasticity: float


def simulate(
    elasticity: float,
    rng: np.random.Generator,
    *,
    days: int = 365,
    base_units: float = 6.0,
    base_price: float = 5000.0,
    start: date = date(2025, 1, 6),
    levels: int = 5,
    promo_share: float = 0.12,
) -> Simulated:
    """Poisson daily sales of one product with a known constant elasticity: the list price
    moves between ``levels`` levels (±20%) in blocks of one to four weeks; promotion days
    (about ``promo_share`` of them) cut the paid price and lift demand on their own too."""
    ladder = base_price * np.linspace(0.8, 1.2, levels)
    list_price = np.empty(days)
    i = 0
    while i < days:
        block = int(rng.integers(7, 29))
        list_price[i : i + block] = ladder[int(rng.integers(0, levels))]
        i += block
    promo = (rng.random(days) < promo_share).astype(np.float64)
    paid = np.round(list_price * (1 - PROMO_CUT * promo))
    ordinal = start.toordinal() + np.arange(days)
    weekday = WEEKDAY[(start.weekday() + np.arange(days)) % 7]
    season = np.exp(SEASON_AMPLITUDE * np.sin(2 * np.pi * ordinal / 365.25))
    mean = (
        base_units
        * (paid / base_price) ** elasticity
        * weekday
        * season
        * np.where(promo > 0, PROMO_LIFT, 1.0)
    )
    units = rng.poisson(mean).astype(np.float64)
    return Simulated(Series(start, units, paid, promo), elasticity)


def naive_ols(series: Series) -> float | None:
    """Log-log least squares on the sale days only, no controls."""
    sold = series.units > 0
    if sold.sum() < 3 or np.ptp(series.prices[sold]) == 0:
        return None
    slope = np.polyfit(np.log(series.prices[sold]), np.log(series.units[sold]), 1)[0]
    return float(slope)


def arc_elasticity(series: Series) -> float | None:
    """The arc (midpoint) elasticity between the two most common price levels' mean daily
    units: (Δq / mean q) / (Δp / mean p)."""
    levels, counts = np.unique(np.round(series.prices), return_counts=True)
    if levels.size < 2:
        return None
    a, b = levels[np.argsort(counts)[-2:]]
    qa = float(series.units[np.round(series.prices) == a].mean())
    qb = float(series.units[np.round(series.prices) == b].mean())
    if qa + qb == 0:
        return None
    return float(((qb - qa) / ((qa + qb) / 2)) / ((b - a) / ((a + b) / 2)))


@dataclass
class RecoveryRow:
    elasticity: float
    shops: int
    estimator: float
    naive: float
    arc: float
    covered: float


def recovery(
    rng: np.random.Generator, shops: int, advance: Callable[[str], None] | None = None
) -> list[RecoveryRow]:
    """Mean absolute relative error of each method for each true elasticity over ``shops``
    simulated products; ``covered``: the share of 95% intervals holding the truth."""
    rows = []
    for e in ELASTICITIES:
        errors: dict[str, list[float]] = {"estimator": [], "naive": [], "arc": []}
        covered = 0
        for _ in range(shops):
            sim = simulate(e, rng)
            fit = fit_product(sim.series, MIN_DAYS, MIN_LEVELS)
            guesses = {
                "estimator": fit.value,
                "naive": naive_ols(sim.series),
                "arc": arc_elasticity(sim.series),
            }
            for name, guess in guesses.items():
                # A method that cannot answer scores the worst error: 100%.
                errors[name].append(1.0 if guess is None else abs(guess - e) / abs(e))
            if fit.low is not None and fit.high is not None and fit.low <= e <= fit.high:
                covered += 1
        rows.append(
            RecoveryRow(
                e,
                shops,
                float(np.mean(errors["estimator"])),
                float(np.mean(errors["naive"])),
                float(np.mean(errors["arc"])),
                covered / shops,
            )
        )
        if advance is not None:
            advance(f"elasticity {e}")
    return rows


# --- pricing ----------------------------------------------------------------------------------


@dataclass
class PricingRow:
    policy: str
    profit: float
    relative: float


def _true_profit(
    price: float, market: optimiser.Market, truth: float, holding: float, horizon: int
) -> float:
    units = market.units * (price / market.price) ** truth
    sold = units * horizon if market.stock is None else min(units * horizon, market.stock)
    left = 0.0 if market.stock is None else max(market.stock - units * horizon, 0.0)
    return (price - market.cost) * sold - holding * market.cost * left


def pricing(
    rng: np.random.Generator,
    shops: int,
    advance: Callable[[str], None] | None = None,
    settings: dict[str, Any] | None = None,
) -> list[PricingRow]:
    """Total profit over the horizon of each policy, summed over ``shops`` products per true
    elasticity (elastic ones: an optimum exists), relative to keeping today's price."""
    knobs = {
        "endings": (99, 900),
        "max_change_bp": 1000,
        "hysteresis_bp": 200,
        "min_profit_gain_bp": 100,
        "horizon_days": 28,
        "holding_bp_per_day": 5,
        "competitor_premium_bp": 1000,
        **(settings or {}),
    }
    horizon = int(knobs["horizon_days"])
    holding = int(knobs["holding_bp_per_day"]) * horizon / 10000
    totals: dict[str, float] = {"keep": 0.0, "cost_plus": 0.0, "competitor": 0.0, "optimiser": 0.0}
    for e in (-1.5, -2.0, -3.0):
        for _ in range(shops):
            cost = float(rng.integers(1000, 8000))
            ideal = cost * e / (1 + e)
            # Today's price: somewhere around the optimum, off by up to ±25%.
            today = float(round(ideal * rng.uniform(0.75, 1.25)))
            units = float(rng.uniform(2, 20))
            stock_cover = float(rng.choice([0.5, 1.0, 3.0, 10.0]))
            stock = units * horizon * stock_cover
            competitor = float(round(ideal * rng.uniform(0.85, 1.15)))
            history = simulate(e, rng, base_units=units, base_price=today)
            fit = fit_product(history.series, MIN_DAYS, MIN_LEVELS)
            market = optimiser.Market(price=int(today), cost=int(cost), units=units, stock=stock)
            bounds = optimiser.Bounds(
                max_change_bp=int(knobs["max_change_bp"]),
                competitor_min=int(competitor),
                competitor_premium_bp=int(knobs["competitor_premium_bp"]),
            )
            choice = optimiser.optimise(
                market,
                fit.value if fit.value is not None else -1.0,
                bounds,
                optimiser.Policy(
                    endings=tuple(knobs["endings"]),
                    hysteresis_bp=int(knobs["hysteresis_bp"]),
                    min_profit_gain_bp=int(knobs["min_profit_gain_bp"]),
                    horizon_days=horizon,
                    holding_bp_per_day=int(knobs["holding_bp_per_day"]),
                ),
            )
            prices = {
                "keep": today,
                "cost_plus": round(cost * (1 + COST_PLUS_MARKUP)),
                "competitor": competitor,
                "optimiser": float(choice.price) if fit.ok else today,
            }
            for name, price in prices.items():
                totals[name] += _true_profit(price, market, e, holding, horizon)
        if advance is not None:
            advance(f"pricing e={e}")
    keep = totals["keep"]
    return [
        PricingRow(name, total, total / keep if keep else float("nan"))
        for name, total in totals.items()
    ]


POLICY_LABELS = {
    "keep": "keep today's price",
    "cost_plus": f"cost plus {COST_PLUS_MARKUP:.0%}",
    "competitor": "match the cheapest competitor",
    "optimiser": "the optimiser (estimated elasticity, guardrails, price points)",
}


def report(recovery: list[RecoveryRow], pricing: list[PricingRow], seed: int, shops: int) -> str:
    """The figures as the Markdown tables docs/plugins/pricing.md shows."""
    lines = [
        f"Elasticity recovery: mean absolute relative error over {shops} simulated products "
        f"per true elasticity (seed {seed}); coverage: share of 95% intervals holding the truth.",
        "",
        "| true e | Poisson PML (ours) | naive log-log OLS | arc elasticity | 95% coverage |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in recovery:
        lines.append(
            f"| {r.elasticity:.1f} | {r.estimator:.1%} | {r.naive:.1%} | {r.arc:.1%} "
            f"| {r.covered:.0%} |"
        )
    lines += [
        "",
        f"Pricing: profit over the horizon on the true demand curves, {shops} products per "
        "elasticity (-1.5, -2, -3), relative to keeping today's price.",
        "",
        "| policy | profit (minor units) | vs keep |",
        "|---|---:|---:|",
    ]
    for p in pricing:
        lines.append(f"| {POLICY_LABELS[p.policy]} | {p.profit:,.0f} | {p.relative:.3f} |")
    return "\n".join(lines)
