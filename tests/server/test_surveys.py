"""Satisfaction surveys, the service: one survey per trigger and subject (also when triggers
race), who gets none, the periodic NPS job, and the figures — CSAT, NPS, response rates per
group and as KPIs — on answers worked out by hand. The GraphQL side and the triggers firing
through real events are in tests/schema/test_surveys.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import (
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    OutboxEvent,
    Survey,
    SurveyKind,
    SurveyState,
    SurveyTrigger,
)
from server.plugin import KpiBucket, request_survey
from server.plugins import load_plugins
from server.services import surveys, variants
from server.services.errors import NotFound, ValidationFailed
from server.services.kpi_registry import registered_kpis
from tests.support.accounts import make_customer
from tests.support.catalog import make_category, make_product

_numbers = itertools.count(1)
NOW = datetime(2026, 6, 30, 4, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _order(
    session: AsyncSession,
    customer: Customer,
    *,
    paid_at: datetime | None = None,
    status: OrderStatus = OrderStatus.COMPLETED,
) -> Order:
    order = Order(
        number=f"SG-SURVEY-{next(_numbers):05d}",
        customer_id=customer.id,
        email=customer.email,
        status=status,
        total_amount=9900,
        subtotal_amount=9900,
        placed_at=paid_at or NOW,
        paid_at=paid_at,
    )
    session.add(order)
    await session.commit()
    return order


async def _survey(
    session: AsyncSession,
    customer: Customer,
    *,
    sent_at: datetime,
    kind: SurveyKind = SurveyKind.CSAT,
    trigger: SurveyTrigger = SurveyTrigger.DELIVERY,
    score: int | None = None,
    state: SurveyState | None = None,
    carrier: str | None = None,
    order: Order | None = None,
) -> Survey:
    """A survey as sent at ``sent_at``: answered when it has a score."""
    survey = Survey(
        customer_id=customer.id,  # type: ignore[arg-type]  # a stored row has its id
        kind=kind,
        trigger=trigger,
        subject_key=f"test:{next(_numbers)}",
        order_id=order.id if order is not None else None,
        carrier=carrier,
        state=state or (SurveyState.ANSWERED if score is not None else SurveyState.SENT),
        sent_at=sent_at,
        expires_at=sent_at + timedelta(days=14),
        answered_at=sent_at + timedelta(hours=2) if score is not None else None,
        score=score,
    )
    session.add(survey)
    await session.commit()
    return survey


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    await session.commit()  # a fresh snapshot
    found = int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    await session.commit()
    return found


# --- one survey per trigger and subject ------------------------------------------------------


async def test_racing_triggers_leave_one_survey(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    """Eight processes' worth of the same trigger at once: one survey, one survey_sent."""
    customer = await make_customer(session)
    customer_id = customer.id
    assert customer_id is not None

    async def ask() -> bool:
        async with sessions() as s:
            await mark_write(s)
            sent = await request_survey(
                s,
                customer_id=customer_id,
                trigger=SurveyTrigger.SERVICE_CONTACT,
                subject_key="complaints:42",
            )
            await s.commit()
            return sent is not None

    outcomes = await asyncio.gather(*(ask() for _ in range(8)))
    assert sorted(outcomes) == [False] * 7 + [True]
    assert await _count(session, Survey) == 1
    assert await _count(session, OutboxEvent, OutboxEvent.name == surveys.SENT_EVENT) == 1
    [survey] = (await session.execute(select(Survey))).scalars().all()
    assert (survey.trigger, survey.subject_key, survey.kind) == (
        SurveyTrigger.SERVICE_CONTACT,
        "complaints:42",
        SurveyKind.CSAT,
    )
    assert survey.state is SurveyState.SENT
    assert survey.expires_at - survey.sent_at == timedelta(days=14)
    # The same subject under another trigger is another survey.
    async with sessions() as s:
        await mark_write(s)
        other = await request_survey(
            s,
            customer_id=customer_id,
            trigger=SurveyTrigger.RETURN,
            subject_key="complaints:42",
            kind=SurveyKind.NPS,
        )
        await s.commit()
    assert other is not None and other.kind is SurveyKind.NPS


