"""The logistics plugin over GraphQL: tracking.

``Shipment.tracking``: the carrier's timeline (raw and normalised statuses), the revised ETA
and the probability of missing the promise, seen by whoever sees the shipment (its customer,
shipments.read); ``Shipment.delay`` and ``Order.shipmentDelays``: late or at-risk parcels and
their compensation; ``shipmentDelays``: every delay (logistics.read or logistics.manage);
``recordCarrierEvent``: staff enter a carrier's event by hand, the webhook's path
(logistics.manage, audited).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay

from plugins.logistics import MANAGE, READ
from plugins.logistics.models import (
    CarrierEvent as CarrierEventRow,
)
from plugins.logistics.models import (
    Delay as DelayRow,
)
from plugins.logistics.models import (
    DelayKind,
    EventSource,
    TrackedShipment,
)
from plugins.logistics.service import tracking
from plugins.logistics.service.settings import logistics_settings
from server.plugin import (
    Connection,
    HasPermission,
    Info,
    ModelsByFieldLoader,
    NotFound,
    NotFoundError,
    Page,
    Paged,
    SortKey,
    ValidationError,
    connection,
    mutate,
)

_READERS = HasPermission(READ, MANAGE)
_MANAGERS = HasPermission(MANAGE)

strawberry.enum(
    DelayKind,
    name="ShipmentDelayKind",
    description="AT_RISK: predicted to miss its promise; LATE: past it and not delivered.",
)
strawberry.enum(
    EventSource,
    name="CarrierEventSource",
    description="WEBHOOK: pushed by the carrier (signed); STAFF: recordCarrierEvent.",
)


def _gid(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


class TrackedByShipmentLoader(ModelsByFieldLoader):
    model = TrackedShipment
    field = "shipment_id"


class CarrierEventsByShipmentLoader(ModelsByFieldLoader):
    model = CarrierEventRow
    field = "shipment_id"
    order_by = ("occurred_at", "id")


class DelaysByShipmentLoader(ModelsByFieldLoader):
    model = DelayRow
    field = "shipment_id"


class DelaysByOrderLoader(ModelsByFieldLoader):
    model = DelayRow
    field = "order_id"
    order_by = ("shipment_id",)


@strawberry.type(description="A carrier's tracking event as it sent it, and what it means.")
class CarrierTrackingEvent:
    event_id: str = strawberry.field(
        description="The carrier's id of the event (unique per carrier)."
    )
    raw_status: str = strawberry.field(description="The carrier's own code, e.g. SF's 80.")
    status: str = strawberry.field(
        description="The shipment status it means (CREATED, IN_TRANSIT, OUT_FOR_DELIVERY, "
        "DELIVERED, EXCEPTION, RETURNED), UNKNOWN for a code no table knows."
    )
    occurred_at: datetime
    location: str
    description: str
    source: EventSource
    applied: bool = strawberry.field(
        description="It moved the shipment (false: older than an event already applied, a "
        "step back, or an unknown code; it only joined the timeline)."
    )


def _event(row: CarrierEventRow) -> CarrierTrackingEvent:
    return CarrierTrackingEvent(
        event_id=row.event_id,
        raw_status=row.raw_status,
        status=row.status,
        occurred_at=row.occurred_at,
        location=row.location,
        description=row.description,
        source=row.source,
        applied=row.applied,
    )


@strawberry.type(description="What the carrier says of a shipment and when it should arrive.")
class ShipmentTracking:
    eta: date | None = strawberry.field(
        description="The day it should arrive (shop time), revised with every scan."
    )
    late_probability: float | None = strawberry.field(
        description="The probability it arrives after its promise, from the carrier's "
        "transit times on the lane (null without a promise or transit times)."
    )
    last_event_at: datetime | None
    on_time: bool | None = strawberry.field(
        description="Once delivered: whether it arrived by the promise."
    )
    transit_hours: float | None = strawberry.field(
        description="Once delivered: hours from leaving to arriving."
    )
    from_region: str
    to_region: str
    _shipment_id: strawberry.Private[int]

    @strawberry.field(description="The carrier's events, oldest first.")
    async def events(self, info: Info) -> list[CarrierTrackingEvent]:
        rows = await info.context.loaders.get(CarrierEventsByShipmentLoader).load(self._shipment_id)
        return [_event(row) for row in rows]


@strawberry.type(description="A parcel late or predicted to miss its promise (超时).")
class ShipmentDelay:
    kind: DelayKind
    promised_by: date = strawberry.field(description="The promise's last day.")
    late_probability: float | None
    detected_at: datetime
    became_late_at: datetime | None
    compensation_ref: str | None = strawberry.field(
        description="What the customer was given for it (a coupon code), once."
    )
    compensated_at: datetime | None = strawberry.field(
        description="When compensation was asked for (also when no plugin gave anything)."
    )
    resolved_at: datetime | None = strawberry.field(description="When the parcel arrived.")
    _shipment_id: strawberry.Private[int]
    _order_id: strawberry.Private[int]

    @strawberry.field(description="The Shipment's id.")
    def shipment_id(self) -> strawberry.ID:
        return _gid("Shipment", self._shipment_id)

    @strawberry.field(description="The Order's id.")
    def order_id(self) -> strawberry.ID:
        return _gid("Order", self._order_id)


def _delay(row: DelayRow) -> ShipmentDelay:
    return ShipmentDelay(
        kind=row.kind,
        promised_by=row.promised_by,
        late_probability=row.late_probability,
        detected_at=row.detected_at,
        became_late_at=row.became_late_at,
        compensation_ref=row.compensation_ref,
        compensated_at=row.compensated_at,
        resolved_at=row.resolved_at,
        _shipment_id=row.shipment_id,
        _order_id=row.order_id,
    )


def _tracking(row: TrackedShipment) -> ShipmentTracking:
    return ShipmentTracking(
        eta=row.eta,
        late_probability=row.late_probability,
        last_event_at=row.last_event_at,
        on_time=row.on_time,
        transit_hours=row.transit_hours,
        from_region=row.from_region,
        to_region=row.to_region,
        _shipment_id=row.shipment_id,
    )


@strawberry.type
class ShipmentLogistics:
    """Fields the logistics plugin adds to the core ``Shipment`` type (seen by whoever sees
    the shipment)."""

    @strawberry.field(
        description="The carrier's timeline, ETA and probability of missing the promise "
        "(logistics plugin); null for a carrier outside the plugin's network."
    )
    async def tracking(self, info: Info, root: Any) -> ShipmentTracking | None:
        rows = await info.context.loaders.get(TrackedByShipmentLoader).load(int(root.id))
        return _tracking(rows[0]) if rows else None

    @strawberry.field(description="Its delay, when it is late or at risk (logistics plugin).")
    async def delay(self, info: Info, root: Any) -> ShipmentDelay | None:
        rows = await info.context.loaders.get(DelaysByShipmentLoader).load(int(root.id))
        return _delay(rows[0]) if rows else None


def _sees_shipments(info: Info, order: Any) -> bool:
    viewer = info.context.viewer
    owner = order.customer_id is not None and order.customer_id == viewer.customer_id
    return owner or viewer.has("shipments.read", "shipments.manage", READ, MANAGE)


@strawberry.type
class OrderLogistics:
    """Fields the logistics plugin adds to the core ``Order`` type."""

    @strawberry.field(
        description="Its parcels that are late or at risk, and their compensation (logistics "
        "plugin); seen by the order's customer and shipments.read."
    )
    async def shipment_delays(self, info: Info, root: Any) -> list[ShipmentDelay]:
        if not _sees_shipments(info, root.row):
            return []
        rows = await info.context.loaders.get(DelaysByOrderLoader).load(int(root.id))
        return [_delay(row) for row in rows]


@strawberry.input(description="Which delays: a kind, open or resolved ones.")
class ShipmentDelayFilter:
    kind: DelayKind | None = None
    resolved: bool | None = strawberry.field(
        default=None, description="true: arrived since; false: still on the way."
    )
    compensated: bool | None = None


@strawberry.type
class TrackingQueries:
    @strawberry.field(
        description="Shipments late or at risk, newest first (logistics.read or logistics.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def shipment_delays(
        self, info: Info, page: Page, filter: ShipmentDelayFilter | None = None
    ) -> Connection[ShipmentDelay]:
        query = select(DelayRow)
        if filter is not None:
            if filter.kind is not None:
                query = query.where(col(DelayRow.kind) == filter.kind)
            if filter.resolved is not None:
                resolved = col(DelayRow.resolved_at)
                query = query.where(
                    resolved.is_not(None) if filter.resolved else resolved.is_(None)
                )
            if filter.compensated is not None:
                done = col(DelayRow.compensated_at)
                query = query.where(done.is_not(None) if filter.compensated else done.is_(None))
        return await connection(
            info,
            query,
            page,
            sort=[SortKey(DelayRow.detected_at, "detected_at")],
            descending=True,
            to_node=_delay,
        )


@strawberry.input(description="One carrier event entered by hand: what the webhook takes.")
class RecordCarrierEventInput:
    carrier_code: str = strawberry.field(description="The carrier's code (at most 32).")
    event_id: str = strawberry.field(
        description="Unique per carrier (at most 100): sending it again changes nothing."
    )
    tracking_number: str = strawberry.field(description="At most 120 characters.")
    status: str = strawberry.field(
        description="The carrier's own code or word (at most 64), e.g. 80 or DELIVERED."
    )
    occurred_at: datetime
    location: str = strawberry.field(default="", description="At most 200 characters.")
    description: str = strawberry.field(default="", description="At most 500 characters.")


@strawberry.type
class RecordCarrierEventSuccess:
    duplicate: bool = strawberry.field(description="The event was recorded before: nothing done.")
    applied: bool = strawberry.field(description="It moved the shipment.")
    status: str = strawberry.field(description="The status it means (UNKNOWN: no table knows it).")
    _shipment_id: strawberry.Private[int]

    @strawberry.field(description="The Shipment's id.")
    def shipment_id(self) -> strawberry.ID:
        return _gid("Shipment", self._shipment_id)

    @strawberry.field(description="The shipment's tracking as it now is.")
    async def tracking(self, info: Info) -> ShipmentTracking | None:
        rows = await info.context.loaders.get(TrackedByShipmentLoader).load(self._shipment_id)
        return _tracking(rows[0]) if rows else None


RecordCarrierEventResult = Annotated[
    RecordCarrierEventSuccess | NotFoundError | ValidationError,
    strawberry.union("RecordCarrierEventResult"),
]


@strawberry.type
class TrackingMutations:
    @strawberry.mutation(
        description="Record a carrier's tracking event by hand, as if its webhook sent it: "
        "stored once per event id, applied in time order, the ETA revised "
        "(logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def record_carrier_event(
        self, info: Info, input: RecordCarrierEventInput
    ) -> RecordCarrierEventResult:
        config = logistics_settings(info.context.plugins)
        plugins = info.context.plugins
        actor = info.context.viewer.subject

        async def work(session: AsyncSession) -> RecordCarrierEventSuccess:
            event = tracking.staff_event(
                input.event_id,
                input.tracking_number,
                input.status,
                input.occurred_at,
                input.location,
                input.description,
            )
            carrier = await tracking.carrier_by_code(session, input.carrier_code[:32])
            if carrier is None or carrier.id is None:
                raise NotFound("carrier", input.carrier_code[:32], field="carrierCode")
            done = await tracking.ingest(
                session, plugins, config, carrier, [event], source=EventSource.STAFF, actor=actor
            )
            if done.unknown_shipment:
                raise NotFound("shipment", event.tracking_number, field="trackingNumber")
            row = await session.scalar(
                select(CarrierEventRow).where(
                    col(CarrierEventRow.carrier_id) == carrier.id,
                    col(CarrierEventRow.event_id) == event.event_id,
                )
            )
            assert row is not None
            return RecordCarrierEventSuccess(
                duplicate=done.duplicates > 0,
                applied=row.applied,
                status=row.status,
                _shipment_id=row.shipment_id,
            )

        return await mutate(info, work, lambda result: result)


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [TrackingQueries]
MUTATIONS: list[type[Any]] = [TrackingMutations]
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {
    "Shipment": [ShipmentLogistics],
    "Order": [OrderLogistics],
}
