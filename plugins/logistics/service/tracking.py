"""Carriers' tracking events: the signed webhook, normalisation, de-duplication, ordering by
event time, the revised ETA; the core shipment moves with them.

One path for every event, the webhook's and staff's (``recordCarrierEvent``): each event is
inserted once per (carrier, event id) (insert-or-ignore: a delivery sent twice is harmless);
the new events of a shipment are applied in the order they happened. An event at or after the
last one applied moves the core shipment (``record_tracking_event``), through the steps a scan
implies when the carrier skipped some (a DELIVERED scan before any IN_TRANSIT one); an event
older than the last applied one only joins the timeline. After each batch the shipment's ETA
and probability of missing its promise are revised from the lane's transit-time distribution.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from plugins.logistics.models import (
    EVENT_ID_MAX,
    Carrier,
    CarrierEvent,
    CarrierKind,
    CarrierService,
    EventSource,
    Promise,
    Site,
    TrackedShipment,
    TransitTime,
)
from plugins.logistics.service import calendar
from server.models import Order, Shipment, ShipmentStatus, Warehouse, utcnow
from server.plugin import (
    Event,
    RouteError,
    ValidationFailed,
    publish_live,
    record_tracking_event,
    route_session,
)

log = logging.getLogger("shopgraph.logistics")

S = ShipmentStatus
SIGNATURE_HEADER = "X-Carrier-Signature"
TIMESTAMP_HEADER = "X-Carrier-Timestamp"
SIGNATURE_PREFIX = "sha256="
MAX_EVENTS = 500
UNKNOWN = "UNKNOWN"  # the stored status of a code no table knows
# Delivered shipments of a carrier on a lane it takes to trust their transit times over the
# TransitTime table.
MIN_OBSERVED = 20
# Carriers' clocks are not ours: the core accepts events this far ahead.
CLOCK_SKEW = timedelta(minutes=10)
RAW_MAX = 64
LOCATION_MAX = 200
DESCRIPTION_MAX = 500
TRACKING_MAX = 120

# --- normalisation -----------------------------------------------------------------------------

# Words every carrier may send (upper-cased, spaces and dashes as underscores).
COMMON: dict[str, ShipmentStatus] = {
    "CREATED": S.CREATED,
    "ACCEPTED": S.CREATED,
    "PICKED_UP": S.IN_TRANSIT,
    "IN_TRANSIT": S.IN_TRANSIT,
    "DEPARTED": S.IN_TRANSIT,
    "ARRIVED": S.IN_TRANSIT,
    "OUT_FOR_DELIVERY": S.OUT_FOR_DELIVERY,
    "DELIVERED": S.DELIVERED,
    "SIGNED": S.DELIVERED,
    "EXCEPTION": S.EXCEPTION,
    "FAILED_ATTEMPT": S.EXCEPTION,
    "RETURNED": S.RETURNED,
}
# Each kind's own codes, on top of the common words.
BY_KIND: dict[CarrierKind, dict[str, ShipmentStatus]] = {
    # Express companies' numeric route codes (SF: 50 collected, 30/31/36 sorted and on the
    # road, 44 out for delivery, 80 signed for, 70/33 problem parcel, 99 sent back).
    CarrierKind.THIRD_PARTY: {
        "50": S.IN_TRANSIT,
        "30": S.IN_TRANSIT,
        "31": S.IN_TRANSIT,
        "36": S.IN_TRANSIT,
        "44": S.OUT_FOR_DELIVERY,
        "80": S.DELIVERED,
        "8000": S.DELIVERED,
        "70": S.EXCEPTION,
        "33": S.EXCEPTION,
        "99": S.RETURNED,
    },
    # The shop's own vans: the dispatch app's states.
    CarrierKind.OWN_FLEET: {
        "ASSIGNED": S.CREATED,
        "LOADED": S.IN_TRANSIT,
        "ON_ROUTE": S.OUT_FOR_DELIVERY,
        "DROPPED_OFF": S.DELIVERED,
        "UNDELIVERABLE": S.EXCEPTION,
    },
    # A shared network's (菜鸟-like) words.
    CarrierKind.ALLIANCE: {
        "ACCEPT": S.IN_TRANSIT,
        "TRANSPORT": S.IN_TRANSIT,
        "DELIVERING": S.OUT_FOR_DELIVERY,
        "SIGN": S.DELIVERED,
        "FAILED": S.EXCEPTION,
        "REJECT": S.RETURNED,
    },
}


def normalise(kind: CarrierKind, raw: str) -> ShipmentStatus | None:
    """The core status of a carrier's code, None for a code no table knows."""
    key = raw.strip().upper().replace(" ", "_").replace("-", "_")
    return BY_KIND.get(kind, {}).get(key) or COMMON.get(key)


