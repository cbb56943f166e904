"""The demo shop's logistics: carriers, services, rates, transit times, sites, pickup points,
replenishment policies, and the history of the demo's shipments as this plugin tracks them.

- **The network**: five carriers — 顺丰速运 (third party), 京东物流 (alliance), 中通快递 (third
  party), the shop's own fleet (自营, which also runs store and locker pickup) and 达达秒送
  (alliance, same-day from the forward warehouses) — with STANDARD, EXPRESS, SAME_DAY and
  PICKUP services; a zone for each warehouse province and destination province (from the
  distance between their cities) and transit days and rates per zone.
- **Sites** for every demo warehouse (its city's coordinates; forward warehouses deliver
  within hours inside 8 km) and three pickup points (two stores, one locker) stocked by
  forward warehouses.
- **Replenishment policies** for the best-selling products at the regional warehouses.
- **History**: the demo's shipments by carriers of the network are tracked (their lane,
  on-time against the promise, transit hours) with their timeline as carrier events; their
  orders carry the promise the demo's shipment was made with (``promised_at``'s shop day);
  the parcels still out past their promise are delays; every product out of stock at a
  warehouse has a stock-out alert. Written in bulk: a few statements per table.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    Carrier,
    CarrierEvent,
    CarrierKind,
    CarrierService,
    Delay,
    DelayKind,
    EventSource,
    PickupKind,
    PickupPoint,
    Promise,
    Rate,
    ReplenishmentPolicy,
    ServiceLevel,
    Site,
    StockoutAlert,
    TrackedShipment,
    TransitTime,
    Zone,
)
from plugins.logistics.service import geo
from plugins.logistics.service.replenishment import open_key
from server.models import (
    Order,
    OrderLine,
    Shipment,
    ShipmentStatus,
    StockLevel,
    TrackingEvent,
    Warehouse,
    WarehouseKind,
)
from server.plugin import DemoShop
from server.services.forecasts import day_start, shop_day

# (code, name, kind, works weekends, tracking prefix, the demo's carrier name)
CARRIERS: tuple[tuple[str, str, CarrierKind, bool, str], ...] = (
    ("SF", "顺丰速运", CarrierKind.THIRD_PARTY, True, "SF"),
    ("JD", "京东物流", CarrierKind.ALLIANCE, True, "JDVA"),
    ("ZTO", "中通快递", CarrierKind.THIRD_PARTY, False, "ZTO"),
    ("OWN", "自营配送", CarrierKind.OWN_FLEET, True, "OWN"),
    ("DADA", "达达秒送", CarrierKind.ALLIANCE, True, "DD"),
)
# (code, carrier, label, level, cut-off minutes, handling days, within hours, days added to
# the zone's standard transit, price factor in percent)
SERVICES: tuple[tuple[str, str, str, ServiceLevel, int, int, int | None, int, int], ...] = (
    ("SF-STD", "SF", "顺丰标快", ServiceLevel.STANDARD, 17 * 60, 0, None, 0, 100),
    ("SF-EXP", "SF", "顺丰特快", ServiceLevel.EXPRESS, 18 * 60, 0, None, -1, 160),
    ("JD-STD", "JD", "京东标准达", ServiceLevel.STANDARD, 18 * 60, 0, None, 0, 90),
    ("JD-EXP", "JD", "京东特快", ServiceLevel.EXPRESS, 16 * 60, 0, None, -1, 150),
    ("ZTO-STD", "ZTO", "中通标快", ServiceLevel.STANDARD, 16 * 60, 1, None, 1, 60),
    ("OWN-PICKUP", "OWN", "门店/自提柜自提", ServiceLevel.PICKUP, 20 * 60, 0, None, 0, 0),
    ("DADA-SAMEDAY", "DADA", "达达小时达", ServiceLevel.SAME_DAY, 21 * 60, 0, 3, 0, 120),
)
# Transit days (min, max) of a STANDARD service per zone; the cheapest first 1 kg and each
# further kg (fen) per zone.
ZONE_DAYS = {1: (1, 1), 2: (1, 2), 3: (2, 3), 4: (3, 4), 5: (4, 5), 6: (5, 7)}
ZONE_PRICE = {
    1: (800, 200),
    2: (1000, 300),
    3: (1200, 500),
    4: (1500, 700),
    5: (1800, 1000),
    6: (2200, 1400),
}
FREE_OVER = 9900  # ¥99: the standard services ship free above it
SAME_DAY_RADIUS_KM = 8.0
# (code, name, kind, forward warehouse code, address, hours)
_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PICKUP_POINTS: tuple[tuple[str, str, PickupKind, str, str, dict[str, Any]], ...] = (
    (
        "PU-SH-NJXL",
        "上海南京西路门店",
        PickupKind.STORE,
        "FDC-SH-PD",
        "静安区南京西路1266号",
        {d: [["10:00", "22:00"]] for d in _WEEK},
    ),
    (
        "PU-GZ-TH",
        "广州天河体育中心店",
        PickupKind.STORE,
        "FDC-GZ-TH",
        "天河区天河路208号",
        {**{d: [["10:00", "14:00"], ["15:00", "21:00"]] for d in _WEEK[:5]}},
    ),
    (
        "PU-BJ-CY",
        "北京朝阳大悦城自提柜",
        PickupKind.LOCKER,
        "FDC-BJ-CY",
        "朝阳区朝阳北路101号",
        {d: [["00:00", "24:00"]] for d in _WEEK},
    ),
)
POLICY_PRODUCTS = 12


def zone_of(distance_km: float, same_city: bool, same_province: bool, bands: Sequence[int]) -> int:
    """1 in the same city, 2 in the same province, 3 for another province nearer than the
    first band, then one more per band passed (zone 6 beyond the last of 500/1000/2000 km)."""
    if same_city:
        return 1
    if same_province:
        return 2
    return 3 + sum(1 for band in bands if distance_km > band)


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    progress("carriers, services, zones, rates and transit times")
    warehouses = list(
        await session.scalars(select(Warehouse).where(col(Warehouse.id).in_(shop.warehouse_ids)))
    )
    carriers = await _carriers(session, rng)
    services = await _services(session, carriers)
    zones, transit, rates = await _tables(session, warehouses, services, config)
    progress("sites, pickup points and replenishment policies")
    sites = await _sites(session, warehouses, carriers)
    pickups = await _pickups(session, warehouses)
    policies = await _policies(session, shop, warehouses, rng)
    progress("tracked shipments, carrier events and delays")
    tracked, events, delays = await _history(session, shop, carriers, services)
    alerts = await _stockouts(session, shop)
    return {
        "carriers": len(carriers),
        "carrier services": len(services),
        "zones": zones,
        "transit times": transit,
        "rates": rates,
        "sites": sites,
        "pickup points": pickups,
        "replenishment policies": policies,
        "tracked shipments": tracked,
        "carrier events": events,
        "delays": delays,
        "stock-out alerts": alerts,
    }


async def _carriers(session: AsyncSession, rng: random.Random) -> dict[str, Carrier]:
    out: dict[str, Carrier] = {}
    for code, name, kind, weekends, prefix in CARRIERS:
        row = Carrier(
            code=code,
            name=name,
            kind=kind,
            works_weekends=weekends,
            # ZTO rests over the Spring Festival beyond the public holidays.
            non_working_days=["2027-02-05", "2027-02-13"] if code == "ZTO" else [],
            webhook_secret=f"demo-{code.lower()}-{rng.getrandbits(64):016x}",
            tracking_prefix=prefix,
        )
        session.add(row)
        out[code] = row
    await session.flush()
    return out


async def _services(
    session: AsyncSession, carriers: dict[str, Carrier]
) -> dict[str, CarrierService]:
    out: dict[str, CarrierService] = {}
    for code, carrier, label, level, cutoff, handling, within, _, _ in SERVICES:
        row = CarrierService(
            carrier_id=carriers[carrier].id or 0,
            code=code,
            label=label,
            level=level,
            cutoff_minutes=cutoff,
            handling_days=handling,
            within_hours=within,
        )
        session.add(row)
        out[code] = row
    await session.flush()
    return out


def _destinations() -> list[geo.Place]:
    """One place per province of the shipped city table (its first city, the capital)."""
    seen: dict[str, geo.Place] = {}
    with geo.CITIES.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            place = geo.locate(row["province"], row["city"])
            if place is not None:
                seen.setdefault(place.province, place)
    return list(seen.values())


async def _tables(
    session: AsyncSession,
    warehouses: Sequence[Warehouse],
    services: dict[str, CarrierService],
    config: Any,
) -> tuple[int, int, int]:
    origins: dict[str, geo.Place] = {}
    for w in warehouses:
        place = geo.locate(w.province, w.city)
        if place is not None:
            origins.setdefault(place.province, place)
    destinations = _destinations()
    zone_rows: list[dict[str, Any]] = []
    transit_rows: list[dict[str, Any]] = []
    for origin in origins.values():
        for dest in destinations:
            km = geo.distance_km(origin.latitude, origin.longitude, dest.latitude, dest.longitude)
            zone = zone_of(
                km,
                geo.same_region(origin.city, dest.city),
                geo.same_region(origin.province, dest.province),
                config.zone_bands_km,
            )
            zone_rows.append(
                {"from_region": origin.province, "to_region": dest.province, "zone": zone}
            )
            low, high = ZONE_DAYS[zone]
            for code, _, _, level, _, _, _, extra, _ in SERVICES:
                if level not in (ServiceLevel.STANDARD, ServiceLevel.EXPRESS):
                    continue
                transit_rows.append(
                    {
                        "service_id": services[code].id,
                        "from_region": origin.province,
                        "to_region": dest.province,
                        "min_days": max(1, low + extra),
                        "max_days": max(1, high + extra),
                    }
                )
        # Beyond the listed destinations: the farthest zone's days.
        for code, _, _, level, _, _, _, extra, _ in SERVICES:
            if level in (ServiceLevel.STANDARD, ServiceLevel.EXPRESS):
                low, high = ZONE_DAYS[max(ZONE_DAYS)]
                transit_rows.append(
                    {
                        "service_id": services[code].id,
                        "from_region": origin.province,
                        "to_region": "*",
                        "min_days": max(1, low + extra),
                        "max_days": max(1, high + extra),
                    }
                )
    rate_rows: list[dict[str, Any]] = []
    for code, _, _, level, _, _, _, _, factor in SERVICES:
        for zone, (first, extra_kg) in ZONE_PRICE.items():
            rate_rows.append(
                {
                    "service_id": services[code].id,
                    "zone": zone,
                    "first_grams": 1000,
                    "first_amount": first * factor // 100,
                    "extra_grams": 1000,
                    "extra_amount": extra_kg * factor // 100,
                    "free_over": FREE_OVER if level is ServiceLevel.STANDARD else None,
                }
            )
    for table, rows in ((Zone, zone_rows), (TransitTime, transit_rows), (Rate, rate_rows)):
        if rows:
            await session.execute(insert(table), rows)
    return len(zone_rows), len(transit_rows), len(rate_rows)


async def _sites(
    session: AsyncSession, warehouses: Sequence[Warehouse], carriers: dict[str, Carrier]
) -> int:
    n = 0
    for w in warehouses:
        place = geo.locate(w.province, w.city)
        if place is None:
            continue
        forward = w.kind is WarehouseKind.FORWARD
        collected = ("OWN", "DADA", "SF", "JD") if forward else ("SF", "JD", "ZTO", "OWN")
        session.add(
            Site(
                warehouse_id=w.id or 0,
                city=place.city,
                province=place.province,
                latitude=place.latitude,
                longitude=place.longitude,
                cutoff_minutes=(21 if forward else 16) * 60,
                handling_days=0,
                same_day_radius_km=SAME_DAY_RADIUS_KM if forward else None,
                carrier_ids=[carriers[c].id or 0 for c in collected],
            )
        )
        n += 1
    await session.flush()
    return n


async def _pickups(session: AsyncSession, warehouses: Sequence[Warehouse]) -> int:
    by_code = {w.code: w for w in warehouses}
    n = 0
    for code, name, kind, stock, address, hours in PICKUP_POINTS:
        w = by_code.get(stock)
        place = geo.locate(w.province, w.city) if w is not None else None
        if w is None or place is None:
            continue
        session.add(
            PickupPoint(
                code=code,
                name=name,
                kind=kind,
                warehouse_id=w.id or 0,
                city=place.city,
                province=place.province,
                address=address,
                latitude=place.latitude,
                longitude=place.longitude,
                hours=hours,
                ready_hours=1 if kind is PickupKind.LOCKER else 2,
            )
        )
        n += 1
    await session.flush()
    return n


async def _policies(
    session: AsyncSession, shop: DemoShop, warehouses: Sequence[Warehouse], rng: random.Random
) -> int:
    """The best sellers at each regional warehouse: a supplier lead time of 5–14 days."""
    units = func.sum(col(OrderLine.quantity))
    best = list(
        await session.scalars(
            select(col(OrderLine.product_id))
            .group_by(col(OrderLine.product_id))
            .order_by(units.desc(), col(OrderLine.product_id))
            .limit(POLICY_PRODUCTS)
        )
    )
    rows = [
        {
            "product_id": pid,
            "warehouse_id": w.id,
            "lead_time_days": float(rng.choice((5, 7, 10, 14))),
            "lead_time_sd_days": rng.choice((0.5, 1.0, 2.0)),
            "service_level": rng.choice((0.9, 0.95, 0.98)),
            "review_days": rng.choice((7, 14)),
            "min_order_quantity": rng.choice((10, 20, 50)),
            "updated_at": shop.as_of,
        }
        for pid in best
        for w in warehouses
        if w.kind is WarehouseKind.REGIONAL
    ]
    if rows:
        await session.execute(insert(ReplenishmentPolicy), rows)
    return len(rows)


async def _history(
    session: AsyncSession,
    shop: DemoShop,
    carriers: dict[str, Carrier],
    services: dict[str, CarrierService],
) -> tuple[int, int, int]:
    """The demo's shipments by the network's carriers, as if the plugin had tracked them."""
    by_name = {c.name: c for c in carriers.values()}
    service_of = {
        "SF": (services["SF-STD"], services["SF-EXP"]),
        "JD": (services["JD-STD"], services["JD-EXP"]),
        "ZTO": (services["ZTO-STD"], services["ZTO-STD"]),
    }
    found = (
        await session.execute(
            select(
                col(Shipment.id),
                col(Shipment.order_id),
                col(Shipment.carrier),
                col(Shipment.status),
                col(Shipment.promised_at),
                col(Shipment.shipped_at),
                col(Shipment.delivered_at),
                col(Shipment.updated_at),
                col(Warehouse.province),
                col(Warehouse.city),
                col(Warehouse.kind),
                col(Order.shipping_address),
                col(Order.placed_at),
            )
            .join(Order, col(Order.id) == col(Shipment.order_id))
            .join(Warehouse, col(Warehouse.id) == col(Shipment.warehouse_id))
            # The demo fills an empty shop: every shipment is the demo's.
            .where(
                col(Shipment.carrier).in_(list(by_name)),
                col(Shipment.promised_at).is_not(None),
            )
            .order_by(col(Shipment.id))
        )
    ).all()
    today = shop_day(shop.as_of)
    tracked: list[dict[str, Any]] = []
    promises: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    delays: list[dict[str, Any]] = []
    seen_orders: set[int] = set()
    for (
        sid,
        oid,
        name,
        status,
        promised_at,
        shipped_at,
        delivered_at,
        updated_at,
        w_province,
        w_city,
        w_kind,
        address,
        placed_at,
    ) in found:
        carrier = by_name[name]
        forward = w_kind is WarehouseKind.FORWARD or str(w_kind) == "FORWARD"
        standard, express = service_of[carrier.code]
        service = express if forward else standard
        origin = geo.locate(str(w_province), str(w_city))
        dest = geo.locate(str(address.get("province", "")), str(address.get("city", "")))
        from_region = origin.province if origin else str(w_province)
        to_region = dest.province if dest else str(address.get("province", ""))
        assert promised_at is not None  # selected so
        promised_by = shop_day(promised_at)
        arrived = delivered_at if str(status) == ShipmentStatus.DELIVERED else None
        delivered = arrived is not None
        arrival_day = shop_day(arrived) if arrived is not None else None
        on_time = arrival_day <= promised_by if arrival_day is not None else None
        hours = (
            (arrived - shipped_at).total_seconds() / 3600
            if arrived is not None and shipped_at is not None
            else None
        )
        tracked.append(
            {
                "shipment_id": sid,
                "order_id": oid,
                "carrier_id": carrier.id,
                "service_id": service.id,
                "from_region": from_region,
                "to_region": to_region,
                "last_event_at": updated_at,
                "eta": arrival_day or promised_by,
                "on_time": on_time,
                "transit_hours": hours,
                "updated_at": updated_at,
            }
        )
        if oid not in seen_orders:
            seen_orders.add(oid)
            promised_from = min(promised_by, shop_day(placed_at) + timedelta(days=1))
            orders.append(
                {
                    "id": oid,
                    "shipping_method": service.code,
                    "shipping_carrier": carrier.name,
                    "shipping_source": "logistics",
                    "promised_from": promised_from,
                    "promised_by": promised_by,
                }
            )
            promises.append(
                {
                    "order_id": oid,
                    "quote_code": f"logistics:{service.code}",
                    "service_id": service.id,
                    "carrier_id": carrier.id,
                    "level": service.level,
                    "from_region": from_region,
                    "to_region": to_region,
                    "earliest": promised_from,
                    "latest": promised_by,
                    "created_at": placed_at,
                }
            )
        if not delivered and promised_by < today:
            delays.append(
                {
                    "shipment_id": sid,
                    "order_id": oid,
                    "kind": DelayKind.LATE,
                    "promised_by": promised_by,
                    "late_probability": 1.0,
                    "detected_at": _after(promised_by),
                    "became_late_at": _after(promised_by),
                }
            )
        elif str(status) == ShipmentStatus.EXCEPTION:
            # Held up on the road (the demo's weather delay): at risk of missing its promise.
            delays.append(
                {
                    "shipment_id": sid,
                    "order_id": oid,
                    "kind": DelayKind.AT_RISK,
                    "promised_by": promised_by,
                    "late_probability": 0.7,
                    "detected_at": updated_at,
                    "became_late_at": None,
                }
            )
    if orders:
        await session.execute(update(Order), orders)
    for table, rows in ((TrackedShipment, tracked), (Promise, promises), (Delay, delays)):
        if rows:
            await session.execute(insert(table), rows)
    events = await _events(session)
    return len(tracked), events, len(delays)


def _after(day: date) -> datetime:
    """The first moment after a shop day (UTC): when a promise for it is missed."""
    return day_start(day + timedelta(days=1))


async def _events(session: AsyncSession) -> int:
    """The tracked shipments' timelines as their carriers sent them (webhook events)."""
    timeline = (
        await session.execute(
            select(
                col(TrackingEvent.id),
                col(TrackedShipment.carrier_id),
                col(TrackingEvent.shipment_id),
                col(TrackingEvent.status),
                col(TrackingEvent.occurred_at),
                col(TrackingEvent.location),
                col(TrackingEvent.description),
            ).join(
                TrackedShipment, col(TrackedShipment.shipment_id) == col(TrackingEvent.shipment_id)
            )
        )
    ).all()
    rows = [
        {
            "carrier_id": carrier_id,
            "event_id": f"demo-{eid}",
            "shipment_id": sid,
            "raw_status": str(status),
            "status": str(status),
            "occurred_at": at,
            "location": (location or "")[:200],
            "description": (text or "")[:500],
            "source": EventSource.WEBHOOK,
            "applied": True,
            "received_at": at,
        }
        for eid, carrier_id, sid, status, at, location, text in timeline
    ]
    if rows:
        await session.execute(insert(CarrierEvent), rows)
    return len(rows)


async def _stockouts(session: AsyncSession, shop: DemoShop) -> int:
    """An open alert for each product with nothing available at a warehouse that stocks it."""
    available = func.sum(col(StockLevel.on_hand) - col(StockLevel.reserved))
    out = (
        await session.execute(
            select(col(StockLevel.product_id), col(StockLevel.warehouse_id))
            .group_by(col(StockLevel.product_id), col(StockLevel.warehouse_id))
            .having(available <= 0)
        )
    ).all()
    rows = [
        {
            "product_id": pid,
            "warehouse_id": wid,
            "open_key": open_key(pid, wid),
            "available": 0,
            "reorder_point": 0.0,
            "days_of_cover": 0.0,
            "raised_at": shop.as_of - timedelta(hours=6),
        }
        for pid, wid in out
    ]
    if rows:
        await session.execute(insert(StockoutAlert), rows)
    return len(rows)
