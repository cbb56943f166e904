"""The demo shop's alerts, on SQLite and PostgreSQL: its rules, its last week's best sellers
sold out and raised as stock-outs, and — on a KPI offered — each day of the last four weeks
evaluated as the job would have, the older alerts acknowledged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import models as m
from server.config import Settings
from server.demo import alerts as demo_alerts
from server.demo import load
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import load_plugins
from server.services import variants
from server.services.forecasts import shop_day
from server.services.rfm import PURCHASE_STATUSES

pytestmark = pytest.mark.heavy

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)
SIZE = {"customers": 60, "products": 80, "orders": 600}


async def purchases_by_day(session: AsyncSession) -> Counter[date]:
    placed = await session.scalars(
        select(m.Order.placed_at).where(m.Order.status.in_(PURCHASE_STATUSES))  # type: ignore[attr-defined]  # a SQLModel column is an InstrumentedAttribute at run time
    )
    return Counter(shop_day(at) for at in placed)


async def test_the_demo_raises_alerts_from_its_history(
    database_url: str, session: AsyncSession
) -> None:
    report = await load(database_url, seed=7, as_of=AS_OF, **SIZE)
    assert report is not None
    rules = (await session.execute(select(m.AlertRule).order_by(m.AlertRule.id))).scalars().all()
    assert len(rules) == report.counts["alert rules"] == len(demo_alerts.RULES)
    assert {r.kpi_key for r in rules} >= {"gmv", "orders", "refund_rate", "visitors"}
    assert [r.enabled for r in rules].count(False) == 1
    staff = await session.scalar(select(m.StaffUser.id))
    assert {r.created_by for r in rules} == {f"staff:{staff}"}

    # No KPI is offered here: the alerts are the stock-outs of the week's best sellers.
    since = AS_OF - timedelta(days=7)
    sold = (
        await session.execute(
            select(m.OrderLine.variant_id, func.sum(m.OrderLine.quantity))
            .join(m.Order, m.Order.id == m.OrderLine.order_id)
            .where(
                m.Order.status.in_(PURCHASE_STATUSES),  # type: ignore[attr-defined]  # a SQLModel column is an InstrumentedAttribute at run time
                m.Order.placed_at > since,
                m.Order.placed_at <= AS_OF,
            )
            .group_by(m.OrderLine.variant_id)
        )
    ).all()
    units = {variant_id: int(n) for variant_id, n in sold}
    best = sorted(units, key=lambda v: (-units[v], v))[: demo_alerts.SOLD_OUT]
    left = await variants.available_units(session, units)
    assert best and all(left.get(v, 0) == 0 for v in best)
    stock_outs = (
        (await session.execute(select(m.Alert).where(m.Alert.kind == m.AlertKind.STOCK_OUT)))
        .scalars()
        .all()
    )
    assert {a.variant_id for a in stock_outs} >= set(best)
    assert all(a.expected == units[a.variant_id] for a in stock_outs)
    assert report.counts["alerts"] == len(stock_outs)
    assert all(a.created_at == AS_OF and a.state is m.AlertState.OPEN for a in stock_outs)

    # With an "orders" KPI offered, "日订单不足 2 单" (DAY, BELOW 2) fires for every day of the
    # four weeks before the shop's end with fewer than 2 purchases, found the next day an hour
    # in; what is more than a week old is acknowledged by the demo's staff.
    by_day = await purchases_by_day(session)

    async def orders(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [
            float(sum(by_day[b.start + timedelta(days=i)] for i in range((b.end - b.start).days)))
            for b in buckets
        ]

    kpis = {"orders": Kpi("orders", "Orders", KpiUnit.COUNT, orders)}
    await demo_alerts.raise_history(
        session, kpis, as_of=AS_OF, actor=f"staff:{staff}", settings=Settings()
    )
    await session.commit()
    rule = next(r for r in rules if r.kpi_key == "orders")
    found = (
        (await session.execute(select(m.Alert).where(m.Alert.rule_id == rule.id))).scalars().all()
    )
    last = shop_day(AS_OF)
    days = [last - timedelta(days=n) for n in range(1, demo_alerts.BACKFILL_DAYS + 2)]
    expected = {d for d in days if by_day[d] < 2}
    assert expected, "a small shop has slow days"
    assert {a.bucket_start for a in found} == expected
    for alert in found:
        assert alert.value == by_day[alert.bucket_start]
        found_at = datetime.combine(alert.bucket_start, datetime.min.time(), tzinfo=UTC)
        assert alert.created_at == found_at + timedelta(days=1, hours=1 - 8)
        old = alert.created_at < AS_OF - timedelta(days=7)
        assert alert.state is (m.AlertState.ACKNOWLEDGED if old else m.AlertState.OPEN)
        if old:
            assert alert.acknowledged_by == f"staff:{staff}"
            assert alert.acknowledged_at == alert.created_at + timedelta(hours=3)


async def test_the_demo_alerts_read_the_kpis_of_its_history(
    database_url: str, session: AsyncSession
) -> None:
    # With the core's KPIs, the rules read aggregates built from the demo's own history inside
    # its transaction: the "orders" rule's values are the days' real purchases, never a 0 of
    # aggregates not built yet.
    plugins = load_plugins(Settings(database_url=database_url, plugins=""))
    report = await load(database_url, seed=7, as_of=AS_OF, plugins=plugins, **SIZE)
    assert report is not None
    assert await session.scalar(select(func.count()).select_from(m.KpiWatermark)) == 1
    by_day = await purchases_by_day(session)
    rule = await session.scalar(select(m.AlertRule).where(m.AlertRule.kpi_key == "orders"))
    assert rule is not None
    found = (
        (await session.execute(select(m.Alert).where(m.Alert.rule_id == rule.id))).scalars().all()
    )
    assert found, "a small shop has slow days"
    assert all(a.value == by_day[a.bucket_start] for a in found)
