"""The shop's KPIs over GraphQL, for staff with insights.read: ``shopKpis`` (every KPI of the
core and the enabled plugins over a period, per day, week or month, against the period before
and the same dates a year earlier), ``shoppingFunnel`` and ``cohortRetention``.

The figures come from the KPI aggregates (server/services/kpi_aggregates.py), refreshed by the
job ``core.kpis``; the definitions are in server/services/kpis.py and docs/insights.md.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

import strawberry

from schema.periods import Granularity
from server.graphql.context import Info
from server.graphql.errors import ValidationError, validation_error
from server.graphql.permissions import HasPermission
from server.hooktypes import KpiUnit
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import kpis as service
from server.services.errors import ValidationFailed
from server.services.kpi_registry import registered_kpis

CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)

strawberry.enum(
    KpiUnit,
    name="KpiUnit",
    description="COUNT; MONEY in minor units of the shop's currency (fen); RATIO from 0 to 1; "
    "SCORE (CSAT 1-5, NPS -100 to 100).",
)
strawberry.enum(
    service.FunnelStepKind,
    name="FunnelStepKind",
    description="VIEW: viewed a product; ADD_TO_CART: and added one to the cart; ORDER: and "
    "placed an order; PAID: and the order was paid.",
)


@strawberry.input(description="A period of shop days (UTC+8), both days included.")
class ShopKpisInput:
    from_: date = strawberry.field(name="from")
    to: date = strawberry.field(description="The last day (included).")
    granularity: Granularity = Granularity.DAY
    keys: list[str] | None = strawberry.field(
        default=None,
        description=f"The KPIs to compute, in this order (at most {service.MAX_KEYS} keys of "
        f"at most {service.MAX_KEY_LENGTH} characters); default: every one.",
    )


@strawberry.type(description="One point of a KPI series: a bucket of the period.")
class KpiPoint:
    start: date
    end: date = strawberry.field(description="Exclusive.")
    value: float | None = strawberry.field(description="Null: no value (a ratio of nothing).")
    previous: float | None = strawberry.field(description="The same bucket of the previous period.")
    last_year: float | None = strawberry.field(description="The same dates a year earlier.")


@strawberry.type(description="A KPI over the period, with its comparisons.")
class KpiSeries:
    key: str
    label: str
    unit: KpiUnit
    higher_is_better: bool
    description: str
    total: float | None = strawberry.field(description="The whole period's value.")
    previous_total: float | None = strawberry.field(
        description="The value of the previous period (previousFrom to previousTo)."
    )
    last_year_total: float | None = strawberry.field(
        description="The value of the same dates a year earlier."
    )
    change: float | None = strawberry.field(
        description="total / previousTotal - 1 (null when either is null or previousTotal is 0)."
    )
    last_year_change: float | None = strawberry.field(
        description="total / lastYearTotal - 1 (null when either is null or lastYearTotal is 0)."
    )
    points: list[KpiPoint]


@strawberry.type(description="The shop's KPIs over a period.")
class ShopKpis:
    from_: date = strawberry.field(name="from")
    to: date
    granularity: Granularity
    previous_from: date
    previous_to: date
    last_year_from: date
    last_year_to: date
    refreshed_at: datetime | None = strawberry.field(
        description="When the core's aggregates were last refreshed: its figures count what "
        "happened before then (null: never built)."
    )
    kpis: list[KpiSeries]


@strawberry.input(description="A period of shop days (UTC+8), both days included.")
class ShoppingFunnelInput:
    from_: date = strawberry.field(name="from")
    to: date = strawberry.field(description="The last day (included).")


@strawberry.type(description="One step of the shopping funnel.")
class FunnelStep:
    step: service.FunnelStepKind
    visitors: int = strawberry.field(
        description="Distinct visitors who did this step and every step before it in the period."
    )
    step_conversion_rate: float | None = strawberry.field(
        description="visitors / the step before's (null for the first step, or after none)."
    )
    overall_conversion_rate: float | None = strawberry.field(
        description="visitors / the first step's."
    )


@strawberry.type(description="The shopping funnel of a period: VIEW → ADD_TO_CART → ORDER → PAID.")
class ShoppingFunnel:
    from_: date = strawberry.field(name="from")
    to: date
    visitors: int = strawberry.field(description="Distinct visitors with any behaviour event.")
    steps: list[FunnelStep]
    overall_conversion_rate: float | None = strawberry.field(
        description="PAID's visitors / VIEW's."
    )


@strawberry.input(description="Monthly cohorts: from fromMonth's month, `months` months.")
class CohortRetentionInput:
    from_month: date = strawberry.field(description="Any day of the first cohort's month.")
    months: int = strawberry.field(default=12, description=f"1 to {service.MAX_COHORT_MONTHS}.")


@strawberry.type(description="How many of a cohort bought in a later month.")
class CohortMonth:
    offset: int = strawberry.field(description="Months after the cohort's month (1: the next).")
    month: date = strawberry.field(description="The month's first day.")
    customers: int = strawberry.field(description="Cohort members with a purchase that month.")
    share: float | None = strawberry.field(description="customers / the cohort's size.")


@strawberry.type(description="The customers whose first purchase was in one month.")
class Cohort:
    month: date = strawberry.field(description="The month's first day.")
    size: int
    retention: list[CohortMonth] = strawberry.field(
        description="Each following month up to the window's last (or the current month)."
    )


@strawberry.type(description="The monthly retention triangle.")
class CohortRetention:
    from_month: date
    months: int
    cohorts: list[Cohort]


ShopKpisResult = Annotated[ShopKpis | ValidationError, strawberry.union("ShopKpisResult")]
ShoppingFunnelResult = Annotated[
    ShoppingFunnel | ValidationError, strawberry.union("ShoppingFunnelResult")
]
CohortRetentionResult = Annotated[
    CohortRetention | ValidationError, strawberry.union("CohortRetentionResult")
]


def _series(s: service.Series) -> KpiSeries:
    return KpiSeries(
        key=s.kpi.key,
        label=s.kpi.label,
        unit=s.kpi.unit,
        higher_is_better=s.kpi.higher_is_better,
        description=s.kpi.description,
        total=s.total,
        previous_total=s.previous_total,
        last_year_total=s.last_year_total,
        change=s.change,
        last_year_change=s.last_year_change,
        points=[
            KpiPoint(
                start=p.start, end=p.end, value=p.value, previous=p.previous, last_year=p.last_year
            )
            for p in s.points
        ],
    )


def _day_after(last: date) -> date:
    """The service's end (exclusive) of a period whose ``to`` is its last day."""
    if last >= service.LATEST:
        raise ValidationFailed(
            f"a period lies between {service.EARLIEST} and {service.LATEST}", field="to"
        )
    return last + timedelta(days=1)


