"""Product health over GraphQL, for staff with insights.read: the sell rate (动销率) overall and
per category, the sell-through of new products, slow movers and stock-outs of a period
(``productHealth``). The rules and the SQL are in server/services/product_health.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from strawberry import relay

from schema.categories import Category
from schema.products import Product
from schema.variants import ProductVariant
from server.graphql.context import Info
from server.graphql.errors import ValidationError, validation_error
from server.graphql.money import MoneyTotal, money_total
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE, INSIGHTS_MANAGE, INSIGHTS_READ, PRICING_MANAGE
from server.services import product_health as service
from server.services.errors import ValidationFailed

CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)
# What a unit costs is shown where costPrice is (a stock value over units is that cost).
CanSeeCost = HasPermission(PRICING_MANAGE, CATALOG_MANAGE)


@strawberry.input(
    description="A period of shop days (UTC+8), from and to both included, at most 366 "
    "days, and the length of the lists."
)
class ProductHealthInput:
    from_: date | None = strawberry.field(
        default=None, name="from", description="Default: the 30 days up to `to`."
    )
    to: date | None = strawberry.field(default=None, description="Default: today.")
    new_within_days: int = strawberry.field(
        default=service.DEFAULT_NEW_WITHIN_DAYS,
        description="A product is new when created within these days before `to` (1-366).",
    )
    limit: int = strawberry.field(
        default=service.DEFAULT_LIMIT, description="The most rows of each list (1-100)."
    )


@strawberry.type(description="The sell rate of the SKUs of the products directly in a category.")
class CategorySellRate:
    category_id: relay.GlobalID | None = strawberry.field(
        description="Null: the products without a category."
    )
    name: str | None
    skus: int = strawberry.field(description="SKUs on sale in the period.")
    selling_skus: int = strawberry.field(description="Those that sold at least one unit.")
    rate: float | None = strawberry.field(description="sellingSkus / skus; null without SKUs.")
    _category_pk: strawberry.Private[int | None]

    @strawberry.field
    def category(self, info: Info) -> Category | None:
        # At once when the request holds the row, else batched through the loader.
        return Category.by_id(info, self._category_pk)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it


@strawberry.type(description="动销率: the share of the SKUs on sale that sold in the period.")
class SellRate:
    skus: int = strawberry.field(
        description="SKUs on sale in the period: active variants of active products, created "
        "before its end."
    )
    selling_skus: int = strawberry.field(
        description="Those with at least one unit in a purchase placed in the period."
    )
    rate: float | None = strawberry.field(description="sellingSkus / skus; null without SKUs.")
    categories: list[CategorySellRate] = strawberry.field(
        description="Per category, the lowest rate first (then the most SKUs), at most `limit`."
    )
    category_count: int = strawberry.field(description="Categories with SKUs on sale.")


@strawberry.type(description="A new product's sell-through.")
class NewProductSellThrough:
    product_id: relay.GlobalID
    sku: str
    name: str
    created_at: datetime
    units_sold: int = strawberry.field(description="Units in purchases placed in the period.")
    on_hand: int = strawberry.field(description="Units on hand now (active warehouses).")
    sell_through: float | None = strawberry.field(
        description="unitsSold / (unitsSold + onHand); null when both are 0."
    )

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        # At once when the request holds the row, else batched through the loader.
        return Product.by_id(info, int(self.product_id.node_id))  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it


@strawberry.type(
    description="Sell-through of the active products created within newWithinDays before the "
    "period's end."
)
class NewProducts:
    created_from: date = strawberry.field(description="The first shop day a new product has.")
    products: int
    units_sold: int
    on_hand: int
    sell_through: float | None = strawberry.field(
        description="Their units sold / (units sold + units on hand); null when both are 0."
    )
    items: list[NewProductSellThrough] = strawberry.field(
        description="The lowest sell-through first (those with nothing sold and nothing on hand "
        "last), at most `limit`."
    )


@strawberry.type(description="A SKU's sales in the period and its stock now.")
class SkuStock:
    variant_id: relay.GlobalID
    product_id: relay.GlobalID
    sku: str
    product_name: str
    units_sold: int = strawberry.field(description="Units in purchases placed in the period.")
    on_hand: int = strawberry.field(description="Units on hand now (active warehouses).")
    available: int = strawberry.field(description="On hand less reserved, now.")
    daily_units: float = strawberry.field(description="unitsSold / the period's days up to today.")
    days_of_cover: float | None = strawberry.field(
        description="onHand / dailyUnits: the days the stock lasts; null when nothing sold."
    )
    last_sold_at: datetime | None = strawberry.field(
        description="When the period's last purchase of it was placed."
    )
    _stock_value: strawberry.Private[int | None]

    @strawberry.field(
        description="onHand at the variant's cost price (pricing.manage or catalog.manage, like "
        "costPrice); null when the cost is unknown.",
        permission_classes=[CanSeeCost],
    )
    def stock_value(self, info: Info) -> MoneyTotal | None:
        if self._stock_value is None:
            return None
        return money_total(self._stock_value, info.context.settings.currency)

    @strawberry.field
    def variant(self, info: Info) -> ProductVariant | None:
        # At once when the request holds the row, else batched through the loader.
        return ProductVariant.by_id(info, int(self.variant_id.node_id))  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        # At once when the request holds the row, else batched through the loader.
        return Product.by_id(info, int(self.product_id.node_id))  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it


@strawberry.type(description="SKUs and how many qualified.")
class SkuStockList:
    count: int = strawberry.field(description="Every SKU that qualified.")
    items: list[SkuStock] = strawberry.field(description="At most `limit` of them.")


@strawberry.type(description="The health of the shop's range over a period of shop days.")
class ProductHealth:
    from_: date = strawberry.field(name="from")
    to: date
    days: int = strawberry.field(description="The period's days up to today: rates' divisor.")
    sell_rate: SellRate
    new_products: NewProducts
    slow_movers: SkuStockList = strawberry.field(
        description="SKUs on sale in the period with stock on hand now, the longest days of "
        "cover first: those that sold nothing first (the most on hand first)."
    )
    stock_outs: SkuStockList = strawberry.field(
        description="SKUs on sale that sold in the period and have nothing available now, the "
        "most units sold first."
    )


ProductHealthResult = Annotated[
    ProductHealth | ValidationError, strawberry.union("ProductHealthResult")
]


def _gid(type_name: str, pk: int) -> relay.GlobalID:
    return relay.GlobalID(type_name, str(pk))


def _skus(found: service.VariantList) -> SkuStockList:
    return SkuStockList(
        count=found.count,
        items=[
            SkuStock(
                variant_id=_gid("ProductVariant", v.variant_id),
                product_id=_gid("Product", v.product_id),
                sku=v.sku,
                product_name=v.product_name,
                units_sold=v.units_sold,
                on_hand=v.on_hand,
                available=v.available,
                daily_units=v.daily_units,
                days_of_cover=v.days_of_cover,
                last_sold_at=v.last_sold_at,
                _stock_value=v.stock_value,
            )
            for v in found.items
        ],
    )


def _health(found: service.ProductHealth) -> ProductHealth:
    rate, new = found.sell_rate, found.new_products
    return ProductHealth(
        from_=found.period.start,
        to=found.period.last,
        days=found.period.elapsed_days,
        sell_rate=SellRate(
            skus=rate.skus,
            selling_skus=rate.selling_skus,
            rate=rate.rate,
            categories=[
                CategorySellRate(
                    category_id=None if c.category_id is None else _gid("Category", c.category_id),
                    name=c.name,
                    skus=c.skus,
                    selling_skus=c.selling_skus,
                    rate=c.rate,
                    _category_pk=c.category_id,
                )
                for c in rate.categories
            ],
            category_count=rate.category_count,
        ),
        new_products=NewProducts(
            created_from=new.created_from,
            products=new.products,
            units_sold=new.units_sold,
            on_hand=new.on_hand,
            sell_through=new.sell_through,
            items=[
                NewProductSellThrough(
                    product_id=_gid("Product", p.product_id),
                    sku=p.sku,
                    name=p.name,
                    created_at=p.created_at,
                    units_sold=p.units_sold,
                    on_hand=p.on_hand,
                    sell_through=p.sell_through,
                )
                for p in new.items
            ],
        ),
        slow_movers=_skus(found.slow_movers),
        stock_outs=_skus(found.stock_outs),
    )


@strawberry.type
class ProductHealthQueries:
    @strawberry.field(
        description="Sell rate (动销率), new products' sell-through, slow movers and "
        "stock-outs of a period (insights.read).",
        permission_classes=[CanRead],
    )
    async def product_health(
        self, info: Info, input: ProductHealthInput | None = None
    ) -> ProductHealthResult:
        given = input or ProductHealthInput()
        try:
            period = service.days_period(given.from_, given.to)
            found = await info.context.db.run(
                service.product_health,
                period,
                new_within_days=given.new_within_days,
                limit=given.limit,
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return _health(found)


QUERIES: list[type[Any]] = [ProductHealthQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
