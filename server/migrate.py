"""Schema migrations: the core's alembic history and one branch per plugin.

The core's revisions are in ``migrations/versions``; a plugin's are in the folders its
``migration_locations`` hook names, a branch labelled with the plugin's name. Alembic is told
of every discovered plugin's folders, enabled or not, so that a branch a disabled plugin left
in a database never stops a migration; an upgrade with no revision given moves the core and
the enabled plugins' branches only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
import tempfile
from argparse import Namespace
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Table
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from server.plugins import PluginData, PluginRuntime

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
CORE_VERSIONS = MIGRATIONS_DIR / "versions"
UPGRADE_COMMAND = "shopgraph db upgrade"
T = TypeVar("T")
log = logging.getLogger("shopgraph.migrate")


class MigrationError(Exception):
    """A migration cannot run, or the database is not where it must be: a one-line message
    that says what to do."""


# Full-text search objects are created by hand in migrations, not described by the metadata.
SEARCH_OBJECTS = {"search_vector", "ix_product_search_vector", "ix_search_word_trgm"}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name and name.startswith(("product_fts", "search_word_trgm")):
        return False
    return name not in SEARCH_OBJECTS


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate's rendering hook: a column type defined outside SQLAlchemy (the core's
    ``UTCDateTime``, SQLModel's ``AutoString``, a plugin's own type) is written as
    ``module.Type(...)`` by alembic; this imports that module in the revision, so that the
    file runs as generated."""
    if type_ == "type" and isinstance(obj, TypeEngine):
        module = type(obj).__module__
        if module != "builtins" and not module.startswith("sqlalchemy."):
            autogen_context.imports.add(f"import {module}")
    return False


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when called under a running loop
    (then in a worker thread): alembic's commands are synchronous."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def import_all_models(plugins: PluginRuntime | None = None) -> None:
    """Register the core's tables, and the enabled plugins' tables (their ``models`` hook),
    on SQLModel.metadata."""
    importlib.import_module("server.models")
    if plugins is not None:
        for data in plugins.data(include_disabled=False):
            for module in data.models:
                importlib.import_module(module)


