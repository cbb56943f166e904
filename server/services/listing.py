"""The product listing's SQL: everything ``Query.products`` reads, in one module.

A listing is narrowed by a :class:`ProductQuery` (category subtree, prices, brands, tags, stock,
full-text search, the plugins' filters), sorted by one :class:`ListingSort` column plus the id,
and paged by keyset (the caller pages :attr:`ProductListing.stmt` with
``server.graphql.pagination.paginate``).

A listing row is the product's columns, then its category's (all None without one), then the
search rank when sorted by relevance. Rows are read as records (``server.models.records``), not
ORM entities: a listing only shows them, and building entities would cost more than the SQL.
:func:`listed_product` and :func:`listed_category` read a row's two records.

The whole catalogue (no narrowing but the archived flag) is the storefront's most common read:
its statements are built once per dialect and flag and named by a ``shape_key``, so the pager
can build its page statements once too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import (
    Select,
    SQLColumnExpression,
    and_,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col

from server.models import Category, Product, ProductVariant, StockLevel
from server.models.records import Record, RecordType
from server.services import search
from server.services.catalog import descendants_query

# A filter added by a plugin (server.graphql.list_filters): a select of products -> narrowed.
Narrowing = Callable[[Select[Any]], Select[Any]]

PRODUCT_RECORDS = RecordType(Product)
CATEGORY_RECORDS = RecordType(Category)
_COLUMNS = [*PRODUCT_RECORDS.columns, *CATEGORY_RECORDS.labelled("category_")]
_ID = PRODUCT_RECORDS.names.index("id")
_CATEGORY_START = PRODUCT_RECORDS.width
_CATEGORY_ID = _CATEGORY_START + CATEGORY_RECORDS.names.index("id")
_RANK = _CATEGORY_START + CATEGORY_RECORDS.width


class ListingSort(Enum):
    """What a listing is ordered by (then by id)."""

    NAME = "NAME"
    PRICE = "PRICE"
    NEWEST = "NEWEST"
    RELEVANCE = "RELEVANCE"


# Each column sort's column, and where a listing row holds its value.
_SORT_COLUMNS: dict[ListingSort, tuple[SQLColumnExpression[Any], int]] = {
    ListingSort.NAME: (col(Product.name), PRODUCT_RECORDS.names.index("name")),
    ListingSort.PRICE: (col(Product.price_amount), PRODUCT_RECORDS.names.index("price_amount")),
    ListingSort.NEWEST: (col(Product.created_at), PRODUCT_RECORDS.names.index("created_at")),
}


@dataclass(frozen=True)
class ProductQuery:
    """What a product listing is narrowed to. Amounts are minor units of the base price."""

    # Products in this category or any below it (no category has the id 0: no products).
    category_id: int | None = None
    price_min: int | None = None
    price_max: int | None = None
    brands: Sequence[str] = ()
    tags: Sequence[str] = ()
    in_stock: bool | None = None
    include_archived: bool = False
    # Full-text search over name, brand, description, tags and category ("" for none).
    search: str = ""
    # Price bands (server.services.facets): the base price in any of these [low, high) ranges
    # (high None: no upper end).
    price_bands: tuple[tuple[int, int | None], ...] = ()
    # Option values (axis name, any of these values): some active variant of the product has,
    # on every axis named, one of the values given for it.
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The plugins' filters the client gave, applied after the core's.
    narrowing: tuple[Narrowing, ...] = ()

    def is_whole_catalogue(self) -> bool:
        """Nothing narrows it but whether archived products are included."""
        return self == ProductQuery(include_archived=self.include_archived)


def in_stock_condition() -> Any:
    """Some warehouse has a unit that is neither sold nor reserved."""
    return exists(
        select(col(StockLevel.id)).where(
            col(StockLevel.product_id) == Product.id,
            col(StockLevel.on_hand) - StockLevel.reserved > 0,
        )
    )


def _has_tag(dialect: str, tag: str) -> Any:
    """The product's JSON tag list contains ``tag``."""
    if dialect == "sqlite":
        each = func.json_each(Product.tags).table_valued("value")
        return exists(select(1).select_from(each).where(each.c.value == tag))
    # tags is a json column: jsonb containment needs the cast.
    return cast(Product.tags, JSONB).contains([tag])


def _in_band(low: int, high: int | None) -> Any:
    price = col(Product.price_amount)
    return price >= low if high is None else and_(price >= low, price < high)


def option_value(name: str) -> Any:
    """A variant's value on the option axis ``name`` (None when it has none)."""
    return col(ProductVariant.options)[name].as_string()


def option_conditions(options: Sequence[tuple[str, Sequence[str]]]) -> list[Any]:
    """A variant has, on each axis named, one of the values given for it."""
    return [option_value(name).in_(list(values)) for name, values in options]


