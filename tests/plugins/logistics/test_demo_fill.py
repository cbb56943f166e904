"""``shopgraph demo-data`` with the logistics plugin, as ``make demo`` runs it: the carrier
network, sites and pickup points, replenishment policies, and the demo's shipments tracked
against the promise their orders now carry — what the KPIs and the delays list show."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import (
    Carrier,
    CarrierEvent,
    CarrierService,
    Delay,
    PickupPoint,
    Promise,
    Rate,
    ReplenishmentPolicy,
    ServiceLevel,
    Site,
    StockoutAlert,
    TrackedShipment,
    TransitTime,
)
from plugins.logistics.service import demo, report
from plugins.logistics.service.demo import zone_of
from plugins.logistics.service.settings import LogisticsSettings
from server.cli import main as cli
from server.db import create_engine, session_factory
from server.models import (
    Order,
    OrderStatus,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
    Warehouse,
    WarehouseKind,
    utcnow,
)
from server.plugin import DemoShop, KpiBucket
from server.services.forecasts import shop_day
from tests.support.orders import make_product


def test_zones_grow_with_distance() -> None:
    bands = [500, 1000, 2000]
    assert zone_of(5, True, True, bands) == 1
    assert zone_of(150, False, True, bands) == 2
    assert zone_of(170, False, False, bands) == 3  # 上海 → 杭州
    assert zone_of(1070, False, False, bands) == 5  # 上海 → 北京: two bands passed
    assert zone_of(3300, False, False, bands) == 6


async def test_make_demo_fills_the_network_and_its_history(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "demo.db"
    shutil.copyfile(sqlite_template, path)
    database_url = f"sqlite+aiosqlite:///{path}"
    # The other plugins' demo data is theirs to test: left out, the command runs faster.
    others = "recommendation,pricing,promotions,loyalty"
    env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_DISABLED_PLUGINS": others}
    args = ["demo-data", "--customers", "20", "--products", "10", "--orders", "30"]
    result = CliRunner().invoke(cli, [*args, "--seed", "7", "--as-of", "2026-03-01"], env=env)
    assert result.exit_code == 0, result.output
    steps = [line.split(" (")[0] for line in result.stderr.splitlines() if "logistics:" in line]
    assert steps[:3] == [
        "demo-data: logistics: carriers, services, zones, rates and transit times",
        "demo-data: logistics: sites, pickup points and replenishment policies",
        "demo-data: logistics: tracked shipments, carrier events and delays",
    ]
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await _check(session)
    finally:
        await engine.dispose()


async def _count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _check(session: AsyncSession) -> None:
    carriers = {c.code: c for c in await session.scalars(select(Carrier))}
    assert sorted(carriers) == ["DADA", "JD", "OWN", "SF", "ZTO"]
    services = {s.id: s for s in await session.scalars(select(CarrierService))}
    assert {s.level for s in services.values()} == set(ServiceLevel)
    same_day = (
        await session.scalars(
            select(CarrierService).where(CarrierService.level == ServiceLevel.SAME_DAY)  # type: ignore[arg-type]
        )
    ).one()
    assert same_day.within_hours == 3 and same_day.carrier_id == carriers["DADA"].id
    # Every warehouse has its site; forward ones deliver within hours around them.
    warehouses = list(await session.scalars(select(Warehouse)))
    sites = {s.warehouse_id: s for s in await session.scalars(select(Site))}
    assert set(sites) == {w.id for w in warehouses}
    for w in warehouses:
        forward = w.kind is WarehouseKind.FORWARD
        assert (sites[w.id].same_day_radius_km is not None) is forward
    kinds = sorted(p.kind for p in await session.scalars(select(PickupPoint)))
    assert kinds == ["LOCKER", "STORE", "STORE"]
    # Standard services ship free from ¥99; every standard and express service has a default
    # transit time from every warehouse province.
    rates = list(await session.scalars(select(Rate)))
    assert len(rates) == 6 * len(services)  # zones 1–6
    for r in rates:
        standard = services[r.service_id].level is ServiceLevel.STANDARD
        assert r.free_over == (9900 if standard else None)
    defaults = (
        await session.scalars(select(TransitTime).where(TransitTime.to_region == "*"))  # type: ignore[arg-type]
    ).all()
    provinces = {s.province for s in sites.values()}
    assert {d.from_region for d in defaults} == provinces
    assert await _count(session, ReplenishmentPolicy) > 0

    # The tracked shipments: on time is delivery by the promise their order carries.
    tracked = list(await session.scalars(select(TrackedShipment)))
    assert tracked and await _count(session, CarrierEvent) >= 3 * len(tracked)
    shipments = {s.id: s for s in await session.scalars(select(Shipment))}
    orders = {o.id: o for o in await session.scalars(select(Order))}
    delivered = 0
    for t in tracked:
        shipment, order = shipments[t.shipment_id], orders[t.order_id]
        assert order.promised_by is not None and order.shipping_carrier
        if shipment.delivered_at is not None and t.on_time is not None:
            delivered += 1
            assert t.on_time is (shop_day(shipment.delivered_at) <= order.promised_by)
            assert t.transit_hours is not None and t.transit_hours > 0
    assert delivered > 0
    assert await _count(session, Promise) == len({t.order_id for t in tracked})

    # The on-time KPI over the whole history agrees with the tracked shipments.
    first = min(shop_day(s.delivered_at) for s in shipments.values() if s.delivered_at)
    bucket = KpiBucket(first, date(2026, 3, 1) + timedelta(days=1))
    rate = (await report.on_time_rate(session, [bucket]))[0]
    on_time = sum(1 for t in tracked if t.on_time)
    assert rate == on_time / delivered


async def test_the_fill_on_a_small_shop(session: AsyncSession) -> None:
    """Both backends: one regional and one forward warehouse, a product out of stock at one,
    an order shipped by SF a day after its promise and one by EMS (not in the network)."""

    sh = Warehouse(code="D-SH", name="上海仓", province="上海", city="上海市")
    fdc = Warehouse(
        code="D-FDC", name="浦东前置仓", province="上海", city="上海市", kind=WarehouseKind.FORWARD
    )
    session.add_all([sh, fdc])
    await session.flush()
    product = await make_product(session, stock=[(sh, 5), (fdc, 0)])
    address = {"province": "浙江", "city": "杭州市"}
    placed = datetime(2026, 2, 26, 4, tzinfo=UTC)
    late = Order(
        number="D-1", status=OrderStatus.DELIVERED, placed_at=placed, shipping_address=address
    )
    other = Order(
        number="D-2", status=OrderStatus.DELIVERED, placed_at=placed, shipping_address=address
    )
    session.add_all([late, other])
    await session.flush()
    sf = Shipment(
        order_id=late.id or 0,
        warehouse_id=sh.id or 0,
        carrier="顺丰速运",
        tracking_number="SF1",
        status=ShipmentStatus.DELIVERED,
        promised_at=datetime(2026, 2, 28, 4, tzinfo=UTC),
        shipped_at=datetime(2026, 2, 27, 4, tzinfo=UTC),
        delivered_at=datetime(2026, 3, 1, 4, tzinfo=UTC),
    )
    ems = Shipment(
        order_id=other.id or 0,
        warehouse_id=sh.id or 0,
        carrier="EMS",
        tracking_number="E1",
        status=ShipmentStatus.DELIVERED,
        promised_at=datetime(2026, 2, 28, 4, tzinfo=UTC),
        shipped_at=datetime(2026, 2, 27, 4, tzinfo=UTC),
        delivered_at=datetime(2026, 2, 28, 4, tzinfo=UTC),
    )
    session.add_all([sf, ems])
    await session.flush()
    for at, status in (
        (sf.shipped_at, ShipmentStatus.CREATED),
        (sf.delivered_at, ShipmentStatus.DELIVERED),
    ):
        session.add(TrackingEvent(shipment_id=sf.id or 0, status=status, occurred_at=at))
    await session.commit()
    shop = DemoShop(
        seed=1,
        as_of=utcnow(),
        product_ids=(product.id or 0,),
        warehouse_ids=(sh.id or 0, fdc.id or 0),
        order_ids=(late.id or 0, other.id or 0),
    )
    said: list[str] = []
    counts = await demo.fill(session, shop, random.Random(1), LogisticsSettings(), said.append)
    await session.commit()
    assert len(said) == 3
    assert {k: counts[k] for k in ("carriers", "sites", "tracked shipments", "carrier events")} == {
        "carriers": 5,
        "sites": 2,
        "tracked shipments": 1,
        "carrier events": 2,
    }
    # The product has nothing at the forward warehouse: one open stock-out alert there.
    alerts = (await session.scalars(select(StockoutAlert))).all()
    assert [(a.warehouse_id, a.open_key) for a in alerts] == [
        (fdc.id, f"p:{product.id}/w:{fdc.id}")
    ]
    (tracked,) = (await session.scalars(select(TrackedShipment))).all()
    # Promised the shop's 28th, delivered the 1st: late, 48 hours on the road, 上海 → 浙江.
    assert (tracked.shipment_id, tracked.on_time, tracked.transit_hours) == (sf.id, False, 48.0)
    assert (tracked.from_region, tracked.to_region) == ("上海市", "浙江省")
    late_id, other_id = late.id, other.id
    session.expire_all()
    order = await session.get(Order, late_id)
    assert order is not None and order.promised_by == date(2026, 2, 28)
    assert order.shipping_carrier == "顺丰速运" and order.shipping_method == "SF-STD"
    assert (await session.get(Order, other_id)).promised_by is None  # type: ignore[union-attr]
    assert (await session.scalars(select(Delay))).all() == []
