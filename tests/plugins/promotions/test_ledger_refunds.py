"""Refunds of returned lines from the discount ledger, hand-computed: each returned line's
share of the order's discounts taken back (cumulative, rounded half up), and the threshold
claw-back of CLAW_BACK promotions (a lower tier may still apply) against KEEP ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import (
    LedgerEntry,
    LineRefund,
    Promotion,
    PromotionKind,
    ReturnRule,
)
from plugins.promotions.service import refunds
from plugins.promotions.service.ledger import allocate, half_up
from server.db import create_engine, mark_write, session_factory
from server.models import Order, OrderLine
from server.plugin import ValidationFailed
from tests.plugins.promotions.limits_support import (
    Line,
    module_database,
    order_offer,
    place,
    promotion,
    variant_id,
)
from tests.support.orders import make_product

FULL_300_OFF_40 = {"tiers": [{"threshold": 30000, "amount_off": 4000}]}


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


def test_allocation_by_largest_remainder_sums_exactly() -> None:
    # 40.00 over 200.00 + 150.00: 2285.71 and 1714.29 → 2285 + 1714, the cent left to A.
    assert allocate(4000, {1: 20000, 2: 15000}) == {1: 2286, 2: 1714}
    # Three equal lines: 100 = 33 + 33 + 33 + 1 to the lowest key on a tie.
    assert allocate(100, {7: 1, 8: 1, 9: 1}) == {7: 34, 8: 33, 9: 33}
    assert allocate(0, {1: 5, 2: 5}) == {1: 0, 2: 0}
    assert half_up(1001, 2) == 501 and half_up(1000, 3) == 333 and half_up(2000, 3) == 667


async def _order(
    factory: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    promo: Promotion,
    items: list[tuple[int, int]],
) -> tuple[int, list[int]]:
    """An order of (unit price, quantity) lines, each a product of its own, that ``promo``
    discounted by its order discount split over the lines by their totals; its id and lines."""
    lines = []
    for price, quantity in items:
        product = await make_product(session, price=price)
        assert product.id is not None
        lines.append(Line(product.id, await variant_id(session, product), quantity, price))
    rules = promo.rules
    amount = rules["tiers"][-1]["amount_off"] if "tiers" in rules else rules["amount_off"]
    shares = allocate(amount, {ln.variant_id: ln.base * ln.quantity for ln in lines})
    placed = await place(factory, lines, [order_offer(promo, shares)])
    assert placed.ok and placed.order_id is not None
    await session.commit()
    ids = await session.scalars(
        select(col(OrderLine.id))
        .where(col(OrderLine.order_id) == placed.order_id)
        .order_by(col(OrderLine.id))
    )
    return placed.order_id, [int(i or 0) for i in ids]


async def _refund(
    factory: async_sessionmaker[AsyncSession], order_id: int, returned: Mapping[int, int]
) -> int | None:
    async with factory() as s:
        await mark_write(s)
        order = await s.get(Order, order_id)
        assert order is not None
        lines = list(await s.scalars(select(OrderLine).where(col(OrderLine.order_id) == order_id)))
        answer = await refunds.refund_for_lines(s, order, lines, returned)
        await s.commit()
        return answer


async def _ledger(session: AsyncSession, order_id: int) -> list[tuple[int, int]]:
    await session.commit()
    rows = await session.scalars(
        select(LedgerEntry)
        .where(col(LedgerEntry.order_id) == order_id)
        .order_by(col(LedgerEntry.order_line_id))
    )
    return [(e.amount, e.refunded_amount) for e in rows]


async def _last_refund(session: AsyncSession, order_id: int) -> tuple[Any, ...]:
    await session.commit()
    row = await session.scalar(
        select(LineRefund)
        .where(col(LineRefund.order_id) == order_id)
        .order_by(col(LineRefund.id).desc())
    )
    assert row is not None
    return (row.gross_amount, row.discount_taken_back, row.clawback_amount, row.amount)


async def test_spend_save_claw_back_under_its_threshold(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    # 满减 300−40 on 200.00 + 150.00 (paid 310.00): shares 22.86 and 17.14. Returning the
    # 150.00 line: 150.00 − 17.14 − 22.86 (the kept 200.00 is under 300: it earns nothing).
    promo = await promotion(session, kind=PromotionKind.SPEND_SAVE, rules=FULL_300_OFF_40)
    order_id, (a, b) = await _order(factory, session, promo, [(20000, 1), (15000, 1)])
    assert await _ledger(session, order_id) == [(2286, 0), (1714, 0)]

    assert await _refund(factory, order_id, {b: 1}) == 15000 - 1714 - 2286
    assert await _last_refund(session, order_id) == (15000, 1714, 2286, 11000)
    assert await _ledger(session, order_id) == [(2286, 2286), (1714, 1714)]
    # The 200.00 line then comes back whole: its share was taken already.
    assert await _refund(factory, order_id, {a: 1}) == 20000
    # Everything paid (310.00) came back, not a cent more.
    assert 11000 + 20000 == 35000 - 4000


async def test_keep_leaves_the_kept_lines_their_discount(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    promo = await promotion(
        session, kind=PromotionKind.SPEND_SAVE, rules=FULL_300_OFF_40, on_return=ReturnRule.KEEP
    )
    order_id, (a, b) = await _order(factory, session, promo, [(20000, 1), (15000, 1)])
    assert await _refund(factory, order_id, {b: 1}) == 15000 - 1714
    assert await _refund(factory, order_id, {a: 1}) == 20000 - 2286


async def test_a_lower_tier_still_reached_is_still_earned(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    # Tiers 150−10 and 300−40: the kept 200.00 still earns 10.00, so 22.86 − 10.00 comes back.
    rules = {
        "tiers": [
            {"threshold": 15000, "amount_off": 1000},
            {"threshold": 30000, "amount_off": 4000},
        ]
    }
    promo = await promotion(session, kind=PromotionKind.SPEND_SAVE, rules=rules)
    order_id, (a, b) = await _order(factory, session, promo, [(20000, 1), (15000, 1)])
    assert await _refund(factory, order_id, {b: 1}) == 15000 - 1714 - 1286
    assert await _ledger(session, order_id) == [(2286, 1286), (1714, 1714)]
    # Then the rest: 200.00 less the 10.00 it still held. Paid 310.00, given back 310.00.
    assert await _refund(factory, order_id, {a: 1}) == 20000 - 1000
    assert 12000 + 19000 == 31000


async def test_still_over_the_threshold_claws_nothing_back(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    # 200.00 + 150.00 + 100.00 (450.00, 40.00 off): returning 100.00 keeps 350.00 ≥ 300.00.
    promo = await promotion(session, kind=PromotionKind.SPEND_SAVE, rules=FULL_300_OFF_40)
    order_id, (_, _, c) = await _order(
        factory, session, promo, [(20000, 1), (15000, 1), (10000, 1)]
    )
    # Shares: 1777.78, 1333.33, 888.89 → 1777 + 1333 + 888 = 3998, +1 to each of the two
    # largest remainders (0.89, 0.78): 1778, 1333, 889.
    assert await _ledger(session, order_id) == [(1778, 0), (1333, 0), (889, 0)]
    assert await _refund(factory, order_id, {c: 1}) == 10000 - 889


async def test_coupon_minimum_spend_and_cumulative_rounding(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    coupon = await promotion(
        session, kind=PromotionKind.COUPON, rules={"amount_off": 1000, "min_spend": 20000}
    )
    # Three units at 100.00 (300.00, 10.00 off). Returning one unit at a time takes back
    # 3.33, then 6.67 − 3.33 = 3.34, then 10.00 − 6.67 = 3.33 of the line's 10.00, rounded
    # half up on what has come back in all. After the second return the kept 100.00 is under
    # the 200.00 minimum: the 3.33 the kept unit still held comes back off that refund.
    order_id, (line,) = await _order(factory, session, coupon, [(10000, 3)])
    assert await _refund(factory, order_id, {line: 1}) == 10000 - 333
    assert await _refund(factory, order_id, {line: 1}) == 10000 - 334 - 333
    assert await _ledger(session, order_id) == [(1000, 1000)]
    assert await _refund(factory, order_id, {line: 1}) == 10000
    assert 9667 + 9333 + 10000 == 30000 - 1000


async def test_a_claw_back_never_makes_a_refund_negative(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    rules = {"tiers": [{"threshold": 30000, "amount_off": 5000}]}
    promo = await promotion(session, kind=PromotionKind.SPEND_SAVE, rules=rules)
    # 290.00 + 20.00, 50.00 off: shares 46.77 and 3.23. Returning the 20.00 line owes
    # 46.77 back: only the 16.77 left of its refund is taken.
    order_id, (_, b) = await _order(factory, session, promo, [(29000, 1), (2000, 1)])
    assert await _ledger(session, order_id) == [(4677, 0), (323, 0)]
    assert await _refund(factory, order_id, {b: 1}) == 0
    assert await _last_refund(session, order_id) == (2000, 323, 1677, 0)


async def test_orders_without_ledger_and_impossible_returns(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session, price=5000)
    assert product.id is not None
    variant = await variant_id(session, product)
    plain = await place(factory, [Line(product.id, variant, 1, 5000)], [])
    assert plain.order_id is not None
    await session.commit()
    line = await session.scalar(
        select(col(OrderLine.id)).where(col(OrderLine.order_id) == plain.order_id)
    )
    # No promotion of this plugin: the next answer (the core's) decides.
    assert await _refund(factory, plain.order_id, {int(line or 0): 1}) is None

    promo = await promotion(session, kind=PromotionKind.SPEND_SAVE, rules=FULL_300_OFF_40)
    order_id, (a, _) = await _order(factory, session, promo, [(20000, 1), (15000, 1)])
    with pytest.raises(ValidationFailed, match="cannot come back"):
        await _refund(factory, order_id, {a: 2})
    with pytest.raises(ValidationFailed, match="not a line of this order"):
        await _refund(factory, order_id, {int(line or 0): 1})
    assert await _ledger(session, order_id) == [(2286, 0), (1714, 0)]
