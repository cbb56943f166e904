"""The outbox: domain events written in the same transaction as the change they report."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import OutboxEvent


async def emit(session: AsyncSession, name: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record event ``name`` in the current transaction.

    It becomes visible, and is dispatched to plugins, only if the transaction commits; a crash
    after the commit loses nothing, because dispatch reads the table.
    """
    event = OutboxEvent(name=name, payload=payload)
    session.add(event)
    await session.flush()
    return event
