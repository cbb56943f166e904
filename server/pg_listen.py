"""One dedicated PostgreSQL connection that ``LISTEN``s on a channel, kept up for the life of
a process: reconnected with exponential backoff, and checked with a query when quiet, since a
silent network failure closes nothing.

The response cache's invalidations and the live updates of subscriptions each hold one.
What was notified while the connection was down is lost: subclasses hear of it
(``connected`` after every (re)connection, ``lost`` when it goes) and make up for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy import make_url

log = logging.getLogger("shopgraph.listen")


def listen_dsn(database_url: str) -> str:
    """The plain asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg`` URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ChannelListener:
    """Listens on ``channel`` and calls ``notified`` with each notification's payload."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        name: str,
        *,
        backoff: float = 0.2,
        backoff_max: float = 10.0,
        health_seconds: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        # The connection's application_name (pg_stat_activity), and the task's name.
        self.name = name
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.health_seconds = health_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._listening = asyncio.Event()
        self._tried = asyncio.Event()

    # --- what a subclass does ------------------------------------------------------------

    def notified(self, payload: str) -> None:
        """One notification's payload (called on the event loop)."""

    def connected(self) -> None:
        """Listening (again): what was notified while nobody listened is unknown."""

    def lost(self) -> None:
        """Not listening any more (until ``connected``)."""

    # --- the connection ------------------------------------------------------------------

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notified(payload)

    async def start(self) -> None:
        self._stopping = False
        # Made on the loop that serves (an app may be started again on another).
        self._listening = asyncio.Event()
        self._tried = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def wait_listening(self, seconds: float) -> bool:
        """Wait (at most ``seconds``) for the first attempt to listen to end; whether the
        channel is listened to. A database that cannot be reached answers at once: start-up
        does not stall on it (readiness says so)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), seconds)
        return self._listening.is_set()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self.backoff
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": self.name}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._on_notification)
                self.connected()
                self._listening.set()
                self._tried.set()
                delay = self.backoff
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=self.health_seconds)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=self.health_seconds)
                log.warning("%s: the channel %s was lost; reconnecting", self.name, self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: cannot listen on %s: %r", self.name, self.channel, exc)
            finally:
                self._tried.set()
                self._listening.clear()
                self.lost()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
