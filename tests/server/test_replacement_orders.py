"""create_replacement_order (server.plugin): goods sent at no charge in place of others, a PAID
zero-total order for the original's customer and address with its stock reserved; refused
whole (nothing written) when stock or a variant is missing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.db import mark_write
from server.models import Order, OrderLine, OrderStatus, OrderStatusChange, ProductVariant
from server.plugin import NotFound, create_replacement_order
from server.plugins import PluginRuntime
from server.services.errors import OutOfStock
from tests.support.accounts import make_customer
from tests.support.orders import ADDRESS, count, make_product, stock_of


async def _original(session: AsyncSession) -> Order:
    buyer = await make_customer(session)
    order = Order(
        number="SG-ORIGINAL-1",
        customer_id=buyer.id,
        email=buyer.email,
        status=OrderStatus.DELIVERED,
        subtotal_amount=5900,
        total_amount=5900,
        shipping_address=dict(ADDRESS),
    )
    session.add(order)
    await session.commit()
    return order


async def test_a_replacement_is_a_paid_order_at_no_charge(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    original = await _original(session)
    product = await make_product(session, price=5900, stock=3)
    variant_id = await session.scalar(
        select(col(ProductVariant.id)).where(col(ProductVariant.product_id) == product.id)
    )
    assert variant_id is not None and original.id is not None
    product_id, original_id = product.id, original.id
    assert product_id is not None
    await session.commit()
    await mark_write(session)
    made = await create_replacement_order(
        session, plugins, original_id, [(variant_id, 2)], reason="换货 RMA-1", actor="staff:1"
    )
    await session.commit()
    assert (made.status, made.total_amount, made.subtotal_amount) == (OrderStatus.PAID, 0, 0)
    assert (made.customer_id, made.email) == (original.customer_id, original.email)
    assert made.shipping_address == ADDRESS and made.paid_at is not None
    lines = list(await session.scalars(select(OrderLine).where(col(OrderLine.order_id) == made.id)))
    assert [
        (ln.variant_id, ln.quantity, ln.unit_price_amount, ln.line_total_amount) for ln in lines
    ] == [(variant_id, 2, 0, 0)]
    notes = list(
        await session.scalars(
            select(col(OrderStatusChange.note))
            .where(col(OrderStatusChange.order_id) == made.id)
            .order_by(col(OrderStatusChange.id))
        )
    )
    assert notes == [
        "replacement for order SG-ORIGINAL-1: 换货 RMA-1",
        "replacement at no charge for order SG-ORIGINAL-1",
    ]
    # Two of the three units are reserved for it.
    assert await stock_of(session, product_id) == [(3, 2)]

    # More than is left: refused, nothing written.
    orders_before = await count(session, Order)
    await mark_write(session)
    with pytest.raises(OutOfStock):
        await create_replacement_order(
            session, plugins, original_id, [(variant_id, 2)], reason="换货 RMA-2"
        )
    await session.rollback()
    assert await count(session, Order) == orders_before
    assert await stock_of(session, product_id) == [(3, 2)]
    await mark_write(session)
    with pytest.raises(NotFound):
        await create_replacement_order(
            session, plugins, original_id, [(10**9, 1)], reason="换货 RMA-3"
        )
    await session.rollback()
