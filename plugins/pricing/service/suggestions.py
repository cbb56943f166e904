"""(filled in below)"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import DemoShop, Job, Kpi


def jobs(config: Any) -> list[Job]:
    return []


def kpis() -> list[Kpi]:
    return []


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    return {}
