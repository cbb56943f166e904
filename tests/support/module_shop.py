"""One served shop per backend for every test of a module: a database copied from the session's
template, seeded once, and a live server over it.

For modules whose tests read a catalogue they do not change (or change only in ways the other
tests of the module do not see): seeding and starting a server once per backend instead of once
per test keeps the suite fast.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server import migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.plugins import load_plugins
from tests.support.server import LiveServer

_serial = itertools.count()


@dataclass
class ModuleShop:
    backend: str
    database_url: str
    url: str
    app: Starlette
    # What the seed function returned (ids, tokens).
    seeded: Any


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _seed(database_url: str, seed: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await seed(session)
    finally:
        await engine.dispose()


@contextmanager
def module_shop(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed: Callable[[AsyncSession], Awaitable[Any]],
) -> Iterator[ModuleShop]:
    """A shop on ``request.param``'s backend ("sqlite" or "postgresql"), seeded by ``seed``."""
    backend = str(request.param)
    admin: str | None = None
    drop: str | None = None
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("module-shop") / "shop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database_url = f"sqlite+aiosqlite:///{path}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        if admin is None:
            pytest.skip("no PostgreSQL binaries on this machine")
        template = request.getfixturevalue("postgres_template")
        drop = f"shopgraph_module_{os.getpid()}_{next(_serial)}"

        async def create() -> None:
            conn = await asyncpg.connect(_plain(admin or ""))
            await conn.execute(f'CREATE DATABASE "{drop}" TEMPLATE "{template}"')
            await conn.close()

        migrate.run_async(create)
        database_url = f"{admin.rpartition('/')[0]}/{drop}"
    settings = Settings(
        database_url=database_url, env="test", graphiql=True, cost_bucket_size=1_000_000
    )
    seeded = migrate.run_async(lambda: _seed(database_url, seed))
    app = create_app(settings, load_plugins(settings))
    server = LiveServer(app).start()
    try:
        yield ModuleShop(backend, database_url, server.url, app, seeded)
    finally:
        server.stop()
        if drop is not None and admin is not None:

            async def remove() -> None:
                conn = await asyncpg.connect(_plain(admin or ""))
                await conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
                await conn.close()

            migrate.run_async(remove)
