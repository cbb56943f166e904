"""Price rules and the shop's own price for a customer (the ``list_prices`` hook)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer
from server.plugin import Adjustment, NotApplied, PriceItem


async def list_prices(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> dict[int, Sequence[Adjustment | NotApplied]]:
    return {}


async def public_prices(
    session: AsyncSession, items: Mapping[int, PriceItem], at: datetime, config: Any
) -> dict[int, int]:
    """The public unit prices of ``items`` at ``at``: what an anonymous shopper pays before
    promotions (the catalogue price and the rules for everyone), which the price history
    records and competitor prices are compared with."""
    steps = await list_prices(session, items, None, at, config)
    return {
        key: item.base
        + sum(step.amount for step in steps.get(key, ()) if isinstance(step, Adjustment))
        for key, item in items.items()
    }
