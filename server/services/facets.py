"""Search facets: how many of the products a listing matches fall under each brand, category,
price band and option value (colour: red, size: M), so that a shopper can narrow the listing
by them.

Counts are disjunctive: a facet is counted over the products that match the search text and
every *other* condition of the listing, so selecting the brand Sony still counts the other
brands (what the shopper would get by choosing one of them instead, or as well). Each facet is
one grouped statement (``GROUP BY``) over the matching products; each product counts once per
value: per brand, per price band, and per category for its own category and every category
above it (a product in "Earphones" below "Audio" counts for both), and per option value when
one of its active variants has that value (two red variants make one red product).

Options are counted per variant: a value of one axis counts the products with an active variant
that has it *and* one of the selected values of every other axis (red counts the products with a
red M when size M is selected), which is what the option filter selects. All the axes are one
statement (a ``UNION ALL`` of the unselected axes' counts and each selected axis's own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    distinct,
    func,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Category, Product, ProductVariant
from server.models.records import Record
from server.services.errors import ValidationFailed
from server.services.listing import (
    CATEGORY_RECORDS,
    ProductQuery,
    matching_products,
    option_conditions,
)
from server.services.search import SearchPlan

BRAND = "brand"
CATEGORY = "category"
PRICE = "price"
OPTIONS = "options"
FACETS: tuple[str, ...] = (BRAND, CATEGORY, PRICE, OPTIONS)
# Option axis names are short labels ("colour", "尺码"); JSON paths quote them.
MAX_OPTION_NAME = 40

# Where the price bands end, in major units of the shop's currency (yuan for CNY): the bands
# are [0, 50), [50, 100), … [2000, 5000) and [5000, ∞), the same for every listing, so a band a
# shopper picked stays the same band on the next page and the next search.
BAND_BOUNDS: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 5000)
_CATEGORY_ID = CATEGORY_RECORDS.names.index("id")


@dataclass(frozen=True)
class PriceBand:
    """Base prices from ``low`` (inclusive) up to ``high`` (exclusive; None: no upper end), in
    minor units; ``key`` names it in major units (``"50-100"``, ``"5000-"``)."""

    key: str
    low: int
    high: int | None

    @property
    def bounds(self) -> tuple[int, int | None]:
        return self.low, self.high


def price_bands(exponent: int) -> tuple[PriceBand, ...]:
    """Every price band, cheapest first, for a currency with ``exponent`` minor-unit digits."""
    unit = 10**exponent
    lows = (0, *BAND_BOUNDS)
    highs: tuple[int | None, ...] = (*BAND_BOUNDS, None)
    return tuple(
        PriceBand(
            key=f"{low}-{'' if high is None else high}",
            low=low * unit,
            high=None if high is None else high * unit,
        )
        for low, high in zip(lows, highs, strict=True)
    )


def bands_by_key(keys: Iterable[str], exponent: int) -> tuple[PriceBand, ...]:
    """The bands ``keys`` name, in band order; an unknown key is a ValidationFailed."""
    known = {band.key: band for band in price_bands(exponent)}
    wanted = {key.strip() for key in keys}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValidationFailed(
            f"unknown price band {unknown[0]!r}; one of: {', '.join(known)}", field="priceBands"
        )
    return tuple(band for key, band in known.items() if key in wanted)


def facet_names(names: Sequence[str] | None) -> tuple[str, ...]:
    """The facets asked for (all when None), in facet order; an unknown name is refused."""
    if names is None:
        return FACETS
    unknown = sorted(set(names) - set(FACETS))
    if unknown:
        raise ValidationFailed(
            f"unknown facet {unknown[0]!r}; one of: {', '.join(FACETS)}", field="facets"
        )
    return tuple(name for name in FACETS if name in names)


def option_selection(
    options: Iterable[tuple[str, Sequence[str]]],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The option filter: axes by name (given twice: the values of both), each with its values;
    an axis without values selects nothing and is dropped. A name that cannot be an axis's is
    a ValidationFailed."""
    merged: dict[str, list[str]] = {}
    for name, values in options:
        if not name.strip() or len(name) > MAX_OPTION_NAME or '"' in name or "\\" in name:
            raise ValidationFailed(f"{name!r} is not an option name", field="options")
        wanted = merged.setdefault(name, [])
        wanted.extend(v for v in values if v not in wanted)
    return tuple((name, tuple(values)) for name, values in sorted(merged.items()) if values)


