"""Search facets over GraphQL: counts per brand, category, price band and option value of the
products a listing matches (the counting: server.services.facets)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from schema.categories import Category
from schema.loaders import CategoryByIdLoader
from schema.products import ProductFilter, product_query
from server.graphql.context import Info
from server.graphql.errors import ValidationError, validation_error
from server.graphql.money import Money, exponent, money
from server.services import facets, search
from server.services.errors import ValidationFailed


@strawberry.type(description="A facet's value and how many matching products have it.")
class FacetValue:
    value: str
    count: int
    selected: bool = strawberry.field(description="The listing's filter selects this value.")


@strawberry.type(description="A category and how many matching products are in it or below it.")
class CategoryFacetValue:
    category: Category
    count: int
    selected: bool = strawberry.field(description="The listing's filter is this category.")


@strawberry.type(
    description="A price band: base prices from minPrice up to (not including) maxPrice."
)
class PriceBandFacetValue:
    key: str = strawberry.field(description='Names the band in filter.priceBands, e.g. "100-200".')
    min_price: Money
    max_price: Money | None = strawberry.field(description="null: no upper end.")
    count: int
    selected: bool = strawberry.field(description="filter.priceBands has this band.")


@strawberry.type(description="An option axis of variants and its values' counts.")
class OptionFacet:
    name: str
    values: list[FacetValue] = strawberry.field(description="Most products first.")


@strawberry.type(
    description="What a listing's products have, counted per value over the products that "
    "match the search and every other condition of the filter (a facet's own selection apart). "
    "A facet that was not asked for is null."
)
class ProductFacets:
    brands: list[FacetValue] | None = strawberry.field(
        description="Per brand, most products first (unbranded products are not counted)."
    )
    categories: list[CategoryFacetValue] | None = strawberry.field(
        description="Per category, counting a product for its category and each one above it; "
        "most products first."
    )
    price_bands: list[PriceBandFacetValue] | None = strawberry.field(
        description="Per fixed price band of the base price, cheapest first; empty bands left out."
    )
    options: list[OptionFacet] | None = strawberry.field(
        description="Per option axis (by name) and value: the products with an active variant "
        "that has the value and the other axes' selected values."
    )


ProductFacetsResult = Annotated[
    ProductFacets | ValidationError, strawberry.union("ProductFacetsResult")
]


def _to_graphql(info: Info, found: facets.Facets, currency: str) -> ProductFacets:
    categories = info.context.loaders.get(CategoryByIdLoader)

    def category_value(counted: facets.CategoryCount) -> CategoryFacetValue:
        # The facet read each category's row: a `category { name }` costs no statement.
        categories.prime(counted.category_id, counted.category)
        return CategoryFacetValue(
            category=Category.from_model(counted.category),
            count=counted.count,
            selected=counted.selected,
        )

    def band_value(counted: facets.BandCount) -> PriceBandFacetValue:
        band = counted.band
        return PriceBandFacetValue(
            key=band.key,
            min_price=money(band.low, currency),
            max_price=None if band.high is None else money(band.high, currency),
            count=counted.count,
            selected=counted.selected,
        )

    return ProductFacets(
        brands=None
        if found.brands is None
        else [FacetValue(value=v.value, count=v.count, selected=v.selected) for v in found.brands],
        categories=None
        if found.categories is None
        else [category_value(c) for c in found.categories],
        price_bands=None
        if found.price_bands is None
        else [band_value(b) for b in found.price_bands],
        options=None
        if found.options is None
        else [
            OptionFacet(
                name=name,
                values=[
                    FacetValue(value=v.value, count=v.count, selected=v.selected) for v in values
                ],
            )
            for name, values in found.options
        ],
    )


@strawberry.type
class FacetQueries:
    @strawberry.field(
        description="Facets of the products `filter` lists: counts per brand, category, "
        "price band and option value (`facets`: which of brand, category, price, options; "
        "default all)."
    )
    async def product_facets(
        self,
        info: Info,
        filter: ProductFilter | None = None,
        facets_: Annotated[list[str] | None, strawberry.argument(name="facets")] = None,
    ) -> ProductFacetsResult:
        currency = info.context.settings.currency
        try:
            names = facets.facet_names(facets_)
            query = product_query(info, filter)
        except ValidationFailed as exc:
            return validation_error(exc)
        db = info.context.db
        # The search text's synonyms and typo corrections, as the listing reads them.
        plan = await db.run(search.expand, query.search) if query.search else None
        found = await db.run(facets.product_facets, query, names, exponent(currency), plan)
        return _to_graphql(info, found, currency)


QUERIES: list[type[Any]] = [FacetQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