def _last_day(end: date) -> date:
    return end - timedelta(days=1)


@strawberry.type
class KpiQueries:
    @strawberry.field(
        description="The shop's KPIs (the core's and every enabled plugin's) over a period, per "
        "day, week or month, against the period just before and the same dates a year earlier "
        "(insights.read).",
        permission_classes=[CanRead],
    )
    async def shop_kpis(self, info: Info, input: ShopKpisInput) -> ShopKpisResult:
        registry = registered_kpis(info.context.plugins)
        try:
            report = await info.context.db.run(
                service.shop_kpis,
                registry,
                input.from_,
                _day_after(input.to),
                input.granularity,
                input.keys,
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return ShopKpis(
            from_=report.period.start,
            to=_last_day(report.period.end),
            granularity=report.granularity,
            previous_from=report.previous.start,
            previous_to=_last_day(report.previous.end),
            last_year_from=report.last_year.start,
            last_year_to=_last_day(report.last_year.end),
            refreshed_at=report.refreshed_at,
            kpis=[_series(s) for s in report.series],
        )

    @strawberry.field(
        description="The shopping funnel of a period: distinct visitors at each step and the "
        "conversion rates (insights.read).",
        permission_classes=[CanRead],
    )
    async def shopping_funnel(self, info: Info, input: ShoppingFunnelInput) -> ShoppingFunnelResult:
        try:
            funnel = await info.context.db.run(
                service.shopping_funnel, input.from_, _day_after(input.to)
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return ShoppingFunnel(
            from_=funnel.period.start,
            to=_last_day(funnel.period.end),
            visitors=funnel.visitors,
            steps=[
                FunnelStep(
                    step=s.step,
                    visitors=s.visitors,
                    step_conversion_rate=s.step_rate,
                    overall_conversion_rate=s.overall_rate,
                )
                for s in funnel.steps
            ],
            overall_conversion_rate=funnel.conversion_rate,
        )

    @strawberry.field(
        description="Monthly cohorts of new customers and the share of each who bought again "
        "in each following month (insights.read).",
        permission_classes=[CanRead],
    )
    async def cohort_retention(
        self, info: Info, input: CohortRetentionInput
    ) -> CohortRetentionResult:
        try:
            cohorts = await info.context.db.run(
                service.cohort_retention, input.from_month, input.months
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return CohortRetention(
            from_month=input.from_month.replace(day=1),
            months=input.months,
            cohorts=[
                Cohort(
                    month=c.month,
                    size=c.size,
                    retention=[
                        CohortMonth(
                            offset=r.offset, month=r.month, customers=r.customers, share=r.share
                        )
                        for r in c.retention
                    ],
                )
                for c in cohorts
            ],
        )


QUERIES: list[type[Any]] = [KpiQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
