"""How hooks are called: through pluggy's own call loop, with awaitable results awaited inside it.

Every hook implementation a plugin registers is bound to its plugin (:func:`bind_plugin`), and
the plugin manager registers the bound functions. A hook is then called with pluggy's public
API (``pm.hook.<name>(...)``, ``pm.subset_hook_caller``), so ``tryfirst``/``trylast``,
``firstresult``, ``wrapper=True`` and old-style ``hookwrapper=True`` implementations all work
as pluggy documents them. The bound function adds what pluggy does not do:

- ``config``: the hook is called with a placeholder, which each implementation gets replaced
  by its own plugin's settings object;
- awaitables: a result that is awaitable is awaited *inside* pluggy's call loop. The loop
  runs in a greenlet (:class:`HookCall`); an implementation whose result is awaitable hands it
  to the calling coroutine, which awaits it and resumes the loop with its value. So wrappers
  receive the awaited results, a ``firstresult`` hook stops at the first implementation whose
  *awaited* result is not None, and None results are dropped after awaiting;
- failures: an exception becomes :class:`PluginFailed` naming the plugin and the hook;
- provenance: each result is remembered with the plugin that gave it (a result a wrapper puts
  in is the wrapper's plugin's), so the core can pair answers with plugins.

Wrappers themselves are generator functions, as in pluggy: the code before ``yield`` runs
before the implementations they wrap, ``yield`` gives the (awaited) results, and what the
wrapper returns (or forces, for an old-style wrapper) is the hook's result.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import greenlet


class _OwnConfig:
    def __repr__(self) -> str:
        return "<each plugin's own config>"


# Passed as the hook call's ``config``; each implementation receives its plugin's settings.
OWN_CONFIG = _OwnConfig()


class PluginError(Exception):
    """The plugin set cannot start. The message names the plugin and what is wrong."""


class PluginFailed(Exception):
    """A plugin's hook raised. The request fails cleanly, naming the plugin."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class HookCall(greenlet.greenlet):
    """One hook call in progress: pluggy's call loop runs in this greenlet.

    ``awaits`` says whether implementations may return awaitables (runtime hooks) or must
    return plain values (hooks answered at start-up). ``ledger`` pairs every result produced
    during the call with the plugin that produced it.
    """

    def __init__(self, run: Callable[[], Any], hook: str, *, awaits: bool) -> None:
        super().__init__(run)
        self.hook = hook
        self.awaits = awaits
        self.ledger: list[tuple[str, Any]] = []
        # The calling context's variables (the request id of log lines) are seen by the
        # implementations; what they set stays with this call.
        self.gr_context = contextvars.copy_context()


def _current(hook: str) -> HookCall | None:
    current = greenlet.getcurrent()
    if isinstance(current, HookCall) and current.hook == hook:
        return current
    return None


def _note(hook: str, plugin: str, result: Any) -> None:
    call = _current(hook)
    if call is not None and result is not None:
        call.ledger.append((plugin, result))


def _note_additions(hook: str, plugin: str, result: Any, firstresult: bool) -> None:
    """Remember the results a wrapper put in (those no implementation produced) as its own."""
    call = _current(hook)
    if call is None or result is None:
        return
    if firstresult:
        items = [result]
    elif isinstance(result, list | tuple):
        items = list(result)
    else:
        raise PluginFailed(
            plugin, hook, TypeError(f"a wrapper of {hook} must return a list of results")
        )
    available: dict[int, int] = {}
    for _plugin, value in call.ledger:
        available[id(value)] = available.get(id(value), 0) + 1
    for item in items:
        if available.get(id(item), 0) > 0:
            available[id(item)] -= 1
        else:
            call.ledger.append((plugin, item))


def attribute(call: HookCall, result: Any, firstresult: bool) -> list[tuple[str, Any]]:
    """Pair the hook's final result(s) with the plugins that gave them, in result order."""
    items = ([] if result is None else [result]) if firstresult else list(result)
    unused = list(call.ledger)
    paired: list[tuple[str, Any]] = []
    for item in items:
        index = next((i for i, (_p, value) in enumerate(unused) if value is item), None)
        if index is None:
            raise RuntimeError(f"{call.hook}: a result whose plugin is unknown")
        paired.append((unused.pop(index)[0], item))
    return paired


def _await(hook: str, plugin: str, value: Awaitable[Any]) -> Any:
    """Await ``value`` from inside pluggy's call loop: the calling coroutine awaits it."""
    call = _current(hook)
    if call is None or not call.awaits:
        close = getattr(value, "close", None)
        if close is not None:
            close()
        raise PluginError(
            f"plugin {plugin!r}: {hook} must return its value, not an awaitable "
            "(it is called at start-up)"
        )
    parent = call.parent
    assert parent is not None
    return parent.switch(value)


async def drive(call: HookCall) -> Any:
    """Run ``call`` to its end, awaiting every awaitable its implementations hand over."""
    pending = call.switch()
    while not call.dead:
        try:
            value = await pending
        except BaseException:  # noqa: BLE001 - every outcome goes back into the call loop
            pending = call.throw(*sys.exc_info())
        else:
            pending = call.switch(value)
    return pending


def run_sync(call: HookCall) -> Any:
    """Run ``call`` when its implementations may not await (start-up hooks)."""
    result = call.switch()
    assert call.dead, "a start-up hook call cannot wait"
    return result


