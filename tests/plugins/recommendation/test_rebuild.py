"""Rebuilding the models: a build written whole then served, failures that leave the served
build alone, two rebuilds at once, the job on the command line, and new products' content
neighbours the moment they are created — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from strawberry import relay

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
from plugins.recommendation.service.data import load_training_data
from plugins.recommendation.service.rebuild import STEPS, current_build_id, rebuild
from plugins.recommendation.service.settings import RecommendationSettings
from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import (
    Category,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
    StaffRole,
    utcnow,
)
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_category, make_product
from tests.support.graphql import GraphQLClient
from tests.support.waiting import eventually

SETTINGS = RecommendationSettings(neighbours=5, min_pair_orders=2)


async def seed_shop(session: AsyncSession) -> dict[str, Product]:
    """Tea and coffee: customers who buy green tea with a teapot, again every two weeks;
    browsing that links the teas; one coffee drinker."""
    food = await make_category(session, "食品", commit=False)
    tea = await make_category(session, "茶叶", parent=food, commit=False)
    coffee = await make_category(session, "咖啡", parent=food, commit=False)
    names = {
        "green": ("西湖 龙井绿茶 250g", tea, "西湖"),
        "jasmine": ("西湖 茉莉花茶 250g", tea, "西湖"),
        "pot": ("紫砂茶壶", tea, "宜兴"),
        "beans": ("云南 意式咖啡豆 500g", coffee, "云南"),
        "drip": ("云南 挂耳咖啡", coffee, "云南"),
    }
    products = {
        key: await make_product(session, name, category=cat, brand=brand, commit=False)
        for key, (name, cat, brand) in names.items()
    }
    variants = {
        p.id: (
            await session.execute(select(ProductVariant).where(ProductVariant.product_id == p.id))
        ).scalar_one()
        for p in products.values()
    }
    now = utcnow()
    serial = 0

    async def order(customer_id: int | None, days_ago: float, keys: list[str]) -> None:
        nonlocal serial
        serial += 1
        o = Order(
            number=f"REC-{serial}",
            customer_id=customer_id,
            status=OrderStatus.PAID,
            placed_at=now - timedelta(days=days_ago),
        )
        session.add(o)
        await session.flush()
        for key in keys:
            p = products[key]
            session.add(
                OrderLine(
                    order_id=o.id,  # type: ignore[arg-type]  # flushed
                    product_id=p.id,  # type: ignore[arg-type]  # flushed
                    variant_id=variants[p.id].id,  # type: ignore[arg-type]  # flushed
                    sku=p.sku,
                    product_name=p.name,
                    quantity=1,
                    base_unit_price_amount=p.price_amount,
                    unit_price_amount=p.price_amount,
                    line_total_amount=p.price_amount,
                )
            )

    tea_drinkers = [await make_customer(session) for _ in range(3)]
    for c in tea_drinkers:
        await order(c.id, 40, ["green", "pot"])
        await order(c.id, 26, ["green"])
        await order(c.id, 12, ["green", "jasmine"])
    coffee_drinker = await make_customer(session)
    await order(coffee_drinker.id, 5, ["beans", "drip"])
    for i, c in enumerate(tea_drinkers):
        for key in ("green", "jasmine"):
            session.add(
                CustomerEvent(
                    kind=CustomerEventKind.VIEW,
                    customer_id=c.id,
                    product_id=products[key].id,
                    occurred_at=now - timedelta(days=i + 1),
                )
            )
    session.add(
        CustomerEvent(
            kind=CustomerEventKind.ADD_TO_CART,
            session_id="anon-1",
            product_id=products["drip"].id,
            occurred_at=now - timedelta(hours=2),
        )
    )
    await session.commit()
    return products


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _count(session: AsyncSession, table: Any, build_id: int, **where: Any) -> int:
    stmt = select(func.count()).select_from(table).where(col(table.build_id) == build_id)
    for name, value in where.items():
        stmt = stmt.where(getattr(table, name) == value)
    return int(await session.scalar(stmt) or 0)


async def _builds(session: AsyncSession) -> dict[int, BuildStatus]:
    rows = (
        await session.execute(select(col(RecommendationBuild.id), col(RecommendationBuild.status)))
    ).all()
    return {int(i): s for i, s in rows}


async def _complete(session: AsyncSession, build_id: int) -> bool:
    """Whether a build holds every row its stats count."""
    build = await session.get(RecommendationBuild, build_id)
    assert build is not None
    rows = build.stats["rows"]
    return (
        await _count(session, RecommendationNeighbour, build_id, source=NeighbourSource.CF)
        == rows["cf_neighbours"]
        and await _count(session, RecommendationNeighbour, build_id, source=NeighbourSource.CONTENT)
        == rows["content_neighbours"]
        and await _count(session, RecommendationRule, build_id) == rows["rules"]
        and await _count(session, RecommendationPopularity, build_id) == rows["popularity"]
        and await _count(session, RecommendationCycle, build_id) == rows["cycles"]
    )


async def test_a_rebuild_writes_every_row_of_the_models_and_serves_them(
    sessions: async_sessionmaker[AsyncSession],
):
    async with sessions() as session:
        products = await seed_shop(session)
    notes: list[str] = []
    report = await rebuild(sessions, SETTINGS, notes.append)
    assert report.status is BuildStatus.READY
    assert len(notes) == STEPS
    assert notes[-1] == f"build {report.build_id} READY"
    stats = report.stats
    assert stats["data"]["orders"] == 10 and stats["data"]["events"] == 7
    assert stats["peak_memory_mb"] > 0
    assert set(stats["seconds"]) >= {"load", "cf", "content", "rules", "fit", "write", "total"}

    # The rows are what the components fit on the same data (the scores up to the decay of
    # the moments between the two reads).
    async with sessions() as session:
        assert await current_build_id(session) == report.build_id
        build = await session.get(RecommendationBuild, report.build_id)
        assert build is not None and build.status is BuildStatus.READY
        assert build.finished_at is not None and build.stats == stats
        assert await _complete(session, report.build_id)
        data = await load_training_data(session, SETTINGS)
        models = components.fit(data, SETTINGS)
        near = (
            await session.execute(
                select(
                    col(RecommendationNeighbour.product_id),
                    col(RecommendationNeighbour.source),
                    col(RecommendationNeighbour.rank),
                    col(RecommendationNeighbour.neighbour_id),
                    col(RecommendationNeighbour.score),
                ).where(col(RecommendationNeighbour.build_id) == report.build_id)
            )
        ).all()
        rules = (
            await session.execute(
                select(RecommendationRule).where(
                    col(RecommendationRule.build_id) == report.build_id
                )
            )
        ).scalars()
        cycles = (
            await session.execute(
                select(RecommendationCycle).where(
                    col(RecommendationCycle.build_id) == report.build_id
                )
            )
        ).scalars()
        popular = (
            await session.execute(
                select(RecommendationPopularity).where(
                    col(RecommendationPopularity.build_id) == report.build_id
                )
            )
        ).scalars()
        written_rules = {(r.antecedent_id, r.rank): r for r in rules}
        written_cycles = {c.product_id: c for c in cycles}
        written_popular = {(p.category_id, p.rank): p for p in popular}

    expected = {}
    for pid, found in models.neighbours.items():
        ranks = dict.fromkeys(NeighbourSource, 0)
        for n in found:
            ranks[n.source] += 1
            expected[(pid, n.source, ranks[n.source])] = (n.product_id, n.score)
    assert {(p, s, r): (n, pytest.approx(v)) for p, s, r, n, v in near} == expected
    assert len(written_rules) == sum(len(v) for v in models.rules.values())
    for pid, found_rules in models.rules.items():
        for rank, rule in enumerate(found_rules, 1):
            row = written_rules[(pid, rank)]
            assert (row.consequent_id, row.orders) == (rule.consequent_id, rule.orders)
            assert (row.support, row.confidence, row.lift) == pytest.approx(
                (rule.support, rule.confidence, rule.lift)
            )
    assert {
        pid: (c.buyers, c.repeat_buyers, c.interval_days, c.consumable)
        for pid, c in written_cycles.items()
    } == {
        pid: (c.buyers, c.repeat_buyers, pytest.approx(c.interval_days), c.consumable)
        for pid, c in models.cycles.items()
    }
    assert {k: v.product_id for k, v in written_popular.items()} == {
        (cat, rank): p.product_id
        for cat, found_popular in models.popular.items()
        for rank, p in enumerate(found_popular, 1)
    }
    # What the shop says: green tea is bought with the teapot and jasmine (each in 3 of
    # green tea's 9 orders, of 10: lift (3/9) / (3/10) = 10/9), again every 14 days.
    green, jasmine, pot = (products[k].id for k in ("green", "jasmine", "pot"))
    assert {r.consequent_id: r.lift for r in models.rules[green]} == {
        jasmine: pytest.approx(10 / 9),
        pot: pytest.approx(10 / 9),
    }
    assert models.cycles[green].interval_days == pytest.approx(14.0)
    assert models.cycles[green].consumable
    assert models.neighbours[green][0].product_id == jasmine


async def test_builds_before_the_previously_served_one_are_deleted(
    sessions: async_sessionmaker[AsyncSession],
):
    async with sessions() as session:
        await seed_shop(session)
    first, second, third = [(await rebuild(sessions, SETTINGS)).build_id for _ in range(3)]
    async with sessions() as session:
        # The third is served; the second stays for requests that began on it.
        assert await _builds(session) == {second: BuildStatus.READY, third: BuildStatus.READY}
        assert await current_build_id(session) == third
        assert await _count(session, RecommendationNeighbour, first) == 0
        assert await _count(session, RecommendationPopularity, first) == 0
        assert await _complete(session, second) and await _complete(session, third)


async def test_a_failed_rebuild_leaves_the_served_build_alone(
    sessions: async_sessionmaker[AsyncSession],
):
    async with sessions() as session:
        await seed_shop(session)
    served = (await rebuild(sessions, SETTINGS)).build_id

    def broken_pipe(what: str) -> None:
        # The command line's stderr went away after the rules were fitted.
        if what.startswith("association rules"):
            raise BrokenPipeError("stderr closed")

    with pytest.raises(BrokenPipeError):
        await rebuild(sessions, SETTINGS, broken_pipe)

    def after_writing(what: str) -> None:
        if "cycles rows written" in what:  # every row is in, the build not yet READY
            raise BrokenPipeError("stderr closed")

    with pytest.raises(BrokenPipeError):
        await rebuild(sessions, SETTINGS, after_writing)
    async with sessions() as session:
        builds = await _builds(session)
        failed = [i for i, s in builds.items() if s is BuildStatus.FAILED]
        assert len(failed) == 2 and builds[served] is BuildStatus.READY
        assert await current_build_id(session) == served
        assert await _complete(session, served)
        for build_id in failed:  # what they wrote is gone
            assert await _count(session, RecommendationNeighbour, build_id) == 0
            assert await _count(session, RecommendationCycle, build_id) == 0
            build = await session.get(RecommendationBuild, build_id)
            assert build is not None and "BrokenPipeError" in build.stats["error"]
    # The next rebuild is served, and clears the failed ones away with the older builds.
    latest = (await rebuild(sessions, SETTINGS)).build_id
    again = (await rebuild(sessions, SETTINGS)).build_id
    async with sessions() as session:
        assert await _builds(session) == {latest: BuildStatus.READY, again: BuildStatus.READY}


async def test_two_rebuilds_at_once_never_corrupt_the_served_build(database_url: str):
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        one, two = (session_factory(e) for e in engines)
        async with one() as session:
            await seed_shop(session)
        served = (await rebuild(one, SETTINGS)).build_id
        # Two processes (engines of their own) rebuilding at the same time, small batches so
        # that their writes interleave.
        from plugins.recommendation.service import rebuild as rebuild_module

        rebuild_module.BATCH, batch = 3, rebuild_module.BATCH
        try:
            first, second = await asyncio.gather(rebuild(one, SETTINGS), rebuild(two, SETTINGS))
        finally:
            rebuild_module.BATCH = batch
        async with one() as session:
            builds = await _builds(session)
            newest = max(first.build_id, second.build_id)
            assert await current_build_id(session) == newest
            assert builds[newest] is BuildStatus.READY
            # Whatever order they finished in, every build left READY is whole.
            for build_id, status in builds.items():
                assert status is BuildStatus.READY
                assert await _complete(session, build_id)
            assert first.status is second.status is BuildStatus.READY
            # The build served before is deleted only by a rebuild that saw a newer one READY.
            assert served in builds or min(first.build_id, second.build_id) in builds
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_job_runs_from_the_command_line_with_its_progress(
    sessions: async_sessionmaker[AsyncSession], database_url: str
):
    async with sessions() as session:
        await seed_shop(session)
    env = {
        "SHOPGRAPH_DATABASE_URL": database_url,
        "SHOPGRAPH_RECOMMENDATION_NEIGHBOURS": "5",
    }
    result = CliRunner().invoke(cli, ["jobs", "run", "recommendation.rebuild"], env=env)
    assert result.exit_code == 0, result.output
    assert "ran recommendation.rebuild" in result.stdout
    lines = result.stderr.splitlines()
    prefix = "jobs: recommendation.rebuild: "
    said = [
        line.removeprefix(prefix).removesuffix(" (0/1)")
        for line in lines
        if line.startswith(prefix)
    ]
    assert said[0].startswith("build ") and said[0].endswith(" started")
    assert any(s.startswith("5 products read") for s in said)
    assert any(s.startswith("collaborative filtering: ") for s in said)
    assert any(" READY: " in s and "peak memory" in s for s in said)
    assert lines[-1] == "jobs: recommendation.rebuild ran (1/1)"
    async with sessions() as session:
        build_id = await current_build_id(session)
        assert build_id is not None
        build = await session.get(RecommendationBuild, build_id)
        assert build is not None and build.status is BuildStatus.READY
        # The job ran with the plugin's settings from the environment.
        assert await _count(session, RecommendationNeighbour, build_id) > 0
        ranks = await session.scalar(
            select(func.max(col(RecommendationNeighbour.rank))).where(
                col(RecommendationNeighbour.build_id) == build_id
            )
        )
        assert ranks is not None and ranks <= 5
    # Not due again before its interval (--only NAME says the same); --force runs it.
    again = CliRunner().invoke(cli, ["jobs", "run", "--only", "recommendation.rebuild"], env=env)
    assert "not due recommendation.rebuild" in again.stdout
    forced = CliRunner().invoke(cli, ["jobs", "run", "recommendation.rebuild", "--force"], env=env)
    assert "ran recommendation.rebuild" in forced.stdout
    clash = CliRunner().invoke(cli, ["jobs", "run", "core.insights", "--only", "core.kpis"])
    assert clash.exit_code == 2 and "two jobs named" in clash.output


CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  __typename ... on CreateProductSuccess { product { id } } ... on Error { code message } } }"""


