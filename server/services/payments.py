"""Paying an order through one of the gateways of :mod:`server.services.gateways` (``manual``,
``test``).

A declined attempt is recorded too (it is part of the order's history, and fraud checks read
it); the order stays PENDING_PAYMENT. A capture moves the order to PAID.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Viewer
from server.models import Cart, Order, OrderStatus, Payment, PaymentStatus
from server.services import orders, outbox
from server.services.errors import InvalidTransition, NotFound, ValidationFailed
from server.services.gateways import GATEWAYS


@dataclass(frozen=True)
class PayOrderInput:
    order_id: int
    gateway: str
    amount: int
    currency: str
    token: str | None = None
    cart_token: str | None = None


async def _order_for_payment(session: AsyncSession, viewer: Viewer, data: PayOrderInput) -> Order:
    order = await orders.load(session, data.order_id)
    if order is None:
        raise NotFound("order", data.order_id, field="orderId")
    # Its customer pays it; orders.manage pays any order (a reader of orders may not).
    if orders.is_owner(order, viewer) or orders.can_manage(viewer):
        return order
    # A guest pays for their order by showing the token of the cart it was placed from.
    if order.customer_id is None and data.cart_token and order.cart_id is not None:
        cart = await session.scalar(select(Cart).where(Cart.token == data.cart_token))
        if cart is not None and cart.id == order.cart_id:
            return order
    raise NotFound("order", data.order_id, field="orderId")


async def pay_order(session: AsyncSession, viewer: Viewer, data: PayOrderInput) -> Payment:
    """Charge the order's total. Returns the payment: CAPTURED (the order is PAID now) or
    DECLINED (recorded; the order is unchanged)."""
    gateway = GATEWAYS.get(data.gateway)
    if gateway is None:
        raise ValidationFailed(
            f"unknown gateway {data.gateway!r}; use one of {', '.join(sorted(GATEWAYS))}",
            field="gateway",
        )
    order = await _order_for_payment(session, viewer, data)
    if gateway.staff_only and not orders.can_manage(viewer):
        raise ValidationFailed(
            f"the {data.gateway} gateway is for recording offline payments (orders.manage)",
            field="gateway",
        )
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition("order", order.status.value, OrderStatus.PAID.value)
    if data.currency != order.currency or data.amount != order.total_amount:
        raise ValidationFailed("the amount must equal the order total", field="amount")

    charge = await gateway.charge(order.total_amount, order.currency, data.token)
    payment = Payment(
        order_id=order.id,  # type: ignore[arg-type]
        gateway=data.gateway,
        amount=order.total_amount,
        currency=order.currency,
        status=PaymentStatus.CAPTURED if charge.captured else PaymentStatus.DECLINED,
        reference=charge.reference,
        message=charge.message,
    )
    session.add(payment)
    await session.flush()
    if charge.captured:
        await orders.transition_order(
            session,
            order.id,  # type: ignore[arg-type]
            OrderStatus.PAID,
            note=f"paid via {data.gateway} ({payment.reference})",
            actor=viewer.subject,
        )
        await outbox.emit(
            session,
            "payment_captured",
            {
                "order_id": order.id,
                "payment_id": payment.id,
                "amount": payment.amount,
                "currency": payment.currency,
                "gateway": payment.gateway,
            },
        )
    return payment
