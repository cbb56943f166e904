"""Carriers' events through the one ingestion path, on SQLite and PostgreSQL: normalised,
stored once per event id, applied in the order they happened (a DELIVERED scan before the
IN_TRANSIT one still ends DELIVERED with the order delivered), and the ETA and probability of
missing the promise revised by hand-computed figures."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    Carrier,
    CarrierEvent,
    CarrierKind,
    EventSource,
    TrackedShipment,
)
from plugins.logistics.service import tracking
from plugins.logistics.service.settings import LogisticsSettings
from plugins.logistics.service.tracking import CarrierEventInput, IngestResult, normalise, steps
from server.db import mark_write
from server.models import Order, OrderStatus, Shipment, ShipmentStatus, TrackingEvent
from server.plugins import PluginRuntime
from tests.plugins.logistics.tracking_support import Network, make_network, shipped_order

CONFIG = LogisticsSettings()
S = ShipmentStatus


def at(day: int, hour: int, month: int = 3) -> datetime:
    """A moment of 2026 given in Shanghai time (UTC+8)."""
    return datetime(2026, month, day, hour, tzinfo=ZoneInfo("Asia/Shanghai"))


def ev(event_id: str, number: str, status: str, moment: datetime) -> CarrierEventInput:
    return CarrierEventInput(event_id, number, status, moment, location="杭州", description="")


async def send(
    session: AsyncSession, plugins: PluginRuntime, net: Network, *events: CarrierEventInput
) -> IngestResult:
    await mark_write(session)
    carrier = await session.get(Carrier, net.carrier_id)
    assert carrier is not None
    done = await tracking.ingest(
        session, plugins, CONFIG, carrier, events, source=EventSource.WEBHOOK, actor="carrier:SF"
    )
    await session.commit()
    return done


async def state(session: AsyncSession, shipment_id: int) -> tuple[Shipment, Order, TrackedShipment]:
    await session.commit()
    shipment = await session.get(Shipment, shipment_id, populate_existing=True)
    assert shipment is not None
    order = await session.get(Order, shipment.order_id, populate_existing=True)
    tracked = await session.scalar(
        select(TrackedShipment)
        .where(col(TrackedShipment.shipment_id) == shipment_id)
        .execution_options(populate_existing=True)
    )
    assert order is not None and tracked is not None
    return shipment, order, tracked


async def timeline(session: AsyncSession, shipment_id: int) -> list[str]:
    rows = await session.scalars(
        select(TrackingEvent)
        .where(col(TrackingEvent.shipment_id) == shipment_id)
        .order_by(col(TrackingEvent.occurred_at), col(TrackingEvent.id))
    )
    return [r.status.value for r in rows]


def test_codes_are_normalised_per_carrier_kind() -> None:
    assert normalise(CarrierKind.THIRD_PARTY, "50") is S.IN_TRANSIT
    assert normalise(CarrierKind.THIRD_PARTY, "80") is S.DELIVERED
    assert normalise(CarrierKind.THIRD_PARTY, "picked up") is S.IN_TRANSIT
    assert normalise(CarrierKind.OWN_FLEET, "80") is None  # SF's code means nothing to vans
    assert normalise(CarrierKind.ALLIANCE, "SIGN") is S.DELIVERED
    assert normalise(CarrierKind.ALLIANCE, "teleported") is None
    assert steps(S.CREATED, S.DELIVERED) == [S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]
    assert steps(S.EXCEPTION, S.OUT_FOR_DELIVERY) == [S.IN_TRANSIT, S.OUT_FOR_DELIVERY]
    assert steps(S.CREATED, S.RETURNED) == [S.IN_TRANSIT, S.RETURNED]
    assert steps(S.OUT_FOR_DELIVERY, S.IN_TRANSIT) is None
    assert steps(S.DELIVERED, S.EXCEPTION) is None
    assert steps(S.IN_TRANSIT, S.IN_TRANSIT) == []


async def test_delivered_before_in_transit_ends_delivered_and_delivers_the_order(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    net = await make_network(session)
    order_id, sid, number = await shipped_order(session, plugins, net, latest=date(2026, 3, 6))

    first = await send(session, plugins, net, ev("e-2", number, "80", at(5, 15)))
    assert (first.accepted, first.duplicates, first.unapplied) == (1, 0, [])
    shipment, order, tracked = await state(session, sid)
    assert shipment.status is S.DELIVERED
    assert order.status is OrderStatus.DELIVERED
    assert tracked.on_time is True  # delivered 03-05, promised by 03-06

    late = await send(session, plugins, net, ev("e-1", number, "50", at(4, 9)))
    assert (late.accepted, late.unapplied) == (1, ["e-1"])
    shipment, order, _ = await state(session, sid)
    assert (shipment.status, order.status) == (S.DELIVERED, OrderStatus.DELIVERED)
    # The implied steps at the delivery's time, the late scan in its place by time.
    assert await timeline(session, sid) == [
        "CREATED",
        "IN_TRANSIT",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]
    applied = dict(
        (await session.execute(select(CarrierEvent.event_id, CarrierEvent.applied))).all()
    )
    assert applied == {"e-2": True, "e-1": False}


async def test_a_duplicate_is_stored_once_and_unknowns_are_reported(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    net = await make_network(session)
    _, sid, number = await shipped_order(session, plugins, net, latest=date(2026, 3, 6))
    # The shipment_created event delivered twice: still one tracked row.
    await mark_write(session)
    await tracking.ensure_tracked(session, sid)
    await session.commit()
    tracked = await session.scalar(
        select(func.count())
        .select_from(TrackedShipment)
        .where(col(TrackedShipment.shipment_id) == sid)
    )
    assert tracked == 1
    scan = ev("dup-1", number, "50", at(3, 10))
    done = await send(
        session,
        plugins,
        net,
        scan,
        scan,
        ev("odd-1", number, "7Z", at(3, 11)),
        ev("lost-1", "SF-NOBODY", "50", at(3, 11)),
    )
    assert (done.accepted, done.duplicates) == (2, 1)
    assert done.unknown_shipment == ["lost-1"]
    assert done.unknown_status == ["odd-1"]
    assert done.unapplied == ["odd-1"]
    again = await send(session, plugins, net, scan)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert await timeline(session, sid) == ["CREATED", "IN_TRANSIT"]
    stored = await session.scalar(
        select(func.count()).select_from(CarrierEvent).where(col(CarrierEvent.shipment_id) == sid)
    )
    assert stored == 2
    odd = await session.scalar(select(CarrierEvent).where(col(CarrierEvent.event_id) == "odd-1"))
    assert odd is not None and (odd.status, odd.raw_status, odd.applied) == ("UNKNOWN", "7Z", False)


async def test_the_eta_is_revised_with_each_scan(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    # SF: 1 to 3 working days from 浙江省; picked up Tue 03-03, promised by Thu 03-05.
    net = await make_network(session)
    _, sid, number = await shipped_order(session, plugins, net, latest=date(2026, 3, 5))

    await send(session, plugins, net, ev("a", number, "50", at(3, 10)))
    _, _, tracked = await state(session, sid)
    # Arrival after 1, 2 or 3 working days: Wed, Thu or Fri; the median Thu; Fri is late.
    assert tracked.eta == date(2026, 3, 5)
    assert tracked.late_probability == round(1 / 3, 4)

    await send(session, plugins, net, ev("b", number, "31", at(5, 9)))
    _, _, tracked = await state(session, sid)
    # Two working days on the road: 2 or 3 left of the range, Thu or Fri.
    assert tracked.eta == date(2026, 3, 5)
    assert tracked.late_probability == 0.5

    await send(session, plugins, net, ev("c", number, "44", at(6, 8)))
    _, _, tracked = await state(session, sid)
    assert (tracked.eta, tracked.late_probability) == (date(2026, 3, 6), 1.0)

    await send(session, plugins, net, ev("d", number, "80", at(6, 15)))
    shipment, order, tracked = await state(session, sid)
    assert order.status is OrderStatus.DELIVERED
    assert tracked.on_time is False
    assert tracked.transit_hours == 77.0  # Tue 10:00 to Fri 15:00


async def test_the_eta_skips_the_spring_festival(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    # Picked up Fri 02-13: Sat 02-14 is an adjusted working day, 02-15..02-23 are off.
    net = await make_network(session)
    _, sid, number = await shipped_order(session, plugins, net, latest=date(2026, 2, 14))
    await send(session, plugins, net, ev("sf-1", number, "50", at(13, 18, month=2)))
    _, _, tracked = await state(session, sid)
    # 1, 2, 3 working days: 02-14, 02-24, 02-25; the median 02-24; two of three late.
    assert tracked.eta == date(2026, 2, 24)
    assert tracked.late_probability == round(2 / 3, 4)
