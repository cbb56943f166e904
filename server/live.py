"""Live updates for GraphQL subscriptions: a commit tells every server process's subscribers
of a topic (e.g. ``order:12``, ``shipment:7``) that it changed.

``publish`` is called inside the transaction that makes the change; subscribers hear of it
only if, and once, it commits: on PostgreSQL through ``NOTIFY`` (every process listening on
its own dedicated connection, :class:`LiveListener`), on SQLite within the process (the
session factory's after-commit hook, ``server.events.dispatching_sessions``).

Each process has one :class:`LiveHub`: subscribers of a topic each get a small queue. A
message says only *that* a topic changed (subscribers read the fresh state), so when a slow
subscriber's queue is full, what it has not taken is replaced by one :data:`RESYNC` marker
instead of holding up the others: reading the state once is as good as reading it for every
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.pg_listen import ChannelListener

log = logging.getLogger("shopgraph.live")

# The PostgreSQL channel of live updates (the response cache's is the outbox's, apart).
LIVE_CHANNEL = "shopgraph_live"
# NOTIFY refuses payloads of 8000 bytes and more: the topic and payload, as JSON, stay below.
MAX_MESSAGE_BYTES = 7900
MAX_TOPIC_LENGTH = 200
# Where a SQLite session keeps what it published until it commits.
LIVE_FLAG = "shopgraph.live_published"
# What a subscriber gets instead of the messages it was too slow to take.
RESYNC: Mapping[str, Any] = {"resync": True}
QUEUE_SIZE = 16


def _message(topic: str, payload: Mapping[str, Any] | None) -> bytes:
    if not topic or len(topic) > MAX_TOPIC_LENGTH:
        raise ValueError(f"a live topic has 1 to {MAX_TOPIC_LENGTH} characters: {topic!r}")
    message = orjson.dumps({"topic": topic, "payload": dict(payload or {})})
    if len(message) >= MAX_MESSAGE_BYTES:
        raise ValueError(
            f"live update of {topic!r} is {len(message)} bytes; at most {MAX_MESSAGE_BYTES - 1}: "
            "publish ids, not objects"
        )
    return message


async def publish(
    session: AsyncSession, topic: str, payload: Mapping[str, Any] | None = None
) -> None:
    """Tell the subscribers of ``topic`` that it changed, when ``session``'s transaction
    commits. ``payload``: a small JSON object (what changed, ids), not the object itself;
    subscribers read the fresh state. Raises ValueError for an empty or long topic, or a
    message of 7900 bytes or more (PostgreSQL's NOTIFY stops at 8000)."""
    message = _message(topic, payload)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(LIVE_CHANNEL, message.decode())))
    else:
        session.info.setdefault(LIVE_FLAG, []).append(message)


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def put(self, message: Mapping[str, Any]) -> None:
        if self.queue.full():
            # Too slow: what it has not taken is summed up by one resync (it reads the state
            # anyway), and it keeps what comes next.
            while not self.queue.empty():
                self.queue.get_nowait()
            message = RESYNC
        self.queue.put_nowait(message)


class LiveHub:
    """The subscribers of this process, by topic."""

    def __init__(self) -> None:
        self._topics: dict[str, set[_Subscriber]] = {}

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self._topics.get(topic, ()))
        return sum(len(s) for s in self._topics.values())

    def deliver(self, raw: bytes | str) -> None:
        """Hand one committed message (as :func:`publish` wrote it) to its topic's subscribers."""
        try:
            message = orjson.loads(raw)
            topic, payload = message["topic"], message["payload"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("live: ignored a malformed message %r", raw[:200])
            return
        for subscriber in self._topics.get(topic, ()):
            subscriber.put(payload)

    def resync_all(self) -> None:
        """Messages may have been missed (the channel was down): everyone reads again."""
        for subscribers in self._topics.values():
            for subscriber in subscribers:
                subscriber.put(RESYNC)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Mapping[str, Any]]]:
        """A queue of ``topic``'s messages from now until the block ends. Subscribe *before*
        reading the state, so that no change falls between the read and the subscription."""
        subscriber = _Subscriber()
        self._topics.setdefault(topic, set()).add(subscriber)
        try:
            yield subscriber.queue
        finally:
            subscribers = self._topics.get(topic)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._topics[topic]


class LiveListener(ChannelListener):
    """The process's ``LISTEN`` connection for live updates (PostgreSQL)."""

    def __init__(self, dsn: str, hub: LiveHub) -> None:
        super().__init__(dsn, LIVE_CHANNEL, "shopgraph-live-listener")
        self.hub = hub

    def notified(self, payload: str) -> None:
        self.hub.deliver(payload)

    def connected(self) -> None:
        # Changes committed while nobody listened are unknown: subscribers read again.
        self.hub.resync_all()
