"""An experiment's results: per variant the visitors exposed, converters, conversion rate, GMV
per visitor and AOV with intervals, each variant against the control, and the verdict.

Two SQL statements gather every number (per-visitor outcomes summed per variant, and the
paid orders' totals per variant); the statistics are server.services.experiment_stats'.

What counts (the same for every variant):
- a visitor is counted from their first exposure (server.services.experiments);
- a conversion is a paid order (``paid_at`` set, not cancelled since) that the visitor — a
  customer — placed at or after their first exposure and while the experiment ran (before it
  was stopped). An anonymous session's orders cannot be told apart from anyone else's, so its
  visitor is counted exposed and never converted: the same in every arm;
- GMV is the paid orders' totals (``total_amount``, minor units); GMV per visitor divides it by
  every visitor exposed, AOV by the paid orders.

The verdict: every arm must have the experiment's minimum sample, and a variant's difference
from the control on the primary metric must pass the test at the alpha corrected for repeated
looks (experiment_stats.corrected_alpha); with several variants alpha is split between their
comparisons (Bonferroni).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    Order,
    OrderStatus,
)
from server.services import experiment_stats as st
from server.services.experiments import variants_of


class Outcome(StrEnum):
    # Not started: nobody has been exposed.
    NOT_STARTED = "NOT_STARTED"
    # Some arm has fewer visitors than the minimum sample.
    COLLECTING = "COLLECTING"
    # Every arm has its sample; no difference passes the corrected test (yet).
    NO_SIGNIFICANT_DIFFERENCE = "NO_SIGNIFICANT_DIFFERENCE"
    # A variant differs from the control on the primary metric.
    CONCLUSIVE = "CONCLUSIVE"


@dataclass(frozen=True)
class Arm:
    """One variant's sums, as SQL reads them."""

    key: str
    visitors: int
    converters: int
    gmv: st.Moments  # per visitor exposed (0 for those who bought nothing)
    orders: st.Moments  # per paid order


@dataclass(frozen=True)
class PrimaryTest:
    """The primary metric's test of one variant against the control."""

    statistic: float
    p_value: float


@dataclass(frozen=True)
class Decision:
    """The primary metric's test of a variant against the control, at this look."""

    test: PrimaryTest | None  # None: nothing to test (no variance, too few orders)
    information: float
    threshold: float  # the p-value it must reach: alpha corrected for looks and variants
    significant: bool


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    conclusive: bool
    winner: str | None
    reason: str
    decisions: Mapping[str, Decision]


@dataclass(frozen=True)
class VariantResult:
    key: str
    weight: int
    is_control: bool
    visitors: int
    converters: int
    orders: int
    gmv: int  # minor units
    conversion_rate: st.Interval | None
    gmv_per_visitor: st.Interval | None
    aov: st.Interval | None
    # Against the control (None for the control itself, or when there is nothing to compare).
    conversion: st.Comparison | None
    gmv_per_visitor_vs_control: st.Comparison | None
    aov_vs_control: st.Comparison | None
    decision: Decision | None


@dataclass(frozen=True)
class Results:
    experiment: Experiment
    variants: list[VariantResult]
    verdict: Verdict
    alpha: float


# ---- SQL -----------------------------------------------------------------------------------


def _counted_orders(experiment: Experiment) -> Any:
    """The join condition of an exposure and an order that counts for it."""
    conditions = [
        col(Order.customer_id) == col(ExperimentExposure.customer_id),
        col(Order.placed_at) >= col(ExperimentExposure.exposed_at),
        col(Order.paid_at).is_not(None),
        col(Order.status) != OrderStatus.CANCELLED,
    ]
    if experiment.stopped_at is not None:
        conditions.append(col(Order.placed_at) <= experiment.stopped_at)
    return and_(*conditions)


