"""The plugin manager factory and the runtime view of the enabled plugin set.

Nothing here runs at import time: ``load_plugins(settings)`` discovers, checks and registers
plugins into a fresh manager, so tests can hold several plugin sets in one process.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy
from dotenv import dotenv_values
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ValidationError

import server
from server import hookspecs
from server.config import Settings
from server.plugin import CORE, PROJECT

ENTRY_POINT_GROUP = "shopgraph.plugins"
BUILTIN_PLUGINS: tuple[str, ...] = ()
# The core's own hook implementations, registered under the name ``core`` (reserved).
CORE_HOOKS = "server.services.core_hooks"
IMPL_MARKER = f"{PROJECT}_impl"
# Parameters the runtime offers every hook besides those of its spec.
INJECTED = ("plugins", "config")


class PluginError(Exception):
    """The plugin set cannot start. The message names the plugin and what is wrong."""


class PluginFailed(Exception):
    """A plugin's hook raised. The request fails cleanly, naming the plugin."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


@dataclass
class PluginRecord:
    """One discovered plugin, enabled or not, as ``plugins list`` and the admin query show it."""

    name: str
    version: str
    source: str
    enabled: bool
    module: Any
    hooks: list[str] = field(default_factory=list)
    description: str = ""
    core_version: str = ""
    requires: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    config: Any = None


