"""The plugin manager factory and the runtime view of the enabled plugin set.

Nothing here runs at import time: ``load_plugins(settings)`` builds a fresh manager, so tests can
hold several plugin sets in one process.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from server import hookspecs
from server.config import Settings
from server.plugin import PROJECT

ENTRY_POINT_GROUP = "shopgraph.plugins"
BUILTIN_PLUGINS: tuple[str, ...] = ()


class PluginFailed(Exception):
    """A plugin's hook raised. The request fails cleanly, naming the plugin."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {error}")
        self.plugin = plugin
        self.hook = hook


@dataclass
class PluginRecord:
    name: str
    version: str
    source: str
    enabled: bool
    module: Any
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginRuntime:
    """The enabled plugins of one app (or one test): their manager and what they are."""

    pm: pluggy.PluginManager
    records: list[PluginRecord]

    @property
    def hook(self) -> Any:
        return self.pm.hook

    async def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook, await awaitable results, and pair each with the plugin that gave it."""
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[str, Any]] = []
        for impl in reversed(caller.get_hookimpls()):
            wanted = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                value = impl.function(**wanted)
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                raise PluginFailed(impl.plugin_name, hook_name, exc) from exc
            if value is not None:
                results.append((impl.plugin_name, value))
        return results


def _candidates() -> Iterable[tuple[str, Any, str]]:
    for dotted in BUILTIN_PLUGINS:
        module = importlib.import_module(dotted)
        yield _plugin_name(module, dotted), module, "built-in"
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, ep.load(), "entry point"


def _plugin_name(module: Any, fallback: str) -> str:
    info = getattr(module, "PLUGIN_INFO", None)
    return getattr(info, "name", None) or fallback.rsplit(".", 1)[-1]


def load_plugins(settings: Settings, extra: Iterable[Any] = ()) -> PluginRuntime:
    """Build a plugin manager with the enabled plugins registered and checked."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    allow = settings.enabled_plugin_names
    deny = settings.disabled_plugin_names
    records: list[PluginRecord] = []
    for name, module, source in [
        *_candidates(),
        *((_plugin_name(m, repr(m)), m, "explicit") for m in extra),
    ]:
        enabled = name not in deny and (allow is None or name in allow)
        info = getattr(module, "PLUGIN_INFO", None)
        record = PluginRecord(
            name=name,
            version=getattr(info, "version", "0"),
            source=source,
            enabled=enabled,
            module=module,
        )
        if enabled:
            pm.register(module, name=name)
            record.hooks = sorted(
                h.name for h in pm.get_hookcallers(module) or () if not h.name.startswith("_")
            )
        records.append(record)
    pm.check_pending()
    return PluginRuntime(pm=pm, records=records)
