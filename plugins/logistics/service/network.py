"""The carrier network staff keep: carriers and their service levels, transit-time, zone and
rate tables, where each warehouse is (its site) and the pickup points. Every change is
validated whole before anything is written: bad input changes nothing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    CODE_MAX,
    NAME_MAX,
    REGION_MAX,
    TEXT_MAX,
    Carrier,
    CarrierKind,
    CarrierService,
    PickupKind,
    PickupPoint,
    Rate,
    ServiceLevel,
    Site,
    TransitTime,
    Zone,
)
from plugins.logistics.service import geo
from server.models import Warehouse
from server.plugin import Conflict, NotFound, ValidationFailed

ANY_REGION = "*"
PREFIX_MAX = 16
# Rows one bulk change may carry (the API's bound on any list): a big table takes several.
TABLE_MAX = 100
RATES_MAX = 50
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
INTERVALS_MAX = 4
NON_WORKING_MAX = 100
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _text(value: str, field_name: str, limit: int, *, empty: bool = False) -> str:
    value = value.strip()
    if (not value and not empty) or len(value) > limit:
        least = 0 if empty else 1
        raise ValidationFailed(f"{field_name}: {least} to {limit} characters", field=field_name)
    return value


def _code(value: str, field_name: str = "code") -> str:
    value = _text(value, field_name, CODE_MAX)
    if not _CODE.match(value):
        raise ValidationFailed(
            f"{field_name}: letters, digits, '_', '.' and '-' only", field=field_name
        )
    return value


def _between(value: int | float, field_name: str, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValidationFailed(f"{field_name}: from {low:g} to {high:g}", field=field_name)


def _region(value: str, field_name: str, *, wildcard: bool = False) -> str:
    value = _text(value, field_name, REGION_MAX)
    if value == ANY_REGION:
        if wildcard:
            return value
        raise ValidationFailed(f"{field_name}: a province, not '*'", field=field_name)
    place = geo.locate(value, "")
    if place is None:
        raise ValidationFailed(f"{field_name}: {value!r} is not a province", field=field_name)
    # Stored as the city table names it (浙江 → 浙江省): one row per pair, however written.
    return place.province


def new_secret() -> str:
    """A webhook signing secret: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def masked(secret: str) -> str | None:
    """What staff see of a secret: its last four characters (None: no secret)."""
    return f"••••{secret[-4:]}" if secret else None


# --- carriers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierSpec:
    code: str
    name: str
    kind: CarrierKind = CarrierKind.THIRD_PARTY
    works_weekends: bool = True
    non_working_days: Sequence[date] = ()
    tracking_prefix: str = ""


@dataclass(frozen=True)
class CarrierChange:
    name: str | None = None
    kind: CarrierKind | None = None
    works_weekends: bool | None = None
    non_working_days: Sequence[date] | None = None
    tracking_prefix: str | None = None
    active: bool | None = None


def _days(days: Sequence[date]) -> list[str]:
    if len(days) > NON_WORKING_MAX:
        raise ValidationFailed(
            f"nonWorkingDays: at most {NON_WORKING_MAX} days", field="nonWorkingDays"
        )
    return sorted({d.isoformat() for d in days})


def _prefix(value: str) -> str:
    value = value.strip()
    if len(value) > PREFIX_MAX or (value and not _CODE.match(value)):
        raise ValidationFailed(
            f"trackingPrefix: at most {PREFIX_MAX} letters or digits", field="trackingPrefix"
        )
    return value


async def _carrier(session: AsyncSession, carrier_id: int, field_name: str = "id") -> Carrier:
    carrier = await session.get(Carrier, carrier_id)
    if carrier is None:
        raise NotFound("carrier", carrier_id, field=field_name)
    return carrier


async def create_carrier(session: AsyncSession, spec: CarrierSpec) -> tuple[Carrier, str]:
    """A new carrier and its webhook secret (shown once)."""
    code = _code(spec.code)
    name = _text(spec.name, "name", NAME_MAX)
    days = _days(spec.non_working_days)
    prefix = _prefix(spec.tracking_prefix)
    if await session.scalar(select(col(Carrier.id)).where(col(Carrier.code) == code)):
        raise Conflict(f"a carrier with the code {code!r} exists", field="code")
    secret = new_secret()
    carrier = Carrier(
        code=code,
        name=name,
        kind=spec.kind,
        works_weekends=spec.works_weekends,
        non_working_days=days,
        tracking_prefix=prefix,
        webhook_secret=secret,
    )
    session.add(carrier)
    await session.flush()
    return carrier, secret


