"""A product's sales history at two warehouses, for the replenishment and report tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Order, OrderLine, OrderStatus, Product, ProductVariant, Warehouse
from tests.support.orders import make_product

_serial = itertools.count(1)
HISTORY_DAYS = 30


def noon(day: date) -> datetime:
    """12:00 of a shop day (UTC+8), in UTC."""
    return datetime(day.year, day.month, day.day, 4, tzinfo=UTC)


@dataclass
class History:
    product: Product
    variant: ProductVariant
    w1: Warehouse
    w2: Warehouse


async def order_at(
    session: AsyncSession,
    history: History,
    at: datetime,
    quantity: int,
    warehouse: Warehouse | None,
    status: OrderStatus = OrderStatus.PAID,
) -> Order:
    n = next(_serial)
    order = Order(
        number=f"RP{n:06d}-{history.product.id}",
        status=status,
        subtotal_amount=1000 * quantity,
        total_amount=1000 * quantity,
        placed_at=at,
    )
    session.add(order)
    await session.flush()
    session.add(
        OrderLine(
            order_id=order.id or 0,
            product_id=history.product.id or 0,
            variant_id=history.variant.id or 0,
            warehouse_id=warehouse.id if warehouse else None,
            sku=history.product.sku,
            product_name=history.product.name,
            quantity=quantity,
            base_unit_price_amount=1000,
            unit_price_amount=1000,
            line_total_amount=1000 * quantity,
        )
    )
    return order


async def alternating_history(session: AsyncSession, today: date) -> History:
    """A product stocked at W1 (30 on hand, 5 reserved) and W2 (100 on hand). Over the 30 days
    before ``today``, counted from the oldest (k = 0…29): W1 sells 3 units on even k, W2 one
    on odd k — W1's window series [3, 0, 3, 0, …] (mean 1.5, standard deviation 1.5), W2's
    [0, 1, …] (mean 0.5, deviation 0.5), shares 45/60 = 0.75 and 0.25. Not counted: a
    cancelled order, and an order of today."""
    w1 = Warehouse(code=f"RW1-{next(_serial)}", name="上海仓", province="上海市", city="上海市")
    w2 = Warehouse(code=f"RW2-{next(_serial)}", name="北京仓", province="北京市", city="北京市")
    session.add_all([w1, w2])
    await session.flush()
    product = await make_product(session, stock=[(w1, 30), (w2, 100)])
    variant = (
        await session.scalars(select(ProductVariant).where(ProductVariant.product_id == product.id))  # type: ignore[arg-type]
    ).one()
    history = History(product, variant, w1, w2)
    first = today - timedelta(days=HISTORY_DAYS)
    for k in range(HISTORY_DAYS):
        day = first + timedelta(days=k)
        if k % 2 == 0:
            await order_at(session, history, noon(day), 3, w1)
        else:
            await order_at(session, history, noon(day), 1, w2)
    await order_at(session, history, noon(first + timedelta(days=3)), 50, w1, OrderStatus.CANCELLED)
    await order_at(session, history, noon(today), 40, w1)
    from server.models import StockLevel

    level = (
        await session.scalars(
            select(StockLevel).where(
                StockLevel.product_id == product.id,  # type: ignore[arg-type]
                StockLevel.warehouse_id == w1.id,  # type: ignore[arg-type]
            )
        )
    ).one()
    level.reserved = 5
    await session.commit()
    return history


def product_series() -> list[float]:
    """The product's daily units over the history, oldest first."""
    return [3.0 if k % 2 == 0 else 1.0 for k in range(HISTORY_DAYS)]
