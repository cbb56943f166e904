"""Customer insights, recomputed: the list of steps (RFM segments, then lifetime value with
churn risk, then the audiences' memberships, which may read both), run by the core's periodic
job ``core.insights``, by ``shopgraph insights rebuild`` and by the ``rebuildCustomerInsights``
mutation.

Each step recomputes one insight in a write transaction of its own and reports what it did.
The job runs every hour and a step may skip when its data has not changed since its last run
that day (RFM does; the audiences always run, writing only what changed); the command and the
mutation recompute whatever the data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import mark_write
from server.hooktypes import Job, JobContext
from server.progress import Progress
from server.services import audiences, customer_value, rfm

JOB_NAME = "insights"  # runs as "core.insights"
JOB_INTERVAL_SECONDS = 3600


class StepResult(Protocol):
    def summary(self) -> str:
        """One line saying what the step did."""
        ...


StepRun = Callable[[AsyncSession, Settings, datetime | None, bool], Awaitable[StepResult]]


@dataclass(frozen=True)
class Step:
    """One recomputation: ``run(session, settings, as_of, force)`` in the session's write
    transaction (the caller commits)."""

    name: str
    run: StepRun


async def _rfm(
    session: AsyncSession, settings: Settings, as_of: datetime | None, force: bool
) -> rfm.RfmRebuild:
    return await rfm.rebuild(session, currency=settings.currency, as_of=as_of, force=force)


async def _clv(
    session: AsyncSession, settings: Settings, as_of: datetime | None, force: bool
) -> customer_value.ClvRebuild:
    return await customer_value.rebuild(
        session,
        currency=settings.currency,
        settings=customer_value.ValueSettings.of(settings),
        as_of=as_of,
        force=force,
    )


async def _audiences(
    session: AsyncSession, settings: Settings, as_of: datetime | None, force: bool
) -> audiences.AudiencesRebuild:
    # Always runs (``force`` or not): its rules read time windows, tags and addresses that no
    # cheap fingerprint covers, and an audience whose members did not change writes nothing.
    return await audiences.rebuild(session, currency=settings.currency, as_of=as_of)


STEPS: tuple[Step, ...] = (
    Step(rfm.STEP, _rfm),
    Step(customer_value.STEP, _clv),
    Step(audiences.STEP, _audiences),
)


@dataclass(frozen=True)
class InsightsReport:
    """Each step's result, by step name."""

    results: Mapping[str, StepResult]

    @property
    def rfm(self) -> rfm.RfmRebuild:
        result = self.results[rfm.STEP]
        assert isinstance(result, rfm.RfmRebuild)
        return result

    @property
    def clv(self) -> customer_value.ClvRebuild:
        result = self.results[customer_value.STEP]
        assert isinstance(result, customer_value.ClvRebuild)
        return result

    @property
    def audiences(self) -> audiences.AudiencesRebuild:
        result = self.results[audiences.STEP]
        assert isinstance(result, audiences.AudiencesRebuild)
        return result

    def lines(self) -> list[str]:
        return [result.summary() for result in self.results.values()]


async def rebuild_in(
    session: AsyncSession,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    force: bool = True,
) -> InsightsReport:
    """Every step in the session's one write transaction (a mutation's); the caller commits."""
    await mark_write(session)
    return InsightsReport(
        {step.name: await step.run(session, settings, as_of, force) for step in STEPS}
    )


async def rebuild(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    as_of: datetime | None = None,
    force: bool = True,
    progress: Progress | None = None,
) -> InsightsReport:
    """Every step, each in a write transaction of its own, committed as it ends;
    ``progress`` hears of each step."""
    results: dict[str, StepResult] = {}
    for step in STEPS:
        async with sessions() as session:
            await mark_write(session)
            result = await step.run(session, settings, as_of, force)
            await session.commit()
        results[step.name] = result
        if progress is not None:
            progress.advance(result.summary())
    return InsightsReport(results)


async def run_job(ctx: JobContext) -> None:
    """The periodic job: every step, skipping those whose data has not changed today."""
    await rebuild(ctx.sessions, ctx.settings, force=False)


def jobs() -> list[Job]:
    return [
        Job(
            JOB_NAME,
            JOB_INTERVAL_SECONDS,
            run_job,
            description="Recompute customer insights (RFM segments, lifetime value and churn "
            "risk when orders or browsing changed or the day turned; audiences' memberships).",
        )
    ]


def rebuild_command(settings: Settings, *, force: bool = True) -> str:
    """``shopgraph insights rebuild``: every step with a progress bar; the summary to print."""
    from server.db import create_engine, session_factory
    from server.migrate import run_async

    async def _main() -> InsightsReport:
        engine = create_engine(settings.database_url)
        try:
            with Progress("insights", len(STEPS)) as progress:
                return await rebuild(
                    session_factory(engine), settings, force=force, progress=progress
                )
        finally:
            await engine.dispose()

    return "\n".join(run_async(_main).lines())
