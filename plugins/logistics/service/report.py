"""The logistics KPIs for the dashboard: on-time rate against the frozen promise, transit
times, stock-outs, inventory turnover; and the delivery report per carrier and lane.

Every KPI reads the core's shipments and orders (and this plugin's stock-out alerts), so it
holds for every shipment however it was created. Days are the shop's (UTC+8, as
:class:`server.plugin.KpiBucket` says).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import StockoutAlert, TrackedShipment
from server.models import (
    Order,
    OrderLine,
    Product,
    ProductVariant,
    Shipment,
    ShipmentStatus,
    StockLevel,
    Warehouse,
)
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.services.forecasts import day_start, shop_day_sql
from server.services.insight_runs import dialect_of
from server.services.rfm import PURCHASE_STATUSES


def _as_date(value: Any) -> date:
    """A shop day as SQL answers it: a date on PostgreSQL, ``YYYY-MM-DD`` on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _span(buckets: Sequence[KpiBucket]) -> tuple[datetime, datetime]:
    return day_start(min(b.start for b in buckets)), day_start(max(b.end for b in buckets))


def _sum_per_bucket(
    buckets: Sequence[KpiBucket], days: dict[date, tuple[float, float]]
) -> list[float | None]:
    """Per bucket: Σ numerators / Σ denominators of its days (None: nothing to divide)."""
    out: list[float | None] = []
    for b in buckets:
        top = sum(n for day, (n, _) in days.items() if b.start <= day < b.end)
        bottom = sum(d for day, (_, d) in days.items() if b.start <= day < b.end)
        out.append(top / bottom if bottom else None)
    return out


def transit_hours_sql(session: AsyncSession) -> ColumnElement[Any]:
    """Hours between a shipment leaving and its delivery, in SQL."""
    if dialect_of(session) == "postgresql":
        return func.extract("epoch", col(Shipment.delivered_at) - col(Shipment.shipped_at)) / 3600.0
    return (
        func.julianday(col(Shipment.delivered_at)) - func.julianday(col(Shipment.shipped_at))
    ) * 24.0


def _delivered(buckets: Sequence[KpiBucket]) -> list[ColumnElement[bool]]:
    start, end = _span(buckets)
    return [
        col(Shipment.status) == ShipmentStatus.DELIVERED,
        col(Shipment.delivered_at) >= start,
        col(Shipment.delivered_at) < end,
    ]


