"""The SQLite engine: the stock aiosqlite driver, explicit transactions and what a pooled
connection is returned as."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.app import create_app
from server.config import Settings
from server.db import POSTGRES_POOL, SQLITE_POOL, create_engine, mark_write, session_factory

INSERT_TEA = text(
    "INSERT INTO category (name, slug, description, position) VALUES ('Tea', 'tea', '', 0)"
)


@pytest.fixture
async def engine(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a copy of the migrated template database."""
    path = tmp_path / "shop.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    yield engine
    await engine.dispose()


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await conn.rollback()
        # A transaction the engine does not know about, opened on the driver itself.
        driver = raw.driver_connection
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute(INSERT_TEA.text)
        assert driver.in_transaction
    # Back in the pool: the open transaction was rolled back, its write lock released.
    async with session_factory(engine)() as session:
        count = await session.scalar(text("SELECT count(*) FROM category WHERE slug = 'tea'"))
        assert count == 0
        await session.execute(INSERT_TEA)
        await session.commit()
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert (await conn.scalar(text("SELECT count(*) FROM category"))) >= 1


async def _driver(session: AsyncSession) -> aiosqlite.Connection:
    raw = await (await session.connection()).get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, aiosqlite.Connection)
    return driver


async def _trace(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Every statement the engine's (one, pooled) connection runs from now on, and on which
    thread: the event loop's (``loop``) or another (``driver``)."""
    seen: list[tuple[str, str]] = []
    loop = threading.get_ident()

    def record(sql: str) -> None:
        where = "loop" if threading.get_ident() == loop else "driver"
        seen.append((" ".join(sql.split())[:40], where))

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.set_trace_callback(record)
    return seen


async def test_every_statement_runs_on_the_drivers_thread_in_an_explicit_transaction(
    engine: AsyncEngine,
) -> None:
    trace = await _trace(engine)
    async with session_factory(engine)() as session:
        rows = (await session.execute(text("SELECT id, slug FROM category"))).all()
        assert rows == []
        driver = await _driver(session)
        assert driver.in_transaction
    assert not driver.in_transaction
    async with session_factory(engine)() as session:
        await mark_write(session)
        await session.execute(INSERT_TEA)
        assert await session.scalar(text("SELECT count(*) FROM category")) == 1
        await session.commit()
    # A reader opens a deferred transaction, a writer takes the write lock with its BEGIN;
    # nothing runs on the event loop's thread.
    assert trace == [
        ("BEGIN", "driver"),
        ("SELECT id, slug FROM category", "driver"),
        ("ROLLBACK", "driver"),
        ("BEGIN IMMEDIATE", "driver"),
        ("INSERT INTO category (name, slug, descri", "driver"),
        ("SELECT count(*) FROM category", "driver"),
        ("COMMIT", "driver"),
    ]


async def test_a_writer_holds_the_write_lock_from_its_begin(engine: AsyncEngine) -> None:
    other = create_engine(str(engine.url))
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            driver = await _driver(session)
            # BEGIN IMMEDIATE already ran: the transaction is open before any statement.
            assert driver.in_transaction
            # It holds the write lock: another writer gives up after its (shortened) wait,
            # at its BEGIN, before it could read anything it would later fail to upgrade.
            async with other.connect() as conn:
                await conn.exec_driver_sql("PRAGMA busy_timeout=50")
                await conn.commit()
            with pytest.raises(OperationalError, match="locked"):
                async with session_factory(other)() as writer:
                    await mark_write(writer)
            # A reader is not held up (WAL): it sees the last committed state.
            async with session_factory(other)() as reader:
                assert await reader.scalar(text("SELECT count(*) FROM category")) == 0
            await session.execute(INSERT_TEA)
            await session.commit()
        async with session_factory(other)() as writer:
            await mark_write(writer)
            await writer.execute(text("DELETE FROM category"))
            await writer.commit()
    finally:
        await other.dispose()


async def test_a_burst_of_sessions_reuses_the_connections_it_opened(engine: AsyncEngine) -> None:
    # Fifteen requests at once, three times: the pool keeps the fifteen connections the first
    # burst opened (each new one is a thread, the PRAGMAs and a fresh parse of the schema).
    opened: list[int] = []
    event.listen(engine.sync_engine, "connect", lambda conn, record: opened.append(id(conn)))
    all_in = asyncio.Event()
    inside = 0

    async def request() -> None:
        nonlocal inside
        async with session_factory(engine)() as session:
            await session.execute(text("SELECT count(*) FROM product"))
            inside += 1
            if inside == 15:
                all_in.set()
            await all_in.wait()  # all fifteen hold a connection at once

    for _ in range(3):
        inside = 0
        all_in.clear()
        await asyncio.gather(*(request() for _ in range(15)))
    assert len(opened) == 15
    assert engine.pool.checkedin() == 15


async def _holds_at_most(engine: AsyncEngine, count: int) -> bool:
    """Whether ``engine`` hands out ``count`` connections at once, and makes the next one
    wait (pool size plus overflow)."""
    async with contextlib.AsyncExitStack() as held:
        for _ in range(count):
            await held.enter_async_context(engine.connect())
        try:
            await asyncio.wait_for(held.enter_async_context(engine.connect()), 1)
        except TimeoutError:
            return engine.pool.checkedout() == count
    return False


async def test_pool_sizes_default_per_backend_and_can_be_set(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engines = [
        create_engine(url),
        create_engine(url, pool_size=3, max_overflow=1),
        create_engine("postgresql+asyncpg://shop@127.0.0.1:1/shop"),  # never connected
        create_engine("sqlite+aiosqlite://"),  # in memory: one connection, no pool to size
    ]
    try:
        assert [e.pool.size() for e in engines[:3]] == [  # type: ignore[attr-defined]
            SQLITE_POOL[0],
            3,
            POSTGRES_POOL[0],
        ]
        assert await _holds_at_most(engines[0], sum(SQLITE_POOL))
        assert await _holds_at_most(engines[1], 4)
        assert not hasattr(engines[3].pool, "size")
        # The app's engine takes them from the settings (SHOPGRAPH_DB_POOL_SIZE, ...).
        app = create_app(Settings(database_url=url, db_pool_size=4, db_max_overflow=2))
        engines.append(app.state.shopgraph.engine)
        assert engines[4].pool.size() == 4  # type: ignore[attr-defined]
        assert await _holds_at_most(engines[4], 6)
    finally:
        for engine in engines:
            await engine.dispose()
