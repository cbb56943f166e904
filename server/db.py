"""Database engines and sessions (SQLAlchemy 2 async, SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server import json_codec

WRITE_OPTION = "shopgraph_write"

# Connections a pool keeps open, and how many more it opens under a burst (then closes).
# SQLite keeps more: a request holds its connection until its response is sent and its
# transaction ended, and under keep-alive a client's next request starts before that, so a busy
# server holds about twice as many connections as it has clients. A connection the pool cannot
# keep is closed, and its successor costs a thread, the PRAGMAs and a fresh parse of the schema.
# (Measured with 8 keep-alive clients on the stock aiosqlite driver: keeping 5 or 10 cost the
# GraphQL storefront page 5-15% more CPU per request than keeping 20.)
SQLITE_POOL = (20, 20)
POSTGRES_POOL = (10, 20)


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> AsyncEngine:
    """Create the async engine for ``url``; ``pool_size``/``max_overflow`` default per backend
    (:data:`SQLITE_POOL`, :data:`POSTGRES_POOL`).

    SQLite runs on SQLAlchemy's stock ``sqlite+aiosqlite`` dialect (every statement on the
    driver's thread, none on the event loop's), with WAL, a busy timeout and explicit
    transactions: a transaction that will write starts with ``BEGIN IMMEDIATE`` (see
    :func:`mark_write`), so concurrent writers queue on the lock instead of failing a
    read-to-write upgrade.
    """
    kwargs: dict[str, Any] = {"echo": echo, "json_deserializer": json_codec.loads}
    if not _in_memory(url):  # an in-memory SQLite database has one connection, no pool to size
        size, overflow = SQLITE_POOL if url.startswith("sqlite") else POSTGRES_POOL
        kwargs["pool_size"] = size if pool_size is None else pool_size
        kwargs["max_overflow"] = overflow if max_overflow is None else max_overflow
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
        # Returned connections are rolled back only when a transaction is really open (see
        # _configure_sqlite): a session that already ended its transaction costs no second
        # ROLLBACK round trip to the driver's thread.
        kwargs["pool_reset_on_return"] = None
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _configure_sqlite(engine)
    return engine


def _in_memory(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def _configure_sqlite(engine: AsyncEngine) -> None:
    """SQLAlchemy's documented recipe for explicit transactions on pysqlite/aiosqlite (the
    driver opens none itself; the ``begin`` event sends ours), plus WAL and a busy timeout."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
        # The driver knows whether a transaction is open without a round trip; a connection
        # discarded by the garbage collector (not asyncio-safe) is closed, never reused.
        if state.asyncio_safe and dbapi_conn.driver_connection.in_transaction:
            dbapi_conn.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def mark_write(session: AsyncSession) -> None:
    """Declare that ``session``'s transaction will write.

    Call before the first statement of a transaction that changes data. On SQLite the
    transaction then opens with ``BEGIN IMMEDIATE``, which takes the write lock before that first
    statement runs; on PostgreSQL it is a no-op (row locks and conditional UPDATEs do the work).
    """
    if not session.in_transaction():
        await session.connection(execution_options={WRITE_OPTION: True})


T = TypeVar("T")


async def in_session(
    database_url: str, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool = False
) -> T:
    """Run ``work(session)`` in one transaction on the database at ``database_url``, for a
    command line (a plugin's ``cli_commands``): committed when ``write`` and ``work`` returns,
    rolled back otherwise; the engine is closed after."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            if write:
                await mark_write(session)
            result = await work(session)
            if write:
                await session.commit()
            return result
    finally:
        await engine.dispose()


def run_in_session(
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    write: bool = False,
    database_url: str | None = None,
) -> T:
    """:func:`in_session` from synchronous code (a command line), on the configured database
    unless ``database_url`` is given."""
    from server.config import get_settings
    from server.migrate import run_async

    url = database_url or get_settings().database_url
    return run_async(lambda: in_session(url, work, write=write))
