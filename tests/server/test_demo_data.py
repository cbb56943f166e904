"""Demo data: reproducible from a seed, consistent, driven by (hidden) preferences, searchable;
18 months of history in which customers buy in the rhythms of their archetypes, for the
customer insights (RFM segments, lifetime value) to find."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server import models as m
from server.auth import verify_password
from server.cli import main
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.demo import (
    DEMO_PASSWORD,
    OPEN_STATUSES,
    POPULATE_STEPS,
    DemoReport,
    ShopPlan,
    demo_steps,
    load,
    plan_shop,
)
from server.demo.people import NO_RESULT_QUERIES
from server.demo.plan import PlannedCustomer, PlannedOrder
from server.demo.plan_rhythms import ARCHETYPES
from server.plugin import DemoShop
from server.plugins import PluginFailed, PluginRuntime, load_plugins
from server.progress import Progress
from server.services import clv, insights, rfm, search_insights
from server.services import surveys as surveys_service
from tests.plugins.fakes import FakePlugin
from tests.support.graphql import GraphQLClient

pytestmark = pytest.mark.heavy

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)
SMALL = {"customers": 30, "products": 60, "orders": 90}
_extra = itertools.count()


@pytest.fixture
async def fresh_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """More fresh, migrated databases on the test's backend (copies of the same templates the
    ``database_url`` fixture copies)."""
    dropped: list[str] = []
    admin = request.getfixturevalue("postgres_admin_url") if backend == "postgresql" else None

    async def make() -> str:
        n = next(_extra)
        if backend == "sqlite":
            path = tmp_path / f"extra-{n}.db"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            return f"sqlite+aiosqlite:///{path}"
        template = request.getfixturevalue("postgres_template")
        name = f"shopgraph_demo_{os.getpid()}_{n}"
        conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        await conn.close()
        dropped.append(name)
        return f"{admin.rpartition('/')[0]}/{name}"

    yield make
    if dropped:
        conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
        for name in dropped:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _fill(url: str, seed: int, **sizes: int) -> DemoReport:
    report = await load(url, seed=seed, as_of=AS_OF, **(SMALL | sizes))
    assert report is not None
    return report


async def _rows(session: AsyncSession, model: Any) -> list[dict[str, Any]]:
    table = model.__table__
    result = await session.execute(select(table).order_by(table.c.id))
    return [dict(row) for row in result.mappings()]


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every demo table, ids replaced by natural keys, rows in a fixed order:
    two databases are the same shop exactly when their dumps are equal."""
    engine = create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with session_factory(engine)() as session:
        keys: dict[str, dict[int, Any]] = {}
        natural = {
            "category_id": (m.Category, "slug"),
            "parent_id": (m.Category, "slug"),
            "product_id": (m.Product, "sku"),
            "warehouse_id": (m.Warehouse, "code"),
            "customer_id": (m.Customer, "email"),
            "order_id": (m.Order, "number"),
            "shipment_id": (m.Shipment, "tracking_number"),
            "cart_id": (m.Cart, "token"),
            "rule_id": (m.AlertRule, "name"),
        }
        for column, (model, key) in natural.items():
            keys[column] = {r["id"]: r[key] for r in await _rows(session, model)}
        keys["variant_id"] = {r["id"]: r["sku"] for r in await _rows(session, m.ProductVariant)}
        lines = await _rows(session, m.OrderLine)
        keys["order_line_id"] = {
            r["id"]: (keys["order_id"][r["order_id"]], keys["variant_id"][r["variant_id"]])
            for r in lines
        }
        tables = [
            m.Category, m.Product, m.ProductOption, m.ProductVariant, m.Warehouse, m.StockLevel,
            m.Customer, m.Address, m.Order,
            m.OrderLine, m.OrderStatusChange, m.Payment, m.Shipment, m.ShipmentLine,
            m.TrackingEvent, m.CustomerEvent, m.Cart, m.CartLine, m.StaffUser, m.Survey,
            m.MarketingCost, m.AlertRule, m.Alert,
        ]  # fmt: skip
        for model in tables:
            rows = []
            for row in await _rows(session, model):
                row.pop("id")
                for column, value in list(row.items()):
                    if column in keys and value is not None:
                        row[column] = keys[column][value]
                rows.append(tuple(sorted((k, repr(v)) for k, v in row.items())))
            out[model.__tablename__] = sorted(rows)
    await engine.dispose()
    return out


