"""The running promotions are parsed once per process and kept under the version row the
database's triggers renew: every change (created, paused, ended, edited, deleted; by any
connection or process) is seen by the next transaction; a window opening or closing is seen
at once; counters, which checkouts move without renewing the version, are read fresh."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    Campaign,
    Promotion,
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    PromotionsVersion,
)
from plugins.promotions.service import context
from plugins.promotions.service.engine import MissCode
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.plugins import load_plugins
from tests.support.orders import make_product
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[3]
PRICES = "{ products(first: 10) { nodes { id price { amount } } } }"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url)
    yield made
    await made.dispose()


async def _running(engine: AsyncEngine, at: datetime) -> dict[int, context.Promo]:
    """What one request's transaction sees running at ``at``."""
    async with session_factory(engine)() as session, session.begin():
        return {p.id: p for p in await context.running(session, at)}


async def _version(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        value = await session.scalar(select(col(PromotionsVersion.value)))
        assert value is not None
        return int(value)


def _flash(product_id: int, **fields: object) -> Promotion:
    fields.setdefault("name", f"flash {product_id}")
    return Promotion(
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 2000},
        product_ids=[product_id],
        **fields,
    )


async def _set(engine: AsyncEngine, promotion_id: int, **values: object) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Promotion).where(col(Promotion.id) == promotion_id).values(**values)
        )


