"""A built-in plugin answers every hook it implements however often it is registered: none of
its hook functions may share a name with one of its submodules (importing the submodule would
replace the function on the package, and the next plugin manager would find a module)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

from server.config import Settings
from server.hooktypes import PROJECT
from server.plugins import BUILTIN_PLUGINS, load_builtin_plugins

IMPL_MARKER = f"{PROJECT}_impl"


def _hook_functions(package: ModuleType) -> dict[str, str]:
    """Attribute name -> hook name of the package's hook implementations."""
    found = {}
    for name, value in vars(package).items():
        options = getattr(value, IMPL_MARKER, None)
        if inspect.isfunction(value) and options is not None:
            found[name] = options.get("specname") or name
    return found


@pytest.mark.parametrize("dotted", BUILTIN_PLUGINS)
def test_no_hook_function_is_named_like_a_submodule(dotted: str) -> None:
    package = importlib.import_module(dotted)
    hooks_before = _hook_functions(package)
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not set(hooks_before) & submodules
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{dotted}."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
    # Every submodule imported: the package still holds every hook function.
    assert _hook_functions(package) == hooks_before


def test_the_built_in_plugins_answer_their_data_hooks_on_every_load() -> None:
    names = {dotted.rsplit(".", 1)[-1] for dotted in BUILTIN_PLUGINS}
    for _ in range(2):
        runtime = load_builtin_plugins(Settings())
        answered = {plugin for plugin, modules in runtime.call_sync("models") if modules}
        assert answered >= names
