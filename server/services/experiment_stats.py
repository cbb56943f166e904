"""The statistics of A/B experiments: intervals, tests and the boundary that guards against
peeking. Pure functions of counts and sums, no database (server.services.experiment_results
reads those from SQL); the distributions and tests are statsmodels' and scipy's.

- A conversion rate's interval is Wilson's score interval; two rates are compared with the
  pooled two-proportion z-test, their difference with Newcombe's hybrid score interval and
  their ratio with a log interval (statsmodels).
- A mean (GMV per visitor, AOV) has a t interval; two means are compared with Welch's t-test
  (scipy), their difference with Welch's interval and their ratio by the delta method on the
  log scale.
- Peeking: results may be read at any time, as often as anyone likes, also after the planned
  sample. A fixed-sample test read that way declares differences that are not there far more
  often than its alpha. A difference is therefore only *significant* when its p-value is at
  most :func:`corrected_alpha` for the information gathered so far: the level at which the
  normal-mixture sequential probability ratio test (Robbins 1970; the "always valid p-values"
  of Johari, Koomen, Pekelis & Walsh 2017) crosses its boundary. By Ville's inequality the
  chance that a comparison without a real difference *ever* crosses it, however often it is
  looked at, is at most alpha. The mixture is tuned so that the boundary is lowest when every
  arm has its planned (minimum) sample.

scipy and statsmodels are imported where they are used: together they take a second or more to
import, which a process should pay when it first computes results, not when it starts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

ALPHA = 0.05
CONFIDENCE = 1 - ALPHA


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% confidence interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """A variant against the control on one metric: the difference (variant − control), the
    relative lift (variant / control − 1; None when the control's value is 0), and the test."""

    difference: Interval
    relative_lift: Interval | None
    statistic: float
    p_value: float


@dataclass(frozen=True)
class Moments:
    """What SQL sums of one sample: how many values, their sum and the sum of their squares."""

    n: int
    total: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n − 1 in the denominator), 0 for fewer than two values."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.sum_squares - self.total * self.total / self.n) / (self.n - 1))


def _z(confidence: float = CONFIDENCE) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson(count: int, n: int) -> Interval | None:
    """A proportion ``count / n`` with Wilson's score interval; None when ``n`` is 0."""
    if n <= 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, n, alpha=ALPHA, method="wilson")
    return Interval(count / n, float(low), float(high))


def mean_interval(sample: Moments) -> Interval | None:
    """A sample's mean with its t interval (the normal approximation for large samples);
    None for an empty sample, a zero-width interval for a sample of one."""
    if sample.n <= 0:
        return None
    if sample.n < 2:
        return Interval(sample.mean, sample.mean, sample.mean)
    scale = math.sqrt(sample.variance / sample.n)
    if scale == 0:
        return Interval(sample.mean, sample.mean, sample.mean)
    from scipy import stats

    low, high = stats.t.interval(CONFIDENCE, sample.n - 1, loc=sample.mean, scale=scale)
    return Interval(sample.mean, float(low), float(high))


def proportions_test(count: int, n: int, control_count: int, control_n: int) -> tuple[float, float]:
    """The pooled two-proportion z-test of ``count / n`` against ``control_count /
    control_n`` (statsmodels): z and its two-sided p-value."""
    if count + control_count in (0, n + control_n):
        # Nobody (or everybody) converted in both: no variance, nothing to tell apart.
        return 0.0, 1.0
    from statsmodels.stats.proportion import proportions_ztest

    z, p = proportions_ztest([count, control_count], [n, control_n])
    return float(z), float(p)


