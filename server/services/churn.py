"""Churn risk: how likely a customer has stopped buying, and why we think so
(docs/insights.md, "Churn risk").

Pure numpy over one entry per customer: no database. The risk combines the purchase model's
dropout probability, 1 − P(alive) from BG/NBD (server/services/clv.py), with three signals of
the shopping path, each a rule with a threshold:

- **purchase overdue**: no purchase for more than 1.5 times the customer's usual interval (the
  median of the days between their distinct purchase days; for a customer who bought on one day
  only, the shop's median of those usual intervals);
- **browsing dropped**: their browsing events (views, searches, favourites, add-to-carts) in the
  last 30 days are improbably few against their own average rate over the 150 days before —
  a one-sided Poisson test, P(N ≤ recent | expected) ≤ 0.05 — with at least 30 days of that
  earlier window known;
- **no interaction**: no browsing event and no purchase for longer than their usual interval.

They combine as a noisy-OR: every signal that fires takes away a fixed share of the chance
that the customer is still a customer,

    risk = 1 − P(alive) · Π over the signals that fire (1 − w_signal),

so a customer the purchase model trusts and who shows none of the signals has the model's risk,
and each signal raises it. Every part that contributed is returned as a reason with its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# No purchase for more than this many times the usual interval is overdue.
OVERDUE_FACTOR = 1.5
# Browsing: the last RECENT_DAYS against the rate of the BASELINE_DAYS before them, judged
# only with at least MIN_BASELINE_DAYS of that window after the customer was first seen.
RECENT_DAYS = 30
BASELINE_DAYS = 150
MIN_BASELINE_DAYS = 30
# The one-sided Poisson test's level: so few events would happen this rarely by chance.
DROP_SIGNIFICANCE = 0.05
# The purchase model's dropout chance is listed as a reason from this value on.
MIN_LISTED_DROPOUT = 0.01


class ChurnReason(StrEnum):
    """Why a customer's churn risk is what it is."""

    # 1 − P(alive) of the purchase model; value: that probability.
    DROPOUT_MODEL = "DROPOUT_MODEL"
    # value: days since the last purchase.
    PURCHASE_OVERDUE = "PURCHASE_OVERDUE"
    # value: the last 30 days' browsing events as a share of the expected number.
    BROWSING_DROPPED = "BROWSING_DROPPED"
    # value: days since the last browsing event or purchase.
    NO_INTERACTION = "NO_INTERACTION"


# The share of the chance of being alive each signal takes away when it fires.
WEIGHTS: Mapping[ChurnReason, float] = {
    ChurnReason.PURCHASE_OVERDUE: 0.4,
    ChurnReason.BROWSING_DROPPED: 0.6,
    ChurnReason.NO_INTERACTION: 0.6,
}


@dataclass(frozen=True)
class Reason:
    code: ChurnReason
    value: float
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code.value, "value": self.value, "message": self.message}


@dataclass(frozen=True)
class Behaviour:
    """What the customers did, as of the moment of the assessment; one entry per customer.

    - ``days_since_purchase``: days from the last purchase to the moment;
    - ``usual_gap``: the median of the days between their distinct purchase days (NaN with
      one purchase day);
    - ``recent_events``: browsing events in the last :data:`RECENT_DAYS` days;
    - ``baseline_events``: browsing events in the :data:`BASELINE_DAYS` days before those;
    - ``baseline_days``: how much of that earlier window the customer was known for (from
      when they were first seen: account, first purchase or first event), 0 to 150;
    - ``days_since_interaction``: days since the last browsing event or purchase.
    """

    days_since_purchase: FloatArray
    usual_gap: FloatArray
    recent_events: FloatArray
    baseline_events: FloatArray
    baseline_days: FloatArray
    days_since_interaction: FloatArray

    @property
    def size(self) -> int:
        return int(self.days_since_purchase.shape[0])


@dataclass(frozen=True)
class ChurnRisk:
    """``probability`` per customer (NaN where P(alive) is unknown) and the reasons of each,
    the strongest first."""

    probability: FloatArray
    reasons: list[list[Reason]]
    overdue: npt.NDArray[np.bool_]
    browsing_dropped: npt.NDArray[np.bool_]
    no_interaction: npt.NDArray[np.bool_]


def purchase_rhythm(
    customer: npt.ArrayLike, day: npt.ArrayLike, n: int
) -> tuple[IntArray, FloatArray]:
    """The last purchase day and the usual interval (median days between distinct purchase
    days; NaN with fewer than two) of customers ``0..n-1``, from purchase rows ``(customer,
    day)`` in any order (several on one day count once). A customer without rows has last day
    -1."""
    rows = np.unique(
        np.column_stack([np.asarray(customer, np.int64), np.asarray(day, np.int64)]), axis=0
    )
    who, days = rows[:, 0], rows[:, 1]
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, who, days)
    same = who[1:] == who[:-1]
    gaps = (days[1:] - days[:-1])[same]
    gap_of = who[1:][same]
    order = np.lexsort((gaps, gap_of))
    gaps, gap_of = gaps[order], gap_of[order]
    counts = np.bincount(gap_of, minlength=n)
    starts = np.cumsum(counts) - counts
    median = np.full(n, np.nan)
    has = counts > 0
    low = starts[has] + (counts[has] - 1) // 2
    high = starts[has] + counts[has] // 2
    median[has] = (gaps[low] + gaps[high]) / 2
    return last, median