async def on_time_rate(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: of the shipments delivered in it whose order carries a promise, the share
    delivered on or before the promised day (the shop's day of the delivery)."""
    if not buckets:
        return []
    day = shop_day_sql(col(Shipment.delivered_at), dialect_of(session)).label("day")
    rows = await session.execute(
        select(day, col(Order.promised_by), func.count())
        .join(Order, col(Order.id) == col(Shipment.order_id))
        .where(*_delivered(buckets), col(Order.promised_by).is_not(None))
        .group_by(day, col(Order.promised_by))
    )
    days: dict[date, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for value, promised, n in rows:
        delivered = _as_date(value)
        on_time, total = days[delivered]
        days[delivered] = (on_time + (n if delivered <= _as_date(promised) else 0), total + n)
    return _sum_per_bucket(buckets, days)


async def transit_hours(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: the mean hours from leaving the warehouse to delivery of the shipments
    delivered in it."""
    if not buckets:
        return []
    day = shop_day_sql(col(Shipment.delivered_at), dialect_of(session)).label("day")
    rows = await session.execute(
        select(day, func.sum(transit_hours_sql(session)), func.count())
        .where(*_delivered(buckets), col(Shipment.shipped_at).is_not(None))
        .group_by(day)
    )
    return _sum_per_bucket(buckets, {_as_date(d): (float(h or 0), float(n)) for d, h, n in rows})


async def stockouts(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: the stock-out alerts open at its end (raised before it, not cleared)."""
    if not buckets:
        return []
    start, end = _span(buckets)
    rows = (
        await session.execute(
            select(col(StockoutAlert.raised_at), col(StockoutAlert.cleared_at)).where(
                col(StockoutAlert.raised_at) < end,
                (col(StockoutAlert.cleared_at).is_(None))
                | (col(StockoutAlert.cleared_at) >= start),
            )
        )
    ).all()
    out: list[float | None] = []
    for b in buckets:
        moment = day_start(b.end)
        out.append(
            float(
                sum(
                    1
                    for raised, cleared in rows
                    if _aware(raised) < moment and (cleared is None or _aware(cleared) >= moment)
                )
            )
        )
    return out


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unit_cost() -> ColumnElement[Any]:
    return func.coalesce(col(ProductVariant.cost_amount), col(Product.cost_amount))


async def inventory_value(session: AsyncSession) -> int:
    """Today's stock on hand at cost (minor units): units without a known cost left out."""
    value = await session.scalar(
        select(func.coalesce(func.sum(col(StockLevel.on_hand) * _unit_cost()), 0))
        .select_from(StockLevel)
        .join(ProductVariant, col(ProductVariant.id) == col(StockLevel.variant_id))
        .join(Product, col(Product.id) == col(StockLevel.product_id))
        .where(_unit_cost().is_not(None))
    )
    return int(value or 0)


async def inventory_turnover(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """Per bucket: the cost of the goods sold in it (purchases placed in it, at cost) over the
    average inventory at cost, estimated by today's stock on hand at cost — the shop keeps no
    stock history. None without stock of known cost."""
    if not buckets:
        return []
    start, end = _span(buckets)
    day = shop_day_sql(col(Order.placed_at), dialect_of(session)).label("day")
    rows = await session.execute(
        select(day, func.sum(col(OrderLine.quantity) * _unit_cost()))
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .join(ProductVariant, col(ProductVariant.id) == col(OrderLine.variant_id))
        .join(Product, col(Product.id) == col(OrderLine.product_id))
        .where(
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) >= start,
            col(Order.placed_at) < end,
            _unit_cost().is_not(None),
        )
        .group_by(day)
    )
    cogs = {_as_date(d): float(v or 0) for d, v in rows}
    stock = await inventory_value(session)
    if stock <= 0:
        return [None for _ in buckets]
    return [sum(v for d, v in cogs.items() if b.start <= d < b.end) / stock for b in buckets]


def kpis() -> list[Kpi]:
    return [
        Kpi(
            "logistics.on_time_rate",
            "On-time delivery rate",
            KpiUnit.RATIO,
            on_time_rate,
            description="Of the shipments delivered in the period whose order carries a "
            "promised date, the share delivered on or before it.",
        ),
        Kpi(
            "logistics.transit_hours",
            "Average transit time (hours)",
            KpiUnit.SCORE,
            transit_hours,
            description="Mean hours from leaving the warehouse to delivery of the shipments "
            "delivered in the period (per carrier and lane: logisticsDeliveryReport).",
            higher_is_better=False,
        ),
        Kpi(
            "logistics.stockouts",
            "Stock-outs",
            KpiUnit.COUNT,
            stockouts,
            description="Products at a warehouse out of stock or covering less than their lead "
            "time, open at the end of the period (stock-out alerts).",
            higher_is_better=False,
        ),
        Kpi(
            "logistics.inventory_turnover",
            "Inventory turnover",
            KpiUnit.SCORE,
            inventory_turnover,
            description="Cost of the goods sold in the period over the inventory at cost "
            "(estimated by today's stock on hand: no stock history is kept).",
        ),
    ]


# --- the delivery report per carrier and lane ------------------------------------------------------


@dataclass(frozen=True)
class LaneFigures:
    carrier: str
    from_region: str
    to_region: str
    delivered: int
    with_promise: int
    on_time: int
    average_transit_hours: float | None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.with_promise if self.with_promise else None


async def delivery_report(session: AsyncSession, start: date, end: date) -> list[LaneFigures]:
    """Per carrier and lane (the tracked origin and destination regions; the shipping
    warehouse's province and "" when the plugin did not track the shipment), the shipments delivered on the
    shop days ``start`` to ``end`` (inclusive): how many, how many on time against their
    promise, and the mean transit hours. One statement."""
    day = shop_day_sql(col(Shipment.delivered_at), dialect_of(session))
    # The lane as the plugin tracked it (regions as the city table names them), else the
    # warehouse's province as the core holds it.
    from_region = func.coalesce(col(TrackedShipment.from_region), col(Warehouse.province)).label(
        "from_region"
    )
    to_region = func.coalesce(col(TrackedShipment.to_region), "").label("to_region")
    promised = col(Order.promised_by).is_not(None)
    on_time = case((promised & (day <= col(Order.promised_by)), 1), else_=0)
    hours = case((col(Shipment.shipped_at).is_not(None), transit_hours_sql(session)), else_=None)
    rows = await session.execute(
        select(
            col(Shipment.carrier),
            from_region,
            to_region,
            func.count(),
            func.sum(case((promised, 1), else_=0)),
            func.sum(on_time),
            func.avg(hours),
        )
        .join(Order, col(Order.id) == col(Shipment.order_id))
        .join(Warehouse, col(Warehouse.id) == col(Shipment.warehouse_id))
        .outerjoin(TrackedShipment, col(TrackedShipment.shipment_id) == col(Shipment.id))
        .where(
            col(Shipment.status) == ShipmentStatus.DELIVERED,
            col(Shipment.delivered_at) >= day_start(start),
            col(Shipment.delivered_at) < day_start(date.fromordinal(end.toordinal() + 1)),
        )
        .group_by(col(Shipment.carrier), from_region, to_region)
        .order_by(col(Shipment.carrier), from_region, to_region)
    )
    return [
        LaneFigures(
            carrier=str(carrier),
            from_region=str(origin or ""),
            to_region=str(dest or ""),
            delivered=int(n),
            with_promise=int(p or 0),
            on_time=int(o or 0),
            average_transit_hours=None if h is None else float(h),
        )
        for carrier, origin, dest, n, p, o, h in rows
    ]
