"""The SQLite engine: explicit transactions and what a pooled connection is returned as."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import text

from server.db import create_engine, session_factory


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await conn.rollback()
            # A transaction the engine does not know about, opened on the driver itself.
            driver = raw.driver_connection
            await driver.execute("BEGIN IMMEDIATE")
            await driver.execute(
                "INSERT INTO category (name, slug, description, position) "
                "VALUES ('Tea', 'tea', '', 0)"
            )
            assert driver.in_transaction
        # Back in the pool: the open transaction was rolled back, its write lock released.
        async with session_factory(engine)() as session:
            count = await session.scalar(text("SELECT count(*) FROM category WHERE slug = 'tea'"))
            assert count == 0
            await session.execute(
                text(
                    "INSERT INTO category (name, slug, description, position) "
                    "VALUES ('Tea', 'tea', '', 0)"
                )
            )
            await session.commit()
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert (await conn.scalar(text("SELECT count(*) FROM category"))) >= 1
    finally:
        await engine.dispose()


async def test_a_session_ends_its_transaction_with_one_rollback(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    statements: list[str] = []
    try:
        async with session_factory(engine)() as session:
            await session.execute(text("SELECT 1"))
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            rollback = driver.rollback

            async def counting_rollback() -> None:
                statements.append("ROLLBACK")
                await rollback()

            driver.rollback = counting_rollback
        # Closing the session rolls back; returning its connection to the pool does not again.
        assert statements == ["ROLLBACK"]
        assert not driver.in_transaction
    finally:
        await engine.dispose()
