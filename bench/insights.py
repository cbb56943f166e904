"""The customer-insights benchmark: recomputing RFM segments and lifetime value (the steps
``rfm`` and ``clv`` of ``shopgraph insights rebuild`` and of the job ``core.insights``) on a
shop of 50,000 customers and 1,000,000 orders.

    python -m bench.insights [--customers N] [--orders N] [--events N]
                             [--databases sqlite,postgresql] [--profile] [--write]

For each database (a fresh SQLite file, a throwaway PostgreSQL server: bench.storefront's) it
migrates and bulk-loads a simulated shop (progress on stderr): customers with buying rhythms
of their own, drawn from the BG/NBD and Gamma-Gamma processes over two years
(tests/support/clv.py), one paid order with one line per purchase, and the customers' browsing
events. Then it times each step, each run in a child process of its own (so that its peak
memory is its own): the first rebuild, a second one with nothing changed (skipped), a forced
one with nothing changed, and one after 1,000 new orders. It prints a markdown table (wall
clock, CPU of the rebuilding process and of PostgreSQL, peak memory, the CPU other processes
used meanwhile) and, for the first rebuilds, where the time went, part by part;
``--write`` puts them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bench import storefront

START_MARK = "<!-- insights-results:start -->"
END_MARK = "<!-- insights-results:end -->"
SEED = 2026
CUSTOMERS = 50_000
ORDERS = 1_000_000
EVENTS = 500_000
NEW_ORDERS = 1_000
# The moment the shop is recomputed at: its history runs over the two years before.
AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
HISTORY_WEEKS = 104.0
# New customers make their first purchase during the first 91 weeks (21 months).
ACQUISITION_WEEKS = 91.0
# The buying processes (weeks): each customer buys at a rate λ ~ Gamma(r, α) while alive and
# drops out after each repeat purchase with probability ~ Beta(a, b); α is set from the orders
# wanted per customer. Spend per purchase ~ Gamma(p, ν), ν ~ Gamma(q, v), in yuan.
BUYING = {"r": 1.5, "a": 0.6, "b": 8.0}
SPENDING = {"p": 6.0, "q": 4.0, "v": 150.0}
# The catalogue orders are drawn from: prices spread from 9.90 to 4,999 yuan, cost prices
# 45-85% of the price, some variants without one (the default margin rate applies).
PRODUCTS = 300
WITHOUT_COST = 0.15
# Browsing events: their kinds and shares.
EVENT_KINDS = ("VIEW", "SEARCH", "FAVORITE", "ADD_TO_CART")
EVENT_SHARES = (0.72, 0.12, 0.04, 0.12)
BATCH = 20_000
MICROS_PER_WEEK = 7 * 86_400 * 1_000_000
NEW_ORDERS_AT = timedelta(hours=2, minutes=30)


@dataclass(frozen=True)
class Run:
    """One recomputation measured, each step in turn: at ``after`` past :data:`AS_OF`, forced
    (the command) or not (the job, which skips a step whose data it saw that day), after
    :data:`NEW_ORDERS` new orders or not."""

    label: str
    after: timedelta
    force: bool
    new_orders: bool = False


RUNS = (
    Run("first", timedelta(0), False),
    Run("unchanged", timedelta(hours=1), False),
    Run("unchanged, forced", timedelta(hours=2), True),
    Run(f"after {NEW_ORDERS:,} new orders", timedelta(hours=3), False, new_orders=True),
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# The simulated shop
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopPlan:
    """Everything to load, as arrays; times are microseconds since the epoch (UTC), customers
    0-based indexes, products indexes into the catalogue."""

    customer_created: IntArray
    order_customer: IntArray
    order_time: IntArray
    order_total: IntArray
    order_product: IntArray
    product_price: IntArray
    product_cost: list[int | None]
    event_customer: IntArray
    event_time: IntArray
    event_kind: IntArray
    event_product: IntArray
    alpha: float

    @property
    def customers(self) -> int:
        return int(self.customer_created.shape[0])


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def rate_scale(per_customer: float) -> float:
    """The α (weeks) of :data:`BUYING` that gives ``per_customer`` purchases (first ones
    included) per customer on average over the history, first purchases spread evenly over
    the acquisition weeks."""
    from scipy import optimize

    from server.services import clv

    ages = HISTORY_WEEKS - (np.arange(400) + 0.5) / 400 * ACQUISITION_WEEKS

    def excess(log_alpha: float) -> float:
        model = clv.BgNbd(BUYING["r"], math.exp(log_alpha), BUYING["a"], BUYING["b"])
        return 1.0 + float(np.mean(model.expected_purchases(ages))) - per_customer

    return math.exp(float(optimize.brentq(excess, -8.0, 12.0)))


def plan_shop(customers: int, orders: int, events: int, seed: int = SEED) -> ShopPlan:
    """Simulate ``customers`` customers with exactly ``orders`` purchases and ``events``
    browsing events over the :data:`HISTORY_WEEKS` before :data:`AS_OF`.

    The BG/NBD process is simulated with about 3% more purchases than wanted, then repeat
    purchases drawn at random are left out down to ``orders`` (every customer keeps their first
    one). Each customer browses in proportion to their purchases (times a taste of their own)
    from a week before their first purchase until a few weeks after they drop out."""
    from tests.support.clv import simulate

    if customers < 1 or orders < customers:
        raise ValueError("every customer buys at least once: orders must be >= customers >= 1")
    rng = np.random.default_rng(seed)
    alpha = rate_scale(orders / customers * 1.03)
    for attempt in range(10):
        cohort = simulate(
            customers,
            **BUYING,
            alpha=alpha,
            **SPENDING,
            horizon=HISTORY_WEEKS,
            cohort_weeks=ACQUISITION_WEEKS,
            seed=seed + attempt,
        )
        if cohort.customer.shape[0] >= orders:
            break
        alpha *= 0.9  # a sample short of the orders wanted (small shops): buy more often
    else:
        raise RuntimeError("could not simulate enough purchases")
    first = cohort.time == cohort.start[cohort.customer]
    repeats = np.flatnonzero(~first)
    drop = rng.choice(repeats, size=cohort.customer.shape[0] - orders, replace=False)
    keep = np.ones(cohort.customer.shape[0], dtype=bool)
    keep[drop] = False
    start = _micros(AS_OF) - int(HISTORY_WEEKS * MICROS_PER_WEEK)
    order_customer = cohort.customer[keep]
    order_time = start + np.floor(cohort.time[keep] * MICROS_PER_WEEK).astype(np.int64)
    order_total = np.maximum(np.rint(cohort.value[keep] * 100), 100).astype(np.int64)
    by_time = np.argsort(order_time, kind="stable")
    order_customer, order_time, order_total = (
        order_customer[by_time],
        order_time[by_time],
        order_total[by_time],
    )

    # The catalogue, and each order's product: the one whose price is nearest its total.
    log_prices = np.linspace(math.log(990), math.log(499_900), PRODUCTS)
    prices = np.rint(np.exp(log_prices)).astype(np.int64)
    cost_rates = rng.uniform(0.45, 0.85, PRODUCTS)
    costs: list[int | None] = [
        None if rng.random() < WITHOUT_COST else int(round(price * rate))
        for price, rate in zip(prices.tolist(), cost_rates.tolist(), strict=True)
    ]
    nearest = np.searchsorted(log_prices, np.log(order_total), side="left")
    order_product = np.clip(nearest, 0, PRODUCTS - 1).astype(np.int64)

    # Accounts: opened up to a few weeks before the first purchase.
    first_time = start + np.floor(cohort.start * MICROS_PER_WEEK).astype(np.int64)
    opened = rng.exponential(10 * 86_400 * 1_000_000, customers).astype(np.int64)
    customer_created = first_time - opened

    # Browsing: in proportion to purchases, over [a week before the first, their end], where a
    # customer who dropped out stops browsing a few weeks after their last purchase.
    purchases = np.bincount(order_customer, minlength=customers).astype(np.float64)
    taste = rng.gamma(2.0, 0.5, customers)
    share = purchases * taste
    counts = rng.multinomial(events, share / share.sum()) if events else np.zeros(customers, int)
    end_weeks = np.minimum(
        np.where(
            np.isfinite(cohort.death),
            cohort.death + rng.exponential(3.0, customers),
            HISTORY_WEEKS,
        ),
        HISTORY_WEEKS,
    )
    begin_weeks = np.maximum(cohort.start - 1.0, 0.0)
    event_customer = np.repeat(np.arange(customers, dtype=np.int64), counts)
    span = (end_weeks - begin_weeks)[event_customer]
    weeks = begin_weeks[event_customer] + rng.random(event_customer.shape[0]) * span
    event_time = start + np.floor(weeks * MICROS_PER_WEEK).astype(np.int64)
    by_time = np.argsort(event_time, kind="stable")
    event_customer, event_time = event_customer[by_time], event_time[by_time]
    event_kind = rng.choice(len(EVENT_KINDS), size=event_customer.shape[0], p=EVENT_SHARES)
    event_product = rng.integers(0, PRODUCTS, event_customer.shape[0])
    return ShopPlan(
        customer_created=customer_created,
        order_customer=order_customer,
        order_time=order_time,
        order_total=order_total,
        order_product=order_product,
        product_price=prices,
        product_cost=costs,
        event_customer=event_customer,
        event_time=event_time,
        event_kind=event_kind.astype(np.int64),
        event_product=event_product.astype(np.int64),
        alpha=alpha,
    )


def order_status(age_micros: int) -> str:
    """An order's status by its age: paid, shipped, delivered, then completed."""
    days = age_micros / 86_400e6
    if days < 2:
        return "PAID"
    if days < 5:
        return "SHIPPED"
    if days < 12:
        return "DELIVERED"
    return "COMPLETED"