async def test_opted_out_and_erased_customers_get_no_survey(session: AsyncSession) -> None:
    opted_out = await make_customer(session, surveys_opt_out=True)
    erased = await make_customer(session, is_active=False)
    welcome = await make_customer(session)
    stranger = await make_customer(session)
    theirs = await _order(session, stranger, paid_at=NOW)
    ids = [c.id for c in (opted_out, erased, welcome)]
    theirs_id = theirs.id

    async def ask(customer_id: int | None, key: str, **extra: Any) -> Survey | None:
        assert customer_id is not None
        return await request_survey(
            session,
            customer_id=customer_id,
            trigger=SurveyTrigger.SERVICE_CONTACT,
            subject_key=key,
            **extra,
        )

    await mark_write(session)
    assert await ask(ids[0], "chat:1") is None
    assert await ask(ids[1], "chat:2") is None
    sent = await ask(ids[2], "  chat:3 ")
    assert sent is not None and sent.subject_key == "chat:3"
    with pytest.raises(NotFound):
        await ask(987654, "chat:4")
    with pytest.raises(ValidationFailed):
        await ask(ids[2], "   ")
    with pytest.raises(ValidationFailed):
        await ask(ids[2], "x" * 121)
    with pytest.raises(ValidationFailed):
        await ask(ids[2], "chat:5", order_id=theirs_id)
    await session.commit()
    assert await _count(session, Survey) == 1


# --- the periodic job ------------------------------------------------------------------------