# The forward path a scan may imply steps of (a DELIVERED scan on a shipment never picked up
# went IN_TRANSIT and OUT_FOR_DELIVERY first).
FORWARD = (S.CREATED, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED)
ALLOWED: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    S.CREATED: frozenset({S.IN_TRANSIT, S.EXCEPTION}),
    S.IN_TRANSIT: frozenset({S.OUT_FOR_DELIVERY, S.EXCEPTION, S.RETURNED}),
    S.OUT_FOR_DELIVERY: frozenset({S.DELIVERED, S.EXCEPTION, S.RETURNED}),
    S.EXCEPTION: frozenset({S.IN_TRANSIT, S.RETURNED}),
    S.DELIVERED: frozenset(),
    S.RETURNED: frozenset(),
}
FINAL = frozenset({S.DELIVERED, S.RETURNED})


def steps(current: ShipmentStatus, target: ShipmentStatus) -> list[ShipmentStatus] | None:
    """The statuses to record to go from ``current`` to ``target`` (the implied ones first),
    [] when it is the current one, None when the scan cannot move the shipment (a final
    status, or a step back)."""
    if current in FINAL:
        return None
    if target is current:
        return []
    if target in ALLOWED[current]:
        return [target]
    start = S.CREATED if current is S.EXCEPTION else current
    # EXCEPTION resumes as IN_TRANSIT; RETURNED needs the parcel on its way.
    goal = S.IN_TRANSIT if target is S.RETURNED else target
    if goal not in FORWARD or FORWARD.index(goal) <= FORWARD.index(start):
        return None
    path = list(FORWARD[FORWARD.index(start) + 1 : FORWARD.index(goal) + 1])
    if target is S.RETURNED:
        path.append(S.RETURNED)
    return path


# --- events in -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierEventInput:
    event_id: str
    tracking_number: str
    status: str
    occurred_at: datetime
    location: str = ""
    description: str = ""


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    unknown_shipment: list[str] = field(default_factory=list)  # event ids
    unapplied: list[str] = field(default_factory=list)  # stored, status unknown or stale
    unknown_status: list[str] = field(default_factory=list)
    shipment_ids: list[int] = field(default_factory=list)


class BadEvent(ValidationFailed):
    """An event that cannot be read; nothing of its call is written."""


def _text(value: Any, where: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"{where} is a string", field=where)
    value = value.strip()
    if (required and not value) or len(value) > limit:
        raise BadEvent(f"{where} is 1 to {limit} characters", field=where)
    return value


