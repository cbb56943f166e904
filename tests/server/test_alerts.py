"""Alerts, on SQLite and PostgreSQL: periods and rule conditions by hand, threshold and change
rules on a known series, each breach raised once (again and again, and by two evaluations at
once), acknowledgement (twice at once: one wins), the ``alert_raised`` event reaching a plugin,
stock-outs, and rules refused with typed errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.events import DispatchSettings, OutboxDispatcher
from server.models import (
    Alert,
    AlertCondition,
    AlertDirection,
    AlertKind,
    AlertRule,
    AlertState,
    Granularity,
    Order,
    OrderLine,
    OrderStatus,
    OutboxEvent,
    ProductVariant,
    utcnow,
)
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import PluginRuntime, load_plugins
from server.services import alerts
from server.services.alerts import (
    AlreadyAcknowledged,
    InvalidThreshold,
    UnknownKpi,
    bucket_of,
    check_rule,
    previous,
)
from server.services.errors import NotFound, ValidationFailed
from server.services.forecasts import shop_day
from tests.plugins.fakes import FakePlugin, Recorder
from tests.support.catalog import add_variants, make_product, make_warehouse

G, C = Granularity, AlertCondition
FAST = DispatchSettings(max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.05)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


# --- by hand ------------------------------------------------------------------------------------


def test_periods() -> None:
    wednesday = date(2026, 3, 11)
    assert bucket_of(wednesday, G.DAY) == KpiBucket(wednesday, date(2026, 3, 12))
    assert bucket_of(wednesday, G.WEEK) == KpiBucket(date(2026, 3, 9), date(2026, 3, 16))
    assert bucket_of(date(2026, 3, 15), G.WEEK) == KpiBucket(date(2026, 3, 9), date(2026, 3, 16))
    assert bucket_of(wednesday, G.MONTH) == KpiBucket(date(2026, 3, 1), date(2026, 4, 1))
    assert previous(bucket_of(wednesday, G.MONTH), G.MONTH) == KpiBucket(
        date(2026, 2, 1), date(2026, 3, 1)
    )
    assert bucket_of(date(2028, 2, 29), G.MONTH) == KpiBucket(date(2028, 2, 1), date(2028, 3, 1))
    new_year = bucket_of(date(2027, 1, 1), G.DAY)
    assert previous(new_year, G.DAY) == KpiBucket(date(2026, 12, 31), date(2027, 1, 1))
    # The week of New Year's Day 2027 (a Friday) starts on Monday, December 28.
    assert previous(bucket_of(date(2027, 1, 4), G.WEEK), G.WEEK).start == date(2026, 12, 28)
    assert previous(bucket_of(date(2027, 1, 15), G.MONTH), G.MONTH).start == date(2026, 12, 1)


def test_rule_conditions_by_hand() -> None:
    assert check_rule(C.ABOVE, 10, None, 10.5) == (True, None)
    assert check_rule(C.ABOVE, 10, None, 10) == (False, None)  # above is strictly above
    assert check_rule(C.BELOW, 10, None, 9.99) == (True, None)
    assert check_rule(C.BELOW, 10, None, 10) == (False, None)
    # (130 − 100) / 100 = 0.3: a rise of 30% is a rise "by 30%".
    assert check_rule(C.RISES_BY, 0.3, 100, 130) == (True, pytest.approx(0.3))
    assert check_rule(C.RISES_BY, 0.3, 100, 129) == (False, pytest.approx(0.29))
    assert check_rule(C.FALLS_BY, 0.3, 100, 70) == (True, pytest.approx(-0.3))
    assert check_rule(C.FALLS_BY, 0.3, 100, 130) == (False, pytest.approx(0.3))
    # A score from −10 to −5 rose by half of its size.
    assert check_rule(C.RISES_BY, 0.5, -10, -5) == (True, pytest.approx(0.5))
    # No share of nothing, no value: no breach.
    assert check_rule(C.RISES_BY, 0.3, 0, 50) == (False, None)
    assert check_rule(C.FALLS_BY, 0.3, None, 50) == (False, None)
    assert check_rule(C.ABOVE, 10, 5, None) == (False, None)


def _kpi(key: str, unit: KpiUnit, higher_is_better: bool = True) -> Kpi:
    async def nothing(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [None for _ in buckets]

    return Kpi(key, key, unit, nothing, higher_is_better=higher_is_better)


@pytest.mark.parametrize(
    ("unit", "condition", "threshold", "ok"),
    [
        (KpiUnit.RATIO, C.ABOVE, 0.05, True),
        (KpiUnit.RATIO, C.ABOVE, 5, False),  # 5% is 0.05
        (KpiUnit.RATIO, C.BELOW, -0.1, False),
        (KpiUnit.MONEY, C.BELOW, -1, False),
        (KpiUnit.MONEY, C.ABOVE, 5_000_000, True),
        (KpiUnit.SCORE, C.BELOW, -20, True),  # NPS goes down to −100
        (KpiUnit.COUNT, C.RISES_BY, 0, False),
        (KpiUnit.COUNT, C.RISES_BY, 3, True),  # tripled and more: fine
        (KpiUnit.COUNT, C.FALLS_BY, 1, True),
        (KpiUnit.COUNT, C.FALLS_BY, 30, False),  # 30% is 0.3
        (KpiUnit.SCORE, C.FALLS_BY, 2, True),  # a score can fall past zero
        (KpiUnit.SCORE, C.RISES_BY, 101, False),
        (KpiUnit.COUNT, C.ABOVE, float("nan"), False),
    ],
)
def test_thresholds_a_condition_can_use(
    unit: KpiUnit, condition: AlertCondition, threshold: float, ok: bool
) -> None:
    kpi = _kpi("shop.figure", unit)
    if ok:
        assert alerts.check_threshold(kpi, condition, threshold) == threshold
    else:
        with pytest.raises(InvalidThreshold) as refused:
            alerts.check_threshold(kpi, condition, threshold)
        assert (refused.value.code, refused.value.field) == ("INVALID_THRESHOLD", "threshold")


def test_values_read_as_people_read_them() -> None:
    assert alerts.format_value(1234, KpiUnit.COUNT, "CNY") == "1,234"
    assert alerts.format_value(1234.5, KpiUnit.COUNT, "CNY") == "1,234.50"
    assert alerts.format_value(1234560, KpiUnit.MONEY, "CNY") == "12,345.60 CNY"
    assert alerts.format_value(1234, KpiUnit.MONEY, "JPY") == "1,234 JPY"
    assert alerts.format_value(0.1234, KpiUnit.RATIO, "CNY") == "12.3%"
    assert alerts.format_value(4.256, KpiUnit.SCORE, "CNY") == "4.26"


# --- rules on a known series --------------------------------------------------------------------

# Shop day March 11 2026 (a Wednesday), 10:00: March 10 is the latest complete day, the week
# of March 2 the latest complete week, February the latest complete month.
AS_OF = datetime(2026, 3, 11, 2, 0, tzinfo=UTC)
ORDERS: dict[date, float] = {}
for _i in range(60):
    ORDERS[date(2026, 1, 20) + timedelta(days=_i)] = 40.0
for _d in range(2, 9):
    ORDERS[date(2026, 3, _d)] = 30.0  # a slow week: 210 against 280 the week before
ORDERS[date(2026, 3, 10)] = 60.0  # against 40 on March 9
ORDERS[date(2026, 3, 11)] = 55.0  # so far today
REFUNDS = {date(2026, 3, 10): 0.05, date(2026, 3, 11): 0.5}


def day_sums(values: Mapping[date, float], calls: list[Sequence[KpiBucket]] | None = None) -> Any:
    async def compute(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        if calls is not None:
            calls.append(list(buckets))
        out: list[float | None] = []
        for b in buckets:
            days = [b.start + timedelta(days=i) for i in range((b.end - b.start).days)]
            out.append(sum(values.get(d, 0.0) for d in days))
        return out

    return compute


def day_values(values: Mapping[date, float]) -> Any:
    async def compute(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [
            values.get(b.start) if b.end - b.start == timedelta(days=1) else None for b in buckets
        ]

    return compute


def shop_plugin(calls: list[Sequence[KpiBucket]] | None = None, **hooks: Any) -> FakePlugin:
    return FakePlugin(
        "shop",
        kpis=lambda: [
            Kpi("shop.orders", "Orders", KpiUnit.COUNT, day_sums(ORDERS, calls)),
            Kpi(
                "shop.refund_rate",
                "Refund rate",
                KpiUnit.RATIO,
                day_values(REFUNDS),
                higher_is_better=False,
            ),
        ],
        **hooks,
    )


def runtime_of(settings: Settings, *plugins: Any) -> PluginRuntime:
    return load_plugins(settings.model_copy(update={"plugins": ""}), extra=plugins)


async def make_rules(
    sessions: async_sessionmaker[AsyncSession], runtime: PluginRuntime
) -> dict[str, int]:
    from server.services.kpi_registry import registered_kpis

    kpis = registered_kpis(runtime)
    specs = {
        "busy day": ("shop.orders", G.DAY, C.ABOVE, 50),
        "orders up by half": ("shop.orders", G.DAY, C.RISES_BY, 0.5),
        "orders down": ("shop.orders", G.DAY, C.FALLS_BY, 0.3),
        "slow week": ("shop.orders", G.WEEK, C.FALLS_BY, 0.25),
        "thin month": ("shop.orders", G.MONTH, C.BELOW, 2000),
        "refunds": ("shop.refund_rate", G.DAY, C.ABOVE, 0.1),
        "paused": ("shop.orders", G.DAY, C.ABOVE, 1),
    }
    ids: dict[str, int] = {}
    async with sessions() as s:
        for name, (kpi, granularity, condition, threshold) in specs.items():
            rule = await alerts.create_rule(
                s,
                kpis,
                name=name,
                kpi=kpi,
                granularity=granularity,
                condition=condition,
                threshold=threshold,
                enabled=name != "paused",
                actor="staff:7",
            )
            assert rule.id is not None
            ids[name] = rule.id
        # A rule whose KPI's plugin is gone: kept, never evaluated.
        await s.execute(
            insert(AlertRule).values(
                name="gone",
                kpi_key="complaints.rate",
                granularity=G.DAY,
                condition=C.ABOVE,
                threshold=0,
                enabled=True,
                created_by="staff:7",
                created_at=AS_OF,
                updated_at=AS_OF,
            )
        )
        await s.commit()
    return ids


async def all_alerts(sessions: async_sessionmaker[AsyncSession]) -> list[Alert]:
    async with sessions() as s:
        return list((await s.execute(select(Alert).order_by(Alert.key))).scalars().all())


async def events(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxEvent]:
    async with sessions() as s:
        stmt = select(OutboxEvent).where(OutboxEvent.name == "alert_raised")
        return list((await s.execute(stmt.order_by(OutboxEvent.id))).scalars().all())


async def test_threshold_and_change_rules_on_a_known_series(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    calls: list[Sequence[KpiBucket]] = []
    runtime = runtime_of(settings, shop_plugin(calls))
    ids = await make_rules(sessions, runtime)
    report = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF)
    assert (report.thresholds, report.anomalies, report.stock_outs) == (5, 0, 0)
    # One compute per KPI and granularity: the period before, the latest, the one under way.
    day = [KpiBucket(date(2026, 3, d), date(2026, 3, d + 1)) for d in (9, 10, 11)]
    week = [
        KpiBucket(date(2026, 2, 23), date(2026, 3, 2)),
        KpiBucket(date(2026, 3, 2), date(2026, 3, 9)),
    ]
    week.append(KpiBucket(date(2026, 3, 9), date(2026, 3, 16)))
    month = [
        KpiBucket(date(2026, 1, 1), date(2026, 2, 1)),
        KpiBucket(date(2026, 2, 1), date(2026, 3, 1)),
        KpiBucket(date(2026, 3, 1), date(2026, 4, 1)),
    ]
    assert sorted(calls, key=lambda b: (b[-1].end - b[-1].start, b[0].start)) == [day, week, month]

    found = {a.key: a for a in await all_alerts(sessions)}
    busy = f"rule:{ids['busy day']}:DAY:2026-03-10"
    busy_today = f"rule:{ids['busy day']}:DAY:2026-03-11"
    up = f"rule:{ids['orders up by half']}:DAY:2026-03-10"
    slow = f"rule:{ids['slow week']}:WEEK:2026-03-02"
    thin = f"rule:{ids['thin month']}:MONTH:2026-02-01"
    assert set(found) == {busy, busy_today, up, slow, thin}
    # Above 50: March 10 (60), and today so far (55; orders only grow as a day runs).
    assert (found[busy].value, found[busy].threshold, found[busy].expected) == (60, 50, None)
    assert found[busy].message == "busy day: Orders 60 in 2026-03-10, above 50"
    assert found[busy_today].message == "busy day: Orders 55 so far in 2026-03-11, above 50"
    assert (found[busy_today].bucket_start, found[busy_today].bucket_end) == (
        date(2026, 3, 11),
        date(2026, 3, 12),
    )
    # 40 → 60: +50%.
    assert (found[up].value, found[up].expected, found[up].score) == (60, 40, 0.5)
    assert found[up].message == (
        "orders up by half: Orders rose 50% to 60 in 2026-03-10 (from 40; the rule: 50%)"
    )
    # Week of March 2: 7 × 30 = 210 against 7 × 40 = 280 before: −25%.
    assert (found[slow].value, found[slow].expected, found[slow].score) == (210, 280, -0.25)
    assert (found[slow].bucket_start, found[slow].bucket_end) == (
        date(2026, 3, 2),
        date(2026, 3, 9),
    )
    assert found[slow].direction is AlertDirection.DOWN and found[slow].bad_news
    assert "the week of 2026-03-02" in found[slow].message
    # February: 28 × 40 = 1,120 < 2,000; March so far is not judged by a BELOW rule.
    assert (found[thin].value, found[thin].bucket_start) == (1120, date(2026, 2, 1))
    assert found[thin].message == "thin month: Orders 1,120 in 2026-02, below 2,000"
    for alert in found.values():
        assert alert.kind is AlertKind.THRESHOLD and alert.state is AlertState.OPEN
        assert alert.kpi_key == "shop.orders" and alert.created_at == AS_OF
    # Up is good news for orders; down is bad.
    assert not found[busy].bad_news and found[busy].direction is AlertDirection.UP
    # Refund rate 0.05 yesterday: below 0.1; today's 0.5 is a ratio of a day under way, which
    # may still fall: not judged. The paused rule and the rule of a missing KPI raise nothing.

    # One event per alert, with its payload.
    raised = await events(sessions)
    assert sorted(e.payload["alert_id"] for e in raised) == sorted(a.id for a in found.values())
    payload = next(e.payload for e in raised if e.payload["alert_id"] == found[up].id)
    assert payload == {
        "alert_id": found[up].id,
        "kind": "THRESHOLD",
        "rule_id": ids["orders up by half"],
        "kpi": "shop.orders",
        "product_id": None,
        "variant_id": None,
        "bucket_start": "2026-03-10",
        "bucket_end": "2026-03-11",
        "value": 60.0,
        "expected": 40.0,
        "threshold": 0.5,
        "score": 0.5,
        "direction": "UP",
        "bad_news": False,
        "message": found[up].message,
    }

    # Once per breach: again an hour later nothing new. The next day March 11 is complete:
    # above 50 it was raised already (while under way), and its refund rate, a ratio judged only
    # once its day is over, is now above 0.1: that one is new.
    again = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF + timedelta(hours=1))
    assert again.thresholds == 0
    later = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF + timedelta(days=1))
    assert later.thresholds == 1
    refunds = {a.key: a for a in await all_alerts(sessions)}[
        f"rule:{ids['refunds']}:DAY:2026-03-11"
    ]
    assert (refunds.value, refunds.bad_news, refunds.direction) == (0.5, True, AlertDirection.UP)
    assert refunds.message == "refunds: Refund rate 50.0% in 2026-03-11, above 10.0%"
    assert len(await all_alerts(sessions)) == 6 and len(await events(sessions)) == 6


async def test_two_evaluations_at_once_raise_each_breach_once(
    database_url: str, settings: Settings
) -> None:
    """Two evaluators (two engines: two processes' worth of connections) read the same
    breaches, waiting for each other at every KPI read, then both raise them."""
    barrier = asyncio.Barrier(2)

    async def in_step(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        await barrier.wait()
        return await day_sums(ORDERS)(session, buckets)

    plugin = FakePlugin("shop", kpis=lambda: [Kpi("shop.orders", "Orders", KpiUnit.COUNT, in_step)])
    runtime = runtime_of(settings, plugin)
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        one, two = (session_factory(e) for e in engines)
        async with one() as s:
            from server.services.kpi_registry import registered_kpis

            kpis = registered_kpis(runtime)
            for granularity, condition, threshold in [
                (G.DAY, C.ABOVE, 50),
                (G.WEEK, C.FALLS_BY, 0.25),
                (G.MONTH, C.BELOW, 2000),
            ]:
                await alerts.create_rule(
                    s,
                    kpis,
                    name=f"{granularity.value} rule",
                    kpi="shop.orders",
                    granularity=granularity,
                    condition=condition,
                    threshold=threshold,
                    actor="staff:1",
                )
            await s.commit()
        reports = await asyncio.gather(
            alerts.evaluate(one, settings, runtime, as_of=AS_OF),
            alerts.evaluate(two, settings, runtime, as_of=AS_OF),
        )
        # March 10 and 11 above 50, the week of March 2, February: four breaches, once each.
        assert sorted(r.thresholds for r in reports) in ([0, 4], [1, 3], [2, 2])
        assert sum(r.thresholds for r in reports) == 4
        assert len(await all_alerts(one)) == 4
        assert len(await events(one)) == 4
    finally:
        for engine in engines:
            await engine.dispose()


# --- acknowledging ------------------------------------------------------------------------------


async def _raise(sessions: async_sessionmaker[AsyncSession], key: str) -> int:
    found = alerts.NewAlert(
        key=key,
        kind=AlertKind.ANOMALY,
        kpi_key="shop.orders",
        bucket_start=date(2026, 3, 10),
        bucket_end=date(2026, 3, 11),
        direction=AlertDirection.DOWN,
        message="Orders drop",
    )
    async with sessions() as s:
        [alert_id] = await alerts.raise_alerts(s, [found])
        await s.commit()
    return alert_id


async def test_acknowledging_an_alert(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await _raise(sessions, "anomaly:shop.orders:2026-03-10")
    async with sessions() as s:
        await mark_write(s)
        done = await alerts.acknowledge(s, alert_id, actor="staff:3")
        await s.commit()
    assert done.state is AlertState.ACKNOWLEDGED and done.acknowledged_by == "staff:3"
    assert done.acknowledged_at is not None
    async with sessions() as s:
        await mark_write(s)
        with pytest.raises(AlreadyAcknowledged) as twice:
            await alerts.acknowledge(s, alert_id, actor="staff:4")
        await s.rollback()
    assert twice.value.code == "ALREADY_ACKNOWLEDGED" and "staff:3" in twice.value.message
    async with sessions() as s:
        with pytest.raises(NotFound):
            await alerts.acknowledge(s, alert_id + 100, actor="staff:4")
        await s.rollback()
        stored = await s.get(Alert, alert_id)
        assert stored is not None and stored.acknowledged_by == "staff:3"


async def test_two_people_acknowledging_at_once_one_wins(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        factories = [session_factory(e) for e in engines]
        alert_id = await _raise(factories[0], "anomaly:shop.orders:2026-03-09")

        async def acknowledge(sessions: async_sessionmaker[AsyncSession], who: str) -> str:
            async with sessions() as s:
                await mark_write(s)
                try:
                    await alerts.acknowledge(s, alert_id, actor=who)
                except AlreadyAcknowledged:
                    await s.rollback()
                    return "refused"
                await s.commit()
                return "done"

        outcomes = await asyncio.gather(
            acknowledge(factories[0], "staff:1"), acknowledge(factories[1], "staff:2")
        )
        assert sorted(outcomes) == ["done", "refused"]
        async with factories[0]() as s:
            stored = await s.get(Alert, alert_id)
            assert stored is not None
            winner = "staff:1" if outcomes[0] == "done" else "staff:2"
            assert stored.acknowledged_by == winner
    finally:
        for engine in engines:
            await engine.dispose()


# --- the event ----------------------------------------------------------------------------------


async def test_hook_alert_raised(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    recorder, bystander = Recorder(), Recorder()
    runtime = runtime_of(
        settings,
        shop_plugin(alert_raised=recorder),
        FakePlugin("bystander", order_placed=bystander),
    )
    ids = await make_rules(sessions, runtime)
    await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF)
    report = await OutboxDispatcher(sessions, runtime, FAST).drain()
    assert report.delivered == 5
    delivered = {e.payload["alert_id"]: e for e in recorder.events}
    stored = {a.id: a for a in await all_alerts(sessions)}
    assert set(delivered) == set(stored)
    slow = next(a for a in stored.values() if a.rule_id == ids["slow week"])
    event = delivered[slow.id]
    assert event.name == "alert_raised"
    assert event.payload["kind"] == "THRESHOLD" and event.payload["direction"] == "DOWN"
    assert event.payload["bad_news"] is True and event.payload["message"] == slow.message
    assert (event.payload["bucket_start"], event.payload["value"]) == ("2026-03-02", 210.0)
    assert bystander.events == []
    # Delivered once: another drain finds nothing.
    assert (await OutboxDispatcher(sessions, runtime, FAST).drain()).delivered == 0


# --- stock-outs ---------------------------------------------------------------------------------

_numbers = itertools.count(1)


async def _sell(
    session: AsyncSession,
    variant: ProductVariant,
    quantity: int,
    placed: datetime,
    status: OrderStatus = OrderStatus.PAID,
) -> None:
    number = f"SG-AL-{next(_numbers):06d}"
    await session.execute(
        insert(Order).values(
            number=number,
            status=status,
            currency="CNY",
            placed_at=placed,
            adjustments=[],
            shipping_address={},
            shipment_plan=[],
        )
    )
    order_id = await session.scalar(select(Order.id).where(Order.number == number))
    await session.execute(
        insert(OrderLine).values(
            order_id=order_id,
            product_id=variant.product_id,
            variant_id=variant.id,
            sku=variant.sku,
            product_name="零食",
            options={},
            quantity=quantity,
            base_unit_price_amount=100,
            unit_price_amount=100,
            line_total_amount=100 * quantity,
            adjustments=[],
        )
    )


async def test_stock_outs_of_what_sold_last_week_once_a_day(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession, settings: Settings
) -> None:
    now = AS_OF
    warehouse = await make_warehouse(session, "SH-AL")
    closed = await make_warehouse(session, "BJ-AL", is_active=False)
    nuts = await make_product(session, "坚果礼盒", sku="NUTS", stock={"SH-AL": 0})
    [nuts_a, nuts_b, nuts_c, nuts_d] = await add_variants(
        session,
        nuts,
        {"口味": ["原味", "奶油", "盐焗", "椒盐"]},
        [
            ({"口味": "奶油"}, "NUTS-CREAM", "59.00", [(warehouse, 5)]),
            ({"口味": "盐焗"}, "NUTS-SALT", "59.00", [(warehouse, 0), (closed, 9)]),
            ({"口味": "椒盐"}, "NUTS-PEPPER", "59.00", [(warehouse, 0)]),
        ],
    )
    old = await make_product(session, "旧款", sku="OLD", stock={"SH-AL": 0}, is_active=False)
    [old_variant] = (
        (await session.execute(select(ProductVariant).where(ProductVariant.product_id == old.id)))
        .scalars()
        .all()
    )
    await _sell(session, nuts_a, 3, now - timedelta(days=2))  # sold, none left: out
    await _sell(session, nuts_a, 1, now - timedelta(days=6, hours=23))
    await _sell(session, nuts_b, 2, now - timedelta(days=1))  # 5 left
    await _sell(session, nuts_c, 1, now - timedelta(days=3))  # 9 only in a closed warehouse
    await _sell(session, nuts_d, 4, now - timedelta(days=8))  # out, but sold before the week
    await _sell(session, nuts_d, 2, now - timedelta(days=1), OrderStatus.CANCELLED)
    await _sell(session, nuts_d, 2, now + timedelta(hours=6))  # after the moments evaluated
    await _sell(session, old_variant, 1, now - timedelta(days=1))  # no longer sold
    await session.commit()

    runtime = runtime_of(settings)
    report = await alerts.evaluate(sessions, settings, runtime, as_of=now)
    assert report.stock_outs == 2
    found = await all_alerts(sessions)
    assert [(a.variant_id, a.product_id, a.value, a.expected) for a in found] == [
        (nuts_a.id, nuts.id, 0.0, 4.0),
        (nuts_c.id, nuts.id, 0.0, 1.0),
    ]
    first = found[0]
    assert first.key == f"stock_out:{nuts_a.id}:2026-03-11" and first.kind is AlertKind.STOCK_OUT
    assert (first.bucket_start, first.bucket_end) == (date(2026, 3, 11), date(2026, 3, 12))
    assert first.direction is AlertDirection.DOWN and first.bad_news and first.kpi_key is None
    assert first.message == (
        "Out of stock: 坚果礼盒 (NUTS) sold 4 in the last 7 days and has none left to sell"
    )
    # Once a day: later that day nothing new; the next (shop) day again, while it lasts. A day
    # later the sale of 6 days 23 hours before has left the week, and the pepper nuts' order
    # placed after the first evaluation has entered it.
    later = await alerts.evaluate(sessions, settings, runtime, as_of=now + timedelta(hours=5))
    assert later.stock_outs == 0
    next_day = await alerts.evaluate(sessions, settings, runtime, as_of=now + timedelta(days=1))
    assert next_day.stock_outs == 3
    again = [a for a in await all_alerts(sessions) if a.bucket_start == date(2026, 3, 12)]
    assert [(a.variant_id, a.expected) for a in again] == [
        (nuts_a.id, 3.0),
        (nuts_c.id, 1.0),
        (nuts_d.id, 2.0),
    ]
    assert len(await all_alerts(sessions)) == 5


# --- rules refused ------------------------------------------------------------------------------


async def test_rules_refused_with_typed_errors_write_nothing(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from server.services.kpi_registry import registered_kpis

    kpis = registered_kpis(runtime_of(settings, shop_plugin()))
    base: dict[str, Any] = {
        "name": "慢",
        "kpi": "shop.orders",
        "granularity": G.DAY,
        "condition": C.BELOW,
        "threshold": 10.0,
        "actor": "staff:1",
    }
    cases: list[tuple[dict[str, Any], type[ValidationFailed], str]] = [
        ({"kpi": "no_such_kpi"}, UnknownKpi, "kpi"),
        ({"kpi": "x" * 500}, UnknownKpi, "kpi"),
        (
            {"kpi": "shop.refund_rate", "condition": C.ABOVE, "threshold": 10},
            InvalidThreshold,
            "threshold",
        ),
        ({"name": "  "}, ValidationFailed, "name"),
        ({"name": "名" * 201}, ValidationFailed, "name"),
    ]
    for change, error, field in cases:
        async with sessions() as s:
            with pytest.raises(error) as refused:
                await alerts.create_rule(s, kpis, **(base | change))
            await s.rollback()
        assert refused.value.field == field
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(AlertRule)) == 0
        rule = await alerts.create_rule(s, kpis, **base)
        await s.commit()
        assert rule.id is not None
        # Changed whole: a new KPI is checked against the threshold kept.
        with pytest.raises(InvalidThreshold):
            await alerts.update_rule(s, kpis, rule.id, kpi="shop.refund_rate")
        await s.rollback()
        stored = await s.get(AlertRule, rule.id, populate_existing=True)
        assert stored is not None and (stored.kpi_key, stored.threshold) == ("shop.orders", 10)
        moved = await alerts.update_rule(s, kpis, rule.id, kpi="shop.refund_rate", threshold=0.2)
        await s.commit()
        assert (moved.kpi_key, moved.threshold, moved.condition) == (
            "shop.refund_rate",
            0.2,
            C.BELOW,
        )
        # A rule whose KPI is gone may still be paused.
        paused = await alerts.update_rule(s, {}, rule.id, enabled=False, name="停")
        await s.commit()
        assert (paused.enabled, paused.name) == (False, "停")
        with pytest.raises(NotFound):
            await alerts.update_rule(s, kpis, rule.id + 100, enabled=True)


async def test_a_failing_kpi_skips_its_rules_not_the_others(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        await session.execute(text("SELECT missing FROM no_such_table"))
        return [None for _ in buckets]

    async def short(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [1.0]

    plugin = FakePlugin(
        "shop",
        kpis=lambda: [
            Kpi("shop.broken", "Broken", KpiUnit.COUNT, broken),
            Kpi("shop.short", "Short", KpiUnit.COUNT, short),
            Kpi("shop.orders", "Orders", KpiUnit.COUNT, day_sums(ORDERS)),
        ],
    )
    runtime = runtime_of(settings, plugin)
    from server.services.kpi_registry import registered_kpis

    kpis = registered_kpis(runtime)
    async with sessions() as s:
        for key in ("shop.broken", "shop.short", "shop.orders"):
            await alerts.create_rule(
                s,
                kpis,
                name=key,
                kpi=key,
                granularity=G.DAY,
                condition=C.ABOVE,
                threshold=0,
                actor="staff:1",
            )
        await s.commit()
    report = await alerts.evaluate(sessions, settings, runtime, as_of=AS_OF)
    # The orders' rule: March 10 and today so far; the broken KPIs' rules nothing.
    assert report.thresholds == 2
    assert {a.kpi_key for a in await all_alerts(sessions)} == {"shop.orders"}
    logged = [r.getMessage() for r in caplog.records if r.name == "shopgraph.alerts"]
    assert "KPI shop.broken failed to compute; skipped" in logged
    assert "KPI shop.short gave 1 values for 3 periods; skipped" in logged


async def test_the_core_alerts_job_evaluates_as_of_now(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async def ten(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        return [10.0 * (b.end - b.start).days for b in buckets]

    plugin = FakePlugin("shop", kpis=lambda: [Kpi("shop.ten", "Ten", KpiUnit.COUNT, ten)])
    runtime = runtime_of(settings, plugin)
    from server.jobs import JobRunner
    from server.services.kpi_registry import registered_kpis

    async with sessions() as s:
        await alerts.create_rule(
            s,
            registered_kpis(runtime),
            name="ten a day",
            kpi="shop.ten",
            granularity=G.DAY,
            condition=C.ABOVE,
            threshold=5,
            actor="staff:1",
        )
        await s.commit()
    ran = await JobRunner(sessions, settings, runtime).run_once(only="core.alerts")
    assert ran.ran == ["core.alerts"] and not ran.failed
    today = shop_day(utcnow())
    found = await all_alerts(sessions)
    assert [a.bucket_start for a in found] == [today - timedelta(days=1), today]
