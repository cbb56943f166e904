"""The typed per-request context: database access, the viewer, DataLoaders, the plugin set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import strawberry
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from server.auth import Viewer
from server.config import Settings

if TYPE_CHECKING:
    from server.graphql.loaders import Loaders
    from server.live import LiveHub
    from server.plugins import PluginRuntime
    from server.throttle import CostBuckets

P = ParamSpec("P")
R = TypeVar("R")


class Database:
    """The request's session, shared by resolvers that GraphQL runs concurrently.

    One AsyncSession must not be used by two coroutines at once, so every use goes through a
    lock: loaders and root resolvers await ``execute``/``scalars``/``run``.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()

    async def scalars(
        self, stmt: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        async with self.lock:
            return (await self.session.execute(stmt, params)).scalars().all()

    async def rows(
        self, stmt: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        async with self.lock:
            return (await self.session.execute(stmt, params)).all()

    async def core_rows(
        self, stmt: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """The rows of a select of columns (no entities), read on the session's connection:
        within its transaction, without the ORM's result processing."""
        async with self.lock:
            connection = await self.session.connection()
            return (await connection.execute(stmt, params)).all()

    async def scalar(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> Any:
        async with self.lock:
            return (await self.session.execute(stmt, params)).scalar()

    async def run(
        self,
        fn: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        async with self.lock:
            return await fn(self.session, *args, **kwargs)


@dataclass
class Context:
    request: Request
    response: Response | None
    settings: Settings
    db: Database
    viewer: Viewer
    loaders: Loaders
    plugins: PluginRuntime
    # Callbacks to run after the request's transaction commits (event dispatch).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Response keys of the root mutation fields already written to the audit log.
    audited: set[str] = field(default_factory=set)
    # The app's query-cost buckets, charged by the QueryCost extension (the schema may be
    # shared by several apps: server.graphql.assembly.shared_schema).
    cost_buckets: CostBuckets | None = None
    # The process's live-update hub (subscriptions: server.graphql.sockets.live_updates).
    live: LiveHub | None = None
    # A WebSocket's connection_init payload (strawberry sets it; its credential is read once).
    connection_params: dict[str, Any] | None = None

    @property
    def session(self) -> AsyncSession:
        return self.db.session


Info = strawberry.Info[Context, None]
