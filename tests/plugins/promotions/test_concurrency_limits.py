"""Limits exact under concurrency, through the real ``order_placing`` in transactions of
their own (on PostgreSQL, from two engines: two processes' worth of connections): one
customer racing themselves for a per-customer limit, and cancels racing to give back. The
checkouts racing for coupons, uses and flash-sale units over HTTP are in
test_concurrency_checkout.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plugins.promotions.models import (
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
)
from server.db import create_engine, session_factory
from server.models import Order, OrderLine
from tests.plugins.promotions.limits_support import (
    Line,
    Placed,
    cancel,
    coupon,
    fresh,
    order_offer,
    place,
    product_offer,
    product_rule,
    promotion,
    reserved,
    variant_id,
)
from tests.support.accounts import make_customer
from tests.support.orders import make_product


@pytest.fixture
async def factories(database_url: str) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Session factories of two engines on PostgreSQL (two servers' connection pools), one on
    SQLite (one file, one writer at a time)."""
    count = 2 if database_url.startswith("postgresql") else 1
    engines = [create_engine(database_url) for _ in range(count)]
    yield [session_factory(e) for e in engines]
    for engine in engines:
        await engine.dispose()


async def _orders(session: AsyncSession) -> tuple[int, int]:
    """(orders, units on their lines) in the database."""
    orders = await session.scalar(select(func.count()).select_from(Order))
    units = await session.scalar(select(func.coalesce(func.sum(OrderLine.quantity), 0)))
    return int(orders or 0), int(units or 0)


def _codes(results: Sequence[Placed]) -> list[str]:
    return sorted(p.code for r in results for p in r.problems)


async def test_one_customer_racing_themselves_gets_the_per_customer_limit(
    session: AsyncSession, factories: list[async_sessionmaker[AsyncSession]]
) -> None:
    product = await make_product(session, price=5000)
    variant = await variant_id(session, product)
    promo = await promotion(
        session,
        kind=PromotionKind.MEMBER_DEAL,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 1000},
        per_customer_limit=2,
        per_customer_unit_limit=5,
    )
    buyer = await make_customer(session)
    assert product.id is not None
    rule = product_rule(promo)
    line = Line(product.id, variant, 1, 5000, off=500, product_rule=rule)

    results = await asyncio.gather(
        *(
            place(
                factories[i % len(factories)],
                [line],
                [product_offer(promo, {variant: 1}, 500)],
                customer_id=buyer.id,
            )
            for i in range(6)
        )
    )

    assert sum(r.ok for r in results) == 2
    assert _codes(results) == ["CUSTOMER_LIMIT_REACHED"] * 4
    assert (await fresh(session, promo)).used_count == 2


async def test_concurrent_cancels_give_back_once(
    session: AsyncSession, factories: list[async_sessionmaker[AsyncSession]]
) -> None:
    product = await make_product(session, price=20000)
    variant = await variant_id(session, product)
    promo = await promotion(session, kind=PromotionKind.COUPON, rules={"amount_off": 1000})
    code = await coupon(session, promo, max_uses=3)
    assert product.id is not None and code.id is not None
    placed = await place(
        factories[0],
        [Line(product.id, variant, 2, 20000)],
        [order_offer(promo, {variant: 1000}, code_id=code.id)],
    )
    assert placed.ok and placed.order_id is not None

    await asyncio.gather(
        *(cancel(factories[i % len(factories)], placed.order_id) for i in range(3))
    )

    assert (await fresh(session, code)).used_count == 0
    assert (await fresh(session, promo)).used_count == 0
    assert await reserved(session, promo.id or 0) == (0, 0)
    # Nothing went below zero, nothing was given back twice.
    assert await session.scalar(select(func.min(CouponCode.used_count))) == 0
    assert await session.scalar(select(func.min(Promotion.units_sold))) == 0