async def update_carrier(session: AsyncSession, carrier_id: int, change: CarrierChange) -> Carrier:
    carrier = await _carrier(session, carrier_id)
    name = _text(change.name, "name", NAME_MAX) if change.name is not None else carrier.name
    days = (
        _days(change.non_working_days)
        if change.non_working_days is not None
        else carrier.non_working_days
    )
    prefix = (
        _prefix(change.tracking_prefix)
        if change.tracking_prefix is not None
        else carrier.tracking_prefix
    )
    carrier.name = name
    carrier.non_working_days = days
    carrier.tracking_prefix = prefix
    if change.kind is not None:
        carrier.kind = change.kind
    if change.works_weekends is not None:
        carrier.works_weekends = change.works_weekends
    if change.active is not None:
        carrier.is_active = change.active
    session.add(carrier)
    await session.flush()
    return carrier


async def rotate_secret(session: AsyncSession, carrier_id: int) -> tuple[Carrier, str]:
    """A new webhook secret for the carrier (the old one stops verifying), shown once."""
    carrier = await _carrier(session, carrier_id)
    secret = new_secret()
    carrier.webhook_secret = secret
    session.add(carrier)
    await session.flush()
    return carrier, secret


# --- service levels ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    carrier_id: int
    code: str
    label: str
    level: ServiceLevel = ServiceLevel.STANDARD
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    within_hours: int | None = None


@dataclass(frozen=True)
class ServiceChange:
    label: str | None = None
    level: ServiceLevel | None = None
    cutoff_minutes: int | None = None
    handling_days: int | None = None
    within_hours: int | None = None
    active: bool | None = None


def _service_numbers(
    level: ServiceLevel, cutoff: int, handling: int, within: int | None
) -> int | None:
    _between(cutoff, "cutoffMinutes", 0, 24 * 60 - 1)
    _between(handling, "handlingDays", 0, 30)
    if level is ServiceLevel.SAME_DAY:
        if within is None:
            raise ValidationFailed("a SAME_DAY service needs withinHours", field="withinHours")
        _between(within, "withinHours", 1, 24)
        return within
    if within is not None:
        raise ValidationFailed("withinHours is for SAME_DAY services", field="withinHours")
    return None


async def _service(session: AsyncSession, service_id: int, field_name: str) -> CarrierService:
    service = await session.get(CarrierService, service_id)
    if service is None:
        raise NotFound("carrier service", service_id, field=field_name)
    return service


async def create_service(session: AsyncSession, spec: ServiceSpec) -> CarrierService:
    await _carrier(session, spec.carrier_id, "carrierId")
    code = _code(spec.code)
    label = _text(spec.label, "label", NAME_MAX)
    within = _service_numbers(
        spec.level, spec.cutoff_minutes, spec.handling_days, spec.within_hours
    )
    if await session.scalar(select(col(CarrierService.id)).where(col(CarrierService.code) == code)):
        raise Conflict(f"a carrier service with the code {code!r} exists", field="code")
    service = CarrierService(
        carrier_id=spec.carrier_id,
        code=code,
        label=label,
        level=spec.level,
        cutoff_minutes=spec.cutoff_minutes,
        handling_days=spec.handling_days,
        within_hours=within,
    )
    session.add(service)
    await session.flush()
    return service


async def update_service(
    session: AsyncSession, service_id: int, change: ServiceChange
) -> CarrierService:
    service = await _service(session, service_id, "id")
    label = _text(change.label, "label", NAME_MAX) if change.label is not None else service.label
    level = change.level if change.level is not None else service.level
    cutoff = change.cutoff_minutes if change.cutoff_minutes is not None else service.cutoff_minutes
    handling = change.handling_days if change.handling_days is not None else service.handling_days
    within = change.within_hours
    if within is None and level is ServiceLevel.SAME_DAY:
        within = service.within_hours
    service.within_hours = _service_numbers(level, cutoff, handling, within)
    service.label, service.level = label, level
    service.cutoff_minutes, service.handling_days = cutoff, handling
    if change.active is not None:
        service.is_active = change.active
    session.add(service)
    await session.flush()
    return service


