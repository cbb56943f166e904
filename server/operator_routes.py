"""The routes operators and orchestrators call: liveness, readiness and ``/metrics``.

- ``/healthz`` and ``/healthz/live``: the process answers (restart it when it does not).
- ``/healthz/ready``: the database answers and is migrated to the heads of the core and every
  enabled plugin (send it traffic only then); 503 with the reason otherwise.
- ``/metrics``: Prometheus exposition (server/metrics.py), behind the metrics token in
  production.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import migrate
from server.config import Settings
from server.metrics import DB_CONNECTIONS, exposition, metrics_allowed, metrics_response
from server.models import DeliveryStatus, OutboxDelivery, OutboxEvent

log = logging.getLogger("shopgraph.health")
READY_TIMEOUT_SECONDS = 2.0


class ServingState(Protocol):
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    plugins: Any


def count_pool_connections(engine: AsyncEngine) -> None:
    """Keep the in-use connections gauge current through the pool's public events."""

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(*_: Any) -> None:
        DB_CONNECTIONS.inc()

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checked_in(*_: Any) -> None:
        DB_CONNECTIONS.dec()


async def outbox_figures(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, tuple[str, float]]:
    async with sessions() as session:
        by_status = dict(
            (
                await session.execute(
                    select(col(OutboxDelivery.status), func.count()).group_by(
                        col(OutboxDelivery.status)
                    )
                )
            ).all()
        )
        undispatched = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(col(OutboxEvent.dispatched_at).is_(None))
        )
    return {
        "outbox_events_undispatched": (
            "Committed events not yet fanned out to plugins.",
            float(undispatched or 0),
        ),
        "outbox_deliveries_pending": (
            "Deliveries to plugins waiting or being retried.",
            float(by_status.get(DeliveryStatus.PENDING, 0)),
        ),
        "outbox_deliveries_dead": (
            "Deliveries that failed every attempt (dead letters).",
            float(by_status.get(DeliveryStatus.DEAD, 0)),
        ),
    }


class Readiness:
    def __init__(self, state: ServingState) -> None:
        self.state = state
        self._scripts: dict[bool, migrate.Migrations] = {}

    async def scripts(self, disabled: bool = False) -> migrate.Migrations:
        """The core's and the enabled plugins' revisions (with ``disabled``, every installed
        plugin's), read once."""
        if disabled not in self._scripts:
            plugins = self.state.plugins
            self._scripts[disabled] = await asyncio.to_thread(
                lambda: migrate.Migrations(plugins, disabled=disabled).read()
            )
        return self._scripts[disabled]

    async def problem(self) -> str | None:
        """Why the process should get no traffic yet, or None."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with self.state.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    current = await conn.run_sync(
                        lambda c: set(MigrationContext.configure(c).get_current_heads())
                    )
        except Exception as exc:  # noqa: BLE001 - any failure to reach the database is "not ready"
            log.warning("not ready: database unreachable: %s", exc)
            return "database unreachable"
        pending = (await self.scripts()).pending(current)
        if pending.missing and pending.unknown:
            # A disabled plugin's revision may stand for one that seems missing.
            pending = (await self.scripts(disabled=True)).pending(current)
        if pending.missing:
            missing = ", ".join(pending.missing)
            return f"database not migrated to head (missing {missing}): run shopgraph db upgrade"
        return None


def operator_routes(state: ServingState) -> list[Route]:
    readiness = Readiness(state)
    production = state.settings.env == "production"

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> JSONResponse:
        problem = await readiness.problem()
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        if not metrics_allowed(request, state.settings.metrics_token, production):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        try:
            database = await outbox_figures(state.sessions)
        except Exception as exc:  # noqa: BLE001 - the process's own metrics are still worth serving
            log.warning("metrics: could not read the outbox figures: %s", exc)
            database = {}
        return metrics_response(exposition(database))

    return [
        Route("/healthz", live),
        Route("/healthz/live", live),
        Route("/healthz/ready", ready),
        Route("/metrics", metrics),
    ]
