"""``shopgraph plugin new NAME``: a pip-installable plugin package with every room in place."""

from __future__ import annotations

import re
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


class ScaffoldError(Exception):
    pass


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _files(name: str) -> dict[str, str]:
    package = f"shopgraph_{name}"
    camel, pascal = _camel(name), _pascal(name)
    table = f"{name}_item"
    return {
        "pyproject.toml": f'''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "shopgraph-{name.replace("_", "-")}"
version = "0.1.0"
description = "A shopgraph plugin."
requires-python = ">=3.11"
dependencies = ["shopgraph>=0.1"]

[project.optional-dependencies]
test = ["pytest>=8"]

# shopgraph finds the plugin through this entry point; its name is the plugin's name.
[project.entry-points."shopgraph.plugins"]
{name} = "{package}"

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.pytest.ini_options]
# The tests import the package from this folder, installed or not.
pythonpath = ["."]
testpaths = ["tests"]

[tool.ruff]
line-length = 100

[tool.ruff.lint.isort]
known-first-party = ["server", "schema", "{package}"]
''',
        "README.md": f"""# shopgraph-{name.replace("_", "-")}

A shopgraph plugin.

```
pip install -e .            # editable: the plugin runs from this folder
shopgraph db upgrade        # applies this plugin's migration branch ({name})
shopgraph plugins list
pytest
```

After changing `models.py`, write the next revision of the branch from the models, then apply
it:

```
shopgraph plugin migration {name} -m "what changed"
shopgraph db upgrade
```
""",
        f"{package}/__init__.py": f'''"""The {name} plugin: its metadata and hook implementations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from server.plugin import PluginInfo, hookimpl

PLUGIN_INFO = PluginInfo(
    name="{name}",
    version="0.1.0",
    description="A shopgraph plugin.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"


@hookimpl
def models() -> Sequence[str]:
    return ["{package}.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


@hookimpl
def permissions() -> Sequence[str]:
    # Admins hold it; give it to other roles with SHOPGRAPH_ROLE_PERMISSIONS or an API key.
    return ["{name}.manage"]


@hookimpl
def graphql_queries() -> Sequence[type]:
    from {package} import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from {package} import schema

    return schema.MUTATIONS
''',
        f"{package}/models.py": f'''"""The {name} plugin's tables (prefix ``{name}_``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.models.base import created_at_field


class {pascal}Item(SQLModel, table=True):
    __tablename__ = "{table}"

    id: int | None = Field(default=None, primary_key=True)
    label: str
    created_at: datetime = created_at_field()
''',
        f"{package}/service.py": f'''"""The {name} plugin's logic: plain async functions over a session."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.services.errors import ValidationFailed
from {package}.models import {pascal}Item


async def add_item(session: AsyncSession, label: str) -> {pascal}Item:
    label = label.strip()
    if not label:
        raise ValidationFailed("label must not be empty", field="label")
    item = {pascal}Item(label=label)
    session.add(item)
    await session.flush()
    return item


async def list_items(session: AsyncSession, limit: int = 100) -> Sequence[{pascal}Item]:
    stmt = select({pascal}Item).order_by({pascal}Item.id).limit(limit)
    return (await session.execute(stmt)).scalars().all()
''',
        f"{package}/schema.py": f'''"""The {name} plugin over GraphQL."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import HasPermission, Info, ValidationError, mutate
from {package} import service


@strawberry.type
class {pascal}Item:
    id: int
    label: str


@strawberry.type
class {pascal}Queries:
    @strawberry.field
    async def {name}_items(self, info: Info) -> list[{pascal}Item]:
        rows = await info.context.db.run(service.list_items)
        return [{pascal}Item(id=r.id, label=r.label) for r in rows]


@strawberry.input
class Add{pascal}ItemInput:
    label: str


@strawberry.type
class Add{pascal}ItemSuccess:
    item: {pascal}Item


Add{pascal}ItemResult = Annotated[
    Add{pascal}ItemSuccess | ValidationError, strawberry.union("Add{pascal}ItemResult")
]


@strawberry.type
class {pascal}Mutations:
    @strawberry.mutation(permission_classes=[HasPermission("{name}.manage")])
    async def add_{name}_item(
        self, info: Info, input: Add{pascal}ItemInput
    ) -> Add{pascal}ItemResult:
        async def work(session: AsyncSession) -> Any:
            return await service.add_item(session, input.label)

        return await mutate(
            info, work, lambda row: Add{pascal}ItemSuccess(item={pascal}Item(id=row.id, label=row.label))
        )


QUERIES: list[type[Any]] = [{pascal}Queries]
MUTATIONS: list[type[Any]] = [{pascal}Mutations]
''',
        f"{package}/migrations/__init__.py": "",
        f"{package}/migrations/versions/__init__.py": "",
        f"{package}/migrations/versions/0001_{name}_initial.py": f'''"""{name}: initial tables

Revision ID: 0001_{name}
Revises:
Depends on: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_{name}"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("{name}",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    op.create_table(
        "{table}",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_{table}")),
    )


def downgrade() -> None:
    op.drop_table("{table}")
''',
        "tests/test_plugin.py": f'''"""The {name} plugin loads, extends the schema, and migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import {package} as plugin
from schema.core import build_schema
from server import migrate
from server.config import Settings
from server.plugins import PluginRuntime, load_plugins


def _runtime() -> PluginRuntime:
    # This plugin only, installed or not: the test does not depend on what else is there.
    return load_plugins(Settings(plugins="", disabled_plugins=""), extra=[plugin])


def test_plugin_loads_and_extends_the_schema() -> None:
    runtime = _runtime()
    assert runtime.is_enabled("{name}")
    # Its mutation needs the permission it declares (admins hold every declared permission).
    assert "{name}.manage" in runtime.permissions
    sdl = build_schema(runtime).as_str()
    assert "{camel}Items: [{pascal}Item!]!" in sdl
    assert "add{pascal}Item(input: Add{pascal}ItemInput!)" in sdl


def test_migration_branch_creates_the_table(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    url = f"sqlite+aiosqlite:///{{path}}"
    migrate.upgrade(url, plugins=_runtime())
    with sqlite3.connect(path) as conn:
        tables = {{row[0] for row in conn.execute("SELECT name FROM sqlite_master")}}
    assert "{table}" in tables
    # The branch goes down on its own, leaving the core alone.
    migrate.downgrade(url, "{name}@base", plugins=_runtime())
    with sqlite3.connect(path) as conn:
        tables = {{row[0] for row in conn.execute("SELECT name FROM sqlite_master")}}
    assert "{table}" not in tables and "product" in tables
''',
    }


def install_hint(root: Path) -> str:
    """The command that installs the scaffolded folder: a path pip cannot take for a name on
    the package index."""
    where = root.as_posix()
    if not (root.is_absolute() or where.startswith(".")):
        where = f"./{where}"
    return f"pip install -e {where}"


def scaffold_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the package ``shopgraph-<name>/`` under ``directory``; returns its path."""
    if not NAME_RE.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower case letters, digits and underscores, "
            "starting with a letter"
        )
    root = Path(directory) / f"shopgraph-{name.replace('_', '-')}"
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    for relative, content in _files(name).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root