async def test_every_change_is_seen_by_the_next_transaction(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    now = datetime.now(UTC)
    product = await make_product(session, price=10000)
    assert product.id is not None
    assert await _running(engine, now) == {}
    row = _flash(product.id, ends_at=now + timedelta(minutes=10))
    campaign = Campaign(name="spring", budget_amount=5000)
    session.add_all([row, campaign])
    await session.commit()
    assert row.id is not None and campaign.id is not None

    # Created: running at once; kept, then read again from what was kept.
    assert list(await _running(engine, now)) == [row.id]
    assert list(await _running(engine, now)) == [row.id]
    # The window is checked per request against ``at``, with no write in between.
    assert await _running(engine, now + timedelta(minutes=10)) == {}
    await _set(engine, row.id, starts_at=now + timedelta(minutes=5))
    assert await _running(engine, now) == {}
    assert list(await _running(engine, now + timedelta(minutes=6))) == [row.id]
    await _set(engine, row.id, starts_at=None)

    # Paused, resumed, edited, ended.
    await _set(engine, row.id, status=PromotionStatus.PAUSED)
    assert await _running(engine, now) == {}
    await _set(engine, row.id, status=PromotionStatus.ACTIVE)
    assert list(await _running(engine, now)) == [row.id]
    await _set(engine, row.id, rules={"percent_off_bp": 3000})
    assert (await _running(engine, now))[row.id].rules.percent_off_bp == 3000
    await _set(engine, row.id, status=PromotionStatus.ENDED)
    assert await _running(engine, now) == {}
    await _set(engine, row.id, status=PromotionStatus.ACTIVE)

    # A limit: the counter moves at checkout without renewing the version, and is read fresh.
    await _set(engine, row.id, total_limit=2)
    assert (await _running(engine, now))[row.id].not_running(now) is None
    version = await _version(engine)
    await _set(engine, row.id, used_count=Promotion.used_count + 2)
    assert await _version(engine) == version
    stopped = (await _running(engine, now))[row.id].not_running(now)
    assert stopped is not None and stopped[0] is MissCode.LIMIT_REACHED
    await _set(engine, row.id, used_count=1)
    assert (await _running(engine, now))[row.id].not_running(now) is None
    await _set(engine, row.id, unit_limit=5, units_sold=5)
    stopped = (await _running(engine, now))[row.id].not_running(now)
    assert stopped is not None and stopped[0] is MissCode.LIMIT_REACHED
    await _set(engine, row.id, unit_limit=None)

    # A campaign's budget spent at checkout (its counter alone moves) stops its promotions.
    await _set(engine, row.id, campaign_id=campaign.id)
    assert (await _running(engine, now))[row.id].not_running(now) is None
    version = await _version(engine)
    async with session_factory(engine)() as other, other.begin():
        await other.execute(
            update(Campaign).where(col(Campaign.id) == campaign.id).values(spent_amount=5000)
        )
    assert await _version(engine) == version
    stopped = (await _running(engine, now))[row.id].not_running(now)
    assert stopped is not None and stopped[0] is MissCode.BUDGET_SPENT
    async with session_factory(engine)() as other, other.begin():
        await other.execute(
            update(Campaign)
            .where(col(Campaign.id) == campaign.id)
            .values(status=PromotionStatus.PAUSED, spent_amount=0)
        )
    # The status moved with the counter: the campaign row is read fresh with the counters.
    stopped = (await _running(engine, now))[row.id].not_running(now)
    assert stopped is not None and stopped[0] is MissCode.PAUSED

    # Deleted.
    await session.delete(await session.get(Promotion, row.id))
    await session.commit()
    assert await _running(engine, now) == {}


async def test_a_change_rolled_back_leaves_nothing_kept(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    now = datetime.now(UTC)
    product = await make_product(session, price=10000)
    assert product.id is not None
    assert await _running(engine, now) == {}
    async with session_factory(engine)() as writer:
        writer.add(_flash(product.id))
        await writer.flush()
        # Read (and kept) inside the transaction that wrote it...
        assert len(await context.running(writer, now)) == 1
        await writer.rollback()
    # ...which rolled back: another change must not be mistaken for it.
    other = _flash(product.id, name="other")
    session.add(other)
    await session.commit()
    assert list(await _running(engine, now)) == [other.id]


async def _prices(client: httpx.AsyncClient) -> dict[str, str]:
    answer = (await client.post("/graphql", json={"query": PRICES})).json()
    return {n["id"]: n["price"]["amount"] for n in answer["data"]["products"]["nodes"]}


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from sqlalchemy import update
    from plugins.promotions.models import Promotion, PromotionStatus
    from plugins.promotions.service import context
    from server.db import create_engine, session_factory

    async def main(url):
        engine = create_engine(url)
        factory = session_factory(engine)

        async def running():
            async with factory() as session, session.begin():
                promos = await context.running(session, datetime.now(UTC))
                return [f"{p.id}:{p.rules.percent_off_bp}" for p in promos]

        print(*await running(), flush=True)  # kept in this process
        sys.stdin.readline()  # the other process changed something
        print(*await running(), flush=True)
        async with factory() as session, session.begin():
            await session.execute(update(Promotion).values(status=PromotionStatus.PAUSED))
        print("paused", flush=True)
        await engine.dispose()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_two_processes_over_one_database_see_each_others_changes(
    settings: Settings, session: AsyncSession, engine: AsyncEngine, database_url: str
) -> None:
    product = await make_product(session, price=10000)
    assert product.id is not None
    first = _flash(product.id)
    session.add(first)
    await session.commit()
    first_id = first.id
    await session.close()  # no transaction of this session left open (SQLite's writers wait)
    # Two servers in this process, and another process, over one database (no response
    # cache: what is measured is each request's own reading).
    cold = settings.model_copy(update={"response_cache": False})
    servers = [LiveServer(create_app(cold, load_plugins(cold))).start() for _ in "ab"]
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        database_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        async with (
            httpx.AsyncClient(base_url=servers[0].url) as a,
            httpx.AsyncClient(base_url=servers[1].url) as b,
        ):
            node = next(iter(await _prices(a)))
            assert (await _prices(a))[node] == (await _prices(b))[node] == "80.00"
            assert (await asyncio.wait_for(writer.stdout.readline(), 60)).split() == [
                f"{first_id}:2000".encode()
            ]
            # This process changes the discount: both servers and the other process see it.
            await _set(engine, first_id or 0, rules={"percent_off_bp": 5000})
            assert (await _prices(a))[node] == (await _prices(b))[node] == "50.00"
            writer.stdin.write(b"go\n")
            await writer.stdin.drain()
            assert (await asyncio.wait_for(writer.stdout.readline(), 60)).split() == [
                f"{first_id}:5000".encode()
            ]
            # The other process pauses it: the servers here see it on their next request.
            assert (await asyncio.wait_for(writer.stdout.readline(), 60)).strip() == b"paused"
            assert (await _prices(a))[node] == (await _prices(b))[node] == "100.00"
    finally:
        writer.stdin.close()
        await asyncio.wait_for(writer.wait(), 60)
        for server in servers:
            server.stop()