async def test_a_new_product_gets_content_neighbours_when_it_is_created(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
):
    products = await seed_shop(session)
    build_id = (await rebuild(sessions, SETTINGS)).build_id
    tea = await session.scalar(select(Category).where(Category.name == "茶叶"))
    assert tea is not None
    staff = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    created = await staff(
        CREATE_PRODUCT,
        {
            "input": {
                "sku": "TEA-NEW",
                "name": "西湖 龙井绿茶 礼盒",
                "brand": "西湖",
                "categoryId": relay.to_base64("Category", tea.id),
                "price": {"amount": "88.00"},
            }
        },
    )
    assert created["createProduct"]["__typename"] == "CreateProductSuccess", created
    new_id = int(relay.GlobalID.from_id(created["createProduct"]["product"]["id"]).node_id)

    async def neighbours() -> list[tuple[int, int]]:
        async with sessions() as s:
            rows = await s.execute(
                select(col(RecommendationNeighbour.rank), col(RecommendationNeighbour.neighbour_id))
                .where(
                    col(RecommendationNeighbour.build_id) == build_id,
                    col(RecommendationNeighbour.product_id) == new_id,
                    col(RecommendationNeighbour.source) == NeighbourSource.CONTENT,
                )
                .order_by(col(RecommendationNeighbour.rank))
            )
            return [(int(r), int(n)) for r, n in rows.all()]

    await eventually(lambda: _nonempty(neighbours()), seconds=10)
    found = await neighbours()
    # The tea of the same name and brand first; the coffees of another brand and category
    # share no more than the parent category's name.
    assert found[0] == (1, products["green"].id)
    assert [r for r, _ in found] == list(range(1, len(found) + 1))
    assert {n for _, n in found} <= {p.id for p in products.values()}


async def _nonempty(rows: Any) -> bool:
    return bool(await rows)
