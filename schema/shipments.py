"""Shipments and their tracking timeline over GraphQL.

shipments.manage creates shipments and records tracking events; shipments.read sees every
shipment, a customer the shipments of their own orders (another customer's shipment answers
exactly like a missing one).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.context import Info
from schema.errors import Error, InvalidTransition, NotFoundError, ValidationError
from schema.global_ids import parse_node_id, parse_pk, require_node_id
from schema.loaders import (
    OrderByIdLoader,
    OrderLineByIdLoader,
    ShipmentByIdLoader,
    ShipmentLinesByShipmentIdLoader,
    TrackingEventsByShipmentIdLoader,
    WarehouseByIdLoader,
)
from schema.mutations import run_mutation
from schema.node import ModelNode
from schema.orders import Order, OrderLine
from server import models as m
from server.services import orders as order_service
from server.services import shipments as service

if TYPE_CHECKING:
    from schema.inventory import Warehouse

ShipmentStatus = strawberry.enum(m.ShipmentStatus, name="ShipmentStatus")


@strawberry.type(description="One scan or status update on a shipment's way.")
class TrackingEvent:
    status: ShipmentStatus
    description: str
    location: str
    occurred_at: datetime


@strawberry.type(description="Units of one order line in a shipment.")
class ShipmentLine:
    quantity: int
    _model: strawberry.Private[m.ShipmentLine]

    @strawberry.field(description="The order line; null without the right to see the order.")
    async def order_line(self, info: Info) -> OrderLine | None:
        row = await info.context.loaders.get(OrderLineByIdLoader).load(self._model.order_line_id)
        if row is None:
            return None
        order = await info.context.loaders.get(OrderByIdLoader).load(row.order_id)
        # Like OrderLine by id: a line is visible exactly when its order is.
        if order is None or not order_service.can_view(order, info.context.viewer):
            return None
        return OrderLine.from_model(row, order.currency)


@strawberry.type(description="A parcel on its way to the customer, with its tracking timeline.")
class Shipment(ModelNode):
    loader = ShipmentByIdLoader

    id: relay.NodeID[int]
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    promised_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    _model: strawberry.Private[m.Shipment]

    @classmethod
    def from_model(cls, model: m.Shipment) -> Self:
        return cls(
            id=model.id,  # type: ignore[arg-type]
            carrier=model.carrier,
            tracking_number=model.tracking_number,
            status=model.status,
            promised_at=model.promised_at,
            shipped_at=model.shipped_at,
            delivered_at=model.delivered_at,
            created_at=model.created_at,
            _model=model,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        # A shipment is visible to its order's customer and with shipments.read.
        ids = [parse_pk(i) for i in node_ids]
        rows = await info.context.loaders.get(ShipmentByIdLoader).load_many(
            [i for i in ids if i is not None]
        )
        by_id = {row.id: row for row in rows if row is not None}
        order_rows = await info.context.loaders.get(OrderByIdLoader).load_many(
            [row.order_id for row in by_id.values()]
        )
        visible = {
            o.id for o in order_rows if o is not None and service.can_view(o, info.context.viewer)
        }
        out: list[Self | None] = []
        for i in ids:
            row = by_id.get(i) if i is not None else None
            out.append(cls.from_model(row) if row is not None and row.order_id in visible else None)
        return out

    @strawberry.field(description="The order; null without the right to see it (orders.read).")
    async def order(self, info: Info) -> Order | None:
        row = await info.context.loaders.get(OrderByIdLoader).load(self._model.order_id)
        if row is None or not order_service.can_view(row, info.context.viewer):
            return None
        return Order.from_model(row)

    @strawberry.field
    async def warehouse(
        self, info: Info
    ) -> Annotated[Warehouse, strawberry.lazy("schema.inventory")] | None:
        from schema.inventory import Warehouse

        row = await info.context.loaders.get(WarehouseByIdLoader).load(self._model.warehouse_id)
        return Warehouse.from_model(row) if row is not None else None

    @strawberry.field
    async def lines(self, info: Info) -> list[ShipmentLine]:
        rows = await info.context.loaders.get(ShipmentLinesByShipmentIdLoader).load(self._model.id)
        return [ShipmentLine(quantity=row.quantity, _model=row) for row in rows]

    @strawberry.field(description="The tracking timeline, oldest first.")
    async def events(self, info: Info) -> list[TrackingEvent]:
        rows = await info.context.loaders.get(TrackingEventsByShipmentIdLoader).load(self._model.id)
        return [
            TrackingEvent(
                status=row.status,
                description=row.description,
                location=row.location,
                occurred_at=row.occurred_at,
            )
            for row in rows
        ]


@strawberry.type
class ShipmentQueries:
    @strawberry.field(description="A shipment by id; null if it is not there or not yours.")
    async def shipment(self, info: Info, id: strawberry.ID) -> Shipment | None:
        pk = parse_node_id(id, "Shipment")
        if pk is None:
            return None
        nodes = await Shipment.resolve_nodes(info=info, node_ids=[str(pk)])
        return nodes[0]


@strawberry.input
class ShipmentLineInput:
    order_line_id: strawberry.ID
    quantity: int


@strawberry.input
class CreateShipmentInput:
    order_id: strawberry.ID
    warehouse_id: strawberry.ID
    carrier: str = strawberry.field(description="e.g. 顺丰速运 (SF Express), 京东物流.")
    tracking_number: str
    lines: list[ShipmentLineInput] | None = strawberry.field(
        default=None, description="Defaults to every unit not yet shipped."
    )
    promised_at: datetime | None = None


@strawberry.type
class CreateShipmentSuccess:
    shipment: Shipment
    order: Order


@strawberry.input
class RecordTrackingEventInput:
    shipment_id: strawberry.ID
    status: ShipmentStatus
    description: str = ""
    location: str = ""
    occurred_at: datetime | None = strawberry.field(default=None, description="Defaults to now.")


@strawberry.type
class RecordTrackingEventSuccess:
    shipment: Shipment
    order: Order


ShipmentErrors = NotFoundError | ValidationError | InvalidTransition
CreateShipmentResult = Annotated[
    CreateShipmentSuccess | ShipmentErrors, strawberry.union("CreateShipmentResult")
]
RecordTrackingEventResult = Annotated[
    RecordTrackingEventSuccess | ShipmentErrors, strawberry.union("RecordTrackingEventResult")
]


async def _with_order(session: AsyncSession, shipment: m.Shipment) -> tuple[m.Shipment, m.Order]:
    order = await order_service.load(session, shipment.order_id)
    assert order is not None
    return shipment, order


@strawberry.type
class ShipmentMutations:
    @strawberry.mutation(
        description="shipments.manage: ship units of a PAID or FULFILLING order (it becomes "
        "FULFILLING)."
    )
    async def create_shipment(self, info: Info, input: CreateShipmentInput) -> CreateShipmentResult:
        viewer, plugins = info.context.viewer, info.context.plugins

        async def work(session: AsyncSession) -> tuple[m.Shipment, m.Order]:
            lines = None
            if input.lines is not None:
                lines = [
                    service.LineRequest(
                        order_line_id=require_node_id(
                            line.order_line_id, "OrderLine", f"lines.{i}.orderLineId"
                        ),
                        quantity=line.quantity,
                    )
                    for i, line in enumerate(input.lines)
                ]
            shipment = await service.create_shipment(
                session,
                plugins,
                viewer,
                service.CreateShipmentInput(
                    order_id=require_node_id(input.order_id, "Order", "orderId"),
                    warehouse_id=require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                    carrier=input.carrier,
                    tracking_number=input.tracking_number,
                    lines=lines,
                    promised_at=input.promised_at,
                ),
            )
            return await _with_order(session, shipment)

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        shipment, order = result
        return CreateShipmentSuccess(
            shipment=Shipment.from_model(shipment), order=Order.from_model(order)
        )

    @strawberry.mutation(
        description="shipments.manage: add a tracking event; a new status moves the shipment "
        "(the first IN_TRANSIT ships the order, the last DELIVERED delivers it)."
    )
    async def record_tracking_event(
        self, info: Info, input: RecordTrackingEventInput
    ) -> RecordTrackingEventResult:
        viewer, plugins = info.context.viewer, info.context.plugins

        async def work(session: AsyncSession) -> tuple[m.Shipment, m.Order]:
            shipment = await service.record_tracking_event(
                session,
                plugins,
                viewer,
                service.TrackingInput(
                    shipment_id=require_node_id(input.shipment_id, "Shipment", "shipmentId"),
                    status=m.ShipmentStatus(input.status.value),
                    description=input.description,
                    location=input.location,
                    occurred_at=input.occurred_at,
                ),
            )
            return await _with_order(session, shipment)

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        shipment, order = result
        return RecordTrackingEventSuccess(
            shipment=Shipment.from_model(shipment), order=Order.from_model(order)
        )


QUERIES: list[type[Any]] = [ShipmentQueries]
MUTATIONS: list[type[Any]] = [ShipmentMutations]
TYPES: list[type[Any]] = [Shipment]
