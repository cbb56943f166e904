"""Group-buy promotions, orders and seats made by hand for the group-buy tests."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    BuyGroup,
    GroupMember,
    Promotion,
    PromotionClass,
    PromotionKind,
)
from plugins.promotions.service.engine import Offer, PromotionRef
from server.models import Customer, Order, OrderLine, OrderStatus, Product, ProductVariant, utcnow

_numbers = itertools.count(1)


async def group_buy(
    session: AsyncSession,
    products: list[Product] | None = None,
    *,
    size: int = 3,
    hours: int = 24,
    percent_off_bp: int = 2000,
    **fields: Any,
) -> Promotion:
    """A committed, running GROUP_BUY promotion of ``products`` (none: every product)."""
    promotion = Promotion(
        name=f"拼团 {next(_numbers)}",
        label="三人团 8 折",
        kind=PromotionKind.GROUP_BUY,
        promotion_class=PromotionClass.ORDER,
        rules={"percent_off_bp": percent_off_bp, "size": size, "hours": hours},
        product_ids=[p.id for p in products or []],
        **{"starts_at": utcnow() - timedelta(hours=1), **fields},
    )
    session.add(promotion)
    await session.commit()
    return promotion


def offer_of(promotion: Promotion, group_id: int | None = None) -> Offer:
    assert promotion.id is not None
    ref = PromotionRef(
        id=promotion.id,
        kind=PromotionKind.GROUP_BUY,
        promotion_class=PromotionClass.ORDER,
        label=promotion.label,
    )
    return Offer(promotion=ref, amount=0, label=promotion.label, group_id=group_id)


async def order_of(
    session: AsyncSession,
    customer: Customer,
    product: Product,
    *,
    status: OrderStatus = OrderStatus.PENDING_PAYMENT,
) -> Order:
    """A committed order of ``customer`` for one unit of ``product``."""
    variant = await session.scalar(
        select(ProductVariant).where(col(ProductVariant.product_id) == product.id)
    )
    assert variant is not None
    order = Order(
        number=f"SG-GB-{next(_numbers)}-{customer.id}",
        customer_id=customer.id,
        status=status,
        subtotal_amount=product.price_amount,
        total_amount=product.price_amount,
    )
    session.add(order)
    await session.flush()
    session.add(
        OrderLine(
            order_id=order.id,
            product_id=product.id,
            variant_id=variant.id,
            sku=variant.sku,
            product_name=product.name,
            quantity=1,
            unit_price_amount=product.price_amount,
            base_unit_price_amount=product.price_amount,
            line_total_amount=product.price_amount,
        )
    )
    await session.commit()
    return order


def ident(row: Any) -> int:
    assert row.id is not None
    return int(row.id)


async def group_of(session: AsyncSession, order: Order) -> BuyGroup:
    await session.commit()  # a fresh snapshot
    group = await session.scalar(
        select(BuyGroup)
        .join(GroupMember, col(GroupMember.group_id) == BuyGroup.id)
        .where(col(GroupMember.order_id) == order.id)
        .execution_options(populate_existing=True)
    )
    assert group is not None
    return group


async def reload(session: AsyncSession, group_id: int) -> BuyGroup:
    await session.commit()
    group = await session.get(BuyGroup, group_id, populate_existing=True)
    assert group is not None
    return group


async def member_count(session: AsyncSession, group_id: int) -> int:
    await session.commit()
    return int(
        await session.scalar(
            select(func.count())
            .select_from(GroupMember)
            .where(col(GroupMember.group_id) == group_id)
        )
        or 0
    )
