"""The outbox dispatcher: domain events delivered to plugins after commit, at least once.

A change and its event commit together (``server.services.outbox.emit``). Dispatch then works
in two steps, both safe to run from any number of processes at once:

1. **Fan-out**: each undispatched ``outbox_event`` gets one ``outbox_delivery`` row per enabled
   plugin implementing the hook of the event's name — the core's own implementations
   included, as the plugin ``core`` — (``INSERT … ON CONFLICT DO NOTHING``), and is marked
   dispatched.
2. **Delivery**: due deliveries are claimed with a conditional UPDATE (a lease; on PostgreSQL
   the candidates are picked with ``FOR UPDATE SKIP LOCKED``), then each plugin's hook runs in
   its own transaction, which also marks the delivery DELIVERED, so the plugin's writes and the
   mark commit together. A hook that raises is retried with exponential backoff; after the last
   attempt the delivery is DEAD (admin query ``outboxDeliveries``). A plugin that fails never
   holds up the others: each has its own delivery row.

A process that dies between commit and dispatch loses nothing: the rows wait in the tables and
the next dispatcher (at start-up, in the background loop, or ``shopgraph jobs run``) delivers
them. A process that dies during a delivery leaves a lease that expires; the delivery is then
retried, which is where "at least once" may mean twice for effects outside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import event as sa_event
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlmodel import col

from server.db import mark_write
from server.hooktypes import CORE, Event
from server.live import LIVE_FLAG
from server.models import DeliveryStatus, OutboxDelivery, OutboxEvent, utcnow
from server.plugins import PluginFailed, PluginRuntime

log = logging.getLogger("shopgraph.events")
OUTBOX_FLAG = "shopgraph.outbox_written"


class DispatchSettings(BaseSettings):
    """How the dispatcher retries (``SHOPGRAPH_OUTBOX_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPGRAPH_OUTBOX_", env_file=os.environ.get("SHOPGRAPH_CONFIG"), extra="ignore"
    )

    max_attempts: int = 8
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    lease_seconds: float = 120.0
    poll_seconds: float = 5.0
    batch_size: int = 50

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: base · 2^(n-1), capped."""
        seconds = self.backoff_seconds * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.backoff_max_seconds))


@dataclass
class DrainReport:
    events: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    plugin: str
    attempts: int
    event: Event


def _due(now: datetime) -> Any:
    return (
        (col(OutboxDelivery.status) == DeliveryStatus.PENDING)
        & (col(OutboxDelivery.next_attempt_at) <= now)
        & or_(col(OutboxDelivery.claimed_until).is_(None), col(OutboxDelivery.claimed_until) < now)
    )


class OutboxDispatcher:
    """Delivers outbox events to the plugins of one plugin set."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        plugins: PluginRuntime,
        policy: DispatchSettings | None = None,
    ) -> None:
        self.sessions = sessions
        self.plugins = plugins
        self.policy = policy or DispatchSettings()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Claims (token, delivery ids) whose outcome could not be recorded because the
        # database went away: given back at the next attempt instead of waiting for the lease.
        self._unsettled: list[tuple[str, list[int]]] = []

    # --- which plugins receive which event -----------------------------------------------

    def recipients(self, event_name: str) -> list[str]:
        """The enabled plugins implementing event hook ``event_name`` (core or plugin-declared:
        any hook whose spec takes an ``event``)."""
        caller = getattr(self.plugins.pm.hook, event_name, None)
        spec = getattr(caller, "spec", None)
        if spec is None or "event" not in spec.argnames:
            return []
        return sorted(set(self.plugins.implementers(event_name)))

    # --- step 1: fan-out ------------------------------------------------------------------

    async def fan_out(self, limit: int | None = None) -> int:
        """Create the deliveries of up to ``limit`` undispatched events; returns how many."""
        limit = limit or self.policy.batch_size
        async with self.sessions() as session:
            await mark_write(session)
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            stmt = (
                select(col(OutboxEvent.id), col(OutboxEvent.name))
                .where(col(OutboxEvent.dispatched_at).is_(None))
                .order_by(col(OutboxEvent.id))
                .limit(limit)
            )
            if dialect == "postgresql":
                # Two dispatchers fan out different events instead of queueing on the same.
                stmt = stmt.with_for_update(skip_locked=True)
            events = (await session.execute(stmt)).all()
            if not events:
                await session.commit()
                return 0
            now = utcnow()
            rows = [
                {
                    "event_id": event_id,
                    "plugin": plugin,
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event_id, name in events
                for plugin in self.recipients(name)
            ]
            if rows:
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                await session.execute(
                    insert(OutboxDelivery.__table__)  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["event_id", "plugin"])
                )
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.id).in_([e[0] for e in events]))
                .where(col(OutboxEvent.dispatched_at).is_(None))
                .values(dispatched_at=now)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            return len(events)

    # --- step 2: delivery -------------------------------------------------------------------

    async def _claim(self, limit: int) -> tuple[str, list[_Claimed]]:
        """Lease up to ``limit`` due deliveries for this process's plugins."""
        token = uuid.uuid4().hex
        # The core's own event hooks (surveys after a delivery) are delivered like a plugin's.
        enabled = [CORE, *(r.name for r in self.plugins.enabled)]
        async with self.sessions() as session:
            await mark_write(session)
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            now = utcnow()
            due = _due(now) & col(OutboxDelivery.plugin).in_(enabled)
            candidates = select(col(OutboxDelivery.id)).where(due).order_by(col(OutboxDelivery.id))
            candidates = candidates.limit(limit)
            picked: Any = candidates.scalar_subquery()
            if dialect == "postgresql":
                # Picked once, in a materialised CTE: as a plain IN subquery, the planner may
                # run the LIMIT … SKIP LOCKED select again per row and claim far past the batch.
                cte = candidates.with_for_update(skip_locked=True).cte("picked")
                picked = select(cte.prefix_with("MATERIALIZED").c.id)
            # The WHERE repeats the due condition: whoever updates a row second finds it no
            # longer due (PostgreSQL re-checks it after waiting for the first), so one wins.
            await session.execute(
                update(OutboxDelivery)
                .where(col(OutboxDelivery.id).in_(picked))
                .where(due)
                .values(
                    claim_token=token,
                    claimed_until=now + timedelta(seconds=self.policy.lease_seconds),
                    attempts=OutboxDelivery.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = (
                await session.execute(
                    select(OutboxDelivery, OutboxEvent)
                    .join(OutboxEvent, col(OutboxEvent.id) == OutboxDelivery.event_id)
                    .where(col(OutboxDelivery.claim_token) == token)
                    .order_by(col(OutboxDelivery.id))
                )
            ).all()
            await session.commit()
        claimed = [
            _Claimed(
                delivery_id=d.id,  # type: ignore[arg-type]  # a stored delivery has its id
                plugin=d.plugin,
                attempts=d.attempts,
                event=Event(
                    id=e.id,  # type: ignore[arg-type]  # a stored event has its id
                    name=e.name,
                    payload=dict(e.payload),
                    created_at=e.created_at,
                ),
            )
            for d, e in rows
        ]
        return token, claimed

    async def _deliver(self, token: str, item: _Claimed) -> bool:
        """Run one plugin's hook; True when it was delivered (and marked so)."""
        cause: BaseException
        async with self.sessions() as session:
            await mark_write(session)
            try:
                await self.plugins.call_plugin(
                    item.plugin, item.event.name, event=item.event, session=session
                )
                marked = await session.execute(
                    update(OutboxDelivery)
                    .where(col(OutboxDelivery.id) == item.delivery_id)
                    .where(col(OutboxDelivery.claim_token) == token)
                    .values(
                        status=DeliveryStatus.DELIVERED,
                        delivered_at=utcnow(),
                        claim_token=None,
                        claimed_until=None,
                        last_error=None,
                    )
                    .execution_options(synchronize_session=False)
                )
                if marked.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
                    # The lease ran out and another dispatcher took the delivery over: its run
                    # counts, this one's writes are undone.
                    await session.rollback()
                    return False
                await session.commit()
                return True
            except Exception as exc:
                await session.rollback()
                cause = exc.error if isinstance(exc, PluginFailed) else exc
                log.warning(
                    "delivery %s of event %s (%s) to plugin %r failed (attempt %s): %r",
                    item.delivery_id,
                    item.event.id,
                    item.event.name,
                    item.plugin,
                    item.attempts,
                    cause,
                )
        await self._record_failure(token, item, cause)
        return False

    async def _record_failure(self, token: str, item: _Claimed, cause: BaseException) -> None:
        dead = item.attempts >= self.policy.max_attempts
        values: dict[str, Any] = {
            "claim_token": None,
            "claimed_until": None,
            "last_error": f"{type(cause).__name__}: {cause}"[:4000],
        }
        if dead:
            values["status"] = DeliveryStatus.DEAD
        else:
            values["next_attempt_at"] = utcnow() + self.policy.backoff(item.attempts)
        async with self.sessions() as session:
            await mark_write(session)
            await session.execute(
                update(OutboxDelivery)
                .where(col(OutboxDelivery.id) == item.delivery_id)
                .where(col(OutboxDelivery.claim_token) == token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    async def _give_back_unsettled(self) -> None:
        """Make due again the deliveries this dispatcher claimed but could not settle: a lost
        database must delay them by seconds, not by the whole lease."""
        while self._unsettled:
            token, ids = self._unsettled[0]
            async with self.sessions() as session:
                await mark_write(session)
                await session.execute(
                    update(OutboxDelivery)
                    .where(col(OutboxDelivery.id).in_(ids))
                    .where(col(OutboxDelivery.claim_token) == token)
                    .values(
                        claim_token=None,
                        claimed_until=None,
                        last_error="outcome not recorded: the database was unavailable",
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
            self._unsettled.pop(0)

    async def deliver_due(self, limit: int | None = None) -> DrainReport:
        """Claim and deliver one batch of due deliveries."""
        await self._give_back_unsettled()
        report = DrainReport()
        token, claimed = await self._claim(limit or self.policy.batch_size)
        for index, item in enumerate(claimed):
            try:
                delivered = await self._deliver(token, item)
            except Exception:
                # Neither the outcome nor the failure could be written: this delivery and
                # the rest of the batch are still claimed. Give them back when possible.
                self._unsettled.append((token, [c.delivery_id for c in claimed[index:]]))
                raise
            if delivered:
                report.delivered += 1
            else:
                report.failed += 1
                if item.attempts >= self.policy.max_attempts:
                    report.dead += 1
        return report

    async def drain(self) -> DrainReport:
        """Fan out every undispatched event, then attempt every due delivery until none is
        due (a failed one waits for its backoff, so this ends)."""
        report = DrainReport()
        while count := await self.fan_out():
            report.events += count
        while True:
            batch = await self.deliver_due()
            if not batch.delivered and not batch.failed:
                return report
            report.delivered += batch.delivered
            report.failed += batch.failed
            report.dead += batch.dead
            # Events committed meanwhile are picked up in the same drain.
            while count := await self.fan_out():
                report.events += count

    # --- the background loop ----------------------------------------------------------------

    def notify(self) -> None:
        """Something was committed to the outbox: dispatch now rather than at the next poll.
        Safe to call from any thread."""
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Drain once (events left by a crash) and keep dispatching in the background."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        with contextlib.suppress(Exception):
            await self._drain_logged()
        self._task = asyncio.create_task(self._run(), name="shopgraph-outbox-dispatcher")

    async def _drain_logged(self) -> None:
        try:
            await self.drain()
        except Exception:
            log.exception("outbox dispatch failed; retrying at the next poll")
            raise

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.policy.poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            with contextlib.suppress(Exception):
                await self._drain_logged()

    async def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def dispatching_sessions(
    engine: AsyncEngine,
    on_outbox_commit: Callable[[frozenset[str]], None],
    on_live_commit: Callable[[list[bytes]], None] | None = None,
) -> async_sessionmaker[AsyncSession]:
    """A session factory that calls ``on_outbox_commit`` with the names of the events a commit
    wrote, right after that commit (the app wakes its dispatcher and invalidates its response
    cache with it), and ``on_live_commit`` with the live updates the transaction published
    (``server.live.publish`` on SQLite; PostgreSQL's NOTIFY needs no help). A rollback drops
    both."""

    class OutboxAwareSession(Session):
        pass

    @sa_event.listens_for(OutboxAwareSession, "after_flush")
    def _after_flush(session: Session, _context: Any) -> None:
        names = {obj.name for obj in session.new if isinstance(obj, OutboxEvent)}
        if names:
            session.info.setdefault(OUTBOX_FLAG, set()).update(names)

    @sa_event.listens_for(OutboxAwareSession, "after_commit")
    def _after_commit(session: Session) -> None:
        names = session.info.pop(OUTBOX_FLAG, None)
        if names:
            on_outbox_commit(frozenset(names))
        published = session.info.pop(LIVE_FLAG, None)
        if published and on_live_commit is not None:
            on_live_commit(published)

    @sa_event.listens_for(OutboxAwareSession, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(OUTBOX_FLAG, None)
        session.info.pop(LIVE_FLAG, None)

    return async_sessionmaker(
        engine,
        class_=AsyncSession,
        expire_on_commit=False,
        sync_session_class=OutboxAwareSession,
    )
