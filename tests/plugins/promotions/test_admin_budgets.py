"""The campaign budget job, on SQLite and PostgreSQL: it marks each spent campaign once, also
when two processes run it at once, and leaves the others and earlier marks alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import Campaign
from plugins.promotions.service.campaigns import BUDGET_JOB, mark_exhausted
from plugins.promotions.service.settings import PromotionsSettings
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.jobs import scheduled_jobs
from server.models import utcnow
from server.plugin import JobContext
from server.plugins import PluginRuntime
from tests.support.orders import outbox_names


async def _campaigns(session: AsyncSession) -> dict[str, Campaign]:
    earlier = utcnow() - timedelta(days=1)
    rows = {
        "amount-spent": Campaign(name="amount-spent", budget_amount=1000, spent_amount=1000),
        "uses-spent": Campaign(name="uses-spent", budget_uses=5, used_count=5),
        "over": Campaign(name="over", budget_amount=1000, spent_amount=1200, budget_uses=50),
        "almost": Campaign(name="almost", budget_amount=1000, spent_amount=999, budget_uses=5,
                           used_count=4),
        "unbounded": Campaign(name="unbounded", spent_amount=10**6, used_count=1000),
        "marked": Campaign(name="marked", budget_uses=1, used_count=1, exhausted_at=earlier),
    }  # fmt: skip
    session.add_all(rows.values())
    await session.commit()
    return rows


async def test_two_runs_at_once_mark_each_spent_campaign_once(
    database_url: str, session: AsyncSession
) -> None:
    rows = await _campaigns(session)
    marked_before = rows["marked"].exhausted_at
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    now = utcnow()

    async def run() -> list[int]:
        async with sessions() as own:
            await mark_write(own)
            ids = await mark_exhausted(own, now)
            await own.commit()
            return ids

    try:
        first, second = await asyncio.gather(run(), run())
        again = await run()
    finally:
        await engine.dispose()
    expected = sorted(rows[n].id or 0 for n in ("amount-spent", "uses-spent", "over"))
    assert sorted(first + second) == expected  # each by exactly one of the runs
    assert again == []
    fresh = {
        c.name: c.exhausted_at
        for c in await session.scalars(select(Campaign).execution_options(populate_existing=True))
    }
    assert fresh["marked"] == marked_before  # an earlier mark is never moved
    assert fresh["almost"] is None and fresh["unbounded"] is None
    assert all(fresh[n] is not None for n in ("amount-spent", "uses-spent", "over"))


async def test_the_job_runs_through_the_plugin_api(
    database_url: str, session: AsyncSession, settings: Settings, plugins: PluginRuntime
) -> None:
    from plugins.promotions import jobs as promotion_jobs

    rows = await _campaigns(session)
    config = PromotionsSettings(budget_job_interval_minutes=7)
    found = {job.name: job for job in promotion_jobs(config)}
    job = found[BUDGET_JOB]
    assert job.interval_seconds == 7 * 60
    assert "promotions.budgets" in {j.name for j in scheduled_jobs(plugins)}
    engine = create_engine(database_url)
    try:
        context = JobContext(
            sessions=session_factory(engine), settings=settings, plugins=plugins, config=config
        )
        await job.run(context)
    finally:
        await engine.dispose()
    spent = await session.get(Campaign, rows["uses-spent"].id, populate_existing=True)
    assert spent is not None and spent.exhausted_at is not None
    # The job emits nothing: no event is waiting in the outbox.
    assert await outbox_names(session) == []