def _with_config(args: tuple[Any, ...], config: Any) -> tuple[Any, ...]:
    return tuple(config if a is OWN_CONFIG else a for a in args)


def _kw_with_config(kwargs: dict[str, Any], config: Any) -> dict[str, Any]:
    return {k: config if v is OWN_CONFIG else v for k, v in kwargs.items()}


def _is_generator(fn: Callable[..., Any]) -> bool:
    return inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(inspect.unwrap(fn))


def _bind_impl(
    plugin: str, hook: str, fn: Callable[..., Any], config_of: Callable[[str], Any]
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def impl(*args: Any, **kwargs: Any) -> Any:
        config = config_of(plugin)
        try:
            value = fn(*_with_config(args, config), **_kw_with_config(kwargs, config))
        except Exception as exc:
            raise PluginFailed(plugin, hook, exc) from exc
        if inspect.isawaitable(value):
            try:
                value = _await(hook, plugin, value)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginFailed(plugin, hook, exc) from exc
        _note(hook, plugin, value)
        return value

    return impl


def _wrapper_failed(plugin: str, hook: str, problem: str) -> PluginFailed:
    return PluginFailed(plugin, hook, RuntimeError(problem))


def _started(
    plugin: str,
    hook: str,
    fn: Callable[..., Generator[Any, Any, Any]],
    config_of: Callable[[str], Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[Any, Any, Any]:
    """A wrapper's generator, run up to its ``yield`` (the code before the other
    implementations); its failure, or a missing ``yield``, names the plugin."""
    config = config_of(plugin)
    try:
        gen = fn(*_with_config(args, config), **_kw_with_config(kwargs, config))
        next(gen)
    except StopIteration:
        raise _wrapper_failed(plugin, hook, "the wrapper did not yield") from None
    except Exception as exc:
        raise PluginFailed(plugin, hook, exc) from exc
    return gen


def _bind_wrapper(
    plugin: str,
    hook: str,
    fn: Callable[..., Generator[Any, Any, Any]],
    config_of: Callable[[str], Any],
    firstresult: Callable[[], bool],
) -> Callable[..., Generator[Any, Any, Any]]:
    """A new-style (``wrapper=True``) implementation: gets the results, returns the result."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = _started(plugin, hook, fn, config_of, args, kwargs)
        try:
            inner = yield
        except BaseException as thrown:
            try:
                gen.throw(thrown)
            except StopIteration as stop:
                result = stop.value
            except BaseException as exc:
                if exc is thrown or not isinstance(exc, Exception):
                    raise
                raise PluginFailed(plugin, hook, exc) from exc
            else:
                gen.close()
                raise _wrapper_failed(plugin, hook, "the wrapper yielded twice") from None
        else:
            try:
                gen.send(inner)
            except StopIteration as stop:
                result = stop.value
            except Exception as exc:
                raise PluginFailed(plugin, hook, exc) from exc
            else:
                gen.close()
                raise _wrapper_failed(plugin, hook, "the wrapper yielded twice")
        _note_additions(hook, plugin, result, firstresult())
        return result

    return wrapper


def _bind_old_wrapper(
    plugin: str,
    hook: str,
    fn: Callable[..., Generator[Any, Any, Any]],
    config_of: Callable[[str], Any],
    firstresult: Callable[[], bool],
) -> Callable[..., Generator[Any, Any, Any]]:
    """An old-style (``hookwrapper=True``) implementation: gets a ``pluggy.Result``."""

    @functools.wraps(fn)
    def hookwrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = _started(plugin, hook, fn, config_of, args, kwargs)
        outcome = yield
        try:
            gen.send(outcome)
        except StopIteration:
            pass
        except Exception as exc:
            raise PluginFailed(plugin, hook, exc) from exc
        else:
            gen.close()
            raise _wrapper_failed(plugin, hook, "the wrapper yielded twice")
        if outcome.excinfo is None:
            _note_additions(hook, plugin, outcome.get_result(), firstresult())

    return hookwrapper


class BoundPlugin:
    """What the plugin manager registers for one plugin: its hook implementations, bound."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.module = module

    def __repr__(self) -> str:
        return f"<plugin {self.name!r}>"


def bind_plugin(
    name: str,
    module: Any,
    marker: str,
    config_of: Callable[[str], Any],
    is_firstresult: Callable[[str], bool],
) -> BoundPlugin:
    """Bind every ``@hookimpl`` of ``module`` (marked with attribute ``marker``) to plugin
    ``name``; the result is what pluggy registers."""
    bound = BoundPlugin(name, module)
    for attr in dir(module):
        fn = getattr(module, attr, None)
        opts = getattr(fn, marker, None)
        if fn is None or not callable(fn) or not isinstance(opts, dict):
            continue
        hook = opts.get("specname") or attr
        if opts.get("wrapper") or opts.get("hookwrapper"):
            if not _is_generator(fn):
                raise PluginError(
                    f"plugin {name!r}: the wrapper {attr} must be a generator function "
                    "(code before `yield` runs first, `yield` gives the results)"
                )
            binder = _bind_old_wrapper if opts.get("hookwrapper") else _bind_wrapper
            function = binder(name, hook, fn, config_of, functools.partial(is_firstresult, hook))
        else:
            function = _bind_impl(name, hook, fn, config_of)
        setattr(function, marker, dict(opts))
        setattr(bound, attr, function)
    return bound
