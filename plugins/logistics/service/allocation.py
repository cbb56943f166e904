"""Warehouse choice when an order is paid (``plan_shipments``) and the dispatch job that
creates its shipments with tracking numbers.

The rule (docs/plugins/logistics.md, "Warehouse choice"): a same-day or pickup promise ships
from the warehouse it was made for; otherwise the nearest warehouse that holds every line;
otherwise the split with the fewest parcels, then the shortest total distance, then the lowest
warehouse ids. Candidates are the active warehouses the plugin has a site for.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from sqlalchemy import select
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
    Zone,
)
from plugins.logistics.service import geo, quotes
from plugins.logistics.service.settings import LogisticsSettings, ShipPolicy
from server.db import mark_write
from server.models import Order, OrderLine, OrderStatus, Shipment, StockLevel, Warehouse
from server.plugin import (
    DomainError,
    Job,
    JobContext,
    OrderOnHold,
    Parcel,
    ParcelLine,
    create_shipment,
    publish_live,
)

log = logging.getLogger(__name__)

JOB = "logistics.dispatch"
ACTOR = f"job:{JOB}"
# The split search tries every set of up to this many warehouses (the nearest that hold some
# line): at most 2^12 = 4096 sets, each checked in time linear in the order's lines.
MAX_SEARCH = 12
# Orders looked at per dispatch run (oldest first); the rest wait for the next run.
DISPATCH_BATCH = 200
SHIPPABLE = (OrderStatus.PAID, OrderStatus.FULFILLING)
# Levels a parcel without a promise is sent by: same-day and pickup are promised, not chosen.
PLAIN_LEVELS = (ServiceLevel.STANDARD, ServiceLevel.EXPRESS)


@dataclass(frozen=True)
class Candidate:
    warehouse_id: int
    site: Site
    distance_km: float


# --- the plan ------------------------------------------------------------------------------


async def _candidates(session: AsyncSession, destination: geo.Place | None) -> dict[int, Candidate]:
    rows = await session.execute(
        select(Site)
        .join(Warehouse, col(Warehouse.id) == Site.warehouse_id)
        .where(col(Warehouse.is_active))
    )
    found: dict[int, Candidate] = {}
    for (site,) in rows:
        # Without a known destination every warehouse is as near: the ids decide.
        distance = (
            0.0
            if destination is None
            else geo.distance_km(
                site.latitude, site.longitude, destination.latitude, destination.longitude
            )
        )
        found[site.warehouse_id] = Candidate(site.warehouse_id, site, distance)
    return found


async def _available(
    session: AsyncSession, warehouse_ids: Iterable[int], lines: Sequence[OrderLine]
) -> dict[tuple[int, int], int]:
    """Units of each (warehouse, variant) this order may take: what is free plus what the
    order itself holds there already."""
    variant_ids = {line.variant_id for line in lines}
    rows = await session.execute(
        select(
            col(StockLevel.warehouse_id),
            col(StockLevel.variant_id),
            col(StockLevel.on_hand) - col(StockLevel.reserved),
        ).where(
            col(StockLevel.warehouse_id).in_(list(warehouse_ids)),
            col(StockLevel.variant_id).in_(variant_ids),
        )
    )
    available: dict[tuple[int, int], int] = defaultdict(int)
    for warehouse_id, variant_id, free in rows:
        available[(warehouse_id, variant_id)] += int(free)
    for line in lines:
        if line.warehouse_id is not None:
            available[(line.warehouse_id, line.variant_id)] += line.quantity
    return available


def _assign(
    ordered: Sequence[int], lines: Sequence[OrderLine], available: Mapping[tuple[int, int], int]
) -> dict[int, int] | None:
    """Each line's warehouse among ``ordered`` (nearest first), the first that can still take
    all its units; None when a line fits nowhere. Exact when the lines' variants differ (a
    line then only needs one warehouse with enough); lines sharing a variant are placed in
    order, nearest first."""
    left = dict(available)
    placed: dict[int, int] = {}
    for line in lines:
        for warehouse_id in ordered:
            key = (warehouse_id, line.variant_id)
            if left.get(key, 0) >= line.quantity:
                left[key] -= line.quantity
                placed[line.id] = warehouse_id  # type: ignore[index]  # a stored row has its id
                break
        else:
            return None
    return placed


def choose(
    candidates: Mapping[int, Candidate],
    lines: Sequence[OrderLine],
    available: Mapping[tuple[int, int], int],
) -> tuple[dict[int, int], str] | None:
    """The warehouse of each line (line id → warehouse id) and why, by the nearest warehouse
    with everything, else the fewest parcels, then the shortest total distance, then the
    lowest ids; None when the candidates cannot ship every line."""
    by_nearness = sorted(candidates.values(), key=lambda c: (c.distance_km, c.warehouse_id))
    for candidate in by_nearness:
        placed = _assign([candidate.warehouse_id], lines, available)
        if placed is not None:
            return placed, f"nearest with everything: {round(candidate.distance_km)} km"
    # Only warehouses that can take some line whole can be part of a split.
    useful = [
        c
        for c in by_nearness
        if any(available.get((c.warehouse_id, ln.variant_id), 0) >= ln.quantity for ln in lines)
    ][:MAX_SEARCH]
    for size in range(2, len(useful) + 1):
        best: tuple[float, tuple[int, ...], dict[int, int]] | None = None
        for group in combinations(useful, size):
            placed = _assign([c.warehouse_id for c in group], lines, available)
            if placed is None:
                continue
            used = sorted(set(placed.values()))
            if len(used) < size:
                continue  # a smaller set would have been found at its own size
            total = sum(candidates[w].distance_km for w in used)
            key = (round(total, 6), tuple(used))
            if best is None or key < best[:2]:
                best = (key[0], key[1], placed)
        if best is not None:
            return best[2], f"split: {size} parcels, {round(best[0])} km"
    return None


async def _promised_warehouse(
    session: AsyncSession, promise: Promise | None
) -> tuple[int, str] | None:
    """The warehouse a same-day or pickup promise was made from, and why, if any."""
    if promise is None:
        return None
    if promise.level is ServiceLevel.SAME_DAY and promise.warehouse_id is not None:
        return promise.warehouse_id, "same-day from the forward warehouse"
    if promise.level is ServiceLevel.PICKUP:
        if promise.pickup_point_id is not None:
            point = await session.get(PickupPoint, promise.pickup_point_id)
            if point is not None:
                return point.warehouse_id, f"pickup at {point.code}"
        if promise.warehouse_id is not None:
            return promise.warehouse_id, "pickup"
    return None


async def cheapest_carriers(
    session: AsyncSession,
    sites: Mapping[int, Candidate],
    destination: geo.Place | None,
    config: LogisticsSettings,
) -> dict[int, Carrier]:
    """For each warehouse, the carrier of the cheapest standard or express service that
    collects there (its first-weight price for the destination's zone; ties: the lower
    carrier id); a warehouse no priced service reaches gets the first active carrier that
    collects there, or none."""
    carriers: dict[int, Carrier] = {
        c.id: c
        for c in await session.scalars(select(Carrier).where(col(Carrier.is_active)))
        if c.id is not None
    }
    services = list(
        await session.scalars(
            select(CarrierService).where(
                col(CarrierService.is_active), col(CarrierService.level).in_(PLAIN_LEVELS)
            )
        )
    )
    rates: dict[tuple[int, int], int] = {}
    if services:
        for rate in await session.scalars(
            select(Rate).where(col(Rate.service_id).in_([s.id for s in services]))
        ):
            rates[(rate.service_id, rate.zone)] = rate.first_amount
    zones = list(await session.scalars(select(Zone)))
    chosen: dict[int, Carrier] = {}
    for warehouse_id, candidate in sites.items():
        allowed = set(candidate.site.carrier_ids or carriers)
        zone = quotes.zone_of(
            zones,
            candidate.site,
            destination.province if destination else "",
            destination.city if destination else "",
            candidate.distance_km if destination else None,
            config.zone_bands_km,
        )
        priced = sorted(
            (rates[(s.id, zone)], s.carrier_id)  # type: ignore[index]  # stored rows have ids
            for s in services
            if s.carrier_id in allowed and s.carrier_id in carriers and (s.id, zone) in rates
        )
        if priced:
            chosen[warehouse_id] = carriers[priced[0][1]]
        else:
            fallback = sorted(cid for cid in allowed if cid in carriers)
            if fallback:
                chosen[warehouse_id] = carriers[fallback[0]]
    return chosen


async def plan_shipments(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], plugins: Any, config: Any
) -> Sequence[Parcel] | None:
    """The parcels of a paid order (``plan_shipments``), or None for the core's plan: when no
    set of the plugin's warehouses can ship every reserved line."""
    settings: LogisticsSettings = config
    reserved = [line for line in lines if line.warehouse_id is not None]
    if not reserved or order.id is None:
        return None
    destination = geo.locate_address(order.shipping_address)
    candidates = await _candidates(session, destination)
    if not candidates:
        return None
    available = await _available(session, candidates, reserved)

    placed: dict[int, int] | None = None
    note = ""
    promise = await session.scalar(select(Promise).where(col(Promise.order_id) == order.id))
    promised = await _promised_warehouse(session, promise)
    if promised is not None and promised[0] in candidates:
        placed = _assign([promised[0]], reserved, available)
        note = promised[1]
    if placed is None:
        found = choose(candidates, reserved, available)
        if found is None:
            return None
        placed, note = found

    promised_carrier = (
        await session.get(Carrier, promise.carrier_id) if promise is not None else None
    )
    used = {w: candidates[w] for w in set(placed.values())}
    cheapest = (
        {}
        if promised_carrier is not None
        else await cheapest_carriers(session, used, destination, settings)
    )
    parcels: list[Parcel] = []
    for warehouse_id in sorted(used, key=lambda w: (used[w].distance_km, w)):
        carrier = promised_carrier or cheapest.get(warehouse_id)
        parcels.append(
            Parcel(
                warehouse_id=warehouse_id,
                lines=tuple(
                    ParcelLine(order_line_id=line.id, quantity=line.quantity)  # type: ignore[arg-type]  # a stored row has its id
                    for line in reserved
                    if placed[line.id] == warehouse_id  # type: ignore[index]  # as above
                ),
                carrier=carrier.code if carrier is not None else None,
                note=note,
            )
        )
    return parcels


