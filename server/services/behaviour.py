"""Behaviour events: the shopping path (view, search, favourite, add to cart, purchase)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import CustomerEvent, CustomerEventKind
from server.services import outbox


async def record(
    session: AsyncSession,
    *,
    kind: CustomerEventKind,
    customer_id: int | None = None,
    session_id: str | None = None,
    product_id: int | None = None,
    order_id: int | None = None,
    query: str | None = None,
    quantity: int | None = None,
    data: dict[str, Any] | None = None,
) -> CustomerEvent:
    """Store one behaviour event and announce it (``customer_event_recorded``)."""
    event = CustomerEvent(
        kind=kind,
        customer_id=customer_id,
        session_id=session_id,
        product_id=product_id,
        order_id=order_id,
        query=query,
        quantity=quantity,
        data=data or {},
    )
    session.add(event)
    await session.flush()
    await outbox.emit(
        session,
        "customer_event_recorded",
        {
            "event_id": event.id,
            "customer_id": customer_id,
            "session_id": session_id,
            "kind": kind.value,
            "product_id": product_id,
            "order_id": order_id,
            "query": query,
            "quantity": quantity,
        },
    )
    return event
