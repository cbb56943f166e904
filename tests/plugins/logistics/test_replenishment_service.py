"""Replenishment figures read from the shop's sales and stock, and the stock-out alerts job,
on both backends: the history a product's rows are computed from (purchases only, up to
yesterday, split by the warehouse each line left), and alerts raised once per episode however
many runs check at once."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import ReplenishmentPolicy, StockoutAlert
from plugins.logistics.service import replenishment
from plugins.logistics.service.replenishment import PolicyInput, RowFilter
from plugins.logistics.service.settings import LogisticsSettings
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import Alert, AlertKind, StockLevel
from server.plugin import JobContext, NotFound, ValidationFailed
from server.plugins import PluginRuntime
from server.services.forecasts import forecast_units
from tests.plugins.logistics.repl_support import (
    HISTORY_DAYS,
    alternating_history,
    noon,
    product_series,
)

TODAY = date(2026, 3, 2)
AS_OF = noon(TODAY)
CONFIG = LogisticsSettings(
    replenishment_history_days=HISTORY_DAYS,
    lead_time_days=4,
    lead_time_sd_days=1,
    review_days=3,
    service_level=0.95,
    min_order_quantity=1,
)
Z95 = 1.6448536269514722


def _forecast_7() -> float:
    """The core's forecast of the product's next 7 days from its series (the model is the
    core's; what is checked here is what this plugin feeds it and does with it)."""
    mean = forecast_units(product_series(), TODAY - timedelta(days=HISTORY_DAYS), 7).mean
    return float(sum(mean))


async def test_rows_split_the_forecast_by_warehouse(session: AsyncSession) -> None:
    h = await alternating_history(session, TODAY)
    pid, w1, w2 = h.product.id or 0, h.w1.id or 0, h.w2.id or 0
    rows = await replenishment.compute(session, CONFIG, [(pid, w1), (pid, w2)], as_of=AS_OF)
    total = _forecast_7()
    assert total > 0
    a, b = rows[(pid, w1)].figures, rows[(pid, w2)].figures
    assert a.daily_demand == pytest.approx(0.75 * total / 7)
    assert b.daily_demand == pytest.approx(0.25 * total / 7)
    assert (a.demand_sd, a.baseline, b.demand_sd, b.baseline) == pytest.approx((1.5, 1.5, 0.5, 0.5))
    assert (a.on_hand, a.reserved, a.available) == (30, 5, 25)
    d = a.daily_demand
    ss = Z95 * (4 * 1.5**2 + d**2 * 1) ** 0.5
    assert a.safety_stock == pytest.approx(ss)
    assert a.reorder_point == pytest.approx(4 * d + ss)
    assert a.days_of_cover == pytest.approx(25 / d)
    assert not rows[(pid, w1)].policy.explicit

    # A policy of its own for W1: a 20-day lead time, fixed, 99%, two weeks' review, 100 min.
    await replenishment.set_policy(
        session,
        PolicyInput(pid, w1, 20, 0, 0.99, 14, 100),
    )
    await session.commit()
    again = (await replenishment.compute(session, CONFIG, [(pid, w1)], as_of=AS_OF))[(pid, w1)]
    mean = forecast_units(product_series(), TODAY - timedelta(days=HISTORY_DAYS), 34).mean
    d = 0.75 * sum(mean) / 34
    z99 = 2.3263478740408408
    ss = z99 * 1.5 * 20**0.5
    f = again.figures
    assert again.policy.explicit and f.daily_demand == pytest.approx(d)
    assert f.safety_stock == pytest.approx(ss)
    assert f.reorder_point == pytest.approx(20 * d + ss)
    assert f.below_reorder_point
    need = d * 34 + ss - 25
    assert f.order_quantity == max(100, -int(-need // 1))


async def test_policies_are_checked(session: AsyncSession) -> None:
    h = await alternating_history(session, TODAY)
    pid, w1 = h.product.id or 0, h.w1.id or 0
    with pytest.raises(ValidationFailed) as bad:
        await replenishment.set_policy(session, PolicyInput(pid, w1, 0))
    assert bad.value.field == "leadTimeDays"
    with pytest.raises(ValidationFailed) as bad:
        await replenishment.set_policy(session, PolicyInput(pid, w1, 5, service_level=1.0))
    assert bad.value.field == "serviceLevel"
    with pytest.raises(NotFound):
        await replenishment.set_policy(session, PolicyInput(pid, 999_999, 5))
    await session.rollback()
    assert (await session.scalars(select(ReplenishmentPolicy))).all() == []


async def test_stockout_alerts_open_once_and_clear(
    session: AsyncSession, database_url: str, settings: Settings, plugins: PluginRuntime
) -> None:
    h = await alternating_history(session, TODAY)
    pid, w1, w2 = h.product.id or 0, h.w1.id or 0, h.w2.id or 0
    # W1 covers ~18 days: under a 20-day lead time it is a stock-out; W2 (100 on hand) is not.
    await replenishment.set_policy(session, PolicyInput(pid, w1, 20, 0, 0.95, 7, 1))
    await session.commit()
    pairs = await replenishment.all_pairs(session, RowFilter(product_id=pid))
    assert pairs == [(pid, w1), (pid, w2)]
    await session.commit()  # reads below see what the runs committed

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)

        async def check() -> int:
            done = await replenishment.check_stockouts(sessions, CONFIG, pairs, as_of=AS_OF)
            return done.raised

        # Two runs at once raise one alert.
        assert sorted(await asyncio.gather(check(), check())) == [0, 1]
        await session.commit()
        alerts = (await session.scalars(select(StockoutAlert))).all()
        assert [(a.warehouse_id, a.open_key, a.available) for a in alerts] == [
            (w1, f"p:{pid}/w:{w1}", 25)
        ]
        assert await check() == 0  # still open: not raised again

        # Restocked above the reorder point: cleared; out again later: a new episode.
        await session.execute(
            update(StockLevel).where(StockLevel.warehouse_id == w1).values(on_hand=500)  # type: ignore[arg-type]
        )
        await session.commit()
        done = await replenishment.check_stockouts(sessions, CONFIG, pairs, as_of=AS_OF)
        assert (done.raised, done.cleared) == (0, 1)
        await session.execute(
            update(StockLevel).where(StockLevel.warehouse_id == w1).values(on_hand=5, reserved=5)  # type: ignore[arg-type]
        )
        await session.commit()
        assert await check() == 1
        await session.commit()
        session.expire_all()
        alerts = (await session.scalars(select(StockoutAlert).order_by(StockoutAlert.id))).all()  # type: ignore[arg-type]
        assert [(a.open_key, a.cleared_at is None) for a in alerts] == [
            (None, False),
            (f"p:{pid}/w:{w1}", True),
        ]
        assert alerts[1].available == 0
        # Each episode is also one of the core's alerts staff see.
        core = (await session.scalars(select(Alert).order_by(Alert.id))).all()  # type: ignore[arg-type]
        assert [a.key for a in core] == [f"plugin:logistics:stockout:{a.id}" for a in alerts]
        assert all(a.kind is AlertKind.PLUGIN for a in core)

        # The job checks every row in batches: the open episode is not raised again.
        said: list[str] = []
        (job,) = replenishment.jobs(CONFIG)
        assert job.name == "stockouts" and job.interval_seconds == 3600
        await job.run(JobContext(sessions, settings, plugins, CONFIG, said.append))
        assert said == ["logistics: stock-outs 0/2"]
        assert await _count_open(session) == 1
    finally:
        await engine.dispose()


async def _count_open(session: AsyncSession) -> int:
    await session.commit()
    rows = await session.scalars(select(StockoutAlert).where(StockoutAlert.cleared_at.is_(None)))  # type: ignore[union-attr]
    return len(rows.all())
