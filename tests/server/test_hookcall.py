"""Hooks are called through pluggy's call loop: wrappers (new- and old-style) see the awaited
results and can change them, ``firstresult`` waits for awaited answers, failures name the
plugin, each implementation gets its own plugin's settings."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pluggy
import pytest
from pydantic import BaseModel

from server.config import Settings
from server.logs import REQUEST_ID
from server.plugin import CheckoutProblem, PluginInfo, hookimpl, hookspec
from server.plugins import PluginError, PluginFailed, PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin


def only(*plugins: Any) -> PluginRuntime:
    return load_plugins(Settings(plugins=""), extra=plugins)


class SuggestSpecs:
    @hookspec
    def suggest(self, word: str) -> str | None:
        """Return a suggestion for ``word``."""

    @hookspec(firstresult=True)
    def pick(self, word: str) -> str | None:
        """Return the one answer for ``word``."""


async def later(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


class NewStyle:
    """``@hookimpl(wrapper=True)``: gets the list of results, returns the hook's result."""

    PLUGIN_INFO = PluginInfo(name="shout", version="1.0")

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen: list[Any] = []

    @hookimpl(wrapper=True)
    def suggest(self, word: str) -> Generator[None, list[str], list[str]]:
        self.calls.append(f"before {word}")
        results = yield
        self.calls.append("after")
        self.seen = list(results)
        return [r.upper() for r in results if r != "drop me"]


class OldStyle:
    """``@hookimpl(hookwrapper=True)``: gets a ``pluggy.Result`` and may force another."""

    PLUGIN_INFO = PluginInfo(name="tail", version="1.0")

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl(hookwrapper=True)
    def suggest(self, word: str) -> Generator[None, pluggy.Result[list[str]], None]:
        outcome = yield
        self.seen = list(outcome.get_result())
        outcome.force_result([*outcome.get_result(), f"{word}!"])


def _answering_plugins() -> list[Any]:
    return [
        FakePlugin("sync_one", hookspecs=SuggestSpecs, suggest=lambda word: f"{word}-sync"),
        FakePlugin("async_one", suggest=lambda word: later(f"{word}-async")),
        FakePlugin("silent", suggest=lambda word: later(None)),
        FakePlugin("dropped", suggest=lambda word: later("drop me")),
    ]


async def test_wrappers_of_both_styles_see_awaited_results_and_change_them() -> None:
    shout, tail = NewStyle(), OldStyle()
    runtime = only(*_answering_plugins(), shout, tail)
    results = await runtime.call("suggest", word="茶")
    # Implementations run last registered first; None answers are dropped once awaited.
    assert shout.calls == ["before 茶", "after"]
    assert shout.seen == ["drop me", "茶-async", "茶-sync"]
    # The old-style wrapper, registered last, is the outer one: it sees the inner's answer.
    assert tail.seen == ["茶-ASYNC", "茶-SYNC"]
    # What a wrapper puts in is its own answer.
    assert results == [("shout", "茶-ASYNC"), ("shout", "茶-SYNC"), ("tail", "茶!")]
    # Wrappers wrap; they are not counted as answering the hook.
    assert runtime.implementers("suggest") == ["dropped", "silent", "async_one", "sync_one"]


async def test_a_wrapper_that_leaves_the_results_alone_keeps_their_plugins() -> None:
    class Counting:
        PLUGIN_INFO = PluginInfo(name="counting", version="1.0")
        counted = 0

        @hookimpl(wrapper=True)
        def suggest(self, word: str) -> Generator[None, list[str], list[str]]:
            results = yield
            Counting.counted += len(results)
            return results

    runtime = only(*_answering_plugins(), Counting())
    results = await runtime.call("suggest", word="鞋")
    assert results == [("dropped", "drop me"), ("async_one", "鞋-async"), ("sync_one", "鞋-sync")]
    assert Counting.counted == 3


async def test_a_wrapper_sees_a_failure_and_may_answer_instead() -> None:
    def broken(word: str) -> str:
        raise ValueError("dictionary offline")

    class Fallback:
        PLUGIN_INFO = PluginInfo(name="fallback", version="1.0")
        caught: list[BaseException] = []

        @hookimpl(wrapper=True)
        def suggest(self, word: str) -> Generator[None, list[str], list[str]]:
            try:
                return (yield)
            except PluginFailed as exc:
                Fallback.caught.append(exc)
                return [f"{word}?"]

    runtime = only(FakePlugin("broken", hookspecs=SuggestSpecs, suggest=broken), Fallback())
    assert await runtime.call("suggest", word="灯") == [("fallback", "灯?")]
    [failure] = Fallback.caught
    assert isinstance(failure, PluginFailed) and failure.plugin == "broken"


async def test_a_failing_wrapper_is_named_and_a_passed_on_failure_keeps_its_plugin() -> None:
    class Faulty:
        PLUGIN_INFO = PluginInfo(name="faulty", version="1.0")

        @hookimpl(wrapper=True)
        def suggest(self, word: str) -> Generator[None, list[str], list[str]]:
            yield
            raise RuntimeError("wrapper bug")

    class PassThrough:
        PLUGIN_INFO = PluginInfo(name="pass_through", version="1.0")

        @hookimpl(wrapper=True)
        def suggest(self, word: str) -> Generator[None, list[str], list[str]]:
            return (yield)

    def async_broken(word: str) -> Any:
        async def fail() -> str:
            raise LookupError("no such word")

        return fail()

    runtime = only(
        FakePlugin("fine", hookspecs=SuggestSpecs, suggest=lambda word: word.upper()), Faulty()
    )
    with pytest.raises(PluginFailed) as info:
        await runtime.call("suggest", word="x")
    assert (info.value.plugin, info.value.hook) == ("faulty", "suggest")
    assert "wrapper bug" in str(info.value)

    runtime = only(
        FakePlugin("broken", hookspecs=SuggestSpecs, suggest=async_broken), PassThrough()
    )
    with pytest.raises(PluginFailed) as info:
        await runtime.call("suggest", word="x")
    assert info.value.plugin == "broken" and isinstance(info.value.error, LookupError)


