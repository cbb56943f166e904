"""Competitor monitoring's service: GTIN normalisation and matching, deduplication, the
undercut threshold's edges, the robust z-score on hand-computed data, alerts raised once (also
under concurrent imports), the alert state machine, the KPIs and the demo."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import (
    Competitor,
    CompetitorPrice,
    ObservationSource,
    PriceAlert,
    PriceAlertKind,
    PriceAlertState,
)
from plugins.pricing.service import competitors
from plugins.pricing.service.competitors import (
    AlreadyHandled,
    BadPrices,
    PriceRow,
    UnmatchedReason,
    gtin_forms,
    normalise_gtin,
    robust_z,
    undercuts,
)
from plugins.pricing.service.settings import PricingSettings
from server.db import create_engine, mark_write, session_factory
from server.models import OutboxEvent
from server.plugin import DemoShop, KpiBucket, NotFound, ValidationFailed
from tests.plugins.pricing.competitor_shop import EAN13, UNKNOWN_EAN, UPC_A, make_catalogue

CONFIG = PricingSettings(undercut_alert_bp=500, abnormal_move_z=3.5, abnormal_min_observations=5)
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    """``n`` days before NOW."""
    return NOW - timedelta(days=n)


def row(amount: int, at: datetime = NOW, *, gtin: str | None = None, sku: str | None = None,
        currency: str = "CNY") -> PriceRow:  # fmt: skip
    return PriceRow(amount=amount, currency=currency, observed_at=at, gtin=gtin, sku=sku)


async def record(session: AsyncSession, rows: list[PriceRow], name: str = "京东自营",
                 at: datetime = NOW) -> competitors.Recorded:  # fmt: skip
    await mark_write(session)
    done = await competitors.record_prices(session, CONFIG, name, rows, ObservationSource.API, at)
    await session.commit()
    return done


async def count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- pure functions ---------------------------------------------------------------------------


def test_gtins_normalise_to_their_fourteen_digit_form() -> None:
    assert normalise_gtin(EAN13) == "0" + EAN13
    assert normalise_gtin(" 4006381 333931\t") == "0" + EAN13  # blanks inside and around
    assert normalise_gtin("400-6381-333931") == "0" + EAN13
    # A UPC-A, the same item as a GTIN-14 and with its leading zero eaten by a spreadsheet.
    assert normalise_gtin(UPC_A) == "00" + UPC_A
    assert normalise_gtin("00" + UPC_A) == "00" + UPC_A
    assert normalise_gtin(UPC_A.lstrip("0")) == "00" + UPC_A
    # A wrong check digit, letters, too short or too long: not a GTIN.
    assert normalise_gtin("4006381333932") is None
    assert normalise_gtin("40063813339X1") is None
    assert normalise_gtin("1234567") is None
    assert normalise_gtin("0" * 14 + "1") is None
    # Each length a stored barcode may have.
    assert gtin_forms("00" + UPC_A) == [UPC_A, "0" + UPC_A, "00" + UPC_A]
    assert gtin_forms("000000" + "96385074") == ["96385074", "000096385074",
                                                  "0000096385074", "00000096385074"]  # fmt: skip


def test_an_undercut_exactly_at_the_threshold_does_not_fire() -> None:
    # 5% of 100.00 is 5.00: 95.00 is exactly at it, 94.99 past it.
    assert not undercuts(10000, 9500, 500)
    assert undercuts(10000, 9499, 500)
    # 5% of 19.99 is 0.9995: 19.00 is 0.99 below (not more), 18.99 is 1.00 below (more).
    assert not undercuts(1999, 1900, 500)
    assert undercuts(1999, 1899, 500)
    # Dearer or equal never fires, nor does a threshold of 0 for an equal price.
    assert not undercuts(10000, 10000, 0)
    assert undercuts(10000, 9999, 0)
    assert not undercuts(10000, 12000, 500)


def test_robust_z_on_hand_computed_data() -> None:
    history = [100, 102, 98, 101, 99, 100, 103]
    # median 100; |x − 100| = 0 2 2 1 1 0 3 → sorted 0 0 1 1 2 2 3 → MAD 1.
    assert robust_z(110, history) == pytest.approx(0.6745 * 10 / 1)
    assert robust_z(105, history) == pytest.approx(3.3725)
    assert robust_z(95, history) == pytest.approx(-3.3725)
    # MAD 0 (most prices equal): the mean absolute deviation, 4/5 = 0.8, stands in.
    assert robust_z(110, [100, 100, 100, 100, 104]) == pytest.approx(10 / (1.253314 * 0.8))
    # A price that never moved: no move is 0, any move infinitely far.
    assert robust_z(100, [100] * 5) == 0
    assert robust_z(101, [100] * 5) == math.inf
    assert robust_z(99, [100] * 5) == -math.inf


# --- matching -----------------------------------------------------------------------------------


async def test_rows_match_by_gtin_or_sku_and_the_rest_say_why(session: AsyncSession) -> None:
    shop = await make_catalogue(session)
    rows = [
        row(9000, day(1), gtin=f" {EAN13} "),  # 1: the EAN-13, blanks around
        row(4500, day(1), gtin="00" + UPC_A),  # 2: the UPC-A as a GTIN-14
        row(4400, day(2), gtin=UPC_A.lstrip("0")),  # 3: the UPC-A without its leading 0
        row(7000, day(1), sku=" sku-single "),  # 4: a single-variant product's sku
        row(5000, day(1), sku="SKU-MULTI"),  # 5: a product with two variants
        row(5000, day(1), sku="sku-multi-b"),  # 6: a variant's sku
        row(9000, day(1), gtin="4006381333932"),  # 7: wrong check digit
        row(9000, day(1), gtin=UNKNOWN_EAN),  # 8: nobody's GTIN
        row(9000, day(1), sku="NOPE"),  # 9
        row(9000, day(1)),  # 10: nothing to go by
        row(9000, day(1), gtin=EAN13, sku="SKU-SINGLE"),  # 11: they name two variants
        row(9000, day(3), gtin=EAN13, currency="USD"),  # 12: not our currency
        row(5000, day(2), gtin=UNKNOWN_EAN, sku="SKU-MULTI-B"),  # 13: the sku rescues it
        row(5000, day(3), gtin=EAN13, sku="SKU-MULTI"),  # 14: the gtin settles an ambiguity
    ]
    done = await record(session, rows)
    why = {u.row: u.reason for u in done.unmatched}
    assert why == {
        5: UnmatchedReason.AMBIGUOUS_SKU,
        7: UnmatchedReason.INVALID_GTIN,
        8: UnmatchedReason.UNKNOWN_GTIN,
        9: UnmatchedReason.UNKNOWN_SKU,
        10: UnmatchedReason.NO_IDENTIFIER,
        11: UnmatchedReason.IDENTIFIERS_DISAGREE,
        12: UnmatchedReason.CURRENCY_MISMATCH,
    }
    assert all(u.message for u in done.unmatched)
    assert (done.recorded, done.duplicates) == (7, 0)
    stored = sorted(
        (p.variant_id, p.amount) for p in await session.scalars(select(CompetitorPrice))
    )
    assert stored == sorted(
        [
            (shop.ean_variant, 9000),  # 1
            (shop.upc_variant, 4500),  # 2
            (shop.upc_variant, 4400),  # 3
            (shop.single_variant, 7000),  # 4
            (shop.blue_variant, 5000),  # 6
            (shop.blue_variant, 5000),  # 13, another day
            (shop.ean_variant, 5000),  # 14
        ]
    )


async def test_bad_input_refuses_the_call_and_writes_nothing(session: AsyncSession) -> None:
    await make_catalogue(session)
    cases = [
        ([], "EMPTY_LIST", "prices"),
        ([row(0, gtin=EAN13)], "BAD_AMOUNT", "prices[0].amount"),
        ([row(100, gtin=EAN13), row(-5, gtin=EAN13)], "BAD_AMOUNT", "prices[1].amount"),
        ([row(100, gtin=EAN13, currency="RMB1")], "BAD_CURRENCY", "prices[0].currency"),
        ([row(100, NOW + timedelta(days=2), gtin=EAN13)], "BAD_OBSERVED_AT", None),
        ([row(100, gtin="1" * 40)], "BAD_IDENTIFIER", "prices[0].gtin"),
        ([row(100, gtin=EAN13)] * (competitors.MAX_ROWS + 1), "TOO_MANY_ROWS", "prices"),
    ]
    for rows, code, where in cases:
        with pytest.raises(BadPrices) as refused:
            await record(session, rows)
        await session.rollback()
        assert refused.value.code == code
        if where is not None:
            assert refused.value.field == where
    with pytest.raises(BadPrices):
        await record(session, [row(100, gtin=EAN13)], name="  ")
    await session.rollback()
    assert await count(session, CompetitorPrice) == 0
    assert await count(session, Competitor) == 0


# --- dedupe ---------------------------------------------------------------------------------------


async def test_the_same_prices_twice_are_recorded_once(session: AsyncSession) -> None:
    await make_catalogue(session)
    rows = [row(9800, day(2), gtin=EAN13), row(9900, day(1), gtin=EAN13), row(4900, sku="SKU-UPC")]
    first = await record(session, [*rows, rows[0]])  # a sighting twice in one call too
    assert (first.recorded, first.duplicates) == (3, 1)
    again = await record(session, rows)
    assert (again.recorded, again.duplicates, again.unmatched) == (0, 3, [])
    assert await count(session, CompetitorPrice) == 3
    # The competitor was made once, whatever the spelling of blanks.
    await record(session, [row(9700, day(3), gtin=EAN13)], name=" 京东自营  ")
    assert await count(session, Competitor) == 1


# --- alerts ---------------------------------------------------------------------------------------


async def alerts(session: AsyncSession) -> list[PriceAlert]:
    session.expire_all()
    return list(await session.scalars(select(PriceAlert).order_by(PriceAlert.id)))


async def test_an_undercut_fires_past_the_threshold_once_while_open(session: AsyncSession) -> None:
    shop = await make_catalogue(session)  # our EAN product sells at 100.00
    at_threshold = await record(session, [row(9500, day(3), gtin=EAN13)])
    assert at_threshold.alert_ids == []
    past = await record(session, [row(9499, day(2), gtin=EAN13)])
    assert len(past.alert_ids) == 1
    [alert] = await alerts(session)
    assert (alert.kind, alert.state, alert.open) == (
        PriceAlertKind.UNDERCUT,
        PriceAlertState.OPEN,
        1,
    )
    assert (alert.our_amount, alert.their_amount, alert.variant_id) == (
        10000,
        9499,
        shop.ean_variant,
    )
    assert alert.product_id == shop.ean
    events = list(
        await session.scalars(select(OutboxEvent).where(OutboxEvent.name == "pricing_alert_raised"))
    )
    assert [e.payload["alert_id"] for e in events] == [alert.id]
    assert events[0].payload["kind"] == "UNDERCUT"
    # Still cheaper the next day: the open alert stands for it, nothing new.
    assert (await record(session, [row(9000, day(1), gtin=EAN13)])).alert_ids == []
    # An older sighting arriving late is history: no alert from it.
    await competitors.acknowledge(session, alert.id or 0, "staff:1", "看到了")
    await session.commit()
    assert (await record(session, [row(8000, day(5), gtin=EAN13)])).alert_ids == []
    # Handled, the slot is free: the next undercut fires again.
    again = await record(session, [row(9000, NOW, gtin=EAN13)])
    assert len(again.alert_ids) == 1
    assert [a.state for a in await alerts(session)] == [
        PriceAlertState.ACKNOWLEDGED,
        PriceAlertState.OPEN,
    ]


async def test_an_abnormal_move_is_a_robust_z_past_the_setting(session: AsyncSession) -> None:
    shop = await make_catalogue(session)  # SKU-SINGLE sells at 80.00: their prices are dearer
    history = [10000, 10200, 9800, 10100, 9900]  # median 10000, MAD 100
    rows = [row(a, day(10 - i), sku="SKU-SINGLE") for i, a in enumerate(history)]
    assert (await record(session, rows)).alert_ids == []
    # 105.00: z = 0.6745 · 500 / 100 = 3.37, under 3.5.
    assert (await record(session, [row(10500, day(4), sku="SKU-SINGLE")])).alert_ids == []
    # Now six prices (10500 among them): median 10050, |x − m| 50 150 250 50 150 450 → MAD 150;
    # 110.00: z = 0.6745 · 950 / 150 = 4.27 > 3.5.
    moved = await record(session, [row(11000, day(3), sku="SKU-SINGLE")])
    [alert] = await alerts(session)
    assert moved.alert_ids == [alert.id]
    assert (alert.kind, alert.their_amount, alert.variant_id) == (
        PriceAlertKind.ABNORMAL_MOVE,
        11000,
        shop.single_variant,
    )
    assert "+4.3" in alert.detail
    # Prices older than the window do not count: with one in it, nothing fires.
    fresh = await record(
        session,
        [row(a, day(70 - i), sku="SKU-EAN") for i, a in enumerate([12000] * 5)]
        + [row(12000, day(30), sku="SKU-EAN"), row(20000, day(2), sku="SKU-EAN")],
        name="天猫",
    )
    assert fresh.alert_ids == []


async def test_too_few_prices_never_fire_an_abnormal_move(session: AsyncSession) -> None:
    await make_catalogue(session)
    rows = [row(10000, day(5 - i), sku="SKU-SINGLE") for i in range(4)]
    rows.append(row(30000, NOW, sku="SKU-SINGLE"))
    assert (await record(session, rows)).alert_ids == []


async def test_concurrent_imports_raise_one_alert(database_url: str, session: AsyncSession) -> None:
    shop = await make_catalogue(session)
    await session.commit()  # end the read transaction: count what the imports wrote
    engines = [create_engine(database_url) for _ in range(4)]
    # Each import its own file: a shared sighting, and one of its own, every one an undercut.
    files = [
        [row(8000, day(1), gtin=EAN13), row(8100 + n, day(2) + timedelta(minutes=n), gtin=EAN13)]
        for n in range(4)
    ]

    async def run(n: int) -> competitors.Recorded:
        async with session_factory(engines[n])() as s:
            await mark_write(s)
            done = await competitors.record_prices(
                s, CONFIG, "拼多多", files[n], ObservationSource.WEBHOOK, NOW
            )
            await s.commit()
            return done

    try:
        results = await asyncio.gather(*(run(n) for n in range(4)))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(len(r.alert_ids) for r in results) == 1
    assert sum(r.recorded for r in results) == 5  # the shared sighting once, four of their own
    assert sum(r.duplicates for r in results) == 3
    assert await count(session, Competitor) == 1
    [alert] = await alerts(session)
    assert (alert.kind, alert.variant_id) == (PriceAlertKind.UNDERCUT, shop.ean_variant)
    raised = await session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.name == "pricing_alert_raised")
    )
    assert raised == 1


# --- the state machine ------------------------------------------------------------------------------


async def test_acknowledge_then_act_and_nothing_twice(session: AsyncSession) -> None:
    await make_catalogue(session)
    await record(session, [row(5000, day(1), gtin=EAN13)])
    await record(session, [row(2000, day(1), gtin=UPC_A)])
    first_id, second_id = [a.id or 0 for a in await alerts(session)]

    acked = await competitors.acknowledge(session, first_id, "staff:7", "在看")
    await session.commit()
    assert (acked.state, acked.handled_by, acked.note, acked.open) == (
        PriceAlertState.ACKNOWLEDGED, "staff:7", "在看", None,
    )  # fmt: skip
    with pytest.raises(AlreadyHandled):
        await competitors.acknowledge(session, first_id, "staff:8")
    await session.rollback()
    # A note too long changes nothing.
    with pytest.raises(ValidationFailed):
        await competitors.act(session, first_id, "staff:8", "长" * 501)
    await session.rollback()
    assert (await alerts(session))[0].state is PriceAlertState.ACKNOWLEDGED
    acted = await competitors.act(session, first_id, "staff:8", "已跟价")
    await session.commit()
    assert (acted.state, acted.handled_by, acted.note) == (
        PriceAlertState.ACTED,
        "staff:8",
        "已跟价",
    )
    for step in (competitors.acknowledge, competitors.act):
        with pytest.raises(AlreadyHandled) as refused:
            await step(session, first_id, "staff:9", "")
        await session.rollback()
        assert refused.value.code == "ALREADY_HANDLED"
    # OPEN straight to ACTED is allowed.
    assert (await competitors.act(session, second_id, "staff:7")).state is PriceAlertState.ACTED
    await session.commit()
    with pytest.raises(NotFound):
        await competitors.acknowledge(session, 987654, "staff:7")
    await session.rollback()
    final = await alerts(session)
    assert [(a.state, a.handled_by) for a in final] == [
        (PriceAlertState.ACTED, "staff:8"),
        (PriceAlertState.ACTED, "staff:7"),
    ]


# --- KPIs and the demo ---------------------------------------------------------------------------


async def test_undercut_kpis_count_per_shop_day(session: AsyncSession) -> None:
    await make_catalogue(session)
    # 2026-03-09 20:00 UTC is 2026-03-10 04:00 in the shop's day (UTC+8).
    late = datetime(2026, 3, 9, 20, 0, tzinfo=UTC)
    await record(session, [row(5000, late - timedelta(hours=1), gtin=EAN13)], at=late)
    await record(session, [row(2000, late, gtin=UPC_A)], at=late)
    await record(session, [row(9999, late, sku="SKU-SINGLE")], at=late)  # dearer than ours
    buckets = [
        KpiBucket(date(2026, 3, 9), date(2026, 3, 10)),
        KpiBucket(date(2026, 3, 10), date(2026, 3, 11)),
    ]
    assert await competitors.undercut_alerts(session, buckets) == [0.0, 2.0]
    # Three products seen on the 10th (shop day), two undercut.
    assert await competitors.undercut_share(session, buckets) == [None, pytest.approx(2 / 3)]
    assert {k.key for k in competitors.kpis()} == {
        "pricing.competitor_undercuts",
        "pricing.undercut_share",
    }


async def test_the_demo_shows_two_competitors_and_both_alert_kinds(session: AsyncSession) -> None:
    shop = await make_catalogue(session)
    demo_shop = DemoShop(
        seed=1, as_of=NOW, product_ids=(shop.ean, shop.upc, shop.single, shop.multi)
    )
    counts = await competitors.demo(session, demo_shop, random.Random(3), CONFIG, lambda _: None)
    await session.commit()
    assert await count(session, Competitor) == 2
    kinds = sorted(a.kind.value for a in await alerts(session))
    assert kinds == ["ABNORMAL_MOVE", "UNDERCUT"]
    assert counts == {"competitor prices": await count(session, CompetitorPrice), "price alerts": 2}
