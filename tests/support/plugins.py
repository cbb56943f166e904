"""The plugin sets tests choose, and plugins installed the way a third party installs them.

The suite turns entry-point discovery off (tests/conftest.py): a test sees the built-in
plugins and what it passes, never whatever else happens to be installed. A test about the
example plugin (examples/loyalty, pip-installed by the suite) selects it: :func:`installed`
finds it through its entry point, :func:`with_example` passes its module.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from server.config import Settings
from server.plugins import PluginRuntime, builtin_plugin_names, load_plugins

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS_VARIABLE = "SHOPGRAPH_PLUGIN_ENTRY_POINTS"


def example_plugin() -> ModuleType:
    """The example plugin's module, as pip installed it."""
    return importlib.import_module("shopgraph_loyalty")


def installed(settings: Settings, *names: str) -> Settings:
    """``settings`` discovering installed plugins, enabling the built-ins and ``names`` only:
    any other installed plugin is listed as disabled, and not imported."""
    allowed = ",".join([*builtin_plugin_names(), *names])
    return settings.model_copy(update={"plugin_entry_points": True, "plugins": allowed})


def with_example(settings: Settings, *extra: Any) -> PluginRuntime:
    """The built-in plugins, the example plugin and ``extra``; nothing found by entry point."""
    chosen = settings.model_copy(update={"plugin_entry_points": False})
    return load_plugins(chosen, extra=[example_plugin(), *extra])


def pip_install(source: Path, target: Path, *, editable: bool = False) -> None:
    """Install the package at ``source`` into the folder ``target`` (``pip install --target``),
    offline and with this environment's build tools: a throwaway site of its own."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", "--disable-pip-version-check", "--target", str(target)]
    command += ["-e", str(source)] if editable else [str(source)]
    subprocess.run(command, check=True, capture_output=True, text=True)


def site_env(site: Path | None, **variables: str) -> dict[str, str]:
    """This environment for a child process that also has ``site`` (a ``pip install
    --target`` folder) as a site directory, with shopgraph's settings ``variables`` and no
    others; pytest's own variables of this process are left out, so that a pytest run in the
    child is a session of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SHOPGRAPH_"))}
    if site is not None:
        env["PLUGIN_TEST_SITE"] = str(site)
    env.update(variables)
    return env


# Runs a module in a child process with PLUGIN_TEST_SITE added as a site directory (its .pth
# files processed, so an editable install there imports from its sources).
_WITH_SITE = (
    "import os, runpy, site, sys; "
    "where = os.environ.get('PLUGIN_TEST_SITE'); "
    "where and site.addsitedir(where); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def run_module(
    module: str,
    args: Sequence[str],
    *,
    site: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``python -m module args…`` in a child process, with ``site`` as a site directory."""
    return subprocess.run(
        [sys.executable, "-c", _WITH_SITE, module, *args],
        env=site_env(site, **(env or {})),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shopgraph(
    args: Sequence[str],
    *,
    site: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """The ``shopgraph`` command in a child process (``site`` installed plugins visible)."""
    return run_module("server.cli", args, site=site, env=env, cwd=cwd)
