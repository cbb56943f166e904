"""GraphQL operations observed: counted and timed for ``/metrics`` (by name, type and
outcome), and traced with OpenTelemetry when it is installed."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from server.config import Settings
from server.metrics import observe_operation
from server.throttle import THROTTLED


def outcome_of(data: object, errors: list[GraphQLError] | None) -> str:
    """ok, error (some fields failed), rejected (never executed) or throttled."""
    if not errors:
        return "ok"
    if any((e.extensions or {}).get("code") == THROTTLED for e in errors):
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
        result = context.result
        outcome = outcome_of(getattr(result, "data", None), getattr(result, "errors", None))
        observe_operation(context.operation_name, kind, outcome, time.perf_counter() - started)


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
