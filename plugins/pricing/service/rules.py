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
