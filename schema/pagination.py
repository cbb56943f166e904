"""Relay cursor connections with keyset pagination (no OFFSET scans).

A cursor is the sort key of its row (the sort columns plus the id), so the next page is a
``WHERE (k1, id) > (:k1, :id)`` range read on an index, however deep the page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

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


@dataclass(frozen=True)
class SortKey:
    """One column of an ordering. The row's id always ends the key, in the same direction."""

    column: ColumnElement[Any]
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
    return [datetime.fromisoformat(v["dt"]) if isinstance(v, dict) else v for v in values]


def check_page_args(first: int | None, last: int | None) -> None:
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise PaginationError(f"{name} must be between 0 and {MAX_PAGE_SIZE}")
    if first is not None and last is not None:
        raise PaginationError("pass first or last, not both")


async def paginate(
    run: Callable[[Select[Any]], Awaitable[Sequence[Any]]],
    stmt: Select[Any],
    *,
    keys: Sequence[SortKey],
    id_column: ColumnElement[Any],
    descending: bool,
    to_node: Callable[[Any], NodeT],
    key_of: Callable[[Any], Sequence[Any]],
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    count: Callable[[Select[Any]], Awaitable[int]] | None = None,
) -> Connection[NodeT]:
    """Run one page of ``stmt`` ordered by ``keys`` + id.

    ``run`` executes a select and returns its rows; ``key_of(row)`` gives the row's sort-key values
    (same order as ``keys``, then the id); ``to_node(row)`` builds the GraphQL node.
    """
    check_page_args(first, last)
    columns = [k.column for k in keys] + [id_column]
    backwards = last is not None and first is None
    size = last if backwards else (first if first is not None else DEFAULT_PAGE_SIZE)
    assert size is not None

    page = stmt
    for cursor, is_after in ((after, True), (before, False)):
        if cursor is None:
            continue
        values = decode_cursor(cursor, len(columns))
        forward = is_after != descending
        bound = tuple_(*columns)
        page = page.where(bound > tuple_(*values) if forward else bound < tuple_(*values))

    scan_desc = descending != backwards
    page = page.order_by(*[c.desc() if scan_desc else c.asc() for c in columns]).limit(size + 1)
    rows = list(await run(page)) if size > 0 else []
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
        count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery())

        async def counter() -> int:
            return await count(count_stmt)

    return Connection(edges=edges, page_info=page_info, _count=counter)


@strawberry.enum(description="Which way a list is sorted.")
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"
