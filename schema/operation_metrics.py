"""GraphQL operations observed: counted and timed for ``/metrics`` (by name, type and
outcome), and traced with OpenTelemetry when it is installed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from server.config import Settings
from server.metrics import OPERATION_LATENCY, OPERATIONS, THROTTLED

THROTTLED_CODE = "THROTTLED"
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


def outcome_of(data: object, errors: list[GraphQLError] | None) -> str:
    """ok, error (some fields failed), rejected (never executed) or throttled."""
    if not errors:
        return "ok"
    if any((e.extensions or {}).get("code") == THROTTLED_CODE for e in errors):
        return "throttled"
    if data is None and all(not e.path for e in errors):
        return "rejected"
    return "error"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except (RuntimeError, GraphQLError):  # no document, or no such operation in it
            kind = "unknown"
        name = operation_label(context.operation_name)
        result = context.result
        outcome = outcome_of(getattr(result, "data", None), getattr(result, "errors", None))
        OPERATIONS.labels(name, kind, outcome).inc()
        OPERATION_LATENCY.labels(name, kind).observe(time.perf_counter() - started)
        if outcome == "throttled":
            THROTTLED.inc()


def tracing_extensions(settings: Settings | None) -> list[type[SchemaExtension]]:
    """strawberry's OpenTelemetry extension (a span per operation and resolver) when
    ``opentelemetry-api`` is installed and tracing is on: ``SHOPGRAPH_TRACING=true``, or unset
    with a tracer provider configured in the process (e.g. by ``opentelemetry-instrument``).
    The extension wraps every resolver, so it is left out when nothing would record spans."""
    wanted = settings.tracing if settings is not None else None
    if wanted is False:
        return []
    try:
        from opentelemetry import trace
        from strawberry.extensions.tracing import OpenTelemetryExtension
    except ImportError:
        return []
    if wanted is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return []
    return [OpenTelemetryExtension]
