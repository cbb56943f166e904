"""A plugin's migration branch: written from its models by ``shopgraph plugin migration``,
applied by ``shopgraph db upgrade`` (never blocked by a disabled plugin's branch), removed by
``shopgraph plugin remove``, and checked at start-up, which refuses to serve an enabled plugin
whose branch is not at its head.

The plugin of the end-to-end test is scaffolded and pip-installed (editable, into a folder of
its own) as its author would, and the commands run in child processes: its tables are defined
there, never in this process's metadata.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from server import migrate
from server.app import create_app
from server.cli import main as cli
from server.config import Settings
from server.db import create_engine
from server.migrate import MigrationError, Migrations, MigrationsNotApplied
from server.plugins import load_builtin_plugins, load_plugins
from server.scaffold import scaffold_plugin
from tests.plugins.fakes import FakePlugin
from tests.support.plugins import installed, pip_install, shopgraph, with_example
from tests.support.postgres import free_port

pytestmark = pytest.mark.heavy

CORE_HEAD = Migrations().core_head()
# The built-in plugins' branches, applied to every test database beside the core's.
BUILTIN_HEADS = set(migrate.heads(load_builtin_plugins(Settings()))) - {CORE_HEAD}


async def _columns(url: str) -> dict[str, set[str]]:
    """Every table of the database with its columns."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Any) -> dict[str, set[str]]:
                found = inspect(sync_conn)
                return {
                    table: {column["name"] for column in found.get_columns(table)}
                    for table in found.get_table_names()
                }

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def _refused(result: Any) -> str:
    """A command that failed the way an expected failure does: one line, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


RATING = """

class ReviewsRating(SQLModel, table=True):
    __tablename__ = "reviews_rating"

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    stars: int
    comment: str = Field(max_length=500)
    rated_at: datetime = created_at_field()
"""
VOTE = """

class ReviewsVote(SQLModel, table=True):
    __tablename__ = "reviews_vote"

    id: int | None = Field(default=None, primary_key=True)
    rating_id: int = Field(foreign_key="reviews_rating.id")
    helpful: bool = True
