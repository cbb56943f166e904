"""Products over GraphQL: the Product type, its typed root for plugins, and the product queries
(the listing's SQL: server.services.listing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField, Selection

from schema.categories import Category
from schema.loaders import (
    AvailableUnitsByProductIdLoader,
    CategoryByIdLoader,
    ProductByIdLoader,
)
from schema.pricing import PriceBreakdown, PriceBreakdownLoader, breakdown_type, product_price
from server import models as m
from server.graphql.connections import Paged
from server.graphql.context import Info
from server.graphql.ids import filter_node_id, parse_node_id
from server.graphql.list_filters import FilterInput
from server.graphql.money import Money, exponent, money, to_minor
from server.graphql.node import ModelNode
from server.graphql.pagination import (
    Connection,
    Page,
    PaginationError,
    SortDirection,
    SortKey,
    paginate,
)
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE, CATALOG_READ, PRICING_MANAGE
from server.services import catalog, facets, listing, pricing, search
from server.services.errors import ValidationFailed

MAX_QUANTITY = 100_000


def bad_input(message: str) -> GraphQLError:
    # GraphQLError is never masked: the client needs to know what to fix.
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


class ProductView(Protocol):
    """What a plugin reads of a product: the root of its fields on ``Product``.

    Resolvers a plugin adds to ``Product`` (``graphql_type_extensions``) receive the core
    ``Product`` object as ``self`` or as a parameter named ``root``; annotate it with this
    protocol. These attributes are its documented, read-only interface, the same on a listing
    page as on the product's own page:

    - ``id``: the primary key (the number inside the global id);
    - ``sku``, ``name``, ``description``, ``brand`` (None when unbranded);
    - ``category_id``: the category's primary key, None when uncategorised;
    - ``price_amount``: the base price before any adjustment, in minor units of ``currency``;
    - ``cost_amount``: the cost price, in minor units of ``currency``, None when unknown. It is
      staff-only data: do not show it, or what it reveals, to shoppers;
    - ``tags``, ``attributes`` (a JSON object), ``is_active`` (False once archived);
    - ``created_at``, ``updated_at`` (None until the first update), timezone-aware.
    """

    @property
    def id(self) -> int: ...
    @property
    def sku(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def brand(self) -> str | None: ...
    @property
    def category_id(self) -> int | None: ...
    @property
    def price_amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def cost_amount(self) -> int | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime | None: ...


@strawberry.type(description="How many units can be sold now, over all warehouses.")
class StockAvailability:
    in_stock: bool
    quantity_available: int


@strawberry.type(description="What a product earns per unit at its base price (staff only).")
class ProductMargin:
    amount: Money
    rate: Decimal | None = strawberry.field(
        description='The share of the base price, e.g. "0.3500"; null for a free product.'
    )


@strawberry.type
class Product(ModelNode):
    """Built from a product row (entity or listing record) with ``Product.from_model(row)``;
    a :class:`ProductView`."""

    loader = ProductByIdLoader

    id: relay.NodeID[int]
    sku: str
    name: str
    description: str
    brand: str | None
    tags: list[str]
    attributes: dict[str, Any] = strawberry.field(graphql_type=JSON)
    is_active: bool = strawberry.field(description="False once archived: no longer on sale.")
    created_at: datetime
    updated_at: datetime | None
    category_id: strawberry.Private[int | None]
    price_amount: strawberry.Private[int]
    currency: strawberry.Private[str]
    cost_amount: strawberry.Private[int | None]
    # The row itself, for the price hooks (which receive the entity; see schema.pricing).
    _model: strawberry.Private[m.Product]

    @classmethod
    def can_view(cls, info: Info, model: m.Product) -> bool:
        # Archived products stay visible to the admin console (catalog.read) and to no one else.
        return bool(model.is_active) or info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE)

    @strawberry.field(description="The catalogue price, before any adjustment.")
    def base_price(self) -> Money:
        return money(self.price_amount, self.currency)

    @strawberry.field(description="The unit price for the current viewer, adjustments applied.")
    def price(self, info: Info) -> Money:
        if not pricing.is_adjustable(info.context.plugins):
            # Nothing can adjust it: the base price, with no await (a page shows many).
            return money(self.price_amount, self.currency)
        settled = info.context.loaders.get(PriceBreakdownLoader).settled.get((self._model.id, 1))  # type: ignore[arg-type]  # a stored product has its id
        if settled is not None:
            return money(settled.final, settled.currency)
        return self._adjusted_price(info)  # type: ignore[return-value]  # an awaitable of Money: GraphQL awaits it

    async def _adjusted_price(self, info: Info) -> Money:
        breakdown = await product_price(info, self._model, 1)
        return money(breakdown.final, breakdown.currency)

    @strawberry.field(description="The unit price explained: base, each adjustment, the result.")
    async def price_breakdown(self, info: Info, quantity: int = 1) -> PriceBreakdown:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise bad_input(f"quantity must be between 1 and {MAX_QUANTITY}")
        return breakdown_type(await product_price(info, self._model, quantity), quantity)

    @strawberry.field(
        permission_classes=[HasPermission(PRICING_MANAGE, CATALOG_MANAGE)],
        description="What a unit costs the shop (pricing.manage or catalog.manage).",
    )
    def cost_price(self) -> Money | None:
        if self.cost_amount is None:
            return None
        return money(self.cost_amount, self.currency)

    @strawberry.field(
        permission_classes=[HasPermission(PRICING_MANAGE, CATALOG_MANAGE)],
        description="Base price minus cost price (pricing.manage or catalog.manage).",
    )
    def margin(self) -> ProductMargin | None:
        cost, price = self.cost_amount, self.price_amount
        if cost is None:
            return None
        rate = None
        if price > 0:
            rate = (Decimal(price - cost) / Decimal(price)).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_UP
            )
        return ProductMargin(amount=money(price - cost, self.currency), rate=rate)

    @strawberry.field
    def category(self, info: Info) -> Category | None:
        # At once when the listing joined it, else batched through the loader.
        return Category.by_id(info, self.category_id)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it

    @strawberry.field(
        description="Units of its variants on sale that active warehouses can sell now."
    )
    async def availability(self, info: Info) -> StockAvailability:
        available = await info.context.loaders.get(AvailableUnitsByProductIdLoader).load(self.id)
        return StockAvailability(in_stock=available > 0, quantity_available=available)


# ---------------------------------------------------------------------------------------------
# The listing's arguments (its SQL: server.services.listing)

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(listing.ListingSort, name="ProductSortField")

# Without an explicit direction: A-Z, cheapest first, newest first, best match first.
_DEFAULT_DIRECTION = {
    listing.ListingSort.NAME: SortDirection.ASC,
    listing.ListingSort.PRICE: SortDirection.ASC,
    listing.ListingSort.NEWEST: SortDirection.DESC,
    listing.ListingSort.RELEVANCE: SortDirection.DESC,
}


@strawberry.input(description="How to order products; RELEVANCE needs filter.search.")
class ProductSort:
    field: listing.ListingSort
    direction: SortDirection | None = strawberry.field(
        default=None, description="Default: ASC for NAME and PRICE, DESC for NEWEST and RELEVANCE."
    )


@strawberry.input(description="Option values of variants: one of `values` on the axis `name`.")
class OptionFilter:
    name: str = strawberry.field(description='The option axis, e.g. "colour".')
    values: list[str] = strawberry.field(description="Any of these values.")


@strawberry.input(description="Narrows a product list; all given conditions must hold.")
class ProductFilter(FilterInput, list_name="products"):
    category: strawberry.ID | None = strawberry.field(
        default=None, description="A Category id: products in it or in any category below it."
    )
    price_min: Decimal | None = strawberry.field(default=None, description="Base price >= this.")
    price_max: Decimal | None = strawberry.field(default=None, description="Base price <= this.")
    brands: list[str] | None = strawberry.field(default=None, description="Any of these brands.")
    price_bands: list[str] | None = strawberry.field(
        default=None,
        description='Base price in any of these price bands (their keys, e.g. "100-200"; '
        "see productFacets).",
    )
    tags: list[str] | None = strawberry.field(default=None, description="All of these tags.")
    options: list[OptionFilter] | None = strawberry.field(
        default=None,
        description="Some variant on sale has, on every axis given, one of its values "
        "(e.g. colour red or blue, and size M).",
    )
    in_stock: bool | None = strawberry.field(
        default=None,
        description="Some active warehouse has an unreserved unit of a variant on sale (or none "
        "has).",
    )
    search: str | None = strawberry.field(
        default=None, description="Full-text search over name, brand, description, tags, category."
    )
    include_archived: bool = strawberry.field(
        default=False, description="Staff only: list archived products too."
    )


def _minor_filter(value: Decimal | None, currency: str, name: str) -> int | None:
    if value is None:
        return None
    try:
        return to_minor(value, currency)
    except (ValueError, ArithmeticError) as exc:
        raise ValidationFailed(f"{name}: {exc}", field=name) from exc


def product_query(info: Info, flt: ProductFilter | None) -> listing.ProductQuery:
    """What ``flt`` narrows a product list to; a malformed value is a ValidationFailed."""
    if flt is None:
        return listing.ProductQuery()
    currency = info.context.settings.currency
    bands = facets.bands_by_key(flt.price_bands or (), exponent(currency))
    return listing.ProductQuery(
        # A malformed or foreign id matches nothing, like an id that does not exist.
        category_id=filter_node_id(flt.category, "Category"),
        price_min=_minor_filter(flt.price_min, currency, "priceMin"),
        price_max=_minor_filter(flt.price_max, currency, "priceMax"),
        brands=flt.brands or (),
        price_bands=tuple(band.bounds for band in bands),
        options=facets.option_selection((o.name, o.values) for o in flt.options or ()),
        tags=flt.tags or (),
        in_stock=flt.in_stock,
        include_archived=flt.include_archived
        and info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE),
        search=(flt.search or "").strip(),
        narrowing=flt.narrowing(),
    )


def _asks_price(selections: Sequence[Selection], depth: int = 0) -> bool:
    """Whether a product listing's selection (``info.selected_fields``) asks for a node's
    ``price``, through ``nodes`` or ``edges { node }``, fragments included."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if depth == 0:  # the listing's own field, whatever its name
                if _asks_price(selection.selections, 1):
                    return True
            elif depth == 1 and selection.name in ("nodes", "edges"):
                if _asks_price(selection.selections, 2 if selection.name == "nodes" else 3):
                    return True
            elif depth == 3 and selection.name == "node":
                if _asks_price(selection.selections, 2):
                    return True
            elif depth == 2 and selection.name == "price":
                return True
        elif _asks_price(selection.selections, depth):  # a fragment: same level
            return True
    return False


