"""Warehouse choice when an order is paid over HTTP (the plan moves the reservations), and the
dispatch job (shipments with tracking numbers, once, from two runs at once; ship complete vs
ship what is available), on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plugins.logistics.models import (
    Carrier,
    CarrierService,
    PickupPoint,
    Promise,
    Rate,
    ServiceLevel,
    Site,
)
from plugins.logistics.service import geo
from plugins.logistics.service.allocation import dispatch_due, plan_shipments
from plugins.logistics.service.settings import LogisticsSettings, ShipPolicy
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Shipment,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import make_product, pay, place_ok

# The buyer's address (tests.support.orders.ADDRESS) is in 杭州.


@pytest.fixture
async def factories(database_url: str) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Session factories of two engines on PostgreSQL (two processes' connection pools), one
    on SQLite (one file, one writer at a time)."""
    count = 2 if database_url.startswith("postgresql") else 1
    engines = [create_engine(database_url) for _ in range(count)]
    yield [session_factory(e) for e in engines]
    for engine in engines:
        await engine.dispose()


async def _warehouse(
    session: AsyncSession,
    code: str,
    province: str,
    city: str,
    *,
    site: bool = True,
    kind: WarehouseKind = WarehouseKind.REGIONAL,
    carrier_ids: list[int] | None = None,
) -> Warehouse:
    warehouse = Warehouse(code=code, name=f"{city}仓", province=province, city=city, kind=kind)
    session.add(warehouse)
    await session.flush()
    if site:
        place = geo.locate(province, city)
        assert place is not None
        session.add(
            Site(
                warehouse_id=warehouse.id,  # type: ignore[arg-type]  # flushed: it has its id
                city=place.city,
                province=place.province,
                latitude=place.latitude,
                longitude=place.longitude,
                same_day_radius_km=20 if kind is WarehouseKind.FORWARD else None,
                carrier_ids=carrier_ids or [],
            )
        )
    await session.commit()
    return warehouse


async def _carrier(session: AsyncSession, code: str, prefix: str, first_amount: int) -> Carrier:
    carrier = Carrier(code=code, name=code, tracking_prefix=prefix)
    session.add(carrier)
    await session.flush()
    service = CarrierService(carrier_id=carrier.id, code=f"{code}-STD", label="标快")  # type: ignore[arg-type]  # flushed
    session.add(service)
    await session.flush()
    # Zone 1: the same city (no zone rows).
    session.add(Rate(service_id=service.id, zone=1, first_amount=first_amount))  # type: ignore[arg-type]  # flushed
    await session.commit()
    return carrier


async def _paid(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    lines: list[tuple[Product, int]],
    promise: dict[str, Any] | None = None,
) -> int:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    order = await place_ok(buyer, lines)
    await session.commit()
    order_id = int(await session.scalar(select(Order.id).order_by(Order.id.desc())) or 0)  # type: ignore[union-attr]
    if promise is not None:
        await session.commit()
        await mark_write(session)
        today = date(2026, 3, 2)
        session.add(
            Promise(order_id=order_id, quote_code="q", earliest=today, latest=today, **promise)
        )
    await session.commit()  # no read transaction left open to block the server's writes
    assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
    return order_id


async def _reserved(session: AsyncSession, product: Product) -> dict[int, int]:
    await session.commit()
    rows = await session.execute(
        select(StockLevel.warehouse_id, StockLevel.reserved).where(
            StockLevel.product_id == product.id
        )
    )
    found = {w: r for w, r in rows}
    await session.commit()  # no read snapshot kept: the next write would find it stale
    return found


async def _plan(session: AsyncSession, order_id: int) -> list[dict[str, Any]]:
    await session.commit()
    order = await session.get(Order, order_id, populate_existing=True)
    assert order is not None
    await session.commit()
    return order.shipment_plan


async def _shipments(session: AsyncSession, order_id: int) -> list[tuple[int, str, str]]:
    await session.commit()
    rows = await session.execute(
        select(Shipment.warehouse_id, Shipment.carrier, Shipment.tracking_number)
        .where(Shipment.order_id == order_id)
        .order_by(Shipment.id)
    )
    found = [tuple(r) for r in rows]
    await session.commit()
    return found  # type: ignore[return-value]