"""


async def test_a_plugins_branch_from_its_models_to_its_removal(
    database_url: str, tmp_path: Path
) -> None:
    root = scaffold_plugin("reviews", tmp_path)
    package = root / "shopgraph_reviews"
    versions = package / "migrations" / "versions"
    (versions / "0001_reviews_initial.py").unlink()  # the branch starts from the models
    models = package / "models.py"
    models.write_text(models.read_text() + RATING)
    site = tmp_path / "site"
    pip_install(root, site, editable=True)
    # The example plugin is installed too, disabled: its branch, applied to the test database,
    # must not stand in the way.
    env = {
        "SHOPGRAPH_DATABASE_URL": database_url,
        "SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true",
        "SHOPGRAPH_PLUGINS": "reviews",
    }

    def run(*args: str) -> Any:
        return shopgraph(args, site=site, env=env)

    # The first revision creates the branch, compared with a throwaway database.
    out = _ok(run("plugin", "migration", "reviews", "-m", "initial tables"))
    assert "wrote revision 0001_reviews, the first of its branch 'reviews'" in out
    [first] = versions.glob("0001_reviews_*.py")
    source = first.read_text()
    assert "branch_labels: str | Sequence[str] | None = ('reviews',)" in source
    assert f"depends_on: str | Sequence[str] | None = {CORE_HEAD!r}" in source
    # Custom column types are written with their modules imported.
    assert "import server.models.base\n" in source and "import sqlmodel.sql.sqltypes\n" in source
    assert "server.models.base.UTCDateTime(" in source
    assert "sqlmodel.sql.sqltypes.AutoString(length=500)" in source
    assert "sa.ForeignKeyConstraint(['product_id'], ['product.id']" in source

    # Enabled but not applied: the server refuses to start, in one line naming the command.
    line = _refused(run("serve", "--port", str(free_port())))
    assert line == (
        "Error: not serving: plugin 'reviews' is enabled but its migrations were never "
        "applied (missing 0001_reviews): run `shopgraph db upgrade`"
    )

    _ok(run("db", "upgrade"))
    tables = await _columns(database_url)
    assert {"reviews_item", "reviews_rating", "loyalty_account"} <= set(tables)
    assert migrate.current(database_url) == {"0001_loyalty", "0001_reviews", *BUILTIN_HEADS}
    # Nothing changed since: nothing is written.
    out = _ok(run("plugin", "migration", "reviews", "-m", "again", "--database-url", database_url))
    assert "its models match its migrations, nothing written" in out

    # A column and a table more, compared with the test's own database.
    text = models.read_text().replace(
        "    label: str\n", "    label: str\n    note: str | None = None\n"
    )
    models.write_text(text + VOTE)
    out = _ok(run("plugin", "migration", "reviews", "-m", "votes", "--database-url", database_url))
    assert re.search(r"wrote revision 0002_reviews: .*0002_reviews_votes\.py", out), out
    second = (versions / "0002_reviews_votes.py").read_text()
    assert "down_revision: str | Sequence[str] | None = '0001_reviews'" in second
    assert "branch_labels: str | Sequence[str] | None = None" in second

    # Applied as it was written.
    _ok(run("db", "upgrade"))
    tables = await _columns(database_url)
    assert "note" in tables["reviews_item"] and "reviews_vote" in tables
    out = _ok(run("plugin", "migration", "reviews", "-m", "again", "--database-url", database_url))
    assert "nothing written" in out

    # Removed: the branch goes down to base and takes its tables; the core and the other
    # plugin's branch stay.
    out = _ok(run("plugin", "remove", "reviews", "--yes"))
    assert "downgraded its branch to base (0001_reviews, 0002_reviews undone)" in out
    assert "is still enabled" in out
    tables = await _columns(database_url)
    assert not {"reviews_item", "reviews_rating", "reviews_vote"} & set(tables)
    assert "product" in tables and "loyalty_account" in tables
    assert migrate.current(database_url) == {"0001_loyalty", CORE_HEAD, *BUILTIN_HEADS}
    out = _ok(run("plugin", "remove", "reviews", "--yes"))
    assert "no migrations applied to this database: nothing to do" in out


def test_plugin_migration_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    plugins = load_plugins(Settings(plugins=""), extra=[FakePlugin("bare")])
    with pytest.raises(MigrationError, match="no plugin named 'ghost' is installed"):
        migrate.new_revision(plugins, "ghost", "m")
    with pytest.raises(MigrationError, match="plugin 'bare' names no migration folder"):
        migrate.new_revision(plugins, "bare", "m")
    disabled = load_plugins(Settings(plugins="", disabled_plugins="off"), extra=[FakePlugin("off")])
    with pytest.raises(MigrationError, match="plugin 'off' is disabled: enable it"):
        migrate.new_revision(disabled, "off", "m")
    # Over the command line: one line, no traceback.
    result = CliRunner().invoke(cli, ["plugin", "migration", "ghost", "-m", "m"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: no plugin named 'ghost' is installed (see `shopgraph plugins list`)"
    )


# --- a disabled plugin's branch ------------------------------------------------------------


def test_a_disabled_plugins_branch_does_not_block_upgrades(database_url: str) -> None:
    # The test database holds the example plugin's branch; here the plugin is disabled.
    disabled = load_plugins(
        installed(Settings(database_url=database_url, disabled_plugins="loyalty"), "loyalty")
    )
    assert not disabled.is_enabled("loyalty")
    migrate.downgrade(database_url, "core@-1", disabled)
    below = Migrations().by_revision[CORE_HEAD].down_revision
    assert migrate.current(database_url) == {"0001_loyalty", below, *BUILTIN_HEADS}
    migrate.upgrade(database_url, plugins=disabled)  # the core moves, the branch stays
    assert migrate.current(database_url) == {"0001_loyalty", CORE_HEAD, *BUILTIN_HEADS}

    # A set that does not know the branch at all says so, in one line.
    unknown = load_plugins(Settings(database_url=database_url))
    with pytest.raises(MigrationError) as refused:
        migrate.upgrade(database_url, plugins=unknown)
    assert str(refused.value) == (
        "the database records 0001_loyalty, which neither the core nor any installed plugin "
        "provides: reinstall the plugin it belongs to, then `shopgraph plugin remove NAME` "
        "if it should go"
    )


@pytest.mark.parametrize("enabled", [False, True])
def test_plugin_remove_downgrades_the_branch_enabled_or_not(
    database_url: str, enabled: bool
) -> None:
    env = {
        "SHOPGRAPH_DATABASE_URL": database_url,
        "SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true",
        "SHOPGRAPH_PLUGINS": "loyalty",
        "SHOPGRAPH_DISABLED_PLUGINS": "" if enabled else "loyalty",
    }
    runner = CliRunner()
    kept = runner.invoke(cli, ["plugin", "remove", "loyalty"], env=env, input="n\n")
    assert kept.exit_code == 1 and "Aborted!" in kept.stderr  # asked, and not confirmed
    assert migrate.current(database_url) == {CORE_HEAD, "0001_loyalty", *BUILTIN_HEADS}
    removed = runner.invoke(cli, ["plugin", "remove", "loyalty"], env=env, input="y\n")
    assert removed.exit_code == 0, removed.output
    assert "plugin 'loyalty': downgraded its branch to base (0001_loyalty undone)" in (
        removed.output
    )
    state = "is still enabled" if enabled else "is disabled; uninstall it when you like"
    assert state in removed.output
    assert migrate.current(database_url) == {CORE_HEAD, *BUILTIN_HEADS}
    # An upgrade leaves a disabled plugin's branch out, and applies an enabled one's.
    upgraded = runner.invoke(cli, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    expected = {CORE_HEAD, "0001_loyalty"} if enabled else {CORE_HEAD}
    expected |= BUILTIN_HEADS
    assert migrate.current(database_url) == expected


def test_plugin_remove_of_an_unknown_plugin_is_refused() -> None:
    result = CliRunner().invoke(cli, ["plugin", "remove", "ghost", "--yes"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: no plugin named 'ghost' is installed (see `shopgraph plugins list`)"
    )


# --- start-up ------------------------------------------------------------------------------

REVISION = '''"""{name}: revision {number}"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "{number:04d}_{name}"
down_revision: str | Sequence[str] | None = {down}
branch_labels: str | Sequence[str] | None = {labels}
depends_on: str | Sequence[str] | None = {depends}


