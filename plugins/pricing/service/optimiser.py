"""The profit-maximising price inside the guardrails (docs/plugins/pricing.md, "Dynamic
pricing"). Pure functions: no database, no clock.

Demand at a price ``p``: ``q(p) = v·(p/p0)^e`` units a day, where ``p0`` is today's price, ``v``
the units a day expected at it and ``e`` the elasticity. Over the horizon ``H`` days, with
``stock`` units on hand (None: unlimited) and a holding cost ``h`` (a share of the unit cost
``c`` for each unit left at the end):

    profit(p) = (p − c)·min(q(p)·H, stock) − h·c·max(stock − q(p)·H, 0)

Little stock (cover shorter than the horizon) caps the units sold, so a higher price loses no
sale: the price goes up. Much stock costs holding: the price goes down to sell it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from plugins.pricing.service.elasticity import FloatArray

# Without any bound on a side, the search stays within this factor of today's price.
SEARCH_FACTOR = 4.0
# The most candidate prices evaluated (a whole-minor-unit grid is thinned beyond it).
MAX_CANDIDATES = 400_000


@dataclass(frozen=True)
class Market:
    """Today's price and cost (minor units), units a day expected at today's price, stock."""

    price: int
    cost: int
    units: float
    stock: float | None = None


@dataclass(frozen=True)
class Bounds:
    """The guardrails of a suggestion. None: no such bound."""

    floor: int | None = None
    ceiling: int | None = None
    min_margin_bp: int | None = None
    map_amount: int | None = None
    max_change_bp: int | None = None
    competitor_min: int | None = None
    competitor_premium_bp: int | None = None


@dataclass(frozen=True)
class Policy:
    """Price points, hysteresis and the objective's horizon and holding cost."""

    endings: Sequence[int] = ()
    hysteresis_bp: int = 0
    min_profit_gain_bp: int = 0
    horizon_days: int = 28
    holding_bp_per_day: int = 0
    search_factor: float = SEARCH_FACTOR


@dataclass(frozen=True)
class Choice:
    """The chosen price and what it is expected to do, per day, at today's and at the new
    price. ``suggest`` is False when the price should stay (``reason`` says why); ``bound``
    names the guardrail that held the price back (None: the optimum was inside)."""

    price: int
    suggest: bool
    reason: str
    units_old: float
    units_new: float
    profit_old: float
    profit_new: float
    low: int
    high: int
    bound: str | None = None
    notes: tuple[str, ...] = field(default=())


def units_at(price: float | FloatArray, market: Market, elasticity: float) -> FloatArray:
    """Units a day at ``price``: v·(p/p0)^e."""
    ratio = np.asarray(price, dtype=np.float64) / float(market.price)
    result: FloatArray = market.units * np.power(ratio, elasticity)
    return result


def profit_per_day(
    price: float | FloatArray, market: Market, elasticity: float, policy: Policy
) -> FloatArray:
    """The objective over the horizon, divided by its days."""
    p = np.asarray(price, dtype=np.float64)
    horizon = float(policy.horizon_days)
    demand = units_at(p, market, elasticity) * horizon
    holding = policy.holding_bp_per_day * horizon / 10000
    if market.stock is None:
        sold = demand
        left = np.zeros_like(demand)
    else:
        sold = np.minimum(demand, market.stock)
        left = np.maximum(market.stock - demand, 0.0)
    total: FloatArray = (p - market.cost) * sold - holding * market.cost * left
    return total / horizon


def price_range(market: Market, bounds: Bounds, policy: Policy) -> tuple[int, int, str, str]:
    """The lowest and highest allowed prices (whole minor units: lower bounds rounded up,
    upper bounds down) and the guardrail that sets each. When they cross, the lower bound
    wins (as the core's clamp: floors win)."""
    p0 = market.price
    lows: list[tuple[float, str]] = []
    highs: list[tuple[float, str]] = []
    if bounds.floor is not None:
        lows.append((bounds.floor, "floor"))
    if bounds.min_margin_bp and market.cost > 0:
        lows.append((market.cost / (1 - bounds.min_margin_bp / 10000), "minimum margin"))
    if bounds.map_amount is not None:
        lows.append((bounds.map_amount, "MAP"))
    if bounds.max_change_bp is not None:
        lows.append((p0 * (1 - bounds.max_change_bp / 10000), "maximum change per day"))
        highs.append((p0 * (1 + bounds.max_change_bp / 10000), "maximum change per day"))
    if bounds.ceiling is not None:
        highs.append((bounds.ceiling, "ceiling"))
    if bounds.competitor_min is not None and bounds.competitor_premium_bp is not None:
        cap = bounds.competitor_min * (1 + bounds.competitor_premium_bp / 10000)
        highs.append((cap, "competitor price"))
    # Ties: the first listed (the guardrails come before the search range's defaults).
    lows.append((max(1.0, p0 / policy.search_factor), "search range"))
    highs.append((p0 * policy.search_factor, "search range"))
    low_value, low_label = max(lows, key=lambda item: item[0])
    high_value, high_label = min(highs, key=lambda item: item[0])
    # A tiny epsilon keeps 1999.9999999 (a float's view of 1999 × 1.0) from rounding past it.
    low = math.ceil(low_value - 1e-9)
    high = math.floor(high_value + 1e-9)
    if low > high:
        high, high_label = low, low_label
    return low, high, low_label, high_label


