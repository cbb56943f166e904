"""The plugin manager factory and the runtime view of the enabled plugin set.

Nothing here runs at import time: ``load_plugins(settings)`` discovers, checks and registers
plugins into a fresh manager, so tests can hold several plugin sets in one process.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator
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
from server.hookcall import (
    OWN_CONFIG,
    BoundPlugin,
    HookCall,
    attribute,
    bind_plugin,
    drive,
    run_sync,
)
from server.hookcall import PluginError as PluginError
from server.hookcall import PluginFailed as PluginFailed
from server.hooktypes import CORE, PROJECT

ENTRY_POINT_GROUP = "shopgraph.plugins"
BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.recommendation",
    "plugins.pricing",
    "plugins.promotions",
    "plugins.logistics",
)
# The core's own hook implementations, registered under the name ``core`` (reserved).
IMPL_MARKER = f"{PROJECT}_impl"
# Parameters the runtime offers every hook besides those of its spec.
INJECTED = ("plugins", "config")


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
    # What the plugin manager registered for it: its hook implementations, bound to it.
    registered: BoundPlugin | None = None
    # Imports the plugin: kept for a disabled one, whose data hooks migrations still read.
    load: Callable[[], Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PluginData:
    """What a plugin's data hooks answer: the modules of its tables and the folders of its
    alembic branch. Read for every discovered plugin, enabled or not, because alembic must know
    every branch a database may hold."""

    name: str
    enabled: bool
    models: tuple[str, ...] = ()
    migration_locations: tuple[str, ...] = ()
    # Why a disabled plugin's answers could not be read (it failed to import, or its hooks
    # raised); None when they were.
    problem: str | None = None


@dataclass
class PluginRuntime:
    """The enabled plugins of one app (or one test): their manager and what they are.

    Hooks are called through pluggy (:mod:`server.hookcall`): wrappers, ``tryfirst``/
    ``trylast`` and ``firstresult`` behave as pluggy documents them, with awaitable results
    awaited inside the call loop.
    """

    pm: pluggy.PluginManager
    records: list[PluginRecord]
    _enabled_data: dict[str, PluginData] | None = field(default=None, init=False, repr=False)
    _disabled_data: dict[str, PluginData] = field(default_factory=dict, init=False, repr=False)
    # implements(), per hook: asked for every price of a page, and the plugin set of a runtime
    # is fixed once it is loaded.
    _implemented: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

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

    def _caller(self, hook_name: str) -> Any:
        return getattr(self.pm.hook, hook_name, None)

    def data(self, include_disabled: bool = True) -> list[PluginData]:
        """The plugins' data hooks' answers (:class:`PluginData`), in discovery order: the
        enabled plugins' through this runtime, and with ``include_disabled`` the disabled
        plugins' too. A disabled plugin is imported for this and nothing else (it is not
        registered, none of its other hooks is called); when that fails, its ``problem`` says
        why. Each is read once, then kept."""
        if self._enabled_data is None:
            models = _by_plugin(self.call_sync("models"))
            locations = _by_plugin(self.call_sync("migration_locations"))
            self._enabled_data = {
                r.name: PluginData(
                    name=r.name,
                    enabled=True,
                    models=models.get(r.name, ()),
                    migration_locations=locations.get(r.name, ()),
                )
                for r in self.enabled
            }
        found: list[PluginData] = []
        for record in self.records:
            if record.enabled:
                found.append(self._enabled_data[record.name])
            elif include_disabled:
                if record.name not in self._disabled_data:
                    self._disabled_data[record.name] = _read_disabled(record)
                found.append(self._disabled_data[record.name])
        return found

    def implementations(self, hook_name: str) -> list[pluggy.HookImpl]:
        """The hook's implementations in call order (pluggy's: last registered first,
        ``tryfirst``/``trylast`` honoured), wrappers included. Empty for a hook nobody
        declared."""
        caller = self._caller(hook_name)
        if caller is None:
            return []
        return list(reversed(caller.get_hookimpls()))

    def implementers(self, hook_name: str) -> list[str]:
        """The plugins that answer the hook (wrappers, which only wrap answers, not counted)."""
        return [
            impl.plugin_name
            for impl in self.implementations(hook_name)
            if not (impl.wrapper or impl.hookwrapper)
        ]

    def implements(self, hook_name: str) -> bool:
        """Whether any enabled plugin answers the hook (the core skips work when none does)."""
        known = self._implemented.get(hook_name)
        if known is None:
            caller = self._caller(hook_name)
            known = caller is not None and any(
                not (impl.wrapper or impl.hookwrapper) for impl in caller.get_hookimpls()
            )
            self._implemented[hook_name] = known
        return known

    def is_firstresult(self, hook_name: str) -> bool:
        caller = self._caller(hook_name)
        spec = getattr(caller, "spec", None)
        return bool(spec and spec.opts.get("firstresult"))

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "plugins": self, "config": OWN_CONFIG}

    async def _run(
        self, caller: Any, hook_name: str, kwargs: dict[str, Any]
    ) -> list[tuple[str, Any]]:
        call = HookCall(lambda: caller(**self._kwargs(kwargs)), hook_name, awaits=True)
        result = await drive(call)
        return attribute(call, result, self.is_firstresult(hook_name))

    async def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook through pluggy, awaiting awaitable results, and pair each result with
        the plugin that gave it (in call order).

        None results are dropped; a ``firstresult`` hook stops at the first other result. An
        exception becomes :class:`PluginFailed` naming the plugin.
        """
        caller = self._caller(hook_name)
        if caller is None or not caller.get_hookimpls():
            return []
        return await self._run(caller, hook_name, kwargs)

    async def call_plugin(
        self, plugin: str, hook_name: str, **kwargs: Any
    ) -> list[tuple[str, Any]]:
        """Call plugin ``plugin``'s implementations of ``hook_name`` only, its own wrappers
        included (the event dispatcher delivers to each plugin on its own, so that no plugin's
        failure touches another's delivery)."""
        if plugin not in self.implementers(hook_name):
            raise LookupError(f"plugin {plugin!r} does not implement {hook_name}")
        others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != plugin]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        return await self._run(caller, hook_name, kwargs)

    async def answer_of(self, plugin: str, hook_name: str, **kwargs: Any) -> Any:
        """Plugin ``plugin``'s answer to ``hook_name`` (None when it answers None): for hooks
        asked of one plugin, such as a payment gateway's."""
        answers = await self.call_plugin(plugin, hook_name, **kwargs)
        return answers[0][1] if answers else None

    def call_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like :meth:`call`, for hooks answered at start-up (schema, data, settings): their
        implementations must return plain values, not awaitables."""
        caller = self._caller(hook_name)
        if caller is None or not caller.get_hookimpls():
            return []
        call = HookCall(lambda: caller(**self._kwargs(kwargs)), hook_name, awaits=False)
        result = run_sync(call)
        return attribute(call, result, self.is_firstresult(hook_name))


def _by_plugin(results: list[tuple[str, Any]]) -> dict[str, tuple[str, ...]]:
    answers: dict[str, tuple[str, ...]] = {}
    for name, values in results:
        answers[name] = (*answers.get(name, ()), *(str(v) for v in values or ()))
    return answers


def _read_disabled(record: PluginRecord) -> PluginData:
    """A disabled plugin's data hooks, called through a manager of its own."""
    if record.load is None:
        return PluginData(record.name, enabled=False, problem="it cannot be imported")
    try:
        module = record.load()
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(hookspecs)
        pm.register(module, name=record.name)
        models = tuple(str(m) for answer in pm.hook.models() for m in answer or ())
        locations = tuple(str(p) for answer in pm.hook.migration_locations() for p in answer or ())
    except Exception as exc:  # noqa: BLE001 - a broken disabled plugin must not stop the others
        cause = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ else exc
        return PluginData(record.name, enabled=False, problem=f"{type(cause).__name__}: {cause}")
    return PluginData(record.name, enabled=False, models=models, migration_locations=locations)


