"""Shipments of an order and their tracking timeline.

A shipment's status follows CREATED → IN_TRANSIT → OUT_FOR_DELIVERY → DELIVERED; EXCEPTION can
happen in any state that is not final (and goes back to IN_TRANSIT when resolved); RETURNED ends
a shipment that was on its way. The order follows: the first shipment on its way ships the order
(stock is consumed then), and the order is DELIVERED when every shipment still going to the
customer has been delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server import live
from server.auth import Viewer
from server.hooktypes import ParcelLine
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    TrackingEvent,
    Warehouse,
    utcnow,
)
from server.permissions import SHIPMENTS_MANAGE, SHIPMENTS_READ
from server.plugins import PluginRuntime
from server.services import orders, outbox
from server.services.errors import InvalidTransition, NotFound, ValidationFailed

T = ShipmentStatus
TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    T.CREATED: frozenset({T.IN_TRANSIT, T.EXCEPTION}),
    T.IN_TRANSIT: frozenset({T.OUT_FOR_DELIVERY, T.EXCEPTION, T.RETURNED}),
    T.OUT_FOR_DELIVERY: frozenset({T.DELIVERED, T.EXCEPTION, T.RETURNED}),
    T.EXCEPTION: frozenset({T.IN_TRANSIT, T.RETURNED}),
    T.DELIVERED: frozenset(),
    T.RETURNED: frozenset(),
}
FINAL = frozenset({T.DELIVERED, T.RETURNED})
SHIPPABLE_ORDER = frozenset({OrderStatus.PAID, OrderStatus.FULFILLING})
# Carriers' clocks are not ours: an event a few minutes "in the future" is still believable.
_CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class LineRequest:
    order_line_id: int
    quantity: int


@dataclass(frozen=True)
class CreateShipmentInput:
    order_id: int
    warehouse_id: int
    carrier: str
    tracking_number: str
    lines: Sequence[LineRequest] | None = None
    promised_at: datetime | None = None


@dataclass(frozen=True)
class TrackingInput:
    shipment_id: int
    status: ShipmentStatus
    description: str = ""
    location: str = ""
    occurred_at: datetime | None = None


def _required(value: str, field: str, limit: int = 120) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise ValidationFailed(f"{field} must be 1 to {limit} characters", field=field)
    return value


async def _shipped_quantities(session: AsyncSession, order_id: int) -> dict[int, int]:
    """Units of each order line already in a shipment that has not come back."""
    rows = await session.execute(
        select(col(ShipmentLine.order_line_id), func.sum(col(ShipmentLine.quantity)))
        .join(Shipment, col(Shipment.id) == ShipmentLine.shipment_id)
        .where(col(Shipment.order_id) == order_id, col(Shipment.status) != T.RETURNED)
        .group_by(col(ShipmentLine.order_line_id))
    )
    return {line_id: int(total) for line_id, total in rows}


def can_view(order: Order, viewer: Viewer) -> bool:
    """A shipment is seen by its order's customer and by whoever holds shipments.read (or
    shipments.manage)."""
    return orders.is_owner(order, viewer) or viewer.has(SHIPMENTS_READ, SHIPMENTS_MANAGE)


def _require_manage(viewer: Viewer, kind: str, ident: int, field: str) -> None:
    if not viewer.has(SHIPMENTS_MANAGE):
        # Shipping is work for shipments.manage; to anyone else the object simply is not there.
        raise NotFound(kind, ident, field=field)


async def create_shipment(
    session: AsyncSession, plugins: PluginRuntime, viewer: Viewer, data: CreateShipmentInput
) -> Shipment:
    _require_manage(viewer, "order", data.order_id, "orderId")
    return await _create(session, plugins, data, viewer.subject)


async def system_create_shipment(
    session: AsyncSession,
    plugins: PluginRuntime,
    order_id: int,
    warehouse_id: int,
    carrier: str,
    tracking_number: str,
    lines: Sequence[ParcelLine] | None = None,
    promised_at: datetime | None = None,
    *,
    actor: str = "system",
) -> Shipment:
    """The shop itself creates a shipment (a plugin's dispatch), in the caller's transaction,
    with the checks staff's createShipment has: the order locked, PAID or FULFILLING and not
    held (OrderOnHold), each line's units not shipped yet (``lines`` None: every unit left).
    Exported to plugins as ``create_shipment``."""
    data = CreateShipmentInput(
        order_id=order_id,
        warehouse_id=warehouse_id,
        carrier=carrier,
        tracking_number=tracking_number,
        lines=None
        if lines is None
        else [LineRequest(order_line_id=ln.order_line_id, quantity=ln.quantity) for ln in lines],
        promised_at=promised_at,
    )
    return await _create(session, plugins, data, actor[:100] or "system")


async def _create(
    session: AsyncSession, plugins: PluginRuntime, data: CreateShipmentInput, actor: str
) -> Shipment:
    # Locked, so that two concurrent shipments of one order cannot ship a unit twice. Not
    # get_order: shipments.manage reaches the orders it ships without orders.read.
    order = await orders.load(session, data.order_id, lock=True)
    if order is None:
        raise NotFound("order", data.order_id, field="orderId")
    if order.status not in SHIPPABLE_ORDER:
        raise InvalidTransition("order", order.status.value, OrderStatus.FULFILLING.value)
    if order.status is OrderStatus.FULFILLING:
        # A PAID order is checked on its way to FULFILLING (transition_order), below.
        await orders.ensure_not_held(session, plugins, order, OrderStatus.FULFILLING)
    if await session.get(Warehouse, data.warehouse_id) is None:
        raise NotFound("warehouse", data.warehouse_id, field="warehouseId")
    carrier = _required(data.carrier, "carrier")
    tracking_number = _required(data.tracking_number, "trackingNumber")

    order_lines = {
        line.id: line
        for line in await session.scalars(
            select(OrderLine).where(col(OrderLine.order_id) == order.id).order_by(col(OrderLine.id))
        )
    }
    shipped = await _shipped_quantities(session, order.id)  # type: ignore[arg-type]  # a stored order has its id
    remaining = {lid: line.quantity - shipped.get(lid, 0) for lid, line in order_lines.items()}  # type: ignore[arg-type]  # stored lines have their ids
    if data.lines is None:
        wanted = {lid: qty for lid, qty in remaining.items() if qty > 0}
        if not wanted:
            raise ValidationFailed("every unit of this order is already shipped", field="lines")
    else:
        if not data.lines:
            raise ValidationFailed("a shipment needs at least one line", field="lines")
        wanted = {}
        for i, req in enumerate(data.lines):
            if req.order_line_id not in order_lines:
                raise NotFound("order line", req.order_line_id, field=f"lines.{i}.orderLineId")
            if req.quantity < 1:
                raise ValidationFailed("quantity must be at least 1", field=f"lines.{i}.quantity")
            wanted[req.order_line_id] = wanted.get(req.order_line_id, 0) + req.quantity
        for lid, qty in wanted.items():
            if qty > remaining[lid]:
                raise ValidationFailed(
                    f"order line {lid} ({order_lines[lid].sku}) has {remaining[lid]} unshipped "
                    f"units, not {qty}",
                    field="lines",
                )

    if order.status is OrderStatus.PAID:
        await orders.transition_order(
            session,
            plugins,
            order.id,  # type: ignore[arg-type]  # a stored row has its id
            OrderStatus.FULFILLING,
            note=f"shipment {carrier} {tracking_number} created",
            actor=actor,
        )
    shipment = Shipment(
        order_id=order.id,  # type: ignore[arg-type]  # a stored order has its id
        warehouse_id=data.warehouse_id,
        carrier=carrier,
        tracking_number=tracking_number,
        status=T.CREATED,
        promised_at=data.promised_at,
    )
    session.add(shipment)
    await session.flush()
    session.add_all(
        ShipmentLine(shipment_id=shipment.id, order_line_id=lid, quantity=qty)  # type: ignore[arg-type]  # a stored shipment has its id
        for lid, qty in wanted.items()
    )
    session.add(
        TrackingEvent(
            shipment_id=shipment.id,  # type: ignore[arg-type]  # a stored shipment has its id
            status=T.CREATED,
            description="shipment created",
            location="",
        )
    )
    await session.flush()
    await outbox.emit(
        session,
        "shipment_created",
        {
            "shipment_id": shipment.id,
            "order_id": shipment.order_id,
            "warehouse_id": shipment.warehouse_id,
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "lines": [
                {
                    "order_line_id": lid,
                    "variant_id": order_lines[lid].variant_id,
                    "sku": order_lines[lid].sku,
                    "quantity": qty,
                }
                for lid, qty in wanted.items()
            ],
        },
    )
    await _announce(session, shipment, None, T.CREATED)
    await _publish(session, shipment)
    return shipment


async def _publish(session: AsyncSession, shipment: Shipment) -> None:
    """Tell the shipment's and its order's live subscribers, once this commits. The same
    payload for every change: several in one transaction reach a subscriber once."""
    await live.publish(session, f"shipment:{shipment.id}", {"shipment_id": shipment.id})
    await live.publish(session, f"order:{shipment.order_id}", {"order_id": shipment.order_id})


async def _announce(
    session: AsyncSession, shipment: Shipment, before: ShipmentStatus | None, after: ShipmentStatus
) -> None:
    await outbox.emit(
        session,
        "shipment_status_changed",
        {
            "shipment_id": shipment.id,
            "order_id": shipment.order_id,
            "from_status": before.value if before else None,
            "to_status": after.value,
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
        },
    )


async def record_tracking_event(
    session: AsyncSession, plugins: PluginRuntime, viewer: Viewer, data: TrackingInput
) -> Shipment:
    """Add an event to the timeline; a new status moves the shipment (and maybe the order).

    An event with the shipment's current status (another scan on the way) only extends the
    timeline.
    """
    _require_manage(viewer, "shipment", data.shipment_id, "shipmentId")
    return await _record(session, plugins, data, actor=viewer.subject)


async def system_record_tracking_event(
    session: AsyncSession,
    plugins: PluginRuntime,
    shipment_id: int,
    status: ShipmentStatus,
    *,
    occurred_at: datetime | None = None,
    description: str = "",
    location: str = "",
    actor: str = "system",
    move: bool = True,
) -> Shipment:
    """The shop itself records a tracking event (a carrier's scan a plugin received), in the
    caller's transaction. ``move=True``: as :func:`record_tracking_event` (the status follows,
    the order with it; InvalidTransition when the machine does not allow the step).
    ``move=False``: the event only joins the timeline, whatever the shipment's status (a scan
    that arrived after a later one). Exported to plugins as ``record_tracking_event``."""
    data = TrackingInput(
        shipment_id=shipment_id,
        status=status,
        description=description,
        location=location,
        occurred_at=occurred_at,
    )
    return await _record(session, plugins, data, actor=actor[:100] or "system", move=move)


async def _record(
    session: AsyncSession,
    plugins: PluginRuntime,
    data: TrackingInput,
    *,
    actor: str,
    move: bool = True,
) -> Shipment:
    shipment = await session.scalar(
        select(Shipment)
        .where(col(Shipment.id) == data.shipment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if shipment is None:
        raise NotFound("shipment", data.shipment_id, field="shipmentId")
    occurred_at = data.occurred_at or utcnow()
    if occurred_at > utcnow() + _CLOCK_SKEW:
        raise ValidationFailed("occurredAt is in the future", field="occurredAt")
    current = shipment.status
    changed = move and data.status is not current
    if move and (current in FINAL or (changed and data.status not in TRANSITIONS[current])):
        raise InvalidTransition("shipment", current.value, data.status.value)

    tracking = TrackingEvent(
        shipment_id=shipment.id,  # type: ignore[arg-type]  # a stored row has its id
        status=data.status,
        description=data.description.strip()[:500],
        location=data.location.strip()[:200],
        occurred_at=occurred_at,
    )
    session.add(tracking)
    await outbox.emit(
        session,
        "tracking_event_recorded",
        {
            "shipment_id": shipment.id,
            "order_id": shipment.order_id,
            "status": tracking.status.value,
            "description": tracking.description,
            "location": tracking.location,
            "occurred_at": occurred_at.isoformat(),
        },
    )
    await _publish(session, shipment)
    if not changed:
        await session.flush()
        return shipment

    values: dict[str, object] = {"status": data.status, "updated_at": utcnow()}
    first_departure = data.status is T.IN_TRANSIT and shipment.shipped_at is None
    if first_departure:
        values["shipped_at"] = occurred_at
    if data.status is T.DELIVERED:
        values["delivered_at"] = occurred_at
    await session.execute(
        update(Shipment)
        .where(col(Shipment.id) == shipment.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await _announce(session, shipment, current, data.status)

    order = await orders.load(session, shipment.order_id)
    assert order is not None
    if first_departure and order.status is not OrderStatus.SHIPPED:
        # The first parcel on its way ships the order; a cancelled order cannot ship.
        await orders.transition_order(
            session,
            plugins,
            order.id,  # type: ignore[arg-type]  # a stored row has its id
            OrderStatus.SHIPPED,
            note=f"{shipment.carrier} {shipment.tracking_number} on its way",
            actor=actor,
        )
    elif data.status is T.DELIVERED and order.status is OrderStatus.SHIPPED:
        statuses = await session.scalars(
            select(col(Shipment.status)).where(
                col(Shipment.order_id) == order.id, col(Shipment.status) != T.RETURNED
            )
        )
        if all(s is T.DELIVERED for s in statuses):
            await orders.transition_order(
                session,
                plugins,
                order.id,  # type: ignore[arg-type]  # a stored row has its id
                OrderStatus.DELIVERED,
                note="every shipment delivered",
                actor=actor,
            )
    fresh = await session.scalar(
        select(Shipment)
        .where(col(Shipment.id) == shipment.id)
        .execution_options(populate_existing=True)
    )
    assert fresh is not None
    return fresh
