"""Payments through the gateways plugins offer (the payment hooks).

A gateway is offered by one plugin (``payment_gateways``) and named by its code on
``payOrder``. The core offers two itself, on the same hooks (server.services.gateways):
``test`` and ``manual``. Paying an order plans its shipments (``plan_shipments``), then asks
the gateway to authorise the total; an AUTHORISED payment is captured at once, a CAPTURED one
pays the order, a PENDING one waits for the gateway's webhook, a DECLINED one is recorded (it
is part of the order's history, and fraud checks read it) and the order stays
PENDING_PAYMENT. Cancelling an order refunds its captured payments through their gateways.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer
from server.hooktypes import PaymentGateway, PaymentOutcome, PaymentResult, WebhookReply
from server.models import Cart, Order, OrderStatus, Payment, PaymentStatus, utcnow
from server.plugins import PluginFailed, PluginRuntime
from server.services import fulfilment, gateways, orders, outbox
from server.services.errors import InvalidTransition, NotFound, UnknownGateway, ValidationFailed

log = logging.getLogger("shopgraph.payments")

P = PaymentStatus
# Where a webhook may move a payment (a repeat or a stale report changes nothing).
WEBHOOK_MOVES: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.PENDING: frozenset({P.AUTHORISED, P.CAPTURED, P.DECLINED}),
    P.AUTHORISED: frozenset({P.CAPTURED, P.DECLINED}),
    P.CAPTURED: frozenset({P.REFUNDED}),
}


@dataclass(frozen=True)
class PayOrderInput:
    order_id: int
    gateway: str
    amount: int
    currency: str
    token: str | None = None
    cart_token: str | None = None


@dataclass(frozen=True)
class PaymentAttempt:
    """A payment as ``payOrder`` left it, and what its shopper must do next (PENDING)."""

    payment: Payment
    next_action: str | None = None


async def _order_for_payment(session: AsyncSession, viewer: Viewer, data: PayOrderInput) -> Order:
    # Locked: of two payments of one order at once, the second sees the first's outcome.
    order = await orders.load(session, data.order_id, lock=True)
    if order is None:
        raise NotFound("order", data.order_id, field="orderId")
    # Its customer pays it; orders.manage pays any order (a reader of orders may not).
    if orders.is_owner(order, viewer) or orders.can_manage(viewer):
        return order
    # A guest pays for their order by showing the token of the cart it was placed from.
    if order.customer_id is None and data.cart_token and order.cart_id is not None:
        cart = await session.scalar(select(Cart).where(col(Cart.token) == data.cart_token))
        if cart is not None and cart.id == order.cart_id:
            return order
    raise NotFound("order", data.order_id, field="orderId")


async def pay_order(
    session: AsyncSession, plugins: PluginRuntime, viewer: Viewer, data: PayOrderInput
) -> PaymentAttempt:
    """Pay the order's total through the gateway ``data.gateway``. The payment comes back
    CAPTURED (the order is PAID now), PENDING (the gateway's webhook settles it) or DECLINED
    (recorded; the order is unchanged)."""
    offered = await gateways.offered(plugins)
    gateway = offered.get(data.gateway)
    usable = [g.code for g in offered.values() if not g.staff_only or orders.can_manage(viewer)]
    if gateway is None:
        raise UnknownGateway(data.gateway, usable)
    order = await _order_for_payment(session, viewer, data)
    if gateway.code not in usable:
        raise ValidationFailed(
            f"the {gateway.code} gateway is for recording offline payments (orders.manage)",
            field="gateway",
        )
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition("order", order.status.value, OrderStatus.PAID.value)
    if data.currency != order.currency or data.amount != order.total_amount:
        raise ValidationFailed("the amount must equal the order total", field="amount")

    # Planned before any money moves: a plan that cannot be carried out fails the payment.
    await fulfilment.plan_order(session, plugins, order)
    result = await gateways.ask(
        plugins,
        gateway,
        "authorise_payment",
        session=session,
        order=order,
        amount=order.total_amount,
        currency=order.currency,
        token=data.token,
    )
    payment = Payment(
        order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
        gateway=gateway.code,
        amount=order.total_amount,
        currency=order.currency,
        status=PaymentStatus(PaymentOutcome(result.status).value),
        reference=result.reference,
        message=result.message,
    )
    session.add(payment)
    await session.flush()
    await _follow(session, plugins, gateway, order, payment, actor=viewer.subject)
    return PaymentAttempt(payment=payment, next_action=result.next_action)


async def _move(
    session: AsyncSession, payment: Payment, target: PaymentStatus, result: PaymentResult | None
) -> bool:
    """Move ``payment`` from the status it has to ``target`` with one conditional UPDATE;
    False when a concurrent change moved it first."""
    values: dict[str, object] = {"status": target, "updated_at": utcnow()}
    if result is not None:
        values["message"] = result.message
        if result.reference:
            values["reference"] = result.reference
    moved = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.status) == payment.status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(payment)
    return moved.rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say


async def _follow(
    session: AsyncSession,
    plugins: PluginRuntime,
    gateway: PaymentGateway,
    order: Order,
    payment: Payment,
    *,
    actor: str,
) -> None:
    """Carry a payment on from where its gateway left it: an AUTHORISED one is captured; a
    CAPTURED one pays its order, or is refunded at once when the order no longer waits for
    payment (it was cancelled, or paid otherwise, meanwhile)."""
    if payment.status is P.AUTHORISED:
        result = await gateways.ask(
            plugins, gateway, "capture_payment", session=session, order=order, payment=payment
        )
        await _move(session, payment, PaymentStatus(PaymentOutcome(result.status).value), result)
    if payment.status is not P.CAPTURED:
        return
    current = await orders.load(session, order.id, lock=True)  # type: ignore[arg-type]  # a stored row has its id
    assert current is not None
    if current.status is not OrderStatus.PENDING_PAYMENT:
        await gateways.refund(
            session,
            plugins,
            gateway,
            current,
            payment,
            reason=f"the order was {current.status.value} when the payment arrived",
        )
        return
    await orders.transition_order(
        session,
        plugins,
        current.id,  # type: ignore[arg-type]  # a stored row has its id
        OrderStatus.PAID,
        note=f"paid via {gateway.code} ({payment.reference})",
        actor=actor,
    )
    await outbox.emit(
        session,
        "payment_captured",
        {
            "order_id": current.id,
            "payment_id": payment.id,
            "amount": payment.amount,
            "currency": payment.currency,
            "gateway": payment.gateway,
        },
    )


async def handle_webhook(
    session: AsyncSession,
    plugins: PluginRuntime,
    code: str,
    headers: Mapping[str, str],
    body: bytes,
) -> WebhookReply:
    """A gateway's call to ``POST /payments/<code>/webhook``: its plugin reads it
    (``payment_webhook``), then each payment update it carries is applied."""
    offered = await gateways.offered(plugins)
    gateway = offered.get(code)
    if gateway is None:
        raise UnknownGateway(code, list(offered))
    try:
        reply = await plugins.answer_of(
            gateway.source,
            "payment_webhook",
            session=session,
            gateway=code,
            headers=headers,
            body=body,
        )
    except LookupError as exc:
        raise PluginFailed(gateway.source, "payment_webhook", exc) from exc
    if not isinstance(reply, WebhookReply):
        raise PluginFailed(
            gateway.source,
            "payment_webhook",
            TypeError(f"returned {reply!r}, not a WebhookReply"),
        )
    for update_ in reply.updates:
        await _apply(session, plugins, gateway, update_.reference, update_.status, update_.message)
    return reply


async def _apply(
    session: AsyncSession,
    plugins: PluginRuntime,
    gateway: PaymentGateway,
    reference: str,
    status: PaymentOutcome,
    message: str,
) -> None:
    payment = await session.scalar(
        select(Payment)
        .where(col(Payment.gateway) == gateway.code, col(Payment.reference) == reference)
        .order_by(col(Payment.id))
        .limit(1)
    )
    if payment is None:
        log.warning("gateway %s reported on unknown payment %r", gateway.code, reference)
        return
    target = PaymentStatus(PaymentOutcome(status).value)
    if target not in WEBHOOK_MOVES.get(payment.status, frozenset()):
        # A repeat (gateways deliver at least once) or a report older than what we know.
        log.info(
            "gateway %s: payment %s is %s; %s changes nothing",
            gateway.code,
            payment.id,
            payment.status.value,
            target.value,
        )
        return
    result = PaymentResult(status=PaymentOutcome(target.value), reference="", message=message)
    if not await _move(session, payment, target, result):
        return  # a concurrent delivery of the same report got there first
    if target is P.REFUNDED:
        # Given back in the gateway's own dashboard: after a delivery, a return.
        await gateways.announce_refund(session, payment)
        return
    order = await orders.load(session, payment.order_id)
    assert order is not None
    await _follow(session, plugins, gateway, order, payment, actor=f"gateway:{gateway.code}")
