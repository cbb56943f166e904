"""GraphQL over HTTP: content negotiation, status codes and the request body limit.

Follows the GraphQL-over-HTTP specification. A client that accepts
``application/graphql-response+json`` gets that media type, and a *request error* (the
document did not parse or validate, variables could not be coerced, the query was too costly
or throttled: the response has no ``data``) is a 4xx: 400, or 429 with ``Retry-After`` when
throttled. A client that accepts only ``application/json`` (or anything, or says nothing)
gets ``application/json`` and 200 for every well-formed request, as the spec requires for
that legacy media type.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry import UNSET
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from server import json_codec
from server.throttle import THROTTLED

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
_STATUS = "shopgraph.http_status"
_RETRY_AFTER = "shopgraph.retry_after"


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def response_media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` when the client prefers (or only accepts) it,
    else ``application/json`` (also for ``*/*`` and a missing Accept header)."""
    best, best_q = APPLICATION_JSON, -1.0
    for item in (accept or "").split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        q = _quality(params)
        if q <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON and q > best_q:
            best, best_q = GRAPHQL_RESPONSE_JSON, q
        elif media in (APPLICATION_JSON, "application/*", "*/*") and q > best_q:
            # On a tie the earlier, more specific entry wins: `>` keeps it.
            best, best_q = APPLICATION_JSON, q
    return best


def _is_request_error(result: ExecutionResult) -> bool:
    """No data because the request never executed (field errors always carry a path)."""
    return (
        result.data is None and bool(result.errors) and all(not e.path for e in result.errors or ())
    )


def _code(error: GraphQLError) -> Any:
    return (error.extensions or {}).get("code")


class GraphQLOverHTTP:
    """Mixed into strawberry's ASGI view: media type and status code per the spec."""

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        body: GraphQLHTTPResponse = await super().process_result(request, result)  # type: ignore[misc]  # a mixin: super() is strawberry's view, which the mixin does not name
        if response_media_type(request.headers.get("accept")) != GRAPHQL_RESPONSE_JSON:
            throttled = next((e for e in result.errors or () if _code(e) == THROTTLED), None)
            if throttled is not None:
                request.scope[_RETRY_AFTER] = (throttled.extensions or {}).get("retryAfter")
            return body
        if _is_request_error(result):
            body.pop("data", None)
            throttled = next((e for e in result.errors or () if _code(e) == THROTTLED), None)
            if throttled is not None:
                request.scope[_STATUS] = 429
                request.scope[_RETRY_AFTER] = (throttled.extensions or {}).get("retryAfter")
            else:
                request.scope[_STATUS] = 400
        return body

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        response = await super().run(request, context, root_value)  # type: ignore[misc]  # a mixin: super() is strawberry's view, which the mixin does not name
        if not isinstance(response, Response) or not isinstance(request, Request):
            return response
        if response.media_type == APPLICATION_JSON:
            if response_media_type(request.headers.get("accept")) == GRAPHQL_RESPONSE_JSON:
                response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            status = request.scope.get(_STATUS)
            if status is not None:
                response.status_code = status
            retry_after = request.scope.get(_RETRY_AFTER)
            if retry_after is not None:
                response.headers["retry-after"] = str(retry_after)
        return response


# ---- body size -----------------------------------------------------------------------------

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


class BodyTooLarge(Exception):
    """The request body grew past the configured limit while it was being read."""


# After a 413 the rest of the refused body is still read and thrown away, up to this many times
# the limit and until the client pauses this long: closing a connection with unread data
# resets it, and a client that writes its whole body before reading would then never see the
# answer. (What web servers call a lingering close.)
DRAIN_FACTOR = 8
DRAIN_IDLE_SECONDS = 1.0


def _too_large_body(limit: int) -> bytes:
    error = {
        "message": f"request body is larger than {limit} bytes",
        "extensions": {"code": PAYLOAD_TOO_LARGE},
    }
    return json_codec.dumps({"errors": [error]}).encode()


async def refuse_too_large(limit: int, receive: Receive, send: Send) -> None:
    """Answer 413, then drain what the client still sends before the connection closes.

    The whole answer goes out first (its length is declared), so a client that reads as it
    writes has it at once; the response ends, and the connection closes, after the drain.
    """
    body = _too_large_body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": True})
    budget, seen = limit * DRAIN_FACTOR, 0
    while seen <= budget:
        try:
            message = await asyncio.wait_for(receive(), DRAIN_IDLE_SECONDS)
        except TimeoutError:
            break  # the client waits for us: nothing more is coming
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that fails once more than ``limit`` body bytes arrived: a chunked upload
    with no Content-Length is stopped as soon as it passes the limit, never buffered whole."""
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    return wrapped


class BodyLimit:
    """ASGI wrapper that bounds request bodies: 413 before a body that declares a larger size
    is read, and as soon as one without a declared size grows past ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope.get("headers", []))
        if length is not None and length > self.limit:
            await refuse_too_large(self.limit, receive, send)
            return
        started = False

        async def send_noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive(receive, self.limit), send_noting)
        except BodyTooLarge:
            if started:
                raise
            await refuse_too_large(self.limit, receive, send)
