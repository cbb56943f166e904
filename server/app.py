"""The ASGI application: Starlette routes, the GraphQL endpoint, and their lifespan."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from schema.assembly import build_schema
from schema.context import Context, Database
from schema.loaders import Loaders
from server import json_codec
from server.auth import ANONYMOUS, InvalidToken, Viewer
from server.authn import authenticate
from server.config import Settings, check_production, get_settings
from server.db import create_engine
from server.events import OutboxDispatcher, dispatching_sessions
from server.http import (
    BodyTooLarge,
    GraphQLOverHTTP,
    declared_length,
    limited_receive,
    payload_too_large,
)
from server.permissions import RoleMap
from server.plugins import PluginRuntime, load_plugins


class GraphQLApp(GraphQLOverHTTP, GraphQL[Context, None]):
    """Strawberry's ASGI handler with shopgraph's typed context (GraphQL-over-HTTP media
    types and status codes from :class:`server.http.GraphQLOverHTTP`)."""

    def __init__(self, schema: strawberry.Schema, state: AppState) -> None:
        # Production serves no IDE: GET /graphql for text/html is a 404 there.
        ide = state.settings.graphiql and state.settings.env != "production"
        super().__init__(schema, graphql_ide="graphiql" if ide else None)
        self.state = state

    def decode_json(self, data: str | bytes) -> object:
        return json_codec.loads(data)

    def encode_json(self, data: object) -> str:
        return json_codec.dumps(data)

    async def get_context(self, request: Request, response: Response | None = None) -> Context:  # type: ignore[override]
        session = request.scope["shopgraph.session"]
        db = Database(session)
        return Context(
            request=request,
            response=response,
            settings=self.state.settings,
            db=db,
            viewer=request.scope.get("shopgraph.viewer", ANONYMOUS),
            loaders=Loaders(db),
            plugins=self.state.plugins,
        )


class AppState:
    """What one app holds for its lifetime: settings, engine, plugin set, schema."""

    def __init__(self, settings: Settings, plugins: PluginRuntime) -> None:
        self.settings = settings
        self.plugins = plugins
        self.engine = create_engine(
            settings.database_url,
            echo=settings.echo_sql,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        # Commits that write outbox events wake the dispatcher: events go out right after.
        self.sessions = dispatching_sessions(self.engine, lambda: self.dispatcher.notify())
        self.dispatcher = OutboxDispatcher(self.sessions, plugins)
        self.schema = build_schema(plugins, settings)


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class GraphQLEndpoint:
    """Authenticates the request and gives it one database session for its whole life."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.graphql = GraphQLApp(state.schema, state)
        self.roles = RoleMap.build(state.settings, state.plugins.permissions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                scope["shopgraph.viewer"] = await self._viewer(scope)
            except InvalidToken as exc:
                await _unauthorized(f"invalid or expired token: {exc}")(scope, receive, send)
                return
            # Refused before anything is read or parsed.
            limit = self.state.settings.max_body_bytes
            length = declared_length(scope.get("headers", []))
            if length is not None and length > limit:
                await payload_too_large(limit)(scope, receive, send)
                return
            receive = limited_receive(receive, limit)
        try:
            async with self.state.sessions() as session:
                scope["shopgraph.session"] = session
                await self.graphql(scope, receive, send)
        except BodyTooLarge:
            # Raised while strawberry reads the body, so nothing has been sent yet.
            await payload_too_large(self.state.settings.max_body_bytes)(scope, receive, send)

    async def _viewer(self, scope: Scope) -> Viewer:
        # Access tokens (checked against the revocation list) or API keys (their scopes).
        return await authenticate(
            scope.get("headers", ()), self.state.settings, self.roles, self.state.sessions
        )


def create_app(settings: Settings | None = None, plugins: PluginRuntime | None = None) -> Starlette:
    """Build the app. The plugin manager and the schema are built once, here."""
    settings = settings or get_settings()
    check_production(settings)
    plugins = plugins or load_plugins(settings)
    state = AppState(settings, plugins)
    endpoint = GraphQLEndpoint(state)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await plugins.call("startup", app=app)
        # Delivers what a previous process committed but did not dispatch, then keeps going.
        await state.dispatcher.start()
        try:
            yield
        finally:
            await state.dispatcher.stop()
            await plugins.call("shutdown", app=app)
            await state.engine.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.shopgraph = state
    return app


def tune_process() -> None:
    """Settings for a serving process, once start-up is done: move what start-up built (schema,
    plugin manager, mappers: ~10^5 objects that live as long as the process) out of the cyclic
    garbage collector's sight, so that its collections, which every request's allocations
    trigger, stop rescanning them."""
    gc.collect()
    gc.freeze()


def asgi_app() -> Any:
    """Factory for ``uvicorn --factory server.app:asgi_app`` (one call per worker process)."""
    app = create_app()
    tune_process()
    return app
