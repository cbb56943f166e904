"""Connection fields: the page arguments every list takes, one page of a list
(:func:`connection`), and the pages of many parents' children at once
(:func:`nested_connection`). Keyset pagination itself is server.graphql.pagination's.

A list field declares ``page: Page`` and the :class:`Paged` extension; the extension gives the
field the four Relay arguments (``first``, ``after``, ``last``, ``before``) and hands the
resolver their values as one :class:`Page`::

    @strawberry.field(extensions=[Paged()])
    async def orders(self, info: Info, page: Page, filter: OrderFilter | None = None
                     ) -> Connection[Order]:
        return await connection(info, service.orders_query(filter), page,
                                sort=[SortKey(m.Order.placed_at, "placed_at")],
                                to_node=Order.from_model, descending=True)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Select, func, literal, select, tuple_
from sqlalchemy.orm import aliased
from strawberry.annotation import StrawberryAnnotation
from strawberry.dataloader import DataLoader
from strawberry.extensions import FieldExtension
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField

from server.graphql.context import Database, Info
from server.graphql.pagination import (
    DEFAULT_PAGE_SIZE,
    Connection,
    Edge,
    Page,
    PageInfo,
    PaginationError,
    SortKey,
    check_page_args,
    decode_cursor,
    fits_column,
    paginate,
)

NodeT = TypeVar("NodeT")

_PAGE_ARGUMENTS = ("first", "after", "last", "before")


class Paged(FieldExtension):
    """Gives a list field the Relay page arguments in place of its resolver's ``page``
    parameter, and passes their values to it as one :class:`Page`."""

    def apply(self, field: StrawberryField) -> None:
        arguments = [a for a in field.arguments if a.python_name != "page"]
        if len(arguments) == len(field.arguments):
            if [a.python_name for a in arguments[: len(_PAGE_ARGUMENTS)]] == list(_PAGE_ARGUMENTS):
                return  # applied by an earlier schema build: the field is shared
            raise TypeError(f"{field.python_name}: a Paged field's resolver takes `page: Page`")
        field.arguments = [
            StrawberryArgument(
                python_name=name,
                graphql_name=None,
                type_annotation=StrawberryAnnotation(
                    int | None if name in ("first", "last") else str | None
                ),
                default=None,
            )
            for name in _PAGE_ARGUMENTS
        ] + arguments

    @staticmethod
    def _page(kwargs: dict[str, Any]) -> Page:
        return Page(**{name: kwargs.pop(name, None) for name in _PAGE_ARGUMENTS})

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        page = self._page(kwargs)
        return next_(source, info, page=page, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        page = self._page(kwargs)
        value = next_(source, info, page=page, **kwargs)
        return await value if inspect.isawaitable(value) else value


async def connection(
    info: Info,
    stmt: Select[Any],
    page: Page,
    *,
    sort: Sequence[SortKey],
    to_node: Callable[[Any], NodeT],
    descending: bool = False,
    shape_key: Hashable | None = None,
) -> Connection[NodeT]:
    """The ``page`` of the rows ``stmt`` selects (one entity, already filtered), as a
    connection.

    ``sort`` names the ordering columns; each key's ``label`` is the row attribute holding its
    value, and the entity's primary key ``id`` breaks ties. ``to_node`` builds the GraphQL node
    of a row. ``totalCount`` is one COUNT query, run only when asked for. ``shape_key`` as in
    :func:`paginate`.
    """
    entity = stmt.column_descriptions[0]["entity"]
    labels = [key.label for key in sort]

    def key_of(row: Any) -> list[Any]:
        return [*(getattr(row, label) for label in labels), row.id]

    db = info.context.db
    return await paginate(
        db.scalars,
        stmt,
        page,
        keys=sort,
        id_column=entity.id,
        descending=descending,
        to_node=to_node,
        key_of=key_of,
        count=db.scalar,
        shape_key=shape_key,
    )


# --- per-parent connections -----------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """One page's arguments, checked and decoded: ``size`` rows after the ``after`` key and
    before the ``before`` key (each the sort values plus the id), read from the end of the
    ordering when ``backwards`` (``last``). Equal requests are equal keys of a loader."""

    size: int
    backwards: bool
    after: tuple[Any, ...] | None
    before: tuple[Any, ...] | None


def page_request(columns: Sequence[ColumnElement[Any]], page: Page) -> PageRequest:
    """The rows ``page`` asks for, in an ordering by ``columns`` (the sort columns, then the
    id). Raises PaginationError as :func:`paginate` does."""
    check_page_args(page.first, page.last)
    backwards = page.last is not None and page.first is None
    size = page.last if backwards else (page.first if page.first is not None else DEFAULT_PAGE_SIZE)
    assert size is not None
    bounds: dict[str, tuple[Any, ...]] = {}
    for name, cursor in (("after", page.after), ("before", page.before)):
        if cursor is not None:
            values = decode_cursor(cursor, len(columns))
            if not all(fits_column(v, c) for v, c in zip(values, columns, strict=True)):
                raise PaginationError(f"cursor {cursor!r} does not belong to this ordering")
            bounds[name] = tuple(values)
    return PageRequest(
        size=size, backwards=backwards, after=bounds.get("after"), before=bounds.get("before")
    )


class ConnectionsByParentLoader(DataLoader[tuple[int, PageRequest], tuple[list[Any], bool]]):
    """A page of each parent's children: the connection of a field on a type of a list
    (``Customer.orders`` on every customer of a page) in one statement for all the parents,
    whatever their number.

    Subclasses set ``model`` (the children), ``parent`` (the children's attribute holding the
    parent's id), ``sort`` (the ordering's keys; the child's id ends it) and ``descending``, and
    override :meth:`statement` to leave children out. Keys are ``(parent id, PageRequest)``;
    the parents asking for the same page are answered by one statement, which numbers each
    parent's children in the page's order (``ROW_NUMBER() OVER (PARTITION BY parent …)``) and
    keeps the first ``size + 1`` of each (the one past the page tells that there is more).
    ``totalCount`` of every parent asking for it is one grouped COUNT.

    Use it through :func:`nested_connection`.
    """

    model: ClassVar[type[Any]]
    parent: ClassVar[str]
    sort: ClassVar[Sequence[SortKey]] = ()
    descending: ClassVar[bool] = False

    def __init__(self, db: Database) -> None:
        self.db = db
        self.counts: DataLoader[int, int] = DataLoader(load_fn=self._count)
        super().__init__(load_fn=self._load)

    def statement(self) -> Select[Any]:
        """Every child that may be listed, of any parent (a select of ``model``)."""
        return select(self.model)

    @classmethod
    def columns(cls) -> list[ColumnElement[Any]]:
        """The ordering's columns: the sort keys', then the child's id."""
        return [key.column for key in cls.sort] + [cls.model.id]

    def key_of(self, row: Any) -> list[Any]:
        """A child's cursor values, in the order of :meth:`columns`."""
        return [*(getattr(row, key.label) for key in self.sort), row.id]

    def _page_statement(self, parent_ids: Sequence[int], request: PageRequest) -> Select[Any]:
        parent = getattr(self.model, self.parent)
        columns = self.columns()
        stmt = self.statement().where(parent.in_(parent_ids))
        for name, values in (("after", request.after), ("before", request.before)):
            if values is not None:
                forward = (name == "after") != self.descending
                key = tuple_(*columns)
                bound = tuple_(*(literal(v, c.type) for v, c in zip(values, columns, strict=True)))
                stmt = stmt.where(key > bound if forward else key < bound)
        scan_desc = self.descending != request.backwards
        position = (
            func.row_number()
            .over(
                partition_by=parent,
                order_by=[c.desc() if scan_desc else c.asc() for c in columns],
            )
            .label("page_position")
        )
        ranked = stmt.add_columns(position).subquery("ranked")
        child = aliased(self.model, ranked)
        return (
            select(child)
            .where(ranked.c.page_position <= request.size + 1)
            .order_by(getattr(child, self.parent), ranked.c.page_position)
        )

    async def _load(self, keys: Sequence[tuple[int, PageRequest]]) -> list[tuple[list[Any], bool]]:
        parents: dict[PageRequest, set[int]] = {}
        for parent_id, request in keys:
            parents.setdefault(request, set()).add(parent_id)
        found: dict[tuple[int, PageRequest], list[Any]] = {}
        for request, ids in parents.items():
            if request.size == 0:
                continue
            stmt = self._page_statement(sorted(ids), request)
            for row in await self.db.scalars(stmt):
                found.setdefault((getattr(row, self.parent), request), []).append(row)
        pages: list[tuple[list[Any], bool]] = []
        for parent_id, request in keys:
            rows = list(found.get((parent_id, request), ()))
            has_more = len(rows) > request.size
            rows = rows[: request.size]
            if request.backwards:
                rows.reverse()
            pages.append((rows, has_more))
        return pages

    async def _count(self, parent_ids: Sequence[int]) -> list[int]:
        children = self.statement().where(getattr(self.model, self.parent).in_(set(parent_ids)))
        ranked = children.subquery("children")
        child = aliased(self.model, ranked)
        parent = getattr(child, self.parent)
        stmt = select(parent, func.count()).group_by(parent)
        counts = {parent_id: count for parent_id, count in await self.db.rows(stmt)}
        return [counts.get(parent_id, 0) for parent_id in parent_ids]

    async def page(
        self, parent_id: int, page: Page, to_node: Callable[[Any], NodeT]
    ) -> Connection[NodeT]:
        """The connection of ``parent_id``'s children (see :func:`nested_connection`)."""
        request = page_request(self.columns(), page)
        rows, has_more = await self.load((parent_id, request))
        edges = [Edge(node=to_node(row), _key=self.key_of(row)) for row in rows]
        page_info = PageInfo(
            has_next_page=has_more if not request.backwards else page.before is not None,
            has_previous_page=has_more if request.backwards else page.after is not None,
            start_cursor=edges[0].cursor() if edges else None,
            end_cursor=edges[-1].cursor() if edges else None,
        )

        async def count() -> int:
            return await self.counts.load(parent_id)

        return Connection(edges=edges, page_info=page_info, _count=count)

    @classmethod
    def empty(cls, page: Page) -> Connection[Any]:
        """A connection with nothing in it, for a viewer who may see none of a parent's
        children; its arguments are checked like any page's."""
        page_request(cls.columns(), page)
        page_info = PageInfo(
            has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None
        )
        return Connection(edges=[], page_info=page_info)


async def nested_connection(
    info: Info,
    loader: type[ConnectionsByParentLoader],
    parent_id: int,
    page: Page,
    *,
    to_node: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A page of ``parent_id``'s children as a connection, batched with every other parent
    of the request asking for the same page through ``loader`` (a
    :class:`ConnectionsByParentLoader`): a list of N parents with their connections costs
    one statement per distinct page, plus one COUNT when ``totalCount`` is asked for, not N.

    ``to_node`` builds the GraphQL node of a child row; pagination is :func:`connection`'s
    (keyset cursors, ``first``/``last`` capped at 100).
    """
    return await info.context.loaders.get(loader).page(parent_id, page, to_node)
