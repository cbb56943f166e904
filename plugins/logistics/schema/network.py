"""The carrier network over GraphQL: what logistics staff keep (carriers, service levels,
transit times, zones, rates, warehouse sites, pickup points). Reads need logistics.read or
logistics.manage; changes need logistics.manage and are audited. A carrier's webhook secret is
write-only: shown once when made or rotated, masked afterwards."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay
from strawberry.scalars import JSON

from plugins.logistics import MANAGE, READ
from plugins.logistics.models import Carrier as CarrierRow
from plugins.logistics.models import CarrierService as ServiceRow
from plugins.logistics.models import PickupPoint as PickupRow
from plugins.logistics.models import Rate as RateRow
from plugins.logistics.models import Site as SiteRow
from plugins.logistics.models import TransitTime as TransitRow
from plugins.logistics.models import Zone as ZoneRow
from plugins.logistics.schema.enums import CarrierKind, PickupKind, ServiceLevel
from plugins.logistics.service import network
from server.plugin import (
    ConflictError,
    Connection,
    HasPermission,
    Info,
    Money,
    NotFoundError,
    Page,
    Paged,
    ValidationError,
    ValidationFailed,
    Warehouse,
    connection,
    filter_node_id,
    money,
    mutate,
    require_node_id,
)

_MANAGERS = HasPermission(MANAGE)
_READERS = HasPermission(MANAGE, READ)
FIRST_MAX = 100
SHORT = 64


def _gid(type_name: str, pk: int | None) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _first(first: int) -> int:
    if not 1 <= first <= FIRST_MAX:
        raise ValidationFailed(f"first: 1 to {FIRST_MAX}", field="first")
    return first


def _short(value: str | None, field: str, limit: int = SHORT) -> None:
    if value is not None and len(value) > limit:
        raise ValidationFailed(f"{field}: at most {limit} characters", field=field)


def _minor(value: Decimal | None, field: str) -> int | None:
    """An amount in yuan (two decimals) in minor units; more decimals are an error, never
    rounded."""
    if value is None:
        return None
    try:
        scaled = value.scaleb(2)
        if not scaled.is_finite() or scaled != scaled.to_integral_value():
            raise ValidationFailed(f"{field}: at most two decimals", field=field)
        return int(scaled)
    except InvalidOperation as exc:
        raise ValidationFailed(f"{field}: not an amount", field=field) from exc


# --- types ---------------------------------------------------------------------------------


@strawberry.type(description="A service level a carrier sells (logistics staff).")
class LogisticsCarrierService:
    id: strawberry.ID
    code: str
    label: str
    level: ServiceLevel
    cutoff_minutes: int = strawberry.field(
        description="Orders after this local time (minutes after midnight) leave a working "
        "day later."
    )
    handling_days: int
    within_hours: int | None = strawberry.field(description="SAME_DAY: delivered within.")
    active: bool
    carrier_id: strawberry.ID

    @classmethod
    def of(cls, row: ServiceRow) -> LogisticsCarrierService:
        return cls(
            id=_gid("LogisticsCarrierService", row.id),
            code=row.code,
            label=row.label,
            level=row.level,
            cutoff_minutes=row.cutoff_minutes,
            handling_days=row.handling_days,
            within_hours=row.within_hours,
            active=row.is_active,
            carrier_id=_gid("LogisticsCarrier", row.carrier_id),
        )


@strawberry.type(description="A carrier (logistics staff).")
class LogisticsCarrier:
    id: strawberry.ID
    code: str
    name: str
    kind: CarrierKind
    works_weekends: bool
    non_working_days: list[date] = strawberry.field(
        description="Its own days off besides the public calendar."
    )
    tracking_prefix: str
    active: bool
    webhook_secret_hint: str | None = strawberry.field(
        description="The webhook secret's last four characters (the secret is shown once, "
        "by createCarrier and rotateCarrierSecret)."
    )
    services: list[LogisticsCarrierService]

    @classmethod
    def of(cls, row: CarrierRow, services: list[ServiceRow]) -> LogisticsCarrier:
        return cls(
            id=_gid("LogisticsCarrier", row.id),
            code=row.code,
            name=row.name,
            kind=row.kind,
            works_weekends=row.works_weekends,
            non_working_days=[date.fromisoformat(d) for d in row.non_working_days],
            tracking_prefix=row.tracking_prefix,
            active=row.is_active,
            webhook_secret_hint=network.masked(row.webhook_secret),
            services=[LogisticsCarrierService.of(s) for s in services],
        )


@strawberry.type(description="Working days on the road between two provinces.")
class LogisticsTransitTime:
    from_region: str
    to_region: str = strawberry.field(description='A province, or "*": the default.')
    min_days: int
    max_days: int

    @classmethod
    def of(cls, row: TransitRow) -> LogisticsTransitTime:
        return cls(
            from_region=row.from_region,
            to_region=row.to_region,
            min_days=row.min_days,
            max_days=row.max_days,
        )


@strawberry.type(description="The rate zone between two provinces.")
class LogisticsZone:
    from_region: str
    to_region: str = strawberry.field(description='A province, or "*": the default.')
    zone: int

    @classmethod
    def of(cls, row: ZoneRow) -> LogisticsZone:
        return cls(from_region=row.from_region, to_region=row.to_region, zone=row.zone)


@strawberry.type(
    description="A service's price in a zone: firstAmount for the first firstGrams, then "
    "extraAmount per started extraGrams; free from freeOver (the cart's subtotal)."
)
class LogisticsRate:
    zone: int
    first_grams: int
    extra_grams: int
    _row: strawberry.Private[RateRow]

    @classmethod
    def of(cls, row: RateRow) -> LogisticsRate:
        return cls(
            zone=row.zone, first_grams=row.first_grams, extra_grams=row.extra_grams, _row=row
        )

    @strawberry.field
    def first_amount(self, info: Info) -> Money:
        return money(self._row.first_amount, info.context.settings.currency)

    @strawberry.field
    def extra_amount(self, info: Info) -> Money:
        return money(self._row.extra_amount, info.context.settings.currency)

    @strawberry.field
    def free_over(self, info: Info) -> Money | None:
        value = self._row.free_over
        return None if value is None else money(value, info.context.settings.currency)


@strawberry.type(description="Where a warehouse is and how it works (logistics staff).")
class LogisticsSite:
    id: strawberry.ID
    province: str
    city: str
    latitude: float
    longitude: float
    timezone: str
    cutoff_minutes: int
    handling_days: int
    same_day_radius_km: float | None = strawberry.field(
        description="A forward warehouse (前置仓) delivers within hours inside this radius."
    )
    carrier_ids: list[strawberry.ID] = strawberry.field(
        description="The carriers that collect here; empty: every active carrier."
    )
    _row: strawberry.Private[SiteRow]

    @classmethod
    def of(cls, row: SiteRow) -> LogisticsSite:
        return cls(
            id=_gid("LogisticsSite", row.id),
            province=row.province,
            city=row.city,
            latitude=row.latitude,
            longitude=row.longitude,
            timezone=row.timezone,
            cutoff_minutes=row.cutoff_minutes,
            handling_days=row.handling_days,
            same_day_radius_km=row.same_day_radius_km,
            carrier_ids=[_gid("LogisticsCarrier", c) for c in row.carrier_ids],
            _row=row,
        )

    @strawberry.field
    def warehouse(self, info: Info) -> Warehouse | None:
        return Warehouse.by_id(info, self._row.warehouse_id)  # type: ignore[return-value]  # a Warehouse or an awaitable of one: GraphQL awaits it


@strawberry.type(description="A store or locker where customers collect (logistics staff).")
class LogisticsPickupPoint:
    id: strawberry.ID
    code: str
    name: str
    kind: PickupKind
    province: str
    city: str
    address: str
    latitude: float
    longitude: float
    hours: JSON = strawberry.field(
        description='Opening hours: {"mon": [["09:00", "21:00"]], ...}; a day left out is closed.'
    )
    ready_hours: int
    active: bool
    _row: strawberry.Private[PickupRow]

    @classmethod
    def of(cls, row: PickupRow) -> LogisticsPickupPoint:
        return cls(
            id=_gid("LogisticsPickupPoint", row.id),
            code=row.code,
            name=row.name,
            kind=row.kind,
            province=row.province,
            city=row.city,
            address=row.address,
            latitude=row.latitude,
            longitude=row.longitude,
            hours=JSON(row.hours),
            ready_hours=row.ready_hours,
            active=row.is_active,
            _row=row,
        )

    @strawberry.field(description="The warehouse whose stock it hands out.")
    def warehouse(self, info: Info) -> Warehouse | None:
        return Warehouse.by_id(info, self._row.warehouse_id)  # type: ignore[return-value]  # as above


# --- inputs --------------------------------------------------------------------------------


@strawberry.input
class CreateCarrierInput:
    code: str = strawberry.field(description="1 to 32 letters, digits, '_', '.', '-'.")
    name: str = strawberry.field(description="1 to 120 characters.")
    kind: CarrierKind = CarrierKind.THIRD_PARTY
    works_weekends: bool = True
    non_working_days: list[date] = strawberry.field(
        default_factory=list, description="At most 100 days."
    )
    tracking_prefix: str = strawberry.field(default="", description="At most 16 characters.")


@strawberry.input(description="Only the fields given change.")
class UpdateCarrierInput:
    id: strawberry.ID = strawberry.field(description="A LogisticsCarrier's id.")
    name: str | None = None
    kind: CarrierKind | None = None
    works_weekends: bool | None = None
    non_working_days: list[date] | None = None
    tracking_prefix: str | None = None
    active: bool | None = None


@strawberry.input
class RotateCarrierSecretInput:
    id: strawberry.ID = strawberry.field(description="A LogisticsCarrier's id.")


@strawberry.input
class CreateCarrierServiceInput:
    carrier_id: strawberry.ID
    code: str = strawberry.field(description="1 to 32 letters, digits, '_', '.', '-'.")
    label: str = strawberry.field(description="1 to 120 characters.")
    level: ServiceLevel = ServiceLevel.STANDARD
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    within_hours: int | None = strawberry.field(
        default=None, description="SAME_DAY only (required there): 1 to 24."
    )


@strawberry.input(description="Only the fields given change.")
class UpdateCarrierServiceInput:
    id: strawberry.ID = strawberry.field(description="A LogisticsCarrierService's id.")
    label: str | None = None
    level: ServiceLevel | None = None
    cutoff_minutes: int | None = None
    handling_days: int | None = None
    within_hours: int | None = None
    active: bool | None = None


@strawberry.input
class TransitTimeInput:
    from_region: str = strawberry.field(description="A province.")
    to_region: str = strawberry.field(description='A province, or "*": the default.')
    min_days: int
    max_days: int


@strawberry.input(description="Creates or replaces these pairs' rows; other pairs stay.")
class SetTransitTimesInput:
    service_id: strawberry.ID
    times: list[TransitTimeInput] = strawberry.field(description="1 to 100 rows.")


@strawberry.input
class ZoneInput:
    from_region: str = strawberry.field(description="A province.")
    to_region: str = strawberry.field(description='A province, or "*": the default.')
    zone: int = strawberry.field(description="1 to 20.")


@strawberry.input(description="Creates or replaces these pairs' zones; other pairs stay.")
class SetZonesInput:
    zones: list[ZoneInput] = strawberry.field(description="1 to 100 rows.")


@strawberry.input
class RateInput:
    zone: int
    first_grams: int = 1000
    first_amount: Decimal = strawberry.field(description="Yuan, at most two decimals.")
    extra_grams: int = 1000
    extra_amount: Decimal = Decimal(0)
    free_over: Decimal | None = None


@strawberry.input(description="Creates or replaces these zones' rates; other zones stay.")
class SetRatesInput:
    service_id: strawberry.ID
    rates: list[RateInput] = strawberry.field(description="1 to 50 rows.")


@strawberry.input(
    description="Where a warehouse is: a city of the city table (its coordinates unless "
    "latitude and longitude are given)."
)
class UpsertSiteInput:
    warehouse_id: strawberry.ID
    province: str
    city: str
    latitude: float | None = None
    longitude: float | None = None
    timezone: str = "Asia/Shanghai"
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    same_day_radius_km: float | None = None
    carrier_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class CreatePickupPointInput:
    code: str
    name: str
    warehouse_id: strawberry.ID = strawberry.field(description="Whose stock it hands out.")
    province: str
    city: str
    kind: PickupKind = PickupKind.STORE
    address: str = strawberry.field(default="", description="At most 500 characters.")
    latitude: float | None = None
    longitude: float | None = None
    hours: JSON | None = strawberry.field(
        default=None,
        description='{"mon": [["09:00", "21:00"]], ...}: "HH:MM" intervals, each opening '
        "before it closes, not overlapping, at most 4 a day.",
    )
    ready_hours: int = 2


@strawberry.input(description="Only the fields given change.")
class UpdatePickupPointInput:
    id: strawberry.ID = strawberry.field(description="A LogisticsPickupPoint's id.")
    name: str | None = None
    address: str | None = None
    hours: JSON | None = None
    ready_hours: int | None = None
    active: bool | None = None


# --- results -------------------------------------------------------------------------------


@strawberry.type(description="The carrier and its webhook secret, shown this once.")
class CarrierSecretSuccess:
    carrier: LogisticsCarrier
    webhook_secret: str


@strawberry.type
class CarrierSuccess:
    carrier: LogisticsCarrier


@strawberry.type
class CarrierServiceSuccess:
    service: LogisticsCarrierService


@strawberry.type
class SetTransitTimesSuccess:
    times: list[LogisticsTransitTime]


@strawberry.type
class SetZonesSuccess:
    zones: list[LogisticsZone]


@strawberry.type
class SetRatesSuccess:
    rates: list[LogisticsRate]


@strawberry.type
class SiteSuccess:
    site: LogisticsSite


@strawberry.type
class PickupPointSuccess:
    pickup_point: LogisticsPickupPoint


_Errors = ValidationError | NotFoundError | ConflictError
CarrierSecretResult = Annotated[
    CarrierSecretSuccess | _Errors, strawberry.union("CarrierSecretResult")
]
CarrierResult = Annotated[CarrierSuccess | _Errors, strawberry.union("CarrierResult")]
CarrierServiceResult = Annotated[
    CarrierServiceSuccess | _Errors, strawberry.union("CarrierServiceResult")
]
SetTransitTimesResult = Annotated[
    SetTransitTimesSuccess | _Errors, strawberry.union("SetTransitTimesResult")
]
SetZonesResult = Annotated[SetZonesSuccess | _Errors, strawberry.union("SetZonesResult")]
SetRatesResult = Annotated[SetRatesSuccess | _Errors, strawberry.union("SetRatesResult")]
SiteResult = Annotated[SiteSuccess | _Errors, strawberry.union("SiteResult")]
PickupPointResult = Annotated[PickupPointSuccess | _Errors, strawberry.union("PickupPointResult")]


async def _carrier_node(session: AsyncSession, row: CarrierRow) -> LogisticsCarrier:
    services = list(
        await session.scalars(
            select(ServiceRow)
            .where(col(ServiceRow.carrier_id) == row.id)
            .order_by(col(ServiceRow.code))
        )
    )
    return LogisticsCarrier.of(row, services)


def _carrier_id(value: strawberry.ID, field: str = "id") -> int:
    return require_node_id(value, "LogisticsCarrier", field)


def _service_id(value: strawberry.ID, field: str) -> int:
    return require_node_id(value, "LogisticsCarrierService", field)


# --- queries -------------------------------------------------------------------------------


@strawberry.type
class NetworkQueries:
    @strawberry.field(
        description="The carriers by code, with their service levels (logistics.read or "
        "logistics.manage).",
        permission_classes=[_READERS],
    )
    async def carriers(
        self, info: Info, first: int = FIRST_MAX, include_inactive: bool = False
    ) -> list[LogisticsCarrier]:
        rows = await info.context.db.run(
            network.carriers_with_services, _first(first), include_inactive
        )
        return [LogisticsCarrier.of(c, s) for c, s in rows]

    @strawberry.field(
        description="The warehouses' sites, by warehouse (logistics.read or logistics.manage).",
        permission_classes=[_READERS],
    )
    async def logistics_sites(
        self, info: Info, first: int = FIRST_MAX, offset: int = 0
    ) -> list[LogisticsSite]:
        rows = await info.context.db.scalars(
            select(SiteRow)
            .order_by(col(SiteRow.warehouse_id))
            .offset(max(offset, 0))
            .limit(_first(first))
        )
        return [LogisticsSite.of(r) for r in rows]

    @strawberry.field(
        description="Transit times, oldest first; serviceId narrows them to a service's "
        "(one that does not exist has none), fromRegion to a province's (logistics.read or "
        "logistics.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def transit_times(
        self,
        info: Info,
        page: Page,
        service_id: strawberry.ID | None = None,
        from_region: str | None = None,
    ) -> Connection[LogisticsTransitTime]:
        _short(from_region, "fromRegion")
        query = select(TransitRow)
        if service_id is not None:
            sid = filter_node_id(service_id, "LogisticsCarrierService")
            query = query.where(col(TransitRow.service_id) == sid)
        if from_region is not None:
            query = query.where(col(TransitRow.from_region) == from_region)
        return await connection(info, query, page, sort=[], to_node=LogisticsTransitTime.of)

    @strawberry.field(
        description="Rates, oldest first; serviceId narrows them to a service's "
        "(logistics.read or logistics.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def rates(
        self, info: Info, page: Page, service_id: strawberry.ID | None = None
    ) -> Connection[LogisticsRate]:
        query = select(RateRow)
        if service_id is not None:
            sid = filter_node_id(service_id, "LogisticsCarrierService")
            query = query.where(col(RateRow.service_id) == sid)
        return await connection(info, query, page, sort=[], to_node=LogisticsRate.of)

    @strawberry.field(
        description="The zones by region pair (logistics.read or logistics.manage).",
        permission_classes=[_READERS],
    )
    async def zones(
        self,
        info: Info,
        from_region: str | None = None,
        first: int = FIRST_MAX,
        offset: int = 0,
    ) -> list[LogisticsZone]:
        _short(from_region, "fromRegion")
        query = select(ZoneRow)
        if from_region is not None:
            query = query.where(col(ZoneRow.from_region) == from_region)
        rows = await info.context.db.scalars(
            query.order_by(col(ZoneRow.from_region), col(ZoneRow.to_region))
            .offset(max(offset, 0))
            .limit(_first(first))
        )
        return [LogisticsZone.of(r) for r in rows]


# --- mutations -----------------------------------------------------------------------------


@strawberry.type
class NetworkMutations:
    @strawberry.mutation(
        description="Add a carrier; its webhook secret is made and shown this once "
        "(logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def create_carrier(self, info: Info, input: CreateCarrierInput) -> CarrierSecretResult:
        async def work(session: AsyncSession) -> CarrierSecretSuccess:
            row, secret = await network.create_carrier(
                session,
                network.CarrierSpec(
                    code=input.code,
                    name=input.name,
                    kind=input.kind,
                    works_weekends=input.works_weekends,
                    non_working_days=input.non_working_days,
                    tracking_prefix=input.tracking_prefix,
                ),
            )
            return CarrierSecretSuccess(
                carrier=await _carrier_node(session, row), webhook_secret=secret
            )

        return await mutate(info, work, lambda done: done)

    @strawberry.mutation(
        description="Change a carrier (logistics.manage).", permission_classes=[_MANAGERS]
    )
    async def update_carrier(self, info: Info, input: UpdateCarrierInput) -> CarrierResult:
        async def work(session: AsyncSession) -> CarrierSuccess:
            row = await network.update_carrier(
                session,
                _carrier_id(input.id),
                network.CarrierChange(
                    name=input.name,
                    kind=input.kind,
                    works_weekends=input.works_weekends,
                    non_working_days=input.non_working_days,
                    tracking_prefix=input.tracking_prefix,
                    active=input.active,
                ),
            )
            return CarrierSuccess(carrier=await _carrier_node(session, row))

        return await mutate(info, work, lambda done: done)

    @strawberry.mutation(
        description="Replace a carrier's webhook secret; the new one is shown this once and "
        "the old one stops verifying (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def rotate_carrier_secret(
        self, info: Info, input: RotateCarrierSecretInput
    ) -> CarrierSecretResult:
        async def work(session: AsyncSession) -> CarrierSecretSuccess:
            row, secret = await network.rotate_secret(session, _carrier_id(input.id))
            return CarrierSecretSuccess(
                carrier=await _carrier_node(session, row), webhook_secret=secret
            )

        return await mutate(info, work, lambda done: done)

    @strawberry.mutation(
        description="Add a service level to a carrier (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def create_carrier_service(
        self, info: Info, input: CreateCarrierServiceInput
    ) -> CarrierServiceResult:
        async def work(session: AsyncSession) -> ServiceRow:
            return await network.create_service(
                session,
                network.ServiceSpec(
                    carrier_id=_carrier_id(input.carrier_id, "carrierId"),
                    code=input.code,
                    label=input.label,
                    level=input.level,
                    cutoff_minutes=input.cutoff_minutes,
                    handling_days=input.handling_days,
                    within_hours=input.within_hours,
                ),
            )

        return await mutate(
            info, work, lambda row: CarrierServiceSuccess(service=LogisticsCarrierService.of(row))
        )

    @strawberry.mutation(
        description="Change a service level (logistics.manage).", permission_classes=[_MANAGERS]
    )
    async def update_carrier_service(
        self, info: Info, input: UpdateCarrierServiceInput
    ) -> CarrierServiceResult:
        async def work(session: AsyncSession) -> ServiceRow:
            return await network.update_service(
                session,
                _service_id(input.id, "id"),
                network.ServiceChange(
                    label=input.label,
                    level=input.level,
                    cutoff_minutes=input.cutoff_minutes,
                    handling_days=input.handling_days,
                    within_hours=input.within_hours,
                    active=input.active,
                ),
            )

        return await mutate(
            info, work, lambda row: CarrierServiceSuccess(service=LogisticsCarrierService.of(row))
        )

    @strawberry.mutation(
        description="Create or replace a service's transit times for the given region pairs "
        "(logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def set_transit_times(
        self, info: Info, input: SetTransitTimesInput
    ) -> SetTransitTimesResult:
        async def work(session: AsyncSession) -> list[TransitRow]:
            for i, t in enumerate(input.times[: network.TABLE_MAX + 1]):
                _short(t.from_region, f"times.{i}.fromRegion")
                _short(t.to_region, f"times.{i}.toRegion")
            return await network.set_transit_times(
                session,
                _service_id(input.service_id, "serviceId"),
                [
                    network.TransitSpec(t.from_region, t.to_region, t.min_days, t.max_days)
                    for t in input.times
                ],
            )

        return await mutate(
            info,
            work,
            lambda rows: SetTransitTimesSuccess(times=[LogisticsTransitTime.of(r) for r in rows]),
        )

    @strawberry.mutation(
        description="Create or replace the zones of the given region pairs (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def set_zones(self, info: Info, input: SetZonesInput) -> SetZonesResult:
        async def work(session: AsyncSession) -> list[ZoneRow]:
            for i, z in enumerate(input.zones[: network.TABLE_MAX + 1]):
                _short(z.from_region, f"zones.{i}.fromRegion")
                _short(z.to_region, f"zones.{i}.toRegion")
            return await network.set_zones(
                session, [network.ZoneSpec(z.from_region, z.to_region, z.zone) for z in input.zones]
            )

        return await mutate(
            info, work, lambda rows: SetZonesSuccess(zones=[LogisticsZone.of(r) for r in rows])
        )

    @strawberry.mutation(
        description="Create or replace a service's rates for the given zones (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def set_rates(self, info: Info, input: SetRatesInput) -> SetRatesResult:
        async def work(session: AsyncSession) -> list[RateRow]:
            specs = []
            for i, r in enumerate(input.rates[: network.RATES_MAX + 1]):
                first_amount = _minor(r.first_amount, f"rates.{i}.firstAmount")
                extra_amount = _minor(r.extra_amount, f"rates.{i}.extraAmount")
                assert first_amount is not None and extra_amount is not None
                specs.append(
                    network.RateSpec(
                        zone=r.zone,
                        first_grams=r.first_grams,
                        first_amount=first_amount,
                        extra_grams=r.extra_grams,
                        extra_amount=extra_amount,
                        free_over=_minor(r.free_over, f"rates.{i}.freeOver"),
                    )
                )
            return await network.set_rates(
                session, _service_id(input.service_id, "serviceId"), specs
            )

        return await mutate(
            info, work, lambda rows: SetRatesSuccess(rates=[LogisticsRate.of(r) for r in rows])
        )

    @strawberry.mutation(
        description="Create or replace a warehouse's site (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def upsert_site(self, info: Info, input: UpsertSiteInput) -> SiteResult:
        async def work(session: AsyncSession) -> SiteRow:
            _short(input.province, "province")
            _short(input.city, "city")
            _short(input.timezone, "timezone")
            if len(input.carrier_ids) > FIRST_MAX:
                raise ValidationFailed(f"carrierIds: at most {FIRST_MAX}", field="carrierIds")
            return await network.upsert_site(
                session,
                network.SiteSpec(
                    warehouse_id=require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                    province=input.province,
                    city=input.city,
                    latitude=input.latitude,
                    longitude=input.longitude,
                    timezone=input.timezone,
                    cutoff_minutes=input.cutoff_minutes,
                    handling_days=input.handling_days,
                    same_day_radius_km=input.same_day_radius_km,
                    carrier_ids=[_carrier_id(c, "carrierIds") for c in input.carrier_ids],
                ),
            )

        return await mutate(info, work, lambda row: SiteSuccess(site=LogisticsSite.of(row)))

    @strawberry.mutation(
        description="Add a pickup point (自提: a store or a locker) (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def create_pickup_point(
        self, info: Info, input: CreatePickupPointInput
    ) -> PickupPointResult:
        async def work(session: AsyncSession) -> PickupRow:
            _short(input.province, "province")
            _short(input.city, "city")
            return await network.create_pickup_point(
                session,
                network.PickupSpec(
                    code=input.code,
                    name=input.name,
                    warehouse_id=require_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                    province=input.province,
                    city=input.city,
                    kind=input.kind,
                    address=input.address,
                    latitude=input.latitude,
                    longitude=input.longitude,
                    hours=input.hours,
                    ready_hours=input.ready_hours,
                ),
            )

        return await mutate(
            info, work, lambda row: PickupPointSuccess(pickup_point=LogisticsPickupPoint.of(row))
        )

    @strawberry.mutation(
        description="Change a pickup point (logistics.manage).", permission_classes=[_MANAGERS]
    )
    async def update_pickup_point(
        self, info: Info, input: UpdatePickupPointInput
    ) -> PickupPointResult:
        async def work(session: AsyncSession) -> PickupRow:
            return await network.update_pickup_point(
                session,
                require_node_id(input.id, "LogisticsPickupPoint", "id"),
                network.PickupChange(
                    name=input.name,
                    address=input.address,
                    hours=input.hours,
                    ready_hours=input.ready_hours,
                    active=input.active,
                ),
            )

        return await mutate(
            info, work, lambda row: PickupPointSuccess(pickup_point=LogisticsPickupPoint.of(row))
        )


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [NetworkQueries]
MUTATIONS: list[type[Any]] = [NetworkMutations]
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
