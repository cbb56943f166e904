"""The order flow's GraphQL types that plugins shape: fees, planned parcels, payment gateways.

Cart and Order (schema.orders) answer their ``fees`` and ``shipmentPlan`` with these;
``paymentGateways`` lists the gateways ``payOrder`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from schema.context import Info
from schema.loaders import OrderLineByIdLoader, WarehouseByIdLoader
from schema.pricing import PriceAdjustment, adjustment_types
from server import models as m
from server.plugin import Adjustment
from server.services import orders as order_service
from server.services import payments
from server.services import shipments as shipment_service

if TYPE_CHECKING:
    from schema.inventory import Warehouse
    from schema.orders import OrderLine


def _amount(adj: Adjustment | Mapping[str, Any]) -> int:
    return adj.amount if isinstance(adj, Adjustment) else int(adj["amount"])


def fee_types(
    adjustments: Iterable[Adjustment | Mapping[str, Any]], currency: str
) -> list[PriceAdjustment]:
    """The FEE adjustments (positive amounts) of an order or cart."""
    return adjustment_types([a for a in adjustments if _amount(a) > 0], currency)


# --- the shipment plan ------------------------------------------------------------------


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
        return OrderLine.from_model(row, self._order.currency)


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


# --- payment gateways -------------------------------------------------------------------


@strawberry.type(description="A way to pay, offered by a plugin or the core.")
class PaymentGateway:
    code: str = strawberry.field(description="What payOrder(input: {gateway}) names.")
    label: str
    staff_only: bool = strawberry.field(
        description="Only for recording payments with orders.manage (money received offline)."
    )
    source: str = strawberry.field(description="The plugin offering it ('core' for the core).")


@strawberry.type
class PaymentGatewayQueries:
    @strawberry.field(description="The payment gateways you may pay with, by code.")
    async def payment_gateways(self, info: Info) -> list[PaymentGateway]:
        ctx = info.context
        offered = await payments.gateways(ctx.plugins)
        manager = order_service.can_manage(ctx.viewer)
        return [
            PaymentGateway(code=g.code, label=g.label, staff_only=g.staff_only, source=g.source)
            for g in sorted(offered.values(), key=lambda g: g.code)
            if manager or not g.staff_only
        ]
