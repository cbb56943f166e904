"""Group buying (拼团): open a group, share its code, join; a full group's orders proceed, an
expired one's are cancelled (stock and payments given back) by a job safe from several
processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.service.engine import Offer
from server.models import Customer, Order
from server.plugin import CheckoutProblem, Job


async def take_seat(
    session: AsyncSession, order: Order, offer: Offer, customer: Customer | None
) -> CheckoutProblem | None:
    """Inside ``order_placing``: open a group (``offer.group_id`` None) or take a seat in
    ``offer.group_id`` for ``order``, with a conditional UPDATE; a CheckoutProblem refuses the
    order (the group is full, expired, or the customer is already in it)."""
    return None


async def release_seat(session: AsyncSession, order: Order) -> None:
    """Inside ``order_cancelling``: give back ``order``'s seat while its group is OPEN."""
    return None


async def fulfilment_hold(session: AsyncSession, order: Order) -> str | None:
    return None


def jobs(config: Any) -> Sequence[Job]:
    return []
