"""Paid orders made by hand for the price-protection tests, and the catalogue's price cut."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import ProtectionClaim
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentRefund,
    Product,
    ProductVariant,
    utcnow,
)

_numbers = itertools.count(1)


async def paid_line(
    session: AsyncSession,
    customer_id: int,
    product: Product,
    *,
    quantity: int = 1,
    unit: int | None = None,
    status: OrderStatus = OrderStatus.PAID,
    placed_at: datetime | None = None,
) -> OrderLine:
    """A committed order of ``customer_id`` holding one line of ``product`` at ``unit`` (its
    price by default), paid in full with the test gateway (unless PENDING_PAYMENT)."""
    unit = product.price_amount if unit is None else unit
    variant = await session.scalar(
        select(ProductVariant).where(col(ProductVariant.product_id) == product.id)
    )
    assert variant is not None
    placed = placed_at or utcnow() - timedelta(hours=1)
    total = unit * quantity
    order = Order(
        number=f"SG-PP-{next(_numbers)}-{customer_id}",
        customer_id=customer_id,
        status=status,
        subtotal_amount=total,
        total_amount=total,
        placed_at=placed,
        paid_at=None if status is OrderStatus.PENDING_PAYMENT else placed,
    )
    session.add(order)
    await session.flush()
    line = OrderLine(
        order_id=order.id,
        product_id=product.id,
        variant_id=variant.id,
        sku=variant.sku,
        product_name=product.name,
        quantity=quantity,
        base_unit_price_amount=unit,
        unit_price_amount=unit,
        line_total_amount=total,
    )
    session.add(line)
    if status is not OrderStatus.PENDING_PAYMENT:
        session.add(Payment(order_id=order.id, gateway="test", amount=total, reference="pay"))
    await session.commit()
    return line


async def cut_price(session: AsyncSession, product: Product, amount: int) -> None:
    """Set the catalogue price of ``product`` (and of its one variant) to ``amount``."""
    row = await session.get(Product, product.id, populate_existing=True)
    assert row is not None
    row.price_amount = amount
    for variant in await session.scalars(
        select(ProductVariant).where(col(ProductVariant.product_id) == product.id)
    ):
        variant.price_amount = amount
    await session.commit()


async def claims_and_refunds(session: AsyncSession, order_id: int) -> tuple[int, int]:
    """(claims, refunded minor units) of an order."""
    claims = await session.scalar(
        select(func.count()).where(col(ProtectionClaim.order_id) == order_id)
    )
    refunded = await session.scalar(
        select(func.coalesce(func.sum(col(PaymentRefund.amount)), 0)).where(
            col(PaymentRefund.order_id) == order_id
        )
    )
    return int(claims or 0), int(refunded or 0)
