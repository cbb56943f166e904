"""Customer insights over GraphQL, for staff with insights.read: a customer's RFM figures and
segment (``Customer.rfm``, ``Customer.segment``), the shop's segments with their movement
(``customerSegments``), and ``rebuildCustomerInsights`` (insights.manage).

A customer never sees any segment, their own included: the fields need the permission, which
no customer holds. The rules and the SQL are in server/services/rfm.py and
server/services/insights.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.customers import Customer
from schema.loaders import CustomerRfmByCustomerIdLoader
from server import models as m
from server.graphql.context import Info
from server.graphql.money import MoneyTotal, money_total
from server.graphql.mutations import mutate
from server.graphql.permissions import HasPermission
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import insights, rfm

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
    audiences: AudiencesRebuildSummary


RebuildCustomerInsightsResult = Annotated[
    RebuildCustomerInsightsSuccess, strawberry.union("RebuildCustomerInsightsResult")
]


def _rebuilt(report: insights.InsightsReport) -> RebuildCustomerInsightsSuccess:
    done = report.rfm
    return RebuildCustomerInsightsSuccess(
        rfm=RfmRebuildSummary(
            as_of=done.as_of,
            skipped=done.skipped,
            customers=done.customers,
            written=done.written,
            removed=done.removed,
            segment_changes=done.segment_changes,
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
