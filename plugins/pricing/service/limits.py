"""Guardrails after every plugin (the ``price_guardrails`` hook)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer
from server.plugin import PricedItem, PriceLimit


async def price_guardrails(
    session: AsyncSession,
    items: Mapping[int, PricedItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> dict[int, PriceLimit]:
    return {}
