"""Counting the SQL statements a request runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.applications import Starlette

from server.models import DeliveryStatus, OutboxDelivery, OutboxEvent, utcnow

# The app's background outbox dispatcher shares the engine: its statements (its tables, and the
# BEGIN/COMMIT around them on SQLite, where transaction control is explicit SQL) are not the
# request's.
_NOT_THE_REQUEST = ("outbox_", "job_lease")
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def counting(app: Starlette) -> Iterator[list[str]]:
    """Collect the data statements run on the app's engine while the block runs."""
    statements: list[str] = []
    engine = app.state.shopgraph.engine.sync_engine

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith(_TRANSACTION_CONTROL) or any(t in statement for t in _NOT_THE_REQUEST):
            return
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def settled(session: AsyncSession, attempts: int = 500) -> None:
    """Wait until a served app's outbox has nothing left to fan out or deliver now (read
    through ``session``, on the app's database): the plugins' event handlers run on the app's
    engine in the background, and their statements are not a request's."""
    for _ in range(attempts):
        waiting = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(col(OutboxEvent.dispatched_at).is_(None))
        )
        busy = await session.scalar(
            select(func.count())
            .select_from(OutboxDelivery)
            .where(
                col(OutboxDelivery.status) == DeliveryStatus.PENDING,
                or_(
                    col(OutboxDelivery.claim_token).is_not(None),
                    col(OutboxDelivery.next_attempt_at) <= utcnow(),
                ),
            )
        )
        await session.rollback()
        if not waiting and not busy:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox kept delivering")
