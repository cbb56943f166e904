"""The catalogue over GraphQL: categories (a tree) and products."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.scalars import JSON

from schema.context import Info
from schema.loaders import (
    CategoriesByParentIdLoader,
    CategoryByIdLoader,
    CustomerByIdLoader,
    ProductByIdLoader,
    StockLevelsByProductIdLoader,
)
from schema.money import Money, money
from schema.node import ModelNode
from schema.pagination import Connection, SortKey, paginate
from server import models as m
from server.services import pricing


@strawberry.type
class Category(ModelNode):
    loader = CategoryByIdLoader

    id: relay.NodeID[int]
    name: str
    slug: str
    description: str
    _model: strawberry.Private[m.Category]

    @classmethod
    def from_model(cls, model: m.Category) -> Category:
        return cls(
            id=model.id,
            name=model.name,
            slug=model.slug,
            description=model.description,
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


@strawberry.type(description="How many units can be sold now, over all warehouses.")
class StockAvailability:
    in_stock: bool
    quantity_available: int


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
            _model=model,
        )

    @strawberry.field(description="The catalogue price, before any adjustment.")
    def base_price(self) -> Money:
        return money(self._model.price_amount, self._model.currency)

    @strawberry.field(description="The unit price for the current viewer, adjustments applied.")
    async def price(self, info: Info) -> Money:
        breakdown = await _breakdown(info, self._model, 1)
        return money(breakdown.final, breakdown.currency)

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        if self._model.category_id is None:
            return None
        row = await info.context.loaders.get(CategoryByIdLoader).load(self._model.category_id)
        return Category.from_model(row) if row else None

    @strawberry.field
    async def availability(self, info: Info) -> StockAvailability:
        levels = await info.context.loaders.get(StockLevelsByProductIdLoader).load(self._model.id)
        available = sum(max(0, lv.on_hand - lv.reserved) for lv in levels)
        return StockAvailability(in_stock=available > 0, quantity_available=available)


async def _breakdown(info: Info, product: m.Product, quantity: int) -> pricing.PriceBreakdown:
    ctx = info.context
    customer = None
    if ctx.viewer.customer_id is not None:
        customer = await ctx.loaders.get(CustomerByIdLoader).load(ctx.viewer.customer_id)
    if not ctx.plugins.pm.hook.price_adjustments.get_hookimpls():
        return pricing.PriceBreakdown(currency=product.currency, base=product.price_amount)
    return await ctx.db.run(pricing.unit_price, ctx.plugins, product, customer, quantity)


@strawberry.type
class ProductQueries:
    @strawberry.field
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Product]:
        stmt = select(m.Product).where(m.Product.is_active)
        return await paginate(
            info.context.db.scalars,
            stmt,
            keys=[],
            id_column=m.Product.id,
            descending=False,
            to_node=Product.from_model,
            key_of=lambda p: [p.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )

    @strawberry.field
    async def categories(self, info: Info) -> list[Category]:
        rows = await info.context.db.scalars(
            select(m.Category)
            .where(m.Category.parent_id.is_(None))
            .order_by(m.Category.position, m.Category.id)
        )
        return [Category.from_model(r) for r in rows]


QUERIES: list[type[Any]] = [ProductQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [Product, Category]
_ = SortKey
