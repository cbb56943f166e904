"""RFM: quintile scores and the eight segments on hand-computed examples; the recomputation on
a small shop whose figures are worked out below, on SQLite and PostgreSQL; history rows only
when a segment changes; skipping when nothing changed; the job and the command."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.jobs import JobRunner
from server.models import (
    CustomerRfm,
    CustomerSegment,
    CustomerSegmentChange,
    InsightRun,
    OrderStatus,
    utcnow,
)
from server.plugins import load_plugins
from server.progress import Progress
from server.services import insights, rfm
from server.services.orders import transition_order
from server.services.privacy import erase_customer
from tests.support.accounts import DEFAULT_PASSWORD, make_customer
from tests.support.insights import AS_OF, SMALL_SHOP_SEGMENTS, SmallShop, at, buy, small_shop

S = CustomerSegment

# --- quintile scores ----------------------------------------------------------------------------


def scores(values: list[int]) -> list[int]:
    return [int(s) for s in rfm.quintile_scores(values)]


def test_five_distinct_values_score_one_to_five_whatever_their_order() -> None:
    # p = (below + 1/2) / 5 = 0.1, 0.3, 0.5, 0.7, 0.9; ceil(5p) = 1..5.
    assert scores([10, 20, 30, 40, 50]) == [1, 2, 3, 4, 5]
    assert scores([50, 10, 40, 20, 30]) == [5, 1, 4, 2, 3]
    # Ten values: two per quintile (ceil of 0.25, 0.75, 1.25, ... 4.75).
    assert scores(list(range(1, 11))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_equal_values_get_equal_scores() -> None:
    # [1, 1, 2, 3]: the 1s have 0 below and 2 equal: 5 * (0 + 2/2) / 4 = 1.25 -> 2;
    # the 2: 5 * (2 + 1/2) / 4 = 3.125 -> 4; the 3: 5 * 3.5 / 4 = 4.375 -> 5.
    assert scores([1, 1, 2, 3]) == [2, 2, 4, 5]
    # Five 1s and five 5s: 5 * 2.5 / 10 = 1.25 -> 2 and 5 * 7.5 / 10 = 3.75 -> 4.
    assert scores([5, 5, 5, 5, 5, 1, 1, 1, 1, 1]) == [4, 4, 4, 4, 4, 2, 2, 2, 2, 2]
    # Reversing the order of goodness mirrors the scores (6 - s), ties included: what R uses.
    assert scores([-1, -1, -2, -3]) == [4, 4, 2, 1]


def test_fewer_than_five_customers_and_all_equal() -> None:
    assert scores([]) == []
    assert scores([7]) == [3]  # p = 1/2
    assert scores([1, 2]) == [2, 4]  # p = 1/4, 3/4
    assert scores([1, 2, 3]) == [1, 3, 5]  # p = 1/6, 1/2, 5/6
    assert scores([9, 9, 9, 9, 9, 9]) == [3] * 6  # everyone in the middle


def test_above_average_is_strictly_above() -> None:
    def high(values: list[int]) -> list[bool]:
        return [bool(h) for h in rfm.above_average(np.array(values, dtype=np.int64))]

    assert high([1, 2, 3, 4, 5]) == [False, False, False, True, True]  # average 3
    assert high([3, 3, 3, 4]) == [False, False, False, True]  # average 3.25
    assert high([2, 2, 5]) == [False, False, True]  # average exactly 3
    assert high([3, 3, 3]) == [False, False, False]  # nobody stands out


def test_the_eight_segments_follow_the_operators_table() -> None:
    # docs/insights.md: (R, F, M) high or low -> segment. Each dimension below has four 5s and
    # four 1s, so its average is 3: a 5 is high and a 1 is low.
    table = [
        ((True, True, True), S.IMPORTANT_VALUE, "重要价值"),
        ((True, False, True), S.IMPORTANT_DEVELOP, "重要发展"),
        ((False, True, True), S.IMPORTANT_KEEP, "重要保持"),
        ((False, False, True), S.IMPORTANT_WIN_BACK, "重要挽留"),
        ((True, True, False), S.GENERAL_VALUE, "一般价值"),
        ((True, False, False), S.GENERAL_DEVELOP, "一般发展"),
        ((False, True, False), S.GENERAL_KEEP, "一般保持"),
        ((False, False, False), S.GENERAL_WIN_BACK, "一般挽留"),
    ]

    def column(i: int) -> Any:
        return np.array([5 if highs[i] else 1 for highs, _, _ in table], dtype=np.int64)

    assert rfm.segments(column(0), column(1), column(2)) == [s for _, s, _ in table]
    assert [rfm.SEGMENT_LABELS[s] for _, s, _ in table] == [label for _, _, label in table]


# --- the recomputation on a small shop ----------------------------------------------------------
#
# As of 2026-06-30 12:00 UTC (n = 6; a score is ceil(5 (2 below + equal) / 12)):
#
#   buyer  recency  R   frequency  F   monetary  M   segment (R F M high when above 3, 3, 17/6)
#   a         1     5       3      4     6000    3   H H H  IMPORTANT_VALUE
#   b         2     4       1      2     9000    4   H L H  IMPORTANT_DEVELOP
#   c       121     3       4      5     8000    3   L H H  IMPORTANT_KEEP
#   d       171     1       1      2      500    1   L L L  GENERAL_WIN_BACK
#   e         5     3       2      3      500    1   L L L  GENERAL_WIN_BACK (3 is not above 3)
#   f       149     2       1      2    12000    5   L L H  IMPORTANT_WIN_BACK
#
# With f's order cancelled (n = 5; ceil(5 (2 below + equal) / 10)):
#
#   a  R 5 F 4 M 3 (averages 3, 2.8, 2.8)  IMPORTANT_VALUE   figures unchanged: not written
#   b  R 4 F 1 M 5                         IMPORTANT_DEVELOP written (F, M moved)
#   c  R 2 F 5 M 4                         IMPORTANT_KEEP    written
#   d  R 1 F 1 M 1                         GENERAL_WIN_BACK  written
#   e  R 3 F 3 M 1                         GENERAL_KEEP      written, and a segment change
#   f  no purchase left: its row removed, a change to no segment

EXPECTED = {
    "a": (1, 3, 6000, 5, 4, 3),
    "b": (2, 1, 9000, 4, 2, 4),
    "c": (121, 4, 8000, 3, 5, 3),
    "d": (171, 1, 500, 1, 2, 1),
    "e": (5, 2, 500, 3, 3, 1),
    "f": (149, 1, 12000, 2, 2, 5),
}


async def _rebuild(session: AsyncSession, moment: Any, *, force: bool) -> rfm.RfmRebuild:
    await session.commit()
    await mark_write(session)
    done = await rfm.rebuild(session, currency="CNY", as_of=moment, force=force)
    await session.commit()
    return done


async def _rows(session: AsyncSession, shop: SmallShop) -> dict[str, CustomerRfm]:
    await session.commit()
    names = {c.id: name for name, c in shop.buyers.items()}
    stmt = select(CustomerRfm).execution_options(populate_existing=True)
    rows = (await session.execute(stmt)).scalars().all()
    return {names[row.customer_id]: row for row in rows}


async def _history(session: AsyncSession, shop: SmallShop) -> list[tuple[str, Any, Any, Any]]:
    names = {c.id: name for name, c in shop.buyers.items()}
    stmt = select(CustomerSegmentChange).order_by(
        CustomerSegmentChange.at, CustomerSegmentChange.customer_id
    )
    return [
        (names[h.customer_id], h.from_segment, h.to_segment, h.at)
        for h in (await session.execute(stmt)).scalars()
    ]


async def test_a_small_shop_gets_its_hand_computed_segments_and_history(
    session: AsyncSession,
) -> None:
    shop = await small_shop(session)
    first = await _rebuild(session, AS_OF, force=False)
    assert (first.skipped, first.customers, first.written, first.removed) == (False, 6, 6, 0)
    assert first.segment_changes == 6
    rows = await _rows(session, shop)
    assert set(rows) == set("abcdef")  # the erased customer, guests and non-purchases: none
    for name, row in rows.items():
        figures = (row.recency_days, row.frequency, row.monetary)
        assert (*figures, row.r_score, row.f_score, row.m_score) == EXPECTED[name], name
        assert row.segment is SMALL_SHOP_SEGMENTS[name], name
        assert row.computed_at == AS_OF
    assert rows["a"].last_purchase_at == at(6, 29)
    # First purchases are moves from no segment.
    assert await _history(session, shop) == [
        (name, None, SMALL_SHOP_SEGMENTS[name], AS_OF) for name in "abcdef"
    ]

    # Nothing changed, same day: the job's run skips; a forced one computes and writes nothing.
    later = AS_OF + timedelta(hours=1)
    assert (await _rebuild(session, later, force=False)).skipped
    again = await _rebuild(session, later, force=True)
    assert (again.skipped, again.written, again.removed, again.segment_changes) == (
        False,
        0,
        0,
        0,
    )
    assert len(await _history(session, shop)) == 6
    assert {r.computed_at for r in (await _rows(session, shop)).values()} == {AS_OF}

    # f's only purchase is cancelled: an order changed, so the next run recomputes.
    shop.f_order.status = OrderStatus.CANCELLED
    shop.f_order.updated_at = later
    await session.commit()
    changed = await _rebuild(session, later, force=False)
    assert (changed.skipped, changed.customers, changed.written, changed.removed) == (
        False,
        5,
        4,
        1,
    )
    rows = await _rows(session, shop)
    assert {n: (r.r_score, r.f_score, r.m_score, r.segment) for n, r in rows.items()} == {
        "a": (5, 4, 3, S.IMPORTANT_VALUE),
        "b": (4, 1, 5, S.IMPORTANT_DEVELOP),
        "c": (2, 5, 4, S.IMPORTANT_KEEP),
        "d": (1, 1, 1, S.GENERAL_WIN_BACK),
        "e": (3, 3, 1, S.GENERAL_KEEP),
    }
    assert rows["a"].computed_at == AS_OF and rows["b"].computed_at == later
    # History only for the two customers whose segment changed.
    assert (await _history(session, shop))[6:] == [
        ("e", S.GENERAL_WIN_BACK, S.GENERAL_KEEP, later),
        ("f", S.IMPORTANT_WIN_BACK, None, later),
    ]
    summaries = {s.segment: s for s in await rfm.segment_summaries(session, since=later)}
    assert [s.segment for s in await rfm.segment_summaries(session)] == list(CustomerSegment)
    assert (summaries[S.GENERAL_KEEP].customers, summaries[S.GENERAL_KEEP].moved_in) == (1, 1)
    assert summaries[S.GENERAL_WIN_BACK].moved_out == 1
    assert summaries[S.IMPORTANT_WIN_BACK].moved_out == 1
    assert summaries[S.IMPORTANT_WIN_BACK].average_monetary is None
    assert summaries[S.IMPORTANT_DEVELOP].revenue == 9000
    assert summaries[S.IMPORTANT_VALUE].share == pytest.approx(0.2)

    # A new day moves every recency on: recomputed, even with the orders as they were.
    next_day = await _rebuild(session, AS_OF + timedelta(days=1), force=False)
    assert not next_day.skipped and next_day.written == 5 and next_day.segment_changes == 0
    assert (await _rows(session, shop))["a"].recency_days == 2


_by_customer = select(CustomerRfm).order_by(CustomerRfm.customer_id)


async def test_the_job_recomputes_once_and_changes_nothing_the_second_time(
    database_url: str, session: AsyncSession
) -> None:
    now = utcnow()
    buyer = await make_customer(session)
    other = await make_customer(session)
    await buy(session, buyer, 30000, now - timedelta(days=3))
    pending = await buy(session, other, 5000, now - timedelta(days=1), status=OrderStatus.PAID)
    settings = Settings(database_url=database_url, plugins="", plugin_entry_points=False)
    runtime = load_plugins(settings)
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        first = await JobRunner(sessions, settings, runtime).run_once(only="core.insights")
        assert first.ran == ["core.insights"] and not first.failed
        async with sessions() as s:
            before = (await s.execute(_by_customer)).scalars().all()
            history = await s.scalar(select(func.count()).select_from(CustomerSegmentChange))
            run = await s.get(InsightRun, "rfm")
        assert {r.customer_id for r in before} == {buyer.id, other.id} and history == 2
        assert run is not None and run.customers == 2

        # Run again (the interval ignored): the step finds nothing changed and writes nothing.
        second = await JobRunner(sessions, settings, runtime).run_once(
            only="core.insights", force=True
        )
        assert second.ran == ["core.insights"]
        async with sessions() as s:
            after = (await s.execute(_by_customer)).scalars().all()
            again = await s.scalar(select(func.count()).select_from(CustomerSegmentChange))
            rerun = await s.get(InsightRun, "rfm")
        assert [r.model_dump() for r in after] == [r.model_dump() for r in before]
        assert again == 2 and rerun is not None and rerun.finished_at == run.finished_at

        # An order cancelled through the service: the next run sees it and records the move.
        async with sessions() as s:
            await mark_write(s)
            await transition_order(s, runtime, pending.id or 0, OrderStatus.CANCELLED)
            await s.commit()
        shown = io.StringIO()
        with Progress("insights", len(insights.STEPS), stream=shown) as progress:
            report = await insights.rebuild(sessions, settings, force=False, progress=progress)
        assert (report.rfm.customers, report.rfm.removed, report.rfm.segment_changes) == (1, 1, 2)
        # The lifetime value step follows; one buyer who bought once is too little to fit.
        no_fit = (
            "no values: the purchase model (BG/NBD) cannot be fitted: no customer made a repeat "
            "purchase: BG/NBD cannot tell a purchase rate from dropout on such data"
        )
        assert shown.getvalue().splitlines() == [
            "insights: rfm: 1 customers scored, 1 rows written, 1 removed, 2 segment changes (1/3)",
            f"insights: clv: 1 customers, 0 rows written, 1 removed; {no_fit} (2/3)",
            "insights: audiences: 0 audiences, 0 memberships, 0 joined, 0 left (3/3)",
        ]
    finally:
        await engine.dispose()

    result = CliRunner().invoke(
        cli, ["insights", "rebuild"], env={"SHOPGRAPH_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "rfm: 1 customers scored, 0 rows written, 0 removed, 0 segment changes",
        f"clv: 1 customers, 0 rows written, 0 removed; {no_fit}",
        "audiences: 0 audiences, 0 memberships, 0 joined, 0 left",
    ]
    assert result.stderr.splitlines() == [
        "insights: rfm: 1 customers scored, 0 rows written, 0 removed, 0 segment changes (1/3)",
        f"insights: clv: 1 customers, 0 rows written, 0 removed; {no_fit} (2/3)",
        "insights: audiences: 0 audiences, 0 memberships, 0 joined, 0 left (3/3)",
    ]


async def test_erasing_an_account_forgets_its_figures_and_history(session: AsyncSession) -> None:
    buyer = await make_customer(session)
    stays = await make_customer(session, password=None)
    await buy(session, buyer, 10000, at(6, 1))
    await buy(session, stays, 2000, at(6, 2))
    assert (await _rebuild(session, AS_OF, force=False)).customers == 2
    await mark_write(session)
    await erase_customer(session, Settings(), buyer.id or 0, DEFAULT_PASSWORD)
    await session.commit()
    figures = select(CustomerRfm.customer_id).order_by(CustomerRfm.customer_id)
    moves = select(CustomerSegmentChange.customer_id).order_by(CustomerSegmentChange.id)
    assert list((await session.execute(figures)).scalars()) == [stays.id]
    assert list((await session.execute(moves)).scalars()) == [stays.id]
    # The recomputation leaves the erased customer out: no row comes back. The one buyer left
    # moves from GENERAL_DEVELOP (R 4 F 3 M 2 beside the erased one) to GENERAL_WIN_BACK
    # (alone, every score is 3: nothing is above the average).
    done = await _rebuild(session, AS_OF + timedelta(hours=1), force=False)
    assert (done.customers, done.removed) == (1, 0)
    assert list((await session.execute(figures)).scalars()) == [stays.id]
    assert list((await session.execute(moves)).scalars()) == [stays.id, stays.id]


@pytest.mark.heavy
async def test_two_recomputations_at_once_record_each_change_once(database_url: str) -> None:
    """Two processes recomputing together (the job on two servers, the command beside the job)
    take turns: the second sees what the first wrote and records no move twice."""
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        async with session_factory(engines[0])() as s:
            for i, total in enumerate((1000, 2000, 3000)):
                buyer = await make_customer(s, password=None)
                await buy(s, buyer, total, at(6, 10 + i))
        settings = Settings(database_url=database_url)
        reports = await asyncio.gather(
            *(
                insights.rebuild(session_factory(e), settings, as_of=AS_OF, force=True)
                for e in engines
            )
        )
        assert sorted(r.rfm.written for r in reports) == [0, 3]
        assert sorted(r.rfm.segment_changes for r in reports) == [0, 3]
        async with session_factory(engines[0])() as s:
            moves = await s.scalar(select(func.count()).select_from(CustomerSegmentChange))
            rows = await s.scalar(select(func.count()).select_from(CustomerRfm))
        assert (moves, rows) == (3, 3)
    finally:
        for engine in engines:
            await engine.dispose()