async def test_the_periodic_nps_goes_to_recent_buyers_not_asked_lately(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    days = timedelta(days=1)
    nps = SurveyKind.NPS
    made: dict[str, int] = {}
    for name, options in {
        "recent": {},
        "long_ago": {},
        "asked_lately": {},
        "asked_long_ago": {},
        "cancelled": {},
        "opted_out": {"surveys_opt_out": True},
        "erased": {"is_active": False},
        "had_a_csat": {},
    }.items():
        customer = await make_customer(session, **options)
        assert customer.id is not None
        made[name] = customer.id
        paid = NOW - (100 if name == "long_ago" else 10) * days
        status = OrderStatus.CANCELLED if name == "cancelled" else OrderStatus.COMPLETED
        await _order(session, customer, paid_at=paid, status=status)
        if name == "asked_lately":
            await _survey(session, customer, sent_at=NOW - 100 * days, kind=nps, score=8)
        if name == "asked_long_ago":
            await _survey(session, customer, sent_at=NOW - 200 * days, kind=nps, score=8)
        if name == "had_a_csat":
            await _survey(session, customer, sent_at=NOW - 10 * days, score=5)
    due = sorted(made[n] for n in ("recent", "asked_long_ago", "had_a_csat"))
    # One open survey past its time, one still running.
    stale = await _survey(session, await make_customer(session), sent_at=NOW - 15 * days)
    fresh = await _survey(session, await make_customer(session), sent_at=NOW - 13 * days)
    stale_id, fresh_id = stale.id, fresh.id

    async def run(batch: int) -> surveys.SurveyRun:
        async with sessions() as s:
            done = await surveys.run(
                s, now=NOW, settings=surveys.SurveySettings(nps_batch_size=batch)
            )
            await s.commit()
            return done

    first = await run(2)
    assert (first.expired, first.sent) == (1, 2)
    second = await run(2)
    assert (second.expired, second.sent) == (0, 1)
    assert (await run(2)).sent == 0

    await session.commit()
    sent = (
        (
            await session.execute(
                select(Survey)
                .where(Survey.trigger == SurveyTrigger.PERIODIC)
                .order_by(Survey.customer_id)
            )
        )
        .scalars()
        .all()
    )
    assert [s.customer_id for s in sent] == due
    assert {(s.kind, s.state) for s in sent} == {(SurveyKind.NPS, SurveyState.SENT)}
    # Sent at 04:00 UTC: the shop's (UTC+8) day is June 30.
    assert [s.subject_key for s in sent] == [f"nps:{cid}:2026-06-30" for cid in due]
    assert await _count(session, OutboxEvent, OutboxEvent.name == surveys.SENT_EVENT) == 3
    states = dict(
        (
            await session.execute(
                select(Survey.id, Survey.state).where(Survey.id.in_([stale_id, fresh_id]))
            )
        ).all()
    )
    assert states == {stale_id: SurveyState.EXPIRED, fresh_id: SurveyState.SENT}


async def test_two_runs_of_the_job_at_once_send_each_nps_survey_once(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    for _ in range(5):
        await _order(session, await make_customer(session), paid_at=NOW - timedelta(days=3))

    async def run() -> int:
        async with sessions() as s:
            done = await surveys.run(s, now=NOW)
            await s.commit()
            return done.sent

    assert sorted(await asyncio.gather(run(), run(), run())) == [0, 0, 5]
    per_customer = (
        await session.execute(select(Survey.customer_id, func.count()).group_by(Survey.customer_id))
    ).all()
    assert len(per_customer) == 5 and {n for _, n in per_customer} == {1}


# --- the figures -----------------------------------------------------------------------------


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)


async def _line(session: AsyncSession, order: Order, category: Any) -> None:
    product = await make_product(session, category=category, commit=False)
    [variant] = await variants.variants_of(session, product.id)  # type: ignore[arg-type]  # a stored row has its id
    session.add(
        OrderLine(
            order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
            product_id=product.id,  # type: ignore[arg-type]  # a stored row has its id
            variant_id=variant.id,  # type: ignore[arg-type]  # a stored row has its id
            sku=product.sku,
            product_name=product.name,
            quantity=1,
            base_unit_price_amount=100,
            unit_price_amount=100,
            line_total_amount=100,
        )
    )
    await session.commit()


def _figures(group: surveys.SatisfactionGroup) -> tuple[Any, ...]:
    f = group.figures
    return (
        f.sent,
        f.responses,
        f.response_rate,
        f.csat_average,
        f.csat_satisfied_share,
        f.nps,
    )


async def test_csat_and_nps_per_trigger_carrier_and_category(session: AsyncSession) -> None:
    """The answers of March, worked out by hand (see each group)."""
    c = await make_customer(session)
    headphones = await make_category(session, "耳机")
    cases = await make_category(session, "手机壳")
    two_categories = await _order(session, c, paid_at=at(1))
    one_category = await _order(session, c, paid_at=at(1))
    # Two lines in one category count the order once there.
    await _line(session, two_categories, headphones)
    await _line(session, two_categories, headphones)
    await _line(session, two_categories, cases)
    await _line(session, one_category, headphones)

    sf, zt = "顺丰速运", "中通快递"
    await _survey(session, c, sent_at=at(2), score=5, carrier=sf, order=two_categories)
    await _survey(session, c, sent_at=at(3), score=4, carrier=sf)
    await _survey(session, c, sent_at=at(4), score=2, carrier=sf)
    await _survey(session, c, sent_at=at(5), carrier=sf)
    await _survey(session, c, sent_at=at(6), score=1, carrier=zt, order=one_category)
    await _survey(session, c, sent_at=at(7), carrier=zt, state=SurveyState.EXPIRED)
    await _survey(
        session, c, sent_at=at(8), score=3, trigger=SurveyTrigger.RETURN, order=two_categories
    )
    for score in (10, 9, 9, 7, 3, None):
        await _survey(
            session,
            c,
            sent_at=at(9),
            kind=SurveyKind.NPS,
            trigger=SurveyTrigger.PERIODIC,
            score=score,
            state=SurveyState.EXPIRED if score is None else None,
        )
    # Outside the period [March 1, March 31): before it, and at its (exclusive) end.
    await _survey(session, c, sent_at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC), score=1)
    await _survey(session, c, sent_at=datetime(2026, 3, 31, tzinfo=UTC), score=1, carrier=sf)
    march = surveys.period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC), NOW)

    by_trigger = await surveys.satisfaction(session, march, surveys.Grouping.TRIGGER)
    # All: 13 sent, 10 answered; CSAT 5, 4, 2, 1, 3 → 15 / 5 = 3.0, 2 of 5 satisfied; NPS
    # 10, 9, 9 promote, 7 is passive, 3 detracts → 100 (3 - 1) / 5 = 40.
    total = surveys.SatisfactionGroup("ALL", "全部", by_trigger.total)
    assert _figures(total) == (13, 10, 10 / 13, 3.0, 0.4, 40.0)
    assert by_trigger.total.passives == 1
    assert [(g.key, g.label, *_figures(g)) for g in by_trigger.groups] == [
        # 5, 4, 2, 1 answered of six: mean 12 / 4, satisfied 2 of 4.
        ("DELIVERY", "签收后", 6, 4, 4 / 6, 3.0, 0.5, None),
        ("PERIODIC", "定期 NPS", 6, 5, 5 / 6, None, None, 40.0),
        ("RETURN", "退货后", 1, 1, 1.0, 3.0, 0.0, None),
    ]

    by_carrier = await surveys.satisfaction(session, march, surveys.Grouping.CARRIER)
    assert [(g.key, *_figures(g)) for g in by_carrier.groups] == [
        ("顺丰速运", 4, 3, 0.75, 11 / 3, 2 / 3, None),
        ("中通快递", 2, 1, 0.5, 1.0, 0.0, None),
    ]

    by_category = await surveys.satisfaction(session, march, surveys.Grouping.CATEGORY)
    # 耳机: the surveys of both orders (5, 3 and 1); 手机壳: the first order's (5 and 3).
    assert [(g.label, g.category_id, *_figures(g)) for g in by_category.groups] == [
        ("耳机", headphones.id, 3, 3, 1.0, 3.0, 1 / 3, None),
        ("手机壳", cases.id, 2, 2, 1.0, 4.0, 0.5, None),
    ]
    assert by_category.total == by_trigger.total