async def _list_products(
    info: Info,
    page: Page,
    *,
    filter: ProductFilter | None,
    sort: ProductSort | None,
) -> Connection[Product]:
    try:
        query = product_query(info, filter)
    except ValidationFailed as exc:
        raise bad_input(exc.message) from exc
    default = listing.ListingSort.RELEVANCE if query.search else listing.ListingSort.NEWEST
    field = sort.field if sort else default
    if field is listing.ListingSort.RELEVANCE and not query.search:
        raise bad_input("sort RELEVANCE needs filter.search")
    direction = (sort.direction if sort else None) or _DEFAULT_DIRECTION[field]
    dialect = info.context.session.get_bind().dialect.name
    # The search text's synonyms and typo corrections, read now (a change counts at once).
    search_plan = await info.context.db.run(search.expand, query.search) if query.search else None
    plan = listing.product_listing(
        dialect,
        query,
        sort=field,
        descending=direction is SortDirection.DESC,
        search_plan=search_plan,
    )

    # Each product comes with its category (one LEFT JOIN), primed into the request's
    # CategoryByIdLoader: a page that shows categories needs no second statement.
    categories = info.context.loaders.get(CategoryByIdLoader)

    listed: list[Any] = []  # the page's product records

    def to_node(row: Any) -> Product:
        category = listing.listed_category(row)
        if category is not None:
            categories.prime(*category)
        listed.append(listing.listed_product(row))
        return Product.from_model(listed[-1])

    db = info.context.db
    try:
        # paginate, not connection: the listing reads Core rows as records (the category's
        # columns and the search rank beside the product's), not entities, and reuses the page
        # statements of the whole catalogue by shape (plan.shape_key).
        conn = await paginate(
            db.core_rows,
            plan.stmt,
            page,
            keys=[SortKey(plan.sort_column, plan.sort_label)],
            id_column=plan.id_column,
            descending=plan.descending,
            to_node=to_node,
            key_of=plan.key_of,
            count=db.scalar,
            shape_key=plan.shape_key,
        )
    except PaginationError as exc:
        raise bad_input(str(exc)) from exc
    if pricing.is_adjustable(info.context.plugins) and _asks_price(info.selected_fields):
        # Priced now, in one batch: each node's price then answers without an await.
        await info.context.loaders.get(PriceBreakdownLoader).price_page(info, listed)
    return conn


@strawberry.type
class ProductQueries:
    @strawberry.field(
        description="Products on sale, filtered and sorted (keyset pagination).",
        extensions=[Paged()],
    )
    async def products(
        self,
        info: Info,
        page: Page,
        filter: ProductFilter | None = None,
        sort: ProductSort | None = None,
    ) -> Connection[Product]:
        return await _list_products(info, page, filter=filter, sort=sort)

    @strawberry.field(description="A product by its global id (archived ones: staff only).")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        pk = parse_node_id(id, "Product")
        if pk is None:
            return None
        row = await info.context.loaders.get(ProductByIdLoader).load(pk)
        return Product.from_model(row) if row and Product.can_view(info, row) else None

    @strawberry.field(description="A product by its SKU (case-insensitive).")
    async def product_by_sku(self, info: Info, sku: str) -> Product | None:
        row = await info.context.db.run(catalog.product_by_sku, sku)
        return Product.from_model(row) if row and Product.can_view(info, row) else None


QUERIES: list[type[Any]] = [ProductQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [Product]
