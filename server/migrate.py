"""Schema migrations: the core's alembic history plus each enabled plugin's branch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
CORE_VERSIONS = MIGRATIONS_DIR / "versions"
T = TypeVar("T")


# Full-text search objects are created by hand in migrations, not described by the metadata.
SEARCH_OBJECTS = {"search_vector", "ix_product_search_vector"}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name and name.startswith("product_fts"):
        return False
    return name not in SEARCH_OBJECTS


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when called under a running loop
    (then in a worker thread): alembic's commands are synchronous."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def import_all_models(plugin_manager: Any | None = None) -> None:
    """Register the core's tables, and the enabled plugins' tables, on SQLModel.metadata."""
    importlib.import_module("server.models")
    if plugin_manager is not None:
        for modules in plugin_manager.hook.models():
            for module in modules or ():
                if isinstance(module, str):
                    importlib.import_module(module)


def plugin_version_locations(plugin_manager: Any | None) -> list[str]:
    if plugin_manager is None:
        return []
    locations: list[str] = []
    for result in plugin_manager.hook.migration_locations():
        for loc in result or ():
            locations.append(str(loc))
    return locations


def alembic_config(database_url: str, plugin_manager: Any | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = [str(CORE_VERSIONS), *plugin_version_locations(plugin_manager)]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["plugin_manager"] = plugin_manager
    return cfg


def upgrade(database_url: str, revision: str = "heads", plugin_manager: Any | None = None) -> None:
    command.upgrade(alembic_config(database_url, plugin_manager), revision)


def downgrade(database_url: str, revision: str, plugin_manager: Any | None = None) -> None:
    command.downgrade(alembic_config(database_url, plugin_manager), revision)


def heads(database_url: str, plugin_manager: Any | None = None) -> list[str]:
    """The revisions a fully upgraded database records.

    That is the script's heads less any head another one depends on: a plugin branch starts
    with ``depends_on = "0001_core"``, and once it is applied alembic records the plugin's
    revision in place of the core one it depends on.
    """
    script = ScriptDirectory.from_config(alembic_config(database_url, plugin_manager))
    all_heads = set(script.get_heads())
    covered: set[str] = set()
    pending = [script.get_revision(h) for h in all_heads]
    while pending:
        rev = pending.pop()
        if rev is None:
            continue
        down = rev.down_revision
        names = [down] if isinstance(down, str) else list(down or ())
        below = [script.get_revision(name) for name in names]
        below += script.revision_map.get_revisions(rev.dependencies or ())
        for lower in below:
            if lower is not None and lower.revision not in covered:
                covered.add(lower.revision)
                pending.append(lower)
    return sorted(all_heads - covered)


def current(database_url: str) -> set[str]:
    """The revisions the database is at."""
    from server.db import create_engine

    async def _read() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            revs = await conn.run_sync(
                lambda c: set(MigrationContext.configure(c).get_current_heads())
            )
        await engine.dispose()
        return revs

    return run_async(_read)
