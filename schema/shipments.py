"""Shipments and their tracking timeline over GraphQL (and ``Order.shipments``).

shipments.manage creates shipments and records tracking events; shipments.read sees every
shipment, a customer the shipments of their own orders (another customer's shipment answers
exactly like a missing one). The rules live in server/services/shipments.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.inventory import Warehouse
from schema.loaders import (
    OrderByIdLoader,
    ShipmentByIdLoader,
    ShipmentLinesByShipmentIdLoader,
    ShipmentsByOrderIdLoader,
    TrackingEventsByShipmentIdLoader,
)
from schema.orders import Order, OrderLine
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import InvalidTransition, NotFoundError, OrderOnHold, ValidationError
from server.graphql.ids import parse_pk, require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import FromModel, ModelNode
from server.graphql.sockets import follow_node
from server.services import orders as order_service
from server.services import shipments as service

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.ShipmentStatus, name="ShipmentStatus")


@strawberry.type(description="One scan or status update on a shipment's way.")
class TrackingEvent(FromModel):
    status: m.ShipmentStatus
    description: str
    location: str
    occurred_at: datetime


@strawberry.type(description="Units of one order line in a shipment.")
class ShipmentLine(FromModel):
    quantity: int
    _model: strawberry.Private[m.ShipmentLine]

    @strawberry.field(description="The order line; null without the right to see the order.")
    async def order_line(self, info: Info) -> OrderLine | None:
        # Like OrderLine by id: a line is visible exactly when its order is.
        return (await OrderLine.visible(info, [self._model.order_line_id]))[0]


@strawberry.type(description="A parcel on its way to the customer, with its tracking timeline.")
class Shipment(ModelNode):
    loader = ShipmentByIdLoader

    id: relay.NodeID[int]
    carrier: str
    tracking_number: str
    status: m.ShipmentStatus
    promised_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    _model: strawberry.Private[m.Shipment]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # relay.Node's overloads; one async form here
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        return await cls.visible(info, [parse_pk(i) for i in node_ids])

    @classmethod
    async def visible(cls, info: Info, ids: Sequence[int | None]) -> list[Self | None]:
        """The shipments of ``ids``: visible to their order's customer and with shipments.read."""
        loaders = info.context.loaders
        rows = await loaders.get(ShipmentByIdLoader).load_many([i for i in ids if i is not None])
        by_id = {row.id: row for row in rows if row is not None}
        order_rows = await loaders.get(OrderByIdLoader).load_many(
            [row.order_id for row in by_id.values()]
        )
        viewer = info.context.viewer
        visible = {o.id for o in order_rows if o is not None and service.can_view(o, viewer)}
        out: list[Self | None] = []
        for i in ids:
            row = by_id.get(i) if i is not None else None
            out.append(cls.from_model(row) if row is not None and row.order_id in visible else None)
        return out

    @strawberry.field(description="The order; null without the right to see it (orders.read).")
    async def order(self, info: Info) -> Order | None:
        return await Order.load(info, self._model.order_id)

    @strawberry.field
    async def warehouse(self, info: Info) -> Warehouse | None:
        return await Warehouse.load(info, self._model.warehouse_id)

    @strawberry.field
    async def lines(self, info: Info) -> list[ShipmentLine]:
        rows = await info.context.loaders.get(ShipmentLinesByShipmentIdLoader).load(self.id)
        return [ShipmentLine.from_model(row) for row in rows]

    @strawberry.field(description="The tracking timeline, oldest first.")
    async def events(self, info: Info) -> list[TrackingEvent]:
        rows = await info.context.loaders.get(TrackingEventsByShipmentIdLoader).load(self.id)
        return [TrackingEvent.from_model(row) for row in rows]


@strawberry.type
class OrderShipments:
    """Fields this domain adds to Order (``root`` is the Order)."""

    @strawberry.field
    async def shipments(self, root: Order, info: Info) -> list[Shipment]:
        # The same rule as a shipment by id: orders.read alone does not show shipments.
        if not service.can_view(root.row, info.context.viewer):
            return []
        rows = await info.context.loaders.get(ShipmentsByOrderIdLoader).load(root.id)
        return [Shipment.from_model(row) for row in rows]


