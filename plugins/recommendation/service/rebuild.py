"""A rebuild: read the shop, fit every component, write the models as a new build.

A build is written under a RUNNING ``recommendation_build`` row and made READY only once
every row is in, so serving (which reads the newest READY build) never sees half of one; a
failure marks it FAILED, deletes its rows, and the READY build before it goes on being
served. Builds older than the one served before are deleted once a new one is READY (a
request that began on the previous build may still be reading it).

Two rebuilds at once (the job's lease keeps them apart, but a lease can lapse, and a second
process may be started by hand) each write their own build and only ever delete builds
older than the READY build before their own: neither can touch the other's rows, nor the
build being served.

New and changed products get content neighbours at once (:func:`refresh_product`, from the
``product_changed`` event), written into the current READY build.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.recommendation.models import (
    BuildStatus,
    NeighbourSource,
    RecommendationBuild,
    RecommendationCycle,
    RecommendationNeighbour,
    RecommendationPopularity,
    RecommendationRule,
)
from plugins.recommendation.service import components
from plugins.recommendation.service.data import (
    LOAD_STEPS,
    ProductRow,
    load_categories,
    load_training_data,
)
from plugins.recommendation.service.settings import RecommendationSettings
from plugins.recommendation.service.store import Models
from server.models import Product, utcnow
from server.plugin import JobContext
from server.services.insight_runs import utc

log = logging.getLogger("shopgraph.recommendation")

Note = Callable[[str], None]
# Rows per INSERT (one executemany each) and per transaction: a SQLite writer holds the
# database's write lock for one batch at a time, so the shop's own writes go on meanwhile.
BATCH = 20_000
# The tables a build's rows live in (deleted in this order, before the build's own row).
BUILD_TABLES: tuple[Any, ...] = (
    RecommendationNeighbour,
    RecommendationRule,
    RecommendationPopularity,
    RecommendationCycle,
)
# The steps a rebuild reports: its start, reading, each component, writing each table,
# catching up with the products changed meanwhile, and making it current (reading a large
# table also says how far it got, between steps).
WRITE_STEPS = 4
STEPS = 1 + LOAD_STEPS + components.FIT_STEPS + WRITE_STEPS + 2
# A product's content neighbours are found among at most this many products of its
# category's parent's subtree and this many of its brand, the most recent first.
REFRESH_CANDIDATES = 1_000
# Products created or changed while a rebuild read the shop: at most this many are caught up
# in the new build (more waits for the next rebuild).
CATCH_UP_LIMIT = 2_000


@dataclass
class RebuildReport:
    build_id: int
    status: BuildStatus
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if self.status is not BuildStatus.READY:
            return f"recommendation build {self.build_id}: {self.status.value}"
        rows = self.stats.get("rows", {})
        seconds = self.stats.get("seconds", {})
        return (
            f"recommendation build {self.build_id} READY: "
            + ", ".join(f"{n:,} {what}" for what, n in rows.items())
            + f" in {seconds.get('total', 0.0):.1f} s, peak memory "
            f"{self.stats.get('peak_memory_mb', 0.0):,.0f} MB"
        )


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (its whole life, not this rebuild's only);
    0 where the system does not say (Windows)."""
    try:
        import resource
    except ImportError:
        return 0.0
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS


# --- the current build --------------------------------------------------------------------------


async def current_build_id(session: AsyncSession) -> int | None:
    """The build served: the newest READY one."""
    return await session.scalar(
        select(func.max(col(RecommendationBuild.id))).where(
            col(RecommendationBuild.status) == BuildStatus.READY
        )
    )