# --- discovery -----------------------------------------------------------------------------


@dataclass
class _Candidate:
    name: str
    source: str
    load: Callable[[], Any]  # () -> plugin object
    version_hint: str = "0"
    entry_point: EntryPoint | None = None


def _builtin_candidates() -> Iterator[_Candidate]:
    for dotted in BUILTIN_PLUGINS:
        yield _Candidate(
            name=dotted.rsplit(".", 1)[-1],
            source="built-in",
            load=functools.partial(importlib.import_module, dotted),
            version_hint=server.__version__,
        )


def _entry_point_candidates() -> Iterator[_Candidate]:
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        yield _Candidate(
            name=ep.name,
            source="entry point",
            load=functools.partial(_load_entry_point, ep),
            version_hint=getattr(dist, "version", None) or "0",
            entry_point=ep,
        )


def _given(obj: Any) -> Any:
    """What loading a plugin given as an object returns: the object."""
    return obj


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


def _explicit_name(obj: Any) -> str:
    return _info_name(obj) or getattr(obj, "__name__", repr(obj)).rsplit(".", 1)[-1]


def _same_plugin(ep: EntryPoint, obj: Any) -> bool:
    """Whether entry point ``ep`` names ``obj`` itself: a plugin's own tests pass its module
    explicitly, and the same module is found again once the package is installed."""
    if not ep.attr:
        return ep.module == getattr(obj, "__name__", None)
    try:
        return ep.load() is obj
    except Exception:  # noqa: BLE001 - an entry point that cannot load is not this object
        return False


