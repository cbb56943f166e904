"""The demo shop's pricing: rules and limits, competitor prices and their alerts, a price
history with reductions (so prior prices show), protection claims and suggestions."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.service import competitors, protection, rules_demo, suggestions
from server.plugin import DemoShop


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    counts: dict[str, int] = {}
    # Rules and history first: suggestions and claims read the prices they make.
    for part in (rules_demo, competitors, suggestions, protection):
        counts.update(await part.demo(session, shop, rng, config, progress))
    return counts