async def _start_build(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        build = RecommendationBuild(status=BuildStatus.RUNNING)
        session.add(build)
        await session.commit()
        assert build.id is not None  # flushed
        return build.id


async def _drop_rows(session: AsyncSession, build_ids: Sequence[int]) -> None:
    for table in BUILD_TABLES:
        await session.execute(delete(table).where(col(table.build_id).in_(build_ids)))


async def _fail(sessions: async_sessionmaker[AsyncSession], build_id: int, error: str) -> None:
    """Mark the build FAILED and delete what it wrote; the READY build goes on being served."""
    async with sessions() as session:
        await session.execute(
            update(RecommendationBuild)
            .where(col(RecommendationBuild.id) == build_id)
            .values(status=BuildStatus.FAILED, finished_at=utcnow(), stats={"error": error})
        )
        await _drop_rows(session, [build_id])
        await session.commit()


async def _publish(
    sessions: async_sessionmaker[AsyncSession], build_id: int, stats: dict[str, Any]
) -> list[int]:
    """Make the build READY (if it is still RUNNING) and delete the builds older than the
    READY one served before it; returns the ids deleted."""
    async with sessions() as session:
        # The first statement writes: on SQLite the transaction takes the write lock with it.
        done = await session.execute(
            update(RecommendationBuild)
            .where(
                col(RecommendationBuild.id) == build_id,
                col(RecommendationBuild.status) == BuildStatus.RUNNING,
            )
            .values(status=BuildStatus.READY, finished_at=utcnow(), stats=stats)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
            raise RuntimeError(f"recommendation build {build_id} is no longer RUNNING")
        previous = await session.scalar(
            select(func.max(col(RecommendationBuild.id))).where(
                col(RecommendationBuild.status) == BuildStatus.READY,
                col(RecommendationBuild.id) < build_id,
            )
        )
        old: list[int] = []
        if previous is not None:
            found = await session.scalars(
                select(col(RecommendationBuild.id)).where(col(RecommendationBuild.id) < previous)
            )
            old = [i for i in found.all() if i is not None]
        if old:
            await _drop_rows(session, old)
            await session.execute(
                delete(RecommendationBuild).where(col(RecommendationBuild.id).in_(old))
            )
        await session.commit()
        return old


# --- writing ------------------------------------------------------------------------------------


Row = tuple[Any, ...]

NEIGHBOUR_COLUMNS = ("build_id", "product_id", "neighbour_id", "source", "score", "rank")
RULE_COLUMNS = (
    "build_id",
    "antecedent_id",
    "consequent_id",
    "orders",
    "support",
    "confidence",
    "lift",
    "rank",
)
POPULARITY_COLUMNS = ("build_id", "category_id", "product_id", "score", "rank")
CYCLE_COLUMNS = (
    "build_id",
    "product_id",
    "buyers",
    "repeat_buyers",
    "interval_days",
    "consumable",
)


def neighbour_rows(build_id: int, models: Models) -> Iterator[Row]:
    """Rows of ``recommendation_neighbour`` (:data:`NEIGHBOUR_COLUMNS`), ranked per source."""
    for product_id, near in models.neighbours.items():
        ranks = dict.fromkeys(NeighbourSource, 0)
        for n in near:
            ranks[n.source] += 1
            yield (build_id, product_id, n.product_id, n.source.value, n.score, ranks[n.source])


def rule_rows(build_id: int, models: Models) -> Iterator[Row]:
    for antecedent, rules in models.rules.items():
        for rank, r in enumerate(rules, 1):
            yield (
                build_id,
                antecedent,
                r.consequent_id,
                r.orders,
                r.support,
                r.confidence,
                r.lift,
                rank,
            )


def popularity_rows(build_id: int, models: Models) -> Iterator[Row]:
    for category_id, popular in models.popular.items():
        for rank, p in enumerate(popular, 1):
            yield (build_id, category_id, p.product_id, p.score, rank)


def cycle_rows(build_id: int, models: Models) -> Iterator[Row]:
    for product_id, c in models.cycles.items():
        yield (build_id, product_id, c.buyers, c.repeat_buyers, c.interval_days, c.consumable)


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def write_rows(
    sessions: async_sessionmaker[AsyncSession],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    batch: int | None = None,
) -> int:
    """Insert ``rows`` (values in the order of ``columns``) into ``table`` in batches (of
    :data:`BATCH` rows by default), each in a transaction of its own, through the database
    driver's bulk path — no ORM object, no statement per row: executemany on SQLite, COPY on
    PostgreSQL (asyncpg's ``copy_records_to_table``, a third faster than its executemany
    here: the foreign-key checks cost the most either way). Returns how many."""
    written = 0
    names = ", ".join(f'"{c}"' for c in columns)
    insert_sql = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
    for part in _batches(rows, batch or BATCH):
        async with sessions() as session:
            conn = await session.connection()
            if conn.dialect.name == "postgresql":
                raw = await conn.get_raw_connection()
                await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]  # asyncpg's connection, on PostgreSQL
                    table, records=part, columns=list(columns)
                )
            else:
                await conn.exec_driver_sql(insert_sql, part)
            await session.commit()
        written += len(part)
    return written


