"""Asking the payment gateways plugins offer (the payment hooks), and giving money back.

A gateway is offered by one plugin (``payment_gateways``: the core offers ``test`` and
``manual`` itself, server.services.builtin_gateways) and its hooks are called on that plugin
only. Paying is server.services.payments'; refunding a cancelled order's captured payments is
here, below both payments and orders.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.hookcall import PluginFailed
from server.hooktypes import CORE, PaymentGateway, PaymentOutcome, PaymentResult
from server.models import Order, Payment, PaymentStatus, utcnow
from server.plugins import PluginRuntime
from server.services import answers, outbox

REFUNDED_EVENT = "payment_refunded"

# What each payment hook may answer.
ANSWERS: dict[str, frozenset[PaymentOutcome]] = {
    "authorise_payment": frozenset(
        {
            PaymentOutcome.AUTHORISED,
            PaymentOutcome.CAPTURED,
            PaymentOutcome.PENDING,
            PaymentOutcome.DECLINED,
        }
    ),
    "capture_payment": frozenset(
        {PaymentOutcome.CAPTURED, PaymentOutcome.PENDING, PaymentOutcome.DECLINED}
    ),
    "refund_payment": frozenset({PaymentOutcome.REFUNDED}),
}


async def offered(plugins: PluginRuntime) -> dict[str, PaymentGateway]:
    """Every gateway the enabled plugins (and the core) offer, by code."""
    offered: dict[str, PaymentGateway] = {}
    for plugin, answer in await plugins.call("payment_gateways"):
        for gateway in answers.stamped_all(plugin, "payment_gateways", answer, PaymentGateway):
            other = offered.get(gateway.code)
            if other is not None:
                # The plugin to blame is the one that is not the core.
                culprit, first = (
                    (other.source, plugin) if plugin == CORE else (plugin, other.source)
                )
                raise PluginFailed(
                    culprit,
                    "payment_gateways",
                    ValueError(f"gateway {gateway.code!r} is offered by plugin {first!r} too"),
                )
            offered[gateway.code] = gateway
    return offered


async def ask(
    plugins: PluginRuntime, gateway: PaymentGateway, hook: str, **kwargs: Any
) -> PaymentResult:
    """Call ``hook`` on the plugin offering ``gateway``, and check its answer."""
    try:
        answer = await plugins.answer_of(gateway.source, hook, gateway=gateway.code, **kwargs)
    except LookupError as exc:
        raise PluginFailed(gateway.source, hook, exc) from exc
    if not isinstance(answer, PaymentResult):
        raise PluginFailed(
            gateway.source, hook, TypeError(f"returned {answer!r}, not a PaymentResult")
        )
    try:
        status = PaymentOutcome(answer.status)
    except ValueError as exc:
        raise PluginFailed(gateway.source, hook, exc) from exc
    if status not in ANSWERS[hook]:
        allowed = ", ".join(sorted(ANSWERS[hook]))
        raise PluginFailed(
            gateway.source, hook, ValueError(f"answered {status.value}; expected {allowed}")
        )
    return answer


async def refund(
    session: AsyncSession,
    plugins: PluginRuntime,
    gateway: PaymentGateway | None,
    order: Order,
    payment: Payment,
    *,
    reason: str,
) -> None:
    if gateway is None:
        # The plugin that took the money is no longer enabled: someone must give it back.
        message = f"the {payment.gateway} gateway is not enabled: refund this payment by hand"
    else:
        result = await ask(
            plugins,
            gateway,
            "refund_payment",
            session=session,
            order=order,
            payment=payment,
            reason=reason,
        )
        message = result.message
    payment.status = PaymentStatus.REFUNDED
    payment.updated_at = utcnow()
    payment.message = f"{reason}: {message}" if message else reason
    session.add(payment)
    await session.flush()
    await announce_refund(session, payment)


async def announce_refund(session: AsyncSession, payment: Payment) -> None:
    """Tell plugins a payment was given back (``payment_refunded``): after a delivery, that is
    a return."""
    await outbox.emit(
        session,
        REFUNDED_EVENT,
        {
            "order_id": payment.order_id,
            "payment_id": payment.id,
            "amount": payment.amount,
            "currency": payment.currency,
            "gateway": payment.gateway,
        },
    )


async def refund_captured(
    session: AsyncSession, plugins: PluginRuntime, order: Order, *, reason: str
) -> None:
    """Refund every captured payment of a cancelled order through its gateway."""
    captured = list(
        await session.scalars(
            select(Payment)
            .where(col(Payment.order_id) == order.id, col(Payment.status) == PaymentStatus.CAPTURED)
            .order_by(col(Payment.id))
        )
    )
    if not captured:
        return
    offered_now = await offered(plugins)
    for payment in captured:
        await refund(
            session, plugins, offered_now.get(payment.gateway), order, payment, reason=reason
        )
