"""Claiming under concurrency, on SQLite and PostgreSQL: customers racing for the last codes
of a claimable promotion get exactly its total limit of codes between them."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import CouponCode
from plugins.promotions.service import coupons
from server.db import create_engine, mark_write, session_factory
from tests.plugins.promotions.admin_support import code_promotion
from tests.support.accounts import make_customer


async def test_concurrent_claims_hand_out_exactly_the_limit(
    database_url: str, session: AsyncSession
) -> None:
    promotion = await code_promotion(session, "秒杀券", claimable=True, total_limit=2)
    customers = [await make_customer(session) for _ in range(4)]
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def claim(customer_id: int) -> str:
        async with sessions() as own:
            await mark_write(own)
            try:
                await coupons.claim_coupon(
                    own, promotion_id=promotion.id or 0, customer_id=customer_id, code_length=10
                )
            except coupons.CouponRefused as refused:
                await own.rollback()
                return refused.code
            await own.commit()
            return "CLAIMED"

    try:
        answers = await asyncio.gather(*(claim(c.id or 0) for c in customers))
    finally:
        await engine.dispose()
    assert sorted(answers) == ["CLAIMED", "CLAIMED", "LIMIT_REACHED", "LIMIT_REACHED"]
    handed = await session.scalar(
        select(func.count()).where(col(CouponCode.promotion_id) == promotion.id)
    )
    assert handed == 2
