"""Customer insights over GraphQL, for staff with insights.read: a customer's RFM figures and
segment (``Customer.rfm``, ``Customer.segment``), lifetime value and churn risk
(``Customer.clv``, ``Customer.churnRisk``), the shop's segments with their movement and
average lifetime value (``customerSegments``), the fitted lifetime value models
(``clvModel``), the moves between segments over a period (``customerSegmentMovements``), and
``rebuildCustomerInsights`` (insights.manage).

A customer never sees any of it, their own included: the fields need the permission, which
no customer holds. The rules and the SQL are in server/services/rfm.py,
server/services/customer_value.py, server/services/churn.py, server/services/segment_movements.py
and server/services/insights.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.customers import Customer
from schema.loaders import (
    AverageClvBySegmentLoader,
    CustomerRfmByCustomerIdLoader,
    CustomerValueByCustomerIdLoader,
)
from schema.periods import Granularity
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import ValidationError, validation_error
from server.graphql.money import MoneyTotal, money_total
from server.graphql.mutations import mutate
from server.graphql.permissions import HasPermission
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import churn, customer_value, insights, periods, rfm, segment_movements
from server.services.errors import ValidationFailed

# A manage permission includes its read.
CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)


@strawberry.type(description="A customer's RFM figures, scores and segment (insights.read).")
class CustomerRfm:
    recency: int = strawberry.field(
        description="Days from the last purchase's day to computedAt's day (UTC days)."
    )
    frequency: int = strawberry.field(description="Purchases: paid orders not cancelled.")
    monetary: MoneyTotal = strawberry.field(description="Total spend of those purchases.")
    r_score: int = strawberry.field(description="1-5; more recent, higher.")
    f_score: int = strawberry.field(description="1-5; more purchases, higher.")
    m_score: int = strawberry.field(description="1-5; more spend, higher.")
    segment: m.CustomerSegment
    segment_label: str = strawberry.field(description='The segment\'s name, e.g. "重要价值".')
    last_purchase_at: datetime
    computed_at: datetime = strawberry.field(
        description="The moment these figures were computed for (the last recomputation that "
        "changed them)."
    )

    @classmethod
    def from_model(cls, row: m.CustomerRfm, currency: str) -> CustomerRfm:
        return cls(
            recency=row.recency_days,
            frequency=row.frequency,
            monetary=money_total(row.monetary, currency),
            r_score=row.r_score,
            f_score=row.f_score,
            m_score=row.m_score,
            segment=row.segment,
            segment_label=rfm.SEGMENT_LABELS[row.segment],
            last_purchase_at=row.last_purchase_at,
            computed_at=row.computed_at,
        )


def _money_or_none(minor: int | None, currency: str) -> MoneyTotal | None:
    return money_total(minor, currency) if minor is not None else None


@strawberry.type(
    description="A customer's lifetime value over the shop's horizon (insights.read). The "
    "figures are null when the shop's purchases could not fit the models: `reason` says why."
)
class CustomerClv:
    value: MoneyTotal | None = strawberry.field(
        description="The margin the customer is expected to bring over the horizon, discounted "
        "monthly at the shop's rate (CLV)."
    )
    expected_purchases: float | None = strawberry.field(
        description="Purchases (distinct purchase days) expected over the horizon (BG/NBD)."
    )
    probability_alive: float | None = strawberry.field(
        description="The chance the customer is still a customer (BG/NBD's P(alive)), 0-1."
    )
    expected_spend: MoneyTotal | None = strawberry.field(
        description="Expected spend per purchase (Gamma-Gamma)."
    )
    margin_rate: float | None = strawberry.field(
        description="The share of revenue kept: realised from the cost prices of what the "
        "customer bought, or the shop's default rate."
    )
    horizon_days: int = strawberry.field(description="The horizon of value and purchases.")
    reason: str | None = strawberry.field(
        description="Why figures are null (the models could not be fitted); null otherwise."
    )
    computed_at: datetime = strawberry.field(
        description="The moment these figures were computed for (the last recomputation that "
        "changed them)."
    )

    @classmethod
    def from_model(cls, row: m.CustomerValue, currency: str) -> CustomerClv:
        return cls(
            value=_money_or_none(row.clv_amount, currency),
            expected_purchases=row.expected_purchases,
            probability_alive=row.p_alive,
            expected_spend=_money_or_none(row.expected_spend, currency),
            margin_rate=row.margin_rate,
            horizon_days=row.horizon_days,
            reason=row.reason,
            computed_at=row.computed_at,
        )


strawberry.enum(churn.ChurnReason, name="ChurnReasonCode", description="Why a churn risk is high.")


@strawberry.type(description="One thing that raised a customer's churn risk.")
class ChurnRiskReason:
    code: churn.ChurnReason
    message: str = strawberry.field(description="The reason in words, with its figures.")
    value: float = strawberry.field(
        description="DROPOUT_MODEL: 1 - P(alive); PURCHASE_OVERDUE: days since the last "
        "purchase; BROWSING_DROPPED: the last 30 days' browsing as a share of the expected; "
        "NO_INTERACTION: days since the last visit or purchase."
    )


@strawberry.type(description="How likely a customer has stopped buying, and why (insights.read).")
class ChurnRisk:
    probability: float | None = strawberry.field(
        description="0-1: 1 - P(alive) combined with the shopping path's signals; null when the "
        "purchase model could not be fitted (the signals are still listed)."
    )
    reasons: list[ChurnRiskReason] = strawberry.field(
        description="Every part that contributed, the strongest first."
    )
    computed_at: datetime

    @classmethod
    def from_model(cls, row: m.CustomerValue) -> ChurnRisk:
        return cls(
            probability=row.churn_probability,
            reasons=[
                ChurnRiskReason(
                    code=churn.ChurnReason(reason["code"]),
                    message=str(reason["message"]),
                    value=float(reason["value"]),
                )
                for reason in row.churn_reasons
            ],
            computed_at=row.computed_at,
        )


@strawberry.type
class CustomerInsights:
    """Fields this domain adds to Customer (``root`` is the Customer)."""

    @strawberry.field(
        description="RFM figures and segment (insights.read); null before the first purchase.",
        permission_classes=[CanRead],
    )
    async def rfm(self, root: Customer, info: Info) -> CustomerRfm | None:
        row = await info.context.loaders.get(CustomerRfmByCustomerIdLoader).load(root.id)
        return CustomerRfm.from_model(row, info.context.settings.currency) if row else None

    @strawberry.field(
        description="The RFM segment (insights.read); null before the first purchase.",
        permission_classes=[CanRead],
    )
    async def segment(self, root: Customer, info: Info) -> m.CustomerSegment | None:
        row = await info.context.loaders.get(CustomerRfmByCustomerIdLoader).load(root.id)
        return row.segment if row else None

    @strawberry.field(
        description="Lifetime value over the shop's horizon (insights.read); null before the "
        "first purchase.",
        permission_classes=[CanRead],
    )
    async def clv(self, root: Customer, info: Info) -> CustomerClv | None:
        row = await info.context.loaders.get(CustomerValueByCustomerIdLoader).load(root.id)
        return CustomerClv.from_model(row, info.context.settings.currency) if row else None

    @strawberry.field(
        description="Churn risk with its reasons (insights.read); null before the first purchase.",
        permission_classes=[CanRead],
    )
    async def churn_risk(self, root: Customer, info: Info) -> ChurnRisk | None:
        row = await info.context.loaders.get(CustomerValueByCustomerIdLoader).load(root.id)
        return ChurnRisk.from_model(row) if row else None


@strawberry.type(description="One RFM segment of the shop.")
class CustomerSegmentSummary:
    segment: m.CustomerSegment
    label: str = strawberry.field(description='The segment\'s name, e.g. "重要价值".')
    count: int = strawberry.field(description="Customers now in it.")
    share: float = strawberry.field(description="Its share of every scored customer, 0-1.")
    revenue: MoneyTotal = strawberry.field(description="Its customers' total spend.")
    average_monetary: MoneyTotal | None = strawberry.field(
        description="Spend per customer (rounded half up); null when the segment is empty."
    )
    moved_in: int = strawberry.field(
        description="Moves into it since `since`: from another segment or a first purchase."
    )
    moved_out: int = strawberry.field(
        description="Moves out of it since `since`: to another segment, or no purchase left."
    )

    @strawberry.field(
        description="The mean lifetime value of its customers who have one (rounded half up); "
        "null when none has."
    )
    async def average_clv(self, info: Info) -> MoneyTotal | None:
        average = await info.context.loaders.get(AverageClvBySegmentLoader).load(self.segment)
        return _money_or_none(average, info.context.settings.currency)

    @classmethod
    def of(cls, summary: rfm.SegmentSummary, currency: str) -> CustomerSegmentSummary:
        average = summary.average_monetary
        return cls(
            segment=summary.segment,
            label=summary.label,
            count=summary.customers,
            share=summary.share,
            revenue=money_total(summary.revenue, currency),
            average_monetary=money_total(average, currency) if average is not None else None,
            moved_in=summary.moved_in,
            moved_out=summary.moved_out,
        )


@strawberry.type(
    description="A fit of the lifetime value models on the shop's purchases (insights.read): "
    "BG/NBD (purchase rate ~ Gamma(r, alpha) per day, dropout ~ Beta(a, b)) and Gamma-Gamma "
    "(spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v), v in minor units). Parameters are "
    "null when the data could not fit them: `reason` says why."
)
class ClvModel:
    r: float | None
    alpha: float | None
    a: float | None
    b: float | None
    p: float | None
    q: float | None
    v: float | None
    log_likelihood: float | None = strawberry.field(description="BG/NBD's, at the estimate.")
    spend_log_likelihood: float | None = strawberry.field(
        description="Gamma-Gamma's, at the estimate."
    )
    customers: int = strawberry.field(description="Customers the purchase model was fitted on.")
    repeat_customers: int = strawberry.field(
        description="Those who bought on more than one day (they fit the spend model)."
    )
    calibration_end: date = strawberry.field(description="The last day of purchases used (UTC).")
    unit: str = strawberry.field(description='The unit of time of the rates: "day".')
    converged: bool = strawberry.field(description="Both fits converged.")
    reason: str | None = strawberry.field(
        description="Why the models are not (fully) fitted; null when they are."
    )
    horizon_days: int
    annual_discount_rate: float
    default_margin_rate: float
    fitted_at: datetime

    @classmethod
    def from_model(cls, row: m.ClvModelFit) -> ClvModel:
        return cls(
            r=row.r,
            alpha=row.alpha,
            a=row.a,
            b=row.b,
            p=row.p,
            q=row.q,
            v=row.v,
            log_likelihood=row.log_likelihood,
            spend_log_likelihood=row.spend_log_likelihood,
            customers=row.customers,
            repeat_customers=row.repeat_customers,
            calibration_end=row.calibration_end,
            unit=row.unit,
            converged=row.converged,
            reason=row.reason,
            horizon_days=row.horizon_days,
            annual_discount_rate=row.annual_discount_rate,
            default_margin_rate=row.default_margin_rate,
            fitted_at=row.fitted_at,
        )


@strawberry.input(description="A period of shop days (UTC+8), both days included.")
class SegmentMovementsInput:
    from_: date = strawberry.field(name="from", description="The first day.")
    to: date = strawberry.field(description="The last day (included).")
    granularity: Granularity = Granularity.DAY


@strawberry.type(
    description="Customers who moved from one segment to another over the period. `from` is "
    "null for a first purchase, `to` null for a customer left without a purchase."
)
class SegmentFlow:
    from_: m.CustomerSegment | None = strawberry.field(name="from")
    to: m.CustomerSegment | None
    count: int

    @strawberry.field(description='`from`\'s name, e.g. "重要价值"; null with `from`.')
    def from_label(self) -> str | None:
        return rfm.SEGMENT_LABELS[self.from_] if self.from_ is not None else None

    @strawberry.field(description='`to`\'s name, e.g. "重要保持"; null with `to`.')
    def to_label(self) -> str | None:
        return rfm.SEGMENT_LABELS[self.to] if self.to is not None else None


@strawberry.type(description="The segment changes recorded in one bucket of the period.")
class SegmentMovementBucket:
    start: date = strawberry.field(description="Its first day.")
    end: date = strawberry.field(description="The day after its last day.")
    moved: int = strawberry.field(description="Moves from one segment to another.")
    entered: int = strawberry.field(description="First segments: customers' first purchases.")
    left: int = strawberry.field(description="Customers left without a purchase.")


@strawberry.type(
    description="The moves between RFM segments recorded over a period, dated by the "
    "recomputation that recorded them (insights.read)."
)
class CustomerSegmentMovements:
    from_: date = strawberry.field(name="from")
    to: date
    granularity: Granularity
    total: int = strawberry.field(description="Every change recorded in the period.")
    buckets: list[SegmentMovementBucket]
    flows: list[SegmentFlow] = strawberry.field(
        description="Per pair of segments with at least one move, first purchases first, then "
        "in the segments' order."
    )


CustomerSegmentMovementsResult = Annotated[
    CustomerSegmentMovements | ValidationError, strawberry.union("CustomerSegmentMovementsResult")
]


@strawberry.type
class InsightQueries:
    @strawberry.field(
        description="The eight RFM segments, each with its customers, revenue and the moves "
        "in and out of it since `since` (every move recorded when null) (insights.read).",
        permission_classes=[CanRead],
    )
    async def customer_segments(
        self, info: Info, since: datetime | None = None
    ) -> list[CustomerSegmentSummary]:
        summaries = await info.context.db.run(rfm.segment_summaries, since)
        currency = info.context.settings.currency
        return [CustomerSegmentSummary.of(s, currency) for s in summaries]

    @strawberry.field(
        description="The moves between RFM segments over a period of shop days, per bucket and "
        "per pair of segments (insights.read).",
        permission_classes=[CanRead],
    )
    async def customer_segment_movements(
        self, info: Info, input: SegmentMovementsInput
    ) -> CustomerSegmentMovementsResult:
        try:
            cut = periods.buckets(input.from_, input.to, input.granularity)
        except ValidationFailed as exc:
            return validation_error(exc)
        found = await info.context.db.run(segment_movements.segment_movements, cut)
        return CustomerSegmentMovements(
            from_=input.from_,
            to=input.to,
            granularity=input.granularity,
            total=found.total,
            buckets=[
                SegmentMovementBucket(
                    start=b.start, end=b.end, moved=b.moved, entered=b.entered, left=b.left
                )
                for b in found.buckets
            ],
            flows=[SegmentFlow(from_=f.source, to=f.target, count=f.count) for f in found.flows],
        )

    @strawberry.field(
        description="The last fit of the lifetime value models (insights.read); null before the "
        "first recomputation.",
        permission_classes=[CanRead],
    )
    async def clv_model(self, info: Info) -> ClvModel | None:
        row = await info.context.db.run(customer_value.latest_fit)
        return ClvModel.from_model(row) if row is not None else None


@strawberry.input
class RebuildCustomerInsightsInput:
    force: bool = strawberry.field(
        default=True,
        description="false: leave an insight whose data has not changed since its last "
        "recomputation today as it is (what the periodic job does).",
    )


@strawberry.type(description="What the RFM recomputation did.")
class RfmRebuildSummary:
    as_of: datetime = strawberry.field(description="The moment the figures are computed for.")
    skipped: bool = strawberry.field(
        description="Nothing changed since the last recomputation today: nothing was written."
    )
    customers: int = strawberry.field(description="Customers with a purchase, scored.")
    written: int = strawberry.field(description="Customers whose figures changed.")
    removed: int = strawberry.field(description="Customers left without a purchase.")
    segment_changes: int = strawberry.field(description="Moves between segments recorded.")


@strawberry.type(description="What the lifetime value and churn risk recomputation did.")
class ClvRebuildSummary:
    as_of: datetime = strawberry.field(description="The moment the figures are computed for.")
    skipped: bool = strawberry.field(
        description="Nothing changed since the last recomputation today: nothing was written."
    )
    customers: int = strawberry.field(description="Customers with a purchase, valued.")
    written: int = strawberry.field(description="Customers whose figures changed.")
    removed: int = strawberry.field(description="Customers left without a purchase.")
    fitted: bool = strawberry.field(description="Both models were fitted: every figure is known.")
    reason: str | None = strawberry.field(
        description="Why figures are null (the models could not be fitted)."
    )


@strawberry.type(description="What the recomputation of the audiences' memberships did.")
class AudiencesRebuildSummary:
    as_of: datetime = strawberry.field(description="The moment the rules were evaluated at.")
    audiences: int
    members: int = strawberry.field(description="Memberships stored, over every audience.")
    joined: int = strawberry.field(description="Customers who joined an audience.")
    left: int = strawberry.field(description="Customers who left one.")


@strawberry.type
class RebuildCustomerInsightsSuccess:
    rfm: RfmRebuildSummary
    clv: ClvRebuildSummary
    audiences: AudiencesRebuildSummary


RebuildCustomerInsightsResult = Annotated[
    RebuildCustomerInsightsSuccess, strawberry.union("RebuildCustomerInsightsResult")
]


def _rebuilt(report: insights.InsightsReport) -> RebuildCustomerInsightsSuccess:
    done, valued = report.rfm, report.clv
    return RebuildCustomerInsightsSuccess(
        rfm=RfmRebuildSummary(
            as_of=done.as_of,
            skipped=done.skipped,
            customers=done.customers,
            written=done.written,
            removed=done.removed,
            segment_changes=done.segment_changes,
        ),
        clv=ClvRebuildSummary(
            as_of=valued.as_of,
            skipped=valued.skipped,
            customers=valued.customers,
            written=valued.written,
            removed=valued.removed,
            fitted=valued.fitted,
            reason=valued.reason,
        ),
        audiences=AudiencesRebuildSummary(
            as_of=report.audiences.as_of,
            audiences=report.audiences.audiences,
            members=report.audiences.members,
            joined=report.audiences.joined,
            left=report.audiences.left,
        ),
    )


@strawberry.type
class InsightMutations:
    @strawberry.mutation(
        description="Recompute the customer insights now (insights.manage).",
        permission_classes=[HasPermission(INSIGHTS_MANAGE)],
    )
    async def rebuild_customer_insights(
        self, info: Info, input: RebuildCustomerInsightsInput | None = None
    ) -> RebuildCustomerInsightsResult:
        force = input.force if input is not None else True
        settings = info.context.settings

        async def work(session: AsyncSession) -> insights.InsightsReport:
            return await insights.rebuild_in(session, settings, force=force)

        return await mutate(info, work, _rebuilt)


QUERIES: list[type[Any]] = [InsightQueries]
MUTATIONS: list[type[Any]] = [InsightMutations]
TYPES: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {"Customer": [CustomerInsights]}