def _revisions(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _folder(path: str | os.PathLike[str]) -> Path:
    return Path(path).resolve()


@dataclass(frozen=True)
class Pending:
    """How a database's migration state compares with what a plugin set needs."""

    core: tuple[str, ...] = ()  # the core's heads the database lacks
    plugins: dict[str, tuple[str, ...]] = field(default_factory=dict)  # enabled plugin: heads
    unknown: frozenset[str] = frozenset()  # recorded revisions nothing installed provides
    applied_plugins: frozenset[str] = frozenset()  # enabled plugins with a revision applied

    @property
    def missing(self) -> list[str]:
        return sorted({*self.core, *(h for heads in self.plugins.values() for h in heads)})

    def plugin_problem(self) -> str | None:
        """Why the server must not start: an enabled plugin's branch is not at its head (or
        was never applied). One line naming the plugins and the command to run."""
        if not self.plugins:
            return None
        behind = [n for n in self.plugins if n in self.applied_plugins]
        never = [n for n in self.plugins if n not in self.applied_plugins]
        parts = []
        if never:
            parts.append(f"{_names(never)} enabled but {_its(never)} migrations were never applied")
        if behind:
            parts.append(f"{_names(behind)} enabled but {_its(behind)} migrations are not at head")
        heads = ", ".join(h for name in self.plugins for h in self.plugins[name])
        message = f"{'; '.join(parts)} (missing {heads}): run `{UPGRADE_COMMAND}`"
        if self.unknown:
            message += f"; {_unknown_note(self.unknown)}"
        return message


def _its(plugins: Sequence[str]) -> str:
    return "its" if len(plugins) == 1 else "their"


def _names(plugins: Sequence[str]) -> str:
    quoted = ", ".join(repr(p) for p in plugins)
    return f"plugin {quoted} is" if len(plugins) == 1 else f"plugins {quoted} are"


def _unknown_note(unknown: Iterable[str], also: bool = True) -> str:
    revisions = ", ".join(sorted(unknown))
    return (
        f"the database {'also ' if also else ''}records {revisions}, which neither the core nor "
        "any installed plugin provides: reinstall the plugin it belongs to, then `shopgraph "
        "plugin remove NAME` if it should go"
    )


class Migrations:
    """The revision scripts of the core and of one plugin set.

    ``disabled`` (the default) includes the branches of the disabled plugins, which alembic
    needs to read a database they were applied to; without it only the core and the enabled
    plugins are read, and no disabled plugin is imported.
    """

    def __init__(self, plugins: PluginRuntime | None = None, *, disabled: bool = True) -> None:
        self.plugins = plugins
        data: list[PluginData] = plugins.data(include_disabled=disabled) if plugins else []
        self.branches = {d.name: d for d in data}
        self.enabled = [d.name for d in data if d.enabled]
        # Disabled plugins whose folders could not be read: named when a revision is missing.
        self.unreadable = {d.name: d.problem for d in data if d.problem}

    def read(self) -> Migrations:
        """Read the revision files now (they are read once, when first needed)."""
        _ = self.owners
        return self

    @cached_property
    def locations(self) -> list[str]:
        found = [str(CORE_VERSIONS)]
        for data in self.branches.values():
            found += [loc for loc in data.migration_locations if loc not in found]
        return found

    def config(self, database_url: str | None = None, **attributes: Any) -> Config:
        # Quiet: the commands say what happened in their own words.
        cfg = Config(cmd_opts=Namespace(quiet=True, x=None))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations", os.pathsep.join(self.locations))
        if database_url is not None:
            cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
        cfg.attributes["plugins"] = self.plugins
        cfg.attributes.update(attributes)
        return cfg

    @cached_property
    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    @cached_property
    def by_revision(self) -> dict[str, Script]:
        return {rev.revision: rev for rev in self.script.walk_revisions()}

    @cached_property
    def owners(self) -> dict[str, str | None]:
        """Revision id: the plugin whose folder holds it, or None for the core's."""
        folders: dict[Path, str | None] = {_folder(CORE_VERSIONS): None}
        for data in self.branches.values():
            for loc in data.migration_locations:
                folders.setdefault(_folder(loc), data.name)
        return {
            rev_id: folders[_folder(rev.path).parent]
            for rev_id, rev in self.by_revision.items()
            if _folder(rev.path).parent in folders
        }

    def revisions_of(self, plugin: str | None) -> list[Script]:
        """The revisions of ``plugin``'s branch (None: the core's history)."""
        return [self.by_revision[r] for r, owner in self.owners.items() if owner == plugin]

    def heads_of(self, plugin: str | None) -> list[str]:
        own = self.revisions_of(plugin)
        below = {down for rev in own for down in _revisions(rev.down_revision)}
        return sorted(rev.revision for rev in own if rev.revision not in below)

    def core_head(self) -> str:
        heads = self.heads_of(None)
        if len(heads) != 1:
            raise MigrationError(f"the core's history has {len(heads)} heads: {heads}")
        return heads[0]

    def targets(self) -> list[str]:
        """What an upgrade with no revision given reaches: the core's head and every enabled
        plugin's branch heads."""
        return [self.core_head(), *(h for name in self.enabled for h in self.heads_of(name))]

    def applied(self, current: Iterable[str]) -> set[str]:
        """Every revision a database at ``current`` has applied (what it records, and all
        below it through ``down_revision`` and ``depends_on``); unknown ones are skipped."""
        seen: set[str] = set()
        pending = [self.by_revision[r] for r in current if r in self.by_revision]
        while pending:
            rev = pending.pop()
            if rev.revision in seen:
                continue
            seen.add(rev.revision)
            below: list[object] = [self.by_revision.get(d) for d in _revisions(rev.down_revision)]
            below += self.script.revision_map.get_revisions(_revisions(rev.dependencies))
            pending += [r for r in below if isinstance(r, Script) and r.revision not in seen]
        return seen

    def heads(self) -> list[str]:
        """The revisions a database records after an upgrade with no revision given: the
        targets, less those another target has applied (a branch that depends on the core's
        head is recorded in its place)."""
        targets = self.targets()
        below: set[str] = set()
        for target in targets:
            below |= self.applied([target]) - {target}
        return sorted(set(targets) - below)

    def pending(self, current: Iterable[str]) -> Pending:
        """How a database that records ``current`` compares with this plugin set."""
        current = set(current)
        applied = self.applied(current)
        plugins: dict[str, tuple[str, ...]] = {}
        applied_plugins: set[str] = set()
        for name in self.enabled:
            missing = tuple(h for h in self.heads_of(name) if h not in applied)
            if missing:
                plugins[name] = missing
            if any(r.revision in applied for r in self.revisions_of(name)):
                applied_plugins.add(name)
        core_head = self.core_head()
        return Pending(
            core=(core_head,) if core_head not in applied else (),
            plugins=plugins,
            unknown=frozenset(current - set(self.by_revision)),
            applied_plugins=frozenset(applied_plugins),
        )

    def explain(self, exc: CommandError, current: set[str]) -> MigrationError:
        """An alembic failure as one line, naming revisions nothing installed provides."""
        unknown = current - set(self.by_revision)
        if unknown:
            message = _unknown_note(unknown, also=False)
            if self.unreadable:
                notes = "; ".join(f"{n!r}: {p}" for n, p in self.unreadable.items())
                message += f" (disabled plugins that could not be read: {notes})"
            return MigrationError(message)
        lines = str(exc).strip().splitlines()
        return MigrationError(lines[0] if lines else type(exc).__name__)


def _run(migrations: Migrations, database_url: str, fn: Callable[[Config], None]) -> None:
    try:
        fn(migrations.config(database_url))
    except CommandError as exc:
        raise migrations.explain(exc, current(database_url)) from exc


def upgrade(
    database_url: str, revision: str | None = None, plugins: PluginRuntime | None = None
) -> None:
    """Migrate up to ``revision``; by default to the core's head and every enabled plugin's
    branch head (a disabled plugin's branch stays where it is)."""
    migrations = Migrations(plugins)
    targets = [revision] if revision is not None else migrations.targets()
    for target in targets:
        _run(migrations, database_url, partial(command.upgrade, revision=target))


@contextmanager
def scratch_database(plugins: PluginRuntime | None = None) -> Iterator[str]:
    """A new SQLite database in a temporary folder, migrated like ``shopgraph db upgrade``
    migrates the shop's (the core's head and each of ``plugins``' branch heads): its URL, for
    throwaway work such as importing a file to analyse it. Deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix="shopgraph-scratch-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'scratch.db'}"
        upgrade(url, None, plugins)
        yield url


def downgrade(database_url: str, revision: str, plugins: PluginRuntime | None = None) -> None:
    migrations = Migrations(plugins)
    _run(migrations, database_url, lambda cfg: command.downgrade(cfg, revision))


def heads(plugins: PluginRuntime | None = None) -> list[str]:
    """The revisions a database records once upgraded with no revision given."""
    return Migrations(plugins, disabled=False).heads()


async def read_current(engine: AsyncEngine) -> set[str]:
    """The revisions the database records (one read of alembic's version table)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: set(MigrationContext.configure(c).get_current_heads()))


def current(database_url: str) -> set[str]:
    """The revisions the database is at."""
    from server.db import create_engine

    async def _read() -> set[str]:
        engine = create_engine(database_url)
        try:
            return await read_current(engine)
        finally:
            await engine.dispose()

    return run_async(_read)


# --- start-up --------------------------------------------------------------------------------


class MigrationsNotApplied(MigrationError):
    """An enabled plugin's branch is not at its head: the server refuses to serve."""


def startup_problem(plugins: PluginRuntime, current_revisions: Iterable[str]) -> str | None:
    """Why a server with this plugin set must not serve a database at ``current_revisions``,
    or None. Only the core and the enabled plugins are read, unless a revision seems missing
    while the database records revisions they do not know: then every installed plugin's
    branch is read, in case one of those covers it."""
    recorded = set(current_revisions)
    pending = Migrations(plugins, disabled=False).pending(recorded)
    if pending.plugins and pending.unknown:
        pending = Migrations(plugins).pending(recorded)
    return pending.plugin_problem()


def has_plugin_branches(plugins: PluginRuntime) -> bool:
    return any(d.migration_locations for d in plugins.data(include_disabled=False))


async def check_startup(engine: AsyncEngine, plugins: PluginRuntime) -> None:
    """Raise :class:`MigrationsNotApplied` when an enabled plugin's branch is not at its head.
    One read of the version table, and none when no enabled plugin has a branch. A database
    that cannot be reached, or was never migrated, is not refused here: readiness
    (``/healthz/ready``) says so."""
    if not has_plugin_branches(plugins):
        return
    from server.app import DATABASE_DOWN

    try:
        recorded = await read_current(engine)
    except DATABASE_DOWN as exc:
        log.warning("migration state not checked at start-up, database unreachable: %s", exc)
        return
    if not recorded:
        # Never migrated at all (the core neither): readiness (``/healthz/ready``) says to run
        # `shopgraph db upgrade`, as it does for the core alone.
        return
    problem = await asyncio.to_thread(startup_problem, plugins, recorded)
    if problem is not None:
        raise MigrationsNotApplied(problem)


def serving_problem(database_url: str, plugins: PluginRuntime) -> str | None:
    """:func:`check_startup` for a command that is about to start servers."""
    from server.db import create_engine

    async def _check() -> str | None:
        engine = create_engine(database_url)
        try:
            await check_startup(engine, plugins)
        except MigrationsNotApplied as exc:
            return str(exc)
        finally:
            await engine.dispose()
        return None

    return run_async(_check)


# --- a plugin's branch: a new revision, and removal ------------------------------------------


def _tables_of(modules: Iterable[ModuleType]) -> set[str]:
    """The tables the given model modules define: their SQLModel classes' (not those they
    import) and their module-level Tables."""
    names: set[str] = set()
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Table):
                names.add(value.name)
            elif isinstance(value, type) and value.__module__ == module.__name__:
                table = getattr(value, "__table__", None)
                if isinstance(table, Table):
                    names.add(table.name)
    return names


def _owner_of_table(table: str, plugins: Iterable[str]) -> str | None:
    """The plugin whose name prefixes ``table`` (``<name>`` or ``<name>_…``), the longest."""
    owners = [p for p in plugins if table == p or table.startswith(f"{p}_")]
    return max(owners, key=len) if owners else None


def _installed_copy(folder: Path, module: Any) -> str | None:
    """The distribution whose installed files hold ``folder`` (a copy pip made, not the
    plugin's sources), or None."""
    top = getattr(module, "__name__", "").partition(".")[0]
    for name in packages_distributions().get(top, ()):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file))).resolve()
            if folder in path.parents:
                return name
    return None


