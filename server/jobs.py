"""Periodic jobs: the ``jobs`` hook (the core's own, ``core.insights``, and the plugins'), run
inside ``shopgraph serve`` (a background task of every serving process, ``SHOPGRAPH_RUN_JOBS``)
and by ``shopgraph jobs run``.

Each job has a row in ``job_lease``. A runner takes a job with a conditional UPDATE that only
succeeds when nobody holds it and its interval has passed, so any number of processes may run
jobs (every API process, cron on every machine) and each job still runs once per interval, by
one of them. On PostgreSQL a runner also holds a session-level advisory lock per job
(``pg_try_advisory_lock``, on a connection of its own) for as long as the job runs: two
processes never run one job at once, even when a job outlives its lease, and the lock ends by
itself with the connection of a process that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from server.config import Settings
from server.db import mark_write
from server.events import DispatchSettings, DrainReport, OutboxDispatcher
from server.hooktypes import Job, JobContext
from server.metrics import JOB_RUNS
from server.models import JobLease, utcnow
from server.plugins import PluginError, PluginRuntime
from server.progress import Progress

log = logging.getLogger("shopgraph.jobs")
# A job that outlives this is presumed dead, and another runner may take it over (on
# PostgreSQL only once the advisory lock of its runner is gone too).
DEFAULT_LEASE = timedelta(minutes=30)
CANCELLED = "cancelled: the process stopped while the job ran"


def _int4(data: bytes) -> int:
    value = zlib.crc32(data)
    return value - (1 << 32) if value >= (1 << 31) else value


# The advisory-lock key space of shopgraph's jobs (pg_try_advisory_lock(int4, int4): this, and
# a hash of the job's name).
LOCK_CLASS = _int4(b"shopgraph.jobs")


def lock_keys(job_name: str) -> tuple[int, int]:
    """The two int4 keys of job ``job_name``'s advisory lock."""
    return LOCK_CLASS, _int4(job_name.encode())


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
    """Every job of the core and the enabled plugins; two jobs with one full name are a
    start-up error."""
    found: dict[str, ScheduledJob] = {}
    for plugin, jobs in plugins.call_sync("jobs"):
        for job in jobs:
            name = f"{plugin}.{job.name}"
            if name in found:
                raise PluginError(f"plugin {plugin!r} declares job {job.name!r} twice")
            found[name] = ScheduledJob(name=name, plugin=plugin, job=job)
    return sorted(found.values(), key=lambda j: j.name)


def _noting(progress: Progress, job_name: str) -> Callable[[str], None]:
    def note(what: str) -> None:
        progress.note(f"{job_name}: {what}")

    return note


class JobRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        plugins: PluginRuntime,
        dispatch: DispatchSettings | None = None,
        *,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.plugins = plugins
        self.dispatcher = OutboxDispatcher(sessions, plugins, dispatch)
        self.holder = uuid.uuid4().hex
        self.lease = lease

    async def _engine(self) -> AsyncEngine:
        async with self.sessions() as session:
            bind = session.bind
        assert isinstance(bind, AsyncEngine)
        return bind

    @contextlib.asynccontextmanager
    async def _cluster_lock(self, job: ScheduledJob) -> AsyncIterator[bool]:
        """Whether this process may run ``job`` now, for as long as the block lasts: on
        PostgreSQL, the job's advisory lock, held on a connection of its own (outside any
        transaction) while the job runs; elsewhere always (the lease decides)."""
        engine = await self._engine()
        if engine.dialect.name != "postgresql":
            yield True
            return
        keys = lock_keys(job.name)
        async with engine.connect() as conn:
            taken = bool(await conn.scalar(select(func.pg_try_advisory_lock(*keys))))
            await conn.commit()
            if not taken:
                yield False
                return
            try:
                yield True
            finally:
                try:
                    await conn.execute(select(func.pg_advisory_unlock(*keys)))
                    await conn.commit()
                except BaseException:
                    # The lock must not go back to the pool with its connection: closing the
                    # connection is what ends it then.
                    await conn.invalidate()
                    raise

    async def _acquire(self, job: ScheduledJob, force: bool) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            await mark_write(session)
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            await session.execute(
                insert(JobLease.__table__)  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
                .values(name=job.name)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            free = or_(col(JobLease.locked_until).is_(None), col(JobLease.locked_until) < now)
            stmt = update(JobLease).where(col(JobLease.name) == job.name).where(free)
            if not force:
                due_since = now - timedelta(seconds=job.job.interval_seconds)
                stmt = stmt.where(
                    or_(
                        col(JobLease.last_started_at).is_(None),
                        col(JobLease.last_started_at) <= due_since,
                    )
                )
            taken = await session.execute(
                stmt.values(
                    holder=self.holder, locked_until=now + self.lease, last_started_at=now
                ).execution_options(synchronize_session=False)
            )
            await session.commit()
            return taken.rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say

    async def _release(self, job: ScheduledJob, error: str | None, *, due: bool = False) -> None:
        """Give the lease back; ``due``: the job did not finish, and is due again at once."""
        values = {
            "holder": None,
            "locked_until": None,
            "last_finished_at": utcnow(),
            "last_error": error,
        }
        if due:
            values["last_started_at"] = None
        async with self.sessions() as session:
            await mark_write(session)
            await session.execute(
                update(JobLease)
                .where(col(JobLease.name) == job.name, col(JobLease.holder) == self.holder)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    def steps(self, only: str | None = None) -> int:
        """How many steps :meth:`run_once` reports: the outbox drain and each job it considers."""
        jobs = [job for job in scheduled_jobs(self.plugins) if only in (None, job.name)]
        return (only in (None, "outbox")) + len(jobs)

    async def run_once(
        self,
        *,
        only: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
        outbox: bool = True,
    ) -> JobsReport:
        """Drain the outbox (unless ``outbox`` is False: a serving process has its own
        dispatcher), then run every due job (``only``: just that one; ``force``: ignore
        intervals, not leases or locks); ``progress`` hears of each of :meth:`steps`."""
        report = JobsReport()
        if outbox and only in (None, "outbox"):
            report.outbox = await self.dispatcher.drain()
            if progress is not None:
                progress.advance("outbox")
        for job in scheduled_jobs(self.plugins):
            if only not in (None, job.name):
                continue
            outcome = await self._run_job(job, force, report, progress)
            JOB_RUNS.labels(job.name, outcome.replace(" ", "_")).inc()
            if progress is not None:
                progress.advance(f"{job.name} {outcome}")
        return report

    async def _run_job(
        self, job: ScheduledJob, force: bool, report: JobsReport, progress: Progress | None
    ) -> str:
        async with self._cluster_lock(job) as exclusive:
            if not exclusive:
                # Another process runs it right now.
                report.skipped.append(job.name)
                return "busy"
            if not await self._acquire(job, force):
                report.skipped.append(job.name)
                return "not due"
            context = JobContext(
                sessions=self.sessions,
                settings=self.settings,
                plugins=self.plugins,
                config=self.plugins.config_for(job.plugin),
            )
            if progress is not None:  # what the job says, under its name, on the runner's bar
                context = dataclasses.replace(context, progress=_noting(progress, job.name))
            error: str | None = None
            try:
                await job.job.run(context)
                report.ran.append(job.name)
            except asyncio.CancelledError:
                # The process is stopping: the job runs again at the next opportunity.
                log.warning("job %s cancelled", job.name)
                await self._release(job, CANCELLED, due=True)
                raise
            except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                report.failed[job.name] = error
                log.exception("job %s failed", job.name)
            await self._release(job, error)
            return "failed" if error else "ran"

    async def run_forever(self, poll_seconds: float = 5.0, *, outbox: bool = True) -> None:
        """A worker: run what is due, sleep, repeat. A pass that fails (the database went
        away) is logged and the next one tried."""
        while True:
            try:
                await self.run_once(outbox=outbox)
            except Exception:  # noqa: BLE001 - the next pass may find the database back
                log.exception("periodic jobs failed; trying again in %s s", poll_seconds)
            await asyncio.sleep(poll_seconds)


class BackgroundJobs:
    """The periodic jobs of a serving process (``SHOPGRAPH_RUN_JOBS``): a task that runs the
    due jobs every ``poll_seconds``; the app's own dispatcher delivers the outbox."""

    def __init__(self, runner: JobRunner, poll_seconds: float, stop_seconds: float = 30.0) -> None:
        self.runner = runner
        self.poll_seconds = poll_seconds
        self.stop_seconds = stop_seconds
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the task (not when no job is declared, the core's included)."""
        if not scheduled_jobs(self.runner.plugins):
            return
        self._task = asyncio.create_task(
            self.runner.run_forever(self.poll_seconds, outbox=False), name="shopgraph-jobs"
        )

    async def stop(self) -> None:
        """Cancel the task, a running job included, and wait for it to end (its lease and
        lock given back) — at most ``stop_seconds``."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=self.stop_seconds)
        if not done:
            log.error(
                "periodic jobs did not stop within %s s of being cancelled", self.stop_seconds
            )


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