# --- tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransitSpec:
    from_region: str
    to_region: str
    min_days: int
    max_days: int


@dataclass(frozen=True)
class ZoneSpec:
    from_region: str
    to_region: str
    zone: int


@dataclass(frozen=True)
class RateSpec:
    zone: int
    first_grams: int
    first_amount: int
    extra_grams: int
    extra_amount: int
    free_over: int | None = None


def _bounded(rows: Sequence[Any], field_name: str, limit: int) -> None:
    if not rows or len(rows) > limit:
        raise ValidationFailed(f"{field_name}: 1 to {limit} rows", field=field_name)


async def set_transit_times(
    session: AsyncSession, service_id: int, rows: Sequence[TransitSpec]
) -> list[TransitTime]:
    """Create or replace the service's transit times of the given region pairs; the other
    pairs stay. Returns the rows written, in the order given."""
    await _service(session, service_id, "serviceId")
    _bounded(rows, "times", TABLE_MAX)
    wanted: dict[tuple[str, str], TransitSpec] = {}
    for i, row in enumerate(rows):
        pair = (
            _region(row.from_region, f"times.{i}.fromRegion"),
            _region(row.to_region, f"times.{i}.toRegion", wildcard=True),
        )
        _between(row.min_days, f"times.{i}.minDays", 0, 60)
        _between(row.max_days, f"times.{i}.maxDays", row.min_days, 60)
        if pair in wanted:
            raise ValidationFailed(f"times.{i}: {pair[0]} → {pair[1]} twice", field=f"times.{i}")
        wanted[pair] = row
    existing = {
        (t.from_region, t.to_region): t
        for t in await session.scalars(
            select(TransitTime).where(col(TransitTime.service_id) == service_id)
        )
    }
    written: list[TransitTime] = []
    for pair, row in wanted.items():
        current = existing.get(pair) or TransitTime(
            service_id=service_id, from_region=pair[0], to_region=pair[1]
        )
        current.min_days, current.max_days = row.min_days, row.max_days
        session.add(current)
        written.append(current)
    await session.flush()
    return written


async def set_zones(session: AsyncSession, rows: Sequence[ZoneSpec]) -> list[Zone]:
    """Create or replace the zones of the given region pairs; the other pairs stay."""
    _bounded(rows, "zones", TABLE_MAX)
    wanted: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        pair = (
            _region(row.from_region, f"zones.{i}.fromRegion"),
            _region(row.to_region, f"zones.{i}.toRegion", wildcard=True),
        )
        _between(row.zone, f"zones.{i}.zone", 1, 20)
        if pair in wanted:
            raise ValidationFailed(f"zones.{i}: {pair[0]} → {pair[1]} twice", field=f"zones.{i}")
        wanted[pair] = row.zone
    existing = {(z.from_region, z.to_region): z for z in await session.scalars(select(Zone))}
    written: list[Zone] = []
    for pair, zone in wanted.items():
        current = existing.get(pair) or Zone(from_region=pair[0], to_region=pair[1])
        current.zone = zone
        session.add(current)
        written.append(current)
    await session.flush()
    return written


async def set_rates(session: AsyncSession, service_id: int, rows: Sequence[RateSpec]) -> list[Rate]:
    """Create or replace the service's rates of the given zones; the other zones stay."""
    await _service(session, service_id, "serviceId")
    _bounded(rows, "rates", RATES_MAX)
    seen: set[int] = set()
    for i, row in enumerate(rows):
        _between(row.zone, f"rates.{i}.zone", 1, 20)
        if row.zone in seen:
            raise ValidationFailed(f"rates.{i}: zone {row.zone} twice", field=f"rates.{i}.zone")
        seen.add(row.zone)
        _between(row.first_grams, f"rates.{i}.firstGrams", 1, 100_000)
        _between(row.extra_grams, f"rates.{i}.extraGrams", 1, 100_000)
        for name, amount in (
            ("firstAmount", row.first_amount),
            ("extraAmount", row.extra_amount),
            ("freeOver", row.free_over),
        ):
            if amount is not None:
                _between(amount, f"rates.{i}.{name}", 0, 100_000_000)
    existing = {
        r.zone: r
        for r in await session.scalars(select(Rate).where(col(Rate.service_id) == service_id))
    }
    written: list[Rate] = []
    for row in rows:
        current = existing.get(row.zone) or Rate(service_id=service_id, zone=row.zone)
        current.first_grams, current.first_amount = row.first_grams, row.first_amount
        current.extra_grams, current.extra_amount = row.extra_grams, row.extra_amount
        current.free_over = row.free_over
        session.add(current)
        written.append(current)
    await session.flush()
    return written


