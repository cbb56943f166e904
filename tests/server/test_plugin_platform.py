"""The platform a plugin stands on besides hooks: its HTTP routes (with the core's limits, logs,
metrics and auth helpers), its own events through the outbox for other plugins to receive, and
its periodic jobs run inside ``shopgraph serve`` (one process at a time across a cluster)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.events import OutboxDispatcher
from server.jobs import CANCELLED, JobRunner
from server.logs import JsonFormatter
from server.models import JobLease, OutboxEvent, StaffRole
from server.permissions import RoleMap
from server.plugin import (
    Event,
    Job,
    JobContext,
    RouteError,
    emit_event,
    hookspec,
    request_viewer,
    require_permission,
    require_signature,
    require_staff,
    route_session,
    verify_signature,
)
from server.plugins import PluginRuntime, load_plugins
from server.progress import Progress
from server.services import apikeys
from tests.plugins.fakes import FakePlugin, Recorder
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.server import LiveServer
from tests.support.waiting import eventually

# --- a carrier plugin: a signed webhook, staff and API-key routes, an event of its own -------


class CarrierSettings(BaseModel):
    webhook_secret: str = "顺丰-dev-secret"


class CarrierSpecs:
    """The hook the carrier plugin offers other plugins (its own event)."""

    @hookspec
    def carrier_tracking_received(
        self, event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
    ) -> None:
        """Called after a tracking update from the carrier is stored: payload ``waybill``,
        ``status``."""


route_log = logging.getLogger("tests.carrier")


def carrier_routes(config: CarrierSettings) -> list[BaseRoute]:
    async def webhook(request: Request) -> Response:
        body = await require_signature(
            request, config.webhook_secret, "X-Signature", prefix="sha256="
        )
        update = json.loads(body)
        route_log.info("tracking update for %s", update["waybill"])
        async with route_session(request, write=True) as session:
            await emit_event(session, "carrier_tracking_received", update)
            if update.get("status") == "BROKEN":
                raise RuntimeError("the carrier's payload changed")
            await session.commit()
        return JSONResponse({"received": update["waybill"]})

    async def shipments_admin(request: Request) -> Response:
        viewer = await require_staff(request, "shipments.manage")
        return JSONResponse({"staff_id": viewer.staff_id})

    async def rate_feed(request: Request) -> Response:
        viewer = await require_permission(request, "shipments.read")
        return JSONResponse({"api_key_id": viewer.api_key_id})

    async def whoami(request: Request) -> Response:
        viewer = await request_viewer(request)
        return JSONResponse({"kind": viewer.kind.value, "customer_id": viewer.customer_id})

    async def upload(request: Request) -> Response:
        return JSONResponse({"bytes": len(await request.body())})

    async def duplicate(request: Request) -> Response:
        raise RouteError(409, "DUPLICATE", "this update was received already")

    return [
        Route("/webhook", webhook, methods=["POST"]),
        Route("/admin/shipments", shipments_admin),
        Route("/rates", rate_feed),
        Route("/whoami", whoami),
        Route("/upload", upload, methods=["POST"]),
        Route("/duplicate", duplicate),
    ]


def signed(body: bytes, secret: str = "顺丰-dev-secret") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The JSON lines the carrier's routes log."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    route_log.addHandler(handler)
    route_log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        route_log.removeHandler(handler)


class TestPluginRoutes:
    notified = Recorder()

    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return Settings(database_url=database_url, env="test", plugins="", max_body_bytes=2048)

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        self.notified.events.clear()
        return load_plugins(
            settings,
            extra=[
                FakePlugin(
                    "carrier",
                    hookspecs=CarrierSpecs,
                    settings=lambda: CarrierSettings,
                    routes=carrier_routes,
                ),
                FakePlugin("notifier", carrier_tracking_received=self.notified),
            ],
        )

    @pytest.fixture
    async def http(self, live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
            yield client

    async def test_hook_routes(
        self,
        http: httpx.AsyncClient,
        session: AsyncSession,
        captured_logs: io.StringIO,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        body = json.dumps({"waybill": "SF1234567890", "status": "DELIVERED"}).encode()
        answer = await http.post(
            "/plugins/carrier/webhook",
            content=body,
            headers={**signed(body), "X-Request-Id": "carrier-req-1"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"received": "SF1234567890"}
        # The request id is echoed, and carried by the plugin's log lines.
        assert answer.headers["x-request-id"] == "carrier-req-1"
        [line] = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
        assert line["message"] == "tracking update for SF1234567890"
        assert line["request_id"] == "carrier-req-1"
        # A wrong or missing signature changes nothing.
        forged = await http.post(
            "/plugins/carrier/webhook", content=body, headers=signed(body, "guessed")
        )
        assert forged.status_code == 401
        assert forged.json()["errors"][0]["extensions"]["code"] == "INVALID_SIGNATURE"
        unsigned = await http.post("/plugins/carrier/webhook", content=body)
        assert unsigned.status_code == 401
        count = select(func.count()).select_from(OutboxEvent)
        assert await session.scalar(count) == 1
        # Counted under its route, never its raw path.
        metrics = (await http.get("/metrics")).text
        assert (
            'shopgraph_http_requests_total{method="POST",route="/plugins/carrier/webhook",'
            'status="200"}' in metrics
        )
        # Only under the plugin's own prefix.
        assert (await http.post("/webhook", content=body, headers=signed(body))).status_code == 404

    async def test_a_plugins_event_reaches_the_plugins_implementing_its_hook_after_commit(
        self, http: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        body = json.dumps({"waybill": "SF42", "status": "IN_TRANSIT"}).encode()
        assert (
            await http.post("/plugins/carrier/webhook", content=body, headers=signed(body))
        ).status_code == 200
        # Delivered by the app's dispatcher, which the commit woke (no poll to wait for).
        await eventually(lambda: bool(self.notified.events), seconds=3)
        [event] = self.notified.events
        assert event.name == "carrier_tracking_received"
        assert event.payload == {"waybill": "SF42", "status": "IN_TRANSIT"}
        # A transaction that rolls back (the route failed) emits nothing.
        broken = json.dumps({"waybill": "SF43", "status": "BROKEN"}).encode()
        failed = await http.post("/plugins/carrier/webhook", content=broken, headers=signed(broken))
        assert failed.status_code == 500
        error = failed.json()["errors"][0]
        assert error["extensions"] == {"code": "PLUGIN_FAILED", "plugin": "carrier"}
        assert "payload changed" in error["message"]  # outside production only
        await asyncio.sleep(0.3)
        assert len(self.notified.events) == 1
        names = (await session.execute(select(OutboxEvent.payload))).scalars().all()
        assert [p["waybill"] for p in names] == ["SF42"]

    async def test_routes_get_the_core_body_limit(self, http: httpx.AsyncClient) -> None:
        small = await http.post("/plugins/carrier/upload", content=b"x" * 1000)
        assert small.json() == {"bytes": 1000}
        declared = await http.post("/plugins/carrier/upload", content=b"x" * 5000)
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"y" * 1000

        # No Content-Length (chunked): stopped as soon as it passes the limit.
        streamed = await http.post("/plugins/carrier/upload", content=chunks())
        assert streamed.status_code == 413

    async def test_auth_helpers(
        self, http: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        logistics = await make_staff(session, role=StaffRole.LOGISTICS)
        catalog = await make_staff(session, role=StaffRole.CATALOG)
        customer = await make_customer(session)
        roles = RoleMap.build(settings, ["carrier.manage"])
        reader = await apikeys.create_api_key(
            session, roles, name="rates", scopes=["shipments.read"], created_by="test"
        )
        other = await apikeys.create_api_key(
            session, roles, name="catalog", scopes=["catalog.read"], created_by="test"
        )
        await session.commit()

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async def status(path: str, headers: dict[str, str] | None = None) -> int:
            return (await http.get(path, headers=headers)).status_code

        admin = "/plugins/carrier/admin/shipments"
        assert await status(admin, bearer(token_for(settings, logistics))) == 200
        assert await status(admin, bearer(token_for(settings, catalog))) == 403
        assert await status(admin, bearer(token_for(settings, customer))) == 403
        assert await status(admin, bearer(reader.secret)) == 403
        assert await status(admin) == 401
        refused = await http.get(admin, headers=bearer("not-a-token"))
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        rates = "/plugins/carrier/rates"
        answer = await http.get(rates, headers={"X-Api-Key": reader.secret})
        assert answer.json() == {"api_key_id": reader.api_key.id}
        assert await status(rates, {"X-Api-Key": other.secret}) == 403
        assert await status(rates, bearer(token_for(settings, logistics))) == 200

        who = await http.get(
            "/plugins/carrier/whoami", headers=bearer(token_for(settings, customer))
        )
        assert who.json() == {"kind": "CUSTOMER", "customer_id": customer.id}
        anonymous = await http.get("/plugins/carrier/whoami")
        assert anonymous.json() == {"kind": "ANONYMOUS", "customer_id": None}

        duplicate = await http.get("/plugins/carrier/duplicate")
        assert duplicate.status_code == 409
        assert duplicate.json() == {
            "errors": [
                {
                    "message": "this update was received already",
                    "extensions": {"code": "DUPLICATE"},
                }
            ]
        }


def test_a_disabled_plugins_routes_are_not_mounted(database_url: str) -> None:
    settings = Settings(
        database_url=database_url, env="test", plugins="", disabled_plugins="carrier"
    )
    carrier = FakePlugin("carrier", hookspecs=CarrierSpecs, routes=carrier_routes)
    app = create_app(settings, load_plugins(settings, extra=[carrier]))
    server = LiveServer(app).start()
    try:
        body = b"{}"
        answer = httpx.post(
            f"{server.url}/plugins/carrier/webhook", content=body, headers=signed(body)
        )
        assert answer.status_code == 404
    finally:
        server.stop()


def test_a_failing_route_says_only_which_plugin_failed_in_production(database_url: str) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("secret upstream detail")

    settings = Settings(
        database_url=database_url, env="production", plugins="", secret_key="k" * 40
    )
    plugin = FakePlugin("feeds", routes=lambda: [Route("/price-feed", boom)])
    server = LiveServer(create_app(settings, load_plugins(settings, extra=[plugin]))).start()
    try:
        answer = httpx.get(f"{server.url}/plugins/feeds/price-feed")
    finally:
        server.stop()
    assert answer.status_code == 500
    assert answer.json() == {
        "errors": [
            {
                "message": "plugin 'feeds' failed",
                "extensions": {"code": "PLUGIN_FAILED", "plugin": "feeds"},
            }
        ]
    }


def test_verify_signature_compares_hmacs() -> None:
    body = "运单 SF1".encode()
    mac = hmac.new(b"k", body, hashlib.sha256)
    assert verify_signature("k", body, mac.hexdigest())
    assert verify_signature(b"k", body, mac.hexdigest().upper())
    assert verify_signature("k", body, base64.b64encode(mac.digest()).decode(), encoding="base64")
    assert not verify_signature("k", body + b" ", mac.hexdigest())
    assert not verify_signature("other", body, mac.hexdigest())
    assert not verify_signature("k", body, "签名")
    sha1 = hmac.new(b"k", body, hashlib.sha1).hexdigest()
    assert verify_signature("k", body, sha1, digest="sha1")


async def test_a_rolled_back_plugin_event_is_never_delivered(database_url: str) -> None:
    received = Recorder()
    runtime = load_plugins(
        Settings(plugins=""),
        extra=[
            FakePlugin("carrier", hookspecs=CarrierSpecs),
            FakePlugin("notifier", carrier_tracking_received=received),
        ],
    )
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as s:
            await emit_event(s, "carrier_tracking_received", {"waybill": "SF1"})
            await s.rollback()
        async with sessions() as s:
            event = await emit_event(s, "carrier_tracking_received", {"waybill": "SF2"})
            await s.commit()
        report = await OutboxDispatcher(sessions, runtime).drain()
    finally:
        await engine.dispose()
    assert (report.events, report.delivered) == (1, 1)
    assert [(e.id, e.payload) for e in received.events] == [(event.id, {"waybill": "SF2"})]


# --- periodic jobs inside serve ----------------------------------------------------------------


def _serving(database_url: str, plugin: Any, **settings: Any) -> LiveServer:
    config = Settings(
        database_url=database_url,
        env="test",
        plugins="",
        jobs_poll_seconds=0.05,
        **{"run_jobs": True, **settings},
    )
    return LiveServer(create_app(config, load_plugins(config, extra=[plugin]))).start()


def test_serve_runs_the_plugins_jobs(database_url: str) -> None:
    runs: list[float] = []

    async def refresh(ctx: JobContext) -> None:
        runs.append(time.monotonic())
        async with ctx.sessions() as s:
            await s.execute(text("SELECT 1"))

    plugin = FakePlugin("rates", jobs=lambda: [Job("refresh", 0.2, refresh)])
    server = _serving(database_url, plugin)
    try:
        deadline = time.monotonic() + 20
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    assert len(runs) >= 2  # at start-up, and again once its interval passed
    # Not at every poll (0.05 s), but once the interval passed (give or take a poll's jitter).
    assert runs[1] - runs[0] >= 0.15

    off: list[float] = []
    plugin = FakePlugin("rates", jobs=lambda: [Job("refresh", 0.01, lambda ctx: _append(off))])
    server = _serving(database_url, plugin, run_jobs=False)
    try:
        time.sleep(0.5)
    finally:
        server.stop()
    assert off == []


async def _append(into: list[float]) -> None:
    into.append(time.monotonic())


async def test_a_job_says_what_it_is_doing_on_the_runners_progress(database_url: str) -> None:
    async def rebuild(ctx: JobContext) -> None:
        ctx.progress("1,000 products read")
        ctx.progress("written")

    plugin = FakePlugin("models", jobs=lambda: [Job("rebuild", 3600, rebuild)])
    settings = Settings(database_url=database_url, plugins="")
    runtime = load_plugins(settings, extra=[plugin])
    engine = create_engine(database_url)
    try:
        runner = JobRunner(session_factory(engine), settings, runtime)
        stream = io.StringIO()  # no terminal: one line per note and step
        with Progress("jobs", runner.steps("models.rebuild"), stream=stream) as progress:
            report = await runner.run_once(only="models.rebuild", progress=progress)
        assert report.ran == ["models.rebuild"]
        assert stream.getvalue().splitlines() == [
            "jobs: models.rebuild: 1,000 products read (0/1)",
            "jobs: models.rebuild: written (0/1)",
            "jobs: models.rebuild ran (1/1)",
        ]
        # Without a progress to show it on (a serving process), the job's notes go nowhere.
        assert (await runner.run_once(only="models.rebuild", force=True)).ran == ["models.rebuild"]
    finally:
        await engine.dispose()


async def test_shutdown_cancels_a_running_job_and_gives_it_back(
    database_url: str, session: AsyncSession
) -> None:
    started = threading.Event()
    outcome: list[str] = []

    async def crawl(ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    plugin = FakePlugin("competitors", jobs=lambda: [Job("crawl", 3600, crawl)])
    server = await asyncio.to_thread(_serving, database_url, plugin)
    assert await asyncio.to_thread(started.wait, 20)
    begun = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert not server.thread.is_alive() and time.monotonic() - begun < 10
    assert outcome == ["cancelled"]
    lease = await session.get(JobLease, "competitors.crawl")
    assert lease is not None and lease.holder is None and lease.locked_until is None
    # Due again at once, for the next process to pick up.
    assert lease.last_started_at is None and lease.last_error == CANCELLED
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        assert await session.scalar(text(held)) == 0


@pytest.mark.postgres_only
async def test_two_runners_never_run_one_job_at_once_on_postgresql(database_url: str) -> None:
    running = asyncio.Event()
    spans: list[tuple[float, float]] = []

    async def crawl(ctx: JobContext) -> None:
        begun = time.monotonic()
        running.set()
        await asyncio.sleep(0.6)
        spans.append((begun, time.monotonic()))

    plugin = FakePlugin("competitors", jobs=lambda: [Job("crawl", 0, crawl)])
    settings = Settings(database_url=database_url, plugins="")
    runtime = load_plugins(settings, extra=[plugin])
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        # Leases that lapse while the job runs: only the advisory lock keeps the other out.
        first, second = (
            JobRunner(session_factory(e), settings, runtime, lease=timedelta(milliseconds=50))
            for e in engines
        )
        # (Only the plugin's job: the core's own would run in between.)
        crawl_only = {"outbox": False, "only": "competitors.crawl"}
        running_first = asyncio.create_task(first.run_once(**crawl_only))
        await asyncio.wait_for(running.wait(), 20)
        await asyncio.sleep(0.2)  # the first runner's lease has lapsed
        meanwhile = await second.run_once(force=True, **crawl_only)
        assert meanwhile.ran == [] and meanwhile.skipped == ["competitors.crawl"]
        assert (await running_first).ran == ["competitors.crawl"]
        # The lock went with the run: now the second runner may.
        assert (await second.run_once(**crawl_only)).ran == ["competitors.crawl"]
        async with engines[0].connect() as conn:
            held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            assert await conn.scalar(text(held)) == 0
    finally:
        for engine in engines:
            await engine.dispose()
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert a_end <= b_start


@pytest.mark.postgres_only
def test_two_serving_processes_take_turns_at_a_job(database_url: str) -> None:
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    async def tick(ctx: JobContext) -> None:
        begun = time.monotonic()
        await asyncio.sleep(0.05)
        with lock:
            spans.append((begun, time.monotonic()))

    plugin = FakePlugin("ticker", jobs=lambda: [Job("tick", 0, tick)])
    servers = [_serving(database_url, plugin), _serving(database_url, plugin)]
    try:
        deadline = time.monotonic() + 30
        while len(spans) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for server in servers:
            server.stop()
    assert len(spans) >= 10
    ordered = sorted(spans)
    assert all(
        end <= next_start for (_, end), (next_start, _) in zip(ordered, ordered[1:], strict=False)
    )
