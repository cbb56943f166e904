"""The plugin API is one import surface, and every name it exports has a reference section in
the plugin guide (as every hook has one, see test_hookspecs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import server.plugin

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
REFERENCE = "## Reference: `server.plugin`"


def _reference() -> str:
    guide = GUIDE.read_text(encoding="utf-8")
    assert REFERENCE in guide, f"docs/plugins.md needs a section {REFERENCE!r}"
    return guide.split(REFERENCE, 1)[1]


@pytest.mark.parametrize("name", sorted(server.plugin.__all__))
def test_export_has_a_reference_section(name: str) -> None:
    assert re.search(rf"^#### `{re.escape(name)}`$", _reference(), re.MULTILINE), (
        f"docs/plugins.md needs '#### `{name}`' under {REFERENCE!r}"
    )


def test_every_documented_name_is_exported() -> None:
    documented = set(re.findall(r"^#### `(\w+)`$", _reference(), re.MULTILINE))
    assert documented <= set(server.plugin.__all__), documented - set(server.plugin.__all__)


@pytest.mark.parametrize("name", sorted(server.plugin.__all__))
def test_export_resolves(name: str) -> None:
    assert getattr(server.plugin, name) is not None