@dataclass(frozen=True)
class ValueCount:
    """How many matching products have ``value``; ``selected``: the listing is narrowed by it."""

    value: str
    count: int
    selected: bool


@dataclass(frozen=True)
class CategoryCount:
    """How many matching products are in ``category`` or below it."""

    category_id: int
    category: Record
    count: int
    selected: bool


@dataclass(frozen=True)
class BandCount:
    band: PriceBand
    count: int
    selected: bool


@dataclass(frozen=True)
class Facets:
    """The facets asked for; a facet not asked for is None."""

    brands: list[ValueCount] | None = None
    categories: list[CategoryCount] | None = None
    price_bands: list[BandCount] | None = None
    # Per option axis, by name: its values' counts.
    options: list[tuple[str, list[ValueCount]]] | None = None


# A select over Product narrowed to the products a listing query shows.
Narrow = Callable[[Select[Any], ProductQuery], Select[Any]]


async def product_facets(
    session: AsyncSession,
    query: ProductQuery,
    names: Sequence[str],
    exponent: int,
    search_plan: SearchPlan | None = None,
) -> Facets:
    """The facets ``names`` of the listing ``query`` describes: one statement per facet.
    ``search_plan`` is the search text expanded as for the listing (``search.expand``)."""
    dialect = session.get_bind().dialect.name

    def narrow(stmt: Select[Any], narrowed_by: ProductQuery) -> Select[Any]:
        return matching_products(stmt, dialect, narrowed_by, search_plan)

    found = Facets()
    if BRAND in names:
        found = dataclasses.replace(found, brands=await _brands(session, narrow, query))
    if CATEGORY in names:
        found = dataclasses.replace(found, categories=await _categories(session, narrow, query))
    if PRICE in names:
        bands = await _price_bands(session, narrow, query, exponent)
        found = dataclasses.replace(found, price_bands=bands)
    if OPTIONS in names:
        options = await _options(session, dialect, narrow, query)
        found = dataclasses.replace(found, options=options)
    return found


async def _brands(session: AsyncSession, narrow: Narrow, query: ProductQuery) -> list[ValueCount]:
    others = dataclasses.replace(query, brands=())
    brand = col(Product.brand)
    columns: list[Any] = [brand, func.count(col(Product.id))]
    counted = select(*columns).select_from(Product)
    stmt = narrow(counted, others).where(brand.is_not(None)).group_by(brand)
    rows: Sequence[Any] = (await session.execute(stmt)).all()
    counts = {row[0]: int(row[1]) for row in rows}
    selected = set(query.brands)
    # A selected brand no matching product has still shows (with 0), so it can be unselected.
    counts.update((b, 0) for b in selected if b not in counts)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [ValueCount(value, count, value in selected) for value, count in ordered]


def _ancestry() -> Any:
    """(category_id, ancestor_id) for every category and each category at or above it."""
    up = select(col(Category.id).label("category_id"), col(Category.id).label("ancestor_id")).cte(
        "category_ancestry", recursive=True
    )
    parent = select(up.c.category_id, col(Category.parent_id)).where(
        col(Category.id) == up.c.ancestor_id, col(Category.parent_id).is_not(None)
    )
    return up.union_all(parent)


async def _categories(
    session: AsyncSession, narrow: Narrow, query: ProductQuery
) -> list[CategoryCount]:
    others = dataclasses.replace(query, category_id=None)
    up = _ancestry()
    per_category = (
        narrow(
            select(up.c.ancestor_id.label("id"), func.count(col(Product.id)).label("n"))
            .select_from(Product)
            .join(up, up.c.category_id == Product.category_id),
            others,
        )
        .group_by(up.c.ancestor_id)
        .subquery("per_category")
    )
    n = func.coalesce(per_category.c.n, 0)
    # The selected category shows even when no matching product is in it (0), so that it can
    # be unselected.
    shown: ColumnElement[bool] = per_category.c.n.is_not(None)
    if query.category_id is not None:
        shown = or_(shown, col(Category.id) == query.category_id)
    stmt = (
        select(*CATEGORY_RECORDS.columns, n)
        .outerjoin(per_category, per_category.c.id == Category.id)
        .where(shown)
        .order_by(n.desc(), col(Category.position), col(Category.id))
    )
    found = []
    for row in (await session.execute(stmt)).all():
        selected = row[_CATEGORY_ID] == query.category_id
        category = CATEGORY_RECORDS.from_row(row)
        found.append(CategoryCount(row[_CATEGORY_ID], category, int(row[-1]), selected))
    return found