async def read_arms(session: AsyncSession, experiment: Experiment) -> dict[str, Arm]:
    """Every variant's sums, variants nobody was exposed to included (all zero)."""
    per_visitor = (
        select(
            col(ExperimentExposure.variant).label("variant"),
            func.count(col(Order.id)).label("orders"),
            func.coalesce(func.sum(col(Order.total_amount)), 0).label("gmv"),
        )
        .select_from(ExperimentExposure)
        .outerjoin(Order, _counted_orders(experiment))
        .where(col(ExperimentExposure.experiment_id) == experiment.id)
        .group_by(col(ExperimentExposure.id), col(ExperimentExposure.variant))
        .subquery()
    )
    gmv = cast(per_visitor.c.gmv, Float)
    visitors = await session.execute(
        select(
            per_visitor.c.variant,
            func.count().label("visitors"),
            func.sum(case((per_visitor.c.orders > 0, 1), else_=0)).label("converters"),
            func.sum(per_visitor.c.gmv).label("gmv"),
            func.sum(gmv * gmv).label("gmv_squares"),
        ).group_by(per_visitor.c.variant)
    )
    total = cast(col(Order.total_amount), Float)
    orders = await session.execute(
        select(
            col(ExperimentExposure.variant),
            func.count(col(Order.id)).label("orders"),
            func.sum(col(Order.total_amount)).label("total"),
            func.sum(total * total).label("squares"),
        )
        .select_from(ExperimentExposure)
        .join(Order, _counted_orders(experiment))
        .where(col(ExperimentExposure.experiment_id) == experiment.id)
        .group_by(col(ExperimentExposure.variant))
    )
    by_visitors = {row.variant: row for row in visitors}
    by_orders = {row.variant: row for row in orders}
    arms: dict[str, Arm] = {}
    for variant in variants_of(experiment):
        v, o = by_visitors.get(variant.key), by_orders.get(variant.key)
        n = int(v.visitors) if v is not None else 0
        arms[variant.key] = Arm(
            key=variant.key,
            visitors=n,
            converters=int(v.converters or 0) if v is not None else 0,
            gmv=st.Moments(
                n,
                float(v.gmv or 0) if v is not None else 0.0,
                float(v.gmv_squares or 0) if v is not None else 0.0,
            ),
            orders=st.Moments(
                int(o.orders) if o is not None else 0,
                float(o.total or 0) if o is not None else 0.0,
                float(o.squares or 0) if o is not None else 0.0,
            ),
        )
    return arms


# ---- the verdict ---------------------------------------------------------------------------


def primary_test(metric: ExperimentMetric, arm: Arm, control: Arm) -> PrimaryTest | None:
    """The primary metric's test of ``arm`` against ``control``: the two-proportion z-test for
    conversion, Welch's t-test for GMV per visitor (per visitor) and AOV (per paid order)."""
    if arm.visitors == 0 or control.visitors == 0:
        return None
    if metric is ExperimentMetric.CONVERSION:
        statistic, p_value = st.proportions_test(
            arm.converters, arm.visitors, control.converters, control.visitors
        )
        return PrimaryTest(statistic, p_value)
    if metric is ExperimentMetric.GMV_PER_VISITOR:
        compared = st.compare_means(arm.gmv, control.gmv)
    else:
        compared = st.compare_means(arm.orders, control.orders)
    if compared is None:
        return None
    return PrimaryTest(compared.statistic, compared.p_value)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.4f}".rstrip("0").rstrip(".")


