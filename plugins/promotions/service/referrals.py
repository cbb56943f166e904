"""Referrals: an invite code per customer; the new customer and the inviter each get a coupon
after the new customer's first paid order (no self-referral, one reward per new customer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import Event


async def payment_captured(session: AsyncSession, event: Event, plugins: Any, config: Any) -> None:
    return None
