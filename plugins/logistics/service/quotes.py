"""Shipping options with promised dates (``shipping_quotes``) and the promise frozen on the
order (``order_placing``). docs/plugins/logistics.md, "Delivery promises", "Shipping prices"
and "Pickup points".

A quote is worked out from the shop's network (carriers, their services, rate and transit
tables, warehouse sites, pickup points), the cart's units and weight and where it goes. Reads
are batched: a fixed number of statements, whatever the cart's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    Carrier,
    CarrierService,
    PickupPoint,
    Promise,
    Rate,
    ServiceLevel,
    Site,
    TransitTime,
    Zone,
)
from plugins.logistics.service import calendar, geo, pickup
from plugins.logistics.service.settings import LogisticsSettings
from server.models import (
    Order,
    OrderLine,
    ProductVariant,
    StockLevel,
    Warehouse,
    WarehouseKind,
    utcnow,
)
from server.plugin import CartView, CheckoutProblem, ShippingQuote

ANY_REGION = "*"
QUOTE_CODE_MAX = 64
# Separates a PICKUP service's code from the pickup point's in a quote code.
AT = "@"
# Where the quotes of a request wait for the order that chooses one (session.info).
_REMEMBERED = "logistics.quotes"


@dataclass(frozen=True)
class QuoteDetail:
    """What a quote promised, beyond what ShippingQuote carries: frozen on the order that
    chooses it."""

    code: str
    service_id: int
    carrier_id: int
    level: ServiceLevel
    warehouse_id: int | None
    pickup_point_id: int | None
    from_region: str
    to_region: str
    earliest: date
    latest: date
    deliver_by: datetime | None = None


@dataclass(frozen=True)
class SitePlace:
    site: Site
    kind: WarehouseKind
    distance_km: float | None


@dataclass
class Network:
    """The rows one quote needs, read once."""

    services: list[tuple[CarrierService, Carrier]]
    sites: list[SitePlace]
    points: list[PickupPoint]
    # (warehouse id, variant id) → units available (on hand − reserved)
    available: dict[tuple[int, int], int]
    weights: dict[int, int | None]
    zones: list[Zone]
    rates: dict[tuple[int, int], Rate]
    transits: dict[int, list[TransitTime]]


def price(rate: Rate, weight_grams: int, subtotal: int) -> int:
    """``first_amount`` for the first ``first_grams``, ``extra_amount`` for every started
    ``extra_grams`` more; nothing when the cart's subtotal reaches ``free_over``."""
    if rate.free_over is not None and subtotal >= rate.free_over:
        return 0
    extra = max(0, weight_grams - rate.first_grams)
    # A started step is charged whole: ceiling division.
    steps = -(-extra // rate.extra_grams) if rate.extra_grams > 0 else 0
    return rate.first_amount + steps * rate.extra_amount


def zone_of(
    zones: Sequence[Zone],
    site: Site,
    province: str,
    city: str,
    distance_km: float | None,
    bands_km: Sequence[int],
) -> int:
    """The rate zone from a site to an address: the Zone row of the two provinces (the
    site's province's "*" row by default); without one, 1 in the same city, 2 in the same
    province, then 3 plus one per distance band passed (the last zone when the city is not
    in the shipped table)."""
    fallback: int | None = None
    for row in zones:
        if not geo.same_region(row.from_region, site.province):
            continue
        if geo.same_region(row.to_region, province):
            return row.zone
        if row.to_region == ANY_REGION:
            fallback = row.zone
    if fallback is not None:
        return fallback
    if geo.same_region(site.city, city):
        return 1
    if geo.same_region(site.province, province):
        return 2
    if distance_km is None:
        return 3 + len(bands_km)
    return 3 + sum(1 for band in bands_km if distance_km > band)


def transit_of(rows: Iterable[TransitTime], from_region: str, to_region: str) -> TransitTime | None:
    """The transit time between two regions: the exact pair, else the from-region's "*"
    row, else the service's "*" → "*" row."""
    best: tuple[int, TransitTime] | None = None
    for row in rows:
        if geo.same_region(row.from_region, from_region):
            rank = 0 if geo.same_region(row.to_region, to_region) else 1
            if rank == 1 and row.to_region != ANY_REGION:
                continue
        elif row.from_region == ANY_REGION and row.to_region == ANY_REGION:
            rank = 2
        else:
            continue
        if best is None or rank < best[0]:
            best = (rank, row)
    return best[1] if best else None


def _settings(config: Any) -> LogisticsSettings:
    return config if isinstance(config, LogisticsSettings) else LogisticsSettings()


def _where(address: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if not address:
        return None
    province = str(address.get("province") or "").strip()
    city = str(address.get("city") or "").strip()
    if not province and not city:
        return None
    return province, city


async def _network(
    session: AsyncSession,
    cart: CartView,
    province: str,
    city: str,
    place: geo.Place | None,
) -> Network | None:
    """Every row a quote needs, in a fixed number of statements (None: nothing to quote
    with)."""
    services = [
        (s, c)
        for s, c in (
            await session.execute(
                select(CarrierService, Carrier)
                .join(Carrier, col(Carrier.id) == col(CarrierService.carrier_id))
                .where(col(CarrierService.is_active), col(Carrier.is_active))
                .order_by(col(CarrierService.id))
            )
        ).all()
    ]
    if not services:
        return None
    site_rows = (
        await session.execute(
            select(Site, col(Warehouse.kind))
            .join(Warehouse, col(Warehouse.id) == col(Site.warehouse_id))
            .where(col(Warehouse.is_active))
            .order_by(col(Site.id))
        )
    ).all()
    sites = [
        SitePlace(
            site,
            kind,
            geo.distance_km(site.latitude, site.longitude, place.latitude, place.longitude)
            if place
            else None,
        )
        for site, kind in site_rows
    ]
    points: list[PickupPoint] = []
    if city and any(s.level is ServiceLevel.PICKUP for s, _ in services):
        points = [
            p
            for p in await session.scalars(
                select(PickupPoint)
                .where(col(PickupPoint.is_active))
                .order_by(col(PickupPoint.code))
            )
            if geo.same_region(p.city, city)
        ]
    variant_ids = sorted({line.variant_id for line in cart.lines})
    warehouse_ids = sorted({s.site.warehouse_id for s in sites} | {p.warehouse_id for p in points})
    available: dict[tuple[int, int], int] = {}
    weights: dict[int, int | None] = {}
    # The cart's variants with their weight and their stock at the candidate warehouses, in
    # one statement (a variant stocked nowhere there comes once, without a warehouse).
    for variant_id, weight, warehouse_id, units in (
        await session.execute(
            select(
                col(ProductVariant.id),
                col(ProductVariant.weight_grams),
                col(StockLevel.warehouse_id),
                col(StockLevel.on_hand) - col(StockLevel.reserved),
            )
            .outerjoin(
                StockLevel,
                and_(
                    col(StockLevel.variant_id) == col(ProductVariant.id),
                    col(StockLevel.warehouse_id).in_(warehouse_ids or [-1]),
                ),
            )
            .where(col(ProductVariant.id).in_(variant_ids))
        )
    ).all():
        if variant_id is None:
            continue
        weights[variant_id] = weight
        if warehouse_id is not None:
            key = (int(warehouse_id), variant_id)
            available[key] = available.get(key, 0) + int(units)
    service_ids = [s.id for s, _ in services]
    # Only the rows towards this address (or its "*" defaults): regions are stored as the city
    # table names them, so the address's province is looked up the same way.
    named = geo.locate(province, "")
    towards = sorted(
        {province, ANY_REGION}
        | ({named.province} if named else set())
        | ({place.province} if place else set())
    )
    zones = list(
        await session.scalars(
            select(Zone).where(col(Zone.to_region).in_(towards)).order_by(col(Zone.id))
        )
    )
    rates = {
        (r.service_id, r.zone): r
        for r in await session.scalars(select(Rate).where(col(Rate.service_id).in_(service_ids)))
    }
    transits: dict[int, list[TransitTime]] = {}
    for t in await session.scalars(
        select(TransitTime).where(
            col(TransitTime.service_id).in_(service_ids), col(TransitTime.to_region).in_(towards)
        )
    ):
        transits.setdefault(t.service_id, []).append(t)
    return Network(services, sites, points, available, weights, zones, rates, transits)


def _plan(
    sites: Sequence[SitePlace], need: Mapping[int, int], holds: Any
) -> list[SitePlace] | None:
    """The warehouses a cart leaves from: the nearest that holds every unit, else the fewest
    warehouses (each line whole from one), nearest first; None when a line fits in none."""
    for s in sites:
        if holds(s.site.warehouse_id, need):
            return [s]
    left = dict(need)
    plan: list[SitePlace] = []
    while left:
        best: tuple[int, SitePlace] | None = None
        for s in sites:
            covered = sum(1 for v, q in left.items() if holds(s.site.warehouse_id, {v: q}))
            if covered and (best is None or covered > best[0]):
                best = (covered, s)
        if best is None:
            return None
        plan.append(best[1])
        left = {v: q for v, q in left.items() if not holds(best[1].site.warehouse_id, {v: q})}
    return plan


def _by_distance(sites: Iterable[SitePlace], province: str) -> list[SitePlace]:
    # Unknown city: the address's province first, then by id.
    return sorted(
        sites,
        key=lambda s: (
            s.distance_km if s.distance_km is not None else float("inf"),
            not geo.same_region(s.site.province, province),
            s.site.id or 0,
        ),
    )


def remember(session: AsyncSession, cart_id: int | None, details: Iterable[QuoteDetail]) -> None:
    """Keep what the quotes promised for the order this request may place."""
    kept: dict[tuple[int | None, str], QuoteDetail] = session.info.setdefault(_REMEMBERED, {})
    for detail in details:
        kept[(cart_id, detail.code)] = detail


def remembered(session: AsyncSession, cart_id: int | None, code: str) -> QuoteDetail | None:
    kept: dict[tuple[int | None, str], QuoteDetail] = session.info.get(_REMEMBERED, {})
    return kept.get((cart_id, code))


async def shipping_quotes(
    session: AsyncSession,
    cart: CartView,
    address: Mapping[str, Any] | None,
    plugins: Any,
    config: Any,
    *,
    now: datetime | None = None,
) -> Sequence[ShippingQuote]:
    """Every way the shop's carriers can ship ``cart`` to ``address``, each with its price and
    promised window. No address (nowhere to promise to) or an empty cart: no quotes."""
    settings = _settings(config)
    where = _where(address)
    if where is None or not cart.lines:
        return []
    province, city = where
    place = geo.locate(province, city)
    to_region = province or (place.province if place else "")
    network = await _network(session, cart, province, city, place)
    if network is None:
        return []
    now = now or utcnow()
    today = calendar.local_time(now, settings.timezone).date()
    horizon = today + timedelta(days=settings.horizon_days)
    need: dict[int, int] = {}
    for line in cart.lines:
        need[line.variant_id] = need.get(line.variant_id, 0) + line.quantity
    weight = sum(
        q * (network.weights.get(v) or settings.default_weight_grams) for v, q in need.items()
    )

    def holds(warehouse_id: int, units: Mapping[int, int]) -> bool:
        return all(network.available.get((warehouse_id, v), 0) >= q for v, q in units.items())

    def zone(s: SitePlace) -> int:
        return zone_of(network.zones, s.site, province, city, s.distance_km, settings.zone_bands_km)

    sites = _by_distance(network.sites, province)
    quotes: list[ShippingQuote] = []
    details: list[QuoteDetail] = []

    def offer(
        service: CarrierService,
        carrier: Carrier,
        code: str,
        label: str,
        amount: int,
        detail: QuoteDetail,
    ) -> None:
        if detail.latest > horizon or len(code) > QUOTE_CODE_MAX:
            return
        quotes.append(
            ShippingQuote(
                code=code,
                carrier=carrier.name,
                label=label,
                amount=amount,
                promised_days=(detail.latest - today).days,
                promised_from=detail.earliest,
                promised_by=detail.latest,
            )
        )
        details.append(detail)

    for service, carrier in network.services:
        assert service.id is not None and carrier.id is not None
        collected = [s for s in sites if not s.site.carrier_ids or carrier.id in s.site.carrier_ids]
        if service.level is ServiceLevel.PICKUP:
            for point in network.points:
                if not holds(point.warehouse_id, need):
                    continue
                ready = pickup.ready_at(
                    calendar.local_time(now, settings.timezone)
                    + timedelta(hours=point.ready_hours),
                    point.hours,
                )
                rate = network.rates.get((service.id, 1))
                if ready is None:
                    continue
                offer(
                    service,
                    carrier,
                    f"{service.code}{AT}{point.code}",
                    f"{service.label} · {point.name}",
                    price(rate, weight, cart.subtotal) if rate else 0,
                    QuoteDetail(
                        code=f"{service.code}{AT}{point.code}",
                        service_id=service.id,
                        carrier_id=carrier.id,
                        level=service.level,
                        warehouse_id=point.warehouse_id,
                        pickup_point_id=point.id,
                        from_region=point.province,
                        to_region=to_region,
                        earliest=ready.date(),
                        latest=ready.date(),
                        deliver_by=ready,
                    ),
                )
            continue
        if service.level is ServiceLevel.SAME_DAY:
            local = calendar.local_time(now, settings.timezone)
            forward = next(
                (
                    s
                    for s in collected
                    if s.kind is WarehouseKind.FORWARD
                    and s.site.same_day_radius_km is not None
                    and s.distance_km is not None
                    and s.distance_km <= s.site.same_day_radius_km
                    and holds(s.site.warehouse_id, need)
                ),
                None,
            )
            if (
                forward is None
                or service.within_hours is None
                or not calendar.carrier_works(local.date(), carrier)
                or local.hour * 60 + local.minute
                >= min(forward.site.cutoff_minutes, service.cutoff_minutes)
            ):
                continue
            rate = network.rates.get((service.id, zone(forward)))
            if rate is None:
                continue
            deliver_by = local + timedelta(hours=service.within_hours)
            offer(
                service,
                carrier,
                service.code,
                service.label,
                price(rate, weight, cart.subtotal),
                QuoteDetail(
                    code=service.code,
                    service_id=service.id,
                    carrier_id=carrier.id,
                    level=service.level,
                    warehouse_id=forward.site.warehouse_id,
                    pickup_point_id=None,
                    from_region=forward.site.province,
                    to_region=to_region,
                    earliest=local.date(),
                    latest=deliver_by.date(),
                    deliver_by=deliver_by,
                ),
            )
            continue
        plan = _plan(collected, need, holds)
        if plan is None:
            continue
        windows: list[tuple[calendar.Window, SitePlace]] = []
        for s in plan:
            transit = transit_of(network.transits.get(service.id, ()), s.site.province, to_region)
            if transit is None:
                break
            windows.append(
                (
                    calendar.promise(
                        now,
                        cutoff_minutes=min(s.site.cutoff_minutes, service.cutoff_minutes),
                        handling_days=s.site.handling_days + service.handling_days,
                        min_days=transit.min_days,
                        max_days=transit.max_days,
                        carrier=carrier,
                        tz=settings.timezone,
                    ),
                    s,
                )
            )
        if len(windows) < len(plan):
            continue
        # A split cart is charged once, at its farthest warehouse's zone, and promised for
        # its slowest parcel.
        rate = network.rates.get((service.id, max(zone(s) for s in plan)))
        if rate is None:
            continue
        slowest = max(windows, key=lambda w: (w[0].latest, w[0].earliest))
        offer(
            service,
            carrier,
            service.code,
            service.label,
            price(rate, weight, cart.subtotal),
            QuoteDetail(
                code=service.code,
                service_id=service.id,
                carrier_id=carrier.id,
                level=service.level,
                warehouse_id=plan[0].site.warehouse_id,
                pickup_point_id=None,
                from_region=slowest[1].site.province,
                to_region=to_region,
                earliest=max(w.earliest for w, _ in windows),
                latest=slowest[0].latest,
            ),
        )
    remember(session, cart.cart_id, details)
    return quotes


def parse_code(code: str) -> tuple[str, str | None]:
    """A quote code's service code and pickup point code (None but for PICKUP)."""
    service, _, point = code.partition(AT)
    return service, point or None


async def freeze_promise(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], config: Any
) -> Sequence[CheckoutProblem]:
    """Write the promise of the order's chosen quote when it is one of this plugin's: what
    on-time is measured against."""
    from plugins.logistics import PLUGIN_INFO

    code = order.shipping_method
    if (
        code is None
        or order.shipping_source != PLUGIN_INFO.name
        or order.promised_from is None
        or order.promised_by is None
    ):
        return []
    detail = remembered(session, order.cart_id, code)
    if detail is None:
        # The quote was made in another transaction: its service and point from the code.
        service_code, point_code = parse_code(code)
        service = await session.scalar(
            select(CarrierService).where(col(CarrierService.code) == service_code)
        )
        if service is None or service.id is None:
            return []
        point = (
            await session.scalar(select(PickupPoint).where(col(PickupPoint.code) == point_code))
            if point_code
            else None
        )
        address = order.shipping_address or {}
        detail = QuoteDetail(
            code=code,
            service_id=service.id,
            carrier_id=service.carrier_id,
            level=service.level,
            warehouse_id=point.warehouse_id if point else None,
            pickup_point_id=point.id if point else None,
            from_region=point.province if point else "",
            to_region=str(address.get("province") or ""),
            earliest=order.promised_from,
            latest=order.promised_by,
        )
    session.add(
        Promise(
            order_id=order.id,  # type: ignore[arg-type]  # the order is flushed: it has its id
            quote_code=code,
            service_id=detail.service_id,
            carrier_id=detail.carrier_id,
            level=detail.level,
            warehouse_id=detail.warehouse_id,
            pickup_point_id=detail.pickup_point_id,
            from_region=detail.from_region,
            to_region=detail.to_region,
            # The order's dates are the quote's, as the shopper saw them.
            earliest=order.promised_from,
            latest=order.promised_by,
            deliver_by=detail.deliver_by,
        )
    )
    await session.flush()
    return []


@dataclass(frozen=True)
class PromiseView:
    """A frozen promise as customers read it: with its carrier, service and pickup point."""

    promise: Promise
    carrier_name: str
    service_label: str
    pickup_point: PickupPoint | None


async def promises_of(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, PromiseView]:
    """The promises of these orders, in one statement."""
    rows = (
        await session.execute(
            select(Promise, col(Carrier.name), col(CarrierService.label), PickupPoint)
            .join(Carrier, col(Carrier.id) == col(Promise.carrier_id))
            .join(CarrierService, col(CarrierService.id) == col(Promise.service_id))
            .outerjoin(PickupPoint, col(PickupPoint.id) == col(Promise.pickup_point_id))
            .where(col(Promise.order_id).in_(sorted(set(order_ids))))
        )
    ).all()
    return {p.order_id: PromiseView(p, name, label, point) for p, name, label, point in rows}