def shop_usual_gap(usual_gap: FloatArray) -> float:
    """The shop's usual interval: the median of its repeat customers' usual intervals (NaN
    when nobody bought on two days)."""
    known = usual_gap[np.isfinite(usual_gap)]
    return float(np.median(known)) if known.size else float("nan")


def expected_recent_events(behaviour: Behaviour) -> FloatArray:
    """Browsing events expected in the last 30 days at the customer's own earlier rate (NaN
    when less than :data:`MIN_BASELINE_DAYS` of the earlier window is known)."""
    known = behaviour.baseline_days >= MIN_BASELINE_DAYS
    return np.where(
        known,
        behaviour.baseline_events * RECENT_DAYS / np.where(known, behaviour.baseline_days, 1.0),
        np.nan,
    )


def assess(behaviour: Behaviour, p_alive: FloatArray, *, shop_gap: float) -> ChurnRisk:
    """Each customer's churn risk and its reasons. ``p_alive`` is NaN where the purchase model
    is unknown: the risk is then NaN too, while the signals that fire are still listed.
    ``shop_gap`` (:func:`shop_usual_gap`) stands in for the usual interval of a customer who
    bought on one day only."""
    gap = np.where(np.isfinite(behaviour.usual_gap), behaviour.usual_gap, shop_gap)
    has_gap = np.isfinite(gap)
    safe_gap = np.where(has_gap, gap, np.inf)
    overdue = has_gap & (behaviour.days_since_purchase > OVERDUE_FACTOR * safe_gap)
    silent = has_gap & (behaviour.days_since_interaction > safe_gap)

    from scipy import stats  # heavy: imported on first use (command lines start faster)

    expected = expected_recent_events(behaviour)
    judged = np.isfinite(expected) & (expected > 0)
    chance = np.ones(behaviour.size)
    chance[judged] = stats.poisson.cdf(behaviour.recent_events[judged], expected[judged])
    dropped = judged & (behaviour.recent_events < expected) & (chance <= DROP_SIGNIFICANCE)

    fired = {
        ChurnReason.PURCHASE_OVERDUE: overdue,
        ChurnReason.BROWSING_DROPPED: dropped,
        ChurnReason.NO_INTERACTION: silent,
    }
    kept = np.ones(behaviour.size)
    for code, mask in fired.items():
        kept = kept * np.where(mask, 1.0 - WEIGHTS[code], 1.0)
    probability = 1.0 - p_alive * kept

    reasons: list[list[Reason]] = []
    for i in range(behaviour.size):
        found: list[tuple[float, Reason]] = []
        dropout = 1.0 - float(p_alive[i])
        if np.isfinite(dropout) and dropout >= MIN_LISTED_DROPOUT:
            found.append(
                (
                    dropout,
                    Reason(
                        ChurnReason.DROPOUT_MODEL,
                        round(dropout, 4),
                        f"the purchase model puts the chance they have stopped buying at "
                        f"{dropout:.0%}",
                    ),
                )
            )
        usual = _usual(float(gap[i]), own=bool(np.isfinite(behaviour.usual_gap[i])))
        if overdue[i]:
            days = float(behaviour.days_since_purchase[i])
            found.append(
                (
                    WEIGHTS[ChurnReason.PURCHASE_OVERDUE],
                    Reason(
                        ChurnReason.PURCHASE_OVERDUE,
                        days,
                        f"no purchase for {days:.0f} days, over {OVERDUE_FACTOR:g} times {usual}",
                    ),
                )
            )
        if dropped[i]:
            recent, wanted = float(behaviour.recent_events[i]), float(expected[i])
            found.append(
                (
                    WEIGHTS[ChurnReason.BROWSING_DROPPED],
                    Reason(
                        ChurnReason.BROWSING_DROPPED,
                        round(recent / wanted, 4),
                        f"{recent:.0f} views, searches, favourites and add-to-carts in the "
                        f"last {RECENT_DAYS} days against {wanted:.1f} expected from their own "
                        f"earlier rate",
                    ),
                )
            )
        if silent[i]:
            days = float(behaviour.days_since_interaction[i])
            found.append(
                (
                    WEIGHTS[ChurnReason.NO_INTERACTION],
                    Reason(
                        ChurnReason.NO_INTERACTION,
                        days,
                        f"no visit and no purchase for {days:.0f} days, longer than {usual}",
                    ),
                )
            )
        found.sort(key=lambda pair: -pair[0])
        reasons.append([reason for _, reason in found])
    return ChurnRisk(
        probability=np.asarray(probability, dtype=np.float64),
        reasons=reasons,
        overdue=overdue,
        browsing_dropped=dropped,
        no_interaction=silent,
    )


def _usual(gap: float, *, own: bool) -> str:
    if own:
        return f"their usual {gap:g} days between purchases"
    return f"the shop's usual {gap:g} days between purchases (they have bought on one day only)"
