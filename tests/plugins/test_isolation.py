"""The core's suite does not depend on what else is installed: with a third-party plugin
installed (an entry point that adds tables, fields and an order listener), the committed SDL
is still the core's, and the core's tests and fixtures run as they do without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.scaffold import scaffold_plugin
from tests.support.plugins import ROOT, pip_install, run_module, shopgraph

pytestmark = pytest.mark.heavy

LISTENER = """

@hookimpl
def order_placed(event: object) -> None:
    raise RuntimeError("an installed plugin that nobody enabled was called")
"""

# Core tests that read the SDL, build the migrated databases and walk the whole migration
# history down and up, serve the API and look at the plugin set: SQLite only (the PostgreSQL
# half runs the same fixtures).
CORE_TESTS = [
    "tests/schema/test_sdl.py",
    "tests/server/test_migrations.py::test_models_match_migrations",
    "tests/server/test_migrations.py::test_upgrade_downgrade_upgrade",
    "tests/server/test_smoke.py::test_products_over_http",
    "tests/plugins/test_loyalty.py::test_disabling_removes_the_plugin_entirely",
]


def test_an_installed_third_party_plugin_changes_nothing_in_the_core_suite(
    tmp_path: Path,
) -> None:
    root = scaffold_plugin("intruder", tmp_path)
    init = root / "shopgraph_intruder" / "__init__.py"
    init.write_text(init.read_text() + LISTENER)
    site = tmp_path / "site"
    pip_install(root, site)

    # Installed and found: discovered, it changes the schema this configuration serves …
    discover = {"SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true"}
    listed = shopgraph(["plugins", "list"], site=site, env=discover)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("intruder "))
    assert "yes" in row and "entry point" in row and "order_placed" in row
    served = shopgraph(["schema", "export", "--installed"], site=site, env=discover)
    assert served.returncode == 0, served.stderr
    assert "intruderItems" in served.stdout
    # … and not the committed SDL, the core's.
    exported = shopgraph(["schema", "export"], site=site, env=discover)
    assert exported.returncode == 0, exported.stderr
    assert "intruder" not in exported.stdout
    committed = (ROOT / "schema" / "schema.graphql").read_text(encoding="utf-8")
    assert exported.stdout.strip() == committed.strip()

    # The core's tests, with the plugin installed, in a session of their own.
    suite = run_module(
        "pytest",
        ["-q", "-p", "no:cacheprovider", "-n", "0", "-k", "not postgresql", *CORE_TESTS],
        site=site,
    )
    assert suite.returncode == 0, suite.stdout[-5000:] + suite.stderr[-5000:]
    assert " passed" in suite.stdout and " failed" not in suite.stdout
