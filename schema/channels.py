"""Channels and attribution over GraphQL: the ``SalesChannel`` enum, where an order came from
(``Order.channel`` for whoever sees the order, its UTM tags for staff), the staff reports
``channelAttribution`` and ``promotionAttribution`` (insights.read), and
``importMarketingCosts`` (insights.manage).

The rules and the SQL are in server/services/channels.py, server/services/attribution.py and
server/services/marketing_costs.py.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.orders import Order
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import InvalidImportRow, ValidationError, validation_error
from server.graphql.money import MoneyTotal, money_total
from server.graphql.mutations import mutate
from server.graphql.permissions import HasPermission
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ, ORDERS_MANAGE, ORDERS_READ
from server.services import attribution, marketing_costs
from server.services.channels import lookback_of
from server.services.errors import ValidationFailed

# GraphQL enums: strawberry.enum marks the classes themselves, and fields name them.
strawberry.enum(
    m.SalesChannel,
    description="Where a visit or an order came from. MINI_PROGRAM and COMMUNITY_GROUP are "
    "the shop's private domain.",
)
strawberry.enum(
    attribution.AttributionModel,
    description="How an order is shared among its touches: all to the first, all to the "
    "last, or equally to each.",
)

# A manage permission includes its read.
CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)


def _minor(value: float) -> int:
    """A credited amount (a share of minor units) rounded half up to a minor unit."""
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@strawberry.type
class OrderChannel:
    """Fields this domain adds to Order (``root`` is the Order)."""

    @strawberry.field(
        description="Where the order came from: as checkout was told, else the channel of "
        "the visitor's latest touch within the attribution lookback; null when unknown."
    )
    def channel(self, root: Order) -> m.SalesChannel | None:
        return root.row.channel

    @strawberry.field(description="utm_source of the order (orders.read; null for others).")
    def utm_source(self, root: Order, info: Info) -> str | None:
        return root.row.utm_source if info.context.viewer.has(ORDERS_READ, ORDERS_MANAGE) else None

    @strawberry.field(description="utm_medium of the order (orders.read; null for others).")
    def utm_medium(self, root: Order, info: Info) -> str | None:
        return root.row.utm_medium if info.context.viewer.has(ORDERS_READ, ORDERS_MANAGE) else None

    @strawberry.field(description="utm_campaign of the order (orders.read; null for others).")
    def utm_campaign(self, root: Order, info: Info) -> str | None:
        return (
            root.row.utm_campaign if info.context.viewer.has(ORDERS_READ, ORDERS_MANAGE) else None
        )


# --- channelAttribution -----------------------------------------------------------------------


@strawberry.input(description="A period of shop days (UTC+8), both included, and a model.")
class ChannelAttributionInput:
    from_: date = strawberry.field(name="from", description="The first day.")
    to: date = strawberry.field(description="The last day (included); at most 366 days.")
    model: attribution.AttributionModel = attribution.AttributionModel.LAST_TOUCH


@strawberry.type(
    description="One channel's part of a period. `orders`, `revenue` and `newCustomers` are "
    "credited shares (fractions under LINEAR); the row whose channel is null holds the "
    "orders no touch explains."
)
class ChannelAttributionRow:
    channel: m.SalesChannel | None = strawberry.field(
        description="Null: orders without any touch (direct or unknown)."
    )
    label: str
    private_domain: bool = strawberry.field(description="MINI_PROGRAM or COMMUNITY_GROUP.")
    orders: float = strawberry.field(description="Paid orders credited.")
    revenue: MoneyTotal = strawberry.field(
        description="Their GMV credited (rounded half up to a minor unit)."
    )
    cost: MoneyTotal = strawberry.field(description="Marketing cost of the period's days.")
    roi: float | None = strawberry.field(
        description="(revenue - cost) / cost; null without a cost."
    )
    new_customers: float = strawberry.field(
        description="Customers whose first purchase is in the period, credited."
    )
    cac: MoneyTotal | None = strawberry.field(
        description="cost / newCustomers; null without a new customer."
    )

    @classmethod
    def of(cls, figures: attribution.ChannelFigures, currency: str) -> ChannelAttributionRow:
        cac = figures.cac
        return cls(
            channel=figures.channel,
            label=figures.label,
            private_domain=figures.private_domain,
            orders=figures.orders,
            revenue=money_total(_minor(figures.revenue), currency),
            cost=money_total(figures.cost, currency),
            roi=figures.roi,
            new_customers=figures.new_customers,
            cac=money_total(_minor(cac), currency) if cac is not None else None,
        )


@strawberry.type(description="The whole period, whatever the channels.")
class ChannelAttributionTotals:
    orders: int = strawberry.field(description="Paid orders placed in the period.")
    revenue: MoneyTotal = strawberry.field(description="Their GMV.")
    cost: MoneyTotal = strawberry.field(description="Every channel's marketing cost.")
    roi: float | None
    new_customers: int
    cac: MoneyTotal | None
    private_domain_revenue_share: float | None = strawberry.field(
        description="The share of the revenue credited to private-domain channels."
    )


@strawberry.type(description="Paid orders, revenue, cost, ROI and CAC per channel.")
class ChannelAttributionReport:
    from_: date = strawberry.field(name="from")
    to: date
    model: attribution.AttributionModel
    lookback_days: int = strawberry.field(
        description="How many days before an order its touches count."
    )
    channels: list[ChannelAttributionRow] = strawberry.field(
        description="Every channel in the enum's order, then the unattributed row."
    )
    totals: ChannelAttributionTotals

    @classmethod
    def of(cls, report: attribution.AttributionReport) -> ChannelAttributionReport:
        currency, totals = report.currency, report.totals
        cac = totals.cac
        private = sum(c.revenue for c in report.channels if c.private_domain)
        return cls(
            from_=report.period.first,
            to=report.period.last,
            model=report.model,
            lookback_days=report.lookback_days,
            channels=[ChannelAttributionRow.of(c, currency) for c in report.channels],
            totals=ChannelAttributionTotals(
                orders=int(totals.orders),
                revenue=money_total(int(totals.revenue), currency),
                cost=money_total(totals.cost, currency),
                roi=totals.roi,
                new_customers=int(totals.new_customers),
                cac=money_total(_minor(cac), currency) if cac is not None else None,
                private_domain_revenue_share=private / totals.revenue if totals.revenue else None,
            ),
        )


ChannelAttributionResult = Annotated[
    ChannelAttributionReport | ValidationError, strawberry.union("ChannelAttributionResult")
]


# --- promotionAttribution ---------------------------------------------------------------------


@strawberry.input(description="A period of shop days (UTC+8), both included.")
class PromotionAttributionInput:
    from_: date = strawberry.field(name="from", description="The first day.")
    to: date = strawberry.field(description="The last day (included); at most 366 days.")


@strawberry.type(description="One promotion (a plugin's source and rule) over a period.")
class PromotionAttributionRow:
    source: str = strawberry.field(description="The plugin that gave the discount.")
    rule: str
    label: str
    orders: int = strawberry.field(description="Paid orders that got a discount from it.")
    revenue: MoneyTotal = strawberry.field(description="Those orders' GMV.")
    discount: MoneyTotal = strawberry.field(description="The discount it gave them.")
    revenue_per_discount: float | None = strawberry.field(
        description="revenue / discount; null without a discount."
    )


@strawberry.type(description="What each promotion's discounts went with.")
class PromotionAttributionReport:
    from_: date = strawberry.field(name="from")
    to: date
    promotions: list[PromotionAttributionRow] = strawberry.field(
        description="Most discount given first."
    )
    orders: int = strawberry.field(description="Every paid order of the period.")
    revenue: MoneyTotal
    promoted_orders: int = strawberry.field(description="Those with any promotion's discount.")
    promoted_revenue: MoneyTotal
    discount: MoneyTotal = strawberry.field(description="Every promotion's discount.")

    @classmethod
    def of(cls, report: attribution.PromotionReport) -> PromotionAttributionReport:
        currency = report.currency
        return cls(
            from_=report.period.first,
            to=report.period.last,
            promotions=[
                PromotionAttributionRow(
                    source=p.source,
                    rule=p.rule,
                    label=p.label,
                    orders=p.orders,
                    revenue=money_total(p.revenue, currency),
                    discount=money_total(p.discount, currency),
                    revenue_per_discount=p.revenue_per_discount,
                )
                for p in report.promotions
            ],
            orders=report.orders,
            revenue=money_total(report.revenue, currency),
            promoted_orders=report.promoted_orders,
            promoted_revenue=money_total(report.promoted_revenue, currency),
            discount=money_total(report.discount, currency),
        )


PromotionAttributionResult = Annotated[
    PromotionAttributionReport | ValidationError, strawberry.union("PromotionAttributionResult")
]


@strawberry.type
class ChannelQueries:
    @strawberry.field(
        description="Paid orders, revenue, marketing cost, ROI, new customers and CAC per "
        "channel over a period, the orders credited to their touches by `model` "
        "(insights.read).",
        permission_classes=[CanRead],
    )
    async def channel_attribution(
        self, info: Info, input: ChannelAttributionInput
    ) -> ChannelAttributionResult:
        settings = info.context.settings
        try:
            in_period = attribution.period(input.from_, input.to)
        except ValidationFailed as exc:
            return validation_error(exc)
        report = await info.context.db.run(
            attribution.channel_attribution,
            in_period,
            attribution.AttributionModel(input.model.value),
            currency=settings.currency,
            lookback=lookback_of(settings),
        )
        return ChannelAttributionReport.of(report)

    @strawberry.field(
        description="Per promotion found in the period's paid orders' adjustments (order and "
        "line): orders, their revenue, the discount given and revenue per unit of discount "
        "(insights.read).",
        permission_classes=[CanRead],
    )
    async def promotion_attribution(
        self, info: Info, input: PromotionAttributionInput
    ) -> PromotionAttributionResult:
        try:
            in_period = attribution.period(input.from_, input.to)
        except ValidationFailed as exc:
            return validation_error(exc)
        report = await info.context.db.run(
            attribution.promotion_attribution, in_period, currency=info.context.settings.currency
        )
        return PromotionAttributionReport.of(report)


# --- importMarketingCosts ---------------------------------------------------------------------


@strawberry.input(description="What was spent on one channel (and campaign) on one shop day.")
class MarketingCostRowInput:
    day: date
    channel: str = strawberry.field(description="A SalesChannel's name, e.g. PAID.")
    campaign: str = strawberry.field(default="", description="'' for none; at most 100.")
    amount: str = strawberry.field(
        description='A decimal amount of the shop\'s currency, e.g. "1280.50"; zero or more.'
    )


@strawberry.input(
    description="Exactly one of rows and csv (header day,channel,campaign,amount); at most "
    "10,000 rows, or 1 MiB of CSV."
)
class ImportMarketingCostsInput:
    rows: list[MarketingCostRowInput] | None = None
    csv: str | None = None


@strawberry.type(description="What the import wrote.")
class ImportMarketingCostsSuccess:
    rows: int = strawberry.field(description="Rows imported.")
    replaced: int = strawberry.field(
        description="Of those, the rows whose day, channel and campaign were there before "
        "(their amount replaced)."
    )
    total: MoneyTotal = strawberry.field(description="The imported amounts added up.")
    first_day: date
    last_day: date


ImportMarketingCostsResult = Annotated[
    ImportMarketingCostsSuccess | InvalidImportRow | ValidationError,
    strawberry.union("ImportMarketingCostsResult"),
]


def _imported(summary: marketing_costs.ImportSummary) -> ImportMarketingCostsSuccess:
    return ImportMarketingCostsSuccess(
        rows=summary.rows,
        replaced=summary.replaced,
        total=money_total(summary.total, summary.currency),
        first_day=summary.first_day,
        last_day=summary.last_day,
    )


@strawberry.type
class ChannelMutations:
    @strawberry.mutation(
        description="Import marketing costs (insights.manage): all rows or none; a day, "
        "channel and campaign imported again has its amount replaced.",
        permission_classes=[HasPermission(INSIGHTS_MANAGE)],
    )
    async def import_marketing_costs(
        self, info: Info, input: ImportMarketingCostsInput
    ) -> ImportMarketingCostsResult:
        currency = info.context.settings.currency

        async def work(session: AsyncSession) -> marketing_costs.ImportSummary:
            rows = (
                [
                    marketing_costs.CostRow(
                        day=row.day, channel=row.channel, campaign=row.campaign, amount=row.amount
                    )
                    for row in input.rows
                ]
                if input.rows is not None
                else None
            )
            return await marketing_costs.import_costs(
                session, currency, rows=rows, csv_text=input.csv
            )

        return await mutate(info, work, _imported)


QUERIES: list[type[Any]] = [ChannelQueries]
MUTATIONS: list[type[Any]] = [ChannelMutations]
TYPES: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {"Order": [OrderChannel]}
