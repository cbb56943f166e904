"""The insights benchmark's parts on a shop of 200 customers, on both databases: the simulated
shop has the size asked for, the bulk loader writes rows the services read back as written, and
a rebuild, its skip and the new orders work as the benchmark measures them. No timing is
asserted."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bench import insights as bench
from bench.storefront import Database
from server.models import Customer, CustomerEvent, Order, OrderLine, OrderStatus
from server.services import rfm

CUSTOMERS, ORDERS, EVENTS = 200, 2_000, 1_000


def test_the_simulated_shop_has_the_size_asked_for_and_everyone_buys() -> None:
    plan = bench.plan_shop(CUSTOMERS, ORDERS, EVENTS)

    assert (plan.customers, plan.order_customer.shape[0], plan.event_customer.shape[0]) == (
        CUSTOMERS,
        ORDERS,
        EVENTS,
    )
    assert np.bincount(plan.order_customer, minlength=CUSTOMERS).min() >= 1
    assert (np.diff(plan.order_time) >= 0).all() and (np.diff(plan.event_time) >= 0).all()
    as_of = bench.AS_OF.timestamp() * 1e6
    assert plan.order_time.max() <= as_of and plan.event_time.max() <= as_of
    # Accounts open before their first purchase; totals are whole minor units of at least 1 yuan.
    first = np.full(CUSTOMERS, np.iinfo(np.int64).max)
    np.minimum.at(first, plan.order_customer, plan.order_time)
    assert (plan.customer_created <= first).all()
    assert plan.order_total.min() >= 100


async def test_the_loader_and_the_rebuilds_on_a_small_shop(
    database_url: str, session: AsyncSession
) -> None:
    loaded = await bench.load_shop(database_url, CUSTOMERS, ORDERS, EVENTS, quiet=True)

    counts = [
        await session.scalar(select(func.count()).select_from(table))
        for table in (Customer, Order, OrderLine, CustomerEvent)
    ]
    assert counts == [CUSTOMERS, ORDERS, ORDERS, EVENTS]
    statuses = set((await session.execute(select(col(Order.status)).distinct())).scalars())
    assert statuses <= set(rfm.PURCHASE_STATUSES)
    # The timestamps written in bulk read back through the ORM as planned (SQLite compares them
    # as text: the format must be SQLAlchemy's).
    plan = bench.plan_shop(CUSTOMERS, ORDERS, EVENTS)
    newest = await session.scalar(select(func.max(col(Order.placed_at))))
    assert newest is not None
    assert int(newest.timestamp() * 1e6) == int(plan.order_time.max())

    first = bench.AS_OF
    scored = await bench.rebuild_step(database_url, "rfm", first, False)
    valued = await bench.rebuild_step(database_url, "clv", first, False)
    assert scored.summary.startswith(f"rfm: {CUSTOMERS} customers scored, {CUSTOMERS} rows")
    assert (
        valued.summary == f"clv: {CUSTOMERS} customers valued, {CUSTOMERS} rows written, 0 removed"
    )
    assert valued.wall > 0 and valued.cpu > 0 and valued.peak_kib >= valued.rss_before_kib > 0
    # Each part of the step is timed, and what is left of it.
    parts = [phase.name for phase in valued.phases]
    assert parts == [f"{m}.{f}" for m, f in bench.PHASES["clv"]] + [bench.REST]
    assert sum(phase.wall for phase in valued.phases) == pytest.approx(valued.wall)
    assert bench.StepRun.from_json(json.dumps(dataclasses.asdict(valued))) == valued
    skipped = await bench.rebuild_step(database_url, "clv", first + timedelta(hours=1), False)
    assert skipped.skipped and skipped.written == 0

    # New orders through the ORM after the bulk load: the ids' sequences were moved past it.
    await bench.add_orders(database_url, loaded, 10, first + timedelta(hours=2))
    await session.rollback()  # a new snapshot (SQLite's read transaction saw the old one)
    assert await session.scalar(select(func.count()).select_from(Order)) == ORDERS + 10
    paid = select(func.count()).where(col(Order.status) == OrderStatus.PAID)
    assert (await session.scalar(paid) or 0) >= 10
    again = await bench.rebuild_step(database_url, "rfm", first + timedelta(hours=3), False)
    assert not again.skipped and again.written >= 1


def test_the_table_shows_each_run_and_warns_of_a_busy_machine() -> None:
    run = bench.StepRun("rfm", 1.5, 1.25, 150 * 1024, 200 * 1024, "rfm: 50000 customers", False, 3)
    loaded = bench.Loaded(50_000, 1_000_000, 10, np.arange(3), bench.Catalogue([]), 61.0, 2.0)
    result = bench.DatabaseResult(Database("SQLite", "sqlite://"), loaded)
    result.measured.append(bench.Measured("SQLite", "first", run, None, 0.5))

    report = bench.report([result], 50_000, 1_000_000, 10)

    row = report.splitlines()[2]
    assert (
        row == "| SQLite | first | `rfm` | 50,000 customers | 1.50 | 1.25 | – | 200 | 50 | 0.50 |"
    )
    assert "SQLite 61 s" in report
    assert "other processes used 0.50 cores" in report