def upgrade() -> None:
    op.create_table("{name}_{number}", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("{name}_{number}")
'''


def _write_revision(folder: Path, name: str, number: int) -> None:
    first = number == 1
    text = REVISION.format(
        name=name,
        number=number,
        down="None" if first else repr(f"{number - 1:04d}_{name}"),
        labels=repr((name,)) if first else "None",
        depends=repr("0001_core") if first else "None",
    )
    (folder / f"{number:04d}_{name}.py").write_text(textwrap.dedent(text))


async def _start(settings: Settings, plugins: Any) -> None:
    app = create_app(settings, plugins)
    async with app.router.lifespan_context(app):
        pass


async def test_start_up_refuses_an_enabled_plugin_whose_branch_is_not_at_head(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "versions"
    folder.mkdir()
    _write_revision(folder, "gift", 1)
    settings = Settings(database_url=database_url, env="test")

    def gift_set() -> Any:
        # A fresh set each time: the revision files are read once per set.
        return with_example(settings, FakePlugin("gift", migration_locations=lambda: [folder]))

    with pytest.raises(MigrationsNotApplied) as refused:
        await _start(settings, gift_set())
    assert str(refused.value) == (
        "plugin 'gift' is enabled but its migrations were never applied (missing 0001_gift): "
        "run `shopgraph db upgrade`"
    )
    migrate.upgrade(database_url, plugins=gift_set())
    await _start(settings, gift_set())

    _write_revision(folder, "gift", 2)
    with pytest.raises(MigrationsNotApplied, match=r"'gift' is enabled but its migrations are"):
        await _start(settings, gift_set())
    migrate.upgrade(database_url, plugins=gift_set())
    await _start(settings, gift_set())
    # Disabled, its branch no longer matters: the example plugin's is checked, and at head.
    _write_revision(folder, "gift", 3)
    off = with_example(
        settings.model_copy(update={"disabled_plugins": "gift"}),
        FakePlugin("gift", migration_locations=lambda: [folder]),
    )
    assert not off.is_enabled("gift")
    await _start(settings, off)


async def test_start_up_leaves_an_unreachable_database_to_readiness(tmp_path: Path) -> None:
    folder = tmp_path / "versions"
    folder.mkdir()
    _write_revision(folder, "gift", 1)
    gone = Settings(
        database_url=f"postgresql+asyncpg://nobody:x@127.0.0.1:{free_port()}/shop", env="test"
    )
    plugins = load_plugins(gone, extra=[FakePlugin("gift", migration_locations=lambda: [folder])])
    await _start(gone, plugins)  # starts; /healthz/ready answers "database unreachable"


async def test_removing_a_branch_takes_the_branches_that_depend_on_it(
    database_url: str, tmp_path: Path
) -> None:
    gift, wrap = tmp_path / "gift", tmp_path / "wrap"
    gift.mkdir()
    wrap.mkdir()
    _write_revision(gift, "gift", 1)
    _write_revision(wrap, "wrap", 1)
    dependent = (wrap / "0001_wrap.py").read_text().replace("= '0001_core'", "= '0001_gift'")
    (wrap / "0001_wrap.py").write_text(dependent)
    plugins = with_example(
        Settings(database_url=database_url, disabled_plugins="wrap"),
        FakePlugin("gift", migration_locations=lambda: [gift]),
        FakePlugin("wrap", migration_locations=lambda: [wrap]),
    )
    migrate.upgrade(database_url, "wrap@head", plugins)  # applied, then disabled
    assert {"gift_1", "wrap_1"} <= set(await _columns(database_url))
    removal = migrate.remove_plugin(database_url, "gift", plugins)
    assert (removal.removed, removal.dependents) == (["0001_gift"], {"wrap": ["0001_wrap"]})
    tables = await _columns(database_url)
    assert "gift_1" not in tables and "wrap_1" not in tables and "product" in tables
