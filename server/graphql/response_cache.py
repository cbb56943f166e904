"""The response cache of public catalogue reads.

**What is cached.** The ``data`` of a GraphQL *query* from an anonymous viewer (no credentials)
that selects only fields declared public: the core's (``schema.cacheable``) and the plugins'
(the ``cacheable_fields`` hook). Each declaration names the outbox events whose commit changes
the field. Which fields a document selects, and so which events concern it, is worked out once
per (document, operation name) with graphql-core's ``TypeInfo`` on a schema built from the
served schema's SDL. Only answers without errors are stored.

**Key.** The normalised document (parsed and printed again: whitespace and comments do not
count), the operation name, the variables (canonical JSON) and a fingerprint of everything else
that shapes an answer: the schema, the shop's currency, the enabled plugins and their versions,
the production mode.

**Freshness.** Every event name has a generation counter. An entry remembers the generations of
its events as they were when its execution *started*; it is stored only if none moved while it
ran (a write committing meanwhile may or may not be in the answer) and served only while none
has moved. A commit that wrote events bumps their generations right after it, in the process
that committed (``server.events.dispatching_sessions``); other processes hear of it through
PostgreSQL ``LISTEN``/``NOTIFY`` (``server.services.outbox.emit`` notifies inside the
transaction, so the notification exists only if the write committed). While that channel is
down every entry is dropped and nothing is cached until it listens again. SQLite has no such
channel: with several worker processes on SQLite the cache is off. Entries also expire after
``response_cache_ttl_seconds``, whatever happens.

**Cost.** A hit is charged to the caller's own query-cost bucket (the stored answer's requested
and actual cost), and its ``extensions.cost`` reports the caller's own budget; a caller whose
bucket cannot pay is answered by the normal path (which throttles it).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    parse,
    print_ast,
    visit,
)
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from server.auth import Viewer, ViewerKind
from server.config import Settings
from server.graphql.limits import client_key
from server.http import GRAPHQL_RESPONSE_JSON, response_media_type
from server.metrics import RESPONSE_CACHE, observe_operation
from server.pg_listen import ChannelListener
from server.plugins import PluginError, PluginRuntime
from server.services.outbox import NOTIFY_CHANNEL
from server.throttle import LeakyBucket

log = logging.getLogger("shopgraph.cache")

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
CORE = "core"
Execute = Callable[[Scope, Receive, Send], Awaitable[None]]


# ---- what may be cached --------------------------------------------------------------------


@dataclass(frozen=True)
class CoreFields:
    """The core's public fields, ``"Type.field"`` -> the events that change them; ``prices``
    apart, since they stay public only while every price-adjusting plugin declares them too."""

    public: Mapping[str, Sequence[str]]
    prices: Mapping[str, Sequence[str]]


def declared_fields(core: CoreFields, plugins: PluginRuntime) -> dict[str, frozenset[str]]:
    """Every public field, ``"Type.field"`` -> the events that change it: the core's and the
    enabled plugins' (a field declared twice is changed by the events of both).

    The core's prices stay public only if every plugin adjusting or bounding prices declares
    ``Product.price`` too: an adjustment may depend on data and time the core knows nothing of.
    """
    declarations: list[tuple[str, Mapping[str, Sequence[str]]]] = [
        (CORE, core.public),
        *plugins.call_sync("cacheable_fields"),
    ]
    by_plugin = dict(declarations)
    adjusters = plugins.implementers("price_adjustments") + plugins.implementers("price_guardrails")
    if all("Product.price" in by_plugin.get(name, {}) for name in adjusters):
        declarations.insert(1, (CORE, core.prices))
    merged: dict[str, set[str]] = {}
    for owner, mapping in declarations:
        if not isinstance(mapping, Mapping):
            raise PluginError(f"plugin {owner!r}: cacheable_fields must return a mapping")
        for coordinate, events in mapping.items():
            if isinstance(events, str) or not all(isinstance(e, str) for e in events):
                raise PluginError(
                    f"plugin {owner!r}: cacheable_fields[{coordinate!r}] must be a list of "
                    "event names"
                )
            merged.setdefault(coordinate, set()).update(events)
    return {coordinate: frozenset(events) for coordinate, events in merged.items()}


def check_declarations(schema: GraphQLSchema, declared: Iterable[str]) -> None:
    """Refuse to start with a declaration naming no field of the schema (a typo would
    otherwise silently leave the field uncached)."""
    for coordinate in declared:
        type_name, _, field_name = coordinate.partition(".")
        tp = schema.get_type(type_name)
        fields = getattr(tp, "fields", None)
        if fields is None or field_name not in fields:
            raise PluginError(f"cacheable_fields names {coordinate!r}, which is not in the schema")


@dataclass(frozen=True, slots=True)
class Analysis:
    """A cacheable operation: its normalised text (and that text's digest, for the keys) and
    the events that change its answer."""

    normalised: str
    digest: bytes
    events: tuple[str, ...]
    # The operation's own name, for the metrics of answers served from the cache.
    name: str | None = None


class _PublicFields(Visitor):
    """Collects the events of every field selected; stops at the first undeclared one."""

    def __init__(self, type_info: TypeInfo, declared: Mapping[str, frozenset[str]]) -> None:
        super().__init__()
        self.type_info = type_info
        self.declared = declared
        self.events: set[str] = set()
        self.public = True

    def enter_field(self, node: FieldNode, *_args: Any) -> Any:
        name = node.name.value
        parent = self.type_info.get_parent_type()
        if name == "__typename":
            return None
        if parent is None or self.type_info.get_field_def() is None:
            self.public = False  # not in the schema: validation will refuse it anyway
            return BREAK
        if name.startswith("__") or parent.name.startswith("__"):
            return None  # introspection: the schema, fixed for the life of the process
        events = self.declared.get(f"{parent.name}.{name}")
        if events is None:
            self.public = False
            return BREAK
        self.events.update(events)
        return None


class Cacheability:
    """Which operations are cacheable, worked out once per (document text, operation name)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        declared: Mapping[str, frozenset[str]],
        *,
        max_tokens: int,
        maxsize: int = 1024,
    ) -> None:
        self.schema = schema
        self.declared = declared
        self.max_tokens = max_tokens
        self.maxsize = maxsize
        self._memo: OrderedDict[tuple[bytes, str | None], Analysis | None] = OrderedDict()

    def analyse(self, query: str, operation_name: str | None) -> Analysis | None:
        """The analysis of the operation, or None when it is not a cacheable query."""
        key = (hashlib.blake2b(query.encode(), digest_size=20).digest(), operation_name)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        found = self._analyse(query, operation_name)
        self._memo[key] = found
        if len(self._memo) > self.maxsize:
            self._memo.popitem(last=False)
        return found

    def _analyse(self, query: str, operation_name: str | None) -> Analysis | None:
        try:
            document = parse(query, no_location=True, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        operation = _operation(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        events: set[str] = set()
        for definition in [operation, *_fragments_used(document, operation)]:
            type_info = TypeInfo(self.schema)
            fields = _PublicFields(type_info, self.declared)
            visit(definition, TypeInfoVisitor(type_info, fields))
            if not fields.public:
                return None
            events |= fields.events
        normalised = print_ast(document)
        return Analysis(
            normalised=normalised,
            digest=hashlib.blake2b(normalised.encode(), digest_size=20).digest(),
            events=tuple(sorted(events)),
            name=operation.name.value if operation.name else None,
        )


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_fragment_spread(self, spread: FragmentSpreadNode, *_args: Any) -> None:
        self.names.append(spread.name.value)


def _fragments_used(
    document: DocumentNode, operation: OperationDefinitionNode
) -> list[FragmentDefinitionNode]:
    """The fragments ``operation`` spreads, directly or through other fragments."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    used: dict[str, FragmentDefinitionNode] = {}
    pending: list[Any] = [operation]
    while pending:
        spreads = _Spreads()
        visit(pending.pop(), spreads)
        for name in spreads.names:
            if name not in used and name in fragments:
                used[name] = fragments[name]
                pending.append(fragments[name])
    return list(used.values())


# ---- the store ------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    data: bytes  # the JSON of the answer's ``data``
    etag: str
    requested: int
    actual: int
    events: tuple[str, ...]
    stamp: tuple[int, ...]
    expires: float

    @property
    def size(self) -> int:
        return len(self.data) + 200


@dataclass
class CacheStats:
    """This cache's counts; each is also a sample of ``shopgraph_response_cache_total`` on
    ``/metrics`` (summed over worker processes)."""

    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    # Answers not stored because a write to what they read committed while they ran.
    races: int = 0
    invalidations: int = 0
    evictions: int = 0

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        RESPONSE_CACHE.labels(outcome).inc()


@dataclass
class ResponseCache:
    """Answers by key, least recently used dropped first, bounded by entries and bytes; per-event
    generation counters decide what is still fresh."""

    max_entries: int
    max_bytes: int
    ttl: float
    clock: Callable[[], float] = time.monotonic
    stats: CacheStats = field(default_factory=CacheStats)
    # False while invalidations from other processes could be missed: nothing is served.
    ready: bool = True
    _entries: OrderedDict[bytes, Entry] = field(default_factory=OrderedDict)
    _bytes: int = 0
    _generations: dict[str, int] = field(default_factory=dict)
    _epoch: int = 0  # moves when every generation does

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def stamp(self, events: Sequence[str]) -> tuple[int, ...]:
        generations = self._generations
        return (self._epoch, *(generations.get(e, 0) for e in events))

    def get(self, key: bytes, events: Sequence[str]) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.stamp != self.stamp(events) or entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> bool:
        """Store ``entry`` unless one of its events moved since its stamp was taken."""
        if entry.stamp != self.stamp(entry.events):
            self.stats.count("races")
            return False
        if not self.ready or entry.size > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        self.stats.count("stores")
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.stats.count("evictions")
        return True

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size

    def invalidate(self, events: Iterable[str]) -> None:
        """Events committed: every answer that read what they change is stale."""
        for name in events:
            self._generations[name] = self._generations.get(name, 0) + 1
            self.stats.count("invalidations")

    def invalidate_all(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._bytes = 0
        self.stats.count("invalidations")


# ---- invalidations from other processes (PostgreSQL) ---------------------------------------


class InvalidationListener(ChannelListener):
    """One dedicated connection per process that ``LISTEN``s for committed events' names.

    When the connection is lost every entry is dropped and the cache is not used until the
    listener is back (reconnecting with backoff): events committed meanwhile are unknown.
    """

    def __init__(self, dsn: str, cache: ResponseCache, **timing: float) -> None:
        # timing: the backoff and health check of ChannelListener.
        super().__init__(dsn, NOTIFY_CHANNEL, "shopgraph-cache-listener", **timing)
        self.cache = cache

    def notified(self, payload: str) -> None:
        self.cache.invalidate((payload,))

    async def start(self) -> None:
        self.cache.ready = False
        await super().start()

    def connected(self) -> None:
        # What committed before this point, while nobody listened, is unknown.
        self.cache.invalidate_all()
        self.cache.ready = True

    def lost(self) -> None:
        self.cache.ready = False
        self.cache.invalidate_all()


# ---- HTTP -------------------------------------------------------------------------------------


def fingerprint(settings: Settings, plugins: PluginRuntime, sdl: str) -> bytes:
    """What besides the request shapes an answer, as a digest for the keys."""
    parts = [
        sdl,
        settings.currency,
        settings.env,
        ",".join(sorted(f"{r.name}={r.version}" for r in plugins.enabled)),
    ]
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class _Caller:
    """What :func:`server.graphql.limits.client_key` reads of a request's context."""

    viewer: Viewer
    request: Any


def _operation_request(
    method: str, scope: Scope, body: bytes | None
) -> tuple[str, dict[str, Any], str | None] | None:
    """(query, variables, operation name) of a GET or JSON POST request, else None."""
    params: Any
    if method == "GET":
        query_params = QueryParams(scope.get("query_string", b"").decode("latin-1"))
        params = dict(query_params)
        raw_variables = params.get("variables")
        if raw_variables:
            try:
                params["variables"] = orjson.loads(raw_variables)
            except orjson.JSONDecodeError:
                return None
    else:
        try:
            params = orjson.loads(body or b"")
        except orjson.JSONDecodeError:
            return None
    if not isinstance(params, dict):
        return None  # a batch, or not an operation at all
    query, variables = params.get("query"), params.get("variables") or {}
    operation_name = params.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, dict):
        return None
    if operation_name is not None and not isinstance(operation_name, str):
        return None
    return query, variables, operation_name


class CachedEndpoint:
    """Answers cacheable queries from the cache before anything else runs; runs the rest through
    ``execute`` (which opens the database session) and says which it was in ``X-Cache``."""

    def __init__(
        self,
        settings: Settings,
        core: CoreFields,
        plugins: PluginRuntime,
        structure: GraphQLSchema,
        sdl: str,
        bucket: LeakyBucket,
        *,
        enabled: bool,
    ) -> None:
        self.enabled = enabled
        self.max_age = settings.response_cache_max_age
        self.bucket = bucket
        self.cache = ResponseCache(
            max_entries=settings.response_cache_max_entries,
            max_bytes=settings.response_cache_max_bytes,
            ttl=settings.response_cache_ttl_seconds,
        )
        declared = declared_fields(core, plugins)
        check_declarations(structure, declared)
        self.cacheability = Cacheability(structure, declared, max_tokens=settings.max_tokens)
        self.fingerprint = fingerprint(settings, plugins, sdl)

    def key(self, analysis: Analysis, variables: dict[str, Any], operation: str | None) -> bytes:
        digest = hashlib.blake2b(self.fingerprint, digest_size=24)
        digest.update(analysis.digest)
        digest.update(b"\0" + (operation or "").encode() + b"\0")
        digest.update(orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
        return digest.digest()

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, viewer: Viewer, execute: Execute
    ) -> None:
        started = time.perf_counter()
        method = scope["method"]
        get = method == "GET"
        if not (self.enabled and self.cache.ready and viewer.kind is ViewerKind.ANONYMOUS):
            await self._bypass(scope, receive, send, execute, get=get)
            return
        headers = Headers(scope=scope)
        body: bytes | None = None
        if method == "POST":
            if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                await self._bypass(scope, receive, send, execute, get=get)
                return
            body = await _read_body(receive)
            receive = _replay(body, receive)
        elif not get:
            await self._bypass(scope, receive, send, execute, get=get)
            return
        found = _operation_request(method, scope, body)
        analysis = None if found is None else self.cacheability.analyse(found[0], found[2])
        if found is None or analysis is None:
            await self._bypass(scope, receive, send, execute, get=get)
            return
        _, variables, operation = found
        key = self.key(analysis, variables, operation)
        entry = self.cache.get(key, analysis.events)
        if entry is not None and await self._hit(scope, send, headers, viewer, entry, get=get):
            self.cache.stats.count("hits")
            observe_operation(analysis.name, "query", "ok", time.perf_counter() - started)
            return
        if entry is not None:  # the caller's budget cannot pay: the normal path throttles
            await self._bypass(scope, receive, send, execute, get=get)
            return
        self.cache.stats.count("misses")
        await self._miss(scope, receive, send, execute, headers, key, analysis, get=get)

    async def _bypass(
        self, scope: Scope, receive: Receive, send: Send, execute: Execute, *, get: bool
    ) -> None:
        self.cache.stats.count("bypasses")
        extra = [(b"x-cache", BYPASS.encode())]
        if get:
            extra.append((b"cache-control", b"private, no-store"))

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await execute(scope, receive, send_marked)

    def _cache_headers(self, etag: str, status: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-cache", status.encode()),
            (b"etag", etag.encode()),
            (b"cache-control", f"public, max-age={self.max_age}".encode()),
        ]

    async def _hit(
        self,
        scope: Scope,
        send: Send,
        headers: Headers,
        viewer: Viewer,
        entry: Entry,
        *,
        get: bool,
    ) -> bool:
        client = client_key(_Caller(viewer, Request(scope)))
        taken, _ = self.bucket.take(client, entry.requested)
        if not taken:
            return False
        status = self.bucket.settle(client, entry.requested, entry.actual)
        if get and _matches(headers.get("if-none-match"), entry.etag):
            await _send(send, 304, self._cache_headers(entry.etag, HIT), b"")
            return True
        cost = {
            "cost": {
                "requestedQueryCost": entry.requested,
                "actualQueryCost": entry.actual,
                "throttleStatus": status.as_json(),
            }
        }
        body = b'{"data":' + entry.data + b',"extensions":' + orjson.dumps(cost) + b"}"
        response_headers = [(b"content-type", _content_type(headers))]
        if get:
            response_headers += self._cache_headers(entry.etag, HIT)
        else:
            response_headers.append((b"x-cache", HIT.encode()))
        await _send(send, 200, response_headers, body)
        return True

    async def _miss(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        execute: Execute,
        headers: Headers,
        key: bytes,
        analysis: Analysis,
        *,
        get: bool,
    ) -> None:
        stamp = self.cache.stamp(analysis.events)
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await execute(scope, receive, capture)
        body = b"".join(chunks)
        status = start.get("status", 500)
        entry = self._entry(status, body, analysis, stamp)
        response_headers = [
            (name, value)
            for name, value in start.get("headers", ())
            if name.lower() not in (b"cache-control", b"etag")
        ]
        if entry is None:
            response_headers.append((b"x-cache", MISS.encode()))
            if get:
                response_headers.append((b"cache-control", b"private, no-store"))
            await _send(send, status, response_headers, body)
            return
        self.cache.put(key, entry)
        if get:
            if _matches(headers.get("if-none-match"), entry.etag):
                await _send(send, 304, self._cache_headers(entry.etag, MISS), b"")
                return
            response_headers += self._cache_headers(entry.etag, MISS)
        else:
            response_headers.append((b"x-cache", MISS.encode()))
        await _send(send, status, response_headers, body)

    def _entry(
        self, status: int, body: bytes, analysis: Analysis, stamp: tuple[int, ...]
    ) -> Entry | None:
        """The entry of a clean answer (data, no errors), else None."""
        if status != 200:
            return None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(answer, dict) or answer.get("errors") or not answer.get("data"):
            return None
        cost = (answer.get("extensions") or {}).get("cost") or {}
        requested, actual = cost.get("requestedQueryCost"), cost.get("actualQueryCost")
        data = orjson.dumps(answer["data"])
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        return Entry(
            data=data,
            # Weak: equal data, but each answer reports its own caller's budget.
            etag=f'W/"{digest}"',
            requested=requested if isinstance(requested, int) else 0,
            actual=actual if isinstance(actual, int) else 0,
            events=analysis.events,
            stamp=stamp,
            expires=self.cache.clock() + self.cache.ttl,
        )


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): the W/ prefix does not count.
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def _content_type(headers: Headers) -> bytes:
    if response_media_type(headers.get("accept")) == GRAPHQL_RESPONSE_JSON:
        return f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8".encode()
    return b"application/json"


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    if status != 304:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands out the already-read body first."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
