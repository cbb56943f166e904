"""Product variants (SKUs) and option axes over GraphQL: what a product page shows."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay

from schema.loaders import (
    ProductByIdLoader,
    ProductOptionsByProductIdLoader,
    ProductVariantByIdLoader,
    ProductVariantsByProductIdLoader,
)
from schema.products import Product
from server import models as m
from server.graphql.context import Info
from server.graphql.money import Money, money
from server.graphql.node import FromModel, ModelNode
from server.permissions import CATALOG_MANAGE, CATALOG_READ


@strawberry.type(description="One value of a variant on one option axis, e.g. colour: 红色.")
class OptionValue:
    name: str
    value: str


@strawberry.type(description="An option axis of a product (colour, size…) and its values.")
class ProductOption(FromModel):
    name: str
    position: int
    values: list[str]


@strawberry.type(description="A sellable unit of a product (SKU): one value on each option axis.")
class ProductVariant(ModelNode):
    loader = ProductVariantByIdLoader

    id: relay.NodeID[int]
    sku: str
    barcode: str | None = strawberry.field(description="GTIN/EAN/UPC, when it has one.")
    weight_grams: int | None
    position: int
    is_active: bool = strawberry.field(description="False when this SKU is no longer sold.")
    product_id: strawberry.Private[int]
    price_amount: strawberry.Private[int]
    _model: strawberry.Private[m.ProductVariant]

    @classmethod
    def can_view(cls, info: Info, model: m.ProductVariant) -> bool:
        # A variant is seen wherever its product is; an inactive one by the catalogue's staff.
        return bool(model.is_active) or info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE)

    @strawberry.field(description="Its value on each of the product's option axes.")
    def options(self) -> list[OptionValue]:
        return [OptionValue(name=k, value=v) for k, v in self._model.options.items()]

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.get(ProductByIdLoader).load(self.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The catalogue price of this SKU, before any adjustment.")
    async def base_price(self, info: Info) -> Money:
        row = await info.context.loaders.get(ProductByIdLoader).load(self.product_id)
        return money(self.price_amount, row.currency if row is not None else "CNY")


@strawberry.type
class ProductVariants:
    """Fields this domain adds to Product (``root`` is the Product)."""

    @strawberry.field(description="The product's option axes, in display order.")
    async def options(self, root: Product, info: Info) -> list[ProductOption]:
        rows = await info.context.loaders.get(ProductOptionsByProductIdLoader).load(root.id)
        return [ProductOption.from_model(row) for row in rows]

    @strawberry.field(description="The product's variants (SKUs) on sale, in display order.")
    async def variants(self, root: Product, info: Info) -> list[ProductVariant]:
        rows = await info.context.loaders.get(ProductVariantsByProductIdLoader).load(root.id)
        return [
            ProductVariant.from_model(row) for row in rows if ProductVariant.can_view(info, row)
        ]


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [ProductVariant]
EXTENSIONS: dict[str, list[type[Any]]] = {"Product": [ProductVariants]}
