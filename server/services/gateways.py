"""Asking the payment gateways plugins offer (the payment hooks), and giving money back.

A gateway is offered by one plugin (``payment_gateways``: the core offers ``test`` and
``manual`` itself, server.services.builtin_gateways) and its hooks are called on that plugin
only. Paying is server.services.payments'; refunding a cancelled order's captured payments, and
part of an order's captured payments (``refund_amount``: a price-protection credit), is here,
below both payments and orders.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.db import mark_write
from server.hookcall import PluginFailed
from server.hooktypes import CORE, PaymentGateway, PaymentOutcome, PaymentResult
from server.models import Order, Payment, PaymentRefund, PaymentStatus, utcnow
from server.plugins import PluginRuntime
from server.services import answers, outbox
from server.services.errors import Conflict, ValidationFailed

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
    "refund_payment_part": frozenset({PaymentOutcome.REFUNDED}),
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
    assert payment.id is not None
    # Parts given back before (refund_amount): only the rest is refunded now.
    before = (await refunded_of(session, [payment.id])).get(payment.id, 0)
    if gateway is None:
        # The plugin that took the money is no longer enabled: someone must give it back.
        message = f"the {payment.gateway} gateway is not enabled: refund this payment by hand"
    elif before == 0:
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
    elif before < payment.amount:
        rest = payment.amount - before
        part = await _refund_part(session, plugins, gateway, order, payment, rest, reason)
        message = part.message
    else:
        message = "refunded in parts before"
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


async def refunded_of(session: AsyncSession, payment_ids: list[int]) -> dict[int, int]:
    """What of each payment was given back in parts (``payment_refund``), by payment id."""
    if not payment_ids:
        return {}
    rows = await session.execute(
        select(col(PaymentRefund.payment_id), func.sum(col(PaymentRefund.amount)))
        .where(col(PaymentRefund.payment_id).in_(payment_ids))
        .group_by(col(PaymentRefund.payment_id))
    )
    return {int(pid): int(total or 0) for pid, total in rows.all()}


async def refundable(session: AsyncSession, order_id: int) -> int:
    """What of ``order_id``'s captured payments may still be given back: captured minus what
    was refunded in parts."""
    captured = list(
        await session.scalars(
            select(Payment).where(
                col(Payment.order_id) == order_id, col(Payment.status) == PaymentStatus.CAPTURED
            )
        )
    )
    parts = await refunded_of(session, [p.id for p in captured if p.id is not None])
    return sum(p.amount - parts.get(p.id or 0, 0) for p in captured)


async def _refund_part(
    session: AsyncSession,
    plugins: PluginRuntime,
    gateway: PaymentGateway,
    order: Order,
    payment: Payment,
    amount: int,
    reason: str,
) -> PaymentRefund:
    result = await ask(
        plugins,
        gateway,
        "refund_payment_part",
        session=session,
        order=order,
        payment=payment,
        amount=amount,
        reason=reason,
    )
    assert payment.id is not None and order.id is not None  # stored rows
    part = PaymentRefund(
        payment_id=payment.id,
        order_id=order.id,
        amount=amount,
        currency=payment.currency,
        reference=result.reference[:120],
        reason=reason[:500],
        message=result.message[:500],
    )
    session.add(part)
    await session.flush()
    return part


async def refund_amount(
    session: AsyncSession, plugins: PluginRuntime, order: Order, amount: int, reason: str
) -> str:
    """Give ``amount`` (minor units of the order's currency) of ``order``'s captured payments
    back through their gateways (``refund_payment_part``), oldest payment first, in the
    session's transaction; the refunds' references (comma-separated when several payments
    share it). Never more than captured minus refunded: asking for more is a
    ValidationFailed and nothing is written. The payments are locked for the transaction
    (SQLite: the write lock; PostgreSQL: their rows), so concurrent refunds of one order
    cannot both take the same money. A payment given back whole becomes REFUNDED."""
    if amount <= 0:
        raise ValidationFailed("a refund is more than 0", field="amount")
    assert order.id is not None
    await mark_write(session)
    captured = list(
        await session.scalars(
            select(Payment)
            .where(col(Payment.order_id) == order.id, col(Payment.status) == PaymentStatus.CAPTURED)
            .order_by(col(Payment.id))
            .with_for_update()
        )
    )
    parts = await refunded_of(session, [p.id for p in captured if p.id is not None])
    left = {p.id: p.amount - parts.get(p.id or 0, 0) for p in captured}
    if amount > sum(left.values()):
        raise ValidationFailed(
            f"only {sum(left.values())} of the order's payments may still be refunded",
            field="amount",
        )
    offered_now = await offered(plugins)
    references: list[str] = []
    due = amount
    for payment in captured:
        take = min(due, left[payment.id])
        if take <= 0:
            continue
        gateway = offered_now.get(payment.gateway)
        if gateway is None:
            raise Conflict(f"the {payment.gateway} gateway is not enabled: refund it by hand")
        part = await _refund_part(session, plugins, gateway, order, payment, take, reason)
        references.append(part.reference)
        due -= take
        if take == left[payment.id]:
            payment.status = PaymentStatus.REFUNDED
            payment.updated_at = utcnow()
            payment.message = f"{reason}: refunded in parts"[:500]
            session.add(payment)
            await session.flush()
            await announce_refund(session, payment)
        if due == 0:
            break
    return ",".join(references)
