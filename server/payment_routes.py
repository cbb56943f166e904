"""``POST /payments/{gateway}/webhook``: a payment gateway reports on its payments.

The plugin offering the gateway reads the call (``payment_webhook``: it checks the gateway's
signature) and says which payments it settles; the core applies them in the same transaction
(a captured payment pays its order). Answers: what the plugin says the gateway expects; 404
for a gateway nobody offers; 413 for a body over ``SHOPGRAPH_MAX_BODY_BYTES``; 500 when the
plugin refuses or fails, and 409 when the update collides with the order's state — nothing is
written then, and gateways call again.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response

from server.config import Settings
from server.db import mark_write
from server.http import BodyLimit
from server.plugins import PluginFailed
from server.services import payments
from server.services.errors import DomainError, UnknownGateway

log = logging.getLogger("shopgraph.payments")
WEBHOOK_PATH = "/payments/{gateway}/webhook"


class WebhookState(Protocol):
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    plugins: Any


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def payment_routes(state: WebhookState) -> list[Route]:
    async def webhook(request: Request) -> Response:
        code = request.path_params["gateway"]
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        async with state.sessions() as session:
            await mark_write(session)
            try:
                reply = await payments.handle_webhook(session, state.plugins, code, headers, body)
                await session.commit()
            except UnknownGateway as exc:
                await session.rollback()
                return _error(404, exc.code, exc.message)
            except DomainError as exc:
                await session.rollback()
                log.warning("payment webhook of %s not applied: %s", code, exc.message)
                return _error(409, exc.code, exc.message)
            except PluginFailed as exc:
                await session.rollback()
                log.warning("payment webhook of %s refused: %s", code, exc)
                return _error(500, "PLUGIN_FAILED", f"plugin {exc.plugin!r} failed")
        return Response(reply.body, status_code=reply.status_code, media_type=reply.media_type)

    # The body is bounded like every request's (413 before or while it is read).
    bounded = BodyLimit(request_response(webhook), state.settings.max_body_bytes)
    return [Route(WEBHOOK_PATH, bounded, methods=["POST"])]