def _discover(extra: Iterable[Any], entry_points_too: bool = True) -> Iterator[_Candidate]:
    explicit = [(_explicit_name(obj), obj) for obj in extra]
    first: dict[str, Any] = {}
    for name, obj in explicit:
        first.setdefault(name, obj)
    yield from _builtin_candidates()
    if entry_points_too:
        for cand in _entry_point_candidates():
            ep = cand.entry_point
            if cand.name in first and ep is not None and _same_plugin(ep, first[cand.name]):
                continue  # the explicit object below is this very plugin
            yield cand
    for name, obj in explicit:
        yield _Candidate(name=name, source="explicit", load=functools.partial(_given, obj))


def load_plugins(settings: Settings, extra: Iterable[Any] = ()) -> PluginRuntime:
    """Build a plugin manager with the enabled plugins registered and checked.

    Discovery: the built-in plugins and every entry point in ``shopgraph.plugins`` (unless
    ``SHOPGRAPH_PLUGIN_ENTRY_POINTS`` is false: then the built-ins only), plus ``extra``
    objects (always enabled unless disabled by name; an object that an entry point also names,
    a plugin's own module in its own tests, is one plugin, listed as explicit).
    ``SHOPGRAPH_PLUGINS`` unset enables everything discovered, empty enables nothing, else it
    is an allow-list; ``SHOPGRAPH_DISABLED_PLUGINS`` removes plugins. A disabled plugin is not
    imported, except by migrations, which read its data hooks (:meth:`PluginRuntime.data`).
    Raises :class:`PluginError` for anything that would make the set unusable.
    """
    allow = settings.enabled_plugin_names
    deny = settings.disabled_plugin_names
    records: list[PluginRecord] = []
    seen: dict[str, str] = {}
    for cand in _discover(extra, settings.plugin_entry_points):
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
        wanted = cand.name not in deny and (explicit or allow is None or cand.name in allow)
        if not wanted:
            records.append(
                PluginRecord(
                    name=cand.name,
                    version=cand.version_hint,
                    source=cand.source,
                    enabled=False,
                    module=None,
                    load=cand.load,
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
                load=cand.load,
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
    runtime = PluginRuntime(pm=pm, records=records)
    pm.add_hookspecs(hookspecs)
    # Plugins may declare hookspecs of their own (``HOOKSPECS``: a module or class of
    # @hookspec functions) for other plugins to implement: add them all before registering.
    for record in enabled:
        own_specs = getattr(record.module, "HOOKSPECS", None)
        if own_specs is not None:
            pm.add_hookspecs(own_specs)
    # The core's own implementations (the default shipment plan, the built-in gateways),
    # registered like a plugin's: core features use the same hooks as third parties.
    from server.services import core_hooks

    pm.register(
        bind_plugin(CORE, core_hooks, IMPL_MARKER, runtime.config_for, runtime.is_firstresult),
        name=CORE,
    )
    for record in enabled:
        # What pluggy registers: the plugin's implementations bound to it (each gets its own
        # ``config``, and awaitable results are awaited inside pluggy's call loop).
        record.registered = bind_plugin(
            record.name, record.module, IMPL_MARKER, runtime.config_for, runtime.is_firstresult
        )
        try:
            pm.register(record.registered, name=record.name)
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
        record.hooks = sorted(h.name for h in pm.get_hookcallers(record.registered) or ())

    for name, model in runtime.call_sync("settings"):
        runtime.record(name).config = load_config(name, model)  # type: ignore[union-attr]  # a hook's answer comes from a registered plugin, which has its record
    granted: dict[str, str] = {}
    for name, names in runtime.call_sync("permissions"):
        for permission in names:
            if permission in granted and granted[permission] != name:
                raise PluginError(
                    f"permission {permission!r} is declared by plugin {granted[permission]!r} "
                    f"and by plugin {name!r}"
                )
            granted[permission] = name
        runtime.record(name).permissions = tuple(names)  # type: ignore[union-attr]  # a hook's answer comes from a registered plugin, which has its record
    return runtime


def builtin_plugin_names() -> tuple[str, ...]:
    """The names of the built-in plugins (those under ``plugins/``)."""
    return tuple(dotted.rsplit(".", 1)[-1] for dotted in BUILTIN_PLUGINS)


def load_builtin_plugins(settings: Settings) -> PluginRuntime:
    """Every built-in plugin and nothing installed, whatever the settings choose: the set the
    committed SDL (``shopgraph schema export``) describes."""
    update = {"plugin_entry_points": False, "plugins": None, "disabled_plugins": ""}
    return load_plugins(settings.model_copy(update=update))


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
