"""The recommendation benchmark's parts on a small shop, on both databases: the generated shop
has the size asked for and the habits the models learn from (repeat buying, baskets, anonymous
browsing), the bulk loader writes what the rebuild reads back, and a rebuild of it is served.
No timing is asserted."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench import recommendation as bench
from plugins.recommendation.models import BuildStatus, RecommendationBuild
from plugins.recommendation.service.data import load_training_data
from plugins.recommendation.service.settings import RecommendationSettings
from server.models import Category, CustomerEvent, Order, OrderLine, Product, StockLevel

SIZES = {"products": 1_500, "customers": 200, "orders": 1_500, "events": 5_000}
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_generated_shop_has_the_size_asked_for_and_the_habits_to_learn() -> None:
    plan = bench.plan_shop(**SIZES, as_of=AS_OF)
    sizes = plan.sizes
    assert {k: sizes[k] for k in SIZES} == SIZES
    assert sizes["categories"] == bench.DEPARTMENTS * (1 + bench.AISLES * (1 + bench.SHELVES))
    # Parents before children; products on leaf categories (shelves).
    parents = plan.category_parent
    assert all(p < i for i, p in enumerate(parents.tolist()) if p >= 0)
    assert not np.isin(plan.product_category, parents).any()
    # In time order, within the history, never before the product existed.
    end = AS_OF.timestamp() * 1e6
    assert (np.diff(plan.order_time) >= 0).all() and (np.diff(plan.event_time) >= 0).all()
    assert plan.order_time.max() < end and plan.event_time.max() < end
    assert (plan.product_created[plan.line_product] <= plan.order_time[plan.line_order]).all()
    assert (plan.product_created[plan.event_product] <= plan.event_time).all()
    # Every order has a line, one per product; customers buy again; baskets hold several.
    assert np.unique(plan.line_order).shape[0] == sizes["orders"]
    assert (
        np.unique(plan.line_order * SIZES["products"] + plan.line_product).shape[0]
        == (plan.line_order.shape[0])
    )
    buyer = plan.order_customer[plan.line_order]
    _, times = np.unique(buyer * SIZES["products"] + plan.line_product, return_counts=True)
    assert (times >= 2).mean() > 0.2
    assert (np.bincount(plan.line_order) >= 2).mean() > 0.2
    # Anonymous sessions' events have no customer, customers' no session.
    anonymous = plan.event_customer < 0
    assert ((plan.event_session >= 0) == anonymous).all() and 0 < anonymous.mean() < 0.5
    # The same seed, the same shop.
    again = bench.plan_shop(**SIZES, as_of=AS_OF)
    assert again.product_name == plan.product_name
    assert (again.line_product == plan.line_product).all()


async def test_the_loaded_shop_is_what_a_rebuild_reads(
    database_url: str, session: AsyncSession
) -> None:
    shop = await bench.generate_shop(database_url, **SIZES, as_of=AS_OF, quiet=True)
    plan = shop.plan

    counts = [
        await session.scalar(select(func.count()).select_from(table))
        for table in (Category, Product, StockLevel, Order, OrderLine, CustomerEvent)
    ]
    sizes = plan.sizes
    assert counts == [
        sizes["categories"],
        SIZES["products"],
        SIZES["products"],
        SIZES["orders"],
        sizes["order_lines"],
        SIZES["events"],
    ]
    data = await load_training_data(session, RecommendationSettings())
    assert data.stats["orders"] == SIZES["orders"]
    assert data.stats["order_lines"] == sizes["order_lines"]
    assert data.stats["events"] == SIZES["events"]
    assert data.stats["visitors"] == (
        np.unique(plan.event_customer[plan.event_customer >= 0]).shape[0] + sizes["sessions"]
    )
    # Ids by plan index: the lines' products and the events' times read back as planned.
    assert sorted(data.purchases.product.tolist()) == sorted(
        shop.product_ids[plan.line_product].tolist()
    )
    assert np.allclose(data.behaviour.at, plan.event_time / 1e6, rtol=0, atol=1e-3)

    stats = await bench.rebuild_once(database_url)
    assert stats["rows"]["cf_neighbours"] > 0 and stats["rows"]["content_neighbours"] > 0
    assert stats["rows"]["rules"] > 0 and stats["rows"]["cycles"] > 0
    assert stats["cpu_seconds"] > 0 and stats["peak_memory_mb"] > 0
    measured = bench.Measured("SQLite", "SQLite 3", sizes, shop.seconds, stats, None)
    table = bench.report([measured])
    assert table.splitlines()[2].startswith("| database | read (s) | CF (s)")
    assert table.splitlines()[4].startswith("| SQLite 3 | ")
    await session.rollback()  # a new snapshot (SQLite's read transaction saw the old one)
    build = await session.get(RecommendationBuild, stats["build_id"])
    assert build is not None and build.status is BuildStatus.READY