# --- dispatch ------------------------------------------------------------------------------


def tracking_number(prefix: str, order_id: int, parcel_number: int) -> str:
    """The tracking number of an order's ``parcel_number``-th parcel (from 1): the same on
    every run, so a rerun finds the shipment it made instead of making another."""
    return f"{prefix}{order_id:010d}{parcel_number:02d}"


@dataclass(frozen=True)
class Dispatched:
    order_id: int
    tracking_numbers: tuple[str, ...]


async def _ready(
    session: AsyncSession, order_id: int, plan: Sequence[Mapping[str, Any]]
) -> list[bool]:
    """Whether each planned parcel can leave now: its warehouse is active and holds, on hand,
    the units of each of its lines (reserved there for this order)."""
    lines = {
        line.id: line
        for line in await session.scalars(
            select(OrderLine).where(col(OrderLine.order_id) == order_id)
        )
    }
    warehouse_ids = {int(p["warehouse_id"]) for p in plan}
    active = set(
        await session.scalars(
            select(col(Warehouse.id)).where(
                col(Warehouse.id).in_(warehouse_ids), col(Warehouse.is_active)
            )
        )
    )
    on_hand = {
        (w, v): int(n)
        for w, v, n in await session.execute(
            select(
                col(StockLevel.warehouse_id), col(StockLevel.variant_id), col(StockLevel.on_hand)
            ).where(
                col(StockLevel.warehouse_id).in_(warehouse_ids),
                col(StockLevel.variant_id).in_({ln.variant_id for ln in lines.values()}),
            )
        )
    }
    ready: list[bool] = []
    for parcel in plan:
        warehouse_id = int(parcel["warehouse_id"])
        ok = warehouse_id in active
        for item in parcel["lines"]:
            line = lines.get(int(item["order_line_id"]))
            ok = ok and (
                line is not None
                and line.warehouse_id == warehouse_id
                and on_hand.get((warehouse_id, line.variant_id), 0) >= int(item["quantity"])
            )
        ready.append(ok)
    return ready