# --------------------------------------------------------------------------------------------
# Loading in bulk: the drivers' own bulk paths (executemany on SQLite, COPY on PostgreSQL)
# --------------------------------------------------------------------------------------------


class BulkWriter(Protocol):
    """Rows straight to a table through the database driver, bypassing the ORM."""

    def stamps(self, micros: IntArray) -> list[Any]:
        """Timestamps (microseconds since the epoch, UTC) as the driver takes them."""
        ...

    async def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in the order of ``columns``) and commit."""
        ...

    async def close(self, tables: Sequence[str]) -> None:
        """Finish: on PostgreSQL, move each table's id sequence past the ids written."""
        ...


class SqliteWriter:
    """aiosqlite's ``executemany``, one transaction per batch. Timestamps are the naive UTC
    text SQLAlchemy stores (``YYYY-MM-DD HH:MM:SS.ffffff``), which the queries compare."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> SqliteWriter:
        import aiosqlite
        from sqlalchemy import make_url

        connection = await aiosqlite.connect(make_url(url).database or "")
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.execute("PRAGMA synchronous=NORMAL")
        return cls(connection)

    def stamps(self, micros: IntArray) -> list[Any]:
        text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
        return [s.replace("T", " ") for s in text.tolist()]

    async def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        await self.connection.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
        await self.connection.commit()

    async def close(self, tables: Sequence[str]) -> None:
        await self.connection.close()


class PostgresWriter:
    """asyncpg's ``copy_records_to_table`` (COPY in its binary format). Ids are given, so each
    table's sequence is set past them at the end."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> PostgresWriter:
        import asyncpg

        plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        return cls(await asyncpg.connect(plain))

    def stamps(self, micros: IntArray) -> list[Any]:
        naive: list[datetime] = micros.astype("datetime64[us]").tolist()
        return [moment.replace(tzinfo=UTC) for moment in naive]

    async def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        await self.connection.copy_records_to_table(table, records=rows, columns=list(columns))

    async def close(self, tables: Sequence[str]) -> None:
        try:
            for table in tables:
                await self.connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'(SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
                )
        finally:
            await self.connection.close()


