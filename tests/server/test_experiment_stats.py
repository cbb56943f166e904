"""The statistics of experiments, without a database: intervals and tests against published
worked examples, sticky assignment and its split, and the peeking guard in simulated A/A tests."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import pytest
from scipy import stats

from server.models import ExperimentMetric
from server.services import experiment_stats as st
from server.services.experiment_results import Arm, Outcome, PrimaryTest, decide, primary_test
from server.services.experiments import Variant, assign, bucket

# ---- against worked examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "n", "low", "high"),
    [
        # Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
        # comparison of seven methods. Statistics in Medicine 17, 857-872 — its examples,
        # method 3 (Wilson's score interval without continuity correction), to 4 decimals.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(count: int, n: int, low: float, high: float) -> None:
    found = st.wilson(count, n)
    assert found is not None
    assert found.estimate == count / n
    assert (round(found.low, 4), round(found.high, 4)) == (low, high)


def test_wilson_interval_of_nobody_is_none() -> None:
    assert st.wilson(0, 0) is None


def test_two_proportion_z_test_matches_the_textbook_formula_and_statsmodels_example() -> None:
    # statsmodels' documented example of proportions_ztest: 5 of 83 against 12 of 99 gives a
    # two-sided p-value of 0.159. By hand: the pooled rate p = 17/182, and
    # z = (5/83 - 12/99) / sqrt(p (1 - p) (1/83 + 1/99)).
    pooled = 17 / 182
    z = (5 / 83 - 12 / 99) / math.sqrt(pooled * (1 - pooled) * (1 / 83 + 1 / 99))
    found = st.compare_proportions(5, 83, 12, 99)
    assert found.statistic == pytest.approx(z, rel=1e-9)
    assert round(found.p_value, 3) == 0.159
    assert found.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_difference_of_proportions_matches_newcombe_1998_eleven_methods() -> None:
    # Newcombe, R. G. (1998). Interval estimation for the difference between independent
    # proportions: comparison of eleven methods. Statistics in Medicine 17, 873-890 —
    # example (a), 56/70 against 48/80: method 10 (score, hybrid) gives 0.0524 to 0.3339.
    found = st.compare_proportions(56, 70, 48, 80)
    assert found.difference.estimate == pytest.approx(0.2)
    assert (round(found.difference.low, 4), round(found.difference.high, 4)) == (0.0524, 0.3339)
    assert found.relative_lift is not None
    assert found.relative_lift.estimate == pytest.approx((56 / 70) / (48 / 80) - 1)
    assert found.relative_lift.low < found.relative_lift.estimate < found.relative_lift.high


def test_no_conversions_anywhere_is_no_difference() -> None:
    found = st.compare_proportions(0, 500, 0, 500)
    assert (found.statistic, found.p_value, found.relative_lift) == (0.0, 1.0, None)


def _moments(values: list[float]) -> st.Moments:
    return st.Moments(len(values), float(sum(values)), float(sum(v * v for v in values)))


def test_welch_from_sums_matches_scipy_on_the_raw_values() -> None:
    # GMV per visitor as SQL sums it: most visitors spend nothing.
    treatment = [0.0] * 40 + [199.0, 89.5, 1200.0, 45.0, 310.0, 99.0, 560.0, 0.0, 75.0, 20.0]
    control = [0.0] * 45 + [120.0, 60.0, 15.0, 410.0, 88.0]
    found = st.compare_means(_moments(treatment), _moments(control))
    assert found is not None
    raw = stats.ttest_ind(treatment, control, equal_var=False)
    assert found.statistic == pytest.approx(float(raw.statistic), rel=1e-9)
    assert found.p_value == pytest.approx(float(raw.pvalue), rel=1e-9)
    low, high = raw.confidence_interval(0.95)
    assert found.difference.low == pytest.approx(float(low), rel=1e-9)
    assert found.difference.high == pytest.approx(float(high), rel=1e-9)
    mean = st.mean_interval(_moments(treatment))
    assert mean is not None
    t_low, t_high = stats.ttest_1samp(treatment, 0).confidence_interval(0.95)
    assert (mean.low, mean.high) == (pytest.approx(float(t_low)), pytest.approx(float(t_high)))
    # The relative lift's interval holds the lift and is symmetric on the log scale.
    lift = found.relative_lift
    assert lift is not None
    ratio = sum(treatment) / len(treatment) / (sum(control) / len(control))
    assert lift.estimate == pytest.approx(ratio - 1)
    assert math.log1p(lift.high) - math.log(ratio) == pytest.approx(
        math.log(ratio) - math.log1p(lift.low)
    )


def test_means_that_do_not_vary_are_not_tested() -> None:
    assert st.compare_means(_moments([0.0] * 30), _moments([0.0] * 30)) is None
    assert st.compare_means(_moments([5.0]), _moments([1.0, 2.0])) is None


# ---- sticky assignment -------------------------------------------------------------------------


def test_assignment_is_the_same_in_another_process() -> None:
    variants = [Variant("control", 50), Variant("treatment", 50)]
    visitors = [f"customer:{i}" for i in range(1, 40)] + [f"session:web-{i}" for i in range(40)]
    here = [assign("checkout-button", variants, v) for v in visitors]
    assert here == [assign("checkout-button", variants, v) for v in visitors]
    script = (
        "import sys\n"
        "from server.services.experiments import Variant, assign\n"
        "vs = [Variant('control', 50), Variant('treatment', 50)]\n"
        "print(' '.join(assign('checkout-button', vs, v) for v in sys.argv[1:]))\n"
    )
    # A fresh interpreter has another str hash seed: nothing may depend on it.
    there = subprocess.run(
        [sys.executable, "-c", script, *visitors],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.split()
    assert there == here
    assert set(here) == {"control", "treatment"}


@pytest.mark.parametrize(
    "weights",
    [(50, 50), (90, 10), (20, 30, 50), (1, 1, 1, 1, 1)],
    ids=lambda w: "-".join(map(str, w)),
)
def test_twenty_thousand_visitors_split_by_the_weights(weights: tuple[int, ...]) -> None:
    variants = [Variant(f"v{i}", w) for i, w in enumerate(weights)]
    n = 20_000
    counts = Counter(assign("split-test", variants, f"session:visitor-{i}") for i in range(n))
    total = sum(weights)
    for variant in variants:
        share = variant.weight / total
        # Within four binomial standard deviations (about ±1.4 points of share at 50%).
        assert abs(counts[variant.key] - n * share) <= 4 * math.sqrt(n * share * (1 - share))
    # The buckets themselves are uniform in [0, 1).
    points = [bucket("split-test", f"customer:{i}") for i in range(2000)]
    assert stats.kstest(points, "uniform").pvalue > 0.001


def test_another_experiment_shuffles_visitors_anew() -> None:
    variants = [Variant("a", 1), Variant("b", 1)]
    visitors = [f"customer:{i}" for i in range(1, 2001)]
    first = [assign("exp-one", variants, v) for v in visitors]
    second = [assign("exp-two", variants, v) for v in visitors]
    same = sum(a == b for a, b in zip(first, second, strict=True))
    # Independent assignments agree about half the time, not always.
    assert abs(same - 1000) <= 4 * math.sqrt(2000 * 0.25)


# ---- the peeking guard -------------------------------------------------------------------------


def test_the_corrected_alpha_is_below_alpha_and_loosest_at_the_planned_sample() -> None:
    levels = {t: st.corrected_alpha(t) for t in (0.25, 0.5, 0.9, 1.0, 1.1, 2.0, 4.0, 16.0)}
    assert all(0 < level < st.ALPHA for level in levels.values())
    assert max(levels, key=lambda t: levels[t]) == 1.0
    assert st.corrected_alpha(0.0) == 0.0
    # A smaller alpha (several variants share it) is a stricter boundary.
    assert st.corrected_alpha(1.0, st.ALPHA / 2) < st.corrected_alpha(1.0)


def _arm(key: str, visitors: int, converters: int) -> Arm:
    return Arm(
        key,
        visitors,
        converters,
        st.Moments(visitors, float(converters), float(converters)),
        st.Moments(converters, float(converters), float(converters)),
    )


def _peek(runs: int, rates: tuple[float, float], seed: int) -> dict[str, float]:
    """Share of simulated experiments that some look declares a difference, peeking every 100
    visitors (50 per arm) up to 2,000 per arm, the minimum sample being 500 per arm:
    - ``guard``: the verdict (minimum sample, alpha corrected for looks);
    - ``naive``: a fixed-sample z-test at 5% at every look;
    - ``min_sample_only``: that test, but only from the minimum sample on."""
    looks, step, minimum = 40, 50, 500
    control = stats.binom.rvs(step, rates[0], size=(runs, looks), random_state=seed)
    treatment = stats.binom.rvs(step, rates[1], size=(runs, looks), random_state=seed + 1)
    found = Counter[str]()
    for run in range(runs):
        hits: set[str] = set()
        c = t = 0
        for look in range(looks):
            c += int(control[run, look])
            t += int(treatment[run, look])
            n = (look + 1) * step
            arms = [_arm("control", n, c), _arm("treatment", n, t)]
            test = primary_test(ExperimentMetric.CONVERSION, arms[1], arms[0])
            assert test is not None
            verdict = decide(
                arms,
                {"treatment": test},
                min_sample_size=minimum,
                metric=ExperimentMetric.CONVERSION,
            )
            if verdict.conclusive:
                assert verdict.outcome is Outcome.CONCLUSIVE
                hits.add("guard" if verdict.winner == "treatment" else "guard_wrong_way")
                if rates[0] == rates[1]:
                    hits.add("guard")
            if test.p_value <= st.ALPHA:
                hits.add("naive")
                if n >= minimum:
                    hits.add("min_sample_only")
        found.update(hits)
    return {k: found[k] / runs for k in ("guard", "naive", "min_sample_only", "guard_wrong_way")}


def test_aa_tests_peeked_at_every_100_visitors_rarely_declare_a_winner_with_the_guard() -> None:
    rates = _peek(200, (0.10, 0.10), seed=20240601)
    # With the guard at most alpha of the experiments without a difference ever look conclusive;
    # a fixed-sample test read at every look finds one in several times as many, and so does
    # one that waits for the minimum sample but then reads every look.
    assert rates["guard"] <= st.ALPHA
    assert rates["naive"] >= 3 * st.ALPHA
    assert rates["min_sample_only"] >= 2 * st.ALPHA


def test_the_guard_still_finds_a_real_difference() -> None:
    # 10% against 14% converting: with 2,000 visitors per arm the guard declares the treatment
    # the winner in most experiments, and never the control.
    rates = _peek(60, (0.10, 0.14), seed=7)
    assert rates["guard"] >= 0.7
    assert rates["guard_wrong_way"] == 0


def test_a_verdict_needs_every_arm_at_its_minimum_sample() -> None:
    arms = [_arm("control", 400, 40), _arm("treatment", 2000, 600)]
    test = primary_test(ExperimentMetric.CONVERSION, arms[1], arms[0])
    assert test is not None and test.p_value < 1e-9
    verdict = decide(
        arms, {"treatment": test}, min_sample_size=500, metric=ExperimentMetric.CONVERSION
    )
    assert (verdict.outcome, verdict.conclusive, verdict.winner) == (
        Outcome.COLLECTING,
        False,
        None,
    )
    assert "'control' has 400" in verdict.reason and "500" in verdict.reason
    assert not verdict.decisions["treatment"].significant


def test_with_several_variants_alpha_is_shared_and_the_best_wins() -> None:
    arms = [
        _arm("control", 3000, 300),
        _arm("small", 3000, 390),
        _arm("big", 3000, 480),
        _arm("worse", 3000, 240),
    ]
    tests: dict[str, PrimaryTest | None] = {
        a.key: primary_test(ExperimentMetric.CONVERSION, a, arms[0]) for a in arms[1:]
    }
    verdict = decide(arms, tests, min_sample_size=1000, metric=ExperimentMetric.CONVERSION)
    assert verdict.conclusive and verdict.winner == "big"
    single = st.corrected_alpha(3.0, st.ALPHA / 3)
    assert verdict.decisions["small"].threshold == pytest.approx(single)