def decide(
    arms: Sequence[Arm],
    tests: Mapping[str, PrimaryTest | None],
    *,
    min_sample_size: int,
    metric: ExperimentMetric,
    alpha: float = st.ALPHA,
) -> Verdict:
    """The verdict at this look. ``arms[0]`` is the control; ``tests`` holds the primary
    metric's test of every other arm against it (:func:`primary_test`)."""
    control, others = arms[0], arms[1:]
    per_comparison = alpha / len(others)
    decisions: dict[str, Decision] = {}
    for arm in others:
        information = st.information_fraction(arm.visitors, control.visitors, min_sample_size)
        threshold = st.corrected_alpha(information, per_comparison)
        test = tests.get(arm.key)
        enough = arm.visitors >= min_sample_size and control.visitors >= min_sample_size
        significant = enough and test is not None and test.p_value <= threshold
        decisions[arm.key] = Decision(test, information, threshold, significant)
    name = metric.value.lower().replace("_", " ")
    if all(a.visitors == 0 for a in arms):
        return Verdict(Outcome.NOT_STARTED, False, None, "nobody has been exposed yet", decisions)
    short = [a for a in arms if a.visitors < min_sample_size]
    if short:
        missing = ", ".join(f"{a.key!r} has {a.visitors}" for a in short)
        return Verdict(
            Outcome.COLLECTING,
            False,
            None,
            f"not conclusive: every variant needs {min_sample_size} visitors before a result "
            f"counts, and {missing}",
            decisions,
        )
    better = [a for a in others if decisions[a.key].significant and _above(tests[a.key])]
    worse = [a for a in others if decisions[a.key].significant and not _above(tests[a.key])]
    if not better and not worse:
        closest = ", ".join(
            f"{a.key!r} p = {_p(d.test.p_value)} > {_p(d.threshold)}"
            if (d := decisions[a.key]).test is not None
            else f"{a.key!r} cannot be tested (its {name} does not vary)"
            for a in others
        )
        return Verdict(
            Outcome.NO_SIGNIFICANT_DIFFERENCE,
            False,
            None,
            f"not conclusive: no variant differs from {control.key!r} on {name} at the alpha "
            f"corrected for repeated looks ({closest})",
            decisions,
        )
    if better:
        best = max(better, key=lambda a: _statistic(tests[a.key]))
        d = decisions[best.key]
        assert d.test is not None
        winner: str | None = best.key
        reason = (
            f"conclusive: {best.key!r} beats {control.key!r} on {name} "
            f"(p = {_p(d.test.p_value)} ≤ {_p(d.threshold)}, alpha corrected for repeated looks)"
        )
    else:
        winner = control.key if len(worse) == len(others) else None
        names = ", ".join(repr(a.key) for a in worse)
        reason = f"conclusive: {names} {'does' if len(worse) == 1 else 'do'} worse than "
        reason += f"{control.key!r} on {name} at the alpha corrected for repeated looks"
    return Verdict(Outcome.CONCLUSIVE, True, winner, reason, decisions)


def _statistic(test: PrimaryTest | None) -> float:
    return test.statistic if test is not None else 0.0


def _above(test: PrimaryTest | None) -> bool:
    return _statistic(test) > 0


# ---- results -------------------------------------------------------------------------------


async def results(session: AsyncSession, experiment: Experiment) -> Results:
    """The experiment's results as they stand now."""
    if experiment.status is ExperimentStatus.DRAFT:
        arms = {v.key: _empty(v.key) for v in variants_of(experiment)}
    else:
        arms = await read_arms(session, experiment)
    ordered = [arms[v.key] for v in variants_of(experiment)]
    control = ordered[0]
    metric = experiment.primary_metric
    tests = {a.key: primary_test(metric, a, control) for a in ordered[1:]}
    verdict = decide(ordered, tests, min_sample_size=experiment.min_sample_size, metric=metric)
    if experiment.status is ExperimentStatus.DRAFT:
        verdict = Verdict(
            Outcome.NOT_STARTED, False, None, "the experiment has not started", verdict.decisions
        )
    variants = []
    for variant, arm in zip(variants_of(experiment), ordered, strict=True):
        is_control = arm is control
        comparable = not is_control and arm.visitors > 0 and control.visitors > 0
        variants.append(
            VariantResult(
                key=arm.key,
                weight=variant.weight,
                is_control=is_control,
                visitors=arm.visitors,
                converters=arm.converters,
                orders=arm.orders.n,
                gmv=round(arm.gmv.total),
                conversion_rate=st.wilson(arm.converters, arm.visitors),
                gmv_per_visitor=st.mean_interval(arm.gmv),
                aov=st.mean_interval(arm.orders),
                conversion=(
                    st.compare_proportions(
                        arm.converters, arm.visitors, control.converters, control.visitors
                    )
                    if comparable
                    else None
                ),
                gmv_per_visitor_vs_control=(
                    st.compare_means(arm.gmv, control.gmv) if comparable else None
                ),
                aov_vs_control=st.compare_means(arm.orders, control.orders) if comparable else None,
                decision=verdict.decisions.get(arm.key),
            )
        )
    return Results(experiment, variants, verdict, st.ALPHA)


def _empty(key: str) -> Arm:
    return Arm(key, 0, 0, st.Moments(0, 0.0, 0.0), st.Moments(0, 0.0, 0.0))
