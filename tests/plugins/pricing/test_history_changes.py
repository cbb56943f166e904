"""The price history's writers: a catalogue price change (over HTTP, by staff) appends a
CATALOGUE row naming them; the scheduled-boundary job writes a boundary once, however many
processes run it at once; concurrent refreshes of one boundary write one row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.pricing.models import JobMark, PriceHistory, PriceSource, PricingRule, RuleKind
from plugins.pricing.service import history, rules
from plugins.pricing.service.settings import PricingSettings
from server.db import create_engine, session_factory
from server.models import OutboxEvent, Product, StaffRole, utcnow
from server.plugin import PriceItem
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import make_product
from tests.support.waiting import eventually

CONFIG = PricingSettings()
CREATE = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  __typename ... on CreateProductSuccess { product { id } } } }"""
UPDATE = """mutation($input: UpdateProductInput!) { updateProduct(input: $input) {
  __typename } }"""


async def seed(session: AsyncSession) -> dict[str, Any]:
    staff = await make_staff(session, role=StaffRole.CATALOG)
    return {"staff": staff}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, seed) as built:
        yield built


@pytest.fixture
async def sessions(shop: ModuleShop) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(shop.database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


async def _rows(sessions: async_sessionmaker[AsyncSession], product_id: int) -> list[PriceHistory]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(PriceHistory)
                .where(col(PriceHistory.product_id) == product_id)
                .order_by(col(PriceHistory.effective_at), col(PriceHistory.id))
            )
        )


async def test_a_catalogue_price_change_appends_a_row_naming_the_staff(
    gql: GraphQLClient, shop: ModuleShop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    staff = gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded["staff"]))
    created = await staff(
        CREATE, {"input": {"sku": "HIST-1", "name": "炒锅", "price": {"amount": "199.00"}}}
    )
    product_gid = created["createProduct"]["product"]["id"]
    async with sessions() as session:
        product = await session.scalar(select(Product).where(col(Product.sku) == "HIST-1"))
        assert product is not None and product.id is not None
    pid = product.id
    actor = f"staff:{shop.seeded['staff'].id}"

    async def rows_are(n: int) -> bool:
        return len(await _rows(sessions, pid)) == n

    # The product's first row: its creation.
    await eventually(lambda: rows_are(1))
    [first] = await _rows(sessions, pid)
    assert (first.amount, first.previous_amount, first.source, first.actor) == (
        19900,
        None,
        PriceSource.CATALOGUE,
        actor,
    )

    # A change of the name only: no row. A change of the price: a row, effective when the
    # change was made (the event's time), naming who made it.
    await staff(UPDATE, {"input": {"id": product_gid, "name": "不粘炒锅"}})
    await staff(UPDATE, {"input": {"id": product_gid, "price": {"amount": "159.00"}}})
    await eventually(lambda: rows_are(2))
    async with sessions() as session:
        changed = list(
            await session.scalars(
                select(OutboxEvent)
                .where(col(OutboxEvent.name) == "product_changed")
                .order_by(col(OutboxEvent.id).desc())
                .limit(1)
            )
        )
    first, second = await _rows(sessions, pid)
    assert (second.amount, second.previous_amount, second.actor, second.reason) == (
        15900,
        19900,
        actor,
        "catalogue price changed",
    )
    async with sessions() as session:
        product = await session.get(Product, pid)
        assert product is not None and product.updated_at is not None
    # When the change was made: its event's time (or the product's last change, if the name
    # change's event was delivered after the price had changed too).
    assert second.effective_at in (changed[0].created_at, product.updated_at)
    assert changed[0].payload["actor"] == actor


async def _stale_product(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, PricingRule]:
    """A product whose newest history row (12345, a day ago) is not its public price now, and
    a scheduled rule of it that started an hour ago."""
    async with sessions() as session:
        product = await make_product(session, price=10000)
        assert product.id is not None
        session.add(
            PriceHistory(
                product_id=product.id,
                amount=12345,
                source=PriceSource.CATALOGUE,
                effective_at=utcnow() - timedelta(days=2),
            )
        )
        rule = PricingRule(
            name="周末特价",
            kind=RuleKind.SCHEDULED,
            product_id=product.id,
            amount=7000,
            starts_at=utcnow() - timedelta(hours=1),
        )
        session.add(rule)
        await session.commit()
        return product.id, rule


async def _public_price(
    sessions: async_sessionmaker[AsyncSession], product_id: int, at: Any
) -> int:
    async with sessions() as session:
        product = await session.get(Product, product_id)
        assert product is not None
        item = PriceItem(product=product, quantity=1, base=product.price_amount)
        return (await rules.public_prices(session, {product_id: item}, at, CONFIG))[product_id]


async def test_the_boundary_job_writes_a_boundary_once_under_concurrent_runs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pid, rule = await _stale_product(sessions)
    async with sessions() as session:
        await session.execute(JobMark.__table__.delete())  # type: ignore[attr-defined]  # a SQLModel table's Table
        await session.commit()
    now = utcnow()

    async def run() -> int:
        async with sessions() as session:
            written = await history.write_boundaries(session, CONFIG, now)
            await session.commit()
            return len([r for r in written if r.product_id == pid])

    outcomes = await asyncio.gather(run(), run(), run())
    assert sorted(outcomes) == [0, 0, 1]
    schedule = [r for r in await _rows(sessions, pid) if r.source is PriceSource.SCHEDULE]
    assert len(schedule) == 1
    [row] = schedule
    assert row.effective_at == rule.starts_at
    assert (row.previous_amount, row.actor) == (12345, "schedule")
    assert row.amount == await _public_price(sessions, pid, rule.starts_at)
    assert row.rule_id == rule.id
    async with sessions() as session:
        mark = await session.get(JobMark, history.HISTORY_JOB)
        assert mark is not None and mark.mark_at == now
    # A later run starts at the mark: the boundary is behind it.
    async with sessions() as session:
        assert await history.write_boundaries(session, CONFIG, utcnow()) == []
        await session.commit()


async def test_concurrent_refreshes_of_one_boundary_write_one_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pid, rule = await _stale_product(sessions)
    at = rule.starts_at
    assert at is not None

    async def refresh() -> int:
        async with sessions() as session:
            written = await history.refresh(
                session,
                CONFIG,
                product_ids=[pid],
                source=PriceSource.SCHEDULE,
                at=at,
                reason="boundary",
            )
            await session.commit()
            return len(written)

    outcomes = await asyncio.gather(refresh(), refresh(), refresh())
    assert sorted(outcomes) == [0, 0, 1]
    assert len([r for r in await _rows(sessions, pid) if r.source is PriceSource.SCHEDULE]) == 1
