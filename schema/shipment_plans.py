"""The shipment plan of an order over GraphQL: the parcels ``plan_shipments`` planned when it
was paid for (``Order.shipmentPlan``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from schema.loaders import OrderLineByIdLoader, WarehouseByIdLoader
from server import models as m
from server.graphql.context import Info
from server.services import shipments as shipment_service

if TYPE_CHECKING:
    from schema.inventory import Warehouse
    from schema.orders import OrderLine


@strawberry.type(description="Units of one order line in a planned parcel.")
class PlannedParcelLine:
    quantity: int
    _order_line_id: strawberry.Private[int]
    _order: strawberry.Private[m.Order]

    @strawberry.field
    async def order_line(
        self, info: Info
    ) -> Annotated[OrderLine, strawberry.lazy("schema.orders")] | None:
        from schema.orders import OrderLine

        row = await info.context.loaders.get(OrderLineByIdLoader).load(self._order_line_id)
        if row is None or row.order_id != self._order.id:
            return None
        return OrderLine.from_model(row, _currency=self._order.currency)


@strawberry.type(
    description="A parcel planned when the order was paid for (plan_shipments): the "
    "warehouse it leaves from and what it carries."
)
class PlannedParcel:
    source: str = strawberry.field(description="Who planned it: a plugin, or 'core'.")
    carrier: str | None = strawberry.field(description="The carrier the planner chose, if any.")
    note: str
    lines: list[PlannedParcelLine]
    _warehouse_id: strawberry.Private[int]

    @strawberry.field
    async def warehouse(
        self, info: Info
    ) -> Annotated[Warehouse, strawberry.lazy("schema.inventory")] | None:
        from schema.inventory import Warehouse

        row = await info.context.loaders.get(WarehouseByIdLoader).load(self._warehouse_id)
        return Warehouse.from_model(row) if row is not None else None


def planned_parcels(info: Info, order: m.Order) -> list[PlannedParcel]:
    """The order's stored plan, to those who may see its shipments (else nothing)."""
    if not shipment_service.can_view(order, info.context.viewer):
        return []
    return [
        PlannedParcel(
            source=str(parcel.get("source", "")),
            carrier=parcel.get("carrier"),
            note=str(parcel.get("note", "")),
            lines=[
                PlannedParcelLine(
                    quantity=int(line["quantity"]),
                    _order_line_id=int(line["order_line_id"]),
                    _order=order,
                )
                for line in parcel.get("lines", ())
            ],
            _warehouse_id=int(parcel["warehouse_id"]),
        )
        for parcel in order.shipment_plan or ()
    ]