@dataclass(frozen=True)
class NewRevision:
    revision: str
    path: Path
    branch_created: bool


def _next_revision_id(migrations: Migrations, plugin: str) -> str:
    number = len(migrations.revisions_of(plugin)) + 1
    while f"{number:04d}_{plugin}" in migrations.by_revision:
        number += 1
    return f"{number:04d}_{plugin}"


def new_revision(
    plugins: PluginRuntime,
    plugin: str,
    message: str,
    *,
    database_url: str | None = None,
    empty: bool = False,
) -> NewRevision | None:
    """Write a revision into ``plugin``'s branch (creating the branch, labelled with the
    plugin's name and depending on the core's head, when it has none yet), autogenerated by
    comparing the plugin's models with a database upgraded to the core's and the plugin's
    heads: ``database_url``, or a throwaway SQLite database when None. Only the plugin's
    tables are compared. ``empty`` writes a revision with empty ``upgrade``/``downgrade``
    (a data migration). Returns None when the models match the branch (nothing written)."""
    record = plugins.record(plugin)
    if record is None:
        raise MigrationError(
            f"no plugin named {plugin!r} is installed (see `shopgraph plugins list`)"
        )
    if not record.enabled:
        raise MigrationError(
            f"plugin {plugin!r} is disabled: enable it to write its migrations "
            "(SHOPGRAPH_PLUGINS / SHOPGRAPH_DISABLED_PLUGINS)"
        )
    # Alembic compares with a database at every head it knows of: the core's and the
    # enabled plugins'. A given database that holds a disabled plugin's branch too is read
    # with every installed plugin's branch.
    migrations = Migrations(plugins, disabled=False)
    if database_url is not None and current(database_url) - set(migrations.by_revision):
        migrations = Migrations(plugins)
    data = migrations.branches[plugin]
    if not data.migration_locations:
        raise MigrationError(
            f"plugin {plugin!r} names no migration folder: implement its migration_locations "
            "hook (docs/plugins.md)"
        )
    folder = _folder(data.migration_locations[0])
    if not folder.is_dir():
        raise MigrationError(f"plugin {plugin!r}'s migration folder {folder} does not exist")
    copy = _installed_copy(folder, record.module)
    if copy is not None:
        raise MigrationError(
            f"plugin {plugin!r} runs from the copy pip installed ({copy}), not from its "
            "sources: install it editable (pip install -e <its folder>) to write its migrations"
        )
    heads = migrations.heads_of(plugin)
    if len(heads) > 1:
        raise MigrationError(
            f"plugin {plugin!r}'s branch has several heads ({', '.join(heads)}): merge them "
            "first (alembic merge)"
        )
    own_tables = _tables_of(importlib.import_module(m) for m in data.models)
    others = [r.name for r in plugins.records if r.name != plugin]

    def only_the_plugins_tables(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if not include_object(obj, name, type_, reflected, compare_to):
            return False
        if type_ != "table" or name is None:
            return True
        if name in own_tables:
            return True
        # A table of the plugin's that its models no longer define: the revision drops it.
        gone = reflected and compare_to is None
        return gone and _owner_of_table(name, [plugin, *others]) == plugin

    nothing_changed: list[bool] = []

    def skip_when_empty(context: MigrationContext, revision: Any, directives: list[Any]) -> None:
        script = directives[0]
        unchanged = isinstance(script, MigrationScript) and not empty
        if unchanged and all(ops.is_empty() for ops in script.upgrade_ops_list):
            directives[:] = []
            nothing_changed.append(True)

    core_head = migrations.core_head()
    with tempfile.TemporaryDirectory(prefix="shopgraph-migration-") as scratch:
        url = database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'compare.db'}"
        if database_url is None:
            for target in migrations.targets():
                _run(migrations, url, partial(command.upgrade, revision=target))
        cfg = migrations.config(url, include_object=only_the_plugins_tables)
        try:
            written = command.revision(
                cfg,
                message=message,
                autogenerate=not empty,
                head=heads[0] if heads else "base",
                branch_label=None if heads else plugin,
                version_path=str(folder),
                rev_id=_next_revision_id(migrations, plugin),
                depends_on=None if heads else core_head,
                process_revision_directives=skip_when_empty,
            )
        except CommandError as exc:
            raise _autogenerate_error(migrations, exc, url, database_url) from exc
    if nothing_changed or not written:
        return None
    script = written[0] if isinstance(written, list) else written
    if script is None:
        return None
    return NewRevision(revision=script.revision, path=Path(script.path), branch_created=not heads)