async def test_the_same_seed_writes_the_same_shop(
    database_url: str, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    # (Another seed draws another plan: test_the_plan_is_drawn_from_the_seed_alone.)
    other = await fresh_database()
    await _fill(database_url, seed=7)
    await _fill(other, seed=7)
    first, again = await dump(database_url), await dump(other)
    assert first == again
    assert first["product"] and first["order"] and first["customer_event"]


async def test_the_demo_shop_has_a_weekly_history_of_segments(
    database_url: str, session: AsyncSession
) -> None:
    """The RFM recomputation is replayed weekly from the first order up to the shop's "as of"
    moment: customers enter the segments the week of their first purchase and are seen moving
    between them, and the figures end up those of "as of"."""
    await _fill(database_url, seed=7)
    changes = (
        (
            await session.execute(
                select(m.CustomerSegmentChange).order_by(m.CustomerSegmentChange.id)
            )
        )
        .scalars()
        .all()
    )
    purchases = (
        await session.execute(
            select(m.Order.customer_id, func.min(m.Order.placed_at))
            .where(m.Order.status.in_(rfm.PURCHASE_STATUSES), m.Order.customer_id.is_not(None))
            .group_by(m.Order.customer_id)
        )
    ).all()
    first_purchase = {customer: placed for customer, placed in purchases}
    week = timedelta(weeks=1)
    replays = [
        AS_OF - back * week
        for back in range((AS_OF - min(first_purchase.values())) // week, -1, -1)
    ]
    assert {c.at for c in changes} <= set(replays)
    # Everyone enters once, at the first replay after their first purchase.
    entered = {c.customer_id: c.at for c in changes if c.from_segment is None}
    assert len(entered) == sum(c.from_segment is None for c in changes) == len(first_purchase)
    for customer, at in entered.items():
        assert at - week < first_purchase[customer] <= at, customer
    assert all(c.to_segment is not None for c in changes)  # nobody's purchases vanish
    moves = [c for c in changes if c.from_segment is not None]
    assert len(moves) > 10 and all(c.from_segment != c.to_segment for c in moves)
    # Each customer's last recorded change leads to the segment they are in now.
    last = {c.customer_id: c.to_segment for c in changes}
    scored = (await session.execute(select(m.CustomerRfm))).scalars().all()
    assert last == {r.customer_id: r.segment for r in scored}
    assert {r.computed_at for r in scored} <= set(replays)
    # The periodic job, the same day, finds the figures current and leaves them.
    await mark_write(session)
    again = await rfm.rebuild(session, currency="CNY", as_of=AS_OF + timedelta(hours=5))
    await session.commit()
    assert again.skipped


async def test_a_populated_shop_is_left_alone(database_url: str) -> None:
    await _fill(database_url, seed=1, customers=10, products=20, orders=15)
    before = await dump(database_url)
    assert await load(database_url, seed=2, as_of=AS_OF, if_empty=True) is None
    with pytest.raises(ValueError, match="already has products"):
        await load(database_url, seed=2, as_of=AS_OF)
    assert await dump(database_url) == before


async def test_stock_orders_and_money_are_consistent(
    database_url: str, session: AsyncSession
) -> None:
    report = await _fill(database_url, seed=11, customers=60, products=80, orders=250)
    assert report.counts["orders"] == 250

    levels = (await session.execute(select(m.StockLevel))).scalars().all()
    assert levels and all(0 <= lv.reserved <= lv.on_hand for lv in levels)
    held: Counter[tuple[int, int]] = Counter()
    rows = await session.execute(
        select(m.OrderLine.warehouse_id, m.OrderLine.variant_id, m.OrderLine.quantity)
        .join(m.Order, m.Order.id == m.OrderLine.order_id)
        .where(m.Order.status.in_(OPEN_STATUSES))
    )
    for warehouse_id, variant_id, quantity in rows:
        held[(warehouse_id, variant_id)] += quantity
    assert held, "some orders are still open"
    assert {(lv.warehouse_id, lv.variant_id): lv.reserved for lv in levels if lv.reserved} == held
    assert any(lv.on_hand - lv.reserved == 0 for lv in levels), "something is sold out"
    assert any(0 < lv.on_hand - lv.reserved < lv.safety_stock for lv in levels), "something low"

    orders = (await session.execute(select(m.Order))).scalars().all()
    lines_of: dict[int, list[m.OrderLine]] = defaultdict(list)
    for line in (await session.execute(select(m.OrderLine))).scalars():
        assert line.line_total_amount == line.unit_price_amount * line.quantity
        assert line.unit_price_amount == line.base_unit_price_amount and line.adjustments == []
        lines_of[line.order_id].append(line)
    payments = {p.order_id: p for p in (await session.execute(select(m.Payment))).scalars()}
    shipments = {s.order_id: s for s in (await session.execute(select(m.Shipment))).scalars()}
    history: dict[int, list[m.OrderStatusChange]] = defaultdict(list)
    changes = select(m.OrderStatusChange).order_by(m.OrderStatusChange.at)
    for change in (await session.execute(changes)).scalars():
        history[change.order_id].append(change)
    for order in orders:
        assert order.subtotal_amount == sum(line.line_total_amount for line in lines_of[order.id])
        assert order.total_amount == (
            order.subtotal_amount + order.shipping_amount - order.discount_amount
        )
        assert order.placed_at <= AS_OF
        steps = history[order.id]
        assert steps[0].from_status is None and steps[-1].to_status == order.status
        assert all(a.to_status == b.from_status for a, b in itertools.pairwise(steps))
        assert (order.id in payments) == (order.paid_at is not None)
        if order.id in payments:
            assert payments[order.id].amount == order.total_amount
            assert payments[order.id].gateway == "manual"
        shipped = order.status in (
            m.OrderStatus.SHIPPED,
            m.OrderStatus.DELIVERED,
            m.OrderStatus.COMPLETED,
        )
        assert (order.id in shipments) == shipped
    mix = Counter(o.status for o in orders)
    done = mix[m.OrderStatus.COMPLETED] + mix[m.OrderStatus.DELIVERED]
    assert done > len(orders) * 0.7
    assert mix[m.OrderStatus.CANCELLED] > 0
    assert sum(mix[s] for s in OPEN_STATUSES) + mix[m.OrderStatus.SHIPPED] > 0

    events = await session.execute(
        select(m.TrackingEvent.shipment_id, m.TrackingEvent.occurred_at).order_by(
            m.TrackingEvent.id
        )
    )
    timelines: dict[int, list[datetime]] = defaultdict(list)
    for shipment_id, at in events:
        timelines[shipment_id].append(at)
    assert set(timelines) == {s.id for s in shipments.values()}
    assert all(ts == sorted(ts) and ts[-1] <= AS_OF for ts in timelines.values())

    customer = await session.scalar(select(m.Customer).where(m.Customer.email == report.demo_email))
    assert customer is not None and verify_password(customer.password_hash, DEMO_PASSWORD)
    assert await session.scalar(
        select(func.count()).select_from(m.Order).where(m.Order.customer_id == customer.id)
    )


async def test_variants_are_real_and_everything_refers_to_them(
    database_url: str, session: AsyncSession
) -> None:
    """Products come in variants where shops sell them so (phones by storage and colour,
    clothes and shoes by size and colour); every stock level, cart line and order line holds a
    variant of its own product, and every product has a variant on sale."""
    await _fill(database_url, seed=3, customers=40, products=120, orders=150)
    products = {p.id: p for p in (await session.execute(select(m.Product))).scalars()}
    variants = (await session.execute(select(m.ProductVariant))).scalars().all()
    axes: dict[int, list[m.ProductOption]] = defaultdict(list)
    for option in (
        await session.execute(select(m.ProductOption).order_by(m.ProductOption.position))
    ).scalars():
        axes[option.product_id].append(option)
    of: dict[int, list[m.ProductVariant]] = defaultdict(list)
    for variant in variants:
        of[variant.product_id].append(variant)
    product_of = {v.id: v.product_id for v in variants}

    for pid, product in products.items():
        on_sale = [v for v in of[pid] if v.is_active]
        assert on_sale, product.sku
        # Its from price is its cheapest variant on sale's; the search text holds its SKUs.
        cheapest = min(on_sale, key=lambda v: (v.price_amount, v.id))
        assert (product.price_amount, product.cost_amount) == (
            cheapest.price_amount,
            cheapest.cost_amount,
        )
        declared = {o.name: o.values for o in axes[pid]}
        keys = [v.option_key for v in of[pid]]
        assert len(set(keys)) == len(keys)
        for variant in of[pid]:
            # Exactly one declared value on each axis (none for a product without options).
            assert variant.options.keys() == declared.keys()
            assert all(variant.options[k] in values for k, values in declared.items())
        # One variant per combination of its axes' values.
        assert len(of[pid]) == math.prod(len(v) for v in declared.values())
    by_leaf: dict[str, set[str]] = defaultdict(set)
    for pid, product in products.items():
        by_leaf[product.sku[:3]].update(o.name for o in axes[pid])
    assert by_leaf["PHO"] == {"容量", "颜色"} and by_leaf["SNE"] == {"尺码", "颜色"}
    assert by_leaf["MEN"] == {"尺码", "颜色"} and by_leaf["EAR"] == set()
    phones = [pid for pid, p in products.items() if p.sku.startswith("PHO")]
    for pid in phones:  # the more storage, the dearer
        price = {v.options["容量"]: v.price_amount for v in of[pid]}
        assert price["128GB"] < price["256GB"] < price["512GB"]
    assert {o.values[0] for pid in phones for o in axes[pid] if o.name == "容量"} == {"128GB"}

    for model in (m.StockLevel, m.CartLine, m.OrderLine):
        rows = (await session.execute(select(model.product_id, model.variant_id))).all()  # type: ignore[attr-defined]  # all three have both columns
        assert rows, model
        assert all(product_of[variant_id] == product_id for product_id, variant_id in rows)
    # Carts hold what is on sale; orders name the variant they sold.
    active = {v.id for v in variants if v.is_active}
    assert all(v in active for (v,) in (await session.execute(select(m.CartLine.variant_id))).all())
    lines = (await session.execute(select(m.OrderLine))).scalars().all()
    by_id = {v.id: v for v in variants}
    assert all(
        (line.sku, line.options) == (by_id[line.variant_id].sku, by_id[line.variant_id].options)
        for line in lines
    )
    assert any(line.options for line in lines)


async def test_hidden_preferences_drive_behaviour(database_url: str, session: AsyncSession) -> None:
    report = await _fill(database_url, seed=5, customers=80, products=104, orders=300)
    slug_of = {c.id: c.slug for c in (await session.execute(select(m.Category))).scalars().all()}
    products = (await session.execute(select(m.Product))).scalars().all()
    category_of = {p.id: slug_of[p.category_id] for p in products}
    catalogue = Counter(category_of.values())
    emails = {c.id: c.email for c in (await session.execute(select(m.Customer))).scalars()}

    seen: dict[str, list[str]] = defaultdict(list)
    last_seen: dict[str, datetime] = {}
    rows = await session.execute(
        select(m.CustomerEvent.customer_id, m.CustomerEvent.product_id, m.CustomerEvent.kind)
        .add_columns(m.CustomerEvent.occurred_at)
        .order_by(m.CustomerEvent.occurred_at)
    )
    for customer_id, product_id, kind, at in rows:
        email = emails[customer_id]
        last_seen[email] = at
        if kind in (m.CustomerEventKind.VIEW, m.CustomerEventKind.PURCHASE):
            seen[email].append(category_of[product_id])

    shares = []
    for email, categories in seen.items():
        if len(categories) < 10:
            continue
        favourite = set(report.preferences[email].categories)
        in_favourite = sum(c in favourite for c in categories) / len(categories)
        catalogue_share = sum(catalogue[c] for c in favourite) / len(products)
        # Far above chance for everyone, and most of what people look at and buy overall.
        assert in_favourite > 3 * catalogue_share, (email, in_favourite, catalogue_share)
        shares.append(in_favourite)
    assert len(shares) >= 40
    assert sum(shares) / len(shares) > 0.65

    # Churners went quiet: nothing from them in the last two months.
    churners = [e for e, p in report.preferences.items() if p.archetype == "churner"]
    assert churners
    assert all(last_seen[e] < AS_OF - timedelta(days=60) for e in churners if e in last_seen)
    # Loyal customers come back for what they bought before.
    repeat = Counter[str]()
    bought = await session.execute(
        select(m.Order.customer_id, m.OrderLine.product_id).join(
            m.Order, m.Order.id == m.OrderLine.order_id
        )
    )
    for customer_id, product_id in bought:
        repeat[f"{customer_id}:{product_id}"] += 1
    assert any(n > 1 for n in repeat.values())


# A shop large enough for the customer insights to tell its customers' rhythms apart.
RHYTHMS = {"customers": 400, "products": 120}


@pytest.fixture
async def rhythms_shop(
    sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[tuple[DemoReport, AsyncSession, insights.InsightsReport]]:
    """The RHYTHMS demo shop, its insights rebuilt as of AS_OF, and a session on it. On SQLite
    alone: the rows are the same on PostgreSQL, and the insights' SQL is tested on both in
    tests/server/test_rfm.py."""
    path = tmp_path / "rhythms.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    report = await load(url, seed=12, as_of=AS_OF, **RHYTHMS)
    assert report is not None
    settings = Settings(database_url=url, plugins="", plugin_entry_points=False)
    engine = create_engine(url)
    try:
        rebuilt = await insights.rebuild(session_factory(engine), settings, as_of=AS_OF)
        async with session_factory(engine)() as session:
            yield report, session, rebuilt
    finally:
        await engine.dispose()


async def test_the_customer_insights_find_the_customers_rhythms(
    rhythms_shop: tuple[DemoReport, AsyncSession, insights.InsightsReport],
) -> None:
    """Loaded, the demo shop fills every RFM segment, and the lifetime-value models fitted on
    its purchases converge to sensible figures and tell churners from loyal buyers."""
    report, session, rebuilt = rhythms_shop
    emails = {c.id: c.email for c in (await session.execute(select(m.Customer))).scalars()}
    archetype = {cid: report.preferences[email].archetype for cid, email in emails.items()}
    scored = (await session.execute(select(m.CustomerRfm))).scalars().all()
    assert len(scored) == rebuilt.rfm.customers > 0.8 * RHYTHMS["customers"]

    # Every one of the eight segments has customers in it.
    by_segment = Counter(r.segment for r in scored)
    assert set(by_segment) == set(m.CustomerSegment), by_segment
    assert min(by_segment.values()) >= 3, by_segment
    # And the rhythms show in them.
    segment_of: dict[str, list[m.CustomerSegment]] = defaultdict(list)
    for row in scored:
        segment_of[archetype[row.customer_id]].append(row.segment)
    S = m.CustomerSegment
    recent = {S.IMPORTANT_VALUE, S.IMPORTANT_DEVELOP, S.GENERAL_VALUE, S.GENERAL_DEVELOP}
    frequent = {S.IMPORTANT_VALUE, S.IMPORTANT_KEEP, S.GENERAL_VALUE, S.GENERAL_KEEP}
    big_spend = {S.IMPORTANT_VALUE, S.IMPORTANT_DEVELOP, S.IMPORTANT_KEEP, S.IMPORTANT_WIN_BACK}

    def share(kind: str, segments: set[m.CustomerSegment]) -> float:
        found = segment_of[kind]
        assert len(found) >= 5, kind
        return sum(s in segments for s in found) / len(found)

    assert share("loyal", frequent) > 0.9
    assert share("new", recent) > 0.9  # a purchase or two, lately
    assert share("one_time", set(S) - frequent) > 0.8
    assert share("big_ticket", big_spend) > 2 / 3
    # Churners stopped 2–9 months ago: how recent that is depends on the shop (R is a quintile
    # score), but far fewer of them are recent than of the loyal buyers.
    assert share("churner", recent) < 1 / 3
    assert share("loyal", recent) > share("churner", recent) + 0.4

    # BG/NBD and Gamma-Gamma on the purchases, summarised as the CLV tests summarise a log.
    purchases = (
        await session.execute(
            select(m.Order.customer_id, m.Order.placed_at, m.Order.total_amount).where(
                m.Order.status.in_(rfm.PURCHASE_STATUSES)
            )
        )
    ).all()
    last_day = (AS_OF - timedelta(seconds=1)).date()
    summary = clv.summarize_transactions(
        [customer for customer, _, _ in purchases],
        [placed.date() for _, placed, _ in purchases],
        [total / 100 for _, _, total in purchases],
        calibration_end=last_day,
        unit="week",
    )
    assert summary.size == len(scored)
    bgnbd = clv.fit_bgnbd(summary.frequency, summary.recency, summary.age)
    assert bgnbd.converged, bgnbd.message
    r, alpha, a, b = (bgnbd.model.r, bgnbd.model.alpha, bgnbd.model.a, bgnbd.model.b)
    # Customers buy every few weeks to every few months (rates differ a lot between them), and
    # a few in a hundred drop out after a purchase.
    assert 0.05 < r / alpha < 0.5 and 0.2 < r < 5, (r, alpha)
    assert 0.01 < a / (a + b) < 0.3, (a, b)
    repeat = summary.frequency > 0
    assert summary.monetary is not None
    spend = clv.fit_gamma_gamma(summary.frequency[repeat], summary.monetary[repeat])
    assert spend.converged, spend.message
    assert spend.model.q > 1
    observed = float(summary.monetary[repeat].mean())
    assert 0.5 < spend.model.mean_spend / observed < 1.5, (spend.model, observed)

    kinds = [archetype[int(c)] for c in summary.customers]
    alive = bgnbd.model.p_alive(summary.frequency, summary.recency, summary.age)
    expected = spend.model.conditional_expected_spend(summary.frequency, summary.monetary)

    def mean_of(values: npt.NDArray[np.float64], kind: str, *, repeaters: bool = False) -> float:
        chosen = np.array([k == kind for k in kinds]) & ((summary.frequency > 0) | (not repeaters))
        assert chosen.sum() >= 5, kind
        return float(values[chosen].mean())

    # The churners' chance of still being customers is far below the loyal buyers'.
    assert mean_of(alive, "churner") < 0.4
    assert mean_of(alive, "loyal") > mean_of(alive, "churner") + 0.3
    # Big-ticket buyers are expected to spend far more on an order than loyal buyers.
    big, everyday = mean_of(expected, "big_ticket", repeaters=True), mean_of(expected, "loyal")
    assert big > 4 * everyday, (big, everyday)


async def test_demo_searches_feed_the_search_analytics(
    database_url: str, session: AsyncSession
) -> None:
    await _fill(database_url, seed=4)
    year = search_insights.Period(AS_OF - timedelta(days=365), AS_OF + timedelta(days=1))
    nothing = await search_insights.searches_without_results(session, year, 100)
    assert nothing.terms
    assert {t.query for t in nothing.terms} <= set(NO_RESULT_QUERIES)
    # Views and adds to cart after a search in the same visit are its clicks.
    search = aliased(m.CustomerEvent)
    clicks = (
        await session.execute(
            select(m.CustomerEvent.session_id, search.session_id, search.kind)
            .add_columns(m.CustomerEvent.occurred_at >= search.occurred_at)
            .join(search, search.id == m.CustomerEvent.search_id)
        )
    ).all()
    assert clicks
    assert all(
        own == theirs and kind is m.CustomerEventKind.SEARCH and after
        for own, theirs, kind, after in clicks
    )
    low = await search_insights.searches_with_low_click_through(
        session, year, 100, min_searches=1, max_click_through_rate=1.0
    )
    # Searches that found nothing are never clicked through.
    assert {t.query for t in nothing.terms} <= {t.query for t in low.terms if t.clicks == 0}


async def test_search_finds_a_demo_product_by_a_chinese_substring(
    database_url: str, gql: GraphQLClient, session: AsyncSession
) -> None:
    await _fill(database_url, seed=3)
    product = await session.scalar(
        select(m.Product)
        .where(m.Product.is_active, m.Product.sku.like("PHO-%"))
        .order_by(m.Product.id)
    )
    assert product is not None and "手机" in product.name
    query = """query($q: String!) {
      products(first: 100, filter: {search: $q}) { totalCount edges { node { sku name } } }
    }"""
    # A substring of a Chinese run inside the name ("5G手机" → "手机").
    data = await gql(query, {"q": "手机"})
    assert product.sku in {e["node"]["sku"] for e in data["products"]["edges"]}
    # The category path is indexed too: the top category's name finds the phone.
    data = await gql(query, {"q": "数码"})
    assert product.sku in {e["node"]["sku"] for e in data["products"]["edges"]}
    # Its variants' option values (a colour, part of it) and SKUs are indexed too.
    colours = await session.scalar(
        select(m.ProductOption.values).where(
            m.ProductOption.product_id == product.id, m.ProductOption.name == "颜色"
        )
    )
    assert colours
    data = await gql(query, {"q": f"{product.brand} {colours[-1][:2]}"})
    assert product.sku in {e["node"]["sku"] for e in data["products"]["edges"]}
    variant_sku = await session.scalar(
        select(m.ProductVariant.sku)
        .where(m.ProductVariant.product_id == product.id)
        .order_by(m.ProductVariant.id.desc())  # type: ignore[union-attr]  # a SQLModel column is an InstrumentedAttribute at run time
    )
    assert variant_sku is not None and variant_sku != product.sku
    data = await gql(query, {"q": variant_sku})
    assert [e["node"]["sku"] for e in data["products"]["edges"]] == [product.sku]


async def test_cli_fills_an_empty_shop_once(database_url: str, session: AsyncSession) -> None:
    runner = CliRunner()
    env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": ""}  # the core alone
    args = ["demo-data", "--customers", "12", "--products", "30", "--orders", "25"]
    args += ["--seed", "9", "--as-of", "2025-03-01"]
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "30 products" in result.output and "25 orders" in result.output
    assert f"/ {DEMO_PASSWORD}" in result.output
    # Not a terminal: one plain progress line per step, ending at the total.
    steps = [line for line in result.stderr.splitlines() if line.startswith("demo-data: ")]
    assert steps[0] == f"demo-data: planned the catalogue (1/{POPULATE_STEPS})"
    assert steps[-1].endswith(f"({POPULATE_STEPS}/{POPULATE_STEPS})")
    assert len(steps) == POPULATE_STEPS

    async def count(model: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    assert (await count(m.Product), await count(m.Customer), await count(m.Order)) == (30, 12, 25)
    latest = await session.scalar(select(func.max(m.Order.placed_at)))
    assert latest is not None and latest <= AS_OF

    again = runner.invoke(main, [*args[:-4], "--if-empty"], env=env)
    assert again.exit_code == 0 and "left as it is" in again.output
    refused = runner.invoke(main, ["demo-data", "--products", "5"], env=env)
    assert refused.exit_code == 1 and "already has products" in refused.output
    session.expire_all()
    assert (await count(m.Product), await count(m.Order)) == (30, 25)


# --- the plan, apart from the database --------------------------------------------------------


def fingerprint(plan: ShopPlan) -> str:
    """Every row a plan holds, references by natural key, hashed: two plans are the same shop
    exactly when their fingerprints are equal."""
    sku = {id(p): p.row["sku"] for p in plan.products}
    variant_sku = {id(v): v.row["sku"] for p in plan.products for v in p.variants}
    email = {id(c): c.row["email"] for c in plan.customers}
    number = {id(o): o.row["number"] for o in plan.orders}
    parts: list[Any] = [plan.password_hash, plan.categories, sorted(plan.stock.items())]
    parts += [(p.row, p.index, p.options, [v.row for v in p.variants]) for p in plan.products]
    parts += [(c.row, c.addresses, c.prefs, c.rhythm) for c in plan.customers]
    for o in plan.orders:
        lines = [(line, variant_sku[id(v)]) for line, v in o.lines]
        parts.append((o.row, email[id(o.customer)], o.warehouse, lines))
        parts.append((o.changes, o.payment, o.shipment, o.tracking))
    for e in plan.events:
        product = sku[id(e.product)] if e.product else None
        order = number[id(e.order)] if e.order else None
        parts.append((email[id(e.customer)], e.kind, e.at, e.session_id, product, order))
        parts.append((e.query, e.quantity, e.source))
    for cart in plan.carts:
        parts.append((cart.token, email[id(cart.customer)], cart.at))
        parts.append([variant_sku[id(v)] for v in cart.variants])
    for survey in plan.surveys:
        order = number[id(survey.order)] if survey.order else None
        parts.append((email[id(survey.customer)], order, survey.subject, survey.row))
    parts.append(plan.marketing_costs)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# The demo shop of seed 7 (SMALL, as of AS_OF), as drawn since visits and orders have channels,
# the paid channels daily costs, and satisfaction surveys follow deliveries, returns and
# purchases. When it changes, every demo shop has changed: on purpose? Then update it.
SEED_7_FINGERPRINT = "f3b328cfc678993fe91584f1eb4223e836359b9c9372ebf73e47b3d0d7ef308b"


def test_the_plan_is_drawn_from_the_seed_alone() -> None:
    first = plan_shop(seed=7, as_of=AS_OF, **SMALL)
    assert fingerprint(first) == fingerprint(plan_shop(seed=7, as_of=AS_OF, **SMALL))
    assert fingerprint(first) == SEED_7_FINGERPRINT
    assert fingerprint(first) != fingerprint(plan_shop(seed=8, as_of=AS_OF, **SMALL))
    # Planned, not written: no row has an id yet.
    assert all("id" not in p.row for p in first.products)
    assert (len(first.products), len(first.customers), len(first.orders)) == (60, 30, 90)


# --- the customers' rhythms and the calendar, in the plan -------------------------------------


@pytest.fixture(scope="module")
def rhythm_plan() -> ShopPlan:
    return plan_shop(seed=21, as_of=AS_OF, **RHYTHMS)


def _in_sale(day: date) -> bool:
    """618 (June 1–18) and Double 11 (October 31 – November 11)."""
    june = day.month == 6 and day.day <= 18
    november = day.month == 11 and day.day <= 11
    return june or november or (day.month, day.day) == (10, 31)


def test_eighteen_months_of_history_with_the_markets_calendar(rhythm_plan: ShopPlan) -> None:
    plan = rhythm_plan
    start = plan.history_start
    assert plan.as_of - start == timedelta(days=548)
    # Orders, their histories, payments, shipments and behaviour all reach back 18 months.
    first_month = start + timedelta(days=31)
    assert min(o.row["placed_at"] for o in plan.orders) < first_month
    assert min(o.changes[-1]["at"] for o in plan.orders) < first_month + timedelta(days=10)
    assert min(o.payment["created_at"] for o in plan.orders if o.payment) < first_month
    assert min(o.shipment["shipped_at"] for o in plan.orders if o.shipment) < first_month
    assert min(e.at for e in plan.events) < first_month
    assert max(o.row["placed_at"] for o in plan.orders) <= plan.as_of

    per_day = Counter(o.row["placed_at"].date() for o in plan.orders)
    days = [(start + timedelta(days=d)).date() for d in range(548)]

    def rate(which: Callable[[date], bool]) -> float:
        chosen = [d for d in days if which(d)]
        return sum(per_day[d] for d in chosen) / len(chosen)

    # 618 and Double 11 sell more than the rest of the year, the fortnight around the Spring
    # Festival (10 February 2024) less — modestly: no month has more than a tenth of the orders.
    ordinary = rate(lambda d: not _in_sale(d))
    assert 1.3 < rate(_in_sale) / ordinary < 2.5
    assert rate(lambda d: abs((d - date(2024, 2, 10)).days) <= 7) < 0.75 * ordinary
    months = Counter(d.strftime("%Y-%m") for d in per_day.elements())
    assert max(months.values()) < 0.1 * len(plan.orders)


def test_customers_buy_in_the_rhythm_of_their_archetype(rhythm_plan: ShopPlan) -> None:
    plan = rhythm_plan
    of: dict[str, list[PlannedCustomer]] = defaultdict(list)
    for customer in plan.customers:
        of[customer.prefs.archetype].append(customer)
    # Every archetype in its share (the shares are whole percentages).
    for name, kind in ARCHETYPES.items():
        assert abs(len(of[name]) - kind.share * len(plan.customers) / 100) < 1, name
    orders_of: dict[int, list[PlannedOrder]] = defaultdict(list)
    for order in plan.orders:
        orders_of[id(order.customer)].append(order)

    def purchases(c: PlannedCustomer) -> list[datetime]:
        return sorted(o.row["placed_at"] for o in orders_of[id(c)])

    def gap_days(c: PlannedCustomer) -> float:
        bought = purchases(c)
        return (bought[-1] - bought[0]).total_seconds() / 86400 / (len(bought) - 1)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    # Loyal buyers every 2–4 weeks, regular ones about monthly.
    assert 14 <= median([gap_days(c) for c in of["loyal"] if len(purchases(c)) > 2]) <= 28
    assert 21 <= median([gap_days(c) for c in of["regular"] if len(purchases(c)) > 2]) <= 42
    # One-time buyers hardly come back; browsers never buy.
    assert sum(len(purchases(c)) == 1 for c in of["one_time"]) >= 0.7 * len(of["one_time"])
    assert not any(orders_of[id(c)] for c in of["browser"])
    # Seasonal buyers buy on 618 and Double 11 (a twelfth of the year) far more than otherwise.
    seasonal = [t for c in of["seasonal"] for t in purchases(c)]
    assert sum(_in_sale(t.date()) for t in seasonal) > 0.4 * len(seasonal)
    # Big-ticket buyers rarely, and for many times what others spend on an order.
    assert median([len(purchases(c)) for c in of["big_ticket"]]) <= 3

    def order_value(kinds: Callable[[str], bool]) -> float:
        totals = [o.row["total_amount"] for o in plan.orders if kinds(o.customer.prefs.archetype)]
        return sum(totals) / len(totals)

    assert order_value(lambda k: k == "big_ticket") > 5 * order_value(lambda k: k != "big_ticket")
    # New customers first bought in the last two months.
    assert all(purchases(c)[0] >= plan.as_of - timedelta(days=61) for c in of["new"])

    # Churners were regular for months, then stopped 2–9 months ago: no order and no visit since;
    # their browsing faded in the weeks before.
    assert of["churner"]
    visits: dict[int, list[datetime]] = defaultdict(list)
    bought_in = {e.session_id for e in plan.events if e.kind is m.CustomerEventKind.PURCHASE}
    for event in plan.events:
        if event.session_id not in bought_in:
            visits[id(event.customer)].append(event.at)
    assert median([len(purchases(c)) for c in of["churner"]]) >= 4
    last_weeks = weeks_before = 0
    for c in of["churner"]:
        stop = c.rhythm.stop
        assert stop is not None and c.rhythm.lapsed == stop
        assert plan.as_of - timedelta(days=271) < stop < plan.as_of - timedelta(days=60)
        assert purchases(c)[0] < stop - timedelta(days=119)
        assert all(t <= stop for t in purchases(c) + visits[id(c)])
        # Their visits in the last four weeks, and in four weeks two months before.
        last_weeks += sum(stop - timedelta(weeks=4) <= t for t in visits[id(c)])
        weeks_before += sum(
            stop - timedelta(weeks=12) <= t < stop - timedelta(weeks=8) for t in visits[id(c)]
        )
    assert last_weeks < 0.5 * weeks_before

    # Behaviour follows purchases: each line viewed and put in the cart, in the visit that
    # bought it, before it was bought; and most buyers also visit without buying.
    carted = {
        (e.session_id, id(e.product))
        for e in plan.events
        if e.kind is m.CustomerEventKind.ADD_TO_CART
    }
    for event in plan.events:
        if event.kind is m.CustomerEventKind.PURCHASE:
            assert (event.session_id, id(event.product)) in carted
    buyers = [c for c in plan.customers if orders_of[id(c)]]
    assert sum(bool(visits[id(c)]) for c in buyers) > 0.9 * len(buyers)


def test_surveys_follow_deliveries_returns_and_purchases(rhythm_plan: ShopPlan) -> None:
    plan = rhythm_plan
    surveys = plan.surveys
    of_trigger: dict[m.SurveyTrigger, list[Any]] = defaultdict(list)
    for survey in surveys:
        of_trigger[survey.row["trigger"]].append(survey)
    # A delivery survey after every delivered order (of customers who did not opt out).
    opted_out = {id(c) for c in plan.customers if c.row["surveys_opt_out"]}
    assert 0 < len(opted_out) < 0.1 * len(plan.customers)
    assert not any(id(s.customer) in opted_out for s in surveys)
    delivered = [
        o
        for o in plan.orders
        if o.shipment is not None
        and o.shipment["status"] is m.ShipmentStatus.DELIVERED
        and id(o.customer) not in opted_out
    ]
    deliveries = of_trigger[m.SurveyTrigger.DELIVERY]
    assert [id(s.order) for s in deliveries] == [id(o) for o in delivered]
    for survey in deliveries:
        shipment = survey.order.shipment
        assert survey.row["carrier"] == shipment["carrier"]
        assert shipment["delivered_at"] < survey.row["sent_at"] <= plan.as_of
    # A return survey exactly for the delivered orders whose payment was refunded.
    returned = {id(o) for o in delivered if o.payment["status"] is m.PaymentStatus.REFUNDED}
    assert returned and {id(s.order) for s in of_trigger[m.SurveyTrigger.RETURN]} == returned
    # The periodic NPS survey: at most one in 180 days, each after a purchase in 90 days.
    nps_of: dict[int, list[datetime]] = defaultdict(list)
    for survey in of_trigger[m.SurveyTrigger.PERIODIC]:
        assert survey.row["kind"] is m.SurveyKind.NPS
        nps_of[id(survey.customer)].append(survey.row["sent_at"])
    paid_of: dict[int, list[datetime]] = defaultdict(list)
    for order in plan.orders:
        if order.row["status"] is not m.OrderStatus.CANCELLED and order.row["paid_at"]:
            paid_of[id(order.customer)].append(order.row["paid_at"])
    for customer, sent in nps_of.items():
        assert all(b - a >= timedelta(days=180) for a, b in itertools.pairwise(sent))
        for at in sent:
            assert any(
                timedelta(0) <= at - paid <= timedelta(days=90) for paid in paid_of[customer]
            )
    # Answers and states as of the end of the history.
    for survey in surveys:
        row = survey.row
        low, high = (0, 10) if row["kind"] is m.SurveyKind.NPS else (1, 5)
        if row["state"] is m.SurveyState.ANSWERED:
            assert low <= row["score"] <= high and row["answered_at"] <= plan.as_of
        else:
            assert row["score"] is None and row["comment"] is None
            open_ = row["state"] is m.SurveyState.SENT
            assert open_ == (row["expires_at"] > plan.as_of)
    # EMS delivers late and pleases least: the lowest response rate and CSAT.
    figures = {}
    for carrier in ("顺丰速运", "京东物流", "中通快递", "圆通速递", "EMS"):
        rows = [s.row for s in deliveries if s.row["carrier"] == carrier]
        scores = [r["score"] for r in rows if r["score"] is not None]
        figures[carrier] = (len(scores) / len(rows), sum(scores) / len(scores))
    assert min(figures, key=lambda c: figures[c][0]) == "EMS"
    assert min(figures, key=lambda c: figures[c][1]) == "EMS"
    assert figures["顺丰速运"][1] - figures["EMS"][1] > 1
    comments = [s.row["comment"] for s in of_trigger[m.SurveyTrigger.PERIODIC] if s.row["comment"]]
    assert comments and all(any("\u4e00" <= ch <= "\u9fff" for ch in c) for c in comments)
    # The demo login finds a survey waiting for them.
    demo = plan.demo_customer()
    assert any(s.customer is demo and s.row["state"] is m.SurveyState.SENT for s in surveys)


async def test_demo_surveys_are_keyed_as_the_triggers_key_them(
    database_url: str, session: AsyncSession
) -> None:
    report = await _fill(database_url, seed=11, customers=60, products=80, orders=250)
    rows = (await session.execute(select(m.Survey))).scalars().all()
    assert report.counts["surveys"] == len(rows) > 0
    shipments = {s.id: s for s in (await session.execute(select(m.Shipment))).scalars()}
    for survey in rows:
        if survey.trigger in (m.SurveyTrigger.DELIVERY, m.SurveyTrigger.RETURN):
            assert survey.subject_key == f"order:{survey.order_id}"
        if survey.trigger is m.SurveyTrigger.DELIVERY:
            shipment = shipments[survey.shipment_id]
            assert (shipment.order_id, shipment.carrier) == (survey.order_id, survey.carrier)
        if survey.trigger is m.SurveyTrigger.PERIODIC:
            day = (survey.sent_at + timedelta(hours=8)).date()
            assert survey.subject_key == f"nps:{survey.customer_id}:{day.isoformat()}"
    year = surveys_service.period(AS_OF - timedelta(days=365), AS_OF, AS_OF)
    figures = await surveys_service.satisfaction(session, year, surveys_service.Grouping.CARRIER)
    assert figures.total.sent == sum(1 for s in rows if s.sent_at >= year.start)
    assert {g.key for g in figures.groups} <= {
        "顺丰速运",
        "京东物流",
        "中通快递",
        "圆通速递",
        "EMS",
    }


def test_an_order_count_is_met_by_scaling_every_rate() -> None:
    """Asked for a number of orders, the planner scales every customer's purchase rate by one
    factor (the rhythms' shape stays), and keeps who buys and when they first bought."""
    sizes = {"customers": 40, "products": 30}
    natural = plan_shop(seed=3, as_of=AS_OF, **sizes)
    assert natural.rate_scale == 1.0 and 4 * 40 < len(natural.orders) < 10 * 40
    first = {c.row["email"]: c.rhythm.first for c in natural.customers}
    buyers = sum(t is not None for t in first.values())
    for count in (len(natural.orders) // 2, 2 * len(natural.orders)):
        plan = plan_shop(seed=3, as_of=AS_OF, orders=count, **sizes)
        assert len(plan.orders) == count
        assert (plan.rate_scale < 1) == (count < len(natural.orders))
        assert {c.row["email"]: c.rhythm.first for c in plan.customers} == first
    # Fewer orders than buyers: that many customers buy, once each; the others only browse.
    plan = plan_shop(seed=3, as_of=AS_OF, orders=buyers - 5, **sizes)
    assert len(plan.orders) == len({id(o.customer) for o in plan.orders}) == buyers - 5
    assert all((c.prefs.archetype == "browser") == (c.rhythm.first is None) for c in plan.customers)


# --- the demo_data hook --------------------------------------------------------------------


def only(*plugins: Any) -> PluginRuntime:
    """Exactly these plugins (the installed ones are left out)."""
    return load_plugins(Settings(plugins=""), extra=plugins)


class Seen:
    """A ``demo_data`` implementation that remembers its arguments, checks that the core's
    rows are there, in its transaction, and writes to them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        session: AsyncSession,
        shop: DemoShop,
        rng: random.Random,
        progress: Callable[[str], None],
        plugins: PluginRuntime,
        config: Any,
    ) -> dict[str, int]:
        products = await session.scalar(select(func.count()).select_from(m.Product))
        draws = [rng.random() for _ in range(3)]
        self.calls.append(
            {"session": session, "shop": shop, "draws": draws, "products": products}
            | {"plugins": plugins, "config": config}
        )
        progress("tagging")
        customer = await session.get(m.Customer, shop.demo_customer_id)
        assert customer is not None
        customer.tags = [*customer.tags, "demo-plugin"]
        await session.flush()
        return {"tagged customers": 1}


async def test_hook_demo_data(
    database_url: str, session: AsyncSession, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    seen = Seen()
    runtime = only(FakePlugin("tagger", demo_data=seen))
    assert demo_steps(runtime) == POPULATE_STEPS + 1
    shown = io.StringIO()
    with Progress("demo-data", demo_steps(runtime), stream=shown) as progress:
        report = await load(
            database_url, seed=4, as_of=AS_OF, plugins=runtime, progress=progress, **SMALL
        )
    assert report is not None
    [call] = seen.calls
    shop = call["shop"]
    assert isinstance(shop, DemoShop) and isinstance(call["session"], AsyncSession)
    assert call["plugins"] is runtime and call["config"] is None
    assert (shop.seed, shop.as_of, call["products"]) == (4, AS_OF, SMALL["products"])

    async def ids(model: Any) -> tuple[int, ...]:
        return tuple((await session.scalars(select(model.id).order_by(model.id))).all())

    assert shop.product_ids == await ids(m.Product)
    assert shop.customer_ids == await ids(m.Customer)
    assert shop.order_ids == await ids(m.Order)
    assert shop.category_ids == await ids(m.Category)
    assert shop.warehouse_ids == await ids(m.Warehouse)
    assert shop.cart_ids == await ids(m.Cart)
    demo = await session.scalar(select(m.Customer).where(m.Customer.email == report.demo_email))
    assert demo is not None and shop.demo_customer_id == demo.id
    # What the plugin wrote was committed with the core's rows.
    assert "demo-plugin" in demo.tags
    assert report.plugins == {"tagger": {"tagged customers": 1}}
    assert "plugin tagger: 1 tagged customers" in report.summary()
    total = POPULATE_STEPS + 1
    assert shown.getvalue().splitlines()[-3:] == [
        f"demo-data: tagger: tagging ({POPULATE_STEPS - 1}/{total})",
        f"demo-data: tagger: 1 tagged customers ({POPULATE_STEPS}/{total})",
        f"demo-data: alerts ({total}/{total})",
    ]
    # A populated shop is left alone: --if-empty calls no plugin.
    assert await load(database_url, as_of=AS_OF, if_empty=True, plugins=runtime) is None
    assert len(seen.calls) == 1

    # Each plugin draws from its own random source, seeded from the demo seed and its name:
    # the same draws whatever other plugins there are, another plugin other draws.
    other = Seen()
    both = only(FakePlugin("another", demo_data=other), FakePlugin("tagger", demo_data=seen))
    await load(await fresh_database(), seed=4, as_of=AS_OF, plugins=both, **SMALL)
    assert seen.calls[1]["draws"] == call["draws"]
    assert other.calls[0]["draws"] != call["draws"]


async def test_a_failing_plugin_fails_the_command_and_nothing_is_written(
    database_url: str, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(shop: DemoShop) -> None:
        raise RuntimeError("no points table")

    fine = Seen()
    # Called in pluggy's order, the last registered first: "fine" writes, then "broken" fails.
    runtime = only(FakePlugin("broken", demo_data=broken), FakePlugin("fine", demo_data=fine))
    with pytest.raises(PluginFailed) as failed:
        await load(database_url, seed=4, as_of=AS_OF, plugins=runtime, **SMALL)
    assert (failed.value.plugin, failed.value.hook) == ("broken", "demo_data")
    assert len(fine.calls) == 1
    # One transaction: the core's rows and the other plugin's went with it, and the shop is
    # empty again, ready for another run (after fixing or disabling the plugin).
    assert all(rows == [] for rows in (await dump(database_url)).values())

    # The command says which plugin failed, and how to go on without it.
    monkeypatch.setattr("server.cli._plugins", lambda: runtime)
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    result = CliRunner().invoke(
        main, ["demo-data", "--customers", "10", "--products", "5", "--orders", "0"], env=env
    )
    assert result.exit_code == 1
    assert "the demo data of plugin 'broken' failed: RuntimeError('no points table')" in (
        result.output
    )
    assert "SHOPGRAPH_DISABLED_PLUGINS=broken" in result.output
    assert not await session.scalar(select(func.count()).select_from(m.Product))
    # --if-empty still fills a shop a failed run left empty.
    monkeypatch.setattr("server.cli._plugins", lambda: only(FakePlugin("fine", demo_data=fine)))
    args = ["demo-data", "--customers", "3", "--products", "5", "--orders", "4", "--if-empty"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "plugin fine: 1 tagged customers" in result.output
    assert f"demo-data: fine: 1 tagged customers ({POPULATE_STEPS}/" in result.stderr


async def test_a_plugin_must_say_what_it_wrote_as_counts(database_url: str) -> None:
    runtime = only(FakePlugin("vague", demo_data=lambda: "lots of rows"))
    with pytest.raises(PluginFailed, match="vague.*demo_data must return"):
        await load(database_url, seed=4, as_of=AS_OF, plugins=runtime, **SMALL)


# --- channels and marketing costs ---------------------------------------------------------------


def test_visits_and_orders_come_through_a_believable_mix_of_channels(
    rhythm_plan: ShopPlan,
) -> None:
    plan = rhythm_plan
    C = m.SalesChannel
    paid = [o for o in plan.orders if o.row["status"] in rfm.PURCHASE_STATUSES]
    share = Counter(o.row["channel"] for o in paid)
    # The shop's own app and mini program bring most orders; a few say nothing.
    assert (share[C.APP] + share[C.MINI_PROGRAM]) / len(paid) > 0.5
    assert 0 < share[None] / len(paid) < 0.08
    assert all(share[c] > 0 for c in C)

    # Paid ads and live streams peak in the 618 and Double 11 sales.
    def rate(channel: m.SalesChannel, in_sale: bool) -> float:
        orders = [o for o in paid if _in_sale(o.row["placed_at"].date()) is in_sale]
        return sum(o.row["channel"] is channel for o in orders) / len(orders)

    assert rate(C.LIVE_STREAM, True) > 3 * rate(C.LIVE_STREAM, False)
    assert rate(C.PAID, True) > 1.5 * rate(C.PAID, False)
    # Community groups bring back repeat buyers, ads bring newcomers.
    first_order = {}
    for o in sorted(plan.orders, key=lambda o: o.row["placed_at"]):
        first_order.setdefault(id(o.customer), o)
    repeat = [o for o in paid if first_order[id(o.customer)] is not o]
    assert (
        sum(o.row["channel"] is C.COMMUNITY_GROUP for o in repeat) > 0.9 * share[C.COMMUNITY_GROUP]
    )
    firsts = [o for o in paid if first_order[id(o.customer)] is o]
    assert sum(o.row["channel"] is C.PAID for o in firsts) / len(firsts) > rate(C.PAID, False)
    # A visit's channel is on its first event (never a purchase), and an order has its visit's.
    sources = [e for e in plan.events if e.source is not None and e.source["channel"]]
    assert sources and all(e.kind is not m.CustomerEventKind.PURCHASE for e in sources)
    visit_channel = {e.session_id: e.source["channel"] for e in sources}
    for o in paid:
        visit = next(e.session_id for e in plan.events if e.order is o)
        assert o.row["channel"] is visit_channel.get(visit)
    tagged = [o for o in paid if o.row["channel"] is C.PAID]
    assert {o.row["utm_medium"] for o in tagged} == {"cpc"}
    assert {o.row["utm_campaign"] for o in tagged} >= {"always-on", "618-2024"}


def test_paid_channels_have_daily_costs_with_their_own_return(rhythm_plan: ShopPlan) -> None:
    plan = rhythm_plan
    C = m.SalesChannel
    costs: dict[m.SalesChannel, dict[date, int]] = defaultdict(dict)
    for row in plan.marketing_costs:
        assert row["day"] not in costs[row["channel"]]  # one row per day and channel
        costs[row["channel"]][row["day"]] = row["amount"]
        assert row["amount"] > 0 and row["amount"] % 100 == 0 and row["currency"] == "CNY"
    assert set(costs) == {C.PAID, C.LIVE_STREAM, C.COMMUNITY_GROUP}
    # Ads and the groups every day of the 18 months, live streams on their days.
    assert len(costs[C.PAID]) == len(costs[C.COMMUNITY_GROUP]) == 548
    assert 150 < len(costs[C.LIVE_STREAM]) < 300
    # Budgets rise through the sales and most on their peak days.
    for channel in (C.PAID, C.LIVE_STREAM):
        by_day = costs[channel]
        sale = [a for d, a in by_day.items() if _in_sale(d)]
        other = [a for d, a in by_day.items() if not _in_sale(d)]
        assert np.mean(sale) > 1.8 * np.mean(other)
        assert by_day[date(2024, 11, 11)] > np.mean(sale)
    # Each channel's return on its cost (last touch, every order): ads about break even, live
    # streams above, the community groups far above.
    revenue = Counter()
    for o in plan.orders:
        revenue[o.row["channel"]] += o.row["total_amount"]
    roi = {c: revenue[c] / sum(costs[c].values()) - 1 for c in costs}
    assert -0.2 < roi[C.PAID] < 0.2
    assert 1.0 < roi[C.LIVE_STREAM] < 2.0
    assert roi[C.COMMUNITY_GROUP] > 6