def _missing(
    order_id: int,
    plan: Sequence[Mapping[str, Any]],
    existing: set[str],
    by_code: Mapping[str, Carrier],
) -> list[tuple[int, str, Mapping[str, Any]]]:
    """The planned parcels (number from 1, tracking number, parcel) without a shipment."""
    found = []
    for number, parcel in enumerate(plan, start=1):
        carrier = by_code.get(parcel.get("carrier") or "")
        prefix = carrier.tracking_prefix if carrier is not None else ""
        text = tracking_number(prefix, order_id, number)
        if text not in existing:
            found.append((number, text, parcel))
    return found


async def _carriers(
    session: AsyncSession, plans: Iterable[Sequence[Mapping[str, Any]]]
) -> dict[str, Carrier]:
    codes = {str(p["carrier"]) for plan in plans for p in plan if p.get("carrier")}
    if not codes:
        return {}
    return {
        c.code: c
        for c in await session.scalars(select(Carrier).where(col(Carrier.code).in_(codes)))
    }


async def dispatch_order(
    session: AsyncSession, plugins: Any, config: LogisticsSettings, order_id: int
) -> Dispatched | None:
    """Create the shipments of ``order_id``'s planned parcels that have none yet, in the
    caller's transaction; the order row is locked first, so two runs take turns and the
    second finds the first's shipments by their tracking numbers. COMPLETE ships only when
    every parcel left can leave; AVAILABLE ships each parcel that can. Raises OrderOnHold
    (nothing written) when a plugin holds the order."""
    order = await session.scalar(
        select(Order)
        .where(col(Order.id) == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None or order.status not in SHIPPABLE or not order.shipment_plan:
        return None
    plan = order.shipment_plan
    existing = set(
        await session.scalars(
            select(col(Shipment.tracking_number)).where(col(Shipment.order_id) == order_id)
        )
    )
    by_code = await _carriers(session, [plan])
    missing = _missing(order_id, plan, existing, by_code)
    if not missing:
        return None
    ready = await _ready(session, order_id, [p for _, _, p in missing])
    if config.ship_policy is ShipPolicy.COMPLETE and not all(ready):
        return None
    made: list[str] = []
    for (_number, text, parcel), can_leave in zip(missing, ready, strict=True):
        if not can_leave:
            continue
        carrier_code = str(parcel.get("carrier") or "") or "shop"
        await create_shipment(
            session,
            plugins,
            order_id,
            int(parcel["warehouse_id"]),
            carrier_code,
            text,
            [ParcelLine(int(i["order_line_id"]), int(i["quantity"])) for i in parcel["lines"]],
            actor=ACTOR,
        )
        made.append(text)
    if not made:
        return None
    await publish_live(session, f"order:{order_id}", {"shipments": made})
    return Dispatched(order_id, tuple(made))


async def _due(session: AsyncSession, after: int) -> tuple[list[int], int | None]:
    """Of the next batch of shippable orders (ids above ``after``), those with a planned
    parcel that has no shipment yet; and the last id read (None: no more)."""
    rows = list(
        await session.execute(
            select(col(Order.id), col(Order.shipment_plan))
            .where(col(Order.status).in_(SHIPPABLE), col(Order.id) > after)
            .order_by(col(Order.id))
            .limit(DISPATCH_BATCH)
        )
    )
    if not rows:
        return [], None
    ids = [order_id for order_id, _plan in rows]
    shipped: dict[int, set[str]] = defaultdict(set)
    for order_id, number in await session.execute(
        select(col(Shipment.order_id), col(Shipment.tracking_number)).where(
            col(Shipment.order_id).in_(ids)
        )
    ):
        shipped[order_id].add(number)
    by_code = await _carriers(session, [plan or [] for _id, plan in rows])
    due = [
        order_id
        for order_id, plan in rows
        if plan and _missing(order_id, plan, shipped[order_id], by_code)
    ]
    return due, ids[-1]


async def dispatch_due(sessions: Any, plugins: Any, config: LogisticsSettings) -> list[Dispatched]:
    """Every paid or fulfilling order's parcels without a shipment, one transaction per order;
    an order on hold (or whose shipment fails) rolls back alone and is tried next run."""
    done: list[Dispatched] = []
    after: int | None = 0
    while after is not None:
        async with sessions() as session:
            due, after = await _due(session, after)
            await session.commit()
        for order_id in due:
            async with sessions() as session:
                try:
                    await mark_write(session)
                    dispatched = await dispatch_order(session, plugins, config, order_id)
                    await session.commit()
                except OrderOnHold:
                    await session.rollback()
                    continue
                except DomainError:
                    # Shipped by hand meanwhile, a warehouse gone: it waits, the others go on.
                    await session.rollback()
                    log.warning("order %s could not be dispatched", order_id, exc_info=True)
                    continue
            if dispatched is not None:
                done.append(dispatched)
    return done


def jobs(config: Any) -> Sequence[Job]:
    settings: LogisticsSettings = config

    async def run(ctx: JobContext) -> None:
        done = await dispatch_due(ctx.sessions, ctx.plugins, ctx.config)
        parcels = sum(len(d.tracking_numbers) for d in done)
        ctx.progress(f"{parcels} parcels of {len(done)} orders dispatched")

    return [
        Job(
            name=JOB,
            interval_seconds=settings.dispatch_job_interval_minutes * 60,
            run=run,
            description="Creates the shipments of paid orders' planned parcels, with tracking "
            "numbers (ship complete: when every parcel can leave; available: each that can).",
        )
    ]
