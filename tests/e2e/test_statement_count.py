"""A nested orders query runs the same number of SQL statements for 5 orders as for 50:
every relation is batched by a per-request DataLoader. Prices too: with a pricing plugin that
reads the database, a page or a cart is priced in one batch whatever its size."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server.config import Settings
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Payment,
    Product,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    StockLevel,
    TrackingEvent,
)
from server.plugin import Adjustment, PluginInfo, PricedItem, PriceItem, PriceLimit, hookimpl
from server.plugins import PluginRuntime
from server.services import variants
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    VariantSpec,
    cart_with,
    make_product,
    make_variant_product,
    make_warehouse,
    only_plugins,
    unthrottled,
)
from tests.support.statements import counting

NESTED = """
query($first: Int!) {
  orders(first: $first, sort: {field: PLACED_AT, direction: ASC}) {
    totalCount
    edges {
      node {
        number status total { amount }
        customer { email }
        statusHistory { toStatus actor }
        payments { status amount { amount } }
        lines {
          quantity
          priceBreakdown { unitPrice { amount } }
          product { name category { name } }
          sku variant { sku } options { name value }
        }
        shipments {
          trackingNumber status
          warehouse { code }
          lines { quantity orderLine { sku } }
          events { status location }
        }
      }
    }
  }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Statements are counted on the cold path: no answer may come from the response cache.
    return unthrottled(settings).model_copy(update={"response_cache": False})


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


async def _add_orders(
    session: AsyncSession, n: int, products: list[Product], customer_id: int, warehouse_id: int
) -> None:
    """``n`` shipped orders with two lines, history, a payment and a tracked shipment each."""
    start = await session.scalar(Order.__table__.select().with_only_columns(Order.id).limit(1))
    variant_of = {p.id: (await variants.variants_of(session, p.id))[0].id for p in products}  # type: ignore[arg-type]  # stored rows have their ids
    for i in range(n):
        order = Order(
            number=f"SG-T-{customer_id}-{start}-{i}-{n}",
            customer_id=customer_id,
            status=OrderStatus.SHIPPED,
            subtotal_amount=2000,
            total_amount=2000,
        )
        session.add(order)
        await session.flush()
        lines = [
            OrderLine(
                order_id=order.id,
                product_id=p.id,
                variant_id=variant_of[p.id],
                warehouse_id=warehouse_id,
                sku=p.sku,
                product_name=p.name,
                quantity=1,
                base_unit_price_amount=p.price_amount,
                unit_price_amount=p.price_amount,
                line_total_amount=p.price_amount,
            )
            for p in products[i % 2 :: 2][:2] + products[:1]
        ]
        session.add_all(lines)
        session.add_all(
            OrderStatusChange(order_id=order.id, from_status=f, to_status=t, actor="system")
            for f, t in [
                (None, OrderStatus.PENDING_PAYMENT),
                (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID),
                (OrderStatus.PAID, OrderStatus.SHIPPED),
            ]
        )
        session.add(Payment(order_id=order.id, gateway="test", amount=2000, reference=f"r{i}"))
        shipment = Shipment(
            order_id=order.id,
            warehouse_id=warehouse_id,
            carrier="顺丰速运",
            tracking_number=f"SF{i:08d}",
            status=ShipmentStatus.IN_TRANSIT,
        )
        session.add(shipment)
        await session.flush()
        session.add_all(
            ShipmentLine(shipment_id=shipment.id, order_line_id=ln.id, quantity=1) for ln in lines
        )
        session.add_all(
            TrackingEvent(shipment_id=shipment.id, status=s, location=loc)
            for s, loc in [(ShipmentStatus.CREATED, "杭州"), (ShipmentStatus.IN_TRANSIT, "上海")]
        )
    await session.commit()


async def test_nested_orders_query_statement_count_does_not_grow(
    app: Starlette, gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    warehouse = await make_warehouse(session)
    products = [await make_product(session, price=1000, stock=5) for _ in range(4)]
    customer = await make_customer(session)
    staff = await make_staff(session)
    as_staff = gql.as_(token_for(settings, staff))
    await _add_orders(session, 5, products, customer.id, warehouse.id)  # type: ignore[arg-type]

    # Warm up once: the first request on a connection may ask the server things of its own.
    await as_staff(NESTED, {"first": 100})
    with counting(app) as small:
        data5 = await as_staff(NESTED, {"first": 100})
    await _add_orders(session, 45, products, customer.id, warehouse.id)  # type: ignore[arg-type]
    with counting(app) as large:
        data50 = await as_staff(NESTED, {"first": 100})

    assert data5["orders"]["totalCount"] == 5
    assert len(data5["orders"]["edges"]) == 5
    assert len(data50["orders"]["edges"]) == 50
    node = data50["orders"]["edges"][-1]["node"]
    # The nested data is really there, so the count covers every relation.
    assert node["customer"]["email"] == customer.email
    assert len(node["lines"]) == 3
    assert all(line["product"]["category"]["name"] for line in node["lines"])
    assert all(line["variant"]["sku"] == line["sku"] for line in node["lines"])
    assert {line["sku"] for line in node["lines"]} <= {p.sku for p in products}
    assert [e["status"] for e in node["shipments"][0]["events"]] == ["CREATED", "IN_TRANSIT"]
    assert node["shipments"][0]["warehouse"]["code"] == warehouse.code
    assert len(node["shipments"][0]["lines"]) == 3
    assert [h["toStatus"] for h in node["statusHistory"]] == ["PENDING_PAYMENT", "PAID", "SHIPPED"]
    assert len(small) == len(large), (small, large)
    # One per relation plus the page and its count (and BEGIN on SQLite): a handful, not 50.
    assert len(large) < 20


async def test_a_product_page_reads_its_categories_in_the_same_statement(
    app: Starlette, gql: GraphQLClient, session: AsyncSession
) -> None:
    for _ in range(3):
        await make_product(session, price=1000)
    query = "{ products(first: 10) { nodes { sku category { id name } } } }"
    await gql(query)
    with counting(app) as with_categories:
        data = await gql(query)
    with counting(app) as without:
        await gql("{ products(first: 10) { nodes { sku } } }")
    assert len(data["products"]["nodes"]) == 3
    assert all(n["category"]["name"] for n in data["products"]["nodes"])
    # The categories came with the page: no statement of their own.
    assert len(with_categories) == len(without) == 1, with_categories


class SqlPricing:
    """A pricing-like plugin: one SQL lookup per batch of prices (what it knows of the stock
    of each item: a cart's variant, a listing's product), then a clearance discount and a
    floor per item."""

    PLUGIN_INFO = PluginInfo(name="sql-pricing", version="1.0")

    def __init__(self) -> None:
        self.batches = 0

    async def _stock(
        self, session: AsyncSession, items: Mapping[int, PriceItem | PricedItem]
    ) -> dict[int, int]:
        """Units on hand of each item, by the item's key."""
        rows = await session.execute(
            select(StockLevel.product_id, StockLevel.variant_id, func.sum(StockLevel.on_hand))
            .where(StockLevel.product_id.in_({item.product.id for item in items.values()}))
            .group_by(StockLevel.product_id, StockLevel.variant_id)
        )
        of_product: dict[int, int] = {}
        of_variant: dict[int, int] = {}
        for pid, vid, units in rows:
            of_product[pid] = of_product.get(pid, 0) + int(units)
            of_variant[vid] = int(units)
        return {
            key: of_variant.get(item.variant.id, 0)  # type: ignore[arg-type]  # a stored row has its id
            if item.variant is not None
            else of_product.get(item.product.id, 0)  # type: ignore[arg-type]  # a stored row has its id
            for key, item in items.items()
        }

    @hookimpl
    async def price_adjustments(
        self, session: AsyncSession, items: Mapping[int, PriceItem]
    ) -> dict[int, list[Adjustment]]:
        self.batches += 1
        stock = await self._stock(session, items)
        return {
            pid: [Adjustment(rule="clearance", label="清仓", amount=-(item.base // 2))]
            for pid, item in items.items()
            if stock[pid] > 3
        }

    @hookimpl
    async def price_guardrails(
        self, session: AsyncSession, items: Mapping[int, PricedItem]
    ) -> dict[int, PriceLimit]:
        stock = await self._stock(session, items)
        return {
            pid: PriceLimit(rule="floor", label="保底价", floor=item.base * 6 // 10)
            for pid, item in items.items()
            if stock[pid] > 3
        }


PRICED_PAGE = """
query($n: Int!) {
  products(first: $n) {
    nodes { sku price { amount } priceBreakdown(quantity: 2) { unitPrice { amount } } }
  }
}"""
PRICED_CART = """
query($t: String!) {
  cart(token: $t) {
    total { amount }
    lines { unitPrice { amount } priceBreakdown { guardrail { source amount { amount } } } }
  }
}"""


class TestPricesWithAPricingPlugin:
    @pytest.fixture
    def sql_pricing(self) -> SqlPricing:
        return SqlPricing()

    @pytest.fixture
    def plugins(self, settings: Settings, sql_pricing: SqlPricing) -> PluginRuntime:
        return only_plugins(settings, sql_pricing)

    async def test_a_product_page_costs_the_same_statements_for_5_as_for_50(
        self, app: Starlette, gql: GraphQLClient, session: AsyncSession, sql_pricing: SqlPricing
    ) -> None:
        for _ in range(50):
            await make_product(session, price=1000, stock=5)
        await gql(PRICED_PAGE, {"n": 5})  # warm up
        counts = {}
        for n in (5, 50):
            sql_pricing.batches = 0
            with counting(app) as statements:
                data = await gql(PRICED_PAGE, {"n": n})
            nodes = data["products"]["nodes"]
            assert len(nodes) == n
            # Adjusted, then held at the plugin's floor: 10.00 - 5.00 -> 6.00.
            assert {node["price"]["amount"] for node in nodes} == {"6.00"}
            assert {node["priceBreakdown"]["unitPrice"]["amount"] for node in nodes} == {"6.00"}
            # One batch per quantity asked (1 for price, 2 for the breakdown).
            assert sql_pricing.batches == 2
            counts[n] = len(statements)
        assert counts[5] == counts[50], counts

    async def test_a_cart_costs_the_same_statements_for_2_lines_as_for_12(
        self, app: Starlette, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        products = [await make_product(session, price=1000, stock=5) for _ in range(12)]
        small = await cart_with(gql, [(p, 1) for p in products[:2]])
        large = await cart_with(gql, [(p, 1) for p in products])
        await gql(PRICED_CART, {"t": small})  # warm up
        counts = {}
        for token, lines in ((small, 2), (large, 12)):
            with counting(app) as statements:
                data = await gql(PRICED_CART, {"t": token})
            assert len(data["cart"]["lines"]) == lines
            assert data["cart"]["total"]["amount"] == f"{6 * lines}.00"
            assert data["cart"]["lines"][0]["priceBreakdown"]["guardrail"]["source"] == (
                "sql-pricing"
            )
            counts[lines] = len(statements)
        assert counts[2] == counts[12], counts

    async def test_a_cart_costs_the_same_statements_for_2_variant_lines_as_for_12(
        self, app: Starlette, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        # One product in twelve sizes: each variant a line of its own, priced in one batch.
        _, sizes = await make_variant_product(
            session,
            [
                VariantSpec(f"SHOE-{n}", {"尺码": str(n)}, price=1000, stock=5)
                for n in range(35, 47)
            ],
        )
        small = await cart_with(gql, [(v, 1) for v in sizes[:2]])
        large = await cart_with(gql, [(v, 1) for v in sizes])
        query = PRICED_CART.replace("lines {", "lines { variant { sku }")
        await gql(query, {"t": small})  # warm up
        counts = {}
        for token, lines in ((small, 2), (large, 12)):
            with counting(app) as statements:
                data = await gql(query, {"t": token})
            assert [ln["variant"]["sku"] for ln in data["cart"]["lines"]] == [
                v.sku for v in sizes[:lines]
            ]
            assert data["cart"]["total"]["amount"] == f"{6 * lines}.00"
            counts[lines] = len(statements)
        assert counts[2] == counts[12], counts
