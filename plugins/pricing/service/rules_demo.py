"""The demo shop's rules, limits and price history."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import DemoShop


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    return {}
