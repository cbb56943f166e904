"""The logistics plugin over GraphQL: replenishment (staff only).

``replenishment`` lists, per product and warehouse that stocks it, the reorder point, safety
stock, suggested order and days of cover (logistics.read or logistics.manage);
``setReplenishmentPolicy`` sets a product's lead time, service level, review period and
minimum order at a warehouse (logistics.manage, audited)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry.dataloader import DataLoader

from plugins.logistics import MANAGE, READ
from plugins.logistics.models import InventoryClass
from plugins.logistics.service import replenishment
from plugins.logistics.service.replenishment import Pair, PolicyInput, Row, RowFilter
from plugins.logistics.service.settings import logistics_settings
from server.models import StockLevel as StockLevelRow
from server.plugin import (
    Connection,
    Database,
    HasPermission,
    Info,
    NotFoundError,
    Page,
    Paged,
    Product,
    SortKey,
    ValidationError,
    Warehouse,
    connection,
    filter_node_id,
    mutate,
    require_node_id,
)

_READERS = HasPermission(READ, MANAGE)
_MANAGERS = HasPermission(MANAGE)

strawberry.enum(
    InventoryClass,
    name="InventoryClass",
    description="SAFETY: held against uncertainty (the safety stock); REGULAR: cycle stock for "
    "the forecast demand over a review period; SEASONAL: built ahead of a seasonal peak (the "
    "forecast over the coming lead time and review period above the history's level).",
)


class ReplenishmentLoader(DataLoader[Pair, Row]):
    """The figures of every row of a page: one batch of statements and forecasts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.config: Any = None  # the plugin's settings, set by the first user
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[Pair]) -> list[Row]:
        found = await self.db.run(replenishment.compute, self.config, list(dict.fromkeys(keys)))
        return [found[key] for key in keys]


def _loader(info: Info) -> ReplenishmentLoader:
    loader = info.context.loaders.get(ReplenishmentLoader)
    if loader.config is None:
        loader.config = logistics_settings(info.context.plugins)
    return loader


@strawberry.type(description="Units of one inventory class.")
class InventoryClassUnits:
    inventory_class: InventoryClass = strawberry.field(name="class")
    units: float


@strawberry.type(
    description="A product's replenishment at one warehouse that stocks it: its policy, "
    "forecast demand and the figures it gives (logistics.read or logistics.manage). Units "
    "are the product's, all variants together."
)
class ReplenishmentRow:
    _product_id: strawberry.Private[int]
    _warehouse_id: strawberry.Private[int]
    _row: strawberry.Private[Row | None] = None

    async def _get(self, info: Info) -> Row:
        if self._row is None:
            return await _loader(info).load((self._product_id, self._warehouse_id))
        return self._row

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it

    @strawberry.field
    def warehouse(self, info: Info) -> Warehouse | None:
        return Warehouse.by_id(info, self._warehouse_id)  # type: ignore[return-value]  # a Warehouse or an awaitable of one

    @strawberry.field(description="On hand, all variants.")
    async def on_hand(self, info: Info) -> int:
        return (await self._get(info)).figures.on_hand

    @strawberry.field(description="Held for orders not shipped yet.")
    async def reserved(self, info: Info) -> int:
        return (await self._get(info)).figures.reserved

    @strawberry.field(
        description="On hand minus reserved: the inventory position (no purchase orders are kept)."
    )
    async def available(self, info: Info) -> int:
        return (await self._get(info)).figures.available

    @strawberry.field(
        description="d: forecast units a day here, over the coming lead time and review period."
    )
    async def daily_demand(self, info: Info) -> float:
        return (await self._get(info)).figures.daily_demand

    @strawberry.field(
        description="σ_d: the standard deviation of the daily units sold from "
        "here over the history window."
    )
    async def demand_deviation(self, info: Info) -> float:
        return (await self._get(info)).figures.demand_sd

    @strawberry.field(description="L: the supplier's lead time, days.")
    async def lead_time_days(self, info: Info) -> float:
        return (await self._get(info)).policy.lead_time_days

    @strawberry.field(description="σ_L: the lead time's standard deviation, days.")
    async def lead_time_deviation_days(self, info: Info) -> float:
        return (await self._get(info)).policy.lead_time_sd_days

    @strawberry.field(description="The chance of not running out within a lead time aimed at.")
    async def service_level(self, info: Info) -> float:
        return (await self._get(info)).policy.service_level

    @strawberry.field(description="R: days between two orders.")
    async def review_days(self, info: Info) -> int:
        return (await self._get(info)).policy.review_days

    @strawberry.field(description="The smallest order, units.")
    async def min_order_quantity(self, info: Info) -> int:
        return (await self._get(info)).policy.min_order_quantity

    @strawberry.field(description="False: the settings' defaults apply (no policy set).")
    async def has_policy(self, info: Info) -> bool:
        return (await self._get(info)).policy.explicit

    @strawberry.field(description="SS = z·√(L·σ_d² + d²·σ_L²), units.")
    async def safety_stock(self, info: Info) -> float:
        return (await self._get(info)).figures.safety_stock

    @strawberry.field(description="ROP = d·L + SS, units.")
    async def reorder_point(self, info: Info) -> float:
        return (await self._get(info)).figures.reorder_point

    @strawberry.field(description="Available at or below the reorder point.")
    async def below_reorder_point(self, info: Info) -> bool:
        return (await self._get(info)).figures.below_reorder_point

    @strawberry.field(
        description="Units to order now: max(minimum, ⌈d·(L+R) + SS − "
        "available⌉) at or below the reorder point, else 0."
    )
    async def suggested_order_quantity(self, info: Info) -> int:
        return (await self._get(info)).figures.order_quantity

    @strawberry.field(description="Days the available stock lasts at d (null when d is 0).")
    async def days_of_cover(self, info: Info) -> float | None:
        return (await self._get(info)).figures.days_of_cover

    @strawberry.field(
        description="The stock the policy calls for, by class: SAFETY, REGULAR (d·R) and SEASONAL."
    )
    async def inventory_classes(self, info: Info) -> list[InventoryClassUnits]:
        f = (await self._get(info)).figures
        return [
            InventoryClassUnits(inventory_class=InventoryClass.SAFETY, units=f.safety_stock),
            InventoryClassUnits(inventory_class=InventoryClass.REGULAR, units=f.regular),
            InventoryClassUnits(inventory_class=InventoryClass.SEASONAL, units=f.seasonal),
        ]


