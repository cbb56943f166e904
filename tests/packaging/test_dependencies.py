"""Every library that shopgraph's code imports directly is declared in pyproject.toml: the
application's in `dependencies` (or an optional feature's extra), the suite's in the `test`
extra. A library that arrives only through another one's requirements can disappear with that
library's next release."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_TREES = ["server", "schema", "migrations", "plugins", "examples"]
# The benchmark runs in the test environment (make bench installs the test extra).
TEST_TREES = ["tests", "bench"]
# Top-level modules of shopgraph itself, its benchmark and its example plugin.
FIRST_PARTY = {
    "server",
    "schema",
    "migrations",
    "plugins",
    "tests",
    "bench",
    "shopgraph_loyalty",
}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _declared() -> tuple[set[str], set[str]]:
    """The application's libraries (`dependencies`, and the extras of optional features, whose
    imports the code guards) and the suite's (the `test` extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    runtime = _names(project["dependencies"])
    for extra, requirements in extras.items():
        if extra != "test":
            runtime |= _names(requirements)
    return runtime, _names(extras["test"])


def _imported_modules(trees: list[str]) -> dict[str, set[str]]:
    """Top-level module name -> the files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for tree in trees:
        for path in sorted((ROOT / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(trees: list[str], declared: set[str]) -> dict[str, str]:
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in _imported_modules(trees).items():
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not owners & declared:
            missing[module] = f"{sorted(owners) or 'not installed'} in {sorted(files)[0]}"
    return missing


def test_the_walk_finds_the_libraries_imported() -> None:
    # An empty walk would make the checks below pass vacuously.
    assert {"strawberry", "sqlalchemy", "graphql"} <= set(_imported_modules(RUNTIME_TREES))
    assert {"pytest", "httpx"} <= set(_imported_modules(TEST_TREES))


def test_runtime_imports_are_declared_dependencies() -> None:
    runtime, _ = _declared()
    assert _undeclared(RUNTIME_TREES, runtime) == {}


def test_test_imports_are_declared_in_the_test_extra() -> None:
    runtime, test = _declared()
    assert _undeclared(TEST_TREES, runtime | test) == {}
