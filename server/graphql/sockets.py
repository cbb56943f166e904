"""GraphQL subscriptions over WebSocket (graphql-transport-ws): who the socket acts as, a
database session per update, and the live updates a subscription resolver follows.

A socket may stay open for hours: it holds no session. Each subscription operation gets an
:class:`OperationScope`; its resolver reads through a short session opened for the first
answer and for every update, and closed before it waits again (:func:`live_updates`), so no
transaction stays open between updates. The socket's context routes ``db`` and ``loaders``
to the running operation's scope (:class:`ScopedDatabase`, :class:`ScopedLoaders`), since
strawberry gives every operation of a socket the same context.

Only subscriptions are served here: queries and mutations go over HTTP, where they are
audited, charged and committed one request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from graphql.error import GraphQLSyntaxError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.base import get_object_definition
from strawberry.types.graphql import OperationType as StrawberryOperationType

from server.auth import InvalidToken, Viewer
from server.authn import authenticate
from server.config import Settings
from server.graphql.context import Context, Database, Info
from server.graphql.ids import parse_node_id
from server.graphql.limits import refuse
from server.graphql.loaders import Loaders
from server.graphql.node import ModelNode
from server.permissions import RoleMap

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

log = logging.getLogger("shopgraph.live")
ModelNodeT = TypeVar("ModelNodeT", bound=ModelNode)

# A credential longer than this in connection_init is refused without being read.
MAX_CREDENTIAL_LENGTH = 4096
OVER_HTTP = "Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql."
ONLY_SUBSCRIPTIONS = (
    "Only subscriptions are served over WebSocket; send queries and mutations over HTTP."
)


class OperationScope:
    """The database session and loaders of one subscription operation's current answer."""

    def __init__(self, sessions: Callable[[], AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._db: Database | None = None
        self._loaders: Loaders | None = None

    def _open(self) -> None:
        self._session = self._sessions()
        self._db = Database(self._session)
        self._loaders = Loaders(self._db)

    @property
    def db(self) -> Database:
        if self._db is None:
            self._open()
        assert self._db is not None
        return self._db

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._open()
        assert self._loaders is not None
        return self._loaders

    async def release(self) -> None:
        """End the current answer's session: its transaction ends, its connection goes back
        to the pool, and the next read opens a new session with empty loaders."""
        session, db = self._session, self._db
        self._session = self._db = self._loaders = None
        if session is not None and db is not None:
            # A field still ending its statement lets go first (see GraphQLEndpoint._execute).
            async with db.lock:
                pass
            await session.close()


_SCOPE: contextvars.ContextVar[OperationScope | None] = contextvars.ContextVar(
    "shopgraph_operation_scope", default=None
)


def _scope() -> OperationScope:
    scope = _SCOPE.get()
    if scope is None:
        raise RuntimeError("no subscription operation is running in this task")
    return scope


class ScopedDatabase(Database):
    """The socket's ``context.db``: the running operation's current session."""

    def __init__(self) -> None:  # no session of its own
        pass

    @property
    def session(self) -> AsyncSession:  # type: ignore[override]  # read-only: the operation's
        return _scope().db.session

    @property
    def lock(self) -> asyncio.Lock:  # type: ignore[override]  # read-only: the operation's
        return _scope().db.lock


class ScopedLoaders(Loaders):
    """The socket's ``context.loaders``: the running operation's current loaders."""

    def __init__(self) -> None:
        pass

    def get(self, loader_cls: Any) -> Any:
        return _scope().loaders.get(loader_cls)

    def clear(self) -> None:
        _scope().loaders.clear()


def _is_subscription(query: object, operation_name: object, max_tokens: int) -> bool | None:
    """Whether the operation is a subscription; None when the document does not parse within
    ``max_tokens`` (strawberry then answers as for any other syntax error)."""
    if not isinstance(query, str):
        return None
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError:
        return None
    name = operation_name if isinstance(operation_name, str) else None
    operation = get_operation_ast(document, name)
    if operation is None:
        return None
    return operation.operation is OperationType.SUBSCRIPTION


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """strawberry's graphql-transport-ws handler, with a scope per subscription operation."""

    sessions: async_sessionmaker[AsyncSession]
    max_tokens: int

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        kind = _is_subscription(operation.query, operation.operation_name, self.max_tokens)
        if kind is False:
            await operation.send_operation_message(
                {
                    "id": operation.id,
                    "type": "error",
                    "payload": [GraphQLError(ONLY_SUBSCRIPTIONS).formatted],
                }
            )
            return
        scope = OperationScope(self.sessions)
        # The operation runs in a task of its own: the variable is this operation's.
        _SCOPE.set(scope)
        try:
            await super().run_operation(operation)
        finally:
            await scope.release()


def socket_handler(
    sessions: async_sessionmaker[AsyncSession], max_tokens: int
) -> type[TransportWSHandler]:
    """The handler class of an app (its session factory and token limit)."""
    attributes = {"sessions": sessions, "max_tokens": max_tokens}
    return type("AppTransportWSHandler", (TransportWSHandler,), attributes)


def _credential_headers(
    params: Mapping[str, object] | None, handshake: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The credential of connection_init's payload, as HTTP headers; else the handshake's."""
    found: list[tuple[bytes, bytes]] = []
    for key, value in (params or {}).items():
        name = key.lower()
        if name not in ("authorization", "x-api-key"):
            continue
        if not isinstance(value, str) or len(value) > MAX_CREDENTIAL_LENGTH:
            raise InvalidToken(f"connection_init's {key} is not a short string")
        try:
            found.append((name.encode(), value.encode("latin-1")))
        except UnicodeEncodeError as exc:
            raise InvalidToken(f"connection_init's {key} is not a token") from exc
    if found:
        return found
    return [(k, v) for k, v in handshake if k in (b"authorization", b"x-api-key")]


async def connect(
    context: Context,
    settings: Settings,
    roles: RoleMap,
    sessions: Callable[[], AsyncSession],
) -> None:
    """Authenticate a socket from connection_init's payload (``{"Authorization": "Bearer
    <token>"}`` or ``{"X-Api-Key": "sg_…"}``, as the HTTP headers are), or else from the
    handshake's headers. A bad credential closes the socket with 4403."""
    params = context.connection_params
    handshake = context.request.scope.get("headers", ())
    try:
        viewer: Viewer = await authenticate(
            _credential_headers(params, handshake), settings, roles, sessions
        )
    except InvalidToken as exc:
        log.debug("socket token refused: %s", exc)
        raise ConnectionRejectionError from exc
    context.viewer = viewer


async def live_updates(info: Info, topic: str) -> AsyncGenerator[Mapping[str, Any], None]:
    """What a subscription resolver follows: yields at once (``{}``: answer with the current
    state), then after every committed ``publish_live(session, topic, payload)`` (its
    ``payload``, or ``{"resync": True}`` when updates were missed or merged). At every yield
    ``info.context`` reads through a fresh short session; between yields none is open."""
    hub = info.context.live
    if hub is None:
        raise RuntimeError("live updates need the app's live hub (subscriptions over WebSocket)")
    scope = _scope()
    # Subscribed before the first read: a change committed after that read is not missed.
    async with hub.subscribe(topic) as queue:
        yield {}
        await scope.release()
        while True:
            message = await queue.get()
            yield message
            await scope.release()


class NotFound(GraphQLError):
    """What a subscription to a missing or hidden object ends with (code NOT_FOUND)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"No {type_name} with that id.", extensions={"code": "NOT_FOUND"})


async def follow_node(
    info: Info, node: type[ModelNodeT], global_id: object, topic_prefix: str
) -> AsyncIterator[ModelNodeT]:
    """A ``thing(id:)`` subscription: the node at once, then afresh after every update of
    topic ``<topic_prefix>:<pk>``. A malformed, other-type, missing or hidden id ends the stream
    with a NOT_FOUND error, as does losing sight of it later: the same answer for all."""
    type_name = get_object_definition(node, strict=True).name
    pk = parse_node_id(global_id, type_name)
    if pk is None:
        raise NotFound(type_name)
    # Closed here, not whenever the collector gets to it: the subscription ends with it.
    async with contextlib.aclosing(live_updates(info, f"{topic_prefix}:{pk}")) as updates:
        async for _ in updates:
            found = await node.load(info, pk)
            if found is None:
                raise NotFound(type_name)
            yield found


class SubscriptionsOverWebSocket(SchemaExtension):
    """Refuses a subscription sent over HTTP (strawberry would run its root field once and
    answer null): subscriptions are served over WebSocket only."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        scope = getattr(request, "scope", None) or {}
        if (
            context.operation_type is StrawberryOperationType.SUBSCRIPTION
            and scope.get("type") == "http"
        ):
            refuse(context, [GraphQLError(OVER_HTTP, extensions={"code": "BAD_USER_INPUT"})])
        yield
