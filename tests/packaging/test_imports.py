"""Every module of shopgraph imports: run on the lowest allowed versions (`make test-lowest`),
this catches a name a library's older release does not have yet, in code no other test of the
fast subset reaches."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["server", "schema", "migrations", "plugins"]
EXAMPLE = ROOT / "examples" / "loyalty"
# Runs only inside an alembic command (it reads `alembic.context.config`); every migration test
# runs it that way.
NOT_IMPORTABLE = {"migrations.env"}


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(base: Path, packages: list[str]) -> list[str]:
    names = []
    for package in packages:
        for path in sorted((base / package).rglob("*.py")):
            name = _module_name(path, base)
            if name not in NOT_IMPORTABLE:
                names.append(name)
    return names


SHOPGRAPH_MODULES = _modules(ROOT, PACKAGES)
EXAMPLE_MODULES = _modules(EXAMPLE, ["shopgraph_loyalty"])


def test_the_module_lists_cover_the_packages() -> None:
    # A broken walk (a moved tree, a wrong root) would leave the parametrised tests empty.
    assert {"server.app", "server.graphql.assembly", "migrations.versions.0001_core_schema"} <= set(
        SHOPGRAPH_MODULES
    )
    assert "shopgraph_loyalty.schema" in EXAMPLE_MODULES


# The example plugin's modules come from its pip-installed copy (the session's autouse fixture).
@pytest.mark.parametrize("name", SHOPGRAPH_MODULES + EXAMPLE_MODULES)
def test_module_imports(name: str) -> None:
    assert importlib.import_module(name).__name__ == name
