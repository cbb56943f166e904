"""The catalogue over GraphQL: categories (a tree), products, search and suggestions."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import Select, and_, false, func, literal_column, select
from sqlalchemy.orm import aliased
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from schema.context import Database, Info
from schema.errors import ConflictError, Error, NotFoundError, ValidationError, to_graphql
from schema.global_ids import optional_node_id, parse_node_id, require_node_id
from schema.loaders import (
    CategoriesByParentIdLoader,
    CategoryByIdLoader,
    ProductByIdLoader,
    StockLevelsByProductIdLoader,
)
from schema.money import Money, MoneyInput, money, to_minor
from schema.mutations import run_mutation
from schema.node import ModelNode
from schema.pagination import Connection, PaginationError, SortDirection, SortKey, paginate
from schema.permissions import HasPermission
from schema.pricing import PriceBreakdown, breakdown_type, product_price
from server import models as m
from server.models.records import RecordType
from server.permissions import CATALOG_MANAGE, CATALOG_READ, PRICING_MANAGE
from server.services import catalog, pricing, search
from server.services.errors import DomainError, ValidationFailed

MAX_SUGGESTIONS = 50
# Suggestions are picked from this many of the best-ranked title matches.
SUGGESTION_CANDIDATES = 100
MAX_QUANTITY = 100_000
# A category tree deeper than this is a data error; the ancestor walk stops there.
MAX_DEPTH = 64


def _bad_input(message: str) -> GraphQLError:
    # GraphQLError is never masked: the client needs to know what to fix.
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _dialect(info: Info) -> str:
    return info.context.session.get_bind().dialect.name


# ---------------------------------------------------------------------------------------------
# Loaders of the catalogue (per request, like those in schema.loaders)


class CategoryAncestorsByIdLoader(DataLoader[int, list[m.Category]]):
    """A category's ancestors, root first: one recursive query for a whole batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[m.Category]]:
        up = (
            select(
                m.Category.id.label("start_id"),
                m.Category.parent_id.label("id"),
                literal_column("1").label("depth"),
            )
            .where(m.Category.id.in_(set(keys)), m.Category.parent_id.is_not(None))
            .cte("ancestors", recursive=True)
        )
        parent = aliased(m.Category)
        up = up.union_all(
            select(up.c.start_id, parent.parent_id, up.c.depth + 1)
            .join(parent, parent.id == up.c.id)
            .where(parent.parent_id.is_not(None), up.c.depth < MAX_DEPTH)
        )
        stmt = select(up.c.start_id, up.c.depth, m.Category).join(
            m.Category, m.Category.id == up.c.id
        )
        found: dict[int, list[tuple[int, m.Category]]] = defaultdict(list)
        for start_id, depth, category in await self.db.rows(stmt):
            found[start_id].append((depth, category))
        return [[c for _, c in sorted(found.get(k, []), key=lambda p: -p[0])] for k in keys]


