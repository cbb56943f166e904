"""Shoppers simulated with known rhythms and known dropout times, to measure churn warnings.

Each customer buys on a rhythm of their own — weekly, monthly or quarterly, their mean interval
spread around the rhythm's, the intervals Gamma-distributed with shape 4 (coefficient of
variation 0.5) — from a first purchase in the first 90 days, and browses (views, searches,
favourites, add-to-carts) as a Poisson process of their own daily rate. A share of the customers
churn: at their dropout day D they stop buying and browsing, and their browsing fades linearly
to nothing over the ``fade_days`` before D (``fade_days=0``: it does not fade, it stops).

The purchase a churner does not make is their **would-be purchase**: the first purchase of
their rhythm after D (their schedule is drawn in full, then cut at D). Days are whole numbers,
from 0 (the earliest account) to ``days``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.services import churn

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RHYTHMS = {"weekly": 7.0, "monthly": 30.0, "quarterly": 91.0}


@dataclass(frozen=True)
class Shoppers:
    """Purchases (one row per purchase day), browsing events per customer and day, and each
    customer's truth."""

    purchase_customer: IntArray
    purchase_day: IntArray
    # events[i, d]: customer i's browsing events on day d.
    events: npt.NDArray[np.int32]
    first_seen: IntArray
    rhythm: npt.NDArray[np.str_]
    churner: npt.NDArray[np.bool_]
    dropout_day: FloatArray  # inf for a customer who stays
    would_be_purchase: FloatArray  # inf for a customer who stays
    days: int

    @property
    def size(self) -> int:
        return int(self.first_seen.shape[0])

    def behaviour_at(self, as_of: IntArray) -> tuple[churn.Behaviour, FloatArray, FloatArray]:
        """What each customer did up to their own day ``as_of`` (inclusive), counted the way
        the recomputation counts it from the database: the churn inputs, and the customer's
        BG/NBD history (x, t_x, T) in days as a pair of arrays x and (t_x, T) stacked."""
        n = self.size
        cut = self.purchase_day <= as_of[self.purchase_customer]
        who, day = self.purchase_customer[cut], self.purchase_day[cut]
        last, usual = churn.purchase_rhythm(who, day, n)
        first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(first, who, day)
        x = np.bincount(who, minlength=n) - 1.0

        # Window sums over days (a, b] of the events matrix, per customer.
        cumulative = np.concatenate(
            [np.zeros((n, 1), dtype=np.int64), np.cumsum(self.events, axis=1, dtype=np.int64)],
            axis=1,
        )
        rows = np.arange(n)

        def upto(day_index: IntArray) -> FloatArray:
            clipped = np.clip(day_index, -1, self.days - 1) + 1
            return cumulative[rows, clipped].astype(np.float64)

        recent = upto(as_of) - upto(as_of - churn.RECENT_DAYS)
        start = as_of - churn.RECENT_DAYS - churn.BASELINE_DAYS
        baseline = upto(as_of - churn.RECENT_DAYS) - upto(start)
        baseline_days = np.clip(
            (as_of - churn.RECENT_DAYS) - np.maximum(start, self.first_seen - 1),
            0,
            churn.BASELINE_DAYS,
        ).astype(np.float64)
        # The last day with an event, up to as_of.
        seen = np.where(self.events > 0, np.arange(self.days), -1)
        last_event = np.maximum.accumulate(seen, axis=1)[rows, np.clip(as_of, 0, self.days - 1)]
        last_touch = np.maximum(last_event, last)
        behaviour = churn.Behaviour(
            days_since_purchase=(as_of - last).astype(np.float64),
            usual_gap=usual,
            recent_events=recent,
            baseline_events=baseline,
            baseline_days=baseline_days,
            days_since_interaction=(as_of - last_touch).astype(np.float64),
        )
        t_x = (last - first).astype(np.float64)
        age = (as_of - first).astype(np.float64)
        return behaviour, x, np.stack([t_x, age])


def simulate_shoppers(
    n: int,
    *,
    seed: int,
    days: int = 730,
    churn_share: float = 0.35,
    dropout_between: tuple[float, float] = (300.0, 640.0),
    fade_days: float = 90.0,
    browsing_per_day: float = 0.4,
    shares: tuple[float, float, float] = (0.3, 0.4, 0.3),
) -> Shoppers:
    """``n`` customers over ``days`` days (numpy's Generator with ``seed``)."""
    rng = np.random.default_rng(seed)
    names = np.array(list(RHYTHMS))
    rhythm = names[rng.choice(3, size=n, p=list(shares))]
    mean_gap = np.array([RHYTHMS[r] for r in rhythm]) * rng.lognormal(0.0, 0.15, n)
    first_purchase = 30.0 + rng.uniform(0.0, 90.0, n)
    first_seen = np.floor(first_purchase - rng.uniform(0.0, 30.0, n)).astype(np.int64)
    churner = rng.random(n) < churn_share
    dropout = np.where(churner, rng.uniform(*dropout_between, n), np.inf)

    # The whole schedule of each customer, past the end so that every churner's would-be
    # purchase is known.
    shape = 4.0
    times = [first_purchase]
    now = first_purchase.copy()
    would_be = np.full(n, np.inf)
    limit = days + 4 * max(RHYTHMS.values())
    going = np.ones(n, dtype=bool)
    while going.any():
        who = np.flatnonzero(going)
        now[who] += rng.gamma(shape, mean_gap[who] / shape)
        times.append(np.where(going, now, np.inf))
        missed = churner & np.isinf(would_be) & (now > dropout) & going
        would_be[missed] = now[missed]
        going &= now <= limit
    schedule = np.stack(times, axis=1)
    bought = (schedule <= np.minimum(dropout, days - 1)[:, None]) & np.isfinite(schedule)
    customer_of, index = np.nonzero(bought)
    purchase_day = np.floor(schedule[customer_of, index]).astype(np.int64)

    rate = browsing_per_day * rng.lognormal(-0.125, 0.5, n)
    day = np.arange(days, dtype=np.float64)[None, :]
    level = np.ones((n, days))
    if fade_days > 0:
        level = np.clip((dropout[:, None] - day) / fade_days, 0.0, 1.0)
    level = np.where(day >= dropout[:, None], 0.0, level)
    level = np.where(day >= first_seen[:, None], level, 0.0)
    events = rng.poisson(rate[:, None] * level).astype(np.int32)
    return Shoppers(
        purchase_customer=customer_of.astype(np.int64),
        purchase_day=purchase_day,
        events=events,
        first_seen=first_seen,
        rhythm=rhythm,
        churner=churner,
        dropout_day=dropout,
        would_be_purchase=would_be,
        days=days,
    )
