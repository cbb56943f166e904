"""Global ids: the one way an id a client sends becomes a row's primary key.

A client may send anything where an ``ID`` is expected. Whatever does not name a row of the
expected type — malformed base64, another type's id, a key that is not a canonical positive
integer, a key outside the id columns' range — is answered exactly like the id of a row that
does not exist: ``null`` from a query, ``NotFoundError`` from a mutation, nothing from a
filter. Such a value never reaches the database, where an out-of-range number is a driver
error rather than "no row".

Every id column is ``INTEGER`` (int4 on PostgreSQL, 64 bits on SQLite): the narrower int4
range is the valid one on both backends, so a request is answered the same on either.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.relay import GlobalIDValueError

from server.graphql.context import Info
from server.services.errors import NotFound

ID_MIN = 1
ID_MAX = 2**31 - 1
# Row ids are issued as str(int): ASCII digits without sign, spaces or leading zeros.
_CANONICAL_KEY = re.compile(r"[1-9][0-9]{0,9}")
# No row has it (ids start at 1): what a filter on an id that names no row compares with.
NO_ROW = 0


def parse_pk(raw: object) -> int | None:
    """The primary key that the node part of a global id names, or None if it names none."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if ID_MIN <= raw <= ID_MAX else None
    if not isinstance(raw, str) or _CANONICAL_KEY.fullmatch(raw) is None:
        return None
    pk = int(raw)
    return pk if pk <= ID_MAX else None


def decode_global_id(value: object) -> relay.GlobalID | None:
    """The (type name, node part) a client's id holds, or None when it is not a global id."""
    if isinstance(value, relay.GlobalID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return relay.GlobalID.from_id(value)
    except GlobalIDValueError:
        return None


def parse_node_id(value: object, type_name: str) -> int | None:
    """The primary key of the ``type_name`` row that ``value`` names, or None if it names none."""
    global_id = decode_global_id(value)
    if global_id is None or global_id.type_name != type_name:
        return None
    return parse_pk(global_id.node_id)


def require_node_id(value: object, type_name: str, field: str) -> int:
    """The primary key of a mutation input's id; a typed NotFound for ``field`` otherwise.

    Call it inside the mutation's ``run_mutation`` work, so the failure is the union's
    ``NotFoundError``, as for an id whose row does not exist.
    """
    pk = parse_node_id(value, type_name)
    if pk is None:
        raise NotFound(_kind(type_name), value, field=field)
    return pk


def optional_node_id(value: object | None, type_name: str, field: str) -> int | None:
    """:func:`require_node_id` for an optional input: None when the id is not given."""
    return None if value is None else require_node_id(value, type_name, field)


def filter_node_id(value: object | None, type_name: str) -> int | None:
    """A list filter's id: None when the filter is not given, else the key it compares with
    (``NO_ROW`` when the id names no row, so the filter finds nothing)."""
    if value is None:
        return None
    pk = parse_node_id(value, type_name)
    return NO_ROW if pk is None else pk


def _kind(type_name: str) -> str:
    # "StockLevel" -> "stock level": how services name what they did not find.
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type_name).lower()


async def resolve_node(info: Info, value: object) -> relay.Node | None:
    """The object any global id names, or None when it names none the viewer may see."""
    global_id = decode_global_id(value)
    if global_id is None:
        return None
    pk = parse_pk(global_id.node_id)
    if pk is None:
        return None
    try:
        node_type = global_id.resolve_type(info)
    except GlobalIDValueError:
        return None  # not a Node type of this schema
    found = node_type.resolve_node(str(pk), info=info, required=False)
    return await found if inspect.isawaitable(found) else found


def node_queries() -> type[Any]:
    """The root ``node(id:)`` field, answering every id that names no visible object with null."""

    @strawberry.type
    class NodeQueries:
        @strawberry.field(description="Fetch any object by its global id.")
        async def node(
            self,
            info: Info,
            id: Annotated[strawberry.ID, strawberry.argument(description="The ID of the object.")],
        ) -> relay.Node | None:
            return await resolve_node(info, id)

    return NodeQueries