def filter_products(stmt: Select[Any], dialect: str, query: ProductQuery) -> Select[Any]:
    """``stmt`` (over Product) narrowed by ``query``'s conditions (the search text apart)."""
    if not query.include_archived:
        stmt = stmt.where(col(Product.is_active))
    if query.category_id is not None:
        stmt = stmt.where(col(Product.category_id).in_(descendants_query(query.category_id)))
    if query.price_min is not None:
        stmt = stmt.where(col(Product.price_amount) >= query.price_min)
    if query.price_max is not None:
        stmt = stmt.where(col(Product.price_amount) <= query.price_max)
    if query.brands:
        stmt = stmt.where(col(Product.brand).in_(list(query.brands)))
    if query.price_bands:
        stmt = stmt.where(or_(*(_in_band(low, high) for low, high in query.price_bands)))
    if query.options:
        stmt = stmt.where(
            exists(
                select(col(ProductVariant.id)).where(
                    col(ProductVariant.product_id) == Product.id,
                    col(ProductVariant.is_active),
                    *option_conditions(query.options),
                )
            )
        )
    for tag in query.tags:
        stmt = stmt.where(_has_tag(dialect, tag))
    if query.in_stock is True:
        stmt = stmt.where(in_stock_condition())
    elif query.in_stock is False:
        stmt = stmt.where(~in_stock_condition())
    for narrow in query.narrowing:
        stmt = narrow(stmt)
    return stmt


@dataclass(frozen=True)
class ProductListing:
    """One listing's statement and how its pages are cut: by ``sort_column`` (its value in a
    row at ``sort_index``), then by ``id_column``."""

    stmt: Select[Any]
    sort_column: SQLColumnExpression[Any]
    sort_label: str
    sort_index: int
    descending: bool
    # Names the statement when it is one of a few fixed shapes (the whole catalogue), so its
    # page statements are built once (see server.graphql.pagination.paginate).
    shape_key: Hashable | None

    @property
    def id_column(self) -> Any:
        """The column that ends every ordering."""
        return Product.id

    def key_of(self, row: Sequence[Any]) -> list[Any]:
        """The row's sort-key values: its sort column's, then its id."""
        return [row[self.sort_index], row[_ID]]


def product_listing(
    dialect: str,
    query: ProductQuery,
    *,
    sort: ListingSort,
    descending: bool,
    search_plan: search.SearchPlan | None = None,
) -> ProductListing:
    """The statement of the listing ``query`` describes, ordered by ``sort``.

    RELEVANCE orders by the search rank, so it needs ``query.search``; a search text of
    punctuation only has no terms, and so matches nothing. ``search_plan`` is the search text
    with its synonyms and corrections (``search.expand``); without it, it is matched exactly
    and by pinyin.
    """
    match = search.product_match(dialect, query.search, search_plan) if query.search else None
    rank = match.rank if sort is ListingSort.RELEVANCE and match is not None else None
    column, at = (
        (rank, _RANK)
        if rank is not None
        else _SORT_COLUMNS.get(sort, _SORT_COLUMNS[ListingSort.NEWEST])
    )
    shape_key: Hashable | None = None
    if query.is_whole_catalogue():
        stmt = _whole_catalogue(dialect, query.include_archived)
        shape_key = ("products", dialect, sort, query.include_archived)
    else:
        stmt = select(*_COLUMNS) if rank is None else select(*_COLUMNS, rank.label("rank"))
        stmt = _matching(stmt, dialect, query, match)
        stmt = stmt.outerjoin(Category, col(Category.id) == Product.category_id)
    return ProductListing(
        stmt=stmt,
        sort_column=column,
        sort_label=sort.value.lower(),
        sort_index=at,
        descending=descending,
        shape_key=shape_key,
    )


def matching_products(
    stmt: Select[Any],
    dialect: str,
    query: ProductQuery,
    search_plan: search.SearchPlan | None = None,
) -> Select[Any]:
    """``stmt`` (over Product) narrowed to the products ``query`` lists: its search text (as
    ``search_plan`` expands it, see :func:`product_listing`) and every other condition. What
    the facets count (server.services.facets)."""
    match = search.product_match(dialect, query.search, search_plan) if query.search else None
    return _matching(stmt, dialect, query, match)


def _matching(
    stmt: Select[Any], dialect: str, query: ProductQuery, match: search.TextMatch | None
) -> Select[Any]:
    if match is not None:
        stmt = match.apply(stmt)
    elif query.search:
        # Only punctuation: no terms, so nothing can match (and nothing reaches the engine).
        stmt = stmt.where(false())
    return filter_products(stmt, dialect, query)


@functools.lru_cache(maxsize=8)
def _whole_catalogue(dialect: str, include_archived: bool) -> Select[Any]:
    """Every product (the active ones unless ``include_archived``) with its category."""
    stmt = filter_products(
        select(*_COLUMNS), dialect, ProductQuery(include_archived=include_archived)
    )
    return stmt.outerjoin(Category, col(Category.id) == Product.category_id)


def listed_product(row: Sequence[Any]) -> Record:
    """The product record of a listing row (the same attributes as a Product entity)."""
    return PRODUCT_RECORDS.from_row(row)


def listed_category(row: Sequence[Any]) -> tuple[int, Record] | None:
    """(id, record) of a listing row's category, or None when the product has no category."""
    category_id = row[_CATEGORY_ID]
    if category_id is None:
        return None
    return category_id, CATEGORY_RECORDS.from_row(row, _CATEGORY_START)
