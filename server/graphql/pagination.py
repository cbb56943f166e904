"""Relay cursor connections with keyset pagination (no OFFSET scans).

A cursor is the sort key of its row (the sort columns plus the id), so the next page is a
``WHERE (k1, id) > (:k1, :id)`` range read on an index, however deep the page.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    select,
    tuple_,
)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

NodeT = TypeVar("NodeT")


class PaginationError(ValueError):
    """Bad pagination arguments; shown to the client as a GraphQL error."""


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    node: NodeT
    _key: strawberry.Private[Sequence[Any]]

    @strawberry.field(description="Where this edge is: pass it as after/before.")
    def cursor(self) -> str:
        # Encoded on demand: most pages are read without asking for every edge's cursor.
        return encode_cursor(self._key)


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(description="All matching items, across pages (one COUNT query).")
    async def total_count(self) -> int:
        return await self._count() if self._count is not None else len(self.edges)

    @strawberry.field(description="The nodes of this page, without edges.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


@strawberry.input(description="Which page of a list (never in the schema: see connections.Paged).")
class Page:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True)
class SortKey:
    """One column of an ordering. The row's id always ends the key, in the same direction."""

    # A SQL expression, or a model's column attribute as written (`Order.placed_at`), which
    # SQLModel types as the column's value.
    column: ColumnElement[Any] | Any
    label: str


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [{"dt": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PaginationError(f"invalid cursor {cursor!r}") from exc
    if not isinstance(values, list) or len(values) != length:
        raise PaginationError(f"cursor {cursor!r} does not belong to this ordering")
    try:
        return [datetime.fromisoformat(v["dt"]) if isinstance(v, dict) else v for v in values]
    except (KeyError, TypeError, ValueError) as exc:
        raise PaginationError(f"invalid cursor {cursor!r}") from exc


_INT4 = range(-(2**31), 2**31)
_INT8 = range(-(2**63), 2**63)


def fits_column(value: Any, column: ColumnElement[Any]) -> bool:
    """Whether a cursor's value can be compared with ``column`` by the database.

    A cursor comes from the client: a forged one must not put a number past the column's
    range, or a string where a number belongs, into the statement (a driver error, not an
    answer). A computed key (a relevance rank) is a finite number.
    """
    if value is None:
        return True
    kind = column.type
    if isinstance(kind, Integer):
        return type(value) is int and value in (_INT8 if isinstance(kind, BigInteger) else _INT4)
    try:
        python_type: Any = kind.python_type
    except NotImplementedError:
        python_type = float
    if python_type in (float, Decimal):
        if type(value) is int:
            return value in _INT8
        return type(value) is float and math.isfinite(value)
    return isinstance(value, python_type) and not (python_type is int and type(value) is bool)


def check_page_args(first: int | None, last: int | None) -> None:
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise PaginationError(f"{name} must be between 0 and {MAX_PAGE_SIZE}")
    if first is not None and last is not None:
        raise PaginationError("pass first or last, not both")


Run = Callable[[Select[Any], Mapping[str, Any]], Awaitable[Sequence[Any]]]
_LIMIT = "page_limit"
# Page statements of the shapes listings declare (see ``paginate``'s shape_key), and count
# statements of their base statements.
_STATEMENTS: dict[Hashable, Select[Any]] = {}
_COUNTS: dict[Hashable, Select[Any]] = {}
_MAX_STATEMENTS = 256


def _page_statement(
    stmt: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    *,
    descending: bool,
    backwards: bool,
    bounds: Sequence[str],
) -> Select[Any]:
    """The page statement of ``stmt``: cursor values and size as bound parameters."""
    page = stmt
    for name in bounds:
        forward = (name == "after") != descending
        key = tuple_(*columns)
        values = tuple_(
            *(bindparam(f"page_{name}_{i}", type_=c.type) for i, c in enumerate(columns))
        )
        page = page.where(key > values if forward else key < values)
    scan_desc = descending != backwards
    page = page.order_by(*[c.desc() if scan_desc else c.asc() for c in columns])
    return page.limit(bindparam(_LIMIT, type_=Integer))


def _count_statement(stmt: Select[Any]) -> Select[Any]:
    """The statement counting all of ``stmt``'s rows."""
    return select(func.count()).select_from(stmt.order_by(None).subquery())


def _remember(cache: dict[Hashable, Select[Any]], key: Hashable, built: Select[Any]) -> None:
    if len(cache) >= _MAX_STATEMENTS:
        cache.clear()
    cache[key] = built


async def paginate(
    run: Run,
    stmt: Select[Any],
    page: Page,
    *,
    keys: Sequence[SortKey],
    id_column: ColumnElement[Any],
    descending: bool,
    to_node: Callable[[Any], NodeT],
    key_of: Callable[[Any], Sequence[Any]],
    count: Callable[[Select[Any]], Awaitable[int]] | None = None,
    shape_key: Hashable | None = None,
) -> Connection[NodeT]:
    """Run one page of ``stmt`` ordered by ``keys`` + id.

    ``run`` executes a select with bound parameters and returns its rows; ``key_of(row)`` gives
    the row's sort-key values (same order as ``keys``, then the id); ``to_node(row)`` builds the
    GraphQL node. A caller whose ``stmt`` is one of a few fixed shapes names the shape with a
    ``shape_key`` (equal keys, equal statements): its page statements are then built once and
    reused, which spares each request the statement's construction and the ORM's work on a new
    statement object.
    """
    first, after, last, before = page.first, page.after, page.last, page.before
    check_page_args(first, last)
    columns = [k.column for k in keys] + [id_column]
    backwards = last is not None and first is None
    size = last if backwards else (first if first is not None else DEFAULT_PAGE_SIZE)
    assert size is not None

    params: dict[str, Any] = {_LIMIT: size + 1}
    bounds = []
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None:
            bounds.append(name)
            values = decode_cursor(cursor, len(columns))
            if not all(fits_column(v, c) for v, c in zip(values, columns, strict=True)):
                raise PaginationError(f"cursor {cursor!r} does not belong to this ordering")
            params.update((f"page_{name}_{i}", v) for i, v in enumerate(values))
    shape = (shape_key, descending, backwards, *bounds)
    statement = _STATEMENTS.get(shape) if shape_key is not None else None
    if statement is None:
        statement = _page_statement(
            stmt, columns, descending=descending, backwards=backwards, bounds=bounds
        )
        if shape_key is not None:
            _remember(_STATEMENTS, shape, statement)

    rows = list(await run(statement, params)) if size > 0 else []
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()

    edges = [Edge(node=to_node(row), _key=key_of(row)) for row in rows]
    page_info = PageInfo(
        has_next_page=has_more if not backwards else before is not None,
        has_previous_page=has_more if backwards else after is not None,
        start_cursor=edges[0].cursor() if edges else None,
        end_cursor=edges[-1].cursor() if edges else None,
    )

    counter = None
    if count is not None:

        async def counter() -> int:
            # Built only when asked for (totalCount), once per shape when the shape has a key.
            count_stmt = _COUNTS.get(shape_key) if shape_key is not None else None
            if count_stmt is None:
                count_stmt = _count_statement(stmt)
                if shape_key is not None:
                    _remember(_COUNTS, shape_key, count_stmt)
            return await count(count_stmt)

    return Connection(edges=edges, page_info=page_info, _count=counter)


@strawberry.enum(description="Which way a list is sorted.")
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"
