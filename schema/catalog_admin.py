"""The catalogue's staff mutations: create and update categories; create, update and archive
products (catalog.manage)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from schema.categories import Category
from schema.products import Product
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError
from server.graphql.ids import optional_node_id, require_node_id
from server.graphql.money import MoneyInput, to_minor
from server.graphql.mutations import mutate
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE
from server.services import catalog
from server.services.errors import ValidationFailed


def money_input(value: MoneyInput, default_currency: str, field: str) -> tuple[int, str]:
    """(minor units, currency) of a money input; ValidationFailed naming ``field``."""
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
        changes["price_amount"], changes["currency"] = money_input(price, currency, "price")
    if _given(input.cost_price):
        if input.cost_price is None:
            changes["cost_amount"] = None
        else:
            amount, cost_currency = money_input(input.cost_price, currency, "costPrice")
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
class CatalogMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CreateCategoryResult:
        async def work(session: AsyncSession) -> m.Category:
            return await catalog.create_category(
                session,
                name=input.name,
                slug=input.slug,
                parent_id=optional_node_id(input.parent_id, "Category", "parentId"),
                description=input.description,
                position=input.position,
            )

        return await mutate(
            info, work, lambda row: CreateCategorySuccess(category=Category.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_category(self, info: Info, input: UpdateCategoryInput) -> UpdateCategoryResult:
        async def work(session: AsyncSession) -> m.Category:
            pk = require_node_id(input.id, "Category", "id")
            return await catalog.update_category(session, pk, _category_changes(input))

        return await mutate(
            info, work, lambda row: UpdateCategorySuccess(category=Category.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductResult:
        async def work(session: AsyncSession) -> m.Product:
            price_amount, currency = money_input(
                input.price, info.context.settings.currency, "price"
            )
            cost_amount = None
            if input.cost_price is not None:
                cost_amount, cost_currency = money_input(input.cost_price, currency, "costPrice")
                if cost_currency != currency:
                    raise ValidationFailed(
                        "costPrice must be in the price's currency", field="costPrice"
                    )
            return await catalog.create_product(
                session,
                sku=input.sku,
                name=input.name,
                price_amount=price_amount,
                currency=currency,
                cost_amount=cost_amount,
                description=input.description,
                brand=input.brand,
                category_id=optional_node_id(input.category_id, "Category", "categoryId"),
                tags=input.tags,
                attributes=_attributes(input.attributes),
            )

        return await mutate(
            info, work, lambda row: CreateProductSuccess(product=Product.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductResult:
        async def work(session: AsyncSession) -> m.Product:
            pk = require_node_id(input.id, "Product", "id")
            return await catalog.update_product(session, pk, _product_changes(info, input))

        return await mutate(
            info, work, lambda row: UpdateProductSuccess(product=Product.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def archive_product(self, info: Info, input: ArchiveProductInput) -> ArchiveProductResult:
        async def work(session: AsyncSession) -> m.Product:
            return await catalog.archive_product(
                session, require_node_id(input.id, "Product", "id")
            )

        return await mutate(
            info, work, lambda row: ArchiveProductSuccess(product=Product.from_model(row))
        )


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [CatalogMutations]
TYPES: list[type[Any]] = []
