"""The order state machine, and who may move an order along it.

PENDING_PAYMENT → PAID → FULFILLING → SHIPPED → DELIVERED → COMPLETED, and CANCELLED from
PENDING_PAYMENT, PAID or FULFILLING. Every change goes through :func:`transition_order`: one
conditional UPDATE (so two concurrent changes cannot both start from the same status), its side
effects on stock, payments and the plugins' reservations (``order_cancelling``), a history row
and an ``order_status_changed`` event. A plugin may hold an order back from FULFILLING and
SHIPPED (``order_fulfilment_hold``): the move is then refused with OrderOnHold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server import live
from server.auth import Viewer
from server.hookcall import PluginFailed
from server.models import Order, OrderLine, OrderStatus, OrderStatusChange, utcnow
from server.permissions import ORDERS_MANAGE, ORDERS_READ
from server.plugins import PluginRuntime
from server.services import gateways, inventory, outbox
from server.services.errors import InvalidTransition, NotFound, OrderOnHold, ValidationFailed

S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.FULFILLING, S.CANCELLED}),
    S.FULFILLING: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
# What an order's owner may cancel by themselves; later, goods are being packed (staff decide).
CUSTOMER_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID})
# The moves a plugin's fulfilment hold refuses.
HELD_TARGETS = frozenset({S.FULFILLING, S.SHIPPED})
FULFILMENT_HOLD = "order_fulfilment_hold"


def is_owner(order: Order, viewer: Viewer) -> bool:
    return viewer.customer_id is not None and order.customer_id == viewer.customer_id


def can_view(order: Order, viewer: Viewer) -> bool:
    """Its customer, and whoever holds orders.read (or orders.manage: one acts on what one sees)."""
    return is_owner(order, viewer) or viewer.has(ORDERS_READ, ORDERS_MANAGE)


def can_manage(viewer: Viewer) -> bool:
    """Change any order (staff role or API-key scope), beyond what its customer may do."""
    return viewer.has(ORDERS_MANAGE)


@dataclass(frozen=True)
class OrderQuery:
    """What a list of orders is narrowed to (None: not narrowed)."""

    status: OrderStatus | None = None
    customer_id: int | None = None
    placed_from: datetime | None = None
    # Exclusive.
    placed_to: datetime | None = None


def list_orders(viewer: Viewer, query: OrderQuery) -> Select[Any]:
    """The orders ``viewer`` may see that ``query`` selects, unordered (the caller pages it):
    a customer their own, orders.read or orders.manage all, anyone else none."""
    stmt = select(Order)
    if viewer.is_customer:
        stmt = stmt.where(col(Order.customer_id) == viewer.customer_id)
    elif not viewer.has(ORDERS_READ, ORDERS_MANAGE):
        return stmt.where(false())
    if query.status is not None:
        stmt = stmt.where(col(Order.status) == query.status)
    if query.customer_id is not None:
        # For a customer this can only narrow their own orders (another id gives nothing).
        stmt = stmt.where(col(Order.customer_id) == query.customer_id)
    if query.placed_from is not None:
        stmt = stmt.where(col(Order.placed_at) >= query.placed_from)
    if query.placed_to is not None:
        stmt = stmt.where(col(Order.placed_at) < query.placed_to)
    return stmt


async def load(session: AsyncSession, order_id: int, *, lock: bool = False) -> Order | None:
    stmt = select(Order).where(col(Order.id) == order_id).execution_options(populate_existing=True)
    if lock:
        # PostgreSQL: serialise work on one order (shipments); SQLite already runs writers
        # one at a time, and ignores FOR UPDATE.
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def get_order(
    session: AsyncSession, viewer: Viewer, order_id: int, *, lock: bool = False
) -> Order:
    """The order if this viewer may see it: another customer's order is "not found"."""
    order = await load(session, order_id, lock=lock)
    if order is None or not can_view(order, viewer):
        raise NotFound("order", order_id, field="orderId")
    return order


async def holds_of(
    session: AsyncSession, plugins: PluginRuntime, order: Order
) -> list[tuple[str, str]]:
    """Why the plugins hold ``order`` back from fulfilment: (plugin, reason) pairs, in call
    order; empty when none does. One call of the hook; an answer that is not a non-empty
    string fails the request naming the plugin."""
    if not plugins.implements(FULFILMENT_HOLD):
        return []
    holds: list[tuple[str, str]] = []
    for plugin, reason in await plugins.call(FULFILMENT_HOLD, session=session, order=order):
        if not isinstance(reason, str) or not reason.strip():
            raise PluginFailed(
                plugin, FULFILMENT_HOLD, TypeError(f"returned {reason!r}, not a reason or None")
            )
        holds.append((plugin, reason.strip()))
    return holds


async def ensure_not_held(
    session: AsyncSession, plugins: PluginRuntime, order: Order, target: OrderStatus
) -> None:
    """Raise OrderOnHold when a plugin holds ``order`` back from ``target``."""
    holds = await holds_of(session, plugins, order)
    if holds:
        raise OrderOnHold(order.id, target.value, holds)  # type: ignore[arg-type]  # a stored row has its id


