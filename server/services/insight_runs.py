"""What every step of the insights recomputation shares: its lock, the record of its last run
(``insight_run``: the "as of" moment and a fingerprint of the data it saw, so that a run on the
same data and day can skip), and the dialect's upsert.

A step runs in one write transaction that starts with :func:`lock`: on PostgreSQL a
transaction-level advisory lock of its own (``pg_advisory_xact_lock(insights, step)``), on
SQLite the database's write lock, which ``BEGIN IMMEDIATE`` already took. Two runs of a step
(the job on two servers, the job and the command) therefore take turns, and the second sees
what the first wrote.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import InsightRun, utcnow


def _int4(data: bytes) -> int:
    value = zlib.crc32(data)
    return value - (1 << 32) if value >= (1 << 31) else value


def lock_keys(step: str) -> tuple[int, int]:
    """The ``pg_advisory_xact_lock(int4, int4)`` keys of a step's write transaction."""
    return (_int4(b"shopgraph.insights"), _int4(step.encode()))


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


async def lock(session: AsyncSession, step: str) -> None:
    """Queue behind any other run of ``step`` until this transaction ends. On SQLite the
    transaction already holds the database's write lock (BEGIN IMMEDIATE)."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(*lock_keys(step))))


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def last_run(session: AsyncSession, step: str) -> tuple[str, datetime] | None:
    """The fingerprint and "as of" moment of the step's last run, if any."""
    row = (
        await session.execute(
            select(col(InsightRun.fingerprint), col(InsightRun.as_of)).where(
                col(InsightRun.step) == step
            )
        )
    ).one_or_none()
    return (str(row[0]), utc(row[1])) if row is not None else None


def unchanged(last: tuple[str, datetime] | None, fingerprint: str, moment: datetime) -> bool:
    """Whether a run at ``moment`` seeing ``fingerprint`` may skip: the last run saw the same
    data on the same (UTC) day."""
    return last is not None and last[0] == fingerprint and last[1].date() == moment.date()


def insert(dialect: str) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update``/``on_conflict_do_nothing``)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def record_run(
    session: AsyncSession, step: str, *, fingerprint: str, as_of: datetime, customers: int
) -> None:
    """Remember this run of ``step``: what it saw and the moment it computed for."""
    run = insert(dialect_of(session))(InsightRun).values(
        step=step,
        fingerprint=fingerprint,
        as_of=as_of,
        finished_at=utcnow(),
        customers=customers,
    )
    connection = await session.connection()
    await connection.execute(
        run.on_conflict_do_update(
            index_elements=["step"],
            set_={
                name: run.excluded[name]
                for name in ("fingerprint", "as_of", "finished_at", "customers")
            },
        )
    )


CHUNK = 5000


def chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    """``items`` in slices of at most :data:`CHUNK` (one executemany each)."""
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