@dataclass
class PluginRuntime:
    """The enabled plugins of one app (or one test): their manager and what they are."""

    pm: pluggy.PluginManager
    records: list[PluginRecord]

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @property
    def enabled(self) -> list[PluginRecord]:
        return [r for r in self.records if r.enabled]

    @property
    def permissions(self) -> dict[str, str]:
        """Every permission the enabled plugins add, with the plugin that added it."""
        return {p: r.name for r in self.enabled for p in r.permissions}

    def record(self, name: str) -> PluginRecord | None:
        return next((r for r in self.records if r.name == name), None)

    def is_enabled(self, name: str) -> bool:
        record = self.record(name)
        return record is not None and record.enabled

    def config_for(self, name: str) -> Any:
        """The validated settings object of plugin ``name`` (None if it declares none)."""
        record = self.record(name)
        return record.config if record is not None else None

    def implementations(self, hook_name: str) -> list[Any]:
        """The hook's implementations in call order (pluggy's: last registered first,
        ``tryfirst``/``trylast`` honoured). Empty for a hook nobody declared."""
        caller = getattr(self.pm.hook, hook_name, None)
        if caller is None:
            return []
        return list(reversed(caller.get_hookimpls()))

    def implements(self, hook_name: str) -> bool:
        """Whether any enabled plugin implements the hook (the core skips work when none does)."""
        caller = getattr(self.pm.hook, hook_name, None)
        return caller is not None and bool(caller.get_hookimpls())

    def implementers(self, hook_name: str) -> list[str]:
        return [impl.plugin_name for impl in self.implementations(hook_name)]

    def _is_firstresult(self, hook_name: str) -> bool:
        caller = getattr(self.pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        return bool(spec and spec.opts.get("firstresult"))

    def _arguments(self, impl: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        offered = {**kwargs, "plugins": self, "config": self.config_for(impl.plugin_name)}
        return {k: v for k, v in offered.items() if k in impl.argnames}

    async def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook, await awaitable results, and pair each with the plugin that gave it.

        None results are dropped; a ``firstresult`` hook stops at the first other result. An
        exception becomes :class:`PluginFailed` naming the plugin.
        """
        first = self._is_firstresult(hook_name)
        results: list[tuple[str, Any]] = []
        for impl in self.implementations(hook_name):
            value = await self.call_impl(impl, hook_name, **kwargs)
            if value is not None:
                results.append((impl.plugin_name, value))
                if first:
                    break
        return results

    async def call_impl(self, impl: Any, hook_name: str, **kwargs: Any) -> Any:
        """Call one implementation (the event dispatcher delivers to each plugin on its own)."""
        try:
            value = impl.function(**self._arguments(impl, kwargs))
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            raise PluginFailed(impl.plugin_name, hook_name, exc) from exc
        return value

    async def call_plugin(self, plugin: str, hook_name: str, **kwargs: Any) -> Any:
        """Call plugin ``plugin``'s implementation of ``hook_name`` only."""
        for impl in self.implementations(hook_name):
            if impl.plugin_name == plugin:
                return await self.call_impl(impl, hook_name, **kwargs)
        raise LookupError(f"plugin {plugin!r} does not implement {hook_name}")

    def call_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like :meth:`call`, for hooks answered at start-up (schema, data, settings):
        their implementations must not be coroutines."""
        results: list[tuple[str, Any]] = []
        for impl in self.implementations(hook_name):
            try:
                value = impl.function(**self._arguments(impl, kwargs))
            except Exception as exc:
                raise PluginFailed(impl.plugin_name, hook_name, exc) from exc
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if close is not None:
                    close()
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook_name} must return its value, "
                    "not an awaitable (it is called at start-up)"
                )
            if value is not None:
                results.append((impl.plugin_name, value))
        return results


# --- discovery -----------------------------------------------------------------------------


@dataclass
class _Candidate:
    name: str
    source: str
    load: Any  # () -> plugin object
    version_hint: str = "0"


def _builtin_candidates() -> Iterator[_Candidate]:
    for dotted in BUILTIN_PLUGINS:
        yield _Candidate(
            name=dotted.rsplit(".", 1)[-1],
            source="built-in",
            load=lambda dotted=dotted: importlib.import_module(dotted),
            version_hint=server.__version__,
        )


def _entry_point_candidates() -> Iterator[_Candidate]:
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        yield _Candidate(
            name=ep.name,
            source="entry point",
            load=lambda ep=ep: _load_entry_point(ep),
            version_hint=getattr(dist, "version", None) or "0",
        )


def _load_entry_point(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {ep.name!r}: entry point {ep.value!r} failed to import: {exc!r} "
            f"(disable it with SHOPGRAPH_DISABLED_PLUGINS={ep.name})"
        ) from exc


def _info_name(module: Any) -> str | None:
    info = getattr(module, "PLUGIN_INFO", None)
    return getattr(info, "name", None)


def _marked_hooks(module: Any) -> list[str]:
    """The hooks a plugin object implements, read from its ``@hookimpl`` marks."""
    names = set()
    for attr in dir(module):
        value = getattr(module, attr, None)
        opts = getattr(value, IMPL_MARKER, None)
        if isinstance(opts, dict) and callable(value):
            names.add(opts.get("specname") or attr)
    return sorted(names)


def _check_signatures(name: str, module: Any) -> None:
    for attr in dir(module):
        value = getattr(module, attr, None)
        if not (callable(value) and isinstance(getattr(value, IMPL_MARKER, None), dict)):
            continue
        params = inspect.signature(value).parameters.values()
        kwonly = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        if kwonly:
            raise PluginError(
                f"plugin {name!r}: hook {attr} declares keyword-only parameters {kwonly}; "
                "declare them as ordinary parameters (hooks are matched by parameter name)"
            )


def _env_name(plugin: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", plugin.upper())


def settings_prefix(plugin: str) -> str:
    """``SHOPGRAPH_<PLUGIN>_``: where plugin ``plugin``'s settings are read from."""
    return f"SHOPGRAPH_{_env_name(plugin)}_"


def _config_source() -> dict[str, str]:
    values: dict[str, str] = {}
    config_file = os.environ.get("SHOPGRAPH_CONFIG")
    if config_file and Path(config_file).is_file():
        values.update({k: v for k, v in dotenv_values(config_file).items() if v is not None})
    values.update(os.environ)  # the environment wins over the file, as for the core settings
    return values


def load_config(plugin: str, model: Any, source: dict[str, str] | None = None) -> Any:
    """Validate plugin ``plugin``'s settings model from ``SHOPGRAPH_<PLUGIN>_<FIELD>``."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(f"plugin {plugin!r}: the settings hook must return a pydantic model")
    source = _config_source() if source is None else source
    prefix = settings_prefix(plugin)
    upper = {k.upper(): v for k, v in source.items()}
    values = {
        fname: upper[prefix + fname.upper()]
        for fname in model.model_fields
        if prefix + fname.upper() in upper
    }
    try:
        return model.model_validate_strings(values)
    except ValidationError as exc:
        raise PluginError(f"plugin {plugin!r}: invalid settings ({prefix}*): {exc}") from exc


def _check_core_version(name: str, spec: str) -> None:
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier as exc:
        raise PluginError(f"plugin {name!r}: invalid core_version {spec!r}: {exc}") from exc
    if not specifier.contains(server.__version__, prereleases=True):
        raise PluginError(
            f"plugin {name!r} supports shopgraph {spec}, but this is shopgraph {server.__version__}"
        )


def _discover(extra: Iterable[Any]) -> Iterator[_Candidate]:
    yield from _builtin_candidates()
    yield from _entry_point_candidates()
    for obj in extra:
        name = _info_name(obj) or getattr(obj, "__name__", repr(obj)).rsplit(".", 1)[-1]
        yield _Candidate(name=name, source="explicit", load=lambda obj=obj: obj)


def load_plugins(settings: Settings, extra: Iterable[Any] = ()) -> PluginRuntime:
    """Build a plugin manager with the enabled plugins registered and checked.

    Discovery: the built-in plugins and every entry point in ``shopgraph.plugins``, plus
    ``extra`` objects (always enabled unless disabled by name). ``SHOPGRAPH_PLUGINS`` unset
    enables everything installed, empty enables nothing, else it is an allow-list;
    ``SHOPGRAPH_DISABLED_PLUGINS`` removes plugins. A disabled plugin is not even imported.
    Raises :class:`PluginError` for anything that would make the set unusable.
    """
    allow = settings.enabled_plugin_names
    deny = settings.disabled_plugin_names
    records: list[PluginRecord] = []
    seen: dict[str, str] = {}
    for cand in _discover(extra):
        if cand.name == CORE:
            raise PluginError(
                f"a plugin ({cand.source}) is named {CORE!r}: the name is the core's own"
            )
        if cand.name in seen:
            raise PluginError(
                f"two plugins are named {cand.name!r} ({seen[cand.name]} and {cand.source})"
            )
        seen[cand.name] = cand.source
        explicit = cand.source == "explicit"
        enabled = cand.name not in deny and (explicit or allow is None or cand.name in allow)
        if not enabled:
            records.append(
                PluginRecord(
                    name=cand.name,
                    version=cand.version_hint,
                    source=cand.source,
                    enabled=False,
                    module=None,
                )
            )
            continue
        module = cand.load()
        info = getattr(module, "PLUGIN_INFO", None)
        if info is not None and info.name != cand.name:
            raise PluginError(
                f"plugin {info.name!r} is installed under the name {cand.name!r}: "
                "the entry point's name must be the plugin's name"
            )
        records.append(
            PluginRecord(
                name=cand.name,
                version=getattr(info, "version", cand.version_hint),
                source=cand.source,
                enabled=True,
                module=module,
                hooks=_marked_hooks(module),
                description=getattr(info, "description", "") or "",
                core_version=getattr(info, "core_version", "") or "",
                requires=tuple(getattr(info, "requires", ()) or ()),
            )
        )

    enabled = [r for r in records if r.enabled]
    enabled_names = {r.name for r in enabled}
    for record in enabled:
        if record.core_version:
            _check_core_version(record.name, record.core_version)
        for required in record.requires:
            if required not in enabled_names:
                state = "disabled" if required in seen else "not installed"
                raise PluginError(
                    f"plugin {record.name!r} requires plugin {required!r}, which is {state}"
                )
        _check_signatures(record.name, record.module)

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    # Plugins may declare hookspecs of their own (``HOOKSPECS``: a module or class of
    # @hookspec functions) for other plugins to implement: add them all before registering.
    for record in enabled:
        own_specs = getattr(record.module, "HOOKSPECS", None)
        if own_specs is not None:
            pm.add_hookspecs(own_specs)
    pm.register(importlib.import_module(CORE_HOOKS), name=CORE)
    for record in enabled:
        try:
            pm.register(record.module, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {record.name!r}: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            f"plugin {name!r}: {exc} (a typo, or a hook of a plugin not enabled?)"
        ) from exc
    for record in enabled:
        record.hooks = sorted(h.name for h in pm.get_hookcallers(record.module) or ())

    runtime = PluginRuntime(pm=pm, records=records)
    for name, model in runtime.call_sync("settings"):
        runtime.record(name).config = load_config(name, model)  # type: ignore[union-attr]
    granted: dict[str, str] = {}
    for name, names in runtime.call_sync("permissions"):
        for permission in names:
            if permission in granted and granted[permission] != name:
                raise PluginError(
                    f"permission {permission!r} is declared by plugin {granted[permission]!r} "
                    f"and by plugin {name!r}"
                )
            granted[permission] = name
        runtime.record(name).permissions = tuple(names)  # type: ignore[union-attr]
    return runtime


def describe_plugins(runtime: PluginRuntime) -> str:
    """A plain-text table of every discovered plugin (``shopgraph plugins list``)."""
    if not runtime.records:
        return "no plugins installed"
    header = ("NAME", "VERSION", "ENABLED", "SOURCE", "HOOKS")
    rows = [
        (r.name, r.version, "yes" if r.enabled else "no", r.source, ", ".join(r.hooks) or "-")
        for r in runtime.records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:4])]
        lines.append("  ".join([*cells, row[4]]))
    return "\n".join(lines)