async def test_nearest_with_everything_then_dispatched_once(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    plugins: PluginRuntime,
    factories: list[async_sessionmaker[AsyncSession]],
) -> None:
    sf = await _carrier(session, "SF", "SF", 1200)
    await _carrier(session, "ZTO", "ZT", 600)  # cheaper, but 杭州 is collected by SF only
    beijing = await _warehouse(session, "BJ", "北京市", "北京市")
    hangzhou = await _warehouse(session, "HZ", "浙江省", "杭州市", carrier_ids=[sf.id or 0])
    unsited = await _warehouse(session, "HZ-X", "浙江省", "杭州市", site=False)
    # Checkout reserves where most is free: P1 in 北京, P2 in the warehouse without a site.
    p1 = await make_product(session, stock=[(beijing, 10), (hangzhou, 2)])
    p2 = await make_product(session, stock=[(beijing, 5), (hangzhou, 1), (unsited, 50)])
    order_id = await _paid(gql, session, settings, [(p1, 2), (p2, 1)])

    # 杭州 holds everything and is the buyer's city: both lines moved there.
    assert await _reserved(session, p1) == {beijing.id: 0, hangzhou.id: 2}
    assert await _reserved(session, p2) == {beijing.id: 0, hangzhou.id: 1, unsited.id: 0}
    line_ids = list(await session.scalars(select(OrderLine.id).order_by(OrderLine.id)))
    assert await _plan(session, order_id) == [
        {
            "source": "logistics",
            "warehouse_id": hangzhou.id,
            "carrier": "SF",
            "note": "nearest with everything: 0 km",
            "lines": [
                {"order_line_id": line_ids[0], "quantity": 2},
                {"order_line_id": line_ids[1], "quantity": 1},
            ],
        }
    ]

    # Two runs at once (two engines on PostgreSQL): one shipment, its number fixed.
    config = LogisticsSettings()
    await asyncio.gather(
        *(dispatch_due(factories[i % len(factories)], plugins, config) for i in range(2))
    )
    number = f"SF{order_id:010d}01"
    assert await _shipments(session, order_id) == [(hangzhou.id, "SF", number)]
    assert await session.scalar(select(Order.status)) is OrderStatus.FULFILLING
    assert await dispatch_due(factories[0], plugins, config) == []
    assert len(await _shipments(session, order_id)) == 1

    # Planning reads as many statements for one line as for two (no query per line).
    order = await session.get(Order, order_id)
    lines = list(await session.scalars(select(OrderLine).order_by(OrderLine.id)))
    assert order is not None
    counts = []
    for some in (lines[:1], lines):
        seen: list[str] = []

        def count(*args: Any, seen: list[str] = seen) -> None:
            seen.append(str(args[2]))

        engine = session.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert await plan_shipments(session, order, some, plugins, config)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        counts.append(len(seen))
    await session.commit()
    assert counts[0] == counts[1]


