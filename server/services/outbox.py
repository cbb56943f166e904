"""The outbox: domain events written in the same transaction as the change they report."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import OutboxEvent

# PostgreSQL channel on which every committed event's name is announced to the other
# processes (their response caches drop what the event changes).
NOTIFY_CHANNEL = "shopgraph_events"


async def emit(session: AsyncSession, name: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record event ``name`` in the current transaction.

    It becomes visible, and is dispatched to plugins, only if the transaction commits; a crash
    after the commit loses nothing, because dispatch reads the table. On PostgreSQL the name is
    also sent with ``pg_notify``, which is delivered to listeners only when (and if) the
    transaction commits.
    """
    event = OutboxEvent(name=name, payload=payload)
    session.add(event)
    await session.flush()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, name)))
    return event