def _row_node(stock: StockLevelRow) -> ReplenishmentRow:
    return ReplenishmentRow(_product_id=stock.product_id, _warehouse_id=stock.warehouse_id)


@strawberry.input
class ReplenishmentFilter:
    warehouse_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    below_reorder_point: bool | None = strawberry.field(
        default=None,
        description=f"Only the rows at or below (true) or above (false) their reorder point; "
        f"the first {replenishment.MAX_SCAN} rows of the other filters are examined.",
    )


@strawberry.input(description="A product's replenishment at a warehouse.")
class SetReplenishmentPolicyInput:
    product_id: strawberry.ID
    warehouse_id: strawberry.ID
    lead_time_days: float = strawberry.field(description="Mean supplier lead time, days (0–365).")
    lead_time_deviation_days: float = strawberry.field(
        default=0.0, description="Its standard deviation, days (0–365)."
    )
    service_level: float = strawberry.field(default=0.95, description="0.5–0.999.")
    review_days: int = strawberry.field(default=7, description="Days between orders (0–365).")
    min_order_quantity: int = strawberry.field(default=1, description="Units (≥ 1).")


@strawberry.type
class SetReplenishmentPolicySuccess:
    row: ReplenishmentRow


SetReplenishmentPolicyResult = Annotated[
    SetReplenishmentPolicySuccess | NotFoundError | ValidationError,
    strawberry.union("SetReplenishmentPolicyResult"),
]


@strawberry.type
class ReplenishmentQueries:
    @strawberry.field(
        description="Replenishment per product and warehouse that stocks it, by product "
        "(logistics.read or logistics.manage). The CSV export has the same figures: GET "
        "/plugins/logistics/replenishment.csv (same filters as query parameters).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def replenishment(
        self, info: Info, page: Page, filter: ReplenishmentFilter | None = None
    ) -> Connection[ReplenishmentRow]:
        flt = RowFilter(
            warehouse_id=filter_node_id(filter.warehouse_id, "Warehouse") if filter else None,
            product_id=filter_node_id(filter.product_id, "Product") if filter else None,
            below_reorder_point=filter.below_reorder_point if filter else None,
        )
        config = logistics_settings(info.context.plugins)
        stmt = await info.context.db.run(replenishment.rows_query, config, flt)
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(col(StockLevelRow.product_id), "product_id")],
            to_node=_row_node,
        )


@strawberry.type
class ReplenishmentMutations:
    @strawberry.mutation(
        description="Set a product's lead time, service level, review period and minimum order "
        "at a warehouse (logistics.manage); answers the row with its new figures.",
        permission_classes=[_MANAGERS],
    )
    async def set_replenishment_policy(
        self, info: Info, input: SetReplenishmentPolicyInput
    ) -> SetReplenishmentPolicyResult:
        config = logistics_settings(info.context.plugins)

        async def work(session: AsyncSession) -> Row:
            value = PolicyInput(
                product_id=require_node_id(input.product_id, "Product", "productId"),
                warehouse_id=require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                lead_time_days=input.lead_time_days,
                lead_time_sd_days=input.lead_time_deviation_days,
                service_level=input.service_level,
                review_days=input.review_days,
                min_order_quantity=input.min_order_quantity,
            )
            await replenishment.set_policy(session, value)
            pair = (value.product_id, value.warehouse_id)
            return (await replenishment.compute(session, config, [pair]))[pair]

        return await mutate(
            info,
            work,
            lambda row: SetReplenishmentPolicySuccess(
                row=ReplenishmentRow(
                    _product_id=row.product_id, _warehouse_id=row.warehouse_id, _row=row
                )
            ),
        )


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [ReplenishmentQueries]
MUTATIONS: list[type[Any]] = [ReplenishmentMutations]
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
