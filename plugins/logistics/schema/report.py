"""The logistics plugin over GraphQL: the delivery report per carrier and lane (staff)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import strawberry

from plugins.logistics import MANAGE, READ
from plugins.logistics.service import report
from server.models import utcnow
from server.plugin import HasPermission, Info, ValidationError, ValidationFailed
from server.services.attribution import period
from server.services.forecasts import shop_day

_READERS = HasPermission(READ, MANAGE)
DEFAULT_DAYS = 30


@strawberry.type(description="Shipments of one carrier on one lane delivered in the period.")
class DeliveryLane:
    carrier: str
    from_region: str = strawberry.field(
        description="The origin region the plugin tracked (else the warehouse's province)."
    )
    to_region: str = strawberry.field(
        description="The destination region the plugin tracked (empty when not tracked)."
    )
    delivered: int
    with_promise: int = strawberry.field(description="Of them, those whose order had a promise.")
    on_time: int = strawberry.field(description="Delivered on or before the promised day.")
    on_time_rate: float | None = strawberry.field(description="onTime / withPromise.")
    average_transit_hours: float | None = strawberry.field(
        description="Mean hours from leaving the warehouse to delivery."
    )


@strawberry.type(description="Deliveries per carrier and lane over a period of shop days.")
class DeliveryReport:
    from_: date = strawberry.field(name="from")
    to: date
    lanes: list[DeliveryLane]


@strawberry.input
class DeliveryReportInput:
    from_: date | None = strawberry.field(
        default=None, name="from", description=f"Default: {DEFAULT_DAYS} days before to."
    )
    to: date | None = strawberry.field(default=None, description="Default: yesterday.")


DeliveryReportResult = Annotated[
    DeliveryReport | ValidationError, strawberry.union("DeliveryReportResult")
]


@strawberry.type
class LogisticsReportQueries:
    @strawberry.field(
        description="Shipments delivered per carrier and lane, on time against their order's "
        "promise, and mean transit hours (logistics.read or logistics.manage; at most a "
        "year).",
        permission_classes=[_READERS],
    )
    async def logistics_delivery_report(
        self, info: Info, input: DeliveryReportInput | None = None
    ) -> DeliveryReportResult:
        last = (input.to if input else None) or shop_day(utcnow()) - timedelta(days=1)
        first = (input.from_ if input else None) or last - timedelta(days=DEFAULT_DAYS - 1)
        try:
            span = period(first, last)
        except ValidationFailed as exc:
            return ValidationError(code=exc.code, message=exc.message, field=exc.field)
        lanes = await info.context.db.run(report.delivery_report, span.first, span.last)
        return DeliveryReport(
            from_=span.first,
            to=span.last,
            lanes=[
                DeliveryLane(
                    carrier=lane.carrier,
                    from_region=lane.from_region,
                    to_region=lane.to_region,
                    delivered=lane.delivered,
                    with_promise=lane.with_promise,
                    on_time=lane.on_time,
                    on_time_rate=lane.on_time_rate,
                    average_transit_hours=lane.average_transit_hours,
                )
                for lane in lanes
            ],
        )


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [LogisticsReportQueries]
MUTATIONS: list[type[Any]] = []
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
