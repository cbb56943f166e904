"""The promotions plugin's reports over GraphQL: ``promotionReport`` and ``campaignReport``
(promotions.read or promotions.manage). The figures and their SQL are in service/report.py."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry

from plugins.promotions import MANAGE, READ
from plugins.promotions.service import report
from plugins.promotions.service.settings import promotions_settings
from server.models import utcnow
from server.plugin import (
    HasPermission,
    Info,
    Money,
    NotFoundError,
    ValidationError,
    ValidationFailed,
    money,
    parse_node_id,
)
from server.services.forecasts import shop_day

_READERS = HasPermission(READ, MANAGE)


@strawberry.input(
    description="A promotion and a period of shop days (UTC+8), both included, at most 366 "
    "days. Left out, `from` is the day the promotion starts and `to` the day it ends (today "
    "at the latest)."
)
class PromotionReportInput:
    promotion_id: strawberry.ID
    from_: date | None = strawberry.field(name="from", default=None)
    to: date | None = None


@strawberry.input(
    description="A campaign and a period of shop days (UTC+8), both included, at most 366 "
    "days. Left out, `from` is the day the campaign starts and `to` the day it ends (today at "
    "the latest)."
)
class CampaignReportInput:
    campaign_id: strawberry.ID
    from_: date | None = strawberry.field(name="from", default=None)
    to: date | None = None


@strawberry.type(
    description="What a promotion (or a campaign's promotions together) did over a period: its "
    "orders are those placed in the period, not cancelled, that it applied to "
    '(docs/plugins/promotions.md, "Reports").'
)
class PromotionReport:
    from_: date = strawberry.field(name="from")
    to: date
    baseline_from: date = strawberry.field(
        description="The first day of the period the AOV is compared with."
    )
    baseline_to: date
    orders: int = strawberry.field(description="Orders it applied to.")
    gmv: Money = strawberry.field(description="Σ those orders' totals.")
    discount_cost: Money = strawberry.field(
        description="Σ the discount it gave them (product, order and shipping)."
    )
    aov: Money | None = strawberry.field(
        description="gmv / orders, rounded half up; null without an order."
    )
    baseline_orders: int = strawberry.field(
        description="Every order not cancelled placed in the baseline period."
    )
    baseline_aov: Money | None = strawberry.field(
        description="Their average total, rounded half up; null without an order."
    )
    aov_change: float | None = strawberry.field(description="aov / baselineAov − 1.")
    coupons_issued: int = strawberry.field(description="Its coupon codes issued in the period.")
    coupons_redeemed: int = strawberry.field(
        description="Of those, the codes an order not cancelled has used."
    )
    coupon_redemption_rate: float | None = strawberry.field(
        description="couponsRedeemed / couponsIssued; null when none was issued."
    )
    new_customers: int = strawberry.field(
        description="Customers whose first purchase ever is one of its orders."
    )
    gross_margin: Money = strawberry.field(
        description="Σ lines (unit price before its discount − cost) × quantity, over the "
        "lines whose cost is known."
    )
    cost_coverage: float | None = strawberry.field(
        description="The share of the lines' revenue whose cost is known."
    )
    incremental_margin: Money = strawberry.field(description="grossMargin − discountCost.")
    roi: float | None = strawberry.field(
        description="incrementalMargin / discountCost; null without a discount."
    )

    @classmethod
    def of(cls, found: report.Report) -> PromotionReport:
        currency = found.currency

        def amount(minor: int | None) -> Money | None:
            return None if minor is None else money(minor, currency)

        return cls(
            from_=found.period.first,
            to=found.period.last,
            baseline_from=found.baseline.first,
            baseline_to=found.baseline.last,
            orders=found.orders,
            gmv=money(found.gmv, currency),
            discount_cost=money(found.discount, currency),
            aov=amount(found.aov),
            baseline_orders=found.baseline_orders,
            baseline_aov=amount(found.baseline_aov),
            aov_change=found.aov_change,
            coupons_issued=found.coupons_issued,
            coupons_redeemed=found.coupons_redeemed,
            coupon_redemption_rate=found.coupon_redemption_rate,
            new_customers=found.new_customers,
            gross_margin=money(found.gross_margin, currency),
            cost_coverage=found.cost_coverage,
            incremental_margin=money(found.incremental_margin, currency),
            roi=found.roi,
        )


PromotionReportResult = Annotated[
    PromotionReport | NotFoundError | ValidationError,
    strawberry.union("PromotionReportResult"),
]


async def _answer(
    info: Info,
    fn: Any,
    pk: int | None,
    kind: str,
    field: str,
    first: date | None,
    last: date | None,
) -> PromotionReport | NotFoundError | ValidationError:
    missing = NotFoundError(code="NOT_FOUND", message=f"no such {kind}", field=field)
    if pk is None:
        return missing
    config = promotions_settings(info.context.plugins)
    try:
        found = await info.context.db.run(
            fn,
            pk,
            first,
            last,
            baseline_days=config.report_baseline_days,
            today=shop_day(utcnow()),
        )
    except ValidationFailed as exc:
        return ValidationError(code=exc.code, message=exc.message, field=exc.field)
    return missing if found is None else PromotionReport.of(found)


@strawberry.type
class ReportQueries:
    @strawberry.field(
        description="A promotion's orders, GMV, discount cost, AOV against the period before, "
        "coupon redemption, new customers, incremental margin and ROI over a period "
        "(promotions.read or promotions.manage).",
        permission_classes=[_READERS],
    )
    async def promotion_report(
        self, info: Info, input: PromotionReportInput
    ) -> PromotionReportResult:
        pk = parse_node_id(input.promotion_id, "Promotion")
        return await _answer(
            info, report.promotion_report, pk, "promotion", "promotionId", input.from_, input.to
        )

    @strawberry.field(
        description="The same figures for a campaign's promotions taken together: an order "
        "counts once, its discounts from each of them summed (promotions.read or "
        "promotions.manage).",
        permission_classes=[_READERS],
    )
    async def campaign_report(
        self, info: Info, input: CampaignReportInput
    ) -> PromotionReportResult:
        pk = parse_node_id(input.campaign_id, "Campaign")
        return await _answer(
            info, report.campaign_report, pk, "campaign", "campaignId", input.from_, input.to
        )


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [ReportQueries]
MUTATIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