CUSTOMER_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "membership_tier",
    "tags",
    "interests",
    "is_active",
    "created_at",
)
ORDER_COLUMNS = (
    "id",
    "number",
    "customer_id",
    "email",
    "status",
    "currency",
    "subtotal_amount",
    "discount_amount",
    "fee_amount",
    "shipping_amount",
    "total_amount",
    "adjustments",
    "shipping_address",
    "shipment_plan",
    "placed_at",
    "updated_at",
    "paid_at",
)
LINE_COLUMNS = (
    "id",
    "order_id",
    "product_id",
    "variant_id",
    "sku",
    "product_name",
    "options",
    "quantity",
    "base_unit_price_amount",
    "unit_price_amount",
    "line_total_amount",
    "adjustments",
)
EVENT_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "product_id",
    "query",
    "search_key",
    "data",
    "occurred_at",
)


@dataclass(frozen=True)
class Catalogue:
    """The loaded products: (product id, variant id, sku, name) by catalogue index."""

    products: list[tuple[int, int, str, str]]


def _ids(found: Iterable[int | None]) -> list[int]:
    """The ids an ``INSERT … RETURNING id`` gave (never null)."""
    ids = list(found)
    if any(i is None for i in ids):
        raise RuntimeError("an inserted row has no id")
    return [int(i or 0) for i in ids]


async def _insert_catalogue(url: str, plan: ShopPlan) -> Catalogue:
    """The products and their one variant each, through the ORM's tables (a few hundred)."""
    from sqlalchemy import insert
    from sqlmodel import col

    from bench.search import generated_product, product_row
    from server.db import create_engine, session_factory
    from server.models import Product, ProductVariant

    rng = random.Random(SEED)
    created = AS_OF - timedelta(weeks=HISTORY_WEEKS + 4)
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = []
            for i, price in enumerate(plan.product_price.tolist()):
                fields = generated_product(i, rng) | {"sku": f"INSIGHTS-{i:04d}"}
                rows.append(product_row(fields, created) | {"price_amount": price})
            ids = _ids(
                (
                    await session.execute(
                        insert(Product).returning(col(Product.id), sort_by_parameter_order=True),
                        rows,
                    )
                ).scalars()
            )
            variants = [
                {
                    "product_id": product_id,
                    "sku": row["sku"],
                    "options": {},
                    "option_key": "",
                    "price_amount": row["price_amount"],
                    "cost_amount": cost,
                    "position": 0,
                    "is_active": True,
                    "created_at": created,
                }
                for product_id, row, cost in zip(ids, rows, plan.product_cost, strict=True)
            ]
            variant_ids = _ids(
                (
                    await session.execute(
                        insert(ProductVariant).returning(
                            col(ProductVariant.id), sort_by_parameter_order=True
                        ),
                        variants,
                    )
                ).scalars()
            )
            await session.commit()
    finally:
        await engine.dispose()
    return Catalogue(
        [
            (product_id, variant_id, row["sku"], row["name"])
            for product_id, variant_id, row in zip(ids, variant_ids, rows, strict=True)
        ]
    )