async def _price_bands(
    session: AsyncSession, narrow: Narrow, query: ProductQuery, exponent: int
) -> list[BandCount]:
    bands = price_bands(exponent)
    # The price facet is counted without any price condition: they are its own selection.
    others = dataclasses.replace(query, price_bands=(), price_min=None, price_max=None)
    price = col(Product.price_amount)
    band_of = case(
        *((price < band.high, index) for index, band in enumerate(bands) if band.high is not None),
        else_=len(bands) - 1,
    ).label("band")
    # Grouped in an outer select: PostgreSQL would not see the CASE of the GROUP BY (its own
    # bound parameters) as the CASE of the select list.
    per_product = narrow(select(band_of).select_from(Product), others).subquery("banded")
    stmt: Select[Any] = select(per_product.c.band, func.count().label("n")).group_by(
        per_product.c.band
    )
    counts = {int(band): int(n) for band, n in (await session.execute(stmt)).all()}
    selected = set(query.price_bands)
    return [
        BandCount(band, counts.get(index, 0), band.bounds in selected)
        for index, band in enumerate(bands)
        if counts.get(index) or band.bounds in selected
    ]


def _option_values(dialect: str) -> Any:
    """The (key, value) rows of a variant's options, a table-valued function of the variant."""
    each = (
        func.json_each(col(ProductVariant.options))
        if dialect == "sqlite"
        else func.json_each_text(col(ProductVariant.options))
    )
    return each.table_valued("key", "value")


async def _options(
    session: AsyncSession, dialect: str, narrow: Narrow, query: ProductQuery
) -> list[tuple[str, list[ValueCount]]]:
    # The option filter is applied to the counted variant itself, axis by axis (below).
    others = dataclasses.replace(query, options=())
    selected = dict(query.options)

    def counts(axis: str | None, on_variant: list[Any]) -> Select[Any]:
        """Counts on ``axis``, or (None) on every axis nobody selected."""
        each = _option_values(dialect)
        axes = each.c.key == axis if axis is not None else each.c.key.not_in(list(selected))
        columns: list[Any] = [
            each.c.key,
            each.c.value,
            func.count(distinct(col(ProductVariant.product_id))),
        ]
        stmt = (
            select(*columns)
            .select_from(Product)
            .join(ProductVariant, col(ProductVariant.product_id) == Product.id)
            # A table-valued function of the variant row before it (implicitly lateral on both
            # backends).
            .join(each, true())
        )
        return (
            narrow(stmt, others)
            .where(col(ProductVariant.is_active), axes, *on_variant)
            .group_by(each.c.key, each.c.value)
        )

    # The axes nobody selected, under every selection; each selected axis under the others'.
    parts = [counts(None, option_conditions(query.options))]
    for name in selected:
        rest = [(n, v) for n, v in query.options if n != name]
        parts.append(counts(name, option_conditions(rest)))
    stmt = parts[0] if len(parts) == 1 else union_all(*parts)
    per_axis: dict[str, dict[str, int]] = {}
    for name, value, n in (await session.execute(stmt)).all():
        per_axis.setdefault(str(name), {})[str(value)] = int(n)
    for name, values in selected.items():
        # A selected value no matching product has still shows (with 0).
        axis = per_axis.setdefault(name, {})
        axis.update((v, 0) for v in values if v not in axis)
    return [
        (
            name,
            [
                ValueCount(value, n, value in selected.get(name, ()))
                for value, n in sorted(values.items(), key=lambda item: (-item[1], item[0]))
            ],
        )
        for name, values in sorted(per_axis.items())
    ]
