"""The job ``logistics.delays`` on SQLite and PostgreSQL: LATE past the promise's last day,
AT_RISK when the revised probability reaches the threshold; one delay, one alert and one
compensation coupon per shipment, also when two runs race; without the promotions plugin the
claim is made, nothing is given, and it is not asked again."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import Delay, DelayKind, TrackedShipment
from plugins.logistics.service.delays import find_delays, today_in
from plugins.logistics.service.settings import LogisticsSettings
from plugins.promotions.models import CouponCode
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import Alert, AlertKind, Shipment, ShipmentStatus
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.logistics.tracking_support import make_network, shipped_order
from tests.support.accounts import make_customer

CONFIG = LogisticsSettings(compensation_amount=800)


async def _probability(session: AsyncSession, shipment_id: int, p: float) -> None:
    await session.execute(
        update(TrackedShipment)
        .where(col(TrackedShipment.shipment_id) == shipment_id)
        .values(late_probability=p)
    )
    await session.commit()


async def _delays(session: AsyncSession) -> dict[int, Delay]:
    await session.commit()
    rows = await session.scalars(select(Delay).execution_options(populate_existing=True))
    return {row.shipment_id: row for row in rows}


async def _count(session: AsyncSession, model: type, *where: object) -> int:
    await session.commit()
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_late_and_at_risk_shipments_are_found_and_compensated_once(
    database_url: str, session: AsyncSession, plugins: PluginRuntime
) -> None:
    net = await make_network(session)
    customer = await make_customer(session)
    today = today_in(CONFIG.timezone)
    _, late, _ = await shipped_order(
        session, plugins, net, latest=today - timedelta(days=1), customer_id=customer.id
    )
    _, risky, _ = await shipped_order(
        session, plugins, net, latest=today + timedelta(days=1), customer_id=customer.id
    )
    _, fine, _ = await shipped_order(
        session, plugins, net, latest=today + timedelta(days=1), customer_id=customer.id
    )
    await _probability(session, risky, 0.5)  # the threshold itself: at risk
    await _probability(session, fine, 0.49)

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        first = await find_delays(sessions, plugins, CONFIG)
        assert (first.late, first.at_risk) == ([late], [risky])
        code = first.compensated[late]
        assert code is not None and set(first.compensated) == {late}

        delays = await _delays(session)
        assert set(delays) == {late, risky}
        assert (delays[late].kind, delays[late].compensation_ref) == (DelayKind.LATE, code)
        assert delays[late].promised_by == today - timedelta(days=1)
        assert (delays[risky].kind, delays[risky].compensated_at) == (DelayKind.AT_RISK, None)
        coupon = await session.scalar(
            select(CouponCode).where(col(CouponCode.source_ref) == f"shipment-delay:{late}")
        )
        assert coupon is not None
        assert (coupon.code, coupon.amount_off, coupon.customer_id) == (code, 800, customer.id)
        keys = set(
            await session.scalars(select(Alert.key).where(col(Alert.kind) == AlertKind.PLUGIN))
        )
        assert keys == {
            f"plugin:logistics:delay:{late}:LATE",
            f"plugin:logistics:delay:{risky}:AT_RISK",
        }

        # Again: nothing new. Two days on both others are past their promise: LATE (the risky
        # one worsened), each compensated once.
        again = await find_delays(sessions, plugins, CONFIG)
        assert (again.late, again.at_risk, again.compensated) == ([], [], {})
        tomorrow = await find_delays(
            sessions, plugins, CONFIG, now=_shop_noon(today + timedelta(days=2))
        )
        assert tomorrow.late == [risky, fine] and set(tomorrow.compensated) == {risky, fine}
        delays = await _delays(session)
        assert delays[risky].kind is DelayKind.LATE and delays[risky].became_late_at is not None
        assert await _count(session, CouponCode, col(CouponCode.source_ref).is_not(None)) == 3
        assert await _count(session, Alert, col(Alert.kind) == AlertKind.PLUGIN) == 4

        # Delivered: the delay is resolved and no longer looked at.
        await mark_write(session)
        await session.execute(
            update(Shipment).where(col(Shipment.id) == late).values(status=ShipmentStatus.DELIVERED)
        )
        await session.commit()
        done = await find_delays(sessions, plugins, CONFIG)
        assert done.resolved == 1
        assert (await _delays(session))[late].resolved_at is not None
    finally:
        await engine.dispose()


def _shop_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 4, tzinfo=UTC)  # 12:00 in Shanghai


async def test_two_runs_at_once_compensate_once(
    database_url: str, session: AsyncSession, plugins: PluginRuntime
) -> None:
    net = await make_network(session)
    customer = await make_customer(session)
    today = today_in(CONFIG.timezone)
    _, late, _ = await shipped_order(
        session, plugins, net, latest=today - timedelta(days=2), customer_id=customer.id
    )
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        reports = await asyncio.gather(
            *(find_delays(session_factory(e), plugins, CONFIG) for e in engines)
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(len(r.late) for r in reports) == [0, 1]
    assert sorted(len(r.compensated) for r in reports) == [0, 1]
    assert await _count(session, Delay) == 1
    assert (
        await _count(session, CouponCode, col(CouponCode.source_ref) == f"shipment-delay:{late}")
        == 1
    )
    assert await _count(session, Alert, col(Alert.kind) == AlertKind.PLUGIN) == 1
    assert (await _delays(session))[late].compensation_ref is not None


async def test_without_promotions_the_claim_stays_empty_and_is_not_retried(
    database_url: str, session: AsyncSession, settings: Settings
) -> None:
    plugins = load_plugins(settings.model_copy(update={"disabled_plugins": "promotions"}))
    net = await make_network(session)
    customer = await make_customer(session)
    today = today_in(CONFIG.timezone)
    _, late, _ = await shipped_order(
        session, plugins, net, latest=today - timedelta(days=1), customer_id=customer.id
    )
    engine = create_engine(database_url)
    try:
        first = await find_delays(session_factory(engine), plugins, CONFIG)
        assert first.compensated == {late: None}
        delay = (await _delays(session))[late]
        assert delay.compensated_at is not None and delay.compensation_ref is None
        again = await find_delays(session_factory(engine), plugins, CONFIG)
        assert again.compensated == {}
        # Off: nothing is claimed at all.
        off = await find_delays(
            session_factory(engine), plugins, CONFIG.model_copy(update={"auto_compensation": False})
        )
        assert off.compensated == {}
    finally:
        await engine.dispose()
    assert await _count(session, CouponCode) == 0
