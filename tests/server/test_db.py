"""The SQLite engine: one driver trip per statement, explicit transactions and what a pooled
connection is returned as."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server import sqlite_driver
from server.app import create_app
from server.config import Settings
from server.db import POSTGRES_POOL, SQLITE_POOL, create_engine, mark_write, session_factory
from server.sqlite_driver import DriverThread

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


async def _driver(session: AsyncSession) -> DriverThread:
    raw = await (await session.connection()).get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, DriverThread)
    return driver


def _trace(driver: DriverThread) -> list[tuple[str, str]]:
    """Every statement the sqlite3 connection runs from now on, and on which thread: the
    event loop's (``loop``) or the driver's (``driver``)."""
    seen: list[tuple[str, str]] = []
    loop = threading.get_ident()

    def record(sql: str) -> None:
        where = "loop" if threading.get_ident() == loop else "driver"
        seen.append((" ".join(sql.split())[:40], where))

    driver._conn.set_trace_callback(record)
    return seen


async def test_reads_run_on_the_loops_thread_and_the_rest_takes_one_trip(
    engine: AsyncEngine,
) -> None:
    async with session_factory(engine)() as session:
        driver = await _driver(session)
        trace, handed = _trace(driver), driver.handed
        rows = (await session.execute(text("SELECT id, slug FROM category"))).all()
        assert rows == []
    # A read-only session: its BEGIN, its read and its ROLLBACK, none on the driver's thread.
    assert trace == [
        ("BEGIN", "loop"),
        ("SELECT id, slug FROM category", "loop"),
        ("ROLLBACK", "loop"),
    ]
    assert driver.handed == handed
    assert not driver.in_transaction

    async with session_factory(engine)() as session:
        await mark_write(session)
        driver = await _driver(session)
        trace, handed = _trace(driver), driver.handed
        await session.execute(INSERT_TEA)
        assert await session.scalar(text("SELECT count(*) FROM category")) == 1
        await session.commit()
    # BEGIN IMMEDIATE waits for the write lock and COMMIT may checkpoint: the driver's
    # thread, one trip each. A read inside the write transaction stays on the loop's.
    assert trace == [
        ("BEGIN IMMEDIATE", "driver"),
        ("INSERT INTO category (name, slug, descri", "driver"),
        ("SELECT count(*) FROM category", "loop"),
        ("COMMIT", "driver"),
    ]
    assert driver.handed - handed == 2


LONG_READ = text(
    "SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
    "WHERE x < :upto) SELECT x FROM n)"
)


async def test_a_read_past_its_budget_moves_to_the_drivers_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with session_factory(engine)() as session:
        await mark_write(session)
        await session.execute(INSERT_TEA)
        driver = await _driver(session)
        trace = _trace(driver)
        assert await session.scalar(LONG_READ, {"upto": 10}) == 10
        # Interrupted on the loop's thread, then read in full on the driver's.
        assert await session.scalar(LONG_READ, {"upto": 300_000}) == 300_000
        monkeypatch.setattr(sqlite_driver, "INLINE_READ_SECONDS", 0.0)
        assert await session.scalar(LONG_READ, {"upto": 1000}) == 1000
        await session.commit()
    threads = [where for sql, where in trace if sql.startswith("SELECT count(*)")]
    assert threads == ["loop", "loop", "driver", "loop", "driver"]
    # The interrupted reads left the transaction they were part of as it was.
    async with session_factory(engine)() as session:
        assert await session.scalar(text("SELECT count(*) FROM category")) == 1


async def test_a_connection_whose_thread_is_busy_sends_everything_there(
    engine: AsyncEngine,
) -> None:
    # A request cancelled while its statement ran leaves the thread busy with it: the next use
    # of the connection queues behind it rather than running beside it.
    async with session_factory(engine)() as session:
        await mark_write(session)
        await session.execute(INSERT_TEA)
        await session.commit()
    async with session_factory(engine)() as session:
        driver = await _driver(session)
        trace = _trace(driver)
        busy = asyncio.ensure_future(driver._execute(time.sleep, 0.3))
        await asyncio.sleep(0)
        assert not driver.idle
        assert await session.scalar(text("SELECT slug FROM category")) == "tea"
        assert busy.done()
        assert driver.idle
        busy = asyncio.ensure_future(driver._execute(time.sleep, 0.3))
        await asyncio.sleep(0)
    await busy
    assert trace == [
        ("BEGIN", "driver"),
        ("SELECT slug FROM category", "driver"),
        ("ROLLBACK", "driver"),
    ]


async def test_the_one_trip_cursor_reports_what_a_driver_cursor_does(engine: AsyncEngine) -> None:
    insert = text(
        "INSERT INTO category (name, slug, description, position) VALUES (:n, :s, '', :p)"
    )
    async with session_factory(engine)() as session:
        await mark_write(session)
        one = await session.execute(insert, {"n": "Tea", "s": "tea", "p": 0})
        assert one.rowcount == 1
        assert one.lastrowid is not None
        many = await session.execute(
            insert, [{"n": f"Tea {i}", "s": f"tea-{i}", "p": i} for i in range(1, 6)]
        )
        assert many.rowcount == 5
        changed = await session.execute(
            text("UPDATE category SET position = position + 1 WHERE slug LIKE 'tea-%'")
        )
        assert changed.rowcount == 5
        result = await session.execute(
            text("SELECT id, slug FROM category WHERE slug LIKE 'tea%' ORDER BY id")
        )
        assert list(result.keys()) == ["id", "slug"]
        assert result.fetchone() == (one.lastrowid, "tea")
        assert [slug for _, slug in result.fetchmany(2)] == ["tea-1", "tea-2"]
        assert [slug for _, slug in result.all()] == ["tea-3", "tea-4", "tea-5"]
        await session.commit()
    async with session_factory(engine)() as session:
        # A failing statement raises the driver's error and leaves the session usable.
        with pytest.raises(IntegrityError):
            await session.execute(insert, {"n": "Tea", "s": "tea", "p": 0})
        await session.rollback()
        count = await session.scalar(text("SELECT count(*) FROM category WHERE slug LIKE 'tea%'"))
        assert count == 6
        # A streamed result keeps a real driver cursor and reads in chunks.
        stream = await session.stream(text("SELECT slug FROM category ORDER BY id"))
        assert [slug async for (slug,) in stream][-1] == "tea-5"


async def test_begin_goes_with_the_transactions_first_statement(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = create_engine(str(engine.url))
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert not driver.in_transaction  # BEGIN IMMEDIATE not sent yet
            await session.execute(
                text(
                    "INSERT INTO category (name, slug, description, position) VALUES ('A', 'a', '', 0)"
                )
            )
            assert driver.in_transaction
            # It holds the write lock: another writer gives up after its (shortened) wait.
            async with other.connect() as conn:
                await conn.exec_driver_sql("PRAGMA busy_timeout=50")
                await conn.commit()
            with pytest.raises(OperationalError, match="locked"):
                async with session_factory(other)() as writer:
                    await mark_write(writer)
                    await writer.execute(text("DELETE FROM category"))
            await session.commit()

        trips: list[str] = []
        queue = aiosqlite.Connection._execute

        async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
            trips.append(getattr(fn, "__name__", repr(fn)))
            return await queue(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        # A transaction that ends before any statement ran was never opened: no trip at all.
        async with session_factory(engine)() as session:
            await mark_write(session)
            await session.commit()
        assert trips == []
        # A streamed result, whose cursor is the driver's own, still runs inside a transaction.
        async with session_factory(engine)() as session:
            stream = await session.stream(text("SELECT slug FROM category"))
            assert [slug async for (slug,) in stream] == ["a"]
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert driver.in_transaction
        assert not driver.in_transaction
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


async def test_pool_sizes_default_per_backend_and_can_be_set(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engines = [
        create_engine(url),
        create_engine(url, pool_size=3, max_overflow=0),
        create_engine("postgresql+asyncpg://shop@127.0.0.1:1/shop"),  # never connected
        create_engine("sqlite+aiosqlite://"),  # in memory: one connection, no pool to size
    ]
    try:
        sized = [(e.pool.size(), e.pool._max_overflow) for e in engines[:3]]  # type: ignore[attr-defined]
        assert sized == [SQLITE_POOL, (3, 0), POSTGRES_POOL]
        assert not hasattr(engines[3].pool, "size")
        # The app's engine takes them from the settings (SHOPGRAPH_DB_POOL_SIZE, ...).
        app = create_app(Settings(database_url=url, db_pool_size=4, db_max_overflow=2))
        engines.append(app.state.shopgraph.engine)
        assert (engines[4].pool.size(), engines[4].pool._max_overflow) == (4, 2)  # type: ignore[attr-defined]
    finally:
        for engine in engines:
            await engine.dispose()
