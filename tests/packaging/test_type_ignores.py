"""Every `# type: ignore` in the shipped code names the error it silences and says why, on the
same line: `# type: ignore[override]  # strawberry's resolve_nodes is overloaded on required`.

mypy (make test) reports an ignore without an error code and one that no longer silences
anything; this test asks for the reason. Modules whose errors mypy does not report yet (an
`ignore_errors` override in pyproject.toml) are left out until the override goes.
"""

from __future__ import annotations

import io
import re
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ["server", "schema", "plugins", "examples", "migrations"]
_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<codes>\[[^\]]*\])?(?P<rest>.*)")
# After the codes, a comment of its own with words in it.
_REASON = re.compile(r"\s+#\s*\w")


def unexplained(comment: str) -> bool:
    """Whether ``comment`` is a `type: ignore` without error codes or without a reason."""
    found = _IGNORE.search(comment)
    if found is None:
        return False
    return not found.group("codes") or _REASON.match(found.group("rest")) is None


def _module(path: Path) -> str:
    """The module name mypy gives ``path``: up through the folders that are packages."""
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def _unreported() -> list[str]:
    """The module patterns of pyproject.toml's mypy overrides that set ignore_errors."""
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    patterns: list[str] = []
    for override in mypy.get("overrides", []):
        if override.get("ignore_errors"):
            module = override["module"]
            patterns += [module] if isinstance(module, str) else module
    return patterns


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return module == pattern[:-2] or module.startswith(pattern[:-1])
    return module == pattern


def _checked_files() -> list[Path]:
    unreported = _unreported()
    return [
        path
        for tree in TREES
        for path in sorted((ROOT / tree).rglob("*.py"))
        if not any(_matches(_module(path), p) for p in unreported)
    ]


def _comments(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


def test_the_check_tells_a_reason_from_none() -> None:
    assert unexplained("# type: ignore")
    assert unexplained("# type: ignore  # no code")
    assert unexplained("# type: ignore[arg-type]")
    assert unexplained("# type: ignore[arg-type]  #")
    assert unexplained("# type: ignore[arg-type, misc]   # ")
    assert not unexplained("# type: ignore[arg-type]  # a stored order has its id")
    assert not unexplained("# type: ignore[arg-type,misc]  # two at once: why")
    assert not unexplained("# an ordinary comment")


def test_the_walk_covers_the_trees() -> None:
    # A broken walk (a moved tree, a wrong root) would make the check below pass vacuously.
    names = {_module(path) for path in _checked_files()}
    assert {"server.app", "server.graphql.node", "shopgraph_loyalty.schema"} <= names
    assert _matches("server.demo.planner", "server.demo.*")
    assert _matches("server.demo", "server.demo.*")
    assert not _matches("server.demography", "server.demo.*")


def test_every_type_ignore_says_why() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for path in _checked_files()
        for line, comment in _comments(path)
        if unexplained(comment)
    ]
    assert bare == []