# --- sites and pickup points ---------------------------------------------------------------


@dataclass(frozen=True)
class SiteSpec:
    warehouse_id: int
    province: str
    city: str
    latitude: float | None = None
    longitude: float | None = None
    timezone: str = "Asia/Shanghai"
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    same_day_radius_km: float | None = None
    carrier_ids: Sequence[int] = field(default_factory=tuple)


def _place(
    province: str, city: str, latitude: float | None, longitude: float | None
) -> tuple[str, str, float, float]:
    """The province and city as the city table names them, and the coordinates: given ones
    (both or neither) or the table's."""
    province = _text(province, "province", REGION_MAX)
    city = _text(city, "city", REGION_MAX)
    place = geo.locate(province, city)
    if place is None or not geo.same_region(place.city, city):
        raise ValidationFailed(f"city: {province} {city} is not in the city table", field="city")
    if (latitude is None) != (longitude is None):
        raise ValidationFailed("latitude and longitude go together", field="latitude")
    if latitude is not None and longitude is not None:
        _between(latitude, "latitude", -90, 90)
        _between(longitude, "longitude", -180, 180)
        return place.province, place.city, latitude, longitude
    return place.province, place.city, place.latitude, place.longitude


async def upsert_site(session: AsyncSession, spec: SiteSpec) -> Site:
    """Create or replace the site of a core warehouse."""
    if await session.get(Warehouse, spec.warehouse_id) is None:
        raise NotFound("warehouse", spec.warehouse_id, field="warehouseId")
    province, city, latitude, longitude = _place(
        spec.province, spec.city, spec.latitude, spec.longitude
    )
    timezone = _text(spec.timezone, "timezone", 64)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"timezone: {timezone!r} is unknown", field="timezone") from exc
    _between(spec.cutoff_minutes, "cutoffMinutes", 0, 24 * 60 - 1)
    _between(spec.handling_days, "handlingDays", 0, 30)
    if spec.same_day_radius_km is not None:
        _between(spec.same_day_radius_km, "sameDayRadiusKm", 0.1, 200)
    carrier_ids = sorted(set(spec.carrier_ids))
    if len(carrier_ids) > 100:
        raise ValidationFailed("carrierIds: at most 100", field="carrierIds")
    if carrier_ids:
        known = set(
            await session.scalars(select(col(Carrier.id)).where(col(Carrier.id).in_(carrier_ids)))
        )
        for missing in carrier_ids:
            if missing not in known:
                raise NotFound("carrier", missing, field="carrierIds")
    site = await session.scalar(
        select(Site).where(col(Site.warehouse_id) == spec.warehouse_id)
    ) or Site(
        warehouse_id=spec.warehouse_id,
        city=city,
        province=province,
        latitude=latitude,
        longitude=longitude,
    )
    site.city, site.province, site.latitude, site.longitude = city, province, latitude, longitude
    site.timezone = timezone
    site.cutoff_minutes, site.handling_days = spec.cutoff_minutes, spec.handling_days
    site.same_day_radius_km = spec.same_day_radius_km
    site.carrier_ids = carrier_ids
    session.add(site)
    await session.flush()
    return site


