"""Plugins' HTTP routes (carrier webhooks, a competitor's price feed …), served by the app.

Each enabled plugin's ``routes`` hook answers starlette routes, mounted under
``/plugins/<plugin name>``. They get what the GraphQL endpoint gets: the request body limit
(``SHOPGRAPH_MAX_BODY_BYTES``: 413 before the body is read when it says it is larger, and as
soon as it grows larger), the request id in every log line and on the response, the HTTP
metrics (labelled by route, never by raw path), and helpers to authenticate the caller
(access token, API key with scopes, staff permission) or check a webhook's HMAC signature.

A route that raises answers 500 with a JSON error naming the plugin (the exception itself
goes to the log, and to the answer only outside production); :class:`RouteError` answers a
chosen status with the same JSON shape as the GraphQL endpoint's errors.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import InvalidToken, Viewer, ViewerKind
from server.authn import authenticate
from server.config import Settings
from server.db import mark_write
from server.http import BodyLimit
from server.permissions import RoleMap
from server.plugins import PluginError, PluginRuntime

log = logging.getLogger("shopgraph.plugins.routes")
PREFIX = "/plugins"
_STATE = "shopgraph.route_state"
_PLUGIN = "shopgraph.route_plugin"
_VIEWER = "shopgraph.route_viewer"
# What the database layer raises when the database cannot be reached or answer.
_DATABASE_DOWN = (SQLAlchemyError, OSError, TimeoutError)
TOKEN_REFUSED = "The access token or API key is invalid, expired or revoked."


class RouteState(Protocol):
    """What the app shares with plugins' routes."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    roles: RoleMap


class RouteError(Exception):
    """Raise in a plugin's route to answer ``status`` with
    ``{"errors": [{"message": message, "extensions": {"code": code}}]}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return _error(self.status, self.code, self.message, self.headers)


def _error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class PluginRouteGuard:
    """ASGI middleware around one plugin's routes: the body limit, and failures answered in
    JSON naming the plugin."""

    def __init__(self, app: ASGIApp, plugin: str, state: RouteState) -> None:
        self.app = BodyLimit(app, state.settings.max_body_bytes)
        self.plugin = plugin
        self.state = state
        self.production = state.settings.env == "production"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_STATE] = self.state
        scope[_PLUGIN] = self.plugin
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting)
        except RouteError as exc:
            if started:
                raise
            await exc.response()(scope, receive, send)
        except Exception as exc:
            log.exception(
                "plugin %r: %s %s failed", self.plugin, scope.get("method"), scope.get("path")
            )
            if started:
                raise
            message = f"plugin {self.plugin!r} failed"
            if not self.production:
                message += f": {exc}"
            await _error(500, "PLUGIN_FAILED", message, plugin=self.plugin)(scope, receive, send)


def plugin_mounts(plugins: PluginRuntime, state: RouteState) -> list[Mount]:
    """One ``Mount`` per enabled plugin that answers the ``routes`` hook."""
    mounts: list[Mount] = []
    for plugin, routes in plugins.call_sync("routes"):
        routes = list(routes)
        wrong = [r for r in routes if not isinstance(r, BaseRoute)]
        if wrong:
            raise PluginError(
                f"plugin {plugin!r}: routes must return starlette routes (Route, Mount, "
                f"WebSocketRoute), not {wrong[0]!r}"
            )
        if routes:
            mounts.append(
                Mount(
                    f"{PREFIX}/{plugin}",
                    routes=routes,
                    middleware=[Middleware(PluginRouteGuard, plugin=plugin, state=state)],
                )
            )
    return mounts


def metric_labels(mounts: Sequence[Mount]) -> list[str]:
    """The route labels of plugins' routes for the HTTP metrics: each parameter-free path,
    then each plugin's prefix (which labels the rest, so labels stay bounded)."""
    exact = [
        mount.path + path
        for mount in mounts
        for route in mount.routes
        if isinstance(path := getattr(route, "path", None), str) and "{" not in path
    ]
    return [*exact, *(mount.path for mount in mounts)]


# --- helpers for the routes themselves -------------------------------------------------------


def _state(request: Request) -> RouteState:
    state = request.scope.get(_STATE)
    if state is None:
        raise RuntimeError("only a plugin's route (the routes hook) can use this helper")
    return state


