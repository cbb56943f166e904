"""Fixtures: every API test runs against SQLite and against a throwaway PostgreSQL server.

Databases are migrated once per session with alembic (the real path) and copied per test:
a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL. They hold the core and
the example plugin's branch.

Plugin sets are chosen, never found: entry-point discovery is off for the whole suite, so the
core's tests see the built-in plugins only, whatever else is installed in the environment, and
a test about an installed plugin selects it (tests/support/plugins.py).
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import itertools
import os
import shutil
import subprocess
import sys
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
from tests.support.pg_reuse import Template, evict_others
from tests.support.plugins import ENTRY_POINTS_VARIABLE, with_example
from tests.support.postgres import TemporaryPostgres, find_bindir
from tests.support.server import LiveServer

os.environ[ENTRY_POINTS_VARIABLE] = "false"
# No server a test starts runs the periodic jobs (the core's insights recomputation among them)
# unless the test asks for them: a job's writes would race the test's own on SQLite.
os.environ["SHOPGRAPH_RUN_JOBS"] = "false"
BACKENDS = ["sqlite", "postgresql"]
EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "loyalty"
_db_counter = itertools.count()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _example_plugin_is_current() -> bool:
    """Whether the installed example plugin is byte-for-byte the one in examples/: then a
    reinstall (which other test sessions would see half-done) is skipped."""
    try:
        dist = importlib.metadata.distribution("shopgraph-loyalty")
    except importlib.metadata.PackageNotFoundError:
        return False
    installed = {
        str(f): f
        for f in dist.files or ()
        if str(f).startswith("shopgraph_loyalty/") and str(f).endswith(".py")
    }
    package = EXAMPLE_PLUGIN / "shopgraph_loyalty"
    sources = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    if len(sources) != len(installed):
        return False
    for path in sources:
        record = installed.get(path.relative_to(EXAMPLE_PLUGIN).as_posix())
        if record is None or Path(str(dist.locate_file(record))).read_bytes() != path.read_bytes():
            return False
    return f'version = "{dist.version}"' in (EXAMPLE_PLUGIN / "pyproject.toml").read_text()


@pytest.fixture(scope="session", autouse=True)
def example_plugin_installed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pip-install the example plugin (examples/loyalty) the way a user does, before anything
    (the template databases included) discovers plugins: a regular, non-editable install
    whose entry point makes it a plugin. Built from a copy, so the source tree stays clean."""
    # Parallel test workers share the virtualenv: one installs while the others wait.
    lock_path = tmp_path_factory.getbasetemp().parent / "example-plugin.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        importlib.invalidate_caches()
        if _example_plugin_is_current():
            return  # already pip-installed from these very sources
        source = tmp_path_factory.mktemp("example-plugin") / "loyalty"
        shutil.copytree(
            EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info")
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
            + ["--no-build-isolation", "--disable-pip-version-check", str(source)],
            check=True,
        )
        importlib.invalidate_caches()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy tests first, the rest in their order: the workers take tests in collection order,
    and a long test left for the end keeps one worker busy after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


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
    migrate.upgrade(f"sqlite+aiosqlite:///{path}", plugins=with_example(Settings()))
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
    migrate.upgrade(_with_database(postgres_admin_url, name), plugins=with_example(Settings()))
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
    fresh: Template = request.getfixturevalue("postgres_template_state")
    conn = await asyncpg.connect(_plain(admin))
    if _recycled:
        name = _recycled.pop()
    else:
        name = f"shopgraph_test_{os.getpid()}_{next(_db_counter)}"
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(admin, name)
    finally:
        if await _emptied(conn, admin, name, fresh):
            # Under a name of its own: what a process keeps per database (a plugin's cache
            # under its version row) must not take it for the one the last test used.
            renamed = f"shopgraph_test_{os.getpid()}_{next(_db_counter)}"
            await conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{renamed}"')
            _recycled.append(renamed)
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


# This worker's databases that are back in the template's state, ready for the next test.
_recycled: list[str] = []


async def _emptied(conn: asyncpg.Connection, admin: str, name: str, fresh: Template) -> bool:
    try:
        await evict_others(conn, name)
        used = await asyncpg.connect(_plain(_with_database(admin, name)))
        try:
            return await fresh.restore(used)
        finally:
            await used.close()
    except (asyncpg.PostgresError, OSError):
        return False


@pytest.fixture(scope="session")
def postgres_template_state(
    postgres_admin_url: str | None, postgres_template: str | None
) -> Iterator[Template | None]:
    """The template's rows, sequences and schema fingerprint, to empty used databases back
    to; the recycled databases are dropped when the session ends."""
    if postgres_admin_url is None or postgres_template is None:
        yield None
        return
    admin = postgres_admin_url

    async def read() -> Template:
        conn = await asyncpg.connect(_plain(_with_database(admin, postgres_template)))
        try:
            return await Template.read(conn)
        finally:
            await conn.close()

    yield migrate.run_async(read)

    async def drop() -> None:
        conn = await asyncpg.connect(_plain(admin))
        try:
            while _recycled:
                name = _recycled.pop()
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    migrate.run_async(drop)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The suite's clients all share one IP and fire bursts (concurrency tests): a bucket that
    # never runs dry. tests/security checks throttling with the real defaults. The periodic
    # jobs (the core's insights job among them) are left to the tests about jobs, which run
    # them themselves: a test server doing work in the background would make statement
    # counts and timings depend on when it ran.
    return Settings(
        database_url=database_url,
        env="test",
        graphiql=True,
        cost_bucket_size=1_000_000,
        run_jobs=False,
    )


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    """The built-in plugins (a test about another set overrides this fixture)."""
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
    # Plain HTTP on loopback: verify=False spares loading the CA bundle for every test.
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60, verify=False) as http:
        yield GraphQLClient(http)
