"""Two functions of the plugin API, on SQLite and PostgreSQL: ``record_tracking_event`` (the
shop records a carrier's scan: the shipment and its order move, with the actor in the order's
history; ``move=False`` only adds to the timeline, also on a delivered shipment) and
``raise_alert`` (once per key)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.db import mark_write
from server.models import (
    Alert,
    AlertKind,
    OrderStatus,
    OrderStatusChange,
    ShipmentStatus,
    TrackingEvent,
    utcnow,
)
from server.plugin import InvalidTransition, ValidationFailed, raise_alert, record_tracking_event
from server.plugins import PluginRuntime
from tests.plugins.logistics.tracking_support import make_network, shipped_order

S = ShipmentStatus


async def test_record_tracking_event_moves_the_shipment_as_the_shop(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    net = await make_network(session)
    order_id, sid, _ = await shipped_order(
        session, plugins, net, latest=(utcnow() + timedelta(days=2)).date()
    )
    now = utcnow()
    await mark_write(session)
    shipment = await record_tracking_event(
        session,
        plugins,
        sid,
        S.IN_TRANSIT,
        occurred_at=now - timedelta(hours=3),
        actor="carrier:SF",
    )
    assert shipment.status is S.IN_TRANSIT
    with pytest.raises(InvalidTransition):  # IN_TRANSIT → DELIVERED skips a step
        await record_tracking_event(session, plugins, sid, S.DELIVERED, occurred_at=now)
    await session.rollback()

    await mark_write(session)
    await record_tracking_event(
        session, plugins, sid, S.IN_TRANSIT, occurred_at=now - timedelta(hours=3)
    )
    await record_tracking_event(
        session, plugins, sid, S.OUT_FOR_DELIVERY, occurred_at=now - timedelta(hours=2)
    )
    await record_tracking_event(
        session, plugins, sid, S.DELIVERED, occurred_at=now - timedelta(hours=1)
    )
    # A scan that arrives late joins the timeline without moving anything.
    late = await record_tracking_event(
        session, plugins, sid, S.IN_TRANSIT, occurred_at=now - timedelta(hours=4), move=False
    )
    await session.commit()
    assert late.status is S.DELIVERED
    timeline = list(
        await session.scalars(
            select(col(TrackingEvent.status))
            .where(col(TrackingEvent.shipment_id) == sid)
            .order_by(col(TrackingEvent.occurred_at))
        )
    )
    assert timeline == [S.CREATED, S.IN_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]
    changes = list(
        await session.execute(
            select(OrderStatusChange.to_status, OrderStatusChange.actor)
            .where(col(OrderStatusChange.order_id) == order_id)
            .order_by(col(OrderStatusChange.id))
        )
    )
    assert [tuple(c) for c in changes[-2:]] == [
        (OrderStatus.SHIPPED, "system"),
        (OrderStatus.DELIVERED, "system"),
    ]


async def test_raise_alert_raises_once_per_key(session: AsyncSession) -> None:
    await mark_write(session)
    first = await raise_alert(
        session, plugin="logistics", key="delay:7:LATE", message="shipment 7 is late"
    )
    again = await raise_alert(session, plugin="logistics", key="delay:7:LATE", message="again")
    await session.commit()
    assert first is not None and again is None
    alert = await session.get(Alert, first)
    assert alert is not None
    assert (alert.key, alert.kind, alert.message) == (
        "plugin:logistics:delay:7:LATE",
        AlertKind.PLUGIN,
        "shipment 7 is late",
    )
    with pytest.raises(ValidationFailed):
        await raise_alert(session, plugin="logistics", key="x" * 151, message="m")
