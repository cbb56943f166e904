"""Warehouses and stock levels over GraphQL (administration; reservation is checkout's)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.loaders import (
    ProductByIdLoader,
    ProductVariantByIdLoader,
    StockLevelByIdLoader,
    WarehouseByIdLoader,
)
from schema.products import Product
from schema.variants import ProductVariant
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError, VariantRequired
from server.graphql.ids import filter_node_id, optional_node_id, require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortDirection, SortKey
from server.graphql.permissions import HasPermission
from server.permissions import STOCK_MANAGE, STOCK_READ
from server.services import warehouses as service
from server.services.variant_refs import VariantRef

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(
    m.WarehouseKind,
    description="REGIONAL warehouses cover about 300 km; FORWARD ones (前置仓) sit near "
    "customers for same-day or within-the-hour delivery.",
)


@strawberry.type
class Warehouse(ModelNode):
    loader = WarehouseByIdLoader

    id: relay.NodeID[int]
    code: str
    name: str
    kind: m.WarehouseKind
    region: str
    province: str
    city: str
    is_active: bool


@strawberry.type(description="One variant's (SKU's) stock in one warehouse (staff only).")
class StockLevel(ModelNode):
    loader = StockLevelByIdLoader

    id: relay.NodeID[int]
    on_hand: int
    reserved: int = strawberry.field(description="Held for orders placed but not shipped.")
    safety_stock: int
    product_id: strawberry.Private[int]
    variant_id: strawberry.Private[int]
    warehouse_id: strawberry.Private[int]

    @classmethod
    def can_view(cls, info: Info, model: m.StockLevel) -> bool:
        return info.context.viewer.has(STOCK_READ, STOCK_MANAGE)

    @strawberry.field(description="What can still be sold: on hand minus reserved.")
    def available(self) -> int:
        return self.on_hand - self.reserved

    @strawberry.field(description="Available is below the safety stock.")
    def below_safety_stock(self) -> bool:
        return self.on_hand - self.reserved < self.safety_stock

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.get(ProductByIdLoader).load(self.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The variant (SKU) whose stock this is.")
    async def variant(self, info: Info) -> ProductVariant | None:
        row = await info.context.loaders.get(ProductVariantByIdLoader).load(self.variant_id)
        return ProductVariant.from_model(row) if row is not None else None

    @strawberry.field
    async def warehouse(self, info: Info) -> Warehouse | None:
        row = await info.context.loaders.get(WarehouseByIdLoader).load(self.warehouse_id)
        return Warehouse.from_model(row) if row is not None else None


@strawberry.input
class WarehouseFilter:
    kind: m.WarehouseKind | None = None
    region: str | None = None
    city: str | None = None
    include_inactive: bool = False


@strawberry.input
class StockLevelFilter:
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="The stock of every variant of this product."
    )
    variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The stock of this variant (SKU)."
    )
    warehouse_id: strawberry.ID | None = None
    below_safety_stock: bool | None = None


@strawberry.enum
class StockLevelSortField(Enum):
    ID = "ID"
    AVAILABLE = "AVAILABLE"


@strawberry.input
class StockLevelSort:
    field: StockLevelSortField = StockLevelSortField.ID
    direction: SortDirection = SortDirection.ASC


@strawberry.type
class InventoryQueries:
    @strawberry.field(description="Warehouses, by code.", extensions=[Paged()])
    async def warehouses(
        self,
        info: Info,
        page: Page,
        filter: WarehouseFilter | None = None,
    ) -> Connection[Warehouse]:
        flt = filter or WarehouseFilter()
        stmt = service.warehouses_query(
            service.WarehouseFilter(
                kind=flt.kind,
                region=flt.region,
                city=flt.city,
                include_inactive=flt.include_inactive,
            )
        )
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(m.Warehouse.code, "code")],
            to_node=Warehouse.from_model,
        )

    @strawberry.field(
        description="Stock levels (stock.read).",
        permission_classes=[HasPermission(STOCK_READ, STOCK_MANAGE)],
        extensions=[Paged()],
    )
    async def stock_levels(
        self,
        info: Info,
        page: Page,
        filter: StockLevelFilter | None = None,
        sort: StockLevelSort | None = None,
    ) -> Connection[StockLevel]:
        flt = filter or StockLevelFilter()
        order = sort or StockLevelSort()
        stmt = service.stock_levels_query(
            service.StockFilter(
                product_id=filter_node_id(flt.product_id, "Product"),
                variant_id=filter_node_id(flt.variant_id, "ProductVariant"),
                warehouse_id=filter_node_id(flt.warehouse_id, "Warehouse"),
                below_safety_stock=flt.below_safety_stock,
            )
        )
        by_available = order.field is StockLevelSortField.AVAILABLE
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(service.available_expr(), "available")] if by_available else [],
            to_node=StockLevel.from_model,
            descending=order.direction is SortDirection.DESC,
        )


@strawberry.input
class CreateWarehouseInput:
    code: str = strawberry.field(description="Unique, e.g. SH-01 (stored upper-case).")
    name: str
    kind: m.WarehouseKind = m.WarehouseKind.REGIONAL
    region: str = ""
    province: str = ""
    city: str = ""


@strawberry.input
class SetStockLevelInput:
    warehouse_id: strawberry.ID
    variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The variant (SKU) whose stock this is."
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A product with a single variant on sale: that variant's stock. With "
        "variantId, the product the variant must belong to.",
    )
    on_hand: int = strawberry.field(description="The counted quantity; not below reserved.")
    safety_stock: int | None = None


@strawberry.input
class AdjustStockInput:
    warehouse_id: strawberry.ID
    variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The variant (SKU) whose stock this is."
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A product with a single variant on sale: that variant's stock. With "
        "variantId, the product the variant must belong to.",
    )
    delta: int = strawberry.field(description="Units to add (negative to remove).")
    reason: str = strawberry.field(description="Why, e.g. 到货入库 (goods received), 盘亏.")


@strawberry.type
class CreateWarehouseSuccess:
    warehouse: Warehouse


@strawberry.type
class SetStockLevelSuccess:
    stock_level: StockLevel


@strawberry.type
class AdjustStockSuccess:
    stock_level: StockLevel


CreateWarehouseResult = Annotated[
    CreateWarehouseSuccess | ValidationError | ConflictError,
    strawberry.union("CreateWarehouseResult"),
]
SetStockLevelResult = Annotated[
    SetStockLevelSuccess | ValidationError | NotFoundError | VariantRequired,
    strawberry.union("SetStockLevelResult"),
]
AdjustStockResult = Annotated[
    AdjustStockSuccess | ValidationError | NotFoundError | VariantRequired,
    strawberry.union("AdjustStockResult"),
]


def _ids(input: SetStockLevelInput | AdjustStockInput) -> dict[str, Any]:
    return {
        "warehouse_id": require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
        "target": VariantRef(
            product_id=optional_node_id(input.product_id, "Product", "productId"),
            variant_id=optional_node_id(input.variant_id, "ProductVariant", "variantId"),
        ),
    }


@strawberry.type
class InventoryMutations:
    @strawberry.mutation(permission_classes=[HasPermission(STOCK_MANAGE)])
    async def create_warehouse(
        self, info: Info, input: CreateWarehouseInput
    ) -> CreateWarehouseResult:
        async def work(session: AsyncSession) -> m.Warehouse:
            return await service.create_warehouse(
                session,
                code=input.code,
                name=input.name,
                kind=m.WarehouseKind(input.kind.value),
                region=input.region,
                province=input.province,
                city=input.city,
            )

        return await mutate(
            info, work, lambda row: CreateWarehouseSuccess(warehouse=Warehouse.from_model(row))
        )

    @strawberry.mutation(
        description="Set the counted on-hand quantity (a stock take).",
        permission_classes=[HasPermission(STOCK_MANAGE)],
    )
    async def set_stock_level(self, info: Info, input: SetStockLevelInput) -> SetStockLevelResult:
        async def work(session: AsyncSession) -> m.StockLevel:
            return await service.set_stock_level(
                session,
                **_ids(input),
                on_hand=input.on_hand,
                safety_stock=input.safety_stock,
                staff_id=info.context.viewer.staff_id,
            )

        return await mutate(
            info, work, lambda row: SetStockLevelSuccess(stock_level=StockLevel.from_model(row))
        )

    @strawberry.mutation(
        description="Add or remove units atomically (concurrent adjustments all count).",
        permission_classes=[HasPermission(STOCK_MANAGE)],
    )
    async def adjust_stock(self, info: Info, input: AdjustStockInput) -> AdjustStockResult:
        async def work(session: AsyncSession) -> m.StockLevel:
            return await service.adjust_stock(
                session,
                **_ids(input),
                delta=input.delta,
                reason=input.reason,
                staff_id=info.context.viewer.staff_id,
            )

        return await mutate(
            info, work, lambda row: AdjustStockSuccess(stock_level=StockLevel.from_model(row))
        )


QUERIES: list[type[Any]] = [InventoryQueries]
MUTATIONS: list[type[Any]] = [InventoryMutations]
TYPES: list[type[Any]] = [Warehouse, StockLevel]
