"""Alembic environment: async engine, the core's metadata plus every enabled plugin's.

``server.migrate`` passes the plugin set (``plugins``: its enabled plugins' ``models`` hook
names the modules to import) and may pass ``include_object`` (autogenerating a plugin's
revision compares that plugin's tables only). Run by plain ``alembic`` (alembic.ini), it reads
the core alone.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from server.config import get_settings
from server.db import create_engine
from server.migrate import import_all_models, include_object, render_item, run_async

config = context.config
import_all_models(config.attributes.get("plugins"))
target_metadata = SQLModel.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=config.attributes.get("include_object", include_object),
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            # Foreign keys were off while tables were rebuilt: every reference must still hold.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


async def _sqlite_foreign_keys(connection: AsyncConnection, on: bool) -> None:
    """Switch SQLite's foreign-key enforcement, outside any transaction (inside one, SQLite
    ignores the switch). Off while migrating: batch mode rebuilds a table (copy, DROP, RENAME),
    and dropping a table other rows refer to (order_line, by shipment_line) fails an enforced
    check even though the rebuilt table has the same rows. alembic's batch documentation
    recommends it; ``_run`` checks every reference before the migration commits."""
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # a live connection
    await raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


async def _run_async() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            await _sqlite_foreign_keys(connection, on=False)
        await connection.run_sync(_run)
        await connection.commit()
        if sqlite:
            await _sqlite_foreign_keys(connection, on=True)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        run_async(_run_async)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
