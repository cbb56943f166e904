"""No import cycles among shopgraph's own modules: dependencies point one way.

The walk reads each module's source with :mod:`ast` (nothing is imported) and follows the
imports that run when the module is imported: those at module level, including inside
``try``/``if`` blocks, but not those under ``if TYPE_CHECKING:`` (annotations only) nor those
inside functions (run later, on call).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "schema", "plugins")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body`` that run at import time."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_nodes(block)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
        elif isinstance(node, ast.With):
            yield from _import_time_nodes(node.body)


def _resolve(name: str, package: str, level: int) -> str:
    if level == 0:
        return name
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The first-party modules ``module`` imports when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    # A module's own packages are initialised before it runs: importing them is no edge.
    parts = module.split(".")
    own = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}

    def add(name: str) -> None:
        # "a.b.c" imports a, a.b and a.b.c (each package's __init__ runs).
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix not in own:
                found.add(prefix)

    for node in _import_time_nodes(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        else:
            target = _resolve(node.module or "", package, node.level)
            add(target)
            for alias in node.names:
                # ``from package import module`` imports the submodule.
                add(f"{target}.{alias.name}")
    return found


def import_graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {name: imports_of(name, path, known) for name, path in sources.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative, so a long chain of imports cannot exhaust the recursion limit.
        work: list[tuple[str, Iterator[str]]] = []

        def enter(node: str) -> None:
            nonlocal counter
            index[node] = low[node] = counter
            counter += 1
            stack.append(node)
            on_stack.add(node)
            work.append((node, iter(sorted(graph.get(node, ())))))

        enter(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    enter(succ)
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def _path(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One cycle through the group's first module, for the failure message."""
    members = set(group)
    start = group[0]
    seen = {start: [start]}
    pending = [start]
    while pending:
        node = pending.pop(0)
        for succ in sorted(graph[node] & members):
            if succ == start:
                return [*seen[node], start]
            if succ not in seen:
                seen[succ] = [*seen[node], succ]
                pending.append(succ)
    return group


def test_the_walk_sees_the_packages() -> None:
    # A broken walk (a moved tree, a wrong root) would find no cycle in an empty graph.
    graph = import_graph()
    assert {"server.services.orders", "server.models"} <= graph["schema.orders"]
    assert "schema.orders" in graph["schema.shipments"]


def test_the_walk_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_type_checking_and_function_imports_are_not_import_time(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import server.a\n"
        "if TYPE_CHECKING:\n"
        "    import server.b\n"
        "else:\n"
        "    import server.c\n"
        "def f():\n"
        "    import server.d\n"
        "try:\n"
        "    from server import e\n"
        "except ImportError:\n"
        "    pass\n",
        encoding="utf-8",
    )
    known = {"server", "server.a", "server.b", "server.c", "server.d", "server.e"}
    assert imports_of("mod", source, known) == {"server", "server.a", "server.c", "server.e"}
    # A submodule importing a sibling through its own package is no cycle with the package.
    assert imports_of("server.f", source, known) == {"server.a", "server.c", "server.e"}


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = [" -> ".join(_path(graph, group)) for group in cycles(graph)]
    assert not found, "import cycles among shopgraph's modules:\n" + "\n".join(found)
