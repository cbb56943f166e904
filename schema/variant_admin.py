"""The catalogue's staff mutations on variants (catalog.manage): a product's option axes and its
variants (SKUs). The rules they keep: server.services.variant_admin."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.catalog_admin import money_input
from schema.products import Product
from schema.variants import ProductVariant
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.money import MoneyInput
from server.graphql.mutations import mutate
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE
from server.services import variant_admin
from server.services.errors import ValidationFailed


@strawberry.input(description="An option axis and its values, in display order.")
class ProductOptionInput:
    name: str = strawberry.field(description="e.g. 颜色; unique on the product (any case).")
    values: list[str] = strawberry.field(description="1-50 distinct values, e.g. [S, M, L].")


@strawberry.input(
    description="The product's option axes, all of them, in display order (this replaces the "
    "axes it had: reorder by sending them in the new order)."
)
class SetProductOptionsInput:
    product_id: strawberry.ID
    options: list[ProductOptionInput]


@strawberry.input(description="Renames a value on its axis and on every variant that has it.")
class RenameProductOptionValueInput:
    product_id: strawberry.ID
    option: str
    value: str
    new_value: str


@strawberry.input(description="A variant's value on one option axis.")
class OptionValueInput:
    name: str
    value: str


@strawberry.input
class CreateProductVariantInput:
    product_id: strawberry.ID
    sku: str = strawberry.field(description="Letters, digits, '.', '_', '-'; stored upper-case.")
    options: list[OptionValueInput] = strawberry.field(
        description="One declared value on each of the product's option axes."
    )
    price: MoneyInput = strawberry.field(description="In the product's currency.")
    cost_price: MoneyInput | None = None
    barcode: str | None = strawberry.field(
        default=None, description="A GTIN-8, -12, -13 or -14 with its check digit."
    )
    weight_grams: int | None = None
    position: int | None = strawberry.field(default=None, description="Default: last.")


@strawberry.input(description="Only the fields given change; null clears a nullable one.")
class UpdateProductVariantInput:
    id: strawberry.ID
    sku: str | None = strawberry.UNSET
    options: list[OptionValueInput] | None = strawberry.UNSET
    price: MoneyInput | None = strawberry.UNSET
    cost_price: MoneyInput | None = strawberry.UNSET
    barcode: str | None = strawberry.UNSET
    weight_grams: int | None = strawberry.UNSET
    position: int | None = strawberry.UNSET


@strawberry.input
class ProductVariantIdInput:
    id: strawberry.ID


@strawberry.type
class SetProductOptionsSuccess:
    product: Product


@strawberry.type
class ProductVariantSuccess:
    """A variant as it now is, and its product (its from price, its other variants)."""

    variant: ProductVariant
    product: Product


ProductOptionsResult = Annotated[
    SetProductOptionsSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ProductOptionsResult"),
]
ProductVariantResult = Annotated[
    ProductVariantSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ProductVariantResult"),
]


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


def _required(value: Any, field: str) -> Any:
    if value is None:
        raise ValidationFailed(f"{field} cannot be null", field=field)
    return value


def _pairs(options: list[OptionValueInput]) -> list[tuple[str, str]]:
    return [(o.name, o.value) for o in options]


def _fields(info: Info, input: CreateProductVariantInput | UpdateProductVariantInput) -> Any:
    """The variant's fields given in ``input`` (KEEP for the others)."""
    shop = info.context.settings.currency
    changes: dict[str, Any] = {}
    if _given(input.sku):
        changes["sku"] = _required(input.sku, "sku")
    if _given(input.options):
        changes["options"] = _pairs(_required(input.options, "options"))
    if _given(input.price):
        price = _required(input.price, "price")
        changes["price_amount"], currency = money_input(price, shop, "price")
        if price.currency is not None:
            changes["currency"] = currency
    if _given(input.cost_price):
        if input.cost_price is None:
            changes["cost_amount"] = None
        else:
            changes["cost_amount"], currency = money_input(input.cost_price, shop, "costPrice")
            if input.cost_price.currency is not None:
                changes["cost_currency"] = currency
    if _given(input.barcode):
        changes["barcode"] = input.barcode
    if _given(input.weight_grams):
        changes["weight_grams"] = input.weight_grams
    if _given(input.position) and input.position is not None:
        changes["position"] = input.position
    return variant_admin.VariantFields(**changes)


Changed = tuple[m.ProductVariant, m.Product]


async def _with_product(session: AsyncSession, variant: m.ProductVariant) -> Changed:
    product = await session.get(m.Product, variant.product_id)  # in the session already
    assert product is not None  # a variant's product (foreign key)
    return variant, product


def _success(changed: Changed) -> ProductVariantSuccess:
    variant, product = changed
    return ProductVariantSuccess(
        variant=ProductVariant.from_model(variant), product=Product.from_model(product)
    )


def _variant_id(input: Any) -> int:
    return require_node_id(input.id, "ProductVariant", "id")


@strawberry.type
class VariantMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def set_product_options(
        self, info: Info, input: SetProductOptionsInput
    ) -> ProductOptionsResult:
        async def work(session: AsyncSession) -> m.Product:
            pk = require_node_id(input.product_id, "Product", "productId")
            axes = [variant_admin.OptionAxis(o.name, o.values) for o in input.options]
            return await variant_admin.set_options(session, pk, axes)

        return await mutate(
            info, work, lambda row: SetProductOptionsSuccess(product=Product.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def rename_product_option_value(
        self, info: Info, input: RenameProductOptionValueInput
    ) -> ProductOptionsResult:
        async def work(session: AsyncSession) -> m.Product:
            pk = require_node_id(input.product_id, "Product", "productId")
            return await variant_admin.rename_option_value(
                session, pk, input.option, input.value, input.new_value
            )

        return await mutate(
            info, work, lambda row: SetProductOptionsSuccess(product=Product.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_product_variant(
        self, info: Info, input: CreateProductVariantInput
    ) -> ProductVariantResult:
        async def work(session: AsyncSession) -> Changed:
            pk = require_node_id(input.product_id, "Product", "productId")
            variant = await variant_admin.create_variant(session, pk, _fields(info, input))
            return await _with_product(session, variant)

        return await mutate(info, work, _success)

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_product_variant(
        self, info: Info, input: UpdateProductVariantInput
    ) -> ProductVariantResult:
        async def work(session: AsyncSession) -> Changed:
            variant = await variant_admin.update_variant(
                session, _variant_id(input), _fields(info, input)
            )
            return await _with_product(session, variant)

        return await mutate(info, work, _success)

    @strawberry.mutation(
        permission_classes=[HasPermission(CATALOG_MANAGE)],
        description="Takes a variant off sale (it keeps its history). The last variant on sale "
        "of a product on sale cannot be archived: archive the product.",
    )
    async def archive_product_variant(
        self, info: Info, input: ProductVariantIdInput
    ) -> ProductVariantResult:
        async def work(session: AsyncSession) -> Changed:
            variant = await variant_admin.set_variant_active(session, _variant_id(input), False)
            return await _with_product(session, variant)

        return await mutate(info, work, _success)

    @strawberry.mutation(
        permission_classes=[HasPermission(CATALOG_MANAGE)],
        description="Puts an archived variant back on sale; its options must be declared ones.",
    )
    async def reactivate_product_variant(
        self, info: Info, input: ProductVariantIdInput
    ) -> ProductVariantResult:
        async def work(session: AsyncSession) -> Changed:
            variant = await variant_admin.set_variant_active(session, _variant_id(input), True)
            return await _with_product(session, variant)

        return await mutate(info, work, _success)


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [VariantMutations]
TYPES: list[type[Any]] = []
