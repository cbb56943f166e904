"""The logistics KPIs and the delivery report per carrier and lane, on a handful of shipments,
alerts and purchases whose figures are worked out by hand below (both backends)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import StockoutAlert, TrackedShipment
from plugins.logistics.service import report
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    ProductVariant,
    Shipment,
    ShipmentStatus,
    Warehouse,
)
from server.plugin import KpiBucket
from server.plugins import PluginRuntime
from server.services.kpi_registry import registered_kpis
from tests.support.orders import make_product

B1 = KpiBucket(date(2026, 3, 10), date(2026, 3, 12))
B2 = KpiBucket(date(2026, 3, 12), date(2026, 3, 14))


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


async def _seed(session: AsyncSession) -> None:
    # The core writes 上海; the plugin tracks lanes as its city table names regions (上海市).
    sh = Warehouse(code="KPI-SH", name="上海仓", province="上海", city="上海市")
    bj = Warehouse(code="KPI-BJ", name="北京仓", province="北京市", city="北京市")
    session.add_all([sh, bj])
    await session.flush()
    n = 0

    def order(promised: date | None, placed: datetime, status: OrderStatus) -> Order:
        nonlocal n
        n += 1
        row = Order(number=f"KPI{n:04d}", status=status, placed_at=placed, promised_by=promised)
        session.add(row)
        return row

    def shipment(
        o: Order,
        w: Warehouse,
        carrier: str,
        shipped: datetime,
        delivered: datetime | None,
        status: ShipmentStatus = ShipmentStatus.DELIVERED,
    ) -> Shipment:
        row = Shipment(
            order_id=o.id or 0,
            warehouse_id=w.id or 0,
            carrier=carrier,
            tracking_number=f"T{o.id}",
            status=status,
            shipped_at=shipped,
            delivered_at=delivered,
        )
        session.add(row)
        return row

    paid = OrderStatus.PAID
    o = [order(None, utc(8, 4), paid) for _ in range(6)]
    o[0].promised_by = date(2026, 3, 10)
    o[1].promised_by = date(2026, 3, 10)
    o[3].promised_by = date(2026, 3, 13)
    o[5].promised_by = date(2026, 3, 20)
    await session.flush()
    # 15:00 UTC on the 10th is 23:00 of the shop's 10th: on time; 16:30 is the 11th: late.
    s1 = shipment(o[0], sh, "顺丰速运", utc(9, 3), utc(10, 15))  # 36 h
    shipment(o[1], sh, "顺丰速运", utc(10, 4, 30), utc(10, 16, 30))  # 12 h
    shipment(o[2], bj, "中通快递", utc(10, 4), utc(11, 4))  # 24 h, no promise
    shipment(o[3], bj, "中通快递", utc(11, 22), utc(12, 4))  # 6 h, on time
    shipment(o[4], sh, "顺丰速运", utc(11, 4), None, ShipmentStatus.IN_TRANSIT)
    shipment(o[5], sh, "顺丰速运", utc(12, 4), utc(14, 4))  # the shop's 14th: after B2
    await session.flush()
    session.add(
        TrackedShipment(
            shipment_id=s1.id or 0,
            order_id=o[0].id or 0,
            carrier_id=await _carrier(session),
            from_region="上海市",
            to_region="浙江省",
        )
    )

    pid = (await make_product(session, stock=[(sh, 1)])).id or 0
    # Alerts: cleared before B1 ends (16:00 UTC on the 11th); open across both; raised in B2.
    session.add_all(
        [
            StockoutAlert(
                product_id=pid, warehouse_id=sh.id or 0, raised_at=utc(9, 4), cleared_at=utc(11, 10)
            ),
            StockoutAlert(
                product_id=pid, warehouse_id=sh.id or 0, open_key="a", raised_at=utc(11, 4)
            ),
            StockoutAlert(
                product_id=pid, warehouse_id=bj.id or 0, open_key="b", raised_at=utc(13, 12)
            ),
        ]
    )


async def _carrier(session: AsyncSession) -> int:
    from plugins.logistics.models import Carrier

    carrier = Carrier(code="SF", name="顺丰速运")
    session.add(carrier)
    await session.flush()
    return carrier.id or 0


async def _purchases(session: AsyncSession) -> None:
    """Costed stock: product A, 100 on hand at ¥6 (60000); product B, 50 on hand, no cost
    (left out). COGS: 3 A in B1 (1800), 5 A in B2 (3000); a cancelled order and B's sales
    are not counted."""
    a = await make_product(session, stock=100)
    b = await make_product(session, stock=50)
    va = (
        await session.scalars(select(ProductVariant).where(ProductVariant.product_id == a.id))
    ).one()  # type: ignore[arg-type]
    vb = (
        await session.scalars(select(ProductVariant).where(ProductVariant.product_id == b.id))
    ).one()  # type: ignore[arg-type]
    va.cost_amount = 600
    for n, (placed, product, variant, units, status) in enumerate(
        (
            (utc(10, 4), a, va, 3, OrderStatus.PAID),
            (utc(12, 4), a, va, 5, OrderStatus.DELIVERED),
            (utc(12, 5), a, va, 7, OrderStatus.CANCELLED),
            (utc(12, 6), b, vb, 2, OrderStatus.PAID),
        )
    ):
        row = Order(number=f"COGS{n}", status=status, placed_at=placed)
        session.add(row)
        await session.flush()
        session.add(
            OrderLine(
                order_id=row.id or 0,
                product_id=product.id or 0,
                variant_id=variant.id or 0,
                sku=product.sku,
                product_name=product.name,
                quantity=units,
                base_unit_price_amount=1000,
                unit_price_amount=1000,
                line_total_amount=1000 * units,
            )
        )
    await session.commit()


async def test_delivery_kpis(session: AsyncSession) -> None:
    await _seed(session)
    await session.commit()
    # B1: S1 on time, S2 late (S3 has no promise) = 1/2; transit (36 + 12 + 24) / 3 = 24 h.
    # B2: S4 on time = 1; transit 6 h.
    assert await report.on_time_rate(session, [B1, B2]) == [0.5, 1.0]
    assert await report.transit_hours(session, [B1, B2]) == pytest.approx([24.0, 6.0])
    assert await report.on_time_rate(session, [KpiBucket(date(2026, 3, 1), date(2026, 3, 2))]) == [
        None
    ]
    # Open at B1's end: the second alert; at B2's end: the second and third.
    assert await report.stockouts(session, [B1, B2]) == [1.0, 2.0]

    lanes = await report.delivery_report(session, date(2026, 3, 10), date(2026, 3, 13))
    assert [
        (
            lane.carrier,
            lane.from_region,
            lane.to_region,
            lane.delivered,
            lane.with_promise,
            lane.on_time,
        )
        for lane in lanes
    ] == [
        ("中通快递", "北京市", "", 2, 1, 1),
        ("顺丰速运", "上海", "", 1, 1, 0),
        ("顺丰速运", "上海市", "浙江省", 1, 1, 1),
    ]
    assert [lane.average_transit_hours for lane in lanes] == pytest.approx([15.0, 12.0, 36.0])
    assert [lane.on_time_rate for lane in lanes] == [1.0, 0.0, 1.0]


async def test_inventory_turnover(session: AsyncSession) -> None:
    await _purchases(session)
    assert await report.inventory_value(session) == 60000
    # 1800 / 60000 = 0.03; 3000 / 60000 = 0.05.
    assert await report.inventory_turnover(session, [B1, B2]) == pytest.approx([0.03, 0.05])


def test_the_kpis_are_registered(plugins: PluginRuntime) -> None:
    keys = set(registered_kpis(plugins))
    assert {
        "logistics.on_time_rate",
        "logistics.transit_hours",
        "logistics.stockouts",
        "logistics.inventory_turnover",
    } <= keys