def _moment(value: Any, where: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise BadEvent(f"{where} is an ISO 8601 moment", field=where)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadEvent(f"{where} is an ISO 8601 moment", field=where) from exc
    if moment.tzinfo is None:
        raise BadEvent(f"{where} needs a UTC offset", field=where)
    moment = moment.astimezone(UTC)
    if moment > now + CLOCK_SKEW:
        raise BadEvent(f"{where} is in the future", field=where)
    return moment


def parse_events(data: Any, now: datetime | None = None) -> list[CarrierEventInput]:
    """The events of a webhook body: one event object, a list of them, or {"events": [...]}.
    BadEvent (nothing written) for anything else."""
    now = now or utcnow()
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise BadEvent("no events", field="events")
    if len(items) > MAX_EVENTS:
        raise BadEvent(f"at most {MAX_EVENTS} events per call", field="events")
    out: list[CarrierEventInput] = []
    for i, item in enumerate(items):
        where = f"events[{i}]"
        if not isinstance(item, dict):
            raise BadEvent(f"{where} is an object", field=where)
        out.append(
            CarrierEventInput(
                event_id=_text(item.get("event_id"), f"{where}.event_id", EVENT_ID_MAX),
                tracking_number=_text(
                    item.get("tracking_number"), f"{where}.tracking_number", TRACKING_MAX
                ),
                status=_text(item.get("status"), f"{where}.status", RAW_MAX),
                occurred_at=_moment(item.get("occurred_at"), f"{where}.occurred_at", now),
                location=_text(
                    item.get("location"), f"{where}.location", LOCATION_MAX, required=False
                ),
                description=_text(
                    item.get("description"), f"{where}.description", DESCRIPTION_MAX, required=False
                ),
            )
        )
    return out


def staff_event(
    event_id: str,
    tracking_number: str,
    status: str,
    occurred_at: datetime,
    location: str = "",
    description: str = "",
    now: datetime | None = None,
) -> CarrierEventInput:
    """An event entered by staff (``recordCarrierEvent``); BadEvent names the input field."""
    now = now or utcnow()
    if occurred_at.tzinfo is None:
        raise BadEvent("occurredAt needs a UTC offset", field="occurredAt")
    if occurred_at > now + CLOCK_SKEW:
        raise BadEvent("occurredAt is in the future", field="occurredAt")
    return CarrierEventInput(
        event_id=_text(event_id, "eventId", EVENT_ID_MAX),
        tracking_number=_text(tracking_number, "trackingNumber", TRACKING_MAX),
        status=_text(status, "status", RAW_MAX),
        occurred_at=occurred_at.astimezone(UTC),
        location=_text(location, "location", LOCATION_MAX, required=False),
        description=_text(description, "description", DESCRIPTION_MAX, required=False),
    )


def insert_for(session: AsyncSession) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def carrier_by_code(session: AsyncSession, code: str) -> Carrier | None:
    return await session.scalar(
        select(Carrier).where(func.lower(col(Carrier.code)) == code.strip().lower())
    )


async def _shipments_by_tracking(
    session: AsyncSession, carrier: Carrier, numbers: Sequence[str]
) -> dict[str, int]:
    """Tracking number → the shipment of this carrier it names (one statement)."""
    rows = await session.execute(
        select(col(Shipment.id), col(Shipment.tracking_number), col(TrackedShipment.carrier_id))
        .outerjoin(TrackedShipment, col(TrackedShipment.shipment_id) == Shipment.id)
        .where(
            col(Shipment.tracking_number).in_(sorted(set(numbers))),
            (col(TrackedShipment.carrier_id) == carrier.id)
            | func.lower(col(Shipment.carrier)).in_([carrier.code.lower(), carrier.name.lower()]),
        )
        .order_by(col(Shipment.id))
    )
    found: dict[str, int] = {}
    for sid, number, _ in rows:
        found.setdefault(str(number), int(sid or 0))
    return found


async def ingest(
    session: AsyncSession,
    plugins: Any,
    config: Any,
    carrier: Carrier,
    events: Sequence[CarrierEventInput],
    *,
    source: EventSource,
    actor: str,
) -> IngestResult:
    """Store ``events`` of ``carrier`` once each and apply the new ones, in the session's
    transaction (the caller commits)."""
    assert carrier.id is not None
    result = IngestResult()
    by_number = await _shipments_by_tracking(session, carrier, [e.tracking_number for e in events])
    fresh: dict[int, list[tuple[int, CarrierEventInput, ShipmentStatus | None]]] = {}
    wanted: dict[str, tuple[int, CarrierEventInput, ShipmentStatus | None]] = {}
    for e in events:
        sid = by_number.get(e.tracking_number)
        if sid is None:
            result.unknown_shipment.append(e.event_id)
        elif e.event_id in wanted:
            result.duplicates += 1  # twice in one delivery
        else:
            wanted[e.event_id] = (sid, e, normalise(carrier.kind, e.status))
    if not wanted:
        return result
    # One statement for the delivery: the ids of the rows it inserted; the others were there.
    received = utcnow()
    inserted = await session.execute(
        insert_for(session)(CarrierEvent)
        .values(
            [
                {
                    "carrier_id": carrier.id,
                    "event_id": e.event_id,
                    "shipment_id": sid,
                    "raw_status": e.status,
                    "status": status.value if status else UNKNOWN,
                    "occurred_at": e.occurred_at,
                    "location": e.location,
                    "description": e.description,
                    "source": source,
                    "applied": False,
                    "received_at": received,
                }
                for sid, e, status in wanted.values()
            ]
        )
        .on_conflict_do_nothing(index_elements=["carrier_id", "event_id"])
        .returning(col(CarrierEvent.id), col(CarrierEvent.event_id))
    )
    new_ids = {str(event_id): int(row_id) for row_id, event_id in inserted}
    for event_id, (sid, e, status) in wanted.items():
        row_id = new_ids.get(event_id)
        if row_id is None:
            result.duplicates += 1
            continue
        result.accepted += 1
        if status is None:
            result.unknown_status.append(event_id)
            result.unapplied.append(event_id)
            continue
        fresh.setdefault(sid, []).append((row_id, e, status))
    if not fresh:
        return result
    lookups = await _prefetch(session, sorted(fresh))
    applied: list[int] = []
    for sid in sorted(fresh):
        unapplied = await _apply(
            session, plugins, config, carrier, sid, fresh[sid], actor, lookups, applied
        )
        result.unapplied.extend(unapplied)
        result.shipment_ids.append(sid)
    if applied:
        await session.execute(
            update(CarrierEvent)
            .where(col(CarrierEvent.id).in_(applied))
            .values(applied=True)
            .execution_options(synchronize_session=False)
        )
    return result


@dataclass
class Lookups:
    """What one delivery's shipments need, read once for all of them."""

    shipments: dict[int, Shipment]
    tracked: dict[int, TrackedShipment]
    latest: dict[int, date | None]  # order id → the promise's last day
    transit: dict[tuple[Any, ...], tuple[int, int] | None] = field(default_factory=dict)
    observed: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)


