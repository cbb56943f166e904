"""The core's public catalogue fields, declared for the response cache the way a plugin declares
its own (the ``cacheable_fields`` hook): ``"Type.field"`` -> the outbox events whose commit
changes what the field answers to an anonymous viewer.

Declared here: what any anonymous visitor of the shop sees the same way (products on sale,
categories, search, stock availability, prices). Not declared, hence never cached: the viewer
(``me``, carts, orders, loyalty), staff fields (cost prices, margins, warehouses, customers),
anything personal. A selection of an undeclared field makes the whole query uncacheable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from server.graphql.response_cache import CoreFields
from server.services.catalog import CATEGORY_CHANGED, PRODUCT_CHANGED
from server.services.synonyms import SYNONYMS_CHANGED

CATALOGUE = (PRODUCT_CHANGED, CATEGORY_CHANGED)
# Units available change when staff set or adjust stock, when an order is placed (its units
# are reserved) and when an order changes status (cancelled: released; shipped: consumed).
STOCK = ("stock_level_set", "stock_adjusted", "order_placed", "order_status_changed")
# What a search finds depends on the synonym groups too.
SEARCH = (SYNONYMS_CHANGED,)


def _fields(type_name: str, names: str, events: Sequence[str]) -> dict[str, Sequence[str]]:
    return {f"{type_name}.{name}": tuple(events) for name in names.split()}


# Prices for the anonymous viewer: the base price unless a plugin adjusts prices; a plugin
# implementing ``price_adjustments`` or ``price_guardrails`` must declare ``Product.price``
# itself (with the events that change its answers) for these to stay cacheable
# (server.graphql.response_cache).
PRICE_FIELDS: dict[str, Sequence[str]] = {
    **_fields("Product", "price priceBreakdown", CATALOGUE),
    **_fields(
        "PriceBreakdown", "quantity basePrice adjustments guardrail unitPrice total", CATALOGUE
    ),
    **_fields("PriceAdjustment", "source rule label amount kind", CATALOGUE),
}

CORE_CACHEABLE_FIELDS: Mapping[str, Sequence[str]] = {
    # Products on sale and their filters (``inStock``) read stock too.
    **_fields("Query", "products", CATALOGUE + STOCK + SEARCH),
    **_fields("Query", "node product productBySku categories category", CATALOGUE),
    **_fields("Query", "searchSuggestions", CATALOGUE + SEARCH),
    **_fields("Node", "id", CATALOGUE),
    **_fields("ProductConnection", "edges pageInfo totalCount nodes", CATALOGUE),
    **_fields("ProductEdge", "node cursor", CATALOGUE),
    **_fields("PageInfo", "hasNextPage hasPreviousPage startCursor endCursor", CATALOGUE),
    **_fields(
        "Product",
        "id sku name description brand tags attributes isActive createdAt updatedAt basePrice "
        "category",
        CATALOGUE,
    ),
    **_fields("Product", "availability", STOCK),
    **_fields("StockAvailability", "inStock quantityAvailable", STOCK),
    **_fields("Money", "currency amount minorUnits", CATALOGUE),
    **_fields(
        "Category",
        "id name slug description position parent children ancestors productCount",
        CATALOGUE,
    ),
    **_fields("SearchSuggestion", "text kind product category", CATALOGUE),
    # Facets count what `products` lists, with the same filters and search (synonyms too).
    **_fields("Query", "productFacets", CATALOGUE + STOCK + SEARCH),
    **_fields("ProductFacets", "brands categories priceBands options", CATALOGUE),
    **_fields("OptionFacet", "name values", CATALOGUE),
    **_fields("FacetValue", "value count selected", CATALOGUE),
    **_fields("CategoryFacetValue", "category count selected", CATALOGUE),
    **_fields("PriceBandFacetValue", "key minPrice maxPrice count selected", CATALOGUE),
    # A query's typed error (a bad filter) is the same for everyone.
    **_fields("Error", "code message field", CATALOGUE),
    **_fields("ValidationError", "code message field", CATALOGUE),
}

CORE_FIELDS = CoreFields(public=CORE_CACHEABLE_FIELDS, prices=PRICE_FIELDS)
