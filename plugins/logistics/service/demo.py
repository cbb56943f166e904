"""The demo shop's logistics: carriers, services, rates, transit times, sites, pickup points,
replenishment policies, and shipments in every state."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import DemoShop


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    return {}
