"""Churn risk (server/services/churn.py): the purchase rhythm and each signal on hand-made
customers, the noisy-OR combination, and the warning measured on simulated shoppers with known
dropout times against two baselines (tests/support/churn.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import stats

from server.services import churn, clv
from tests.support.churn import RHYTHMS, Shoppers, simulate_shoppers

R = churn.ChurnReason

# --- the purchase rhythm ------------------------------------------------------------------------


def test_the_usual_interval_is_the_median_gap_between_distinct_purchase_days() -> None:
    # Customer 0: days 0, 7, 14, 14 (the same day twice), 35: gaps 7, 7, 21 -> median 7.
    # Customer 1: days 10, 40: one gap of 30. Customer 2: one day only. Customer 3: none.
    # Customer 4: gaps 5, 10, 20, 40 -> median (10 + 20) / 2 = 15; rows out of order.
    customer = [0, 0, 0, 0, 0, 1, 1, 2, 4, 4, 4, 4, 4]
    day = [14, 0, 7, 14, 35, 40, 10, 3, 75, 0, 5, 35, 15]
    last, usual = churn.purchase_rhythm(customer, day, 5)
    assert last.tolist() == [35, 40, 3, -1, 75]
    assert usual[[0, 1, 4]].tolist() == [7.0, 30.0, 15.0]
    assert np.isnan(usual[[2, 3]]).all()
    assert churn.shop_usual_gap(usual) == 15.0  # the median of 7, 30, 15
    assert math.isnan(churn.shop_usual_gap(np.array([np.nan])))


# --- each signal --------------------------------------------------------------------------------


def behaviour(**columns: list[float]) -> churn.Behaviour:
    """Customers who, unless a column says otherwise, bought 5 days ago on a 30-day rhythm,
    browsed 10 times in the last 30 days at an earlier rate of 10 a month over the whole
    150-day window, and were here yesterday."""
    n = len(next(iter(columns.values())))
    defaults = {
        "days_since_purchase": 5.0,
        "usual_gap": 30.0,
        "recent_events": 10.0,
        "baseline_events": 50.0,
        "baseline_days": 150.0,
        "days_since_interaction": 1.0,
    }
    return churn.Behaviour(
        **{
            name: np.array(columns.get(name, [value] * n), dtype=np.float64)
            for name, value in defaults.items()
        }
    )


def codes(risk: churn.ChurnRisk) -> list[list[str]]:
    return [[reason.code.value for reason in reasons] for reasons in risk.reasons]


def test_a_purchase_is_overdue_after_one_and_a_half_usual_intervals() -> None:
    # 45 days is exactly 1.5 x 30: not yet; 46 is. With one purchase day (no interval of their
    # own) the shop's usual interval, 20 days, stands in: 31 days is over 30.
    risk = churn.assess(
        behaviour(
            days_since_purchase=[45, 46, 31, 29],
            usual_gap=[30, 30, math.nan, math.nan],
            days_since_interaction=[1, 1, 1, 1],
        ),
        np.ones(4),
        shop_gap=20.0,
    )
    assert codes(risk) == [[], ["PURCHASE_OVERDUE"], ["PURCHASE_OVERDUE"], []]
    overdue = risk.reasons[1][0]
    assert overdue.value == 46.0
    assert (
        overdue.message
        == "no purchase for 46 days, over 1.5 times their usual 30 days between purchases"
    )
    assert "the shop's usual 20 days" in risk.reasons[2][0].message
    # Nobody bought twice anywhere: there is no usual interval to be overdue against.
    alone = churn.assess(
        behaviour(days_since_purchase=[400], usual_gap=[math.nan], days_since_interaction=[400]),
        np.ones(1),
        shop_gap=math.nan,
    )
    assert codes(alone) == [[]]


def test_browsing_dropped_when_so_few_events_are_improbable_at_the_customers_own_rate() -> None:
    # Expected 10 in 30 days (50 over 150 days). P(N <= 4 | 10) = 0.029 <= 0.05: dropped;
    # P(N <= 5 | 10) = 0.067: not. The same 4 events against 25 days of earlier history: not
    # judged (under 30 days). Against 60 days with 20 events (also 10 expected): dropped. A
    # quiet customer (2 expected) with none: P(0 | 2) = 0.135, not significant.
    assert stats.poisson.cdf(4, 10) < 0.05 < stats.poisson.cdf(5, 10)
    risk = churn.assess(
        behaviour(
            recent_events=[4, 5, 4, 4, 0],
            baseline_events=[50, 50, 50, 20, 10],
            baseline_days=[150, 150, 25, 60, 150],
        ),
        np.ones(5),
        shop_gap=30.0,
    )
    assert codes(risk) == [["BROWSING_DROPPED"], [], [], ["BROWSING_DROPPED"], []]
    dropped = risk.reasons[0][0]
    assert dropped.value == pytest.approx(0.4)
    assert dropped.message == (
        "4 views, searches, favourites and add-to-carts in the last 30 days against 10.0 "
        "expected from their own earlier rate"
    )
    assert risk.browsing_dropped.tolist() == [True, False, False, True, False]


def test_no_interaction_for_longer_than_the_usual_interval() -> None:
    risk = churn.assess(
        behaviour(days_since_purchase=[31, 31], days_since_interaction=[30, 31]),
        np.ones(2),
        shop_gap=30.0,
    )
    assert codes(risk) == [[], ["NO_INTERACTION"]]
    assert risk.reasons[1][0].value == 31.0
    assert risk.reasons[1][0].message == (
        "no visit and no purchase for 31 days, longer than their usual 30 days between purchases"
    )


def test_signals_combine_as_a_noisy_or_over_p_alive() -> None:
    # risk = 1 - P(alive) * product of (1 - w) over the signals that fire.
    w = churn.WEIGHTS
    risk = churn.assess(
        behaviour(
            days_since_purchase=[5, 60, 60, 60],
            recent_events=[10, 10, 0, 0],
            days_since_interaction=[1, 1, 1, 60],
        ),
        np.array([0.9, 0.8, 0.8, math.nan]),
        shop_gap=30.0,
    )
    overdue, dropped, silent = (w[R.PURCHASE_OVERDUE], w[R.BROWSING_DROPPED], w[R.NO_INTERACTION])
    assert risk.probability[:3] == pytest.approx(
        [1 - 0.9, 1 - 0.8 * (1 - overdue), 1 - 0.8 * (1 - overdue) * (1 - dropped)]
    )
    # The strongest first; the model's share is listed with its value.
    assert codes(risk)[:3] == [
        ["DROPOUT_MODEL"],
        ["PURCHASE_OVERDUE", "DROPOUT_MODEL"],
        ["BROWSING_DROPPED", "PURCHASE_OVERDUE", "DROPOUT_MODEL"],
    ]
    assert risk.reasons[0][0].value == pytest.approx(0.1)
    assert risk.reasons[0][0].message == (
        "the purchase model puts the chance they have stopped buying at 10%"
    )
    # Without the purchase model the risk is unknown, and the signals are still listed.
    assert math.isnan(risk.probability[3])
    assert codes(risk)[3] == ["BROWSING_DROPPED", "NO_INTERACTION", "PURCHASE_OVERDUE"]
    assert {overdue, dropped, silent} <= {0.4, 0.6}  # documented in docs/insights.md
    # A negligible dropout chance (under 1%) is not listed.
    assert codes(churn.assess(behaviour(recent_events=[10]), np.array([0.995]), shop_gap=30.0)) == [
        []
    ]


# --- measured: warning 30 days before the would-be purchase -----------------------------------
#
# 3,000 simulated customers (tests/support/churn.py): weekly, monthly and quarterly buyers
# (30/40/30%), 35% of whom drop out at a known day between day 300 and 640, their browsing
# fading over the 90 days before. Each churner is assessed 30 days before their would-be
# purchase (the first purchase of their rhythm they do not make); each customer who stays is
# assessed on a day drawn from the same range. The rules' thresholds and weights were chosen on
# another simulation (seed 11); these seeds only measure them.

SEED = 20240601
# BG/NBD is fitted once, on every customer's purchases up to this day.
FIT_DAY = 450


def auc(score: np.ndarray[Any, Any], positive: np.ndarray[Any, Any]) -> float:
    """The chance a positive scores above a negative (ties count half): Mann-Whitney's U over
    the product of the sample sizes."""
    u = stats.mannwhitneyu(score[positive], score[~positive]).statistic
    return float(u / (positive.sum() * (~positive).sum()))


@dataclass(frozen=True)
class Scored:
    name: str
    auc: float
    precision: float | None
    recall: float

    def __str__(self) -> str:
        precision = "n/a (nobody flagged)" if self.precision is None else f"{self.precision:.3f}"
        return f"{self.name}: AUC {self.auc:.3f}, precision {precision}, recall {self.recall:.3f}"


def score(name: str, values: Any, flagged: Any, churned: Any) -> Scored:
    hits = int((flagged & churned).sum())
    return Scored(
        name=name,
        auc=auc(values, churned),
        precision=hits / int(flagged.sum()) if flagged.any() else None,
        recall=hits / int(churned.sum()),
    )


def assessed_30_days_ahead(shoppers: Shoppers, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    would_be = np.where(np.isfinite(shoppers.would_be_purchase), shoppers.would_be_purchase, 0)
    as_of = np.floor(would_be).astype(np.int64) - 30
    # A churner whose would-be purchase falls after the simulated days cannot be assessed.
    kept = ~shoppers.churner | (as_of < shoppers.days)
    low, high = as_of[shoppers.churner & kept].min(), as_of[shoppers.churner & kept].max()
    stays = ~shoppers.churner
    as_of[stays] = rng.integers(low, high + 1, int(stays.sum()))

    bought = shoppers.purchase_day <= FIT_DAY
    summary = clv.summarize_transactions(
        shoppers.purchase_customer[bought],
        shoppers.purchase_day[bought].astype("datetime64[D]"),
        calibration_end=np.datetime64(FIT_DAY, "D"),
        unit="day",
    )
    fit = clv.fit_bgnbd(summary.frequency, summary.recency, summary.age)
    assert fit.converged, fit.message
    behaviour, x, (t_x, age) = shoppers.behaviour_at(as_of)
    p_alive = fit.model.p_alive(x, t_x, age)
    risk = churn.assess(behaviour, p_alive, shop_gap=churn.shop_usual_gap(behaviour.usual_gap))
    churned = shoppers.churner[kept]
    days_since = behaviour.days_since_purchase[kept]
    dropout = 1 - p_alive[kept]
    ours = risk.probability[kept]
    per_rhythm = {
        rhythm: auc(ours[shoppers.rhythm[kept] == rhythm], churned[shoppers.rhythm[kept] == rhythm])
        for rhythm in RHYTHMS
    }
    return {
        "ours": score("churn risk >= 0.5", ours, ours >= 0.5, churned),
        "days": score("days since last purchase > 90", days_since, days_since > 90, churned),
        "model": score("1 - P(alive) >= 0.5", dropout, dropout >= 0.5, churned),
        "per_rhythm": per_rhythm,
        "customers": int(kept.sum()),
        "churners": int(churned.sum()),
    }


def report(found: dict[str, Any]) -> str:
    rhythms = ", ".join(f"{k} {v:.3f}" for k, v in found["per_rhythm"].items())
    return (
        f"{found['customers']} customers, {found['churners']} churners assessed 30 days before "
        f"their would-be purchase: {found['ours']}; {found['days']}; {found['model']}; "
        f"churn risk AUC by rhythm: {rhythms}"
    )


def test_the_churn_risk_warns_30_days_ahead_where_purchase_history_alone_cannot() -> None:
    found = assessed_30_days_ahead(simulate_shoppers(3000, seed=SEED), SEED + 1)
    ours, days, model = found["ours"], found["days"], found["model"]
    message = report(found)
    # Purchases alone cannot tell a churner 30 days before the purchase they will not make
    # from a customer who stays (both AUCs near 0.5); the fading browsing can.
    assert ours.auc >= 0.75 and ours.auc >= max(days.auc, model.auc) + 0.2, message
    assert ours.precision is not None and ours.precision >= 0.8, message
    assert ours.recall >= 0.6 and ours.recall >= 4 * days.recall, message
    assert model.recall <= 0.05 and days.precision is not None and days.precision < 0.6, message
    # Every rhythm is warned of better than by chance.
    assert min(found["per_rhythm"].values()) >= 0.7, message


def test_without_fading_browsing_the_warning_is_no_worse_than_the_baselines() -> None:
    """When churners stop browsing only when they stop buying, nothing shows 30 days ahead but
    the quarterly buyers' long silences: the risk is then barely better than the baselines,
    and not worse."""
    found = assessed_30_days_ahead(simulate_shoppers(3000, seed=SEED, fade_days=0), SEED + 1)
    ours, days, model = found["ours"], found["days"], found["model"]
    message = report(found)
    assert max(days.auc, model.auc) <= ours.auc <= 0.65, message
    assert ours.precision is not None and ours.precision >= 0.6, message
