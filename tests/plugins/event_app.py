"""Plugins and entry points for tests that run shopgraph in other processes.

``python -m uvicorn tests.plugins.event_app:create --factory``: an app whose ``crashAfterCommit``
mutation emits a ``test_ping`` event and kills its own process (SIGKILL) right after the commit,
before anything can dispatch it. ``python -m tests.plugins.event_app drain N``: a dispatcher
process. Both log deliveries to the file named by ``SHOPGRAPH_TEST_EVENT_LOG``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.events import DispatchSettings, DrainReport, OutboxDispatcher
from server.graphql.context import Info
from server.graphql.mutations import run_mutation
from server.plugin import Event, hookspec
from server.plugins import PluginRuntime, load_plugins
from server.services import outbox
from tests.plugins.fakes import FakePlugin


class PingSpecs:
    @hookspec
    def test_ping(self, event: Event, session: AsyncSession) -> None:
        """A test-only event hook (a plugin-declared one)."""


def _append(line: str) -> None:
    with open(os.environ["SHOPGRAPH_TEST_EVENT_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")


def log_delivery(plugin: str, delay: float = 0.0) -> Any:
    async def test_ping(event: Event) -> None:
        if delay:
            await asyncio.sleep(delay)
        _append(f"{event.id} {plugin} {os.getpid()}")

    return test_ping


async def _emit_ping(session: AsyncSession, note: str) -> int:
    event = await outbox.emit(session, "test_ping", {"note": note})
    return int(event.id or 0)


@strawberry.type
class CrashMutations:
    @strawberry.mutation
    async def crash_after_commit(self, info: Info, note: str) -> int:
        async def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        # Runs right after the commit, before the dispatcher gets a chance to.
        info.context.after_commit.append(die)
        result = await run_mutation(info, _emit_ping, note)
        return int(result)  # type: ignore[arg-type]


def runtime(settings: Settings, delay: float = 0.0) -> PluginRuntime:
    return load_plugins(
        settings.model_copy(update={"plugins": ""}),
        extra=[
            FakePlugin(
                "rec_a",
                hookspecs=PingSpecs,
                test_ping=log_delivery("rec_a", delay),
                graphql_mutations=lambda: [CrashMutations],
            ),
            FakePlugin("rec_b", test_ping=log_delivery("rec_b", delay)),
        ],
    )


def create() -> Any:
    settings = Settings(env="test")
    return create_app(settings, runtime(settings))


class SharingDispatcher(OutboxDispatcher):
    """A dispatcher process that shares the outbox's work with its peers whatever the scheduler
    does, instead of letting a fast starter drain it alone.

    Two meeting points, both outside any transaction: before its first delivery it waits until
    every peer has fanned out (else a peer that finds nothing due yet ends its drain at once),
    and after its first non-empty claim it waits until every peer has claimed too (its lease
    keeps them off the batch it holds, so they claim other deliveries).
    """

    def __init__(self, *args: Any, meeting: Path, peers: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meeting = meeting
        self.peers = peers
        self.met: set[str] = set()

    async def _meet(self, point: str) -> None:
        if point in self.met:
            return
        self.met.add(point)
        directory = self.meeting / point
        directory.mkdir(parents=True, exist_ok=True)
        (directory / str(os.getpid())).touch()
        deadline = time.monotonic() + 60  # past it, the test's assertions report what happened
        while time.monotonic() < deadline:
            if len(list(directory.iterdir())) >= self.peers:
                return
            await asyncio.sleep(0.01)

    async def deliver_due(self, limit: int | None = None) -> DrainReport:
        await self._meet("fanned-out")
        return await super().deliver_due(limit)

    async def _claim(self, limit: int) -> Any:
        token, claimed = await super()._claim(limit)
        if claimed:
            await self._meet("claimed")
        return token, claimed


async def _drain(meeting: Path, peers: int) -> None:
    settings = Settings(env="test")
    engine = create_engine(settings.database_url)
    dispatcher = SharingDispatcher(
        session_factory(engine),
        runtime(settings, delay=0.005),
        DispatchSettings(batch_size=5),
        meeting=meeting,
        peers=peers,
    )
    await dispatcher.drain()
    await engine.dispose()


def _wait_for_peers(barrier: Path, peers: int) -> None:
    """Start draining together with the other dispatcher processes."""
    barrier.mkdir(exist_ok=True)
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(list(barrier.iterdir())) < peers and time.monotonic() < deadline:
        time.sleep(0.01)


if __name__ == "__main__":
    if sys.argv[1] == "drain":
        barrier, peers = Path(sys.argv[2]), int(sys.argv[3])
        _wait_for_peers(barrier, peers)
        asyncio.run(_drain(barrier.with_name(barrier.name + "-met"), peers))
