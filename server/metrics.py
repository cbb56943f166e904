"""Prometheus metrics of a serving process, and the ``/metrics`` exposition.

With several worker processes (``shopgraph serve --workers``) every process writes its samples
to ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, answered by any one of them, adds them up.
Figures of the shared database (outbox backlog, dead letters) are read from it when scraped.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import METRICS_DIR_VARIABLE

HTTP_REQUESTS = Counter(
    "shopgraph_http_requests_total",
    "HTTP requests answered, by route, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "shopgraph_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OPERATIONS = Counter(
    "shopgraph_graphql_operations_total",
    "GraphQL operations by name, type and outcome (ok, error, rejected, throttled).",
    ["operation", "type", "outcome"],
)
OPERATION_LATENCY = Histogram(
    "shopgraph_graphql_operation_duration_seconds",
    "Time to parse, validate and execute a GraphQL operation.",
    ["operation", "type"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUERY_COST = Histogram(
    "shopgraph_graphql_query_cost",
    "Actual cost of executed operations (points of the per-client budget).",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
THROTTLED = Counter(
    "shopgraph_graphql_throttled_total", "Operations refused by the per-client cost budget."
)
DB_CONNECTIONS = Gauge(
    "shopgraph_db_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
RESPONSE_CACHE = Counter(
    "shopgraph_response_cache_total",
    "Response cache events: hits, misses, bypasses, stores, races (not stored: a write "
    "committed meanwhile), invalidations, evictions.",
    ["outcome"],
)
JOB_RUNS = Counter(
    "shopgraph_job_runs_total",
    "Periodic jobs considered, by job and outcome (ran, failed, not_due).",
    ["job", "outcome"],
)

# Operation names are chosen by clients: past this many distinct ones (or past this length)
# they are counted as "other", so that no client can grow the metrics without bound.
MAX_NAMES = 200
MAX_NAME_LENGTH = 64
_known: set[str] = set()
_known_lock = threading.Lock()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if len(name) > MAX_NAME_LENGTH:
        return "other"
    with _known_lock:
        if name in _known:
            return name
        if len(_known) < MAX_NAMES:
            _known.add(name)
            return name
    return "other"


def observe_operation(name: str | None, kind: str, outcome: str, seconds: float) -> None:
    """One GraphQL operation answered (executed, or from the response cache)."""
    label = operation_label(name)
    OPERATIONS.labels(label, kind, outcome).inc()
    OPERATION_LATENCY.labels(label, kind).observe(seconds)
    if outcome == "throttled":
        THROTTLED.inc()


def _route_of(path: str, routes: tuple[str, ...]) -> str:
    # Label by known route, never by raw path: a path is client input and would make one time
    # series per URL anyone cares to try.
    for route in routes:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


class HttpMetrics:
    """ASGI middleware: HTTP request counts by route, method and status, and latency."""

    def __init__(self, app: ASGIApp, routes: tuple[str, ...]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _route_of(scope.get("path", ""), self.routes)
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            HTTP_REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
            HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)


class DatabaseFigures(Collector):
    """Figures of the shared database, read when scraped (the same for every process)."""

    def __init__(self, figures: dict[str, tuple[str, float]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, value) in self.figures.items():
            yield GaugeMetricFamily(f"shopgraph_{name}", documentation, value=value)


def exposition(database: dict[str, tuple[str, float]]) -> bytes:
    """The exposition text: this process's metrics (every worker's in multiprocess mode) and
    the database's figures."""
    if os.environ.get(METRICS_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    shared = CollectorRegistry()
    shared.register(DatabaseFigures(database))
    return generate_latest(registry) + generate_latest(shared)


def metrics_allowed(request: Request, token: str | None, production: bool) -> bool:
    """Without a token /metrics is open outside production and closed in it; with one, only a
    request bearing it gets in."""
    if token is None:
        return not production
    given = request.headers.get("authorization", "")
    return secrets.compare_digest(given.encode(), f"Bearer {token}".encode())


def metrics_response(body: bytes) -> Response:
    return Response(body, media_type=CONTENT_TYPE_LATEST)