def _autogenerate_error(
    migrations: Migrations, exc: CommandError, url: str, given: str | None
) -> MigrationError:
    if "not up to date" in str(exc) and given is not None:
        return MigrationError(
            "the database is not at every branch's head: run `shopgraph db upgrade` on it, or "
            "leave out --database-url to compare with a throwaway database"
        )
    return migrations.explain(exc, current(url))


@dataclass(frozen=True)
class Removal:
    plugin: str
    removed: list[str]  # the plugin's revisions that were applied and are undone
    dependents: dict[str, list[str]]  # other plugins' revisions undone with them (depends_on)


def remove_plugin(database_url: str, plugin: str, plugins: PluginRuntime) -> Removal:
    """Downgrade ``plugin``'s branch to base (its tables dropped), enabled or not."""
    record = plugins.record(plugin)
    if record is None:
        raise MigrationError(
            f"no plugin named {plugin!r} is installed (see `shopgraph plugins list`)"
        )
    migrations = Migrations(plugins)
    data = migrations.branches[plugin]
    if data.problem:
        raise MigrationError(f"plugin {plugin!r} could not be read: {data.problem}")
    own = migrations.revisions_of(plugin)
    before = current(database_url)
    applied = migrations.applied(before)
    if not any(rev.revision in applied for rev in own):
        return Removal(plugin, [], {})
    bases = [rev.revision for rev in own if not _revisions(rev.down_revision)]
    for base in bases:
        _run(migrations, database_url, partial(command.downgrade, revision=f"{base}@base"))
    undone = applied - migrations.applied(current(database_url))
    dependents: dict[str, list[str]] = {}
    for rev in sorted(undone):
        owner = migrations.owners.get(rev)
        if owner != plugin:
            dependents.setdefault(owner or "core", []).append(rev)
    mine = sorted(r for r in undone if migrations.owners.get(r) == plugin)
    return Removal(plugin, mine, dependents)