async def test_a_split_ships_complete_or_what_is_available(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    plugins: PluginRuntime,
    factories: list[async_sessionmaker[AsyncSession]],
) -> None:
    await _carrier(session, "YTO", "YT", 500)
    hangzhou = await _warehouse(session, "HZ", "浙江省", "杭州市")
    shanghai = await _warehouse(session, "SH", "上海市", "上海市")
    guangzhou = await _warehouse(session, "GZ", "广东省", "广州市")
    p1 = await make_product(session, stock=[(hangzhou, 3)])
    p2 = await make_product(session, stock=[(shanghai, 3), (guangzhou, 9)])
    order_id = await _paid(gql, session, settings, [(p1, 1), (p2, 2)])

    # Nobody holds both: two parcels, 杭州 (0 km) and 上海 (163 km) rather than 广州.
    assert await _reserved(session, p2) == {shanghai.id: 2, guangzhou.id: 0}
    plan = await _plan(session, order_id)
    assert [(p["warehouse_id"], p["carrier"], p["note"]) for p in plan] == [
        (hangzhou.id, "YTO", "split: 2 parcels, 163 km"),
        (shanghai.id, "YTO", "split: 2 parcels, 163 km"),
    ]

    # 上海 closes for a while: ship complete waits, ship what is available sends 杭州's.
    await session.commit()
    await mark_write(session)
    await session.execute(
        update(Warehouse).where(Warehouse.id == shanghai.id).values(is_active=False)
    )
    await session.commit()
    complete = LogisticsSettings(ship_policy=ShipPolicy.COMPLETE)
    available = LogisticsSettings(ship_policy=ShipPolicy.AVAILABLE)
    assert await dispatch_due(factories[0], plugins, complete) == []
    assert await _shipments(session, order_id) == []
    await dispatch_due(factories[0], plugins, available)
    assert await _shipments(session, order_id) == [(hangzhou.id, "YTO", f"YT{order_id:010d}01")]

    await mark_write(session)
    await session.execute(
        update(Warehouse).where(Warehouse.id == shanghai.id).values(is_active=True)
    )
    await session.commit()
    await dispatch_due(factories[0], plugins, complete)
    assert await _shipments(session, order_id) == [
        (hangzhou.id, "YTO", f"YT{order_id:010d}01"),
        (shanghai.id, "YTO", f"YT{order_id:010d}02"),
    ]


async def test_the_forward_warehouse_wins_for_a_same_day_promise(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    flash = await _carrier(session, "FLASH", "FL", 900)
    await _carrier(session, "YTO", "YT", 500)
    regional = await _warehouse(session, "HZ", "浙江省", "杭州市")
    forward = await _warehouse(session, "HZ-F", "浙江省", "杭州市", kind=WarehouseKind.FORWARD)
    product = await make_product(session, stock=[(regional, 5), (forward, 4)])
    service_id = await session.scalar(
        select(CarrierService.id).where(CarrierService.carrier_id == flash.id)
    )

    # Without a promise the two are as near: the lower id, the regional one, ships.
    plain = await _paid(gql, session, settings, [(product, 1)])
    assert [(p["warehouse_id"], p["carrier"]) for p in await _plan(session, plain)] == [
        (regional.id, "YTO")
    ]
    same_day = await _paid(
        gql,
        session,
        settings,
        [(product, 1)],
        promise={
            "service_id": service_id,
            "carrier_id": flash.id,
            "level": ServiceLevel.SAME_DAY,
            "warehouse_id": forward.id,
        },
    )
    assert [
        (p["warehouse_id"], p["carrier"], p["note"]) for p in await _plan(session, same_day)
    ] == [(forward.id, "FLASH", "same-day from the forward warehouse")]
    assert await _reserved(session, product) == {regional.id: 1, forward.id: 1}

    # A pickup promise: the store's own stock, however far the store is.
    store = await _warehouse(session, "SH-STORE", "上海市", "上海市")
    variant_id = await session.scalar(
        select(StockLevel.variant_id).where(StockLevel.product_id == product.id)
    )
    await session.commit()  # a write after a read in one SQLite transaction may find it stale
    await mark_write(session)
    session.add(
        StockLevel(
            warehouse_id=store.id,  # type: ignore[arg-type]  # a stored row has its id
            product_id=product.id,  # type: ignore[arg-type]  # as above
            variant_id=variant_id,
            on_hand=2,
        )
    )
    point = PickupPoint(
        code="SH-STORE-1",
        name="南京路门店",
        warehouse_id=store.id,  # type: ignore[arg-type]  # a stored row has its id
        city="上海市",
        province="上海市",
        latitude=31.2304,
        longitude=121.4737,
    )
    session.add(point)
    await session.commit()
    pickup = await _paid(
        gql,
        session,
        settings,
        [(product, 1)],
        promise={
            "service_id": service_id,
            "carrier_id": flash.id,
            "level": ServiceLevel.PICKUP,
            "pickup_point_id": point.id,
        },
    )
    assert [(p["warehouse_id"], p["note"]) for p in await _plan(session, pickup)] == [
        (store.id, "pickup at SH-STORE-1")
    ]
