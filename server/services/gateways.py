"""Payment gateways: how money is charged and given back. ``manual`` (staff record money received
offline) and ``test`` (a card-like gateway for development: the token ``tok_declined`` is
declined); :func:`refund_captured` refunds a cancelled order's captured payments through them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Payment, PaymentStatus

DECLINED_TEST_TOKEN = "tok_declined"


@dataclass(frozen=True)
class Charge:
    captured: bool
    reference: str
    message: str = ""


class Gateway(Protocol):
    # Only for callers holding orders.manage (staff or an API key), never for customers.
    staff_only: bool

    async def charge(self, amount: int, currency: str, token: str | None) -> Charge: ...

    async def refund(self, payment: Payment) -> str: ...


class ManualGateway:
    """Money received outside shopgraph (bank transfer, cash): staff say so."""

    staff_only = True

    async def charge(self, amount: int, currency: str, token: str | None) -> Charge:
        return Charge(captured=True, reference=token or f"manual_{secrets.token_hex(6)}")

    async def refund(self, payment: Payment) -> str:
        return "refund to be paid back outside shopgraph"


class TestGateway:
    """Captures every token but ``tok_declined``."""

    staff_only = False

    async def charge(self, amount: int, currency: str, token: str | None) -> Charge:
        if token == DECLINED_TEST_TOKEN:
            return Charge(
                captured=False, reference=f"test_{secrets.token_hex(6)}", message="card declined"
            )
        return Charge(captured=True, reference=f"test_{secrets.token_hex(6)}")

    async def refund(self, payment: Payment) -> str:
        return f"refunded {payment.reference}"


GATEWAYS: dict[str, Gateway] = {"manual": ManualGateway(), "test": TestGateway()}


async def refund_captured(session: AsyncSession, order_id: int, *, reason: str) -> None:
    """Refund every captured payment of a cancelled order."""
    captured = await session.scalars(
        select(Payment).where(
            Payment.order_id == order_id, Payment.status == PaymentStatus.CAPTURED
        )
    )
    for payment in captured:
        gateway = GATEWAYS.get(payment.gateway)
        message = await gateway.refund(payment) if gateway is not None else ""
        payment.status = PaymentStatus.REFUNDED
        payment.message = f"{reason}: {message}" if message else reason
        session.add(payment)
    await session.flush()
