"""JSON for the wire and for JSON columns: orjson, and the standard library for what orjson
refuses.

orjson encodes and decodes several times faster than :mod:`json`, and a GraphQL response is
one JSON document per request (a product page's JSON columns are forty more). It refuses a few
things :mod:`json` accepts: integers beyond 64 bits, ``NaN``/``Infinity`` literals, objects it
does not know (``Decimal``), non-string keys. Those inputs go to :mod:`json`, so they encode
and decode as they did before. Two differences remain: a float NaN or infinity encodes as
``null`` (:mod:`json` writes ``NaN``, which is not JSON), and non-ASCII text is written as
UTF-8 rather than as ``\\u`` escapes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: str | bytes) -> Any:
    """Decode ``data``; invalid JSON raises :class:`json.JSONDecodeError` (as ``json.loads``),
    and so does a document nested too deeply for either decoder (orjson stops at 1024 levels;
    the standard library would exhaust the interpreter's stack)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            text = data.decode(errors="replace") if isinstance(data, bytes) else data
            raise json.JSONDecodeError("the document is nested too deeply", text, 0) from None


def dumps(data: Any) -> str:
    """Encode ``data`` compactly, as text (a WebSocket message must be a text frame)."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