async def _prefetch(session: AsyncSession, shipment_ids: list[int]) -> Lookups:
    # Locked in id order, so two deliveries touching the same shipments lock them alike.
    shipments = {
        s.id or 0: s
        for s in await session.scalars(
            select(Shipment)
            .where(col(Shipment.id).in_(shipment_ids))
            .order_by(col(Shipment.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    tracked = {
        t.shipment_id: t
        for t in await session.scalars(
            select(TrackedShipment)
            .where(col(TrackedShipment.shipment_id).in_(shipment_ids))
            .execution_options(populate_existing=True)
        )
    }
    order_ids = sorted({s.order_id for s in shipments.values()})
    rows = await session.execute(
        select(col(Order.id), col(Promise.latest), col(Order.promised_by))
        .outerjoin(Promise, col(Promise.order_id) == Order.id)
        .where(col(Order.id).in_(order_ids))
    )
    latest = {int(oid or 0): promised or by for oid, promised, by in rows}
    return Lookups(shipments, tracked, latest)


async def _apply(
    session: AsyncSession,
    plugins: Any,
    config: Any,
    carrier: Carrier,
    shipment_id: int,
    events: list[tuple[int, CarrierEventInput, ShipmentStatus | None]],
    actor: str,
    lookups: Lookups,
    applied: list[int],
) -> list[str]:
    shipment = lookups.shipments[shipment_id]
    tracked = lookups.tracked.get(shipment_id) or await ensure_tracked(session, shipment_id)
    before = (shipment.status, tracked.eta if tracked else None)
    last = tracked.last_event_at if tracked else None
    current = shipment.status
    unapplied: list[str] = []
    for row_id, e, status in sorted(events, key=lambda t: (t[1].occurred_at, t[1].event_id)):
        assert status is not None
        path = None if last is not None and e.occurred_at < last else steps(current, status)
        if path is None:
            # Older than what the shipment already shows, or a step back: the timeline only.
            await record_tracking_event(
                session,
                plugins,
                shipment_id,
                status,
                occurred_at=e.occurred_at,
                description=e.description or e.status,
                location=e.location,
                actor=actor,
                move=False,
            )
            unapplied.append(e.event_id)
            continue
        for implied in path[:-1]:
            await record_tracking_event(
                session,
                plugins,
                shipment_id,
                implied,
                occurred_at=e.occurred_at,
                description=f"implied by the carrier's {status.value} scan",
                actor=actor,
            )
        shipment = await record_tracking_event(
            session,
            plugins,
            shipment_id,
            path[-1] if path else status,
            occurred_at=e.occurred_at,
            description=e.description or e.status,
            location=e.location,
            actor=actor,
        )
        current = shipment.status
        last = e.occurred_at
        applied.append(row_id)
    if tracked is not None:
        changed = await revise(session, config, carrier, tracked, shipment, last, lookups)
        if changed or shipment.status is not before[0]:
            await publish_live(
                session,
                f"shipment:{shipment_id}",
                {"shipment_id": shipment_id, "status": shipment.status.value},
            )
            await publish_live(session, f"order:{shipment.order_id}", {"shipment_id": shipment_id})
    return unapplied


# --- the tracked shipment ------------------------------------------------------------------------


async def ensure_tracked(session: AsyncSession, shipment_id: int) -> TrackedShipment | None:
    """The shipment's TrackedShipment, created when missing (insert-or-ignore: the event may
    come twice, or a webhook first); None when no carrier of the network is its carrier."""
    row = await session.scalar(
        select(TrackedShipment).where(col(TrackedShipment.shipment_id) == shipment_id)
    )
    if row is not None:
        return row
    shipment = await session.get(Shipment, shipment_id)
    if shipment is None:
        return None
    name = shipment.carrier.strip().lower()
    carrier = await session.scalar(
        select(Carrier)
        .where((func.lower(col(Carrier.code)) == name) | (func.lower(col(Carrier.name)) == name))
        .order_by(col(Carrier.id))
        .limit(1)
    )
    if carrier is None:
        return None
    order = await session.get(Order, shipment.order_id)
    promise = await session.scalar(
        select(Promise).where(col(Promise.order_id) == shipment.order_id)
    )
    site = await session.scalar(select(Site).where(col(Site.warehouse_id) == shipment.warehouse_id))
    warehouse = await session.get(Warehouse, shipment.warehouse_id)
    from_region = site.province if site else (warehouse.province if warehouse else "") or ""
    address = (order.shipping_address if order else None) or {}
    to_region = str(address.get("province") or (promise.to_region if promise else ""))[:64]
    service_id = promise.service_id if promise and promise.carrier_id == carrier.id else None
    await session.execute(
        insert_for(session)(TrackedShipment)
        .values(
            shipment_id=shipment_id,
            order_id=shipment.order_id,
            carrier_id=carrier.id,
            service_id=service_id,
            from_region=from_region[:64],
            to_region=to_region,
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["shipment_id"])
    )
    return await session.scalar(
        select(TrackedShipment).where(col(TrackedShipment.shipment_id) == shipment_id)
    )


async def shipment_created(session: AsyncSession, event: Event, plugins: Any, config: Any) -> None:
    shipment_id = event.payload.get("shipment_id")
    if isinstance(shipment_id, int):
        await ensure_tracked(session, shipment_id)


# --- the calendar and the ETA ----------------------------------------------------------------------


def working_days_between(start: date, end: date, carrier: Carrier) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when end <= start)."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if calendar.carrier_works(day, carrier):
            count += 1
    return count


@dataclass(frozen=True)
class Estimate:
    eta: date | None
    late_probability: float | None


def _local(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


async def _transit_range(
    session: AsyncSession, carrier: Carrier, tracked: TrackedShipment
) -> tuple[int, int] | None:
    """The TransitTime row of the shipment's service (else the carrier's services') for its
    lane, the exact destination before the "*" default."""
    services = (
        [tracked.service_id]
        if tracked.service_id is not None
        else list(
            await session.scalars(
                select(col(CarrierService.id))
                .where(col(CarrierService.carrier_id) == carrier.id)
                .order_by(col(CarrierService.id))
            )
        )
    )
    if not services:
        return None
    rows = list(
        await session.scalars(
            select(TransitTime).where(
                col(TransitTime.service_id).in_(services),
                col(TransitTime.from_region) == tracked.from_region,
                col(TransitTime.to_region).in_([tracked.to_region, "*"]),
            )
        )
    )
    rows.sort(key=lambda r: (r.to_region == "*", services.index(r.service_id)))
    return (rows[0].min_days, rows[0].max_days) if rows else None


async def observed_hours(
    session: AsyncSession, carrier_id: int, from_region: str, to_region: str
) -> list[float]:
    return [
        float(h or 0)
        for h in await session.scalars(
            select(col(TrackedShipment.transit_hours)).where(
                col(TrackedShipment.carrier_id) == carrier_id,
                col(TrackedShipment.from_region) == from_region,
                col(TrackedShipment.to_region) == to_region,
                col(TrackedShipment.transit_hours).is_not(None),
            )
        )
    ]


async def estimate(
    session: AsyncSession,
    config: Any,
    carrier: Carrier,
    tracked: TrackedShipment,
    shipment: Shipment,
    last_scan: datetime | None,
    latest: date | None,
    lookups: Lookups,
) -> Estimate:
    """The revised ETA and the probability of arriving after ``latest`` (docs: "ETA")."""
    tz = config.timezone
    if shipment.status is S.DELIVERED and shipment.delivered_at is not None:
        day = _local(shipment.delivered_at, tz)
        return Estimate(day, None if latest is None else float(day > latest))
    if shipment.status is S.RETURNED:
        return Estimate(None, None)
    scan = last_scan or shipment.shipped_at or shipment.created_at
    scan_day = _local(scan, tz)
    if shipment.status is S.OUT_FOR_DELIVERY:
        return Estimate(scan_day, None if latest is None else float(scan_day > latest))
    departure = shipment.shipped_at or scan
    lane = (carrier.id, tracked.from_region, tracked.to_region)
    if lane not in lookups.observed:
        lookups.observed[lane] = await observed_hours(session, *lane)  # type: ignore[arg-type]  # a stored carrier has its id
    observed = lookups.observed[lane]
    if len(observed) >= MIN_OBSERVED:
        arrivals = sorted(_local(departure + timedelta(hours=h), tz) for h in observed)
        ahead = [d for d in arrivals if d >= scan_day] or [
            calendar.add_working_days(scan_day, 1, carrier)
        ]
    else:
        key = (tracked.service_id, *lane)
        if key not in lookups.transit:
            lookups.transit[key] = await _transit_range(session, carrier, tracked)
        span = lookups.transit[key]
        if span is None:
            return Estimate(None, None)
        low, high = span
        elapsed = working_days_between(_local(departure, tz), scan_day, carrier)
        # Given it has been on the road ``elapsed`` working days, the days left are uniform
        # over what the table allows from there.
        days = list(range(max(low, elapsed), max(high, elapsed) + 1))
        ahead = [calendar.add_working_days(_local(departure, tz), d, carrier) for d in days]
    eta = ahead[(len(ahead) - 1) // 2]  # the lower median
    if latest is None:
        return Estimate(eta, None)
    late = sum(1 for d in ahead if d > latest) / len(ahead)
    return Estimate(eta, round(late, 4))


async def revise(
    session: AsyncSession,
    config: Any,
    carrier: Carrier,
    tracked: TrackedShipment,
    shipment: Shipment,
    last_scan: datetime | None,
    lookups: Lookups,
) -> bool:
    """Store the shipment's revised ETA, late probability, last event, and how it ended;
    whether the ETA or the probability changed."""
    latest = lookups.latest.get(shipment.order_id)
    found = await estimate(session, config, carrier, tracked, shipment, last_scan, latest, lookups)
    values: dict[str, Any] = {
        "eta": found.eta,
        "late_probability": found.late_probability,
        "last_event_at": last_scan,
        "updated_at": utcnow(),
    }
    if shipment.status is S.DELIVERED and shipment.delivered_at is not None:
        if latest is not None:
            values["on_time"] = _local(shipment.delivered_at, config.timezone) <= latest
        if shipment.shipped_at is not None:
            hours = (shipment.delivered_at - shipment.shipped_at).total_seconds() / 3600
            values["transit_hours"] = round(max(hours, 0.0), 2)
    await session.execute(
        update(TrackedShipment)
        .where(col(TrackedShipment.id) == tracked.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return (found.eta, found.late_probability) != (tracked.eta, tracked.late_probability)


# --- the webhook ------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a carrier sends: HMAC-SHA256 of ``timestamp.body`` under its secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def _remote(request: Request) -> str:
    return request.client.host if request.client else "?"


def routes(plugins: Any, config: Any) -> Sequence[BaseRoute]:
    async def carrier_events(request: Request) -> JSONResponse:
        code = str(request.path_params["code"])[:32]
        body = await request.body()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        async with route_session(request) as session:
            carrier = await carrier_by_code(session, code)
            await session.commit()
        if carrier is None or not carrier.webhook_secret or not carrier.is_active:
            log.warning(
                "carrier webhook refused: unknown carrier %r from %s", code, _remote(request)
            )
            raise RouteError(404, "UNKNOWN_CARRIER", f"No carrier {code!r} takes events here.")
        if not hmac.compare_digest(
            sign(carrier.webhook_secret, stamp, body).encode(),
            given.strip().encode("utf-8", "replace"),
        ):
            log.warning(
                "carrier webhook refused: bad signature for %s from %s", code, _remote(request)
            )
            raise RouteError(401, "INVALID_SIGNATURE", f"The {SIGNATURE_HEADER} does not match.")
        try:
            sent = int(stamp)
        except ValueError:
            sent = 0
        if abs(time.time() - sent) > config.webhook_tolerance_seconds:
            log.warning(
                "carrier webhook refused: stale timestamp for %s from %s", code, _remote(request)
            )
            raise RouteError(
                401,
                "STALE_TIMESTAMP",
                f"The {TIMESTAMP_HEADER} is more than {config.webhook_tolerance_seconds} s "
                "from now: a replay.",
            )
        try:
            events = parse_events(json.loads(body))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RouteError(400, "MALFORMED_JSON", "the body is not JSON") from exc
        except BadEvent as exc:
            raise RouteError(400, "INVALID_EVENT", exc.message) from exc
        async with route_session(request, write=True) as session:
            carrier = await carrier_by_code(session, code)
            assert carrier is not None
            done = await ingest(
                session,
                plugins,
                config,
                carrier,
                events,
                source=EventSource.WEBHOOK,
                actor=f"carrier:{carrier.code}",
            )
            await session.commit()
        return JSONResponse(
            {
                "accepted": done.accepted,
                "duplicates": done.duplicates,
                "unknownShipment": done.unknown_shipment,
                "unknownStatus": done.unknown_status,
                "unapplied": done.unapplied,
            }
        )

    return [Route("/carriers/{code}/events", carrier_events, methods=["POST"])]
