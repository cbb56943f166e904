"""The demo shop's alerts: a few rules on the core's KPIs, and what the last four weeks of its
history raise — each day's evaluation of the rules as the periodic job would have run it, the
anomaly detector on each of those days, and the stock-outs of the shop's last day (its last
week's three best sellers have just sold out). Alerts older than a week are acknowledged by
the demo's staff.

Written after the plugins' demo data (their KPIs have their data then), in the demo's
transaction. Nothing here is drawn at random: the alerts follow from the history. A rule on a
KPI no enabled plugin offers stays, and raises nothing until one does. No ``alert_raised``
event is emitted: nothing about the past is news.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.hooktypes import Kpi
from server.models import (
    Alert,
    AlertCondition,
    AlertRule,
    AlertState,
    Granularity,
    Order,
    OrderLine,
    StaffRole,
    StaffUser,
    StockLevel,
)
from server.services import alerts, anomalies
from server.services.forecasts import SHOP_UTC_OFFSET, shop_day
from server.services.rfm import PURCHASE_STATUSES

# The days of history evaluated, ending with the shop's last complete day.
BACKFILL_DAYS = 28
# Alerts raised longer ago than this before the shop's end are acknowledged.
ACKNOWLEDGED_AFTER = timedelta(days=7)
# The best sellers of the last week that have just sold out (stock-outs to show).
SOLD_OUT = 3

D, W, M = Granularity.DAY, Granularity.WEEK, Granularity.MONTH
C = AlertCondition
# (name, KPI, granularity, condition, threshold, enabled): MONEY in fen, ratios 0-1.
RULES: tuple[tuple[str, str, Granularity, AlertCondition, float, bool], ...] = (
    ("日 GMV 比前一天跌七成", "gmv", D, C.FALLS_BY, 0.7, True),
    ("日订单不足 2 单", "orders", D, C.BELOW, 2, True),
    ("周访客比上周少三成", "visitors", W, C.FALLS_BY, 0.3, True),
    ("周退款率超过 10%", "refund_rate", W, C.ABOVE, 0.1, True),
    ("支付成功率低于 90%", "payment_success_rate", D, C.BELOW, 0.9, True),
    ("月 GMV 破 5 万", "gmv", M, C.ABOVE, 5_000_000, True),
    ("日转化率低于 1%（暂停）", "conversion_rate", D, C.BELOW, 0.01, False),
)


def _shop_midnight(day: date) -> datetime:
    """The first moment of shop day ``day``, in UTC."""
    return datetime.combine(day, time(), tzinfo=UTC) - SHOP_UTC_OFFSET


async def _actor(session: AsyncSession) -> str:
    staff_id = await session.scalar(
        select(func.min(col(StaffUser.id))).where(col(StaffUser.role) == StaffRole.ADMIN)
    )
    return f"staff:{staff_id}" if staff_id is not None else "demo"


async def sell_out(session: AsyncSession, *, as_of: datetime, count: int = SOLD_OUT) -> list[int]:
    """The ``count`` best sellers of the shop's last week (units, then variant id) have just
    sold out: their stock is set to what is reserved. The variants, best first."""
    since = as_of - timedelta(days=alerts.STOCK_OUT_SALES_DAYS)
    units = func.sum(col(OrderLine.quantity))
    best = (
        (
            await session.execute(
                select(col(OrderLine.variant_id))
                .join(Order, col(Order.id) == OrderLine.order_id)
                .where(
                    col(Order.status).in_(PURCHASE_STATUSES),
                    col(Order.placed_at) > since,
                    col(Order.placed_at) <= as_of,
                )
                .group_by(col(OrderLine.variant_id))
                .order_by(units.desc(), col(OrderLine.variant_id))
                .limit(count)
            )
        )
        .scalars()
        .all()
    )
    if best:
        await session.execute(
            update(StockLevel)
            .where(col(StockLevel.variant_id).in_(best))
            .values(on_hand=StockLevel.reserved)
            .execution_options(synchronize_session=False)
        )
    return list(best)


async def write_rules(session: AsyncSession, *, as_of: datetime) -> str:
    """The demo's rules, made two months before the shop's end by its staff; who that is."""
    actor = await _actor(session)
    made = as_of - timedelta(days=60)
    await session.execute(
        insert(AlertRule),
        [
            {
                "name": name,
                "kpi_key": kpi,
                "granularity": granularity,
                "condition": condition,
                "threshold": float(threshold),
                "enabled": enabled,
                "created_by": actor,
                "created_at": made,
                "updated_at": made,
            }
            for name, kpi, granularity, condition, threshold, enabled in RULES
        ],
    )
    return actor


async def raise_history(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    *,
    as_of: datetime,
    actor: str,
    settings: Settings,
) -> int:
    """Evaluate the rules and the anomaly detector on each of the last
    :data:`BACKFILL_DAYS` days as the job would have, and the stock-outs at ``as_of``; raise
    what they find (dated when the job would have found it) and acknowledge, as ``actor``,
    what is older than :data:`ACKNOWLEDGED_AFTER`. How many alerts were raised."""
    last = shop_day(as_of)
    first = last - timedelta(days=BACKFILL_DAYS)
    raised = 0
    for offset in range(BACKFILL_DAYS + 1):
        today = first + timedelta(days=offset)
        # Each day's run of the job, an hour into the shop's day (the last: at the end).
        moment = min(_shop_midnight(today) + timedelta(hours=1), as_of)
        found = await alerts.find_rule_breaches(
            session, kpis, today=today, currency=settings.currency
        )
        raised += len(await alerts.raise_alerts(session, found, at=moment, emit=False))
    for anomaly in await anomalies.find_anomalies(
        session,
        kpis,
        settings.anomaly_kpi_keys,
        first_day=first,
        last_day=last - timedelta(days=1),
        history_days=settings.anomaly_history_days,
        threshold=settings.anomaly_threshold,
    ):
        found_at = _shop_midnight(anomaly.day + timedelta(days=1)) + timedelta(hours=1)
        new = alerts.anomaly_alert(
            anomaly, threshold=settings.anomaly_threshold, currency=settings.currency
        )
        raised += len(await alerts.raise_alerts(session, [new], at=found_at, emit=False))
    stock_outs = await alerts.find_stock_outs(session, as_of=as_of)
    raised += len(await alerts.raise_alerts(session, stock_outs, at=as_of, emit=False))
    old = await session.execute(
        select(col(Alert.id), col(Alert.created_at)).where(
            col(Alert.created_at) < as_of - ACKNOWLEDGED_AFTER,
            col(Alert.state) == AlertState.OPEN,
        )
    )
    acknowledged = [
        {
            "id": alert_id,
            "state": AlertState.ACKNOWLEDGED,
            "acknowledged_by": actor,
            "acknowledged_at": created_at + timedelta(hours=3),
        }
        for alert_id, created_at in old
    ]
    if acknowledged:
        await session.execute(update(Alert), acknowledged)
    return raised


async def write_alerts(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    *,
    as_of: datetime,
    settings: Settings | None = None,
) -> dict[str, int]:
    """The demo's rules, its last week's best sellers sold out, and the alerts its history
    raises on ``kpis``; the rows written, by what."""
    actor = await write_rules(session, as_of=as_of)
    await sell_out(session, as_of=as_of)
    raised = await raise_history(
        session, kpis, as_of=as_of, actor=actor, settings=settings or Settings()
    )
    return {"alert rules": len(RULES), "alerts": raised}