class ProductCountByCategoryIdLoader(DataLoader[int, int]):
    """Active products in a category and all its descendants: one query for a whole batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[int]:
        subtree = (
            select(m.Category.id.label("root_id"), m.Category.id.label("id"))
            .where(m.Category.id.in_(set(keys)))
            .cte("subtree", recursive=True)
        )
        child = aliased(m.Category)
        subtree = subtree.union_all(
            select(subtree.c.root_id, child.id).join(child, child.parent_id == subtree.c.id)
        )
        stmt = (
            select(subtree.c.root_id, func.count(m.Product.id))
            .select_from(subtree)
            .join(m.Product, and_(m.Product.category_id == subtree.c.id, m.Product.is_active))
            .group_by(subtree.c.root_id)
        )
        counts = {root: n for root, n in await self.db.rows(stmt)}
        return [int(counts.get(k, 0)) for k in keys]


# ---------------------------------------------------------------------------------------------
# Types


@strawberry.type(description="A node of the category tree.")
class Category(ModelNode):
    loader = CategoryByIdLoader

    id: relay.NodeID[int]
    name: str
    slug: str
    description: str
    position: int
    _model: strawberry.Private[m.Category]

    @classmethod
    def from_model(cls, model: m.Category) -> Category:
        return cls(
            id=model.id,
            name=model.name,
            slug=model.slug,
            description=model.description,
            position=model.position,
            _model=model,
        )

    @strawberry.field
    async def parent(self, info: Info) -> Category | None:
        if self._model.parent_id is None:
            return None
        row = await info.context.loaders.get(CategoryByIdLoader).load(self._model.parent_id)
        return Category.from_model(row) if row else None

    @strawberry.field
    async def children(self, info: Info) -> list[Category]:
        rows = await info.context.loaders.get(CategoriesByParentIdLoader).load(self._model.id)
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="The path from the root down to the parent (a breadcrumb).")
    async def ancestors(self, info: Info) -> list[Category]:
        if self._model.parent_id is None:
            return []
        rows = await info.context.loaders.get(CategoryAncestorsByIdLoader).load(self._model.id)
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="Products on sale in this category and all categories below it.")
    async def product_count(self, info: Info) -> int:
        return await info.context.loaders.get(ProductCountByCategoryIdLoader).load(self._model.id)


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
    loader = ProductByIdLoader

    id: relay.NodeID[int]
    sku: str
    name: str
    description: str
    brand: str | None
    tags: list[str]
    attributes: JSON
    is_active: bool = strawberry.field(description="False once archived: no longer on sale.")
    created_at: datetime
    updated_at: datetime | None
    # The entity, or on a listing its record (server.models.records): same attributes.
    _model: strawberry.Private[m.Product]

    @classmethod
    def from_model(cls, model: m.Product) -> Product:
        return cls(
            id=model.id,
            sku=model.sku,
            name=model.name,
            description=model.description,
            brand=model.brand,
            tags=model.tags,
            attributes=model.attributes,
            is_active=model.is_active,
            created_at=model.created_at,
            updated_at=model.updated_at,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.Product) -> bool:
        # Archived products stay visible to the admin console (catalog.read) and to no one else.
        return bool(model.is_active) or info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE)

    @strawberry.field(description="The catalogue price, before any adjustment.")
    def base_price(self) -> Money:
        return money(self._model.price_amount, self._model.currency)

    @strawberry.field(description="The unit price for the current viewer, adjustments applied.")
    def price(self, info: Info) -> Money:
        if not pricing.is_adjustable(info.context.plugins):
            # Nothing can adjust it: the base price, with no await (a page shows many).
            return money(self._model.price_amount, self._model.currency)
        return self._adjusted_price(info)  # type: ignore[return-value]

    async def _adjusted_price(self, info: Info) -> Money:
        breakdown = await product_price(info, self._model, 1)
        return money(breakdown.final, breakdown.currency)

    @strawberry.field(description="The unit price explained: base, each adjustment, the result.")
    async def price_breakdown(self, info: Info, quantity: int = 1) -> PriceBreakdown:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise _bad_input(f"quantity must be between 1 and {MAX_QUANTITY}")
        return breakdown_type(await product_price(info, self._model, quantity), quantity)

    @strawberry.field(
        permission_classes=[HasPermission(PRICING_MANAGE, CATALOG_MANAGE)],
        description="What a unit costs the shop (pricing.manage or catalog.manage).",
    )
    def cost_price(self) -> Money | None:
        if self._model.cost_amount is None:
            return None
        return money(self._model.cost_amount, self._model.currency)

    @strawberry.field(
        permission_classes=[HasPermission(PRICING_MANAGE, CATALOG_MANAGE)],
        description="Base price minus cost price (pricing.manage or catalog.manage).",
    )
    def margin(self) -> ProductMargin | None:
        cost, price = self._model.cost_amount, self._model.price_amount
        if cost is None:
            return None
        rate = None
        if price > 0:
            rate = (Decimal(price - cost) / Decimal(price)).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_UP
            )
        return ProductMargin(amount=money(price - cost, self._model.currency), rate=rate)

    @strawberry.field
    def category(self, info: Info) -> Category | None:
        # At once when the listing joined it, else batched through the loader.
        return Category.by_id(info, self._model.category_id)  # type: ignore[return-value]

    @strawberry.field
    async def availability(self, info: Info) -> StockAvailability:
        levels = await info.context.loaders.get(StockLevelsByProductIdLoader).load(self._model.id)
        available = sum(max(0, lv.on_hand - lv.reserved) for lv in levels)
        return StockAvailability(in_stock=available > 0, quantity_available=available)


@strawberry.enum(description="What a search suggestion completes to.")
class SuggestionKind(Enum):
    PRODUCT = "PRODUCT"
    BRAND = "BRAND"
    CATEGORY = "CATEGORY"


@strawberry.type(description="A completion for what a shopper is typing.")
class SearchSuggestion:
    text: str
    kind: SuggestionKind
    product: Product | None = strawberry.field(description="Set for PRODUCT suggestions.")
    category: Category | None = strawberry.field(description="Set for CATEGORY suggestions.")


# ---------------------------------------------------------------------------------------------
# Listing


@strawberry.enum
class ProductSortField(Enum):
    NAME = "NAME"
    PRICE = "PRICE"
    NEWEST = "NEWEST"
    RELEVANCE = "RELEVANCE"


# Without an explicit direction: A-Z, cheapest first, newest first, best match first.
_DEFAULT_DIRECTION = {
    ProductSortField.NAME: SortDirection.ASC,
    ProductSortField.PRICE: SortDirection.ASC,
    ProductSortField.NEWEST: SortDirection.DESC,
    ProductSortField.RELEVANCE: SortDirection.DESC,
}


@strawberry.input(description="How to order products; RELEVANCE needs filter.search.")
class ProductSort:
    field: ProductSortField
    direction: SortDirection | None = strawberry.field(
        default=None, description="Default: ASC for NAME and PRICE, DESC for NEWEST and RELEVANCE."
    )


@strawberry.input(description="Narrows a product list; all given conditions must hold.")
class ProductFilter:
    category: strawberry.ID | None = strawberry.field(
        default=None, description="A Category id: products in it or in any category below it."
    )
    price_min: Decimal | None = strawberry.field(default=None, description="Base price >= this.")
    price_max: Decimal | None = strawberry.field(default=None, description="Base price <= this.")
    brands: list[str] | None = strawberry.field(default=None, description="Any of these brands.")
    tags: list[str] | None = strawberry.field(default=None, description="All of these tags.")
    in_stock: bool | None = strawberry.field(
        default=None, description="Some warehouse has a unit that is not reserved (or none has)."
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
        raise _bad_input(f"{name}: {exc}") from exc


def _product_query(info: Info, flt: ProductFilter | None) -> catalog.ProductQuery:
    if flt is None:
        return catalog.ProductQuery()
    currency = info.context.settings.currency
    category_id = None
    if flt.category is not None:
        category_id = parse_node_id(flt.category, "Category")
    return catalog.ProductQuery(
        category_id=category_id,
        # A malformed or foreign id matches nothing, like an id that does not exist.
        unknown_category=flt.category is not None and category_id is None,
        price_min=_minor_filter(flt.price_min, currency, "priceMin"),
        price_max=_minor_filter(flt.price_max, currency, "priceMax"),
        brands=flt.brands or (),
        tags=flt.tags or (),
        in_stock=flt.in_stock,
        include_archived=flt.include_archived
        and info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE),
    )


PRODUCT_RECORDS = RecordType(m.Product)
CATEGORY_RECORDS = RecordType(m.Category)
# A listing row: the product's columns, then its category's (all None without one), then the
# search rank when sorted by relevance.
_LISTING_COLUMNS = [*PRODUCT_RECORDS.columns, *CATEGORY_RECORDS.labelled("category_")]
_ID = PRODUCT_RECORDS.names.index("id")
_CATEGORY_START = PRODUCT_RECORDS.width
_CATEGORY_ID = _CATEGORY_START + CATEGORY_RECORDS.names.index("id")
_RANK = _CATEGORY_START + CATEGORY_RECORDS.width

# Each sort field's column, and where a listing row holds its value.
_SORT_COLUMNS: dict[ProductSortField, tuple[Any, int]] = {
    ProductSortField.NAME: (m.Product.name, PRODUCT_RECORDS.names.index("name")),
    ProductSortField.PRICE: (m.Product.price_amount, PRODUCT_RECORDS.names.index("price_amount")),
    ProductSortField.NEWEST: (m.Product.created_at, PRODUCT_RECORDS.names.index("created_at")),
}


async def list_products(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    filter: ProductFilter | None,
    sort: ProductSort | None,
) -> Connection[Product]:
    db = info.context.db
    dialect = _dialect(info)
    query = _product_query(info, filter)
    text = (filter.search or "").strip() if filter else ""
    match = search.product_match(dialect, text) if text else None

    field = (
        sort.field if sort else (ProductSortField.RELEVANCE if text else ProductSortField.NEWEST)
    )
    if field is ProductSortField.RELEVANCE and not text:
        raise _bad_input("sort RELEVANCE needs filter.search")
    direction = (sort.direction if sort else None) or _DEFAULT_DIRECTION[field]

    # Each product comes with its category (one LEFT JOIN), primed into the request's
    # CategoryByIdLoader: a page that shows categories needs no second statement. Rows are read
    # as records, not entities (see server.models.records): a listing only shows them.
    categories = info.context.loaders.get(CategoryByIdLoader)
    rank = None
    if field is ProductSortField.RELEVANCE and match is not None:
        rank = match.rank.label("rank")
        keys = [SortKey(match.rank, "rank")]

        def key_of(row: Any) -> list[Any]:
            return [row[_RANK], row[_ID]]
    else:
        column, at = _SORT_COLUMNS.get(field, _SORT_COLUMNS[ProductSortField.NEWEST])
        keys = [SortKey(column, field.value.lower())]

        def key_of(row: Any) -> list[Any]:
            return [row[at], row[_ID]]

    def to_node(row: Any) -> Product:
        if row[_CATEGORY_ID] is not None:
            categories.prime(row[_CATEGORY_ID], CATEGORY_RECORDS.from_row(row, _CATEGORY_START))
        return Product.from_model(PRODUCT_RECORDS.from_row(row))  # type: ignore[arg-type]

    shape_key: tuple[Any, ...] | None = None
    if not text and query == catalog.ProductQuery(include_archived=query.include_archived):
        # A whole-catalogue page (the storefront's most common read): one of a few statement
        # shapes, built once and reused (see paginate).
        shape_key = ("products", dialect, field, query.include_archived)
        stmt = _whole_catalogue(dialect, query.include_archived)
    else:
        stmt = select(*_LISTING_COLUMNS) if rank is None else select(*_LISTING_COLUMNS, rank)
        if match is not None:
            stmt = match.apply(stmt)
        elif text:
            # Only punctuation: no terms, so nothing can match (and nothing reaches the engine).
            stmt = stmt.where(false())
        stmt = catalog.filter_products(stmt, dialect, query)
        stmt = stmt.outerjoin(m.Category, m.Category.id == m.Product.category_id)
    try:
        return await paginate(
            db.core_rows,
            stmt,
            keys=keys,
            id_column=m.Product.id,
            descending=direction is SortDirection.DESC,
            to_node=to_node,
            key_of=key_of,
            first=first,
            after=after,
            last=last,
            before=before,
            count=db.scalar,
            shape_key=shape_key,
        )
    except PaginationError as exc:
        raise _bad_input(str(exc)) from exc


@functools.lru_cache(maxsize=8)
def _whole_catalogue(dialect: str, include_archived: bool) -> Select[Any]:
    """Every product (the active ones unless ``include_archived``) with its category."""
    stmt = select(*_LISTING_COLUMNS)
    stmt = catalog.filter_products(
        stmt, dialect, catalog.ProductQuery(include_archived=include_archived)
    )
    return stmt.outerjoin(m.Category, m.Category.id == m.Product.category_id)


@dataclass
class _Candidate:
    text: str
    kind: SuggestionKind
    tier: int
    weight: float
    product: m.Product | None = None
    category: m.Category | None = None


def _tier(text: str, prefix: str) -> int:
    """0: the text is the prefix; 1: it starts with it; 2: a later word starts with it."""
    norm_text, norm_prefix = " ".join(text.lower().split()), " ".join(prefix.lower().split())
    if norm_text == norm_prefix:
        return 0
    return 1 if norm_text.startswith(norm_prefix) else 2


_KIND_ORDER = {SuggestionKind.CATEGORY: 0, SuggestionKind.BRAND: 1, SuggestionKind.PRODUCT: 2}


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def suggest(info: Info, prefix: str, first: int) -> list[SearchSuggestion]:
    if not 1 <= first <= MAX_SUGGESTIONS:
        raise _bad_input(f"first must be between 1 and {MAX_SUGGESTIONS}")
    prefix = " ".join(prefix.split())
    match = search.title_prefix_match(_dialect(info), prefix)
    if match is None:
        return []
    db = info.context.db
    stmt = match.apply(select(m.Product, match.rank.label("rank")).where(m.Product.is_active))
    rows = await db.rows(
        stmt.order_by(match.rank.desc(), m.Product.id).limit(SUGGESTION_CANDIDATES)
    )
    categories = await db.scalars(
        select(m.Category)
        .where(func.lower(m.Category.name).like(_like_prefix(prefix), escape="\\"))
        .order_by(m.Category.position, m.Category.id)
        .limit(first)
    )

    candidates: list[_Candidate] = []
    brand_hits: dict[str, int] = defaultdict(int)
    for position, (product, _rank) in enumerate(rows):
        if search.matches_prefix(product.name, prefix):
            # Earlier rows ranked higher: weight falls with position.
            candidates.append(
                _Candidate(
                    product.name,
                    SuggestionKind.PRODUCT,
                    _tier(product.name, prefix),
                    -position,
                    product=product,
                )
            )
        if product.brand and search.matches_prefix(product.brand, prefix):
            brand_hits[product.brand] += 1
    for brand, hits in brand_hits.items():
        candidates.append(_Candidate(brand, SuggestionKind.BRAND, _tier(brand, prefix), hits))
    for category in categories:
        candidates.append(
            _Candidate(
                category.name,
                SuggestionKind.CATEGORY,
                _tier(category.name, prefix),
                0.0,
                category=category,
            )
        )

    candidates.sort(key=lambda c: (c.tier, _KIND_ORDER[c.kind], -c.weight, len(c.text), c.text))
    out: list[SearchSuggestion] = []
    seen: set[str] = set()
    for c in candidates:
        key = c.text.casefold()
        if key in seen:
            continue
        seen.add(key)
        out.append(
            SearchSuggestion(
                text=c.text,
                kind=c.kind,
                product=Product.from_model(c.product) if c.product is not None else None,
                category=Category.from_model(c.category) if c.category is not None else None,
            )
        )
        if len(out) == first:
            break
    return out


@strawberry.type
class ProductQueries:
    @strawberry.field(description="Products on sale, filtered and sorted (keyset pagination).")
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ProductFilter | None = None,
        sort: ProductSort | None = None,
    ) -> Connection[Product]:
        return await list_products(
            info, first=first, after=after, last=last, before=before, filter=filter, sort=sort
        )

    @strawberry.field(description="A product by its global id (archived ones: staff only).")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        pk = parse_node_id(id, "Product")
        if pk is None:
            return None
        row = await info.context.loaders.get(ProductByIdLoader).load(pk)
        return Product.from_model(row) if row and Product.can_view(info, row) else None

    @strawberry.field(description="A product by its SKU (case-insensitive).")
    async def product_by_sku(self, info: Info, sku: str) -> Product | None:
        row = await info.context.db.scalar(catalog.product_by_sku(sku))
        return Product.from_model(row) if row and Product.can_view(info, row) else None

    @strawberry.field(description="The root categories, each with its children.")
    async def categories(self, info: Info) -> list[Category]:
        rows = await info.context.db.scalars(
            select(m.Category)
            .where(m.Category.parent_id.is_(None))
            .order_by(m.Category.position, m.Category.name, m.Category.id)
        )
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="A category by its slug.")
    async def category(self, info: Info, slug: str) -> Category | None:
        row = await info.context.db.scalar(
            select(m.Category).where(m.Category.slug == slug.strip().lower())
        )
        return Category.from_model(row) if row else None

    @strawberry.field(
        description="Completions for a prefix: product names, brands and category names, "
        "best first, each text once."
    )
    async def search_suggestions(
        self, info: Info, prefix: str, first: int = 10
    ) -> list[SearchSuggestion]:
        return await suggest(info, prefix, first)


# ---------------------------------------------------------------------------------------------
# Mutations (staff)


def _price(value: MoneyInput, default_currency: str, field: str) -> tuple[int, str]:
    currency = (value.currency or default_currency).strip().upper()
    try:
        return to_minor(value.amount, currency), currency
    except (ValueError, ArithmeticError) as exc:
        raise ValidationFailed(f"{field}: {exc}", field=field) from exc


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


@strawberry.input
class CreateCategoryInput:
    name: str
    slug: str = strawberry.field(description="Lower-case words joined by '-', unique.")
    parent_id: strawberry.ID | None = None
    description: str = ""
    position: int = 0


@strawberry.input(description="Only the fields given change; parentId: null makes it a root.")
class UpdateCategoryInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    parent_id: strawberry.ID | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    position: int | None = strawberry.UNSET


@strawberry.input
class CreateProductInput:
    sku: str = strawberry.field(description="Letters, digits, '.', '_', '-'; stored upper-case.")
    name: str
    price: MoneyInput = strawberry.field(description="The base price (currency: shop default).")
    cost_price: MoneyInput | None = None
    description: str = ""
    brand: str | None = None
    category_id: strawberry.ID | None = None
    tags: list[str] = strawberry.field(default_factory=list)
    attributes: JSON | None = None


@strawberry.input(description="Only the fields given change; null clears a nullable one.")
class UpdateProductInput:
    id: strawberry.ID
    sku: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    price: MoneyInput | None = strawberry.UNSET
    cost_price: MoneyInput | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    brand: str | None = strawberry.UNSET
    category_id: strawberry.ID | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET
    is_active: bool | None = strawberry.UNSET


@strawberry.input
class ArchiveProductInput:
    id: strawberry.ID


@strawberry.type
class CreateCategorySuccess:
    category: Category


@strawberry.type
class UpdateCategorySuccess:
    category: Category


@strawberry.type
class CreateProductSuccess:
    product: Product


@strawberry.type
class UpdateProductSuccess:
    product: Product


@strawberry.type
class ArchiveProductSuccess:
    product: Product


CreateCategoryResult = Annotated[
    CreateCategorySuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateCategoryResult"),
]
UpdateCategoryResult = Annotated[
    UpdateCategorySuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("UpdateCategoryResult"),
]
CreateProductResult = Annotated[
    CreateProductSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateProductResult"),
]
UpdateProductResult = Annotated[
    UpdateProductSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("UpdateProductResult"),
]
ArchiveProductResult = Annotated[
    ArchiveProductSuccess | NotFoundError, strawberry.union("ArchiveProductResult")
]


def _required(value: Any, field: str) -> Any:
    # Non-null fields of an update may be omitted, but not set to null.
    if value is None:
        raise ValidationFailed(f"{field} cannot be null", field=field)
    return value


def _category_changes(input: UpdateCategoryInput) -> catalog.CategoryFields:
    changes: dict[str, Any] = {}
    for attr, field in (("name", "name"), ("slug", "slug"), ("description", "description")):
        value = getattr(input, attr)
        if _given(value):
            changes[attr] = _required(value, field)
    if _given(input.position):
        changes["position"] = _required(input.position, "position")
    if _given(input.parent_id):
        changes["parent_id"] = optional_node_id(input.parent_id, "Category", "parentId")
    return catalog.CategoryFields(**changes)


def _product_changes(info: Info, input: UpdateProductInput) -> catalog.ProductFields:
    currency = info.context.settings.currency
    changes: dict[str, Any] = {}
    for attr, field in (("sku", "sku"), ("name", "name"), ("description", "description")):
        value = getattr(input, attr)
        if _given(value):
            changes[attr] = _required(value, field)
    if _given(input.price):
        price = _required(input.price, "price")
        changes["price_amount"], changes["currency"] = _price(price, currency, "price")
    if _given(input.cost_price):
        if input.cost_price is None:
            changes["cost_amount"] = None
        else:
            amount, cost_currency = _price(input.cost_price, currency, "costPrice")
            changes["cost_amount"], changes["cost_currency"] = amount, cost_currency
    if _given(input.brand):
        changes["brand"] = input.brand
    if _given(input.category_id):
        changes["category_id"] = optional_node_id(input.category_id, "Category", "categoryId")
    if _given(input.tags):
        changes["tags"] = _required(input.tags, "tags")
    if _given(input.attributes):
        changes["attributes"] = _attributes(input.attributes)
    if _given(input.is_active):
        changes["is_active"] = _required(input.is_active, "isActive")
    return catalog.ProductFields(**changes)


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed("attributes must be an object", field="attributes")
    return value


@strawberry.type
class ProductMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CreateCategoryResult:
        try:
            parent_id = optional_node_id(input.parent_id, "Category", "parentId")
        except DomainError as exc:
            return to_graphql(exc)
        result = await run_mutation(
            info,
            catalog.create_category,
            name=input.name,
            slug=input.slug,
            parent_id=parent_id,
            description=input.description,
            position=input.position,
        )
        if isinstance(result, Error):
            return result
        return CreateCategorySuccess(category=Category.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_category(self, info: Info, input: UpdateCategoryInput) -> UpdateCategoryResult:
        try:
            pk = require_node_id(input.id, "Category", "id")
            changes = _category_changes(input)
        except DomainError as exc:
            return to_graphql(exc)
        result = await run_mutation(info, catalog.update_category, pk, changes)
        if isinstance(result, Error):
            return result
        return UpdateCategorySuccess(category=Category.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductResult:
        default_currency = info.context.settings.currency
        try:
            price_amount, currency = _price(input.price, default_currency, "price")
            cost_amount = None
            if input.cost_price is not None:
                cost_amount, cost_currency = _price(input.cost_price, currency, "costPrice")
                if cost_currency != currency:
                    raise ValidationFailed(
                        "costPrice must be in the price's currency", field="costPrice"
                    )
            category_id = optional_node_id(input.category_id, "Category", "categoryId")
            attributes = _attributes(input.attributes)
        except DomainError as exc:
            return to_graphql(exc)
        result = await run_mutation(
            info,
            catalog.create_product,
            sku=input.sku,
            name=input.name,
            price_amount=price_amount,
            currency=currency,
            cost_amount=cost_amount,
            description=input.description,
            brand=input.brand,
            category_id=category_id,
            tags=input.tags,
            attributes=attributes,
        )
        if isinstance(result, Error):
            return result
        return CreateProductSuccess(product=Product.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductResult:
        try:
            pk = require_node_id(input.id, "Product", "id")
            changes = _product_changes(info, input)
        except DomainError as exc:
            return to_graphql(exc)
        result = await run_mutation(info, catalog.update_product, pk, changes)
        if isinstance(result, Error):
            return result
        return UpdateProductSuccess(product=Product.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def archive_product(self, info: Info, input: ArchiveProductInput) -> ArchiveProductResult:
        try:
            pk = require_node_id(input.id, "Product", "id")
        except DomainError as exc:
            return to_graphql(exc)
        result = await run_mutation(info, catalog.archive_product, pk)
        if isinstance(result, Error):
            return result
        return ArchiveProductSuccess(product=Product.from_model(result))


QUERIES: list[type[Any]] = [ProductQueries]
MUTATIONS: list[type[Any]] = [ProductMutations]
TYPES: list[type[Any]] = [Product, Category, SearchSuggestion]