async def test_a_period_is_checked() -> None:
    with pytest.raises(ValidationFailed, match="before"):
        surveys.period(at(5), at(5), NOW)
    with pytest.raises(ValidationFailed, match="366"):
        surveys.period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), NOW)
    default = surveys.period(None, None, NOW)
    assert (default.start, default.end) == (NOW - timedelta(days=30), NOW)


async def test_the_kpis_count_surveys_by_the_shop_day_they_were_sent(
    session: AsyncSession, settings: Settings
) -> None:
    c = await make_customer(session)
    nps = {"kind": SurveyKind.NPS, "trigger": SurveyTrigger.PERIODIC}
    # 23:59 on March 1 in the shop's time (UTC+8), and a minute later March 2.
    await _survey(session, c, sent_at=datetime(2026, 3, 1, 15, 59, tzinfo=UTC), score=5)
    await _survey(session, c, sent_at=datetime(2026, 3, 1, 16, 0, tzinfo=UTC), score=2)
    await _survey(session, c, sent_at=at(2))
    for score in (10, 9, 8, 6):
        await _survey(session, c, sent_at=at(2, 11), score=score, **nps)
    kpis = registered_kpis(load_plugins(settings))
    buckets = [
        KpiBucket(date(2026, 3, 1), date(2026, 3, 2)),
        KpiBucket(date(2026, 3, 2), date(2026, 3, 3)),
        KpiBucket(date(2026, 3, 3), date(2026, 3, 10)),
        KpiBucket(date(2026, 3, 1), date(2026, 3, 3)),
    ]
    assert await kpis["csat"].compute(session, buckets) == [5.0, 2.0, None, 3.5]
    # March 2: promoters 10 and 9, passive 8, detractor 6 → 100 (2 - 1) / 4 = 25.
    assert await kpis["nps"].compute(session, buckets) == [None, 25.0, None, 25.0]
    # March 2: six sent, five answered; both days: seven sent, six answered.
    assert await kpis["survey_response_rate"].compute(session, buckets) == [
        1.0,
        5 / 6,
        None,
        6 / 7,
    ]
    assert await kpis["csat"].compute(session, []) == []
    assert {k: (kpis[k].unit.value, kpis[k].higher_is_better) for k in surveys_keys()} == {
        "csat": ("SCORE", True),
        "nps": ("SCORE", True),
        "survey_response_rate": ("RATIO", True),
    }


def surveys_keys() -> list[str]:
    return [k.key for k in surveys.survey_kpis()]