def modulus(ending: int) -> int:
    """The modulus of a price-point ending: the next power of ten above it (99 → 100: x.99;
    900 → 1000: x9.00; 0 means whole units, x.00: modulus 100)."""
    if ending <= 0:
        return 100
    return int(10 ** len(str(ending)))


def price_points(low: int, high: int, endings: Sequence[int]) -> list[int]:
    """Every price in [low, high] (minor units) that ends in one of ``endings``: p with
    p mod modulus(r) == r. Empty when none fits."""
    points: set[int] = set()
    for ending in endings:
        m = modulus(ending)
        r = max(0, ending) % m
        first = low + ((r - low) % m)
        points.update(range(first, high + 1, m))
    return sorted(points)


def candidates(low: int, high: int, endings: Sequence[int]) -> tuple[FloatArray, bool]:
    """The price points in [low, high]; when there are none (or no endings), every whole
    minor unit (thinned to :data:`MAX_CANDIDATES`). Second: whether price points were used."""
    if endings:
        points = price_points(low, high, endings)
        if points:
            return np.asarray(points, dtype=np.float64), True
    count = high - low + 1
    if count <= MAX_CANDIDATES:
        return np.arange(low, high + 1, dtype=np.float64), False
    return np.unique(np.round(np.linspace(low, high, MAX_CANDIDATES))), False


def optimise(market: Market, elasticity: float, bounds: Bounds, policy: Policy) -> Choice:
    """The most profitable allowed price and whether to suggest it.

    Candidates are the price points inside the bounds (else whole minor units); the best is
    the one of highest expected profit (ties: the closest to today's price). No suggestion when
    it is today's price, or when today's price is itself allowed and the move is below the
    hysteresis or gains less than ``min_profit_gain_bp`` of today's profit."""
    low, high, low_label, high_label = price_range(market, bounds, policy)
    prices, rounded = candidates(low, high, policy.endings)
    profits = profit_per_day(prices, market, elasticity, policy)
    best = float(np.max(profits))
    # Ties (within a millionth of a minor unit a day) go to the closest to today's price.
    tied = np.flatnonzero(profits >= best - 1e-6)
    index = int(tied[np.argmin(np.abs(prices[tied] - market.price))])
    price = int(prices[index])
    notes: list[str] = []
    if policy.endings and not rounded:
        notes.append("no price point inside the bounds: whole minor units")
    profit_old = float(profit_per_day(float(market.price), market, elasticity, policy))
    profit_new = float(profits[index])
    units_old = float(market.units)
    units_new = float(units_at(float(price), market, elasticity))
    bound = _binding(price, prices, market, elasticity, policy, low_label, high_label)
    allowed_today = low <= market.price <= high
    reason = ""
    if price == market.price:
        reason = "today's price is the best allowed"
    elif allowed_today:
        move_bp = abs(price - market.price) * 10000 / market.price
        gain = profit_new - profit_old
        if move_bp < policy.hysteresis_bp:
            reason = f"a move of {move_bp:.0f} bp is below the hysteresis ({policy.hysteresis_bp})"
        elif gain * 10000 < policy.min_profit_gain_bp * abs(profit_old):
            reason = f"the profit gain is below {policy.min_profit_gain_bp} bp of today's profit"
    elif not reason:
        notes.append("today's price is outside the guardrails")
    return Choice(
        price=price,
        suggest=not reason,
        reason=reason,
        units_old=units_old,
        units_new=units_new,
        profit_old=profit_old,
        profit_new=profit_new,
        low=low,
        high=high,
        bound=bound,
        notes=tuple(notes),
    )


def _binding(
    price: int,
    prices: FloatArray,
    market: Market,
    elasticity: float,
    policy: Policy,
    low_label: str,
    high_label: str,
) -> str | None:
    """The guardrail that held the price: the chosen price is the last candidate on a side and
    profit still rises past it."""
    here = float(profit_per_day(float(price), market, elasticity, policy))
    if price == int(prices[-1]):
        beyond = float(profit_per_day(price * 1.01 + 1, market, elasticity, policy))
        if beyond > here:
            return high_label
    if price == int(prices[0]):
        beyond = float(profit_per_day(max(price * 0.99 - 1, 0.5), market, elasticity, policy))
        if beyond > here:
            return low_label
    return None