def validate_hours(hours: Any) -> dict[str, list[list[str]]]:
    """Opening hours {"mon": [["09:00", "21:00"]], ...}: days mon…sun (a day left out is
    closed), at most four "HH:MM" intervals a day, each opening before it closes, none
    overlapping another. Returned with each day's intervals in time order."""
    if not isinstance(hours, Mapping):
        raise ValidationFailed('hours: an object like {"mon": [["09:00", "21:00"]]}', field="hours")
    clean: dict[str, list[list[str]]] = {}
    for day, intervals in hours.items():
        where = f"hours.{day}"
        if day not in DAYS:
            raise ValidationFailed(
                f"hours: {str(day)[:10]!r} is not one of {', '.join(DAYS)}", field="hours"
            )
        if not isinstance(intervals, list) or len(intervals) > INTERVALS_MAX:
            raise ValidationFailed(f"{where}: at most {INTERVALS_MAX} intervals", field=where)
        parsed: list[tuple[str, str]] = []
        for interval in intervals:
            if (
                not isinstance(interval, list)
                or len(interval) != 2
                or not all(isinstance(t, str) and _HHMM.match(t) for t in interval)
            ):
                raise ValidationFailed(f'{where}: intervals like ["09:00", "21:00"]', field=where)
            opens, closes = interval
            if opens >= closes:
                raise ValidationFailed(f"{where}: {opens} is not before {closes}", field=where)
            parsed.append((opens, closes))
        parsed.sort()
        for (_o1, c1), (o2, _c2) in zip(parsed, parsed[1:], strict=False):
            if o2 < c1:
                raise ValidationFailed(f"{where}: intervals overlap at {o2}", field=where)
        if parsed:
            clean[day] = [[o, c] for o, c in parsed]
    return clean


@dataclass(frozen=True)
class PickupSpec:
    code: str
    name: str
    warehouse_id: int
    province: str
    city: str
    kind: PickupKind = PickupKind.STORE
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    hours: Any = None
    ready_hours: int = 2


@dataclass(frozen=True)
class PickupChange:
    name: str | None = None
    address: str | None = None
    hours: Any = None
    ready_hours: int | None = None
    active: bool | None = None


async def create_pickup_point(session: AsyncSession, spec: PickupSpec) -> PickupPoint:
    code = _code(spec.code)
    name = _text(spec.name, "name", NAME_MAX)
    address = _text(spec.address, "address", TEXT_MAX, empty=True)
    if await session.get(Warehouse, spec.warehouse_id) is None:
        raise NotFound("warehouse", spec.warehouse_id, field="warehouseId")
    province, city, latitude, longitude = _place(
        spec.province, spec.city, spec.latitude, spec.longitude
    )
    hours = validate_hours(spec.hours if spec.hours is not None else {})
    _between(spec.ready_hours, "readyHours", 0, 240)
    if await session.scalar(select(col(PickupPoint.id)).where(col(PickupPoint.code) == code)):
        raise Conflict(f"a pickup point with the code {code!r} exists", field="code")
    point = PickupPoint(
        code=code,
        name=name,
        kind=spec.kind,
        warehouse_id=spec.warehouse_id,
        city=city,
        province=province,
        address=address,
        latitude=latitude,
        longitude=longitude,
        hours=hours,
        ready_hours=spec.ready_hours,
    )
    session.add(point)
    await session.flush()
    return point


async def update_pickup_point(
    session: AsyncSession, point_id: int, change: PickupChange
) -> PickupPoint:
    point = await session.get(PickupPoint, point_id)
    if point is None:
        raise NotFound("pickup point", point_id, field="id")
    name = _text(change.name, "name", NAME_MAX) if change.name is not None else point.name
    address = (
        _text(change.address, "address", TEXT_MAX, empty=True)
        if change.address is not None
        else point.address
    )
    hours = validate_hours(change.hours) if change.hours is not None else point.hours
    if change.ready_hours is not None:
        _between(change.ready_hours, "readyHours", 0, 240)
        point.ready_hours = change.ready_hours
    point.name, point.address, point.hours = name, address, hours
    if change.active is not None:
        point.is_active = change.active
    session.add(point)
    await session.flush()
    return point


# --- reads ---------------------------------------------------------------------------------


async def carriers_with_services(
    session: AsyncSession, limit: int, include_inactive: bool
) -> list[tuple[Carrier, list[CarrierService]]]:
    """Carriers by code with their services (two statements, whatever the count)."""
    query = select(Carrier).order_by(col(Carrier.code)).limit(limit)
    if not include_inactive:
        query = query.where(col(Carrier.is_active))
    carriers = list(await session.scalars(query))
    services: dict[int, list[CarrierService]] = {c.id: [] for c in carriers if c.id is not None}
    if services:
        for service in await session.scalars(
            select(CarrierService)
            .where(col(CarrierService.carrier_id).in_(list(services)))
            .order_by(col(CarrierService.code))
        ):
            services[service.carrier_id].append(service)
    return [(c, services.get(c.id or 0, [])) for c in carriers]
