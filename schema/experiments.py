"""A/B experiments over GraphQL: staff with insights.manage define, start and stop them,
insights.read sees them and their results, and any shopper asks which variant they get
(server.services.experiments, experiment_results and experiment_stats hold the rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.loaders import ExperimentByIdLoader
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import ConflictError, InvalidTransition, NotFoundError, ValidationError
from server.graphql.money import exponent
from server.graphql.mutations import mutate, run_write
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page
from server.graphql.permissions import HasPermission
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import experiment_results as results_service
from server.services import experiment_stats as st
from server.services import experiments as service
from server.services.errors import DomainError

# GraphQL enums: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.ExperimentStatus, description="DRAFT → RUNNING → STOPPED (final).")
strawberry.enum(
    m.ExperimentMetric,
    description="CONVERSION: visitors with a paid order over visitors; GMV_PER_VISITOR: paid "
    "orders' totals over visitors; AOV: paid orders' totals over paid orders.",
)
strawberry.enum(
    results_service.Outcome,
    name="ExperimentOutcome",
    description="Where an experiment's verdict stands: NOT_STARTED, COLLECTING (an arm lacks "
    "its minimum sample), NO_SIGNIFICANT_DIFFERENCE, CONCLUSIVE.",
)

_READERS = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)
_MANAGERS = HasPermission(INSIGHTS_MANAGE)


@strawberry.type(description="A variant of an experiment: its key and its share of visitors.")
class ExperimentVariant:
    key: str
    weight: int = strawberry.field(description="Visitors get it in proportion to its weight.")
    is_control: bool = strawberry.field(description="The first variant is the control.")


@strawberry.type(description="An estimate with its 95% confidence interval.")
class ConfidenceInterval:
    estimate: float
    low: float
    high: float


def _interval(value: st.Interval | None, scale: float = 1.0) -> ConfidenceInterval | None:
    if value is None:
        return None
    return ConfidenceInterval(
        estimate=value.estimate * scale, low=value.low * scale, high=value.high * scale
    )


@strawberry.type(
    description="A variant against the control on one metric. The intervals are 95% at this "
    "look, not corrected for repeated looks (the verdict is)."
)
class ExperimentComparison:
    difference: ConfidenceInterval = strawberry.field(description="Variant minus control.")
    relative_lift: ConfidenceInterval | None = strawberry.field(
        description="Variant over control, minus 1 (0.12 is +12%); null when the control's "
        "value is 0."
    )
    statistic: float = strawberry.field(
        description="The test's statistic: z (conversion) or Welch's t (GMV per visitor, AOV)."
    )
    p_value: float = strawberry.field(description="The fixed-sample test's two-sided p-value.")


def _comparison(value: st.Comparison | None, scale: float = 1.0) -> ExperimentComparison | None:
    if value is None:
        return None
    difference = _interval(value.difference, scale)
    assert difference is not None
    return ExperimentComparison(
        difference=difference,
        relative_lift=_interval(value.relative_lift),
        statistic=value.statistic,
        p_value=value.p_value,
    )


@strawberry.type(description="The primary metric's test of a variant against the control.")
class ExperimentDecision:
    p_value: float | None = strawberry.field(description="Null when there is nothing to test.")
    threshold: float = strawberry.field(
        description="The p-value it must reach now: alpha corrected for repeated looks (and "
        "split between the variants compared with the control)."
    )
    information_fraction: float = strawberry.field(
        description="The information gathered over that of the planned sample (1 when both "
        "arms have the minimum sample)."
    )
    significant: bool = strawberry.field(
        description="Both arms have their minimum sample and p-value ≤ threshold."
    )


@strawberry.type(description="One variant's numbers. Money amounts are in the shop's currency.")
class ExperimentVariantResults:
    variant: str
    is_control: bool
    weight: int
    visitors: int = strawberry.field(description="Visitors exposed to it.")
    converters: int = strawberry.field(
        description="Visitors with a paid order placed after their first exposure, while the "
        "experiment ran."
    )
    orders: int = strawberry.field(description="Those visitors' paid orders.")
    gmv: float = strawberry.field(description="Those orders' totals.")
    conversion_rate: ConfidenceInterval | None = strawberry.field(
        description="converters / visitors, Wilson interval."
    )
    gmv_per_visitor: ConfidenceInterval | None
    aov: ConfidenceInterval | None = strawberry.field(description="gmv / orders.")
    conversion_vs_control: ExperimentComparison | None = strawberry.field(
        description="Two-proportion z-test; Newcombe interval of the difference."
    )
    gmv_per_visitor_vs_control: ExperimentComparison | None = strawberry.field(
        description="Welch's t-test and interval."
    )
    aov_vs_control: ExperimentComparison | None = strawberry.field(
        description="Welch's t-test and interval, over paid orders."
    )
    decision: ExperimentDecision | None = strawberry.field(
        description="The primary metric's test against the control (null for the control)."
    )


@strawberry.type(description="An experiment's results as they stand now.")
class ExperimentResults:
    primary_metric: m.ExperimentMetric
    outcome: results_service.Outcome
    conclusive: bool = strawberry.field(
        description="Every arm has its minimum sample and a variant differs from the control "
        "on the primary metric at the alpha corrected for repeated looks."
    )
    winner: str | None = strawberry.field(
        description="The variant that beats the control (the best one), or the control when "
        "every variant does worse; null otherwise."
    )
    reason: str = strawberry.field(description="Why it is, or is not, conclusive.")
    alpha: float
    min_sample_size: int
    currency: str
    variants: list[ExperimentVariantResults]


def _results_type(found: results_service.Results, currency: str) -> ExperimentResults:
    major = 10.0 ** -exponent(currency)
    variants = []
    for v in found.variants:
        d = v.decision
        variants.append(
            ExperimentVariantResults(
                variant=v.key,
                is_control=v.is_control,
                weight=v.weight,
                visitors=v.visitors,
                converters=v.converters,
                orders=v.orders,
                gmv=v.gmv * major,
                conversion_rate=_interval(v.conversion_rate),
                gmv_per_visitor=_interval(v.gmv_per_visitor, major),
                aov=_interval(v.aov, major),
                conversion_vs_control=_comparison(v.conversion),
                gmv_per_visitor_vs_control=_comparison(v.gmv_per_visitor_vs_control, major),
                aov_vs_control=_comparison(v.aov_vs_control, major),
                decision=None
                if d is None
                else ExperimentDecision(
                    p_value=d.test.p_value if d.test is not None else None,
                    threshold=d.threshold,
                    information_fraction=d.information,
                    significant=d.significant,
                ),
            )
        )
    verdict = found.verdict
    return ExperimentResults(
        primary_metric=found.experiment.primary_metric,
        outcome=verdict.outcome,
        conclusive=verdict.conclusive,
        winner=verdict.winner,
        reason=verdict.reason,
        alpha=found.alpha,
        min_sample_size=found.experiment.min_sample_size,
        currency=currency,
        variants=variants,
    )


@strawberry.type(description="An A/B test (insights.read).")
class Experiment(ModelNode):
    loader = ExperimentByIdLoader

    id: relay.NodeID[int]
    key: str
    name: str
    hypothesis: str
    primary_metric: m.ExperimentMetric
    status: m.ExperimentStatus
    min_sample_size: int = strawberry.field(
        description="Visitors every arm needs before a result can be conclusive."
    )
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    _model: strawberry.Private[m.Experiment]

    @classmethod
    def can_view(cls, info: Info, model: m.Experiment) -> bool:
        return info.context.viewer.has(INSIGHTS_READ, INSIGHTS_MANAGE)

    @strawberry.field(description="The variants; the first is the control.")
    def variants(self) -> list[ExperimentVariant]:
        return [
            ExperimentVariant(key=v.key, weight=v.weight, is_control=i == 0)
            for i, v in enumerate(service.variants_of(self._model))
        ]

    @strawberry.field(description="Results: per variant, against the control, and the verdict.")
    async def results(self, info: Info) -> ExperimentResults:
        found = await info.context.db.run(results_service.results, self._model)
        return _results_type(found, info.context.settings.currency)


@strawberry.input
class ExperimentFilter:
    status: m.ExperimentStatus | None = None


@strawberry.input(description="A variant: key and weight (a whole number from 1 to 10,000).")
class ExperimentVariantInput:
    key: str
    weight: int


@strawberry.input(description="A new experiment; it starts as a DRAFT.")
class CreateExperimentInput:
    key: str = strawberry.field(description="Lower-case letters, digits, hyphens; unique.")
    name: str
    variants: list[ExperimentVariantInput] = strawberry.field(
        description="2 to 5 variants with different keys; the first is the control."
    )
    hypothesis: str = ""
    primary_metric: m.ExperimentMetric = m.ExperimentMetric.CONVERSION
    min_sample_size: int | None = strawberry.field(
        default=None,
        description="Visitors every arm needs before a result can be conclusive (30 or more); "
        "default: the shop's rule of thumb (SHOPGRAPH_EXPERIMENT_MIN_SAMPLE_SIZE, 1,000).",
    )


@strawberry.input
class ExperimentKeyInput:
    key: str


@strawberry.type
class CreateExperimentSuccess:
    experiment: Experiment


@strawberry.type
class StartExperimentSuccess:
    experiment: Experiment


@strawberry.type
class StopExperimentSuccess:
    experiment: Experiment


CreateExperimentResult = Annotated[
    CreateExperimentSuccess | ValidationError | ConflictError,
    strawberry.union("CreateExperimentResult"),
]
StartExperimentResult = Annotated[
    StartExperimentSuccess | NotFoundError | InvalidTransition,
    strawberry.union("StartExperimentResult"),
]
StopExperimentResult = Annotated[
    StopExperimentSuccess | NotFoundError | InvalidTransition,
    strawberry.union("StopExperimentResult"),
]


def _visitor(info: Info, session_id: str | None) -> str:
    viewer = info.context.viewer
    if viewer.customer_id is not None:
        return service.customer_visitor(viewer.customer_id)
    try:
        return service.session_visitor(session_id or "")
    except DomainError as exc:
        # GraphQLError is never masked: the client needs to know what to fix.
        raise GraphQLError(
            exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field}
        ) from exc


@strawberry.type
class ExperimentQueries:
    @strawberry.field(
        description="Experiments, oldest first (insights.read).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def experiments(
        self, info: Info, page: Page, filter: ExperimentFilter | None = None
    ) -> Connection[Experiment]:
        status = filter.status if filter is not None else None
        return await connection(
            info,
            service.experiments_query(status),
            page,
            sort=[],
            to_node=Experiment.from_model,
        )

    @strawberry.field(
        description="An experiment by key; null when there is none (insights.read).",
        permission_classes=[_READERS],
    )
    async def experiment(self, info: Info, key: str) -> Experiment | None:
        row = await info.context.db.run(service.find_by_key, key)
        return Experiment.from_model(row) if row is not None else None

    @strawberry.field(
        description="The variant the viewer gets in a running experiment, recording their "
        "first exposure; null when the experiment is not running. A signed-in customer is "
        "followed by their account (sessionId is not needed), anyone else by sessionId (1 to "
        "64 characters: keep it for the visitor)."
    )
    async def experiment_variant(
        self, info: Info, key: str, session_id: str | None = None
    ) -> str | None:
        visitor = _visitor(info, session_id)
        return await run_write(info, service.variant_for, key.strip(), visitor)


@strawberry.type
class ExperimentMutations:
    @strawberry.mutation(permission_classes=[_MANAGERS])
    async def create_experiment(
        self, info: Info, input: CreateExperimentInput
    ) -> CreateExperimentResult:
        async def work(session: AsyncSession) -> m.Experiment:
            return await service.create_experiment(
                session,
                key=input.key,
                name=input.name,
                hypothesis=input.hypothesis,
                variants=[service.Variant(v.key, v.weight) for v in input.variants],
                primary_metric=input.primary_metric,
                min_sample_size=(
                    input.min_sample_size
                    if input.min_sample_size is not None
                    else info.context.settings.experiment_min_sample_size
                ),
            )

        return await mutate(
            info, work, lambda row: CreateExperimentSuccess(experiment=Experiment.from_model(row))
        )

    @strawberry.mutation(
        description="DRAFT → RUNNING: visitors get variants from now on.",
        permission_classes=[_MANAGERS],
    )
    async def start_experiment(
        self, info: Info, input: ExperimentKeyInput
    ) -> StartExperimentResult:
        async def work(session: AsyncSession) -> m.Experiment:
            return await service.start_experiment(session, input.key)

        return await mutate(
            info, work, lambda row: StartExperimentSuccess(experiment=Experiment.from_model(row))
        )

    @strawberry.mutation(
        description="RUNNING → STOPPED (final): visitors get no variant, later orders do not "
        "count.",
        permission_classes=[_MANAGERS],
    )
    async def stop_experiment(self, info: Info, input: ExperimentKeyInput) -> StopExperimentResult:
        async def work(session: AsyncSession) -> m.Experiment:
            return await service.stop_experiment(session, input.key)

        return await mutate(
            info, work, lambda row: StopExperimentSuccess(experiment=Experiment.from_model(row))
        )


QUERIES: list[type[Any]] = [ExperimentQueries]
MUTATIONS: list[type[Any]] = [ExperimentMutations]
TYPES: list[type[Any]] = [Experiment]
