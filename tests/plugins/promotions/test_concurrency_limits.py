"""Limits exact under concurrency: checkouts racing for a coupon's last uses, a promotion's
last uses and a flash sale's last units, through the real ``order_placing`` in transactions
of their own (on PostgreSQL, from two engines: two processes' worth of connections). The
counters, the redemptions and the orders placed always agree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import (
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    Redemption,
    Trigger,
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


async def test_twelve_checkouts_race_for_a_coupon_of_five_uses(
    session: AsyncSession, factories: list[async_sessionmaker[AsyncSession]]
) -> None:
    product = await make_product(session, price=20000)
    variant = await variant_id(session, product)
    promo = await promotion(
        session,
        kind=PromotionKind.COUPON,
        promotion_class=PromotionClass.ORDER,
        trigger=Trigger.CODE,
        rules={"amount_off": 3000},
    )
    code = await coupon(session, promo, max_uses=5)
    assert product.id is not None and code.id is not None
    buyers = [await make_customer(session) for _ in range(12)]
    line = Line(product.id, variant, 1, 20000)

    results = await asyncio.gather(
        *(
            place(
                factories[i % len(factories)],
                [line],
                [order_offer(promo, {variant: 3000}, code_id=code.id, units={variant: 1})],
                customer_id=b.id,
            )
            for i, b in enumerate(buyers)
        )
    )

    assert sum(r.ok for r in results) == 5
    assert _codes(results) == ["COUPON_USED_UP"] * 7
    assert (await fresh(session, code)).used_count == 5
    assert (await fresh(session, promo)).used_count == 5
    assert await reserved(session, promo.id or 0) == (5, 1 * 5)
    assert await _orders(session) == (5, 5)
    # Each placed order's ledger holds its 30.00 off.
    ledger = await session.scalar(
        select(func.sum(col(Redemption.amount))).where(col(Redemption.promotion_id) == promo.id)
    )
    assert ledger == 5 * 3000


async def test_twelve_checkouts_race_for_a_promotion_of_five_uses(
    session: AsyncSession, factories: list[async_sessionmaker[AsyncSession]]
) -> None:
    product = await make_product(session, price=10000)
    variant = await variant_id(session, product)
    promo = await promotion(
        session,
        kind=PromotionKind.SPEND_SAVE,
        promotion_class=PromotionClass.ORDER,
        rules={"tiers": [{"threshold": 5000, "amount_off": 1000}]},
        total_limit=5,
    )
    assert product.id is not None
    line = Line(product.id, variant, 1, 10000)

    results = await asyncio.gather(
        *(
            place(factories[i % len(factories)], [line], [order_offer(promo, {variant: 1000})])
            for i in range(12)
        )
    )

    assert sum(r.ok for r in results) == 5
    assert _codes(results) == ["PROMOTION_LIMIT_REACHED"] * 7
    assert (await fresh(session, promo)).used_count == 5
    assert await reserved(session, promo.id or 0) == (5, 0)
    assert await _orders(session) == (5, 5)


async def test_a_flash_sale_of_100_units_sells_exactly_100(
    session: AsyncSession, factories: list[async_sessionmaker[AsyncSession]]
) -> None:
    product = await make_product(session, price=9900)
    variant = await variant_id(session, product)
    promo = await promotion(
        session,
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 5000},
        unit_limit=100,
    )
    assert product.id is not None
    rule = product_rule(promo)

    def buy(quantity: int, i: int) -> asyncio.Future[Placed]:
        line = Line(product.id or 0, variant, quantity, 9900, off=4950, product_rule=rule)
        return asyncio.ensure_future(
            place(
                factories[i % len(factories)],
                [line],
                [product_offer(promo, {variant: quantity}, 4950)],
            )
        )

    # 65 buyers of 1–3 units: 129 units asked for 100.
    quantities = [1 + (i % 3) for i in range(65)]
    assert sum(quantities) == 129
    burst = await asyncio.gather(*(buy(q, i) for i, q in enumerate(quantities)))
    sold = sum(q for q, r in zip(quantities, burst, strict=True) if r.ok)
    # A buyer was refused only when fewer units were left than they asked: at most 2 remain.
    refused = [q for q, r in zip(quantities, burst, strict=True) if not r.ok]
    assert refused and 100 - sold < min(refused)
    assert {p.code for r in burst for p in r.problems} == {"PROMOTION_UNITS_SOLD_OUT"}
    # Single-unit buyers take the rest, and not one unit more.
    tail = await asyncio.gather(*(buy(1, i) for i in range(4)))
    assert sum(r.ok for r in tail) == 100 - sold

    assert (await fresh(session, promo)).units_sold == 100
    used, units = await reserved(session, promo.id or 0)
    assert units == 100
    orders, ordered_units = await _orders(session)
    assert (orders, ordered_units) == (used, 100)

    # Cancelling an order gives its units back; another buyer gets them.
    placed = next(
        (r.order_id, q) for q, r in zip(quantities, burst, strict=True) if r.ok and q == 3
    )
    await cancel(factories[0], placed[0] or 0)
    assert (await fresh(session, promo)).units_sold == 97
    assert await reserved(session, promo.id or 0) == (used - 1, 97)
    again = await asyncio.gather(*(buy(2, i) for i in range(3)))
    assert [r.ok for r in again].count(True) == 1
    assert (await fresh(session, promo)).units_sold == 99


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
