"""Product variants (SKUs) and option axes over GraphQL: what a product page shows — the
variants with their prices and stock, the price range, the matrix of option combinations —
and the lookups by SKU and barcode."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import strawberry
from strawberry import relay

from schema.loaders import (
    AvailableUnitsByVariantIdLoader,
    ProductByIdLoader,
    ProductOptionsByProductIdLoader,
    ProductVariantByIdLoader,
    ProductVariantsByProductIdLoader,
)
from schema.pricing import PriceBreakdown, breakdown_type, variant_price
from schema.products import MAX_QUANTITY, Product, StockAvailability, bad_input
from server import models as m
from server.graphql.context import Info
from server.graphql.money import Money, money
from server.graphql.node import FromModel, ModelNode
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE, CATALOG_READ, PRICING_MANAGE
from server.services import pricing, variants

DEFAULT_CURRENCY = "CNY"


@strawberry.type(description="One value of a variant on one option axis, e.g. colour: 红色.")
class OptionValue:
    name: str
    value: str


@strawberry.type(description="An option axis of a product (colour, size…) and its values.")
class ProductOption(FromModel):
    name: str
    position: int
    values: list[str]


def _staff(info: Info) -> bool:
    return info.context.viewer.has(CATALOG_READ, CATALOG_MANAGE)


async def _product_row(info: Info, product_id: int) -> m.Product | None:
    return await info.context.loaders.get(ProductByIdLoader).load(product_id)


async def _axes(info: Info, product_id: int) -> list[m.ProductOption]:
    return await info.context.loaders.get(ProductOptionsByProductIdLoader).load(product_id)


async def _variant_rows(info: Info, product_id: int) -> list[m.ProductVariant]:
    """The product's variants the viewer may see (archived ones: the catalogue's staff)."""
    rows = await info.context.loaders.get(ProductVariantsByProductIdLoader).load(product_id)
    return [row for row in rows if ProductVariant.can_view(info, row)]


async def _availability(info: Info, variant: m.ProductVariant) -> StockAvailability:
    if not variant.is_active:
        return StockAvailability(in_stock=False, quantity_available=0)
    units = await info.context.loaders.get(AvailableUnitsByVariantIdLoader).load(variant.id)  # type: ignore[arg-type]  # a stored variant has its id
    return StockAvailability(in_stock=units > 0, quantity_available=units)


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
    cost_amount: strawberry.Private[int | None]
    _model: strawberry.Private[m.ProductVariant]

    @classmethod
    def can_view(cls, info: Info, model: m.ProductVariant) -> bool:
        # A variant is seen wherever its product is; an inactive one by the catalogue's staff.
        return bool(model.is_active) or _staff(info)

    async def _currency(self, info: Info) -> str:
        row = await _product_row(info, self.product_id)
        return row.currency if row is not None else DEFAULT_CURRENCY

    @strawberry.field(description="Its value on each of the product's option axes, in their order.")
    async def options(self, info: Info) -> list[OptionValue]:
        order = {axis.name: axis.position for axis in await _axes(info, self.product_id)}
        pairs = sorted(self._model.options.items(), key=lambda kv: order.get(kv[0], len(order)))
        return [OptionValue(name=k, value=v) for k, v in pairs]

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await _product_row(info, self.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The catalogue price of this SKU, before any adjustment.")
    async def base_price(self, info: Info) -> Money:
        return money(self.price_amount, await self._currency(info))

    @strawberry.field(description="The unit price for the current viewer, adjustments applied.")
    async def price(self, info: Info) -> Money:
        value = await variant_price(info, self._model, await self._currency(info), 1)
        return money(value.final, value.currency)

    @strawberry.field(description="The unit price explained: base, each adjustment, the result.")
    async def price_breakdown(self, info: Info, quantity: int = 1) -> PriceBreakdown:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise bad_input(f"quantity must be between 1 and {MAX_QUANTITY}")
        value = await variant_price(info, self._model, await self._currency(info), quantity)
        return breakdown_type(value, quantity)

    @strawberry.field(
        permission_classes=[HasPermission(PRICING_MANAGE, CATALOG_MANAGE)],
        description="What a unit costs the shop (pricing.manage or catalog.manage).",
    )
    async def cost_price(self, info: Info) -> Money | None:
        if self.cost_amount is None:
            return None
        return money(self.cost_amount, await self._currency(info))

    @strawberry.field(
        description="Units active warehouses can sell now (none while the variant is archived)."
    )
    async def availability(self, info: Info) -> StockAvailability:
        return await _availability(info, self._model)


@strawberry.type(description="The lowest and highest price of a product's variants on sale.")
class PriceRange:
    min: Money
    max: Money


@strawberry.type(
    description="One combination of option values: its variant (null when the product has no "
    "variant on sale for it) and whether it can be bought now."
)
class OptionCombination:
    options: list[OptionValue]
    variant: ProductVariant | None
    availability: StockAvailability


@strawberry.type
class ProductVariants:
    """Fields this domain adds to Product (``root`` is the Product)."""

    @strawberry.field(description="The product's option axes, in display order.")
    async def options(self, root: Product, info: Info) -> list[ProductOption]:
        return [ProductOption.from_model(row) for row in await _axes(info, root.id)]

    @strawberry.field(description="The product's variants (SKUs) on sale, in display order.")
    async def variants(self, root: Product, info: Info) -> list[ProductVariant]:
        return [ProductVariant.from_model(row) for row in await _variant_rows(info, root.id)]

    @strawberry.field(
        description="The lowest and highest unit price of its variants on sale for the current "
        "viewer (adjustments applied); null when none is on sale."
    )
    async def price_range(self, root: Product, info: Info) -> PriceRange | None:
        rows = [
            row
            for row in await info.context.loaders.get(ProductVariantsByProductIdLoader).load(
                root.id
            )
            if row.is_active
        ]
        if not rows:
            return None
        if pricing.is_adjustable(info.context.plugins):
            prices = await asyncio.gather(
                *(variant_price(info, row, root.currency, 1) for row in rows)
            )
            finals = [p.final for p in prices]
        else:
            finals = [row.price_amount for row in rows]
        return PriceRange(
            min=money(min(finals), root.currency), max=money(max(finals), root.currency)
        )

    @strawberry.field(
        description="Every combination of the product's option values, in the axes' order "
        "(the last axis varies fastest), with its variant and stock: a product page greys out "
        "what cannot be bought. A product without options has one combination, with no values."
    )
    async def option_matrix(self, root: Product, info: Info) -> list[OptionCombination]:
        axes, rows = await asyncio.gather(_axes(info, root.id), _variant_rows(info, root.id))
        by_key = {row.option_key: row for row in rows}
        combos = itertools.product(*([(a.name, v) for v in a.values] for a in axes))
        found: list[tuple[list[tuple[str, str]], m.ProductVariant | None]] = [
            (list(combo), by_key.get(variants.option_key(dict(combo)))) for combo in combos
        ]
        stocks = await asyncio.gather(
            *(
                _availability(info, row) if row is not None else _none_available()
                for _, row in found
            )
        )
        return [
            OptionCombination(
                options=[OptionValue(name=n, value=v) for n, v in combo],
                variant=ProductVariant.from_model(row) if row is not None else None,
                availability=stock,
            )
            for (combo, row), stock in zip(found, stocks, strict=True)
        ]


async def _none_available() -> StockAvailability:
    return StockAvailability(in_stock=False, quantity_available=0)


async def _visible_variant(info: Info, row: m.ProductVariant | None) -> ProductVariant | None:
    """The variant, when the viewer may see it and its product."""
    if row is None or not ProductVariant.can_view(info, row):
        return None
    product = await _product_row(info, row.product_id)
    if product is None or not Product.can_view(info, product):
        return None
    return ProductVariant.from_model(row)


@strawberry.type
class VariantQueries:
    @strawberry.field(description="A variant by its SKU (case-insensitive).")
    async def product_variant_by_sku(self, info: Info, sku: str) -> ProductVariant | None:
        return await _visible_variant(info, await info.context.db.run(variants.by_sku, sku))

    @strawberry.field(description="A variant by its barcode (GTIN-8, -12, -13 or -14).")
    async def product_variant_by_barcode(self, info: Info, barcode: str) -> ProductVariant | None:
        row = await info.context.db.run(variants.by_barcode, barcode)
        return await _visible_variant(info, row)


QUERIES: list[type[Any]] = [VariantQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [ProductVariant]
EXTENSIONS: dict[str, list[type[Any]]] = {"Product": [ProductVariants]}