async def _next_ids(url: str, tables: Sequence[str]) -> dict[str, int]:
    """The first free id of each table (a migrated database may hold rows already)."""
    from sqlalchemy import text

    from server.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                t: int(await conn.scalar(text(f'SELECT coalesce(max(id), 0) + 1 FROM "{t}"')) or 1)
                for t in tables
            }
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Loaded:
    """What was loaded: rows per table, the customers' ids, the products, how long it took,
    and the α (weeks) the purchases were simulated with."""

    customers: int
    orders: int
    events: int
    customer_ids: IntArray
    catalogue: Catalogue
    seconds: float
    alpha: float


def _batches(total: int) -> Iterator[slice]:
    for begin in range(0, total, BATCH):
        yield slice(begin, min(total, begin + BATCH))


async def load_shop(
    url: str, customers: int, orders: int, events: int, *, quiet: bool = False
) -> Loaded:
    """Simulate the shop (:func:`plan_shop`) and write it in bulk into the migrated database at
    ``url``: customers, orders with one line each, browsing events."""
    began = time.perf_counter()
    plan = plan_shop(customers, orders, events)
    catalogue = await _insert_catalogue(url, plan)
    first = await _next_ids(url, ("customer", "order", "order_line", "customer_event"))
    writer: BulkWriter = await (
        SqliteWriter.open(url) if url.startswith("sqlite") else PostgresWriter.open(url)
    )
    total = sum(-(-n // BATCH) for n in (customers, orders, events))
    progress = None
    if not quiet:
        from server.progress import Progress

        progress = Progress(f"loading {customers:,} customers, {orders:,} orders", total)
    customer_ids = first["customer"] + np.arange(customers, dtype=np.int64)
    try:
        for part in _batches(customers):
            created = writer.stamps(plan.customer_created[part])
            rows: list[tuple[Any, ...]] = [
                (cid, f"insights-{cid}@example.cn", "顾客", str(cid), "STANDARD", "[]", "[]")
                + (True, at)
                for cid, at in zip(customer_ids[part].tolist(), created, strict=True)
            ]
            await writer.write("customer", CUSTOMER_COLUMNS, rows)
            if progress is not None:
                progress.advance(f"customers {part.stop:,}/{customers:,}")
        now = _micros(AS_OF)
        for part in _batches(orders):
            ids = (first["order"] + np.arange(part.start, part.stop)).tolist()
            times = plan.order_time[part]
            placed = writer.stamps(times)
            paid = writer.stamps(times + 60_000_000)
            owners = customer_ids[plan.order_customer[part]].tolist()
            totals = plan.order_total[part].tolist()
            products = plan.order_product[part].tolist()
            rows = []
            lines: list[tuple[Any, ...]] = []
            for k, oid in enumerate(ids):
                total_amount = totals[k]
                status = order_status(now - int(times[k]))
                rows.append(
                    (oid, f"SG-IB-{oid:08d}", owners[k], None, status, "CNY", total_amount)
                    + (0, 0, 0, total_amount, "[]", "{}", "[]", placed[k], paid[k], paid[k])
                )
                product_id, variant_id, sku, name = catalogue.products[products[k]]
                price = int(plan.product_price[products[k]])
                lines.append(
                    (first["order_line"] + oid - first["order"], oid, product_id, variant_id)
                    + (sku, name, "{}", 1, price, total_amount, total_amount, "[]")
                )
            await writer.write("order", ORDER_COLUMNS, rows)
            await writer.write("order_line", LINE_COLUMNS, lines)
            if progress is not None:
                progress.advance(f"orders {part.stop:,}/{orders:,}")
        for part in _batches(events):
            ids = (first["customer_event"] + np.arange(part.start, part.stop)).tolist()
            occurred = writer.stamps(plan.event_time[part])
            owners = customer_ids[plan.event_customer[part]].tolist()
            kinds = plan.event_kind[part].tolist()
            products = plan.event_product[part].tolist()
            rows = []
            for k, eid in enumerate(ids):
                kind = EVENT_KINDS[kinds[k]]
                searched = kind == "SEARCH"
                rows.append(
                    (eid, owners[k], kind)
                    + (None if searched else catalogue.products[products[k]][0],)
                    + (("蓝牙耳机", "蓝牙耳机") if searched else (None, None))
                    + ("{}", occurred[k])
                )
            await writer.write("customer_event", EVENT_COLUMNS, rows)
            if progress is not None:
                progress.advance(f"events {part.stop:,}/{events:,}")
    finally:
        if progress is not None:
            progress.close()
        await writer.close(("customer", "order", "order_line", "customer_event"))
    seconds = time.perf_counter() - began
    return Loaded(customers, orders, events, customer_ids, catalogue, seconds, plan.alpha)


async def add_orders(url: str, loaded: Loaded, count: int, at: datetime) -> None:
    """``count`` new paid orders (one line each) of the loaded customers, drawn at random,
    placed in the hour before ``at``, through SQLAlchemy's bulk insert (the tables' own
    sequences give the ids)."""
    from sqlalchemy import insert
    from sqlmodel import col

    from server.db import create_engine, session_factory
    from server.models import Order, OrderLine, OrderStatus

    rng = np.random.default_rng(SEED + 1)
    owners = rng.choice(loaded.customer_ids, count).tolist()
    picked = rng.integers(0, len(loaded.catalogue.products), count).tolist()
    totals = np.maximum(np.rint(rng.gamma(2.0, 15_000.0, count)), 100).astype(np.int64).tolist()
    stamp = int(at.timestamp())
    rows: list[dict[str, Any]] = []
    for k in range(count):
        placed = at - timedelta(seconds=3600 * (k + 1) / (count + 1))
        rows.append(
            {
                "number": f"SG-IB-{stamp}-{k:05d}",
                "customer_id": owners[k],
                "status": OrderStatus.PAID,
                "currency": "CNY",
                "subtotal_amount": totals[k],
                "total_amount": totals[k],
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
                "placed_at": placed,
                "updated_at": placed + timedelta(minutes=1),
                "paid_at": placed + timedelta(minutes=1),
            }
        )
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            ids = _ids(
                (
                    await session.execute(
                        insert(Order).returning(col(Order.id), sort_by_parameter_order=True), rows
                    )
                ).scalars()
            )
            lines = []
            for k, order_id in enumerate(ids):
                product_id, variant_id, sku, name = loaded.catalogue.products[picked[k]]
                lines.append(
                    {
                        "order_id": order_id,
                        "product_id": product_id,
                        "variant_id": variant_id,
                        "sku": sku,
                        "product_name": name,
                        "options": {},
                        "quantity": 1,
                        "base_unit_price_amount": totals[k],
                        "unit_price_amount": totals[k],
                        "line_total_amount": totals[k],
                        "adjustments": [],
                    }
                )
            await session.execute(insert(OrderLine), lines)
            await session.commit()
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------------
# One step rebuilt, in a process of its own
# --------------------------------------------------------------------------------------------


def _memory_kib(field: str) -> int:
    """A memory figure of this process (KiB) from /proc/self/status: ``VmRSS`` (resident now)
    or ``VmHWM`` (the resident peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Start the resident peak (``VmHWM``) over from the memory in use now (Linux 4.0+)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# The parts of each step timed on their own: the services' functions the step calls (by
# module and name). What is left of a step is comparing the figures with the stored rows and
# writing those that changed.
PHASES: dict[str, tuple[tuple[str, str], ...]] = {
    "rfm": (("rfm", "fingerprint"), ("rfm", "buyers")),
    "clv": (
        ("customer_value", "fingerprint"),
        ("customer_value", "read_purchases"),
        ("customer_value", "realised_margins"),
        ("customer_value", "value_customers"),
        ("customer_value", "read_browsing"),
        ("customer_value", "behaviour"),
        ("churn", "assess"),
    ),
}
REST = "the rest: compare with the stored rows, write"


@dataclass(frozen=True)
class Phase:
    """A part of a step: its wall clock and CPU, the database server's CPU meanwhile (None
    without a server), and the process's resident memory at its start and peak (KiB)."""

    name: str
    wall: float
    cpu: float
    database_cpu: float | None
    rss_before_kib: int
    peak_kib: int


def server_cpu_seconds(pid: int) -> float:
    """CPU time a database server has used so far: its main process ``pid``, its processes now
    (backends, workers) and those that have exited. A backend opened and closed between two
    readings (a child process's connection), or a parallel worker of one statement, counts
    too, which :func:`bench.storefront.cpu_between` leaves out."""
    return sum(storefront.tree_cpu_seconds(pid).values()) + storefront.reaped_cpu_seconds(pid)


class _Clock:
    """Wall clock, CPU, the database server's CPU and the resident memory, from a start."""

    def __init__(self, database_pid: int | None) -> None:
        self.database_pid = database_pid
        self.rss = _memory_kib("VmRSS")
        _reset_peak()
        self.database = self._database_cpu()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def _database_cpu(self) -> float | None:
        return None if self.database_pid is None else server_cpu_seconds(self.database_pid)

    def phase(self, name: str) -> Phase:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        now = self._database_cpu()
        database = None if self.database is None or now is None else now - self.database
        return Phase(name, wall, cpu, database, self.rss, max(_memory_kib("VmHWM"), self.rss))


def _timed(
    label: str, function: Callable[..., Any], phases: list[Phase], database_pid: int | None
) -> Callable[..., Any]:
    """``function`` (a coroutine function or not), recording a :class:`Phase` per call."""
    import functools
    import inspect

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            clock = _Clock(database_pid)
            try:
                return await function(*args, **kwargs)
            finally:
                phases.append(clock.phase(label))

        return timed_coroutine

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        clock = _Clock(database_pid)
        try:
            return function(*args, **kwargs)
        finally:
            phases.append(clock.phase(label))

    return timed


@contextlib.contextmanager
def timed_phases(step: str, phases: list[Phase], database_pid: int | None) -> Iterator[None]:
    """While the context lasts, each function of ``PHASES[step]`` is replaced in its module
    (where the step looks it up) by one that records a :class:`Phase` in ``phases``."""
    import importlib

    replaced: list[tuple[Any, str, Any]] = []
    try:
        for module_name, name in PHASES.get(step, ()):
            module = importlib.import_module(f"server.services.{module_name}")
            function = getattr(module, name)
            replaced.append((module, name, function))
            setattr(module, name, _timed(f"{module_name}.{name}", function, phases, database_pid))
        yield
    finally:
        for module, name, function in replaced:
            setattr(module, name, function)


@dataclass(frozen=True)
class StepRun:
    """One step's rebuild as measured in its own process: wall clock and CPU (every thread of
    the process), the process's resident memory before the step and its peak during the step
    (KiB), the step's summary, and its parts (:data:`PHASES`).

    The peak is the kernel's high-water mark of the process's resident memory (``VmHWM``),
    started over when the step starts (and when each part starts: the step's peak is the
    highest of theirs and the last). ``getrusage``'s ``ru_maxrss`` would say the same for the
    step alone, but a child started by fork and exec inherits in it the peak of the process
    that started it (here the benchmark's, which holds the simulated shop)."""

    step: str
    wall: float
    cpu: float
    rss_before_kib: int
    peak_kib: int
    summary: str
    skipped: bool
    written: int
    phases: list[Phase] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> StepRun:
        data = json.loads(text)
        return cls(**{**data, "phases": [Phase(**p) for p in data.get("phases", [])]})


async def rebuild_step(
    url: str, step: str, as_of: datetime, force: bool, *, database_pid: int | None = None
) -> StepRun:
    """Run ``step`` as ``insights.rebuild`` runs each step (its own write transaction,
    committed), timed, and each of its parts (``database_pid``: the database server's main
    process, whose CPU each part reports)."""
    from server.config import Settings
    from server.db import create_engine, mark_write, session_factory
    from server.services import insights

    [found] = [s for s in insights.STEPS if s.name == step]
    settings = Settings(database_url=url)
    engine = create_engine(url)
    phases: list[Phase] = []
    try:
        with timed_phases(step, phases, database_pid):
            clock = _Clock(None)
            async with session_factory(engine)() as session:
                await mark_write(session)
                result = await found.run(session, settings, as_of, force)
                await session.commit()
            whole = clock.phase(step)
    finally:
        await engine.dispose()
    peak = max([whole.peak_kib] + [p.peak_kib for p in phases])
    if phases and not getattr(result, "skipped", False):
        rest = whole.wall - sum(p.wall for p in phases), whole.cpu - sum(p.cpu for p in phases)
        phases.append(Phase(REST, rest[0], rest[1], None, whole.rss_before_kib, 0))
    return StepRun(
        step=step,
        wall=whole.wall,
        cpu=whole.cpu,
        rss_before_kib=whole.rss_before_kib,
        peak_kib=peak,
        summary=result.summary(),
        skipped=bool(getattr(result, "skipped", False)),
        written=int(getattr(result, "written", 0)),
        phases=phases,
    )


def child(spec: str) -> int:
    """The child process: rebuild one step (``spec``: JSON of url, step, as_of, force,
    database_pid and profile) and print the measurement as JSON on the last line of stdout.
    With ``profile``, cProfile's top functions (cumulative time) go to stderr."""
    given = json.loads(spec)
    work = rebuild_step(
        given["url"],
        given["step"],
        datetime.fromisoformat(given["as_of"]),
        given["force"],
        database_pid=given.get("database_pid"),
    )
    if given.get("profile"):
        profiler = cProfile.Profile()
        run = profiler.runcall(asyncio.run, work)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        storefront.log(f"profile of {given['step']} ({given['label']}):\n{out.getvalue()}")
    else:
        run = asyncio.run(work)
    print(json.dumps(asdict(run)))
    return 0


@dataclass(frozen=True)
class Measured:
    """A step's run as the parent saw it: the child's own figures, PostgreSQL's CPU meanwhile,
    and the CPU every other process of the machine used over the child's life, in cores."""

    database: str
    label: str
    run: StepRun
    database_cpu: float | None
    others_cores: float


def measure(
    database: storefront.Database,
    label: str,
    step: str,
    as_of: datetime,
    force: bool,
    *,
    profile: bool = False,
) -> Measured:
    """Rebuild ``step`` in a child process (``python -m bench.insights --child …``)."""
    spec = {"url": database.url, "step": step, "as_of": as_of.isoformat(), "force": force}
    spec |= {"profile": profile, "label": label, "database_pid": database.pid}
    machine = storefront.machine_cpu_seconds()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = time.process_time()
    db_before = server_cpu_seconds(database.pid) if database.pid is not None else None
    wall = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.insights", "--child", json.dumps(spec)],
        cwd=storefront.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - wall
    db_cpu = (
        server_cpu_seconds(database.pid) - db_before
        if database.pid is not None and db_before is not None
        else None
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    others = (
        storefront.machine_cpu_seconds()
        - machine
        - child_cpu
        - (db_cpu or 0.0)
        - (time.process_time() - mine)
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{label}: {step}: the rebuild failed ({done.returncode})")
    run = StepRun.from_json(done.stdout.strip().splitlines()[-1])
    storefront.log(
        f"{database.name}, {label}: {run.summary} — {run.wall:.2f} s, CPU {run.cpu:.2f} s, "
        f"peak {run.peak_kib / 1024:.0f} MiB"
    )
    return Measured(database.name, label, run, db_cpu, max(0.0, others / wall))


@dataclass
class DatabaseResult:
    database: storefront.Database
    loaded: Loaded
    measured: list[Measured] = field(default_factory=list)
    # The last fit of the models (clv_model_fit), as GraphQL's clvModel shows it.
    fit: dict[str, Any] | None = None


async def last_fit(url: str) -> dict[str, Any] | None:
    """The parameters of the last fit the clv step recorded."""
    from server.db import create_engine, session_factory
    from server.services import customer_value

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            fit = await customer_value.latest_fit(session)
    finally:
        await engine.dispose()
    if fit is None:
        return None
    return {name: getattr(fit, name) for name in ("r", "alpha", "a", "b", "p", "q", "v")}


def run_database(
    database: storefront.Database, loaded: Loaded, *, profile: bool = False
) -> DatabaseResult:
    """Every run of :data:`RUNS`, each step in turn (the new orders added before the run that
    follows them)."""
    from server.services import insights

    result = DatabaseResult(database, loaded)
    for run in RUNS:
        if run.new_orders:
            asyncio.run(add_orders(database.url, loaded, NEW_ORDERS, AS_OF + NEW_ORDERS_AT))
        for step in insights.STEPS:
            result.measured.append(
                measure(
                    database,
                    run.label,
                    step.name,
                    AS_OF + run.after,
                    run.force,
                    profile=profile and run is RUNS[0],
                )
            )
    result.fit = asyncio.run(last_fit(database.url))
    return result


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _did(summary: str) -> str:
    """A step's summary without its name: ``rfm: 50000 customers …`` → ``50,000 customers …``."""
    said = summary.split(": ", 1)[-1]
    words = [f"{int(w):,}" if w.isdigit() else w for w in said.split(" ")]
    return " ".join(words).replace(", unchanged since", "; unchanged since")


def table(results: Sequence[DatabaseResult]) -> str:
    lines = [
        "| database | run | step | what it did | wall clock s | CPU s | database CPU s "
        "| peak memory MiB | of which the step MiB | other load (cores) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for m in result.measured:
            run = m.run
            db = "–" if m.database_cpu is None else f"{m.database_cpu:.2f}"
            grown = max(0, run.peak_kib - run.rss_before_kib) / 1024
            lines.append(
                f"| {m.database} | {m.label} | `{run.step}` | {_did(run.summary)} "
                f"| {run.wall:.2f} | {run.cpu:.2f} | {db} | {run.peak_kib / 1024:.0f} "
                f"| {grown:.0f} | {m.others_cores:.2f} |"
            )
    return "\n".join(lines)


def phases_table(results: Sequence[DatabaseResult], label: str = RUNS[0].label) -> str:
    """Where the time of each step's ``label`` run went, part by part (:data:`PHASES`)."""
    lines = [
        "| database | step | part | wall clock s | CPU s | database CPU s | memory growth MiB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        for m in result.measured:
            if m.label != label:
                continue
            for phase in m.run.phases:
                db = "–" if phase.database_cpu is None else f"{phase.database_cpu:.2f}"
                grew = (
                    "–"
                    if phase.peak_kib == 0
                    else f"{max(0, phase.peak_kib - phase.rss_before_kib) / 1024:.0f}"
                )
                lines.append(
                    f"| {m.database} | `{m.run.step}` | {phase.name} | {phase.wall:.2f} "
                    f"| {phase.cpu:.2f} | {db} | {grew} |"
                )
    return "\n".join(lines)


def notes(results: Sequence[DatabaseResult], customers: int, orders: int, events: int) -> list[str]:
    said = [
        f"{customers:,} customers, {orders:,} paid orders (one line each), {events:,} browsing "
        "events. Loading them (simulating and bulk inserts; not the migrations, nor PostgreSQL's "
        "VACUUM ANALYZE): "
        + ", ".join(f"{r.database.name} {r.loaded.seconds:.0f} s" for r in results)
        + "."
    ]
    for r in results:
        if r.fit is None or r.fit["r"] is None:
            continue
        f = r.fit
        said.append(
            f"{r.database.name}, the last fit: r = {f['r']:.3f}, α = {f['alpha']:.2f} per day, "
            f"a = {f['a']:.3f}, b = {f['b']:.2f}; p = {f['p']:.2f}, q = {f['q']:.2f}, "
            f"v = {f['v']:,.0f} fen (simulated with r = {BUYING['r']:g}, "
            f"α = {r.loaded.alpha * 7:.2f} per day, a = {BUYING['a']:g}, b = {BUYING['b']:g}; "
            f"p = {SPENDING['p']:g}, q = {SPENDING['q']:g}, v = {SPENDING['v'] * 100:,.0f} fen, "
            "before some repeat purchases were left out to make the count exact)."
        )
    measured = [m for r in results for m in r.measured]
    if measured:
        others = [m.others_cores for m in measured]
        said.append(
            f"Other load: other processes of the machine used {statistics.median(others):.2f} "
            f"of its {os.cpu_count()} cores while the rebuilds ran (median; "
            f"{min(others):.2f}–{max(others):.2f})."
        )
        if statistics.median(others) > storefront.OTHERS_LIMIT:
            said.append(
                f"**Warning:** other processes used {statistics.median(others):.2f} cores while "
                "the benchmark ran: the machine was busy with other work, and the wall clock "
                "figures are noisy (CPU seconds depend much less on it). Measure on a quiet "
                "machine."
            )
    return said


def report(results: Sequence[DatabaseResult], customers: int, orders: int, events: int) -> str:
    parts = [table(results), ""]
    parts += [f"- {n}" for n in notes(results, customers, orders, events)]
    if any(p for r in results for m in r.measured for p in m.run.phases):
        parts += ["", f"Where the time of the {RUNS[0].label} rebuilds went:", ""]
        parts.append(phases_table(results))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def fill_shop(
    customers: int, orders: int, events: int, loads: list[Loaded]
) -> Callable[[str], None]:
    """Migrate (the core and every installed plugin) and load the shop; ``loads`` gets what
    was loaded."""

    def fill(url: str) -> None:
        from server import migrate
        from server.config import Settings
        from server.plugins import load_plugins

        migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
        loads.append(asyncio.run(load_shop(url, customers, orders, events)))

    return fill


def machine(databases: Sequence[storefront.Database]) -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    versions = ", ".join(d.version for d in databases)
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {versions}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.insights",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=CUSTOMERS, help="customers")
    parser.add_argument("--orders", type=int, default=ORDERS, help="paid orders (>= customers)")
    parser.add_argument("--events", type=int, default=EVENTS, help="browsing events")
    parser.add_argument(
        "--databases",
        type=lambda v: storefront.comma_list(v, list(storefront.DATABASES), "--databases"),
        default=list(storefront.DATABASES),
        help="comma-separated: sqlite,postgresql",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each first rebuild (to stderr)"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    if args.customers < 1 or args.orders < args.customers or args.events < 0:
        parser.error("--customers must be >= 1, --orders >= --customers, --events >= 0")

    results: list[DatabaseResult] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-insights-bench-") as tmp:
        for name in args.databases:
            storefront.log(
                f"preparing {args.customers:,} customers and {args.orders:,} orders "
                f"({storefront.DATABASES[name]}) …"
            )
            loads: list[Loaded] = []
            fill = fill_shop(args.customers, args.orders, args.events, loads)
            opened = (
                storefront.sqlite_database(Path(tmp), fill, "insights.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with opened as database:
                results.append(run_database(database, loads[0], profile=args.profile))
    text = report(results, args.customers, args.orders, args.events)
    print(text)
    if args.write:
        section = (
            f"Measured {datetime.now(UTC):%Y-%m-%d} on "
            f"{machine([r.database for r in results])}.\n\n{text}"
        )
        current = storefront.DOCS.read_text()
        storefront.DOCS.write_text(
            storefront.replace_results(current, section, start=START_MARK, end=END_MARK)
        )
        storefront.log(f"wrote {storefront.DOCS.relative_to(storefront.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