@strawberry.type
class ShipmentQueries:
    @strawberry.field(description="A shipment by id; null if it is not there or not yours.")
    async def shipment(self, info: Info, id: strawberry.ID) -> Shipment | None:
        return await Shipment.load_global_id(info, id)


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
    status: m.ShipmentStatus
    description: str = ""
    location: str = ""
    occurred_at: datetime | None = strawberry.field(default=None, description="Defaults to now.")


@strawberry.type
class RecordTrackingEventSuccess:
    shipment: Shipment
    order: Order


# OrderOnHold: a plugin holds the order back from FULFILLING/SHIPPED.
ShipmentErrors = NotFoundError | ValidationError | InvalidTransition | OrderOnHold
CreateShipmentResult = Annotated[
    CreateShipmentSuccess | ShipmentErrors, strawberry.union("CreateShipmentResult")
]
RecordTrackingEventResult = Annotated[
    RecordTrackingEventSuccess | ShipmentErrors, strawberry.union("RecordTrackingEventResult")
]


def _line_requests(lines: list[ShipmentLineInput] | None) -> list[service.LineRequest] | None:
    if lines is None:
        return None
    return [
        service.LineRequest(
            order_line_id=require_node_id(
                line.order_line_id, "OrderLine", f"lines.{i}.orderLineId"
            ),
            quantity=line.quantity,
        )
        for i, line in enumerate(lines)
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
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> tuple[m.Shipment, m.Order]:
            lines = _line_requests(input.lines)
            data = service.CreateShipmentInput(
                order_id=require_node_id(input.order_id, "Order", "orderId"),
                warehouse_id=require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                carrier=input.carrier,
                tracking_number=input.tracking_number,
                lines=lines,
                promised_at=input.promised_at,
            )
            return await _with_order(
                session, await service.create_shipment(session, info.context.plugins, viewer, data)
            )

        return await mutate(
            info,
            work,
            lambda done: CreateShipmentSuccess(
                shipment=Shipment.from_model(done[0]), order=Order.from_model(done[1])
            ),
        )

    @strawberry.mutation(
        description="shipments.manage: add a tracking event; a new status moves the shipment "
        "(the first IN_TRANSIT ships the order, the last DELIVERED delivers it)."
    )
    async def record_tracking_event(
        self, info: Info, input: RecordTrackingEventInput
    ) -> RecordTrackingEventResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> tuple[m.Shipment, m.Order]:
            data = service.TrackingInput(
                shipment_id=require_node_id(input.shipment_id, "Shipment", "shipmentId"),
                status=m.ShipmentStatus(input.status.value),
                description=input.description,
                location=input.location,
                occurred_at=input.occurred_at,
            )
            shipment = await service.record_tracking_event(
                session, info.context.plugins, viewer, data
            )
            return await _with_order(session, shipment)

        return await mutate(
            info,
            work,
            lambda done: RecordTrackingEventSuccess(
                shipment=Shipment.from_model(done[0]), order=Order.from_model(done[1])
            ),
        )


@strawberry.type
class ShipmentSubscriptions:
    @strawberry.subscription(
        description=(
            "The shipment at once, then afresh whenever it changes (status, tracking events). "
            "Seen as the shipment is; anyone else gets NOT_FOUND and the stream ends."
        )
    )
    async def shipment_updated(
        self, info: Info, id: strawberry.ID
    ) -> AsyncIterator[Shipment | None]:
        async for shipment in follow_node(info, Shipment, id, "shipment"):
            yield shipment


QUERIES: list[type[Any]] = [ShipmentQueries]
MUTATIONS: list[type[Any]] = [ShipmentMutations]
SUBSCRIPTIONS: list[type[Any]] = [ShipmentSubscriptions]
TYPES: list[type[Any]] = [Shipment]
EXTENSIONS: dict[str, list[type[Any]]] = {"Order": [OrderShipments]}
