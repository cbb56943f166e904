"""The ASGI application: Starlette routes, the GraphQL endpoint, and their lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import strawberry
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from schema.cacheable import CORE_FIELDS
from schema.core import shared_schema
from server import admin, graphiql, json_codec
from server.auth import ANONYMOUS, InvalidToken, Viewer
from server.authn import authenticate
from server.config import Settings, check_production, get_settings
from server.db import create_engine
from server.events import OutboxDispatcher, dispatching_sessions
from server.graphql import sockets
from server.graphql.context import Context, Database
from server.graphql.limits import cost_buckets
from server.graphql.loaders import Loaders
from server.graphql.response_cache import CachedEndpoint, InvalidationListener
from server.graphql.sockets import ScopedDatabase, ScopedLoaders
from server.graphql.structure import graphql_structure
from server.http import (
    BodyTooLarge,
    GraphQLOverHTTP,
    declared_length,
    limited_receive,
    refuse_too_large,
)
from server.jobs import BackgroundJobs, JobRunner
from server.live import LiveHub, LiveListener
from server.logs import RequestIds, configure_logging
from server.metrics import HttpMetrics
from server.migrate import check_startup
from server.operator_routes import count_pool_connections, operator_routes
from server.payment_routes import payment_routes
from server.permissions import RoleMap
from server.pg_listen import listen_dsn
from server.plugin_routes import metric_labels, plugin_mounts
from server.plugins import PluginRuntime, load_plugins


class GraphQLApp(GraphQLOverHTTP, GraphQL[Context, None]):
    """Strawberry's ASGI handler with shopgraph's typed context (GraphQL-over-HTTP media
    types and status codes from :class:`server.http.GraphQLOverHTTP`)."""

    def __init__(self, schema: strawberry.Schema, state: AppState) -> None:
        # Production serves no IDE: GET /graphql for text/html is a 404 there.
        ide = state.settings.graphiql and state.settings.env != "production"
        super().__init__(
            schema,
            graphql_ide="graphiql" if ide else None,
            # The current protocol only: its connection_init carries the credential.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=state.settings.max_subscriptions_per_connection,
            # No credential is ambient (no cookies; the token comes in connection_init, and a
            # browser's cached Basic credentials are refused): a page of any origin can act
            # only as the token it holds, so shops' web apps on other origins may connect.
            allowed_origins=("*",),
        )
        self.state = state
        self.graphql_transport_ws_handler_class = sockets.socket_handler(
            state.sessions, state.settings.max_tokens
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        # Our own page with assets served from the package: no CDN (server/graphiql.py).
        return graphiql.page(request)

    def decode_json(self, data: str | bytes) -> object:
        return json_codec.loads(data)

    def encode_json(self, data: object) -> str:
        return json_codec.dumps(data)

    async def get_context(self, request: Request, response: Response | None = None) -> Context:  # type: ignore[override]  # strawberry's is typed Request | WebSocket; the context reads only what both have (scope), typed as Request
        if request.scope["type"] == "websocket":
            # A socket holds no session: each subscription update reads through its own.
            socket_db = ScopedDatabase()
            return Context(
                request=request,
                response=None,
                settings=self.state.settings,
                db=socket_db,
                viewer=ANONYMOUS,
                loaders=ScopedLoaders(),
                plugins=self.state.plugins,
                cost_buckets=self.state.buckets,
                live=self.state.live,
            )
        db: Database = request.scope["shopgraph.db"]
        return Context(
            request=request,
            response=response,
            settings=self.state.settings,
            db=db,
            viewer=request.scope.get("shopgraph.viewer", ANONYMOUS),
            loaders=Loaders(db),
            plugins=self.state.plugins,
            cost_buckets=self.state.buckets,
            live=self.state.live,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType:
        await sockets.connect(context, self.state.settings, self.state.roles, self.state.sessions)
        return UNSET


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
        # Commits that write outbox events wake the dispatcher (events go out right after) and
        # drop the cached answers they change; on SQLite they also hand their live updates to
        # this process's subscribers (PostgreSQL's NOTIFY reaches every process's listener).
        self.live = LiveHub()
        self.sessions = dispatching_sessions(self.engine, self._committed, self._published)
        self.dispatcher = OutboxDispatcher(self.sessions, plugins)
        self.roles = RoleMap.build(settings, plugins.permissions)
        # The plugins' periodic jobs, run in the background while serving (SHOPGRAPH_RUN_JOBS).
        self.jobs = BackgroundJobs(
            JobRunner(self.sessions, settings, plugins), settings.jobs_poll_seconds
        )
        count_pool_connections(self.engine)
        buckets = self.buckets = cost_buckets(settings, self.roles.roles)
        # The buckets reach the schema's extensions through each request's context, so that
        # an app built again in the process (tests build hundreds) reuses the schema and its
        # SDL, printed once: the structure and the cache's key both come from it.
        self.schema, sdl = shared_schema(plugins, settings)
        # SQLite cannot tell other processes of a commit: one process only, or no cache.
        shared = settings.is_sqlite and settings.workers > 1
        self.cached = CachedEndpoint(
            settings,
            CORE_FIELDS,
            plugins,
            graphql_structure(self.schema, sdl),
            sdl,
            # It answers anonymous callers only: everyone's buckets.
            buckets.default,
            enabled=settings.response_cache and not shared,
        )
        self.cache = self.cached.cache
        self.cache_listener = (
            InvalidationListener(listen_dsn(settings.database_url), self.cache)
            if self.cached.enabled and not settings.is_sqlite
            else None
        )

        if settings.is_sqlite and settings.workers > 1:
            logging.getLogger("shopgraph.live").warning(
                "SQLite with %d workers: a subscriber hears only of the changes made through "
                "its own process (PostgreSQL tells every process)",
                settings.workers,
            )
        self.live_listener = (
            None
            if settings.is_sqlite
            else LiveListener(listen_dsn(settings.database_url), self.live)
        )

    def _committed(self, events: frozenset[str]) -> None:
        self.cache.invalidate(events)
        self.dispatcher.notify()

    def _published(self, messages: list[bytes]) -> None:
        # One delivery per distinct message of a transaction, as PostgreSQL's NOTIFY does.
        for message in dict.fromkeys(messages):
            self.live.deliver(message)


log = logging.getLogger("shopgraph.auth")
# How long start-up waits for the live-update channel's LISTEN connection.
LISTEN_START_SECONDS = 10.0
TOKEN_REFUSED = "The access token or API key is invalid, expired or revoked."


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


# What the database layer raises when the database cannot be reached or answer.
DATABASE_DOWN = (SQLAlchemyError, OSError, TimeoutError)
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


def _unavailable() -> JSONResponse:
    message = "The service is briefly unavailable; nothing was done. Try again shortly."
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": SERVICE_UNAVAILABLE}}]},
        status_code=503,
        headers={"Retry-After": "1"},
    )


class GraphQLEndpoint:
    """Authenticates the request and gives it one database session for its whole life."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.graphql = GraphQLApp(state.schema, state)
        self.roles = state.roles

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_receive = receive
        if scope["type"] == "http":
            try:
                scope["shopgraph.viewer"] = await self._viewer(scope)
            except InvalidToken as exc:
                # Which check failed (signature, expiry, revocation) is for the log, not the
                # client: one answer for all of them.
                log.debug("token refused: %s", exc)
                await _unauthorized(TOKEN_REFUSED)(scope, receive, send)
                return
            except DATABASE_DOWN as exc:
                # The revocation list or the API keys could not be read: say so in GraphQL's
                # terms, the request was not run and may be retried.
                log.warning("database unavailable while authenticating: %s", exc)
                await _unavailable()(scope, receive, send)
                return
            # Refused before anything is parsed.
            limit = self.state.settings.max_body_bytes
            length = declared_length(scope.get("headers", []))
            if length is not None and length > limit:
                await refuse_too_large(limit, receive, send)
                return
            receive = limited_receive(receive, limit)
        answered = False

        async def send_noting(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            if scope["type"] == "http":
                viewer = scope["shopgraph.viewer"]
                await self.state.cached(scope, receive, send_noting, viewer, self._execute)
            else:
                # A WebSocket: subscriptions open a session per update (server/graphql/sockets.py).
                await self.graphql(scope, receive, send)
        except BodyTooLarge:
            # Raised while the body is read (by the cache or strawberry): nothing was sent yet.
            await refuse_too_large(self.state.settings.max_body_bytes, body_receive, send)
        except DATABASE_DOWN as exc:
            # Ending the request's transaction on a connection the database dropped: the
            # answer is out already (and said what failed); the connection is discarded.
            if answered:
                log.warning("database connection lost after answering: %s", exc)
            elif scope["type"] == "websocket":
                # A socket has no HTTP answer to give: it is closed, and the client connects
                # again.
                log.warning("database unavailable for a WebSocket: %s", exc)
            else:
                log.warning("database unavailable: %s", exc)
                await _unavailable()(scope, receive, send)

    async def _execute(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.state.sessions() as session:
            db = scope["shopgraph.db"] = Database(session)
            try:
                await self.graphql(scope, receive, send)
            finally:
                # A field cancelled when a sibling failed may still be ending its statement:
                # the session is closed only once that has let go of it (one asyncpg
                # connection runs one operation at a time).
                async with db.lock:
                    pass

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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Refuses to serve when an enabled plugin's migration branch is not at its head.
        await check_startup(state.engine, plugins)
        await plugins.call("startup", app=app)
        # Delivers what a previous process committed but did not dispatch, then keeps going.
        await state.dispatcher.start()
        if state.cache_listener is not None:
            await state.cache_listener.start()
        if state.live_listener is not None:
            await state.live_listener.start()
            # Serving before it listens would let the first subscribers miss changes (and
            # then get a resync when it does); it keeps trying in the background past this.
            if not await state.live_listener.wait_listening(LISTEN_START_SECONDS):
                logging.getLogger("shopgraph.live").warning(
                    "serving before the live-update channel is listened to"
                )
        if settings.run_jobs:
            await state.jobs.start()
        try:
            yield
        finally:
            # A job that is running is cancelled, and given back, before the rest stops.
            await state.jobs.stop()
            if state.cache_listener is not None:
                await state.cache_listener.stop()
            if state.live_listener is not None:
                await state.live_listener.stop()
            await state.dispatcher.stop()
            await plugins.call("shutdown", app=app)
            await state.engine.dispose()

    routes: list[BaseRoute] = [
        *operator_routes(state),
        *payment_routes(state),
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", endpoint),
    ]
    if endpoint.graphql.graphql_ide:
        routes.append(graphiql.assets_mount())
    if settings.admin_dashboard_enabled:
        routes.extend(admin.routes())
    # Plugins' routes (webhooks), each plugin's under /plugins/<name>.
    mounts = plugin_mounts(plugins, state)
    labels = (*(r.path for r in routes if hasattr(r, "path")), *metric_labels(mounts))
    routes.extend(mounts)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIds),
            Middleware(HttpMetrics, routes=labels),
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
    settings = get_settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    app = create_app(settings)
    tune_process()
    return app
