"""Price history: append-only rows of each product's public price, who changed it and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import PriceHistory, PriceSource
from server.plugin import Event, Job


async def record(
    session: AsyncSession,
    *,
    product_id: int,
    amount: int,
    previous_amount: int | None,
    currency: str,
    source: PriceSource,
    effective_at: datetime,
    actor: str = "",
    reason: str = "",
    rule_id: int | None = None,
) -> PriceHistory:
    """Append one change of ``product_id``'s public price."""
    row = PriceHistory(
        product_id=product_id,
        amount=amount,
        previous_amount=previous_amount,
        currency=currency,
        source=source,
        effective_at=effective_at,
        actor=actor[:120],
        reason=reason[:500],
        rule_id=rule_id,
    )
    session.add(row)
    await session.flush()
    return row


def jobs(config: Any) -> list[Job]:
    return []


async def product_changed(session: AsyncSession, config: Any, event: Event) -> None:
    return None