# --- the rebuild --------------------------------------------------------------------------------


async def rebuild(
    source: async_sessionmaker[AsyncSession] | JobContext,
    settings: RecommendationSettings | None = None,
    progress: Note | None = None,
) -> RebuildReport:
    """Read the shop, fit every component and write them as a new build, made READY when
    complete (builds older than the one served before are deleted). A failure marks the build
    FAILED and is raised; the READY build before it is still served. ``source``: a session
    factory, or a job's context (its sessions, its plugin's settings and its progress).
    ``progress`` hears of each of :data:`STEPS` steps."""
    if isinstance(source, JobContext):
        sessions = source.sessions
        settings = settings or source.config
        progress = progress or source.progress
    else:
        sessions = source
    if not isinstance(settings, RecommendationSettings):
        settings = RecommendationSettings()
    say: Note = progress or (lambda what: None)
    began = time.perf_counter()
    build_id = await _start_build(sessions)
    say(f"build {build_id} started")
    try:
        return await _rebuild(sessions, settings, say, build_id, began)
    except BaseException as exc:  # a cancelled job too: its build must not stay RUNNING
        log.exception("recommendation build %s failed", build_id)
        try:
            await asyncio.shield(_fail(sessions, build_id, f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001 - the database may be what failed: say why first
            log.exception("recommendation build %s could not be marked FAILED", build_id)
        raise


async def _rebuild(
    sessions: async_sessionmaker[AsyncSession],
    settings: RecommendationSettings,
    say: Note,
    build_id: int,
    began: float,
) -> RebuildReport:
    seconds: dict[str, float] = {}
    loaded_at = utcnow()
    started = time.perf_counter()
    async with sessions() as session:
        data = await load_training_data(session, settings, progress=say)
    seconds["load"] = time.perf_counter() - started

    started = time.perf_counter()
    # Fitting is CPU work of minutes on a large shop: in a thread, so that a serving process
    # running the job goes on answering requests.
    models = await asyncio.to_thread(components.fit, data, settings, say, timings=seconds)
    seconds["fit"] = time.perf_counter() - started
    data_stats = data.stats
    del data  # its arrays are no longer needed while the rows are written

    started = time.perf_counter()
    rows: dict[str, int] = {}
    cf = sum(
        1 for near in models.neighbours.values() for n in near if n.source is NeighbourSource.CF
    )
    for name, table, columns, produce in (
        ("neighbours", RecommendationNeighbour, NEIGHBOUR_COLUMNS, neighbour_rows),
        ("rules", RecommendationRule, RULE_COLUMNS, rule_rows),
        ("popularity", RecommendationPopularity, POPULARITY_COLUMNS, popularity_rows),
        ("cycles", RecommendationCycle, CYCLE_COLUMNS, cycle_rows),
    ):
        rows[name] = await write_rows(
            sessions, table.__tablename__, columns, produce(build_id, models)
        )
        say(f"{rows[name]:,} {name} rows written")
    rows = {
        "cf_neighbours": cf,
        "content_neighbours": rows["neighbours"] - cf,
        "rules": rows["rules"],
        "popularity": rows["popularity"],
        "cycles": rows["cycles"],
    }
    del models
    seconds["write"] = time.perf_counter() - started

    started = time.perf_counter()
    caught_up = await catch_up(sessions, settings, build_id, loaded_at)
    say(f"{caught_up:,} products changed meanwhile caught up")
    seconds["catch_up"] = time.perf_counter() - started
    seconds["total"] = time.perf_counter() - began
    stats = {
        "data": dict(data_stats),
        "rows": rows,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "peak_memory_mb": round(peak_memory_mb(), 1),
    }
    deleted = await _publish(sessions, build_id, stats)
    say(f"build {build_id} READY" + (f", {len(deleted)} old builds deleted" if deleted else ""))
    return RebuildReport(build_id, BuildStatus.READY, stats)


# --- one product's content neighbours, at once ------------------------------------------------


def _row(product: Product) -> ProductRow:
    assert product.id is not None
    return ProductRow(
        id=product.id,
        name=product.name,
        description=product.description,
        category_id=product.category_id,
        brand=product.brand,
        tags=tuple(str(t) for t in product.tags or ()),
        attributes=dict(product.attributes or {}),
        created_at=utc(product.created_at),
        is_active=product.is_active,
    )


def _subtree(parents: dict[int, int | None], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for cid, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(cid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


async def _candidates(
    session: AsyncSession, product: Product, parents: dict[int, int | None]
) -> list[ProductRow]:
    """The products a product's content neighbours are looked for among: the most recent
    active ones of its category's parent's subtree (its own category and its siblings), and
    of its brand."""
    newest = (col(Product.created_at).desc(), col(Product.id).desc())
    found: dict[int, Product] = {}
    if product.category_id is not None:
        root = parents.get(product.category_id) or product.category_id
        stmt = (
            select(Product)
            .where(
                col(Product.category_id).in_(_subtree(parents, root)),
                col(Product.is_active).is_(True),
            )
            .order_by(*newest)
            .limit(REFRESH_CANDIDATES)
        )
        found.update((p.id or 0, p) for p in (await session.scalars(stmt)).all())
    if product.brand:
        stmt = (
            select(Product)
            .where(col(Product.brand) == product.brand, col(Product.is_active).is_(True))
            .order_by(*newest)
            .limit(REFRESH_CANDIDATES)
        )
        found.update((p.id or 0, p) for p in (await session.scalars(stmt)).all())
    return [_row(p) for pid, p in sorted(found.items()) if pid != product.id]


async def content_of(
    session: AsyncSession, settings: RecommendationSettings, product_id: int
) -> list[tuple[int, float]]:
    """One product's CONTENT neighbours, found among :func:`_candidates` and featurised as a
    rebuild does: (product id, cosine), best first; none for a product that is gone."""
    product = await session.get(Product, product_id)
    if product is None:
        return []
    parents, names = await load_categories(session)
    candidates = await _candidates(session, product, parents)
    return await asyncio.to_thread(
        components.content_neighbours_of,
        _row(product),
        candidates,
        names,
        components.category_ancestors(parents),
        settings.neighbours,
    )


async def write_content(
    session: AsyncSession, build_id: int, product_id: int, near: Sequence[tuple[int, float]]
) -> None:
    """Replace the product's CONTENT neighbours in build ``build_id`` with ``near``."""
    await session.execute(
        delete(RecommendationNeighbour).where(
            col(RecommendationNeighbour.build_id) == build_id,
            col(RecommendationNeighbour.product_id) == product_id,
            col(RecommendationNeighbour.source) == NeighbourSource.CONTENT,
        )
    )
    if near:
        await session.execute(
            insert(RecommendationNeighbour),
            [
                {
                    "build_id": build_id,
                    "product_id": product_id,
                    "neighbour_id": neighbour_id,
                    "source": NeighbourSource.CONTENT,
                    "score": score,
                    "rank": rank,
                }
                for rank, (neighbour_id, score) in enumerate(near, 1)
            ],
        )


async def refresh_product(
    session: AsyncSession, settings: RecommendationSettings, product_id: int
) -> int:
    """The ``product_changed`` event's work (in its delivery's transaction): the product's
    CONTENT neighbours recomputed into the current build, replacing those it had there;
    returns how many it has now. No build yet: nothing to do (the first rebuild will see
    the product)."""
    build_id = await current_build_id(session)
    if build_id is None:
        return 0
    near = await content_of(session, settings, product_id)
    await write_content(session, build_id, product_id, near)
    return len(near)


async def catch_up(
    sessions: async_sessionmaker[AsyncSession],
    settings: RecommendationSettings,
    build_id: int,
    since: datetime,
) -> int:
    """Content neighbours, in the new build, for the products created or changed after the
    rebuild began to read (their events went to the build served then)."""
    async with sessions() as session:
        found = await session.scalars(
            select(col(Product.id))
            .where(or_(col(Product.created_at) >= since, col(Product.updated_at) >= since))
            .order_by(col(Product.id))
            .limit(CATCH_UP_LIMIT)
        )
        changed = [i for i in found.all() if i is not None]
    for product_id in changed:
        async with sessions() as session:
            near = await content_of(session, settings, product_id)
        # A transaction of its own that opens with a write (SQLite takes its lock then).
        async with sessions() as session:
            await write_content(session, build_id, product_id, near)
            await session.commit()
    return len(changed)


async def run_job(ctx: JobContext) -> None:
    """The job ``recommendation.rebuild``."""
    report = await rebuild(ctx)
    ctx.progress(report.summary())
