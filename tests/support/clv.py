"""Customers simulated from the BG/NBD and Gamma-Gamma processes with known parameters.

Each customer makes a first purchase at ``start`` (uniform over the cohort's first weeks), then
buys at rate λ ~ Gamma(r, α) while alive and drops out after each repeat purchase with
probability p ~ Beta(a, b); every purchase's value is Gamma(p_spend, ν) with
ν ~ Gamma(q, v). Times are in weeks, continuous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SimulatedCohort:
    """Every purchase (first ones included) as (customer, time, value), and each customer's
    truth: first purchase time, dropout time (inf while alive at the horizon), mean spend."""

    customer: npt.NDArray[np.int64]
    time: FloatArray
    value: FloatArray
    start: FloatArray
    death: FloatArray
    mean_spend: FloatArray

    def summary(self, calibration_end: float, horizon: float) -> dict[str, FloatArray]:
        """x, t_x, T at ``calibration_end``, holdout purchases in (calibration_end, horizon]
        and the mean value of the calibration repeat purchases, per customer (continuous
        time: no two purchases share a time)."""
        n = self.start.shape[0]
        repeat = self.time > self.start[self.customer]
        cal = repeat & (self.time <= calibration_end)
        x = np.bincount(self.customer[cal], minlength=n).astype(np.float64)
        last = self.start.copy()
        np.maximum.at(last, self.customer[cal], self.time[cal])
        spent = np.bincount(self.customer[cal], weights=self.value[cal], minlength=n)
        hold = (self.time > calibration_end) & (self.time <= horizon)
        return {
            "x": x,
            "t_x": last - self.start,
            "T": calibration_end - self.start,
            "m": np.divide(spent, x, out=np.zeros(n), where=x > 0),
            "holdout": np.bincount(self.customer[hold], minlength=n).astype(np.float64),
        }


def simulate(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float = 6.0,
    q: float = 4.0,
    v: float = 15.0,
    horizon: float,
    cohort_weeks: float = 12.0,
    seed: int,
) -> SimulatedCohort:
    """``n`` customers followed up to ``horizon`` weeks."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1 / alpha, n)
    dropout = rng.beta(a, b, n)
    nu = rng.gamma(q, 1 / v, n)
    start = rng.uniform(0, cohort_weeks, n)
    customers = [np.arange(n)]
    times = [start]
    now = start.copy()
    death = np.full(n, np.inf)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        who = np.flatnonzero(alive)
        now[who] += rng.exponential(1 / rate[who])
        bought = now[who] <= horizon
        alive[who[~bought]] = False
        who = who[bought]
        customers.append(who)
        times.append(now[who].copy())
        dies = rng.random(who.shape[0]) < dropout[who]
        death[who[dies]] = now[who[dies]]
        alive[who[dies]] = False
    customer = np.concatenate(customers)
    value = rng.gamma(p, 1 / nu[customer])
    return SimulatedCohort(
        customer=customer,
        time=np.concatenate(times),
        value=value,
        start=start,
        death=death,
        mean_spend=p / nu,
    )
