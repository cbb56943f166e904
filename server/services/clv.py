"""Customer lifetime value: how often a customer will buy (BG/NBD), how much they spend per
purchase (Gamma-Gamma), and what that is worth over a horizon (discounted CLV).

Pure maths over numpy arrays: no database, no GraphQL. The steps, each a function:

1. :func:`summarize_transactions` turns a transaction log (customer, date, optional amount)
   and a calibration end date into one row per customer (:class:`CustomerSummary`): frequency
   ``x`` (repeat purchases, counted per distinct day), recency ``t_x`` and age ``T`` (time from
   the first purchase to the last repeat purchase / to the calibration end) in days or weeks,
   the mean spend of the repeat purchases, and the purchases after the calibration end
   (the holdout).
2. :func:`fit_bgnbd` fits the BG/NBD model (Fader, Hardie & Lee 2005, "Counting your
   customers the easy way", Marketing Science 24(2)) by maximum likelihood; a
   :class:`BgNbd` gives the expected purchases of a customer in the next ``t`` periods,
   P(alive), and the expected purchases of a new customer.
3. :func:`fit_gamma_gamma` fits the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and
   CLV: using iso-value curves", JMR 42(4); Hardie, "The Gamma-Gamma model of monetary value",
   2013) on the customers with a repeat purchase; a :class:`GammaGamma` gives a customer's
   expected spend per purchase.
4. :func:`customer_lifetime_value` discounts expected purchases times expected spend times a
   margin over a horizon of months.
5. :func:`compare_holdout` measures the purchase forecast on the holdout against two simple
   baselines; :func:`fit_clv` runs 2, 3 and 5 on a summary.

Time is in the summary's unit (a day or a week) everywhere: fitted rates are per that unit.
docs/insights.md has the formulas and the measured results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special

from server.services.errors import DomainError, ValidationFailed

if TYPE_CHECKING:
    from server.progress import Progress

FloatArray = npt.NDArray[np.float64]
Unit = Literal["day", "week"]
DAYS_PER_UNIT: dict[str, int] = {"day": 1, "week": 7}
# An average month (365.25 / 12 days): CLV horizons and discount rates are monthly.
DAYS_PER_MONTH = 365.25 / 12
# Fitted parameters are kept within [e^-LOG_BOUND, e^LOG_BOUND]: a fit that reaches the edge
# is degenerate (a parameter running off to 0 or infinity) and is reported as not converged.
LOG_BOUND = 10.0


class InvalidTransactions(ValidationFailed):
    """The transaction log cannot be summarised (empty, a date missing, a negative amount…)."""

    code = "INVALID_TRANSACTIONS"


class CannotFit(DomainError):
    """The data cannot identify the model (nobody bought twice, no positive spend…)."""

    code = "CANNOT_FIT"


# ---------------------------------------------------------------------------------------------
# 1. The customer summary


@dataclass(frozen=True)
class CustomerSummary:
    """One entry per customer whose first purchase is on or before the calibration end, in the
    order of ``customers`` (sorted). Times are in ``unit``s.

    - ``frequency`` x: repeat purchases up to the calibration end (distinct purchase days
      after the first);
    - ``recency`` t_x: from the first purchase to the last repeat purchase (0 when x = 0);
    - ``age`` T: from the first purchase to the calibration end;
    - ``monetary``: mean spend of the repeat purchases (a day's purchases add up to one), 0
      when x = 0; None when the log has no amounts;
    - ``holdout_frequency``: purchase days after the calibration end, up to
      ``observation_end`` (all 0 when ``holdout_length`` is 0).
    """

    customers: npt.NDArray[Any]
    frequency: FloatArray
    recency: FloatArray
    age: FloatArray
    monetary: FloatArray | None
    holdout_frequency: FloatArray
    holdout_length: float
    unit: Unit
    calibration_end: date
    observation_end: date

    @property
    def size(self) -> int:
        return int(self.frequency.shape[0])


def _as_days(values: npt.ArrayLike, what: str) -> npt.NDArray[np.int64]:
    try:
        days = np.asarray(values, dtype="datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise InvalidTransactions(f"{what}: not dates ({exc})", field=what) from exc
    if np.isnat(days).any():
        row = int(np.flatnonzero(np.isnat(days))[0])
        raise InvalidTransactions(f"{what}: transaction {row + 1} has no date", field=what)
    return days.astype(np.int64)


def _as_day(value: date | str | np.datetime64, what: str) -> int:
    return int(_as_days(np.array([value]), what)[0])


def _to_date(day: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day)


def summarize_transactions(
    customers: npt.ArrayLike,
    dates: npt.ArrayLike,
    amounts: npt.ArrayLike | None = None,
    *,
    calibration_end: date | str | np.datetime64,
    observation_end: date | str | np.datetime64 | None = None,
    unit: Unit = "week",
) -> CustomerSummary:
    """Summarise a transaction log, one row per transaction in any order, at
    ``calibration_end`` (inclusive).

    Several purchases of a customer on one day count as one purchase whose amount is their sum.
    Customers whose first purchase is after the calibration end are left out: they are not of
    the calibration cohort. ``observation_end`` (default: the log's last date) ends the holdout;
    later rows are ignored. Raises :class:`InvalidTransactions` for an empty log, columns of
    different lengths, a missing date, an amount that is negative or not a number, an
    observation end before the calibration end, or a log with nobody before the calibration end.
    """
    if unit not in DAYS_PER_UNIT:
        raise InvalidTransactions(f"unit must be 'day' or 'week', not {unit!r}", field="unit")
    ids = np.asarray(customers)
    days = _as_days(dates, "dates")
    if ids.ndim != 1 or days.ndim != 1 or ids.shape != days.shape:
        raise InvalidTransactions("customers and dates must be 1-d and of the same length")
    if ids.shape[0] == 0:
        raise InvalidTransactions("the transaction log is empty")
    spend: FloatArray | None = None
    if amounts is not None:
        try:
            spend = np.asarray(amounts, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidTransactions(f"amounts: not numbers ({exc})", field="amounts") from exc
        if spend.shape != days.shape:
            raise InvalidTransactions("amounts must have one value per transaction")
        bad = ~np.isfinite(spend) | (spend < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidTransactions(
                f"amounts: {int(bad.sum())} negative or missing amount(s), the first of "
                f"transaction {row + 1} ({spend[row]!r}); refunds are not purchases: leave "
                "them out",
                field="amounts",
            )
    cal = _as_day(calibration_end, "calibration_end")
    end = (
        int(days.max()) if observation_end is None else _as_day(observation_end, "observation_end")
    )
    if end < cal:
        raise InvalidTransactions(
            f"the observation end {_to_date(end)} is before the calibration end {_to_date(cal)}",
            field="observation_end",
        )

    names, index = np.unique(ids, return_inverse=True)
    keep = days <= end
    index, days = index[keep], days[keep]
    spend = spend[keep] if spend is not None else None
    # Distinct (customer, day) purchases, sorted by customer then day.
    order = np.lexsort((days, index))
    index, days = index[order], days[order]
    starts = np.flatnonzero(
        np.concatenate(([True], (index[1:] != index[:-1]) | (days[1:] != days[:-1])))
    )
    p_cust, p_day = index[starts], days[starts]
    p_spend = np.add.reduceat(spend[order], starts) if spend is not None else None

    first_of_customer = np.concatenate(([True], p_cust[1:] != p_cust[:-1]))
    first_day = np.zeros(names.shape[0], dtype=np.int64)
    first_day[p_cust[first_of_customer]] = p_day[first_of_customer]
    cohort = np.zeros(names.shape[0], dtype=bool)
    cohort[p_cust] = True
    cohort &= first_day <= cal
    if not cohort.any():
        raise InvalidTransactions(
            f"nobody bought on or before the calibration end {_to_date(cal)}",
            field="calibration_end",
        )

    n = names.shape[0]
    in_cal = p_day <= cal
    count = np.bincount(p_cust[in_cal], minlength=n)
    last_day = first_day.copy()
    np.maximum.at(last_day, p_cust[in_cal], p_day[in_cal])
    holdout = np.bincount(p_cust[~in_cal], minlength=n)

    per_day = DAYS_PER_UNIT[unit]
    frequency = np.maximum(count - 1, 0).astype(np.float64)
    monetary: FloatArray | None = None
    if p_spend is not None:
        total = np.bincount(p_cust[in_cal], weights=p_spend[in_cal], minlength=n)
        first_spend = np.zeros(n)
        first_spend[p_cust[first_of_customer]] = p_spend[first_of_customer]
        repeat = total - first_spend
        monetary = np.divide(repeat, frequency, out=np.zeros(n), where=frequency > 0)[cohort]
    return CustomerSummary(
        customers=names[cohort],
        frequency=frequency[cohort],
        recency=((last_day - first_day) / per_day)[cohort],
        age=((cal - first_day) / per_day)[cohort],
        monetary=monetary,
        holdout_frequency=holdout[cohort].astype(np.float64),
        holdout_length=(end - cal) / per_day,
        unit=unit,
        calibration_end=_to_date(cal),
        observation_end=_to_date(end),
    )


# ---------------------------------------------------------------------------------------------
# Maximum likelihood in log-space, shared by both models


M = TypeVar("M")


@dataclass(frozen=True)
class Fit(Generic[M]):
    """A model fitted by maximum likelihood.

    ``loglik`` is the total log-likelihood at the estimate; ``converged`` is False when the
    optimiser stopped without converging or a parameter ended at its bound (a degenerate fit);
    ``standard_errors`` (per parameter name) come from the inverse Hessian of the
    log-likelihood, None when it is not positive definite.
    """

    model: M
    loglik: float
    converged: bool
    message: str
    iterations: int
    standard_errors: dict[str, float] | None
    customers: int


def _rows(*columns: FloatArray) -> tuple[tuple[FloatArray, ...], FloatArray]:
    """The distinct rows of ``columns`` and how often each occurs: the likelihood is evaluated
    once per distinct customer history, weighted."""
    table = np.column_stack(columns)
    distinct, counts = np.unique(table, axis=0, return_counts=True)
    return tuple(distinct[:, i] for i in range(distinct.shape[1])), counts.astype(np.float64)


def _maximize(
    loglik: Callable[[FloatArray], float],
    start: FloatArray,
    names: tuple[str, ...],
    customers: int,
) -> tuple[FloatArray, float, bool, str, int, dict[str, float] | None]:
    """Maximise ``loglik`` (a function of the log of the parameters) with L-BFGS-B from
    ``start`` (parameters, not logs), within the log bounds. Returns the parameters, the
    log-likelihood, convergence, the optimiser's message, its iterations and the standard
    errors (delta method from the log-space Hessian)."""

    from scipy import optimize  # heavy: imported when a model is fitted

    def objective(theta: FloatArray) -> float:
        value = loglik(theta)
        # Scaled per customer, so that the optimiser's tolerances mean the same on any size.
        return -value / customers if math.isfinite(value) else 1e10

    result = optimize.minimize(
        objective,
        np.log(start),
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    at_bound = bool((np.abs(theta) >= LOG_BOUND - 1e-6).any())
    message = str(result.message)
    if at_bound:
        edge = [n for n, t in zip(names, theta, strict=True) if abs(t) >= LOG_BOUND - 1e-6]
        message = f"degenerate fit: {', '.join(edge)} at the bound of the search; {message}"
    params = np.exp(theta)
    return (
        params,
        loglik(theta),
        bool(result.success) and not at_bound,
        message,
        int(result.nit),
        None if at_bound else _standard_errors(loglik, theta, names),
    )


def _standard_errors(
    loglik: Callable[[FloatArray], float], theta: FloatArray, names: tuple[str, ...]
) -> dict[str, float] | None:
    """Standard errors of exp(theta) from the observed information (scipy's numerical
    Hessian of the log-likelihood in log-space), by the delta method."""

    from scipy import differentiate  # heavy: imported when a model is fitted

    def batched(points: FloatArray) -> FloatArray:
        flat = points.reshape(points.shape[0], -1)
        values = np.array([loglik(flat[:, i]) for i in range(flat.shape[1])])
        return values.reshape(points.shape[1:])

    found = differentiate.hessian(batched, theta, order=2, maxiter=1, initial_step=1e-3)
    hessian = np.asarray(found.ddf, dtype=np.float64)
    if not np.all(np.isfinite(hessian)):
        return None
    try:
        covariance = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        return None
    variances = np.diag(covariance)
    if np.any(variances <= 0):
        return None
    errors = np.exp(theta) * np.sqrt(variances)
    return {name: float(e) for name, e in zip(names, errors, strict=True)}


def _floats(*arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    """``arrays`` as float arrays broadcast to one shape (scalars stay 0-d)."""
    try:
        converted = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    except ValueError as exc:
        raise CannotFit(f"the customer summary's columns do not match: {exc}") from exc
    for a in converted:
        if not np.all(np.isfinite(a)):
            raise CannotFit("the customer summary has missing or infinite values")
    return tuple(converted)


# ---------------------------------------------------------------------------------------------
# 2. BG/NBD


@dataclass(frozen=True)
class BgNbd:
    """The BG/NBD model: while alive a customer buys at rate λ ~ Gamma(r, α); after each
    repeat purchase they drop out with probability p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(
        self, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
    ) -> FloatArray:
        """Each customer's log-likelihood of (x, t_x, T) (FHL 2005, section 3)."""
        x, t_x, big_t = _floats(frequency, recency, age)
        return _bgnbd_loglik(self.r, self.alpha, self.a, self.b, _Histories.of(x, t_x, big_t))

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat purchases of a new customer in the ``t`` periods after
        their first purchase (FHL 2005)."""
        t = np.asarray(t, dtype=np.float64)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + t)
        return np.asarray(
            (a + b - 1)
            / (a - 1)
            * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z)),
            dtype=np.float64,
        )

    def conditional_expected_purchases(
        self,
        t: npt.ArrayLike,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        age: npt.ArrayLike,
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected purchases in the ``t`` periods after the end of
        calibration of a customer with history (x, t_x, T) (FHL 2005)."""
        x, t_x, big_t = _floats(frequency, recency, age)
        t = np.asarray(t, dtype=np.float64)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        head = (a + b + x - 1) / (a - 1)
        tail = ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * special.hyp2f1(
            r + x, b + x, a + b + x - 1, t / (alpha + big_t + t)
        )
        return np.asarray(head * (1 - tail) / self._alive_odds_denominator(x, t_x, big_t))

    def p_alive(
        self, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
    ) -> FloatArray:
        """P(alive at T | x, t_x, T) (Fader, Hardie & Lee, "Computing P(alive) using the
        BG/NBD model", 2008): 1 for a customer who never bought again (BG/NBD lets nobody drop
        out at the first purchase)."""
        x, t_x, big_t = _floats(frequency, recency, age)
        return np.asarray(1 / self._alive_odds_denominator(x, t_x, big_t))

    def _alive_odds_denominator(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        # 1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x), in logs for large x.
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        repeat = x > 0
        log_odds = (
            np.log(a)
            - np.log(np.where(repeat, b + x - 1, 1.0))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return np.asarray(1 + np.where(repeat, np.exp(log_odds), 0.0), dtype=np.float64)


@dataclass(frozen=True)
class _Histories:
    """Customer histories (x, t_x, T), with the distinct values of x (``levels``) and each
    customer's index into them: the terms of the likelihood that depend on x alone (log-gamma
    and log-beta functions, the costly part) are computed once per distinct x."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    levels: FloatArray
    level: npt.NDArray[np.intp]

    @classmethod
    def of(cls, x: FloatArray, t_x: FloatArray, T: FloatArray) -> _Histories:
        levels, level = np.unique(x, return_inverse=True)
        return cls(x, t_x, T, levels, level.reshape(x.shape))


def _bgnbd_loglik(r: float, alpha: float, a: float, b: float, h: _Histories) -> FloatArray:
    xs = h.levels
    common = special.gammaln(r + xs) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    alive_by_x = common + special.betaln(a, b + xs)
    dropped_by_x = np.full(xs.shape, -np.inf)
    repeat = xs > 0
    dropped_by_x[repeat] = common[repeat] + special.betaln(a + 1, b + xs[repeat] - 1)
    alive = alive_by_x[h.level] - (r + h.x) * np.log(alpha + h.T)
    dropped = dropped_by_x[h.level] - (r + h.x) * np.log(alpha + h.t_x)
    return np.asarray(np.logaddexp(alive, dropped), dtype=np.float64)


BGNBD_PARAMETERS = ("r", "alpha", "a", "b")


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike) -> Fit[BgNbd]:
    """Fit the BG/NBD model by maximum likelihood (L-BFGS-B on the log of the parameters).

    Raises :class:`CannotFit` when there are no customers, a history is impossible
    (x < 0, t_x outside [0, T]) or nobody made a repeat purchase (nothing tells the purchase
    rate from the dropout).
    """
    x, t_x, big_t = _floats(frequency, recency, age)
    if x.shape[0] == 0:
        raise CannotFit("no customers to fit")
    if (x < 0).any() or (t_x < 0).any() or (t_x > big_t).any():
        raise CannotFit("each customer needs x >= 0 and 0 <= t_x <= T")
    if not (x > 0).any():
        raise CannotFit(
            "no customer made a repeat purchase: BG/NBD cannot tell a purchase rate from "
            "dropout on such data"
        )
    (ux, ut, uT), weights = _rows(x, t_x, big_t)
    histories = _Histories.of(ux, ut, uT)

    def loglik(theta: FloatArray) -> float:
        r, alpha, a, b = np.exp(theta)
        return float((weights * _bgnbd_loglik(r, alpha, a, b, histories)).sum())

    # Start at λ's mean equal to the repeat-purchase rate of the whole cohort.
    rate = max(float(x.sum() / max(big_t.sum(), 1e-9)), 1e-6)
    start = np.array([1.0, 1.0 / rate, 1.0, 3.0])
    params, ll, converged, message, iterations, errors = _maximize(
        loglik, start, BGNBD_PARAMETERS, int(x.shape[0])
    )
    return Fit(
        model=BgNbd(*(float(p) for p in params)),
        loglik=ll,
        converged=converged,
        message=message,
        iterations=iterations,
        standard_errors=errors,
        customers=int(x.shape[0]),
    )


# ---------------------------------------------------------------------------------------------
# 3. Gamma-Gamma


@dataclass(frozen=True)
class GammaGamma:
    """The Gamma-Gamma spend model: a purchase's value ~ Gamma(p, ν), with each customer's
    ν ~ Gamma(q, v); a customer's mean spend is independent of their purchase frequency."""

    p: float
    q: float
    v: float

    @property
    def mean_spend(self) -> float:
        """The population's mean spend per purchase, E[M] = p·v / (q − 1) (infinite, q ≤ 1)."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else math.inf

    def log_likelihood(self, frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> FloatArray:
        """Each customer's log-likelihood of their mean spend z̄ > 0 over x ≥ 1 purchases."""
        x, m = _floats(frequency, monetary)
        return _gamma_gamma_loglik(self.p, self.q, self.v, _Spends.of(x, m))

    def conditional_expected_spend(
        self, frequency: npt.ArrayLike, monetary: npt.ArrayLike
    ) -> FloatArray:
        """E[M | x, z̄] = p·(v + x·z̄) / (p·x + q − 1): a weighted mean of the population's mean
        and the customer's own (the population's mean when x = 0)."""
        if self.q <= 1:
            raise CannotFit(f"q = {self.q:.3g} <= 1: the expected spend is infinite")
        x, m = _floats(frequency, monetary)
        return np.asarray(self.p * (self.v + x * m) / (self.p * x + self.q - 1))


@dataclass(frozen=True)
class _Spends:
    """Repeat customers' (x, z̄), with the distinct values of x as in :class:`_Histories`."""

    x: FloatArray
    log_m: FloatArray
    m: FloatArray
    levels: FloatArray
    level: npt.NDArray[np.intp]

    @classmethod
    def of(cls, x: FloatArray, m: FloatArray) -> _Spends:
        levels, level = np.unique(x, return_inverse=True)
        return cls(x, np.log(m), m, levels, level.reshape(x.shape))


def _gamma_gamma_loglik(p: float, q: float, v: float, h: _Spends) -> FloatArray:
    # log f(z̄ | x) = log Γ(px+q) − log Γ(px) − log Γ(q) + q log v + (px−1) log z̄ + px log x
    #                − (px+q) log(v + x z̄)
    pxs = p * h.levels
    by_x = special.gammaln(pxs + q) - special.gammaln(pxs) + pxs * np.log(h.levels)
    px = p * h.x
    return np.asarray(
        by_x[h.level]
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1) * h.log_m
        - (px + q) * np.log(v + h.x * h.m),
        dtype=np.float64,
    )


GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> Fit[GammaGamma]:
    """Fit the Gamma-Gamma model by maximum likelihood on the customers with x ≥ 1 and a
    positive mean spend (the others carry no information about spend; they are left out).
    Raises :class:`CannotFit` with fewer than 2 such customers or any negative spend.

    The spends are fitted in units of their mean and v is scaled back (the model is
    scale-equivariant: dividing every spend by c divides v by c and leaves p and q), so that
    the search's bounds do not depend on the currency's unit: spend in fen fits like spend in
    yuan. The log-likelihood is that of the spends as given."""
    x, m = _floats(frequency, monetary)
    if (m < 0).any():
        raise CannotFit("a mean spend is negative")
    used = (x >= 1) & (m > 0)
    if used.sum() < 2:
        raise CannotFit(
            "Gamma-Gamma needs at least 2 customers with a repeat purchase of positive value"
        )
    scale = float(m[used].mean())
    (ux, um), weights = _rows(x[used], m[used] / scale)
    spends = _Spends.of(ux, um)

    def loglik(theta: FloatArray) -> float:
        p, q, v = np.exp(theta)
        return float((weights * _gamma_gamma_loglik(p, q, v, spends)).sum())

    # q = 2 puts the population's mean at p·v; p = 1 makes v that mean (1, in units of it).
    start = np.array([1.0, 2.0, 1.0])
    params, ll, converged, message, iterations, errors = _maximize(
        loglik, start, GAMMA_GAMMA_PARAMETERS, int(used.sum())
    )
    p, q, v = (float(value) for value in params)
    return Fit(
        model=GammaGamma(p, q, v * scale),
        # The density of z̄ is that of z̄ / c divided by c, for each customer used.
        loglik=ll - float(weights.sum()) * math.log(scale),
        converged=converged,
        message=message,
        iterations=iterations,
        standard_errors=None if errors is None else errors | {"v": errors["v"] * scale},
        customers=int(used.sum()),
    )


# ---------------------------------------------------------------------------------------------
# 4. CLV


def monthly_rate(annual_rate: float) -> float:
    """The monthly discount rate equivalent to ``annual_rate``: (1 + d_year)^(1/12) − 1."""
    return float((1 + annual_rate) ** (1 / 12) - 1)


def customer_lifetime_value(
    purchases: BgNbd,
    spend: GammaGamma,
    summary: CustomerSummary,
    *,
    months: float = 12,
    monthly_discount_rate: float = 0.0,
    margin: float | FloatArray = 1.0,
) -> FloatArray:
    """Each customer's discounted value over the next ``months``:

        CLV = margin · E[M | x, z̄] · Σ_{k=1..K} (E[Y(τ_k)] − E[Y(τ_{k−1})]) / (1 + d)^(τ_k)

    with τ_k = min(k, months) months in the summary's unit (K = ⌈months⌉: a horizon that is not
    a whole number of months ends with a part month, discounted at the horizon), E[Y(τ) | x,
    t_x, T] from BG/NBD, E[M] from Gamma-Gamma, d the monthly discount rate
    (:func:`monthly_rate` converts an annual one) and ``margin`` the share of revenue kept (one
    rate, or one per customer; 1 − cost/price when cost prices are known, else 1: the value is
    then revenue). Each month's purchases are discounted at the month's end.
    """
    if not months > 0:
        raise ValueError("months must be above 0")
    if monthly_discount_rate <= -1:
        raise ValueError("the discount rate must be above -100%")
    if summary.monetary is None:
        raise CannotFit("the summary has no amounts: CLV needs spend")
    x, t_x, big_t = summary.frequency, summary.recency, summary.age
    month = DAYS_PER_MONTH / DAYS_PER_UNIT[summary.unit]
    ends = np.minimum(np.arange(0, math.ceil(months) + 1, dtype=np.float64), months)
    cumulative = np.stack(
        [purchases.conditional_expected_purchases(k * month, x, t_x, big_t) for k in ends]
    )
    per_month = np.diff(cumulative, axis=0)
    factors = (1 + monthly_discount_rate) ** -ends[1:]
    value = spend.conditional_expected_spend(x, summary.monetary)
    return np.asarray(margin * value * (factors[:, None] * per_month).sum(axis=0), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# 5. The holdout, and both fits together


@dataclass(frozen=True)
class HoldoutComparison:
    """Purchases after the calibration end, predicted per customer and actual.

    ``predicted`` and ``mae`` have one entry per forecaster: ``bgnbd`` (E[Y(t*) | x, t_x, T]),
    ``past_rate`` (the customer's own calibration rate x/T times t*) and ``average`` (the
    cohort's calibration rate Σx/ΣT times t*, for everybody). ``cohort_forecast`` is the
    BG/NBD forecast from the parameters alone, Σ E[X(T + t*)] − E[X(T)], as the paper's
    tracking plot draws it.
    """

    length: float
    customers: int
    actual_total: float
    predicted: dict[str, float]
    mae: dict[str, float]
    cohort_forecast: float


def compare_holdout(model: BgNbd, summary: CustomerSummary) -> HoldoutComparison:
    """Compare BG/NBD's holdout forecast with two baselines on ``summary``'s holdout."""
    if summary.holdout_length <= 0:
        raise ValueError("the summary has no holdout period (the log ends at the calibration end)")
    t = summary.holdout_length
    x, t_x, big_t = summary.frequency, summary.recency, summary.age
    forecasts = {
        "bgnbd": model.conditional_expected_purchases(t, x, t_x, big_t),
        "past_rate": np.divide(x, big_t, out=np.zeros_like(x), where=big_t > 0) * t,
        "average": np.full(x.shape, x.sum() / max(big_t.sum(), 1e-12) * t),
    }
    actual = summary.holdout_frequency
    cohort = model.expected_purchases(big_t + t) - model.expected_purchases(big_t)
    return HoldoutComparison(
        length=t,
        customers=summary.size,
        actual_total=float(actual.sum()),
        predicted={k: float(f.sum()) for k, f in forecasts.items()},
        mae={k: float(np.abs(f - actual).mean()) for k, f in forecasts.items()},
        cohort_forecast=float(cohort.sum()),
    )


@dataclass(frozen=True)
class ClvFit:
    """BG/NBD and (when the log has amounts) Gamma-Gamma fitted on one summary, with the
    holdout comparison when the log runs past the calibration end."""

    summary: CustomerSummary
    bgnbd: Fit[BgNbd]
    gamma_gamma: Fit[GammaGamma] | None
    holdout: HoldoutComparison | None

    @property
    def spend_frequency_correlation(self) -> float | None:
        """Pearson's correlation of x and mean spend over the repeat customers: Gamma-Gamma
        assumes spend independent of frequency, so it should be near 0 (None without amounts
        or with fewer than 3 repeat customers)."""
        monetary = self.summary.monetary
        if monetary is None:
            return None
        repeat = self.summary.frequency > 0
        if repeat.sum() < 3:
            return None
        x, m = self.summary.frequency[repeat], monetary[repeat]
        if x.std() == 0 or m.std() == 0:
            return None
        return float(np.corrcoef(x, m)[0, 1])

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: ``{r, alpha, a, b, loglik, p, q, v, holdout, …}``."""
        bg, gg = self.bgnbd, self.gamma_gamma
        summary = self.summary
        holdout = self.holdout
        return {
            "r": bg.model.r,
            "alpha": bg.model.alpha,
            "a": bg.model.a,
            "b": bg.model.b,
            "loglik": bg.loglik,
            "p": gg.model.p if gg else None,
            "q": gg.model.q if gg else None,
            "v": gg.model.v if gg else None,
            "holdout": None
            if holdout is None
            else {
                "length": holdout.length,
                "customers": holdout.customers,
                "actual": holdout.actual_total,
                "predicted": holdout.predicted["bgnbd"],
                "cohort_forecast": holdout.cohort_forecast,
                "baselines": {k: v for k, v in holdout.predicted.items() if k != "bgnbd"},
                "mae": holdout.mae,
            },
            "unit": summary.unit,
            "customers": summary.size,
            "repeat_purchases": float(summary.frequency.sum()),
            "calibration_end": summary.calibration_end.isoformat(),
            "observation_end": summary.observation_end.isoformat(),
            "bgnbd": _fit_dict(bg),
            "gamma_gamma": None
            if gg is None
            else {
                **_fit_dict(gg),
                "mean_spend": gg.model.mean_spend,
                "spend_frequency_correlation": self.spend_frequency_correlation,
            },
        }

    def describe(self) -> str:
        """The results for a person: parameters, log-likelihoods, the holdout comparison."""
        bg, gg, summary, holdout = self.bgnbd, self.gamma_gamma, self.summary, self.holdout
        unit = summary.unit
        lines = [
            f"{summary.size} customers, {summary.frequency.sum():.0f} repeat purchases up to "
            f"{summary.calibration_end} (time in {unit}s)",
            f"BG/NBD: {_parameters(bg, BGNBD_PARAMETERS)}",
            f"  log-likelihood {bg.loglik:.2f}, {_convergence(bg)}",
        ]
        if gg is None:
            lines.append("Gamma-Gamma: no amounts given (--amount)")
        else:
            lines += [
                f"Gamma-Gamma: {_parameters(gg, GAMMA_GAMMA_PARAMETERS)}",
                f"  log-likelihood {gg.loglik:.2f} on {gg.customers} repeat customers, "
                f"{_convergence(gg)}; mean spend per purchase {gg.model.mean_spend:.2f}",
            ]
            correlation = self.spend_frequency_correlation
            if correlation is not None:
                lines.append(
                    f"  correlation of spend and frequency {correlation:.3f} "
                    "(the model assumes none)"
                )
        if holdout is None:
            lines.append("holdout: none (the log ends at the calibration end)")
        else:
            names = {"bgnbd": "BG/NBD", "past_rate": "own past rate", "average": "cohort average"}
            lines += [
                f"holdout: {holdout.length:g} {unit}s after {summary.calibration_end}, up to "
                f"{summary.observation_end}",
                f"  purchases: actual {holdout.actual_total:.0f}, "
                + ", ".join(f"{names[k]} {v:.1f}" for k, v in holdout.predicted.items()),
                "  mean absolute error per customer: "
                + ", ".join(f"{names[k]} {v:.4f}" for k, v in holdout.mae.items()),
            ]
        return "\n".join(lines)


def _parameters(fit: Fit[BgNbd] | Fit[GammaGamma], names: tuple[str, ...]) -> str:
    errors = fit.standard_errors
    shown = []
    for name in names:
        value = getattr(fit.model, name)
        spread = f" ± {errors[name]:.4g}" if errors else ""
        shown.append(f"{name} = {value:.4g}{spread}")
    return ", ".join(shown)


def _convergence(fit: Fit[BgNbd] | Fit[GammaGamma]) -> str:
    state = "converged" if fit.converged else f"NOT converged ({fit.message})"
    return f"{state} in {fit.iterations} iterations"


def _fit_dict(fit: Fit[BgNbd] | Fit[GammaGamma]) -> dict[str, Any]:
    return {
        "loglik": fit.loglik,
        "converged": fit.converged,
        "message": fit.message,
        "iterations": fit.iterations,
        "standard_errors": fit.standard_errors,
        "customers": fit.customers,
    }


FIT_STEPS = 3


def fit_clv(summary: CustomerSummary, *, progress: Progress | None = None) -> ClvFit:
    """Fit BG/NBD, and Gamma-Gamma when the summary has amounts, then compare the forecast
    with the holdout when there is one; ``progress`` advances ``FIT_STEPS`` steps."""

    def step(what: str) -> None:
        if progress is not None:
            progress.advance(what)

    bgnbd = fit_bgnbd(summary.frequency, summary.recency, summary.age)
    step("BG/NBD fitted")
    gamma_gamma = (
        fit_gamma_gamma(summary.frequency, summary.monetary)
        if summary.monetary is not None
        else None
    )
    step("Gamma-Gamma fitted" if gamma_gamma else "no amounts: Gamma-Gamma skipped")
    holdout = compare_holdout(bgnbd.model, summary) if summary.holdout_length > 0 else None
    step("holdout compared" if holdout else "no holdout")
    return ClvFit(summary=summary, bgnbd=bgnbd, gamma_gamma=gamma_gamma, holdout=holdout)