async def test_firstresult_stops_at_the_first_awaited_answer() -> None:
    calls: list[str] = []

    def answer(name: str, value: str | None) -> Any:
        def pick(word: str) -> Any:
            calls.append(name)
            return later(value)

        return pick

    class Decorate:
        PLUGIN_INFO = PluginInfo(name="decorate", version="1.0")

        @hookimpl(wrapper=True)
        def pick(self, word: str) -> Generator[None, str | None, str | None]:
            answer = yield
            return f"「{answer}」"

    runtime = only(
        FakePlugin("third", hookspecs=SuggestSpecs, pick=answer("third", "丙")),
        FakePlugin("second", pick=answer("second", "乙")),
        FakePlugin("first", pick=answer("first", None)),
        Decorate(),
    )
    assert await runtime.call("pick", word="x") == [("decorate", "「乙」")]
    # The first answered None once awaited: the second was asked, the third never.
    assert calls == ["first", "second"]


async def test_tryfirst_and_trylast_order_the_calls() -> None:
    order: list[str] = []

    class Early:
        PLUGIN_INFO = PluginInfo(name="early", version="1.0")

        @hookimpl(tryfirst=True)
        async def suggest(self, word: str) -> str:
            order.append("early")
            return "early"

    class Late:
        PLUGIN_INFO = PluginInfo(name="late", version="1.0")

        @hookimpl(trylast=True)
        def suggest(self, word: str) -> str:
            order.append("late")
            return "late"

    runtime = only(
        Late(),
        FakePlugin("plain", hookspecs=SuggestSpecs, suggest=lambda word: "plain"),
        Early(),
    )
    results = await runtime.call("suggest", word="x")
    assert [name for name, _ in results] == ["early", "plain", "late"]
    assert order == ["early", "late"]


class Limits(BaseModel):
    most: int = 3


class Other(BaseModel):
    most: int = 9


async def test_each_implementation_gets_its_own_plugins_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPGRAPH_LIMITS_A_MOST", "5")

    def check(name: str) -> Any:
        def validate_checkout(cart: Any, config: Any, plugins: Any) -> list[CheckoutProblem]:
            assert isinstance(plugins, PluginRuntime)
            return [CheckoutProblem(source=name, code="LIMIT", message=str(config.most))]

        return validate_checkout

    runtime = only(
        FakePlugin("limits_a", settings=lambda: Limits, validate_checkout=check("a")),
        FakePlugin("limits_b", settings=lambda: Other, validate_checkout=check("b")),
    )
    results = await runtime.call(
        "validate_checkout", session=None, cart=None, customer=None, inputs={}
    )
    assert {name: problems[0].message for name, problems in results} == {
        "limits_a": "5",
        "limits_b": "9",
    }


async def test_a_per_plugin_call_runs_that_plugins_implementations_only() -> None:
    shout = NewStyle()
    runtime = only(*_answering_plugins(), shout)
    assert await runtime.call_plugin("async_one", "suggest", word="书") == [
        ("async_one", "书-async")
    ]
    # Another plugin's wrapper stays out of it (one plugin's failure never touches another's
    # delivery).
    assert shout.calls == []
    with pytest.raises(LookupError):
        await runtime.call_plugin("shout", "suggest", word="书")


def test_start_up_hooks_must_not_return_awaitables() -> None:
    async def permissions() -> list[str]:
        return ["x.manage"]

    with pytest.raises(PluginError, match=r"plugin 'lazy': permissions must return its value"):
        only(FakePlugin("lazy", permissions=permissions))


def test_a_wrapper_must_be_a_generator_function() -> None:
    class NotAGenerator:
        PLUGIN_INFO = PluginInfo(name="flat", version="1.0")

        @hookimpl(wrapper=True)
        def permissions(self) -> list[str]:
            return []

    with pytest.raises(PluginError, match=r"plugin 'flat': the wrapper permissions"):
        only(NotAGenerator())


async def test_implementations_see_the_callers_context() -> None:
    seen: list[str | None] = []

    def record(word: str) -> None:
        seen.append(REQUEST_ID.get())

    runtime = only(FakePlugin("ctx", hookspecs=SuggestSpecs, suggest=record))
    token = REQUEST_ID.set("req-42")
    try:
        await runtime.call("suggest", word="x")
    finally:
        REQUEST_ID.reset(token)
    assert seen == ["req-42"]


async def test_concurrent_calls_do_not_mix_their_results() -> None:
    async def slow_echo(word: str) -> str:
        await asyncio.sleep(0.01 if word == "a" else 0)
        return word

    runtime = only(
        FakePlugin("echo", hookspecs=SuggestSpecs, suggest=slow_echo),
        FakePlugin("twice", suggest=lambda word: later(word * 2)),
    )
    first, second = await asyncio.gather(
        runtime.call("suggest", word="a"), runtime.call("suggest", word="b")
    )
    assert first == [("twice", "aa"), ("echo", "a")]
    assert second == [("twice", "bb"), ("echo", "b")]
