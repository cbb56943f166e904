"""Periodic jobs: the plugins' ``jobs`` hook, run by ``shopgraph jobs run``.

Each job has a row in ``job_lease``. A runner takes a job with a conditional UPDATE that only
succeeds when nobody holds it and its interval has passed, so any number of processes may run
``shopgraph jobs run`` (e.g. from cron on every machine) and each job still runs once per
interval, by one of them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.db import mark_write
from server.events import DispatchSettings, DrainReport, OutboxDispatcher
from server.hooktypes import Job, JobContext
from server.metrics import JOB_RUNS
from server.models import JobLease, utcnow
from server.plugins import PluginError, PluginRuntime
from server.progress import Progress

log = logging.getLogger("shopgraph.jobs")
# A job that outlives this is presumed dead, and another runner may take it over.
DEFAULT_LEASE = timedelta(minutes=30)


@dataclass(frozen=True)
class ScheduledJob:
    """A job under its full name, ``<plugin>.<job name>``."""

    name: str
    plugin: str
    job: Job


@dataclass
class JobsReport:
    outbox: DrainReport = field(default_factory=DrainReport)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def scheduled_jobs(plugins: PluginRuntime) -> list[ScheduledJob]:
    """Every enabled plugin's jobs; two jobs with one full name are a start-up error."""
    found: dict[str, ScheduledJob] = {}
    for plugin, jobs in plugins.call_sync("jobs"):
        for job in jobs:
            name = f"{plugin}.{job.name}"
            if name in found:
                raise PluginError(f"plugin {plugin!r} declares job {job.name!r} twice")
            found[name] = ScheduledJob(name=name, plugin=plugin, job=job)
    return sorted(found.values(), key=lambda j: j.name)


class JobRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        plugins: PluginRuntime,
        dispatch: DispatchSettings | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.plugins = plugins
        self.dispatcher = OutboxDispatcher(sessions, plugins, dispatch)
        self.holder = uuid.uuid4().hex

    async def _acquire(self, job: ScheduledJob, force: bool) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            await mark_write(session)
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            await session.execute(
                insert(JobLease.__table__)  # type: ignore[arg-type]
                .values(name=job.name)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            free = or_(JobLease.locked_until.is_(None), JobLease.locked_until < now)
            stmt = update(JobLease).where(JobLease.name == job.name).where(free)
            if not force:
                due_since = now - timedelta(seconds=job.job.interval_seconds)
                stmt = stmt.where(
                    or_(JobLease.last_started_at.is_(None), JobLease.last_started_at <= due_since)
                )
            taken = await session.execute(
                stmt.values(
                    holder=self.holder, locked_until=now + DEFAULT_LEASE, last_started_at=now
                ).execution_options(synchronize_session=False)
            )
            await session.commit()
            return taken.rowcount == 1  # type: ignore[attr-defined]

    async def _release(self, job: ScheduledJob, error: str | None) -> None:
        async with self.sessions() as session:
            await mark_write(session)
            await session.execute(
                update(JobLease)
                .where(JobLease.name == job.name, JobLease.holder == self.holder)
                .values(holder=None, locked_until=None, last_finished_at=utcnow(), last_error=error)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    def steps(self, only: str | None = None) -> int:
        """How many steps :meth:`run_once` reports: the outbox drain and each job it considers."""
        jobs = [job for job in scheduled_jobs(self.plugins) if only in (None, job.name)]
        return (only in (None, "outbox")) + len(jobs)

    async def run_once(
        self, *, only: str | None = None, force: bool = False, progress: Progress | None = None
    ) -> JobsReport:
        """Drain the outbox, then run every due job (``only``: just that one; ``force``:
        ignore intervals, not leases); ``progress`` hears of each of :meth:`steps`."""
        report = JobsReport()
        if only in (None, "outbox"):
            report.outbox = await self.dispatcher.drain()
            if progress is not None:
                progress.advance("outbox")
        for job in scheduled_jobs(self.plugins):
            if only not in (None, job.name):
                continue
            outcome = await self._run_job(job, force, report)
            JOB_RUNS.labels(job.name, outcome.replace(" ", "_")).inc()
            if progress is not None:
                progress.advance(f"{job.name} {outcome}")
        return report

    async def _run_job(self, job: ScheduledJob, force: bool, report: JobsReport) -> str:
        if not await self._acquire(job, force):
            report.skipped.append(job.name)
            return "not due"
        context = JobContext(
            sessions=self.sessions,
            settings=self.settings,
            plugins=self.plugins,
            config=self.plugins.config_for(job.plugin),
        )
        error: str | None = None
        try:
            await job.job.run(context)
            report.ran.append(job.name)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            report.failed[job.name] = error
            log.exception("job %s failed", job.name)
        await self._release(job, error)
        return "failed" if error else "ran"

    async def run_forever(self, poll_seconds: float = 5.0) -> None:
        """A worker process: run what is due, sleep, repeat."""
        while True:
            await self.run_once()
            await asyncio.sleep(poll_seconds)


def run_jobs_command(
    settings: Settings,
    plugins: PluginRuntime,
    *,
    only: str | None = None,
    force: bool = False,
    loop: bool = False,
) -> str:
    """``shopgraph jobs run``: one pass (or a worker loop); returns the summary to print."""
    from server.db import create_engine, session_factory
    from server.migrate import run_async

    async def _main() -> JobsReport:
        engine = create_engine(settings.database_url)
        try:
            runner = JobRunner(session_factory(engine), settings, plugins)
            if loop:
                await runner.run_forever(runner.dispatcher.policy.poll_seconds)
            with Progress("jobs", runner.steps(only)) as progress:
                return await runner.run_once(only=only, force=force, progress=progress)
        finally:
            await engine.dispose()

    report = run_async(_main)
    outbox = report.outbox
    lines = [
        f"outbox: {outbox.events} events fanned out, {outbox.delivered} deliveries made, "
        f"{outbox.failed} failed ({outbox.dead} dead)"
    ]
    lines += [f"ran {name}" for name in report.ran]
    lines += [f"not due {name}" for name in report.skipped]
    lines += [f"FAILED {name}: {error}" for name, error in report.failed.items()]
    return "\n".join(lines)
