"""The committed SDL (schema/schema.graphql) is the schema of the core with the built-in plugins,
whatever else is installed."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from schema.core import build_schema
from server.cli import main as cli
from server.config import Settings
from server.plugins import load_builtin_plugins
from tests.support.plugins import installed

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def built_in_sdl(settings: Settings) -> str:
    return build_schema(load_builtin_plugins(settings), settings).as_str().strip()


def test_committed_sdl_matches_the_built_in_build() -> None:
    committed = SDL.read_text(encoding="utf-8").strip()
    assert built_in_sdl(Settings()) == committed, (
        "schema/schema.graphql is out of date: run `make schema` and commit the result"
    )


def test_the_built_in_build_ignores_installed_plugins_and_the_plugin_settings() -> None:
    # The example plugin is installed: discovered and enabled, it is still not in the SDL.
    chosen = installed(Settings(disabled_plugins="nothing"), "loyalty")
    assert "loyaltyPoints" not in built_in_sdl(chosen)
    assert built_in_sdl(chosen) == built_in_sdl(Settings())


def test_schema_export_prints_the_built_in_build_or_the_installed_one() -> None:
    env = {"SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true", "SHOPGRAPH_PLUGINS": "loyalty"}
    runner = CliRunner()
    exported = runner.invoke(cli, ["schema", "export"], env=env)
    assert exported.exit_code == 0, exported.output
    assert exported.output.strip() == SDL.read_text(encoding="utf-8").strip()
    served = runner.invoke(cli, ["schema", "export", "--installed"], env=env)
    assert served.exit_code == 0, served.output
    assert "loyaltyPoints: Int!" in served.output
