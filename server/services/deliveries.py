"""Outbox deliveries as operators see them: the list of deliveries to plugins (dead letters
included) and a retry from scratch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import DeliveryStatus, OutboxDelivery, OutboxEvent, utcnow
from server.services.errors import NotFound


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    plugin: str | None = None
    event_name: str | None = None


def deliveries_query(flt: DeliveryFilter) -> Select[Any]:
    """The deliveries ``flt`` selects, unordered (the page orders)."""
    stmt = select(OutboxDelivery)
    if flt.status is not None:
        stmt = stmt.where(col(OutboxDelivery.status) == flt.status)
    if flt.plugin is not None:
        stmt = stmt.where(col(OutboxDelivery.plugin) == flt.plugin)
    if flt.event_name is not None:
        events = select(col(OutboxEvent.id)).where(col(OutboxEvent.name) == flt.event_name)
        stmt = stmt.where(col(OutboxDelivery.event_id).in_(events))
    return stmt


async def requeue(session: AsyncSession, delivery_id: int) -> OutboxDelivery:
    """Give a delivery that is not delivered (typically DEAD) a fresh set of attempts, due now.
    A delivered one, like a missing one, is not found."""
    result = await session.execute(
        update(OutboxDelivery)
        .where(col(OutboxDelivery.id) == delivery_id)
        .where(col(OutboxDelivery.status) != DeliveryStatus.DELIVERED)
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            claim_token=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    row = await session.get(OutboxDelivery, delivery_id, populate_existing=True)
    if row is None or result.rowcount != 1:  # type: ignore[attr-defined]  # a DML result has it
        raise NotFound("undelivered outbox delivery", delivery_id, field="deliveryId")
    return row
