"""Warehouse choice when an order is paid (``plan_shipments``) and the dispatch job that
creates its shipments with tracking numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Order, OrderLine
from server.plugin import Job, Parcel


async def plan_shipments(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], plugins: Any, config: Any
) -> Sequence[Parcel] | None:
    return None


def jobs(config: Any) -> Sequence[Job]:
    return []
