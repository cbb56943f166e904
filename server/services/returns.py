"""Units of an order's lines given back, and the money for them.

:func:`refund_lines` records the returned units of each line with a conditional UPDATE (a line
never has more returned than bought, however many returns race), asks the plugins how much to
give back (``refund_for_lines``, firstresult: a plugin that discounted the order answers from
what it took off each line; the core's answer, last, is the unit prices times the units) and
refunds it from the order's captured payments (:func:`gateways.refund_amount`), all in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server import live
from server.auth import Viewer
from server.hookcall import PluginFailed
from server.hooktypes import hookimpl
from server.models import Order, OrderLine, OrderStatusChange
from server.plugins import PluginRuntime
from server.services import gateways, orders
from server.services.errors import (
    NotFound,
    NothingCaptured,
    ReturnExceedsQuantity,
    ValidationFailed,
)

REFUND_FOR_LINES = "refund_for_lines"
MAX_LINES = 100


@dataclass(frozen=True)
class LinesRefund:
    """What a return did: the order (as it is now), the units taken back per order line, the
    amount refunded (minor units; 0 when the lines were free) and the gateways' reference."""

    order: Order
    returned: Mapping[int, int]
    amount: int
    reference: str


@hookimpl(trylast=True)
def refund_for_lines(lines: Sequence[OrderLine], returned: Mapping[int, int]) -> int:
    """The core's answer, asked last: each returned unit at the unit price paid for it."""
    price = {line.id: line.unit_price_amount for line in lines}
    return sum(price.get(line_id, 0) * units for line_id, units in returned.items())


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("a return needs a reason", field="reason")
    if len(reason) > 500:
        raise ValidationFailed("a reason is at most 500 characters", field="reason")
    return reason


def _checked_returned(
    returned: Mapping[int, int], lines: Mapping[int, OrderLine]
) -> dict[int, int]:
    if not returned:
        raise ValidationFailed("a return needs at least one line", field="lines")
    if len(returned) > MAX_LINES:
        raise ValidationFailed(f"a return has at most {MAX_LINES} lines", field="lines")
    for i, (line_id, units) in enumerate(returned.items()):
        if line_id not in lines:
            raise NotFound("order line", line_id, field=f"lines.{i}.orderLineId")
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValidationFailed("quantity must be at least 1", field=f"lines.{i}.quantity")
    return dict(returned)


def _amount_of(answers: list[tuple[str, object]]) -> int:
    plugin, amount = answers[0]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise PluginFailed(
            plugin,
            REFUND_FOR_LINES,
            TypeError(f"returned {amount!r}, not an amount of minor units of at least 0"),
        )
    return amount


async def refund_lines(
    session: AsyncSession,
    plugins: PluginRuntime,
    order: Order,
    returned: Mapping[int, int],
    *,
    reason: str,
    actor: str = "system",
) -> LinesRefund:
    """Take back ``returned`` (order line id → units) of ``order`` and refund what the plugins
    say they are worth, in the session's transaction.

    Refused, with nothing written: an id that is not a line of the order (NotFound), a
    quantity below 1 or more units than the line has left to return (ReturnExceedsQuantity,
    also when a concurrent return took them first), an order with nothing captured left to
    give back (NothingCaptured). The amount is capped at what may still be refunded; the
    return is noted in the order's history (``actor``, ``reason``)."""
    reason = _reason(reason)
    assert order.id is not None
    lines = {
        line.id: line
        for line in await session.scalars(
            select(OrderLine)
            .where(col(OrderLine.order_id) == order.id)
            .order_by(col(OrderLine.id))
            .execution_options(populate_existing=True)
        )
        if line.id is not None
    }
    wanted = _checked_returned(returned, lines)
    left = await gateways.refundable(session, order.id)
    if left <= 0:
        raise NothingCaptured(order.id)
    # In id order, so that two concurrent returns of one order lock its lines alike.
    for line_id in sorted(wanted):
        units = wanted[line_id]
        taken = await session.execute(
            update(OrderLine)
            .where(
                col(OrderLine.id) == line_id,
                col(OrderLine.returned_quantity) + units <= col(OrderLine.quantity),
            )
            .values(returned_quantity=OrderLine.returned_quantity + units)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
            fresh = await session.scalar(
                select(col(OrderLine.returned_quantity)).where(col(OrderLine.id) == line_id)
            )
            line = lines[line_id]
            raise ReturnExceedsQuantity(line_id, units, line.quantity - int(fresh or 0))
    # The lines as they were before this return (returned_quantity without it): what the
    # order kept is quantity - returned_quantity - returned[line].
    answers = await plugins.call(
        REFUND_FOR_LINES,
        session=session,
        order=order,
        lines=list(lines.values()),
        returned=wanted,
    )
    amount = min(_amount_of(answers), left) if answers else 0
    reference = ""
    if amount > 0:
        reference = await gateways.refund_amount(session, plugins, order, amount, reason)
    returned_text = ", ".join(f"{lines[i].sku} × {n}" for i, n in sorted(wanted.items()))
    session.add(
        OrderStatusChange(
            order_id=order.id,
            from_status=order.status,
            to_status=order.status,
            actor=actor,
            note=(
                f"returned {returned_text}; refunded {amount} ({order.currency} minor units): "
                f"{reason}"
            )[:500],
        )
    )
    await session.flush()
    # Its lines' returned units and its history changed: its subscribers read it again.
    await live.publish(session, f"order:{order.id}", {"order_id": order.id})
    now = await orders.load(session, order.id)
    assert now is not None
    return LinesRefund(order=now, returned=wanted, amount=amount, reference=reference)


async def refund_order_lines(
    session: AsyncSession,
    plugins: PluginRuntime,
    viewer: Viewer,
    order_id: int,
    returned: Mapping[int, int],
    reason: str,
) -> LinesRefund:
    """orders.manage takes back units of an order's lines and refunds them."""
    if not orders.can_manage(viewer):
        raise NotFound("order", order_id, field="orderId")
    order = await orders.get_order(session, viewer, order_id)
    return await refund_lines(
        session, plugins, order, returned, reason=reason, actor=viewer.subject
    )
