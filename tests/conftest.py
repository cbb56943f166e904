"""Fixtures: every API test runs against SQLite and against a throwaway PostgreSQL server.

Databases are migrated once per session with alembic (the real path) and copied per test:
a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server import migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.plugins import PluginRuntime, load_plugins
from tests.support.graphql import GraphQLClient
from tests.support.postgres import TemporaryPostgres, find_bindir
from tests.support.server import LiveServer

BACKENDS = ["sqlite", "postgresql"]
_db_counter = itertools.count()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    """A PostgreSQL server for the session, or None where there is none (never in CI)."""
    given = os.environ.get("SHOPGRAPH_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing in CI: install postgresql")
        yield None
        return
    server = TemporaryPostgres(bindir).start()
    try:
        yield server.url()
    finally:
        server.stop()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}", plugin_manager=load_plugins(Settings()).pm)
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str | None) -> str | None:
    if postgres_admin_url is None:
        return None
    name = f"shopgraph_template_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(_plain(postgres_admin_url))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    migrate.run_async(create)
    migrate.upgrade(
        _with_database(postgres_admin_url, name), plugin_manager=load_plugins(Settings()).pm
    )
    return name


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite" and request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only test")
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    if backend == "sqlite":
        path = tmp_path / "shop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    if admin is None:
        pytest.skip("no PostgreSQL binaries on this machine")
    template = request.getfixturevalue("postgres_template")
    name = f"shopgraph_test_{os.getpid()}_{next(_db_counter)}"
    conn = await asyncpg.connect(_plain(admin))
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(admin, name)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, env="test", graphiql=True)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return load_plugins(settings)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session of the test's own, for arranging data and checking what was written."""
    engine = create_engine(database_url)
    async with session_factory(engine)() as s:
        yield s
    await engine.dispose()


@pytest.fixture
def app(settings: Settings, plugins: PluginRuntime):  # type: ignore[no-untyped-def]
    return create_app(settings, plugins)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def gql(live_server: LiveServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        yield GraphQLClient(http)