def compare_proportions(count: int, n: int, control_count: int, control_n: int) -> Comparison:
    """The pooled two-proportion z-test of ``count / n`` against the control's rate, the
    difference's Newcombe interval and the ratio's log interval (statsmodels)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    rate, control_rate = count / n, control_count / control_n
    statistic, p_value = proportions_test(count, n, control_count, control_n)
    low, high = confint_proportions_2indep(
        count, n, control_count, control_n, method="newcomb", compare="diff", alpha=ALPHA
    )
    difference = Interval(rate - control_rate, float(low), float(high))
    relative: Interval | None = None
    if control_count > 0:
        r_low, r_high = confint_proportions_2indep(
            count, n, control_count, control_n, method="log-adjusted", compare="ratio", alpha=ALPHA
        )
        relative = Interval(rate / control_rate - 1, float(r_low) - 1, float(r_high) - 1)
    return Comparison(difference, relative, statistic, p_value)


def welch_df(sample: Moments, control: Moments) -> float:
    """The Welch–Satterthwaite degrees of freedom of the difference of two means."""
    a, b = sample.variance / sample.n, control.variance / control.n
    denominator = a * a / (sample.n - 1) + b * b / (control.n - 1)
    return (a + b) ** 2 / denominator if denominator > 0 else float(sample.n + control.n - 2)


def compare_means(sample: Moments, control: Moments) -> Comparison | None:
    """Welch's t-test of the sample's mean against the control's (scipy), the difference's
    Welch interval and the ratio's delta-method interval on the log scale. None when either
    sample has fewer than two values or neither varies (there is nothing to test)."""
    if sample.n < 2 or control.n < 2:
        return None
    se = math.sqrt(sample.variance / sample.n + control.variance / control.n)
    if se == 0:
        return None
    from scipy import stats

    test = stats.ttest_ind_from_stats(
        sample.mean,
        math.sqrt(sample.variance),
        sample.n,
        control.mean,
        math.sqrt(control.variance),
        control.n,
        equal_var=False,
    )
    diff = sample.mean - control.mean
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, welch_df(sample, control))) * se
    relative: Interval | None = None
    if sample.mean > 0 and control.mean > 0:
        log_ratio = math.log(sample.mean / control.mean)
        log_se = math.sqrt(
            sample.variance / (sample.n * sample.mean**2)
            + control.variance / (control.n * control.mean**2)
        )
        z = _z()
        relative = Interval(
            sample.mean / control.mean - 1,
            math.exp(log_ratio - z * log_se) - 1,
            math.exp(log_ratio + z * log_se) - 1,
        )
    return Comparison(
        Interval(diff, diff - half, diff + half),
        relative,
        float(test.statistic),
        float(test.pvalue),
    )


# ---- the peeking guard ---------------------------------------------------------------------


def information_fraction(n: int, control_n: int, planned: int) -> float:
    """How much of the planned information a comparison holds: the variance of a difference
    with ``planned`` visitors in each arm over its variance now (1 when both arms have their
    planned sample; more after)."""
    if n <= 0 or control_n <= 0:
        return 0.0
    return (2 / planned) / (1 / n + 1 / control_n)


def _squared_boundary(scale: float, information: float, alpha: float) -> float:
    """The normal-mixture SPRT's boundary on z², with the mixture's variance ``scale`` times
    the difference's variance at the planned sample: z² ≥ (1 + 1/(s·t))·(2·ln(1/α) + ln(1 + s·t))
    is where the mixture likelihood ratio reaches 1/α."""
    st = scale * information
    return (1 + 1 / st) * (2 * math.log(1 / alpha) + math.log1p(st))


@functools.cache
def _mixture_scale(alpha: float) -> float:
    """The mixture's variance (relative to the difference's at the planned sample) that makes
    the boundary lowest at the planned sample."""
    from scipy import optimize

    found = optimize.minimize_scalar(
        lambda log_scale: _squared_boundary(math.exp(log_scale), 1.0, alpha),
        bounds=(math.log(1e-3), math.log(1e4)),
        method="bounded",
    )
    return math.exp(float(found.x))


def boundary(information: float, alpha: float = ALPHA) -> float:
    """The |z| a comparison must reach, with ``information`` (see
    :func:`information_fraction`), for its difference to hold however often it is looked at;
    infinite without information."""
    if information <= 0:
        return math.inf
    return math.sqrt(_squared_boundary(_mixture_scale(alpha), information, alpha))


def corrected_alpha(information: float, alpha: float = ALPHA) -> float:
    """The two-sided p-value a fixed-sample test must reach at this look: the level of
    :func:`boundary`. Always below ``alpha`` (about alpha / 20 at the planned sample for
    alpha = 0.05)."""
    # 2·(1 − Φ(limit)), written with erfc: exact, and cheap enough to call at every look.
    return math.erfc(boundary(information, alpha) / math.sqrt(2))
