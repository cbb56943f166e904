"""PRODUCT promotions on unit prices (flash sales, member deals): the ``price_adjustments``
hook, for listings and carts alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer
from server.plugin import Adjustment, NotApplied, PriceItem


async def price_adjustments(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]]:
    return {}
