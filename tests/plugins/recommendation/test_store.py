"""The two model stores answer alike: ``SqlStore`` over a build's rows and ``MemoryStore``
over the same models in memory (what the offline evaluation ranks with), on SQLite and
PostgreSQL; the SQL store reads the newest READY build, one statement per call whatever the
number of ids, and the catalogue's answers need no build at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import BuildStatus, NeighbourSource
from plugins.recommendation.service.store import (
    Cycle,
    MemoryStore,
    Models,
    Neighbour,
    Popular,
    ProductFacts,
    Rule,
    SqlStore,
)
from tests.plugins.recommendation.support import write_build
from tests.support.catalog import make_category, make_product

CF, CONTENT = NeighbourSource.CF, NeighbourSource.CONTENT
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = session.bind.sync_engine

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def _shop(session: AsyncSession) -> tuple[Models, dict[str, int]]:
    """A category tree 食品 > 饮料 > 咖啡 and 数码, ten products of known ages, and models
    over them with ties, both sources and every kind of list."""
    food = await make_category(session, "食品", commit=False)
    drinks = await make_category(session, "饮料", parent=food, commit=False)
    coffee = await make_category(session, "咖啡", parent=drinks, commit=False)
    digital = await make_category(session, "数码", commit=False)
    cats = {"food": food, "drinks": drinks, "coffee": coffee, "digital": digital}
    placed = [
        ("p1", "coffee", 1),
        ("p2", "coffee", 3),
        ("p3", "drinks", 2),
        ("p4", "food", 5),
        ("p5", "drinks", 40),
        ("p6", "digital", 1),
        ("p7", "digital", 4),
        ("p8", "digital", 4),
        ("p9", None, 1),
        ("p10", "coffee", 0),
    ]
    ids: dict[str, int] = {}
    facts: dict[int, ProductFacts] = {}
    for name, cat, age in placed:
        category = cats[cat] if cat else None
        product = await make_product(
            session,
            name,
            category=category,
            created_at=NOW - timedelta(days=age),
            commit=False,
        )
        assert product.id is not None
        ids[name] = product.id
        facts[product.id] = ProductFacts(
            product.id, category.id if category else None, NOW - timedelta(days=age)
        )
    await session.commit()
    p = ids
    models = Models(
        neighbours={
            p["p1"]: [
                Neighbour(p["p2"], 0.9, CF),
                Neighbour(p["p3"], 0.5, CF),
                Neighbour(p["p4"], 0.5, CF),
                Neighbour(p["p3"], 0.7, CONTENT),
                Neighbour(p["p5"], 0.2, CONTENT),
            ],
            p["p6"]: [Neighbour(p["p7"], 0.8, CONTENT), Neighbour(p["p8"], 0.8, CONTENT)],
        },
        rules={
            p["p1"]: [
                Rule(p["p1"], p["p3"], 4, 0.04, 0.5, 3.0),
                Rule(p["p1"], p["p2"], 6, 0.06, 0.6, 2.0),
                Rule(p["p1"], p["p6"], 2, 0.02, 0.2, 1.1),
            ],
            p["p7"]: [Rule(p["p7"], p["p8"], 3, 0.03, 0.3, 5.0)],
        },
        popular={
            None: [Popular(p["p6"], 9.0), Popular(p["p1"], 7.5), Popular(p["p9"], 1.0)],
            food.id: [Popular(p["p1"], 7.5), Popular(p["p4"], 2.0)],
            coffee.id: [Popular(p["p1"], 7.5), Popular(p["p2"], 0.5)],
        },
        cycles={
            p["p1"]: Cycle(p["p1"], 20, 12, 14.0, True),
            p["p6"]: Cycle(p["p6"], 5, 0, None, False),
        },
        products=facts,
        categories={
            food.id: [],
            drinks.id: [food.id],
            coffee.id: [drinks.id, food.id],
            digital.id: [],
        },
    )
    ids |= {f"cat:{k}": v.id for k, v in cats.items()}
    return models, ids


async def test_both_stores_answer_alike(session: AsyncSession) -> None:
    models, ids = await _shop(session)
    await write_build(session, models)
    sql, memory = SqlStore(session), MemoryStore(models)
    p = ids
    every = [ids[f"p{i}"] for i in range(1, 11)] + [987654]
    cats = [ids["cat:food"], ids["cat:drinks"], ids["cat:coffee"], ids["cat:digital"]]

    async def same(method: str, *args: Any) -> Any:
        a = await getattr(sql, method)(*args)
        b = await getattr(memory, method)(*args)
        assert a == b, (method, args)
        return a

    for k in (1, 2, 30):
        for sources in ((CF,), (CONTENT,), (CF, CONTENT)):
            await same("neighbours", every, sources, k)
        await same("rules", every, k)
        await same("popular", [*cats, None], k)
        await same("popular", cats, k)
        await same("newest", cats, NOW - timedelta(days=4), k)
    await same("cycles", every)
    await same("products", every)

    # What the answers are, by hand: sources merged best first, ties by product id.
    near = await same("neighbours", [p["p1"]], (CF, CONTENT), 2)
    assert near == {
        p["p1"]: [
            Neighbour(p["p2"], 0.9, CF),
            Neighbour(p["p3"], 0.7, CONTENT),
            Neighbour(p["p3"], 0.5, CF),
            Neighbour(p["p5"], 0.2, CONTENT),
        ]
    }
    rules = await same("rules", [p["p1"]], 2)
    assert [r.consequent_id for r in rules[p["p1"]]] == [p["p3"], p["p2"]]
    popular = await same("popular", [None, ids["cat:coffee"]], 1)
    assert popular == {None: [Popular(p["p6"], 9.0)], ids["cat:coffee"]: [Popular(p["p1"], 7.5)]}
    # A category's newest are its whole subtree's, newest first (ties: the higher id).
    newest = await same("newest", cats, NOW - timedelta(days=4), 10)
    assert newest == {
        ids["cat:food"]: [p["p10"], p["p1"], p["p3"], p["p2"]],
        ids["cat:drinks"]: [p["p10"], p["p1"], p["p3"], p["p2"]],
        ids["cat:coffee"]: [p["p10"], p["p1"], p["p2"]],
        ids["cat:digital"]: [p["p6"], p["p8"], p["p7"]],
    }
    assert set(await same("cycles", every)) == {p["p1"], p["p6"]}


async def test_each_call_is_one_statement_whatever_the_number_of_ids(
    session: AsyncSession,
) -> None:
    models, ids = await _shop(session)
    await write_build(session, models)
    every = [ids[f"p{i}"] for i in range(1, 11)]
    cats = [ids["cat:food"], ids["cat:drinks"], ids["cat:coffee"], ids["cat:digital"]]
    store = SqlStore(session)
    with statements(session) as seen:
        await store.neighbours(every[:1], (CF,), 5)
    assert len(seen) == 2  # the build, then its neighbours
    for call in (
        lambda s: s.neighbours(every, (CF, CONTENT), 5),
        lambda s: s.rules(every, 5),
        lambda s: s.popular([*cats, None], 5),
        lambda s: s.cycles(every),
        lambda s: s.products(every),
        lambda s: s.newest(cats, NOW - timedelta(days=30), 5),
    ):
        with statements(session) as seen:
            await call(store)
        assert len(seen) == 1
    # Cycles read once are not read again.
    with statements(session) as seen:
        await store.cycles(every[:3])
    assert seen == []


async def test_the_newest_ready_build_is_read_and_none_is_no_model(
    session: AsyncSession,
) -> None:
    models, ids = await _shop(session)
    p = ids
    # No build at all: the components are empty, the catalogue still answers.
    empty = SqlStore(session)
    assert await empty.build_id() is None
    assert await empty.popular([None], 10) == {}
    assert await empty.neighbours([p["p1"]], (CF, CONTENT), 10) == {}
    assert await empty.rules([p["p1"]], 10) == {}
    assert await empty.cycles([p["p1"]]) == {}
    assert set(await empty.products([p["p1"], p["p6"]])) == {p["p1"], p["p6"]}
    assert await empty.newest([ids["cat:digital"]], NOW - timedelta(days=2), 5) == {
        ids["cat:digital"]: [p["p6"]]
    }
    first = await write_build(session, models)
    newer = Models(popular={None: [Popular(p["p9"], 1.0)]})
    second = await write_build(session, newer)
    await write_build(session, Models(popular={None: [Popular(p["p2"], 1.0)]}), BuildStatus.FAILED)
    await write_build(session, Models(popular={None: [Popular(p["p3"], 1.0)]}), BuildStatus.RUNNING)
    store = SqlStore(session)
    assert await store.build_id() == second != first
    assert await store.popular([None], 5) == {None: [Popular(p["p9"], 1.0)]}
    assert await store.cycles([p["p1"]]) == {}