async def request_viewer(request: Request) -> Viewer:
    """Who the request acts as, from its ``Authorization: Bearer …`` (an access token or an API
    key) or ``X-Api-Key`` header: a customer, a staff user with the permissions of their role,
    an app with its key's scopes, or anonymous when there is no credential. A bad, expired or
    revoked credential raises :class:`RouteError` (401)."""
    cached = request.scope.get(_VIEWER)
    if cached is not None:
        return cached
    state = _state(request)
    try:
        viewer = await authenticate(
            request.headers.raw, state.settings, state.roles, state.sessions
        )
    except InvalidToken as exc:
        log.debug("token refused: %s", exc)
        raise RouteError(
            401,
            "UNAUTHENTICATED",
            TOKEN_REFUSED,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc
    except _DATABASE_DOWN as exc:
        log.warning("database unavailable while authenticating: %s", exc)
        raise RouteError(
            503,
            "SERVICE_UNAVAILABLE",
            "The service is briefly unavailable; nothing was done. Try again shortly.",
            {"Retry-After": "1"},
        ) from exc
    request.scope[_VIEWER] = viewer
    return viewer


async def require_permission(request: Request, *permissions: str) -> Viewer:
    """The request's viewer when it holds any of ``permissions`` (a staff user's role, or an
    API key's scopes); :class:`RouteError` 401 without a credential, 403 without the
    permission."""
    viewer = await request_viewer(request)
    if viewer.kind is ViewerKind.ANONYMOUS:
        raise RouteError(401, "UNAUTHENTICATED", "Sign in or send an API key.")
    if not viewer.has(*permissions):
        raise RouteError(403, "FORBIDDEN", f"This needs one of: {', '.join(permissions)}.")
    return viewer


async def require_staff(request: Request, *permissions: str) -> Viewer:
    """The request's viewer when it is a staff user (holding any of ``permissions``, when some
    are given); :class:`RouteError` 401 without a credential, 403 otherwise."""
    viewer = await request_viewer(request)
    if viewer.kind is ViewerKind.ANONYMOUS:
        raise RouteError(401, "UNAUTHENTICATED", "Sign in as staff.")
    if not viewer.is_staff:
        raise RouteError(403, "FORBIDDEN", "Only staff may do this.")
    if permissions and not viewer.has(*permissions):
        raise RouteError(403, "FORBIDDEN", f"This needs one of: {', '.join(permissions)}.")
    return viewer


def verify_signature(
    secret: str | bytes,
    message: bytes,
    signature: str,
    *,
    digest: str = "sha256",
    encoding: str = "hex",
) -> bool:
    """Whether ``signature`` is the HMAC of ``message`` under ``secret`` (with hash
    ``digest``, written in ``encoding``: ``"hex"`` or ``"base64"``), compared in constant
    time."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, message, digest).digest()
    if encoding == "hex":
        expected, given = mac.hex(), signature.strip().lower()
    elif encoding == "base64":
        expected, given = base64.b64encode(mac).decode(), signature.strip()
    else:
        raise ValueError(f"unknown signature encoding {encoding!r} (hex or base64)")
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


async def require_signature(
    request: Request,
    secret: str | bytes,
    header: str,
    *,
    prefix: str = "",
    digest: str = "sha256",
    encoding: str = "hex",
) -> bytes:
    """The request's body, once header ``header`` (after ``prefix``, e.g. ``"sha256="``) is
    its HMAC under ``secret`` (see :func:`verify_signature`); :class:`RouteError` 401
    otherwise."""
    body = await request.body()
    given = request.headers.get(header, "")
    valid = given.startswith(prefix) and verify_signature(
        secret, body, given[len(prefix) :], digest=digest, encoding=encoding
    )
    if not valid:
        raise RouteError(401, "INVALID_SIGNATURE", f"The {header} signature does not match.")
    return body


@contextlib.asynccontextmanager
async def route_session(request: Request, *, write: bool = False) -> AsyncIterator[AsyncSession]:
    """A database session of the app for one transaction of a route: commit it yourself.
    ``write=True`` when the transaction will change data (on SQLite it then takes the write
    lock first). Events emitted in it (``emit_event``) go out right after the commit."""
    async with _state(request).sessions() as session:
        if write:
            await mark_write(session)
        yield session
