"""Migrations: up and down on both backends, and no drift between the models and the history."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from server import migrate
from server.config import Settings
from server.db import create_engine
from server.migrate import include_object
from tests.support.plugins import with_example


async def _diff(url: str) -> list[Any]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(
                    c, opts={"include_object": include_object, "compare_type": True}
                ),
                SQLModel.metadata,
            )
        )
    await engine.dispose()
    return diff


async def test_models_match_migrations(database_url: str) -> None:
    # The test database was built by `upgrade heads`: the models may not describe anything else.
    assert await _diff(database_url) == []


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, "base", plugins)
    assert migrate.current(database_url) == set()
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.current(database_url) == set(migrate.heads(plugins))
