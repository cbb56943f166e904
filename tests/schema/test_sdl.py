"""The committed SDL (schema/schema.graphql) is the schema the default build makes."""

from __future__ import annotations

from pathlib import Path

from schema.core import build_schema
from server.config import Settings
from server.plugins import load_plugins

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def test_committed_sdl_matches_default_build() -> None:
    built = build_schema(load_plugins(Settings()), Settings()).as_str().strip()
    committed = SDL.read_text(encoding="utf-8").strip()
    assert built == committed, (
        "schema/schema.graphql is out of date: run `make schema` and commit the result"
    )
