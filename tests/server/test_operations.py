"""What operators see: /metrics (also across worker processes), request ids in JSON logs,
liveness and readiness, tracing."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from server import migrate
from server.app import create_app
from server.config import Settings
from server.logs import JsonFormatter
from server.plugins import load_plugins
from tests.support.postgres import free_port
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in exposition text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_count_operations_requests_and_the_outbox(live_server: LiveServer) -> None:
    ok = ("shopgraph_graphql_operations_total", {"operation": "Shop", "type": "query"})
    before_ok = sample(ok[0], **ok[1], outcome="ok")
    before_costed = sample("shopgraph_graphql_query_cost_count")
    before_hits = sample("shopgraph_response_cache_total", outcome="hits")
    before_rejected = sample(
        "shopgraph_graphql_operations_total",
        operation="anonymous",
        type="query",
        outcome="rejected",
    )
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        for _ in range(3):
            await http.post("/graphql", json={"query": "query Shop { categories { name } }"})
        await http.post("/graphql", json={"query": "{ nosuchfield }"})
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(ok[0], **ok[1], outcome="ok") == before_ok + 3
    # All three public reads are counted as operations: the first ran and was costed, the
    # two repeats were answered by the response cache; the rejected one never ran.
    assert sample("shopgraph_response_cache_total", outcome="hits") == before_hits + 2
    assert sample("shopgraph_graphql_query_cost_count") == before_costed + 1
    assert (
        sample(
            "shopgraph_graphql_operations_total",
            operation="anonymous",
            type="query",
            outcome="rejected",
        )
        == before_rejected + 1
    )
    assert scraped(text, "shopgraph_http_requests_total", route="/graphql", status="200") >= 4
    assert (
        scraped(text, "shopgraph_graphql_operation_duration_seconds_count", operation="Shop") >= 3
    )
    # Figures read from the database when scraped.
    for name in (
        "outbox_events_undispatched",
        "outbox_deliveries_pending",
        "outbox_deliveries_dead",
    ):
        assert re.search(rf"^shopgraph_{name} \d", text, re.MULTILINE), name
    assert "shopgraph_db_connections_in_use" in text


def test_operation_names_cannot_grow_the_metrics_without_bound() -> None:
    from server.metrics import MAX_NAMES, operation_label

    labels = {operation_label(f"Op{i}") for i in range(MAX_NAMES + 50)}
    assert "other" in labels and len(labels) <= MAX_NAMES + 1
    assert operation_label("x" * 500) == "other"
    assert operation_label(None) == "anonymous"


async def test_metrics_are_closed_in_production_without_the_token(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    secret = "s" * 40
    for token in (None, "metrics-token-123"):
        settings = Settings(
            database_url=url, env="production", secret_key=secret, metrics_token=token
        )
        server = LiveServer(create_app(settings, load_plugins(settings))).start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                assert (await http.get("/metrics")).status_code == 404
                wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
                assert wrong.status_code == 404
                if token is not None:
                    right = await http.get("/metrics", headers={"authorization": f"Bearer {token}"})
                    assert (
                        right.status_code == 200 and "shopgraph_http_requests_total" in right.text
                    )
        finally:
            server.stop()


async def test_request_ids_are_kept_echoed_and_in_json_log_lines(live_server: LiveServer) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shopgraph.auth")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
            kept = await http.post(
                "/graphql",
                json={"query": "{ __typename }"},
                headers={"x-request-id": "req-42.abc", "authorization": "Bearer not-a-jwt"},
            )
            made = await http.get("/healthz")
            replaced = await http.get("/healthz", headers={"x-request-id": "bad id\twith junk"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert kept.status_code == 401 and kept.headers["x-request-id"] == "req-42.abc"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    [line] = [json.loads(raw) for raw in stream.getvalue().splitlines()]
    assert line["request_id"] == "req-42.abc"
    assert line["level"] == "DEBUG" and line["logger"] == "shopgraph.auth"
    assert "token refused" in line["message"]


async def test_live_and_ready(live_server: LiveServer, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/healthz/live")).json() == {"status": "ok"}
        ready = await http.get("/healthz/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}

    # A database that is not migrated: alive, not ready, and says what to run.
    unmigrated = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    server = LiveServer(create_app(unmigrated, load_plugins(unmigrated))).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/healthz/live")).status_code == 200
            ready = await http.get("/healthz/ready")
            assert ready.status_code == 503
            assert "shopgraph db upgrade" in ready.json()["reason"]
    finally:
        server.stop()

    # A database that does not answer.
    gone = Settings(
        database_url=f"postgresql+asyncpg://nobody:x@127.0.0.1:{free_port()}/shop", env="test"
    )
    server = LiveServer(create_app(gone, load_plugins(gone))).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            ready = await http.get("/healthz/ready")
            assert ready.status_code == 503
            assert ready.json()["reason"] == "database unreachable"
    finally:
        server.stop()


@pytest.mark.heavy
def test_metrics_add_up_across_worker_processes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
    port = free_port()
    env = {
        **os.environ,
        "SHOPGRAPH_DATABASE_URL": url,
        "SHOPGRAPH_ENV": "development",
        "SHOPGRAPH_LOG_LEVEL": "WARNING",
        "TMPDIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        for _ in range(40):
            # A new connection each time, so that the workers share them.
            answer = httpx.post(
                f"{base}/graphql", json={"query": "query Count { __typename }"}, timeout=30
            )
            assert answer.status_code == 200
        # `serve` gave the workers a directory of their own (under TMPDIR) for their samples.
        [directory] = tmp_path.glob("shopgraph-metrics-*")
        writers = {re.sub(r"\D", "", f.stem) for f in directory.glob("counter_*.db")}
        # (The parent process, which loads the plugins, may hold empty samples of its own.)
        assert len(writers - {str(proc.pid)}) == 2, "both workers served and counted"
        # Whichever worker answers a scrape, it reports every worker's operations.
        for _ in range(10):
            text = httpx.get(f"{base}/metrics", timeout=30).text
            counted = scraped(
                text, "shopgraph_graphql_operations_total", operation="Count", outcome="ok"
            )
            assert counted == 40
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.heavy
def test_operations_are_traced_when_a_tracer_provider_is_configured(tmp_path: Path) -> None:
    # Its own process: a tracer provider is global and would trace every later test.
    script = textwrap.dedent(
        f"""
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        from schema.core import build_schema
        from server.config import Settings
        from server.plugins import load_plugins

        settings = Settings(database_url="sqlite+aiosqlite:///{tmp_path / "x.db"}", plugins="")
        schema = build_schema(load_plugins(settings), settings)
        result = asyncio.run(schema.execute("query Ping {{ __typename }}"))
        assert result.errors is None, result.errors
        print(sorted({{span.name for span in exporter.get_finished_spans()}}))
        off = build_schema(load_plugins(settings), settings.model_copy(update={{"tracing": False}}))
        exporter.clear()
        asyncio.run(off.execute("query Ping {{ __typename }}"))
        print(len(exporter.get_finished_spans()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "GraphQL Query: Ping" in out[0]
    assert out[1] == "0"
