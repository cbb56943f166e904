"""A nested orders query runs the same number of SQL statements for 5 orders as for 50:
every relation is batched by a per-request DataLoader."""

from __future__ import annotations

import pytest
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
    TrackingEvent,
)
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import make_product, make_warehouse, only_plugins, unthrottled
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