async def transition_order(
    session: AsyncSession,
    plugins: PluginRuntime,
    order_id: int,
    target: OrderStatus,
    *,
    note: str = "",
    actor: str = "system",
) -> Order:
    """Move the order to ``target`` with its side effects, or raise InvalidTransition (or
    OrderOnHold, when a plugin holds it back from FULFILLING or SHIPPED; nothing is written)."""
    order = await load(session, order_id)
    if order is None:
        raise NotFound("order", order_id, field="orderId")
    current = order.status
    if target not in TRANSITIONS[current]:
        raise InvalidTransition("order", current.value, target.value)
    if target in HELD_TARGETS:
        await ensure_not_held(session, plugins, order, target)
    now = utcnow()
    values: dict[str, object] = {"status": target, "updated_at": now}
    if target is S.PAID:
        values["paid_at"] = now
    elif target is S.CANCELLED:
        values["cancelled_at"] = now
    result = await session.execute(
        update(Order)
        .where(col(Order.id) == order_id, col(Order.status) == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        # Someone else moved it first; report the status it has now.
        fresh = await load(session, order_id)
        raise InvalidTransition("order", fresh.status.value if fresh else "?", target.value)

    if target is S.CANCELLED:
        # As it is now (CANCELLED), for the gateways and the plugins.
        order = await load(session, order_id)
        assert order is not None
        lines = await _lines(session, order_id)
        for line in lines:
            if line.warehouse_id is not None:
                await inventory.release(session, line.warehouse_id, line.variant_id, line.quantity)
        reason = note or "order cancelled"
        await gateways.refund_captured(session, plugins, order, reason=reason)
        # The plugins give back what they reserved for the order, in this same transaction.
        await plugins.call(
            "order_cancelling", session=session, order=order, lines=lines, reason=reason
        )
    elif target is S.SHIPPED:
        for line in await _lines(session, order_id):
            if line.warehouse_id is not None:
                await inventory.consume(session, line.warehouse_id, line.variant_id, line.quantity)

    session.add(
        OrderStatusChange(
            order_id=order_id, from_status=current, to_status=target, actor=actor, note=note
        )
    )
    await outbox.emit(
        session,
        "order_status_changed",
        {
            "order_id": order_id,
            "customer_id": order.customer_id,
            "from_status": current.value,
            "to_status": target.value,
            "actor": actor,
            "note": note,
        },
    )
    await live.publish(session, f"order:{order_id}", {"order_id": order_id})
    fresh = await load(session, order_id)
    assert fresh is not None
    return fresh


async def _lines(session: AsyncSession, order_id: int) -> list[OrderLine]:
    return list(
        await session.scalars(
            select(OrderLine)
            .where(col(OrderLine.order_id) == order_id)
            .order_by(col(OrderLine.variant_id))
        )
    )


def _note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note) > 500:
        raise ValidationFailed("a note is at most 500 characters", field="note")
    return note


async def cancel_order(
    session: AsyncSession,
    plugins: PluginRuntime,
    viewer: Viewer,
    order_id: int,
    reason: str | None = None,
) -> Order:
    """The owner cancels while unpaid or paid; orders.manage cancels anything the machine
    allows. Anyone else, a mere reader included, finds no order to cancel."""
    order = await get_order(session, viewer, order_id)
    if not can_manage(viewer):
        if not is_owner(order, viewer):
            raise NotFound("order", order_id, field="orderId")
        if order.status not in CUSTOMER_CANCELLABLE:
            raise InvalidTransition("order", order.status.value, S.CANCELLED.value)
    return await transition_order(
        session, plugins, order_id, S.CANCELLED, note=_note(reason), actor=viewer.subject
    )


async def system_cancel(
    session: AsyncSession,
    plugins: PluginRuntime,
    order_id: int,
    *,
    reason: str,
    actor: str = "system",
) -> Order:
    """The shop itself cancels an order (a plugin's decision: a group buy that failed, a fraud
    check), in the caller's transaction: stock released, captured payments refunded, the
    plugins' reservations given back (``order_cancelling``), ``reason`` in the history.
    InvalidTransition when the order can no longer be cancelled (shipped, already cancelled);
    NotFound when there is no such order. Exported to plugins as ``cancel_order``."""
    return await transition_order(
        session, plugins, order_id, S.CANCELLED, note=_note(reason), actor=actor[:100] or "system"
    )


async def update_status(
    session: AsyncSession,
    plugins: PluginRuntime,
    viewer: Viewer,
    order_id: int,
    target: OrderStatus,
    note: str | None,
) -> Order:
    """orders.manage moves an order along the machine by hand."""
    if not can_manage(viewer):
        raise NotFound("order", order_id, field="orderId")
    await get_order(session, viewer, order_id)
    return await transition_order(
        session, plugins, order_id, target, note=_note(note), actor=viewer.subject
    )


async def confirm_receipt(
    session: AsyncSession, plugins: PluginRuntime, viewer: Viewer, order_id: int
) -> Order:
    """The owner says the goods arrived: DELIVERED → COMPLETED."""
    order = await get_order(session, viewer, order_id)
    if order.customer_id is None or order.customer_id != viewer.customer_id:
        # Only the buyer confirms receipt; staff use updateOrderStatus.
        raise NotFound("order", order_id, field="orderId")
    return await transition_order(
        session, plugins, order_id, S.COMPLETED, note="receipt confirmed", actor=viewer.subject
    )
