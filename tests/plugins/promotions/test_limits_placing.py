"""What ``order_placing`` reserves and records, and each typed refusal: the redemptions, the
ledger frozen on the order (shares summing exactly to what the order took off), campaign
budgets, personal and expired codes, per-customer limits, and orders whose promotions no
decision of the checkout backs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import (
    CustomerUse,
    LedgerEntry,
    PromotionClass,
    PromotionKind,
    Redemption,
    RedemptionStatus,
    Trigger,
)
from plugins.promotions.service.engine import Offer
from server.db import create_engine, session_factory
from server.models import Product, utcnow
from tests.plugins.promotions.limits_support import (
    Line,
    campaign,
    cancel,
    coupon,
    fresh,
    module_database,
    order_offer,
    place,
    product_offer,
    product_rule,
    promotion,
    ref,
    variant_id,
)
from tests.support.accounts import make_customer
from tests.support.orders import make_product


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # One database per backend for the module: each test writes rows of its own.
    yield from module_database(request, tmp_path_factory)


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _two(session: AsyncSession) -> tuple[Product, int, Product, int]:
    a = await make_product(session, price=20000)
    b = await make_product(session, price=15000)
    return a, await variant_id(session, a), b, await variant_id(session, b)


async def test_the_ledger_freezes_every_class_and_sums_exactly(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    a, va, b, vb = await _two(session)
    flash = await promotion(
        session, kind=PromotionKind.FLASH_SALE, promotion_class=PromotionClass.PRODUCT
    )
    spend = await promotion(session, kind=PromotionKind.SPEND_SAVE)
    ship = await promotion(
        session, kind=PromotionKind.FREE_SHIPPING, promotion_class=PromotionClass.SHIPPING
    )
    # Decided for the cart, but the order carries none of it (a guardrail took it out).
    dropped = await promotion(
        session, kind=PromotionKind.MEMBER_DEAL, promotion_class=PromotionClass.PRODUCT
    )
    buyer = await make_customer(session)
    assert a.id and b.id and spend.id
    # A: 2 units at 200.00 less 10.00 each (flash sale); B: 1 at 150.00. The engine split
    # 40.00 off as 23.00 + 17.00, but the order's total took 39.99 off (a guardrail):
    # 3999 × 2300 / 4000 = 2299.425 and 3999 × 1700 / 4000 = 1699.575 → 2299 + 1699, and the
    # cent left goes to the larger remainder, B: 2299 + 1700 = 3999.
    placed = await place(
        factory,
        [
            Line(a.id, va, 2, 20000, off=1000, product_rule=product_rule(flash)),
            Line(b.id, vb, 1, 15000),
        ],
        [
            product_offer(flash, {va: 2}, 1000),
            order_offer(spend, {va: 2300, vb: 1700}, units={va: 2, vb: 1}),
            Offer(promotion=ref(ship), amount=800, label="包邮"),
            product_offer(dropped, {vb: 1}, 500),
        ],
        customer_id=buyer.id,
        priced={spend.id: 3999},
    )
    assert placed.ok

    entries = list(
        await session.scalars(
            select(LedgerEntry)
            .where(col(LedgerEntry.order_id) == placed.order_id)
            .order_by(col(LedgerEntry.promotion_id), col(LedgerEntry.order_line_id))
        )
    )
    lines = {e.order_line_id for e in entries if e.order_line_id is not None}
    line_a, line_b = sorted(lines)
    assert [(e.promotion_id, e.order_line_id, e.promotion_class, e.amount) for e in entries] == [
        (flash.id, line_a, PromotionClass.PRODUCT, 2000),
        (spend.id, line_a, PromotionClass.ORDER, 2299),
        (spend.id, line_b, PromotionClass.ORDER, 1700),
        (ship.id, None, PromotionClass.SHIPPING, 800),
    ]
    redemptions = {
        r.promotion_id: (r.units, r.amount, r.customer_id, r.status)
        for r in await session.scalars(
            select(Redemption).where(col(Redemption.order_id) == placed.order_id)
        )
    }
    assert redemptions == {
        flash.id: (2, 2000, buyer.id, RedemptionStatus.RESERVED),
        spend.id: (3, 3999, buyer.id, RedemptionStatus.RESERVED),
        ship.id: (0, 800, buyer.id, RedemptionStatus.RESERVED),
    }
    assert ((await fresh(session, flash)).used_count, flash.units_sold) == (1, 2)
    assert (await fresh(session, dropped)).used_count == 0
    # Unlimited promotions count their customers too (the reports read it).
    use = await session.scalar(
        select(CustomerUse).where(
            col(CustomerUse.promotion_id) == spend.id, col(CustomerUse.customer_id) == buyer.id
        )
    )
    assert use is not None and (use.uses, use.units) == (1, 3)


async def test_promotions_no_decision_priced_refuse_the_order(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    a, va, _, _ = await _two(session)
    flash = await promotion(
        session,
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        unit_limit=1,
    )
    spend = await promotion(session, kind=PromotionKind.SPEND_SAVE)
    assert a.id and spend.id
    line = Line(a.id, va, 3, 20000, off=1000, product_rule=product_rule(flash))

    # No decision at all for the cart (an order priced elsewhere): refused, not let through.
    unpriced = await place(factory, [line], [], order_rules=[(f"promotion:{spend.id}", 500)])
    assert [p.code for p in unpriced.problems] == ["PROMOTION_NOT_PRICED"] * 2
    # A decision that left the flash sale out while a line carries it: refused too.
    partial = await place(factory, [line], [order_offer(spend, {va: 500})])
    assert [p.code for p in partial.problems] == ["PROMOTION_NOT_PRICED"]
    assert f"promotion {flash.id}" in partial.problems[0].message
    assert (await fresh(session, flash)).units_sold == 0
    # Another plugin's rules are none of this plugin's business.
    plain = await place(factory, [Line(a.id, va, 1, 20000)], [], order_rules=[("vip:3", 100)])
    assert plain.ok


async def test_a_campaign_budget_stops_at_its_amount_and_comes_back_on_cancel(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    a, va, _, _ = await _two(session)
    budget = await campaign(session, budget_amount=5000)
    spend = await promotion(session, kind=PromotionKind.SPEND_SAVE, campaign_id=budget.id)
    uses = await campaign(session, budget_uses=1)
    other = await promotion(session, kind=PromotionKind.SPEND_SAVE, campaign_id=uses.id)
    assert a.id
    line = Line(a.id, va, 1, 20000)

    first, second, third = [
        await place(factory, [line], [order_offer(spend, {va: 2000})]) for _ in range(3)
    ]
    assert first.ok and second.ok
    assert [p.code for p in third.problems] == ["CAMPAIGN_BUDGET_SPENT"]
    assert budget.name in third.problems[0].message
    fresh_budget = await fresh(session, budget)
    assert (fresh_budget.spent_amount, fresh_budget.used_count) == (4000, 2)
    # The refused order's promotion use was rolled back with it.
    assert (await fresh(session, spend)).used_count == 2

    await cancel(factory, first.order_id or 0)
    fresh_budget = await fresh(session, budget)
    assert (fresh_budget.spent_amount, fresh_budget.used_count) == (2000, 1)
    assert (await place(factory, [line], [order_offer(spend, {va: 2000})])).ok

    assert (await place(factory, [line], [order_offer(other, {va: 100})])).ok
    refused = await place(factory, [line], [order_offer(other, {va: 100})])
    assert [p.code for p in refused.problems] == ["CAMPAIGN_BUDGET_SPENT"]


async def test_codes_issued_to_someone_else_or_expired_are_refused(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    a, va, _, _ = await _two(session)
    promo = await promotion(session, kind=PromotionKind.COUPON, trigger=Trigger.CODE)
    owner, stranger = await make_customer(session), await make_customer(session)
    personal = await coupon(session, promo, customer_id=owner.id, max_uses=1)
    stale = await coupon(session, promo, expires_at=utcnow() - timedelta(minutes=1))
    assert a.id
    line = Line(a.id, va, 1, 20000)

    def offer(code_id: int | None) -> list[Offer]:
        return [order_offer(promo, {va: 1000}, code_id=code_id)]

    theirs = await place(factory, [line], offer(personal.id), customer_id=stranger.id)
    assert [(p.code, p.field) for p in theirs.problems] == [("COUPON_NOT_YOURS", "couponCodes")]
    expired = await place(factory, [line], offer(stale.id), customer_id=owner.id)
    assert [p.code for p in expired.problems] == ["COUPON_EXPIRED"]
    assert (await place(factory, [line], offer(personal.id), customer_id=owner.id)).ok
    again = await place(factory, [line], offer(personal.id), customer_id=owner.id)
    assert [p.code for p in again.problems] == ["COUPON_USED_UP"]
    assert ((await fresh(session, personal)).used_count, stale.used_count) == (1, 0)
    assert (await fresh(session, promo)).used_count == 1


async def test_per_customer_units_and_guests(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    a, va, _, _ = await _two(session)
    flash = await promotion(
        session,
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        per_customer_unit_limit=5,
    )
    buyer = await make_customer(session)
    assert a.id

    def buy(quantity: int) -> tuple[list[Line], list[Offer]]:
        line = Line(a.id or 0, va, quantity, 20000, off=2000, product_rule=product_rule(flash))
        return [line], [product_offer(flash, {va: quantity}, 2000)]

    assert (await place(factory, *buy(3), customer_id=buyer.id)).ok
    over = await place(factory, *buy(3), customer_id=buyer.id)
    assert [p.code for p in over.problems] == ["CUSTOMER_UNIT_LIMIT_REACHED"]
    assert "2 left for you" in over.problems[0].message
    assert (await place(factory, *buy(2), customer_id=buyer.id)).ok
    guest = await place(factory, *buy(1))
    assert [p.code for p in guest.problems] == ["PROMOTION_SIGN_IN_REQUIRED"]
    fresh_flash = await fresh(session, flash)
    assert (fresh_flash.used_count, fresh_flash.units_sold) == (2, 5)
