"""The shop's KPIs on a small shop worked out by hand (below), on SQLite and PostgreSQL: every
core KPI by day and by week (distinct counts that do not add up), the previous period and last
year, the funnel, the aggregates' incremental refresh (a new order, a late refund, a new event:
only their day recomputed), concurrent refreshes, a plugin's KPI through the hook, the command.

The shop (days are shop days, UTC+8; D1 = Monday 2026-03-02, D2 = 2026-03-03):

    order  day         who    total  status            paid  payment     note
    o9     2025-03-02  b       8000  COMPLETED         yes   -           b's first purchase
    o10    2026-03-01  d       4000  COMPLETED         yes   -           d's first purchase
    o1     D1          a      10000  COMPLETED         yes   CAPTURED    a's first purchase
    o2     D1          b       5000  PAID              yes   CAPTURED    b returns
    o3     D1          guest   3000  DELIVERED         yes   REFUNDED    a return
    o4     D1          c       2000  PENDING_PAYMENT   no    DECLINED, PENDING
    o5     D1          c       4000  CANCELLED         yes   REFUNDED    refunded, no purchase
    o6     D1          d       7000  COMPLETED (USD)   yes   -           another currency: left out
    o7     D2          a       6000  COMPLETED         yes   CAPTURED    a returns
    o8     D2          c       1000  PAID              yes   AUTHORISED  c's first purchase

D1: placed 5 (o1-o5), paid 4 (o1, o2, o3, o5), purchases 3, GMV 18000, AOV 6000; refunded 2/4,
returned 1/4; paying customers {a, b}, new {a}, returning {b}: repurchase 1/2; payment
attempts with an outcome 5 (the PENDING one is not), successful 4 (o3's refunded one was
captured): 0.8.
D2: placed 2, purchases 2, GMV 7000; paying {a, c}, new {c}, returning {a}; payments 2/2.
The week (D1 + D2): purchases 5, GMV 25000, AOV 5000; paying {a, b, c} = 3 (not 2 + 2), new
{a, c} = 2, returning {b} = 1 (a's first purchase is in the week): repurchase 1/3; refunds 2/6.

Events (visitor: events):
    D1  a: VIEW, ADD_TO_CART, PURCHASE(o1)     b: VIEW, PURCHASE(o2)
        c: VIEW, ADD_TO_CART, PURCHASE(o4, unpaid)
        s1: VIEW, ADD_TO_CART, PURCHASE(o3)    s2: VIEW    s3: SEARCH (0 results)
        s4: SEARCH (5 results), VIEW            s5: VIEW, ADD_TO_CART
    D2  a: VIEW, PURCHASE(o7)    s5: ADD_TO_CART    s6: VIEW
D1: 8 visitors, 8 visits of which 2 bounce (s2, s3): 0.25; viewers 7 (all but s3); viewed and
carted 4 (a, c, s1, s5): 4/7; and ordered 3 (a, c, s1): 3/4; and paid 2 (a, s1): 2/3; paying
visitors 3 (a, b, s1): conversion 3/8; carters 4 of whom 3 ordered: abandonment 1/4;
searches 2, 1 without results: 0.5.
D2: 3 visitors, 3 visits, 2 bounce (s5, s6).
The week: 9 visitors (not 8 + 3), 11 visits, 4 bounce; viewers 8; funnel 4, 3, 2; conversion
3/9; carters 4 (s5 twice), abandonment 1/4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import (
    KpiAggregate,
    KpiPeriod,
    Order,
    Payment,
    utcnow,
)
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import load_plugins
from server.services import kpi_aggregates as agg
from server.services import kpis
from server.services.errors import ValidationFailed
from server.services.kpi_registry import registered_kpis
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_customer
from tests.support.kpis import D1, D2, WEEK_END, E, P, S, event, order, small_shop

# The refresh looks again at what changed within its margin before its last run (for
# transactions that commit late); without it, each change is seen once.
NO_MARGIN = timedelta(0)


# The KPIs of the aggregates (the core's others, channels, surveys and product health, are
# tested with their own figures).
CORE = {kpi.key: kpi for kpi in kpis.core_kpis()}


async def values(
    session: AsyncSession, key: str, buckets: Sequence[tuple[date, date]]
) -> list[float | None]:
    found = await CORE[key].compute(session, [KpiBucket(s, e) for s, e in buckets])
    return list(found)


DAYS = [(D1, D2), (D2, D2 + timedelta(days=1)), (D1, WEEK_END)]

# key: (D1, D2, the week)
EXPECTED: dict[str, tuple[float | None, float | None, float | None]] = {
    "gmv": (18000, 7000, 25000),
    "orders": (3, 2, 5),
    "aov": (6000, 3500, 5000),
    "paying_customers": (2, 2, 3),
    "new_customers": (1, 1, 2),
    "returning_customers": (1, 1, 1),
    "repurchase_rate": (1 / 2, 1 / 2, 1 / 3),
    "refund_rate": (2 / 4, 0, 2 / 6),
    "return_rate": (1 / 4, 0, 1 / 6),
    "payment_success_rate": (4 / 5, 2 / 2, 6 / 7),
    "visitors": (8, 3, 9),
    "bounce_rate": (2 / 8, 2 / 3, 4 / 11),
    "view_to_cart_rate": (4 / 7, 0, 4 / 8),
    "cart_to_order_rate": (3 / 4, None, 3 / 4),
    "order_to_paid_rate": (2 / 3, None, 2 / 3),
    "conversion_rate": (3 / 8, 1 / 3, 3 / 9),
    "cart_abandonment_rate": (1 / 4, 1, 1 / 4),
    "zero_result_search_rate": (1 / 2, None, 1 / 2),
}


def close(found: Sequence[float | None], expected: Sequence[float | None]) -> bool:
    return len(found) == len(expected) and all(
        (f is None and e is None) or (f is not None and e is not None and abs(f - e) < 1e-9)
        for f, e in zip(found, expected, strict=True)
    )


async def test_every_core_kpi_on_the_small_shop(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        await small_shop(session)
    report = await agg.rebuild(sessions, Settings(database_url=database_url))
    assert report.first_day == date(2025, 3, 2)
    async with sessions() as session:
        for key, expected in EXPECTED.items():
            assert close(await values(session, key, DAYS), expected), key
        # The week is a stored row; the same week as a range not aligned to it (Sunday to
        # Sunday) unites day rows: both give the distinct counts.
        assert close(await values(session, "visitors", [(D1 - timedelta(days=1), WEEK_END)]), [9])
        assert close(await values(session, "paying_customers", [(date(2026, 3, 1), D2)]), [3])
        # A period that has not begun yet has no value; a quiet day has zeros and no ratios.
        future = agg.today() + timedelta(days=3)
        assert await values(session, "gmv", [(future, future + timedelta(days=1))]) == [None]
        quiet = [(date(2026, 2, 1), date(2026, 2, 2))]
        assert await values(session, "orders", quiet) == [0]
        assert await values(session, "conversion_rate", quiet) == [None]
        # Every KPI of the core is tested above.
        assert set(EXPECTED) == set(CORE)
    await engine.dispose()


async def test_previous_period_and_last_year(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        await small_shop(session)
    await agg.rebuild(sessions, Settings(database_url=database_url))
    async with sessions() as session:
        report = await kpis.shop_kpis(
            session, CORE, D1, D2 + timedelta(days=1), kpis.Granularity.DAY, ["gmv", "orders"]
        )
    assert (report.previous.start, report.previous.end) == (date(2026, 2, 28), D1)
    assert (report.last_year.start, report.last_year.end) == (date(2025, 3, 2), date(2025, 3, 4))
    gmv, orders = report.series
    assert gmv.kpi.key == "gmv" and orders.kpi.key == "orders"
    assert (gmv.total, gmv.previous_total, gmv.last_year_total) == (25000, 4000, 8000)
    assert gmv.change == pytest.approx(25000 / 4000 - 1)  # 5.25
    assert gmv.last_year_change == pytest.approx(25000 / 8000 - 1)  # 2.125
    assert [(p.start, p.value, p.previous, p.last_year) for p in gmv.points] == [
        (D1, 18000, 0, 8000),  # Feb 28 sold nothing; 2025-03-02 was o9
        (D2, 7000, 4000, 0),  # Mar 1 was o10
    ]
    assert (orders.total, orders.previous_total, orders.last_year_total) == (5, 1, 1)
    # By month, a whole-month period compares with the month before.
    async with sessions() as session:
        report = await kpis.shop_kpis(
            session, CORE, date(2026, 3, 1), date(2026, 4, 1), kpis.Granularity.MONTH, ["gmv"]
        )
    (gmv,) = report.series
    assert (report.previous.start, report.previous.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert (gmv.total, gmv.previous_total, gmv.last_year_total) == (29000, 0, 8000)
    # By week: ISO weeks, the first cut by the period's start.
    async with sessions() as session:
        report = await kpis.shop_kpis(
            session, CORE, date(2026, 3, 1), WEEK_END, kpis.Granularity.WEEK, ["paying_customers"]
        )
    (paying,) = report.series
    assert [(p.start, p.end, p.value) for p in paying.points] == [
        (date(2026, 3, 1), D1, 1),
        (D1, WEEK_END, 3),
    ]
    assert paying.total == 4
    await engine.dispose()


async def test_the_funnel_and_bad_periods(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        await small_shop(session)
    await agg.rebuild(sessions, Settings(database_url=database_url))
    async with sessions() as session:
        funnel = await kpis.shopping_funnel(session, D1, WEEK_END)
        assert funnel.visitors == 9
        assert [(s.step.value, s.visitors) for s in funnel.steps] == [
            ("VIEW", 8),
            ("ADD_TO_CART", 4),
            ("ORDER", 3),
            ("PAID", 2),
        ]
        assert [s.step_rate for s in funnel.steps] == [None, 0.5, 0.75, pytest.approx(2 / 3)]
        assert funnel.conversion_rate == 2 / 8
        with pytest.raises(ValidationFailed, match="before"):
            await kpis.shopping_funnel(session, D2, D1)
        with pytest.raises(ValidationFailed, match="400 days"):
            await kpis.shop_kpis(session, CORE, date(2025, 1, 1), date(2026, 3, 1))
        with pytest.raises(ValidationFailed, match="no KPI has the key 'nope'"):
            await kpis.shop_kpis(session, CORE, D1, D2, keys=["gmv", "nope"])
    await engine.dispose()


async def _day_rows(session: AsyncSession) -> dict[date, datetime]:
    rows = await session.execute(
        select(KpiAggregate.start, KpiAggregate.computed_at).where(
            KpiAggregate.period == KpiPeriod.DAY
        )
    )
    return {agg.as_date(s): c for s, c in rows}


async def test_the_refresh_recomputes_only_the_days_that_changed(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    settings = Settings(database_url=database_url)
    async with sessions() as session:
        shop = await small_shop(session)
    await agg.rebuild(sessions, settings)
    nothing = await agg.refresh(sessions, settings, margin=NO_MARGIN)
    assert (nothing.rebuilt, nothing.days) == (False, 0)

    # A new order of b on D2: only D2 (and its week and month) is recomputed.
    async with sessions() as session:
        before = await _day_rows(session)
        await order(session, "o11", shop.customers["b"], 2000, D2, S.COMPLETED, paid=True)
        await session.commit()
    done = await agg.refresh(sessions, settings, margin=NO_MARGIN)
    assert (done.days, done.weeks, done.months) == (1, 1, 1)
    async with sessions() as session:
        after = await _day_rows(session)
        assert [d for d in after if after[d] != before[d]] == [D2]
        assert await values(session, "gmv", DAYS) == [18000, 9000, 27000]
        assert await values(session, "returning_customers", DAYS) == [1, 2, 1]

    # A late refund: o1's payment refunded by the gateway today recomputes D1.
    async with sessions() as session:
        before = await _day_rows(session)
        await session.execute(
            update(Payment)
            .where(Payment.order_id == shop.orders["o1"].id)
            .values(status=P.REFUNDED, updated_at=utcnow())
        )
        await session.commit()
    done = await agg.refresh(sessions, settings, margin=NO_MARGIN)
    assert done.days == 1
    async with sessions() as session:
        after = await _day_rows(session)
        assert [d for d in after if after[d] != before[d]] == [D1]
        assert close(await values(session, "refund_rate", DAYS), [3 / 4, 0, 3 / 7])
        assert close(await values(session, "return_rate", DAYS), [2 / 4, 0, 2 / 7])

    # With the margin, the refund of a moment ago is seen again (D1 recomputed once more).
    again = await agg.refresh(sessions, settings)
    assert again.days == 1

    # A new event recorded for D2 (a new visitor) recomputes D2.
    async with sessions() as session:
        session.add(event(E.VIEW, D2, session_id="s7"))
        await session.commit()
    done = await agg.refresh(sessions, settings, margin=NO_MARGIN)
    assert done.days == 1
    async with sessions() as session:
        assert await values(session, "visitors", DAYS) == [8, 4, 10]

    # An earlier unpaid order of c paid later moves c's first purchase from D2 to D1: both
    # days are recomputed (new customers: D1 gains c, D2 loses c).
    async with sessions() as session:
        await session.execute(
            update(Order)
            .where(Order.id == shop.orders["o4"].id)
            .values(status=S.PAID, paid_at=utcnow(), updated_at=utcnow())
        )
        await session.commit()
    done = await agg.refresh(sessions, settings, margin=NO_MARGIN)
    assert done.days == 2
    async with sessions() as session:
        assert await values(session, "new_customers", DAYS) == [2, 0, 2]
        assert await values(session, "order_to_paid_rate", [(D1, D2)]) == [1.0]
        incremental = {
            key: await values(session, key, DAYS + [(date(2025, 3, 1), WEEK_END)]) for key in CORE
        }
    # The incremental figures are what a rebuild finds.
    await agg.rebuild(sessions, settings)
    async with sessions() as session:
        for key in CORE:
            assert incremental[key] == await values(
                session, key, DAYS + [(date(2025, 3, 1), WEEK_END)]
            ), key
    await engine.dispose()


async def test_concurrent_refreshes_leave_correct_aggregates(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    settings = Settings(database_url=database_url)
    async with sessions() as session:
        shop = await small_shop(session)
    await agg.rebuild(sessions, settings)
    async with sessions() as session:
        for i in range(5):
            await order(session, f"x{i}", shop.customers["d"], 100, D2, S.COMPLETED, paid=True)
        await session.commit()
    results = await asyncio.gather(
        *(agg.refresh(sessions, settings, margin=NO_MARGIN) for _ in range(4))
    )
    # They took turns: the first recomputed D2, the others found nothing new.
    assert sorted(r.days for r in results) == [0, 0, 0, 1]
    async with sessions() as session:
        assert await values(session, "gmv", DAYS) == [18000, 7500, 25500]
        assert await values(session, "paying_customers", DAYS) == [2, 3, 4]
    # Two rebuilds and a refresh at once end where one rebuild does.
    await asyncio.gather(
        agg.rebuild(sessions, settings),
        agg.rebuild(sessions, settings),
        agg.refresh(sessions, settings, margin=NO_MARGIN),
    )
    async with sessions() as session:
        assert await values(session, "gmv", DAYS) == [18000, 7500, 25500]
        assert await values(session, "visitors", DAYS) == [8, 3, 9]
    await engine.dispose()


async def test_a_plugins_kpi_is_computed_once_per_series(database_url: str) -> None:
    calls: list[list[KpiBucket]] = []

    async def tickets(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
        calls.append(list(buckets))
        return [float((b.end - b.start).days) for b in buckets]

    plugin = FakePlugin(
        "support",
        kpis=lambda: [Kpi("support.tickets", "Tickets", KpiUnit.COUNT, tickets, "per day")],
    )
    registry = registered_kpis(load_plugins(Settings(plugins=""), extra=[plugin]))
    assert "gmv" in registry and "support.tickets" in registry
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        report = await kpis.shop_kpis(
            session, registry, D1, D1 + timedelta(days=3), keys=["support.tickets", "gmv"]
        )
    await engine.dispose()
    assert [s.kpi.key for s in report.series] == ["support.tickets", "gmv"]
    # Three calls: the period, the one before, last year; each with the whole period last.
    assert len(calls) == 3
    assert [b.start for b in calls[0]] == [D1, D1 + timedelta(days=1), D1 + timedelta(days=2), D1]
    assert calls[1][-1] == KpiBucket(date(2026, 2, 27), D1)
    assert calls[2][-1] == KpiBucket(date(2025, 3, 2), date(2025, 3, 5))
    tickets_series = report.series[0]
    assert tickets_series.total == 3 and [p.value for p in tickets_series.points] == [1, 1, 1]


async def test_the_command_rebuilds_with_progress(database_url: str) -> None:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        await small_shop(session)
    await engine.dispose()
    result = CliRunner().invoke(
        cli, ["insights", "kpis-rebuild"], env={"SHOPGRAPH_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert "kpis: rebuilt" in result.stdout and "from 2025-03-02" in result.stdout
    # One progress line per month of days (2025-03 to this month), one for the rollups.
    months = (agg.today().year - 2025) * 12 + agg.today().month - 3 + 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"kpis: 2025-03 (1/{months + 1})"
    assert lines[-1] == f"kpis: weeks and months ({months + 1}/{months + 1})"


async def test_cohort_retention_on_a_hand_made_order_log(database_url: str) -> None:
    """Purchases per month (x; c a cancelled order, no purchase):

        customer  2025-12  2026-01  02  03  04   cohort
        p1                 x        x       x    January
        p2                 x            x        January
        p3                 x                     January
        p4                 x        x   x        January
        p5                          x   x        February
        p6                          x       x    February
        p7                              x        March
        p8        x        x                     December 2025 (outside the window)
        p9                 c        x            February

    January (4): February p1, p4 = 2/4; March p2, p4 = 2/4; April p1 = 1/4.
    February (3): March p5 = 1/3; April p6 = 1/3. March (1): April nobody. April: nobody new.
    """
    log = {
        "p1": ["2026-01", "2026-02", "2026-04"],
        "p2": ["2026-01", "2026-03"],
        "p3": ["2026-01"],
        "p4": ["2026-01", "2026-02", "2026-03"],
        "p5": ["2026-02", "2026-03"],
        "p6": ["2026-02", "2026-04"],
        "p7": ["2026-03"],
        "p8": ["2025-12", "2026-01"],
        "p9": ["2026-02"],
    }
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        for name, months in log.items():
            customer = await make_customer(session)
            for i, month in enumerate(months):
                day = date.fromisoformat(f"{month}-1{i}")
                await order(session, f"{name}{i}", customer, 1000, day, S.COMPLETED, paid=True)
            if name == "p9":
                await order(
                    session, "p9c", customer, 1000, date(2026, 1, 5), S.CANCELLED, paid=True
                )
        await session.commit()
    await agg.rebuild(sessions, Settings(database_url=database_url))
    async with sessions() as session:
        cohorts = await kpis.cohort_retention(session, date(2026, 1, 20), 4)
        with pytest.raises(ValidationFailed, match="between 1 and 36"):
            await kpis.cohort_retention(session, date(2026, 1, 1), 37)
        with pytest.raises(ValidationFailed, match="future"):
            await kpis.cohort_retention(session, agg.today() + timedelta(days=40), 1)
    await engine.dispose()
    table = [
        (c.month, c.size, [(r.offset, r.month, r.customers, r.share) for r in c.retention])
        for c in cohorts
    ]
    jan, feb, mar, apr = (date(2026, m, 1) for m in (1, 2, 3, 4))
    assert table == [
        (jan, 4, [(1, feb, 2, 0.5), (2, mar, 2, 0.5), (3, apr, 1, 0.25)]),
        (feb, 3, [(1, mar, 1, 1 / 3), (2, apr, 1, 1 / 3)]),
        (mar, 1, [(1, apr, 0, 0.0)]),
        (apr, 0, []),
    ]


def test_a_range_is_covered_by_months_then_weeks_then_days() -> None:
    M, W, D = KpiPeriod.MONTH, KpiPeriod.WEEK, KpiPeriod.DAY
    # Thursday 2026-01-29 to 2026-04-08: three days to February, two whole months, then the
    # week of Monday 6 April is not whole: days.
    found = agg.pieces(date(2026, 1, 29), date(2026, 4, 8))
    assert found == [
        (D, date(2026, 1, 29)),
        (D, date(2026, 1, 30)),
        (D, date(2026, 1, 31)),
        (M, date(2026, 2, 1)),
        (M, date(2026, 3, 1)),
        (D, date(2026, 4, 1)),
        (D, date(2026, 4, 2)),
        (D, date(2026, 4, 3)),
        (D, date(2026, 4, 4)),
        (D, date(2026, 4, 5)),
        (D, date(2026, 4, 6)),
        (D, date(2026, 4, 7)),
    ]
    # Whole weeks inside a month; a week may cross into a month that is not whole.
    assert agg.pieces(date(2026, 3, 2), date(2026, 4, 13)) == [
        (W, date(2026, 3, 2)),
        (W, date(2026, 3, 9)),
        (W, date(2026, 3, 16)),
        (W, date(2026, 3, 23)),
        (W, date(2026, 3, 30)),
        (W, date(2026, 4, 6)),
    ]
    # A week that would keep a whole month from starting is taken as days.
    assert agg.pieces(date(2026, 3, 30), date(2026, 5, 1)) == [
        (D, date(2026, 3, 30)),
        (D, date(2026, 3, 31)),
        (M, date(2026, 4, 1)),
    ]


def test_buckets_by_week_and_month_are_cut_by_the_period() -> None:
    weeks = kpis.buckets(date(2026, 3, 4), date(2026, 3, 20), kpis.Granularity.WEEK)
    assert [(b.start.isoformat(), b.end.isoformat()) for b in weeks] == [
        ("2026-03-04", "2026-03-09"),
        ("2026-03-09", "2026-03-16"),
        ("2026-03-16", "2026-03-20"),
    ]
    months = kpis.buckets(date(2026, 1, 15), date(2026, 3, 10), kpis.Granularity.MONTH)
    assert [(b.start.isoformat(), b.end.isoformat()) for b in months] == [
        ("2026-01-15", "2026-02-01"),
        ("2026-02-01", "2026-03-01"),
        ("2026-03-01", "2026-03-10"),
    ]
    # Last year of 29 February is 28 February.
    leap = kpis.KpiBucket(date(2024, 2, 29), date(2024, 3, 1))
    assert kpis.shifted(leap, kpis.year_earlier) == kpis.KpiBucket(
        date(2023, 2, 28), date(2023, 3, 1)
    )
