"""Events: written to the outbox with the change, delivered after commit to every plugin
separately, at least once, with retries, dead letters, crash recovery and concurrent
dispatchers. Tests named ``test_hook_<name>`` are the event hooks' own tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import create_engine, session_factory
from server.events import DispatchSettings, OutboxDispatcher
from server.models import (
    CustomerEvent,
    CustomerEventKind,
    DeliveryStatus,
    OutboxDelivery,
    OutboxEvent,
    utcnow,
)
from server.plugin import CORE, Event
from server.plugins import PluginRuntime, load_plugins
from server.services import outbox
from tests.plugins.fakes import FakePlugin, Recorder, gid
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.postgres import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FAST = DispatchSettings(max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.05)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def only(*plugins: Any) -> PluginRuntime:
    return load_plugins(Settings(plugins=""), extra=plugins)


async def emit(sessions: async_sessionmaker[AsyncSession], name: str, **payload: Any) -> int:
    async with sessions() as s:
        event = await outbox.emit(s, name, payload)
        await s.commit()
        return int(event.id or 0)


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> dict[str, OutboxDelivery]:
    async with sessions() as s:
        rows = (await s.execute(select(OutboxDelivery))).scalars().all()
        return {row.plugin: row for row in rows}


async def _hook_test(
    sessions: async_sessionmaker[AsyncSession], hook: str, payload: dict[str, Any]
) -> None:
    recorder, bystander = Recorder(), Recorder()
    runtime = only(
        FakePlugin("listener", **{hook: recorder}),
        FakePlugin("bystander", **{"startup": lambda: None}),
    )
    event_id = await emit(sessions, hook, **payload)
    report = await OutboxDispatcher(sessions, runtime, FAST).drain()
    # The core listens to some events itself (a delivery sends a survey): its delivery too.
    core = CORE in runtime.implementers(hook)
    assert report.events == 1 and report.delivered == 1 + core
    [event] = recorder.events
    assert (event.id, event.name, event.payload) == (event_id, hook, payload)
    assert event.created_at is not None
    assert bystander.events == []
    assert (await deliveries(sessions))["listener"].status == DeliveryStatus.DELIVERED
    # Delivered once: another drain finds nothing to do.
    again = await OutboxDispatcher(sessions, runtime, FAST).drain()
    assert (again.events, again.delivered) == (0, 0) and len(recorder.events) == 1


async def test_hook_order_placed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "order_placed",
        {"order_id": 7, "customer_id": 3, "total": 19900, "currency": "CNY", "lines": []},
    )


async def test_hook_order_status_changed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "order_status_changed",
        {"order_id": 7, "from_status": "PAID", "to_status": "FULFILLING"},
    )


async def test_hook_payment_captured(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions, "payment_captured", {"order_id": 7, "payment_id": 2, "amount": 19900}
    )


async def test_hook_payment_refunded(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "payment_refunded",
        {"order_id": 7, "payment_id": 2, "amount": 19900, "currency": "CNY", "gateway": "test"},
    )


async def test_hook_survey_sent(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "survey_sent",
        {
            "survey_id": 5,
            "customer_id": 3,
            "kind": "CSAT",
            "trigger": "DELIVERY",
            "subject_key": "order:7",
            "order_id": 7,
            "expires_at": "2027-02-15T10:00:00+00:00",
        },
    )


async def test_hook_survey_answered(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "survey_answered",
        {
            "survey_id": 5,
            "customer_id": 3,
            "kind": "NPS",
            "trigger": "PERIODIC",
            "subject_key": "nps:3:2027-02-01",
            "order_id": None,
            "score": 9,
        },
    )


async def test_hook_shipment_status_changed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "shipment_status_changed",
        {"shipment_id": 4, "order_id": 7, "from_status": "CREATED", "to_status": "IN_TRANSIT"},
    )


async def test_hook_product_changed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(sessions, "product_changed", {"product_id": 7, "change": "updated"})


async def test_hook_category_changed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(sessions, "category_changed", {"category_id": 3, "change": "created"})


async def test_hook_stock_level_set(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "stock_level_set",
        {"warehouse_id": 1, "product_id": 7, "on_hand": 12, "safety_stock": 0, "staff_id": 2},
    )


async def test_hook_stock_adjusted(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _hook_test(
        sessions,
        "stock_adjusted",
        {
            "warehouse_id": 1,
            "product_id": 7,
            "delta": -2,
            "reason": "盘点",
            "on_hand": 10,
            "staff_id": 2,
        },
    )


class TestCustomerEventRecorded:
    """A real flow: recordEvent commits a behaviour event and its outbox row; the app's
    background dispatcher, woken by the commit, delivers it without waiting for a poll."""

    recorder = Recorder()

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        self.recorder.events.clear()
        return load_plugins(
            settings.model_copy(update={"plugins": ""}),
            extra=[FakePlugin("crm", customer_event_recorded=self.recorder)],
        )

    async def test_hook_customer_event_recorded(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        customer = await make_customer(session)
        data = await gql.as_(token_for(settings, customer))(
            'mutation { recordEvent(input: {kind: SEARCH, query: "蓝牙耳机"}) { __typename } }'
        )
        assert data["recordEvent"]["__typename"].endswith("Success")
        # Well under the 5 s poll: the commit woke the dispatcher.
        await eventually(lambda: bool(self.recorder.events), seconds=3)
        [event] = self.recorder.events
        assert event.name == "customer_event_recorded"
        assert event.payload["customer_id"] == customer.id
        assert event.payload["kind"] == "SEARCH" and event.payload["query"] == "蓝牙耳机"
        stored = await session.scalar(
            select(func.count())
            .select_from(CustomerEvent)
            .where(CustomerEvent.kind == CustomerEventKind.SEARCH)
        )
        assert stored == 1


async def test_events_are_written_only_with_their_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    recorder = Recorder()
    runtime = only(FakePlugin("listener", order_placed=recorder))
    async with sessions() as s:
        await outbox.emit(s, "order_placed", {"order_id": 1})
        await s.rollback()
    report = await OutboxDispatcher(sessions, runtime, FAST).drain()
    assert report.events == 0 and recorder.events == []


async def test_event_nobody_listens_to_is_marked_dispatched(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    event_id = await emit(sessions, "stock_adjusted", product_id=1, delta=5)
    await OutboxDispatcher(
        sessions, only(FakePlugin("other", order_placed=Recorder())), FAST
    ).drain()
    async with sessions() as s:
        event = await s.get(OutboxEvent, event_id)
        assert event is not None and event.dispatched_at is not None
        assert await s.scalar(select(func.count()).select_from(OutboxDelivery)) == 0


async def test_a_batch_claims_no_more_deliveries_than_its_size(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    recorder = Recorder()
    dispatcher = OutboxDispatcher(sessions, only(FakePlugin("listener", order_placed=recorder)))
    for n in range(30):
        await emit(sessions, "order_placed", order_id=n)
    while await dispatcher.fan_out(limit=100):
        pass
    batch = await dispatcher.deliver_due(limit=7)
    assert batch.delivered == 7
    # The oldest first, and the rest still due for the next batch.
    assert [e.payload["order_id"] for e in recorder.events] == list(range(7))
    async with sessions() as s:
        pending = select(func.count()).where(OutboxDelivery.status == DeliveryStatus.PENDING)
        assert await s.scalar(pending) == 23
        assert await s.scalar(pending.where(OutboxDelivery.claim_token.is_not(None))) == 0


async def test_failing_plugin_does_not_stop_others_retries_with_backoff_then_dead_letters(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    good = Recorder()
    attempts: list[float] = []

    def bad(event: Event) -> None:
        attempts.append(time.monotonic())
        raise ConnectionError("crm endpoint down")

    runtime = only(FakePlugin("good", order_placed=good), FakePlugin("bad", order_placed=bad))
    # Long enough that a loaded machine still checks "not due yet" inside the backoff window.
    policy = DispatchSettings(max_attempts=3, backoff_seconds=1.0, backoff_max_seconds=10)
    dispatcher = OutboxDispatcher(sessions, runtime, policy)
    await emit(sessions, "order_placed", order_id=11)

    first = await dispatcher.drain()
    assert (first.delivered, first.failed, first.dead) == (1, 1, 0)
    assert len(good.events) == 1
    rows = await deliveries(sessions)
    assert rows["good"].status == DeliveryStatus.DELIVERED
    failed = rows["bad"]
    assert failed.status == DeliveryStatus.PENDING and failed.attempts == 1
    assert failed.last_error == "ConnectionError: crm endpoint down"
    assert failed.next_attempt_at > utcnow()
    # Not due yet: a drain right now leaves it alone.
    assert (await dispatcher.drain()).failed == 0 and len(attempts) == 1

    while True:
        rows = await deliveries(sessions)
        if rows["bad"].status == DeliveryStatus.DEAD:
            break
        await asyncio.sleep(0.05)
        await dispatcher.drain()
    assert len(attempts) == 3 and rows["bad"].attempts == 3
    # Exponential backoff: the second wait is about twice the first.
    assert attempts[1] - attempts[0] >= 1.0 and attempts[2] - attempts[1] >= 2.0
    assert len(good.events) == 1  # never redelivered to the plugin that succeeded


async def test_plugin_writes_commit_with_the_delivery_or_not_at_all(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    calls = 0

    async def write_then_maybe_fail(event: Event, session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(CustomerEvent(kind=CustomerEventKind.VIEW, query=f"from event {event.id}"))
        await session.flush()
        if calls == 1:
            raise RuntimeError("first attempt fails after writing")

    runtime = only(FakePlugin("writer", order_placed=write_then_maybe_fail))
    await emit(sessions, "order_placed", order_id=5)
    dispatcher = OutboxDispatcher(sessions, runtime, DispatchSettings(backoff_seconds=60))
    await dispatcher.drain()
    assert calls == 1
    assert await session.scalar(select(func.count()).select_from(CustomerEvent)) == 0
    # Due again now (instead of in a minute).
    await session.execute(update(OutboxDelivery).values(next_attempt_at=utcnow()))
    await session.commit()
    await dispatcher.drain()
    assert calls == 2
    assert await session.scalar(select(func.count()).select_from(CustomerEvent)) == 1


async def test_expired_lease_is_taken_over_and_the_late_run_is_undone(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    """A dispatcher that took too long (its lease ran out and another dispatcher delivered)
    must not also commit: its writes roll back."""
    slow_started = asyncio.Event()
    release = asyncio.Event()

    async def slow(event: Event, session: AsyncSession) -> None:
        session.add(CustomerEvent(kind=CustomerEventKind.VIEW, query="slow"))
        await session.flush()
        slow_started.set()
        await release.wait()

    async def fast(event: Event, session: AsyncSession) -> None:
        session.add(CustomerEvent(kind=CustomerEventKind.VIEW, query="fast"))

    await emit(sessions, "order_placed", order_id=9)
    short = DispatchSettings(lease_seconds=0.2, backoff_seconds=0.01)
    first = OutboxDispatcher(sessions, only(FakePlugin("p", order_placed=slow)), short)
    await first.fan_out()
    token, claimed = await first._claim(10)
    # Its lease lapses while it works; another process delivers meanwhile.
    await asyncio.sleep(0.3)
    second = OutboxDispatcher(sessions, only(FakePlugin("p", order_placed=fast)), short)
    assert (await second.drain()).delivered == 1
    release.set()
    assert await first._deliver(token, claimed[0]) is False
    queries = (await session.execute(select(CustomerEvent.query))).scalars().all()
    assert queries == ["fast"]
    assert (await deliveries(sessions))["p"].attempts == 2


class TestDeadLettersOverGraphQL:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        def bad(event: Event) -> None:
            raise ValueError("no such coupon")

        return load_plugins(
            settings.model_copy(update={"plugins": ""}),
            extra=[FakePlugin("coupons", order_placed=bad)],
        )

    async def test_dead_letters_are_admin_queryable_and_retryable(
        self,
        gql: GraphQLClient,
        session: AsyncSession,
        settings: Settings,
        plugins: PluginRuntime,
        database_url: str,
    ) -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        policy = DispatchSettings(max_attempts=1)
        await emit(sessions, "order_placed", order_id=21)
        await OutboxDispatcher(sessions, plugins, policy).drain()
        await engine.dispose()
        staff = await make_staff(session)
        admin = gql.as_(token_for(settings, staff))
        query = """query($f: OutboxDeliveryFilter) { outboxDeliveries(filter: $f, first: 10) {
            totalCount edges { node { id plugin status attempts lastError event { name payload } } } } }"""
        data = await admin(query, {"f": {"status": "DEAD"}})
        [edge] = data["outboxDeliveries"]["edges"]
        node = edge["node"]
        assert node["plugin"] == "coupons" and node["status"] == "DEAD" and node["attempts"] == 1
        assert node["lastError"] == "ValueError: no such coupon"
        assert node["event"] == {"name": "order_placed", "payload": {"order_id": 21}}
        assert (await admin(query, {"f": {"status": "DELIVERED"}}))["outboxDeliveries"][
            "totalCount"
        ] == 0
        assert (await gql.execute(query, {"f": None}))["errors"][0]["extensions"][
            "code"
        ] == "FORBIDDEN"

        retry = """mutation($id: ID!) { retryOutboxDelivery(input: {deliveryId: $id}) {
            __typename ... on RetryOutboxDeliverySuccess { delivery { status attempts } } ... on Error { code } } }"""
        result = (await admin(retry, {"id": node["id"]}))["retryOutboxDelivery"]
        assert result == {
            "__typename": "RetryOutboxDeliverySuccess",
            "delivery": {"status": "PENDING", "attempts": 0},
        }
        missing = (await admin(retry, {"id": gid("OutboxDelivery", 999999)}))["retryOutboxDelivery"]
        assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


# --- other processes -----------------------------------------------------------------------


def _env(database_url: str, log: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPGRAPH_")}
    env.update(
        SHOPGRAPH_DATABASE_URL=database_url,
        SHOPGRAPH_TEST_EVENT_LOG=str(log),
        SHOPGRAPH_ENV="test",
        PYTHONPATH=str(ROOT),
    )
    return env


def _start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.plugins.event_app:create", "--factory"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stderr=open(Path(env["SHOPGRAPH_TEST_EVENT_LOG"]).with_suffix(f".{port}.err"), "wb"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 120  # a loaded machine imports slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    err = Path(env["SHOPGRAPH_TEST_EVENT_LOG"]).with_suffix(f".{port}.err").read_text()
    raise RuntimeError(f"server did not start: {err[-3000:]}")


def _spawn_dispatchers(
    env: dict[str, str], barrier: Path, count: int
) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "tests.plugins.event_app", "drain", str(barrier), str(count)]
    return [subprocess.Popen(command, cwd=ROOT, env=env) for _ in range(count)]


def _log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.heavy
async def test_event_committed_before_a_crash_is_delivered_after_restart(
    database_url: str, tmp_path: Path, session: AsyncSession
) -> None:
    log = tmp_path / "deliveries.log"
    env = _env(database_url, log)
    port = free_port()
    server = await asyncio.to_thread(_start_server, env, port)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post(
                    f"http://127.0.0.1:{port}/graphql",
                    json={"query": 'mutation { crashAfterCommit(note: "付款成功") }'},
                )
        assert await asyncio.to_thread(server.wait, 10) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
    # Committed, not dispatched: the process died first.
    [event] = (await session.execute(select(OutboxEvent))).scalars().all()
    assert event.name == "test_ping" and event.payload == {"note": "付款成功"}
    assert event.dispatched_at is None
    assert _log_lines(log) == []
    await session.commit()

    restarted = await asyncio.to_thread(_start_server, env, free_port())
    try:
        # Start-up drains the outbox before the app serves.
        lines = _log_lines(log)
        assert sorted(line.split()[1] for line in lines) == ["rec_a", "rec_b"]
        assert {line.split()[0] for line in lines} == {str(event.id)}
        assert {line.split()[2] for line in lines} == {str(restarted.pid)}
    finally:
        restarted.terminate()
        await asyncio.to_thread(restarted.wait, 15)
    await session.commit()  # a fresh snapshot
    statuses = (await session.execute(select(OutboxDelivery.plugin, OutboxDelivery.status))).all()
    assert sorted(statuses) == [
        ("rec_a", DeliveryStatus.DELIVERED),
        ("rec_b", DeliveryStatus.DELIVERED),
    ]


@pytest.mark.heavy
async def test_two_dispatcher_processes_deliver_each_event_once_to_each_plugin(
    database_url: str, tmp_path: Path, session: AsyncSession
) -> None:
    total = 60
    for n in range(total):
        await outbox.emit(session, "test_ping", {"n": n})
    await session.commit()
    log = tmp_path / "deliveries.log"
    env = _env(database_url, log)
    procs = _spawn_dispatchers(env, tmp_path / "barrier", 2)
    codes = [await asyncio.to_thread(p.wait, 120) for p in procs]
    assert codes == [0, 0]
    lines = [line.split() for line in _log_lines(log)]
    per_delivery = Counter((event_id, plugin) for event_id, plugin, _pid in lines)
    assert len(per_delivery) == total * 2  # every event reached both plugins …
    assert set(per_delivery.values()) == {1}  # … exactly once
    # Both processes did part of the work.
    assert {pid for *_rest, pid in lines} == {str(p.pid) for p in procs}
    pending = await session.scalar(
        select(func.count())
        .select_from(OutboxDelivery)
        .where(OutboxDelivery.status != DeliveryStatus.DELIVERED)
    )
    assert pending == 0
