"""The recommendation benchmark (docs/benchmarks.md, "Recommendation"): a full rebuild of the
recommendation models (the job ``recommendation.rebuild``) on a generated shop of 100,000
products, 50,000 customers, 500,000 orders and 2,000,000 behaviour events.

    python -m bench.recommendation [--products N] [--customers N] [--orders N] [--events N]
                                   [--databases sqlite,postgresql] [--write]

For each database (a fresh SQLite file, a throwaway PostgreSQL server: bench.storefront's) it
migrates and bulk-loads the generated shop (:func:`generate_shop`, progress on stderr), then
runs one rebuild in a child process of its own (so that its peak memory is its own) and
reports the seconds of each phase (read, each component, write), the CPU the rebuild and the
database server used, its peak resident memory and the rows it wrote. ``--write`` puts the
table into docs/benchmarks.md.

The generator is importable (:func:`plan_shop`, :func:`load_shop`, :func:`generate_shop`):
a serving benchmark fills its database with the same shop. The shop:

- a category tree of 20 departments × 8 aisles × 6 shelves (960 leaf categories), about 40%
  of the shelves consumable (food, personal care: bought again on a cycle of their own);
- products spread over the shelves by a Zipf-like popularity, each with a brand of its
  department, a name, tags and attributes in Chinese and Latin script, a price, mostly
  created before the history begins (10% during it, 2% archived);
- customers who arrive over the two years, some of whom lapse; each has a few favourite
  shelves and 1–6 staples (consumable products bought again on a personal cycle around the
  product's own), buys other products of their favourite shelves now and then, and with a
  quarter of what they buy the product's complement (a popular product of a sibling shelf):
  purchases of one customer within two days make one order;
- behaviour: views and carts before purchases, browsing of the favourite shelves (views,
  favourites, carts), and anonymous sessions browsing one shelf each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import insights, storefront

START_MARK = "<!-- recommendation-results:start -->"
END_MARK = "<!-- recommendation-results:end -->"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SEED = 2026
PRODUCTS = 100_000
CUSTOMERS = 50_000
ORDERS = 500_000
EVENTS = 2_000_000
HISTORY_DAYS = 730
DEPARTMENTS, AISLES, SHELVES = 20, 8, 6
CONSUMABLE_SHARE = 0.4
# Purchases of one customer this close together make one order.
BASKET_DAYS = 5.0
# Anonymous visitors' share of the behaviour, and events per anonymous session.
ANONYMOUS_SHARE = 0.25
SESSION_EVENTS = 8
BATCH = 20_000
MICROS_PER_DAY = 86_400 * 1_000_000
EVENT_KINDS = ("VIEW", "FAVORITE", "ADD_TO_CART")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_DEPARTMENT_NAMES = [
    "食品饮料",
    "生鲜",
    "酒水",
    "个护美妆",
    "母婴",
    "医药保健",
    "家居",
    "厨具",
    "家电",
    "数码",
    "服饰",
    "鞋靴",
    "箱包",
    "运动户外",
    "宠物",
    "图书",
    "玩具",
    "办公文具",
    "汽车用品",
    "珠宝配饰",
]
_GOODS = (
    "茶米油面奶果糖酱醋皂巾纸杯壶锅碗灯扇鞋袜帽衫裤包笔本球绳垫枕被毯刷膏露霜粉液片"
    "饼干豆肉鱼虾蛋菜酒水汁机线器表镜架盒瓶罐袋"
)
_BRAND_ZH = "华美佳康乐百优贝德嘉恒盛源丰安宝福兴金银天润和雅星光云海山川"
_BRAND_EN = ("ka", "lo", "mi", "ra", "ve", "to", "su", "na", "xi", "po", "de", "ly", "an", "or")
_MODIFIERS = (
    "",
    "有机",
    "进口",
    "经典",
    "升级款",
    "家庭装",
    "便携",
    "加厚",
    "迷你",
    "Pro",
    "Max",
    "Lite",
)
_UNITS = ("g", "ml", "件", "支", "片", "袋")
_TAGS = ("新品", "热卖", "包邮", "限时", "礼盒", "进口", "国货", "有机", "organic", "gift")
_CITIES = ("杭州", "上海", "成都", "广州", "云南", "东北", "新疆", "福建", "山东", "日本", "德国")


@dataclass(frozen=True)
class ShopPlan:
    """Everything to load, as arrays: categories, products, customers, orders and their lines,
    behaviour events. Times are microseconds since the epoch (UTC); customers, products,
    categories and orders are 0-based indexes (the loader turns them into ids)."""

    as_of: datetime
    category_parent: IntArray  # -1 for a department; parents come before their children
    category_name: list[str]
    product_category: IntArray
    product_name: list[str]
    product_brand: list[str]
    product_tags: list[list[str]]
    product_attributes: list[dict[str, str]]
    product_price: IntArray
    product_created: IntArray
    product_active: BoolArray
    customer_created: IntArray
    order_customer: IntArray
    order_time: IntArray
    line_order: IntArray
    line_product: IntArray
    event_customer: IntArray  # -1: an anonymous session's
    event_session: IntArray  # the anonymous session's index, -1 for a customer's
    event_kind: IntArray  # index into EVENT_KINDS
    event_product: IntArray
    event_time: IntArray

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "categories": len(self.category_name),
            "products": len(self.product_name),
            "customers": int(self.customer_created.shape[0]),
            "orders": int(self.order_customer.shape[0]),
            "order_lines": int(self.line_order.shape[0]),
            "events": int(self.event_kind.shape[0]),
            "sessions": int(self.event_session.max(initial=-1)) + 1,
        }


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _categories(rng: np.random.Generator) -> tuple[IntArray, list[str], IntArray]:
    """The tree (parents, names) and the leaf categories' indexes."""
    parents: list[int] = []
    names: list[str] = []
    leaves: list[int] = []
    used: set[str] = set()

    def noun(length: int) -> str:
        while True:
            word = "".join(rng.choice(list(_GOODS), length))
            if word not in used:
                used.add(word)
                return word

    for d in range(DEPARTMENTS):
        dept = len(names)
        parents.append(-1)
        names.append(_DEPARTMENT_NAMES[d % len(_DEPARTMENT_NAMES)])
        for _ in range(AISLES):
            aisle = len(names)
            parents.append(dept)
            names.append(noun(2) + "类")
            for _ in range(SHELVES):
                leaves.append(len(names))
                parents.append(aisle)
                names.append(noun(2))
    return np.array(parents, np.int64), names, np.array(leaves, np.int64)


def _brand(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(list(_BRAND_ZH), 2))
    return "".join(rng.choice(list(_BRAND_EN), 2)).capitalize()


class _ByShelf:
    """Products grouped by shelf with their popularity: draws a product of given shelves."""

    def __init__(self, shelf: IntArray, weight: FloatArray, shelves: int) -> None:
        order = np.lexsort((-weight, shelf))
        self.order = order
        sorted_shelf = shelf[order]
        w = weight[order]
        totals = np.bincount(sorted_shelf, weights=w, minlength=shelves)
        cum = np.cumsum(w)
        starts = np.searchsorted(sorted_shelf, np.arange(shelves))
        before = np.concatenate(([0.0], cum))[starts]
        within = cum - before[sorted_shelf]
        self.key = sorted_shelf + within / np.maximum(totals[sorted_shelf], 1e-300)
        self.count = np.bincount(sorted_shelf, minlength=shelves)

    def draw(self, shelves: IntArray, rng: np.random.Generator) -> IntArray:
        """A product of each of ``shelves`` (shelf positions), by popularity."""
        u = np.clip(rng.random(shelves.shape[0]), 1e-12, 1 - 1e-12)
        pos = np.searchsorted(self.key, shelves + u, side="left")
        return self.order[np.minimum(pos, self.order.shape[0] - 1)]


def plan_shop(
    products: int = PRODUCTS,
    customers: int = CUSTOMERS,
    orders: int = ORDERS,
    events: int = EVENTS,
    *,
    seed: int = SEED,
    as_of: datetime | None = None,
) -> ShopPlan:
    """Generate the shop (see the module's docstring), ``orders`` orders exactly (when the
    customers' habits give as many) and ``events`` behaviour events, over the
    :data:`HISTORY_DAYS` before ``as_of`` (by default the start of today, UTC)."""
    rng = np.random.default_rng(seed)
    end = as_of or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_us = _micros(end)
    start_us = end_us - HISTORY_DAYS * MICROS_PER_DAY

    # The catalogue.
    category_parent, category_name, leaves = _categories(rng)
    n_shelves = leaves.shape[0]
    shelf_weight = 1.0 / (rng.permutation(n_shelves) + 1.0) ** 0.8
    consumable_shelf = rng.random(n_shelves) < CONSUMABLE_SHARE
    per_shelf = 1 + rng.multinomial(max(products - n_shelves, 0), shelf_weight / shelf_weight.sum())
    if products < n_shelves:  # a tiny shop: one product on each of the first shelves
        per_shelf = (np.arange(n_shelves) < products).astype(np.int64)
    product_shelf = np.repeat(np.arange(n_shelves), per_shelf)
    rank_in_shelf = np.arange(products) - np.repeat(np.cumsum(per_shelf) - per_shelf, per_shelf)
    popularity = shelf_weight[product_shelf] / (rank_in_shelf + 1.0) ** 1.1
    by_shelf = _ByShelf(product_shelf, popularity, n_shelves)
    department = product_shelf // (AISLES * SHELVES)
    brands = [[_brand(rng) for _ in range(40)] for _ in range(DEPARTMENTS)]
    brand_pick = np.minimum(rng.zipf(1.6, products) - 1, 39)
    names, brand_names, tags, attributes = [], [], [], []
    modifiers = rng.integers(0, len(_MODIFIERS), products)
    sizes = rng.choice([50, 100, 250, 500, 1000, 2], products)
    units = rng.integers(0, len(_UNITS), products)
    tag_count = rng.integers(0, 3, products)
    cities = rng.integers(0, len(_CITIES), products)
    for i in range(products):
        shelf_name = category_name[int(leaves[product_shelf[i]])]
        brand = brands[int(department[i])][int(brand_pick[i])]
        spec = f"{sizes[i]}{_UNITS[units[i]]}"
        names.append(f"{brand} {_MODIFIERS[modifiers[i]]}{shelf_name} {spec}")
        brand_names.append(brand)
        tags.append([str(t) for t in rng.choice(_TAGS, tag_count[i], replace=False)])
        attributes.append({"产地": _CITIES[cities[i]], "规格": spec})
    price = np.rint(np.exp(rng.normal(np.log(6_000), 1.0, products))).astype(np.int64) + 100
    during = rng.random(products) < 0.1
    product_created = np.where(
        during,
        start_us + (rng.random(products) * (end_us - start_us)).astype(np.int64),
        start_us - (rng.random(products) * 180 * MICROS_PER_DAY).astype(np.int64),
    )
    product_active = rng.random(products) >= 0.02
    cycle_days = np.where(
        consumable_shelf[product_shelf], np.exp(rng.normal(np.log(21.0), 0.5, products)), 0.0
    )
    # A product's complement: a popular product of a sibling shelf (same aisle).
    sibling = (product_shelf // SHELVES) * SHELVES + rng.integers(0, SHELVES, products)
    complement = by_shelf.draw(sibling, rng)
    consumables = np.flatnonzero(consumable_shelf)

    # Customers: arrival, lapse, favourite shelves, staples.
    arrive = start_us + (rng.random(customers) * 0.85 * (end_us - start_us)).astype(np.int64)
    lapse = arrive + (rng.exponential(500.0, customers) * MICROS_PER_DAY).astype(np.int64)
    leave = np.minimum(lapse, end_us)
    favourite = rng.choice(n_shelves, (customers, 3), p=shelf_weight / shelf_weight.sum())
    customer_created = arrive - (rng.exponential(10.0, customers) * MICROS_PER_DAY).astype(np.int64)

    def purchases(explore_rate: float) -> tuple[IntArray, IntArray, IntArray]:
        """(customer, product, time) of every purchase, staples, exploration and complements."""
        # Staples: consumable products bought again around the product's cycle.
        staples = np.minimum(1 + rng.poisson(1.5, customers), 6)
        s_customer = np.repeat(np.arange(customers), staples)
        s_weight = shelf_weight[consumables]
        s_shelf = consumables[
            rng.choice(consumables.shape[0], s_customer.shape[0], p=s_weight / s_weight.sum())
        ]
        s_product = by_shelf.draw(s_shelf, rng)
        s_cycle = np.maximum(
            cycle_days[s_product] * np.exp(rng.normal(0, 0.25, s_product.shape[0])), 3.0
        )
        span_days = (leave[s_customer] - arrive[s_customer]) / MICROS_PER_DAY
        phase = rng.random(s_product.shape[0]) * s_cycle
        times_each = np.maximum(np.floor((span_days - phase) / s_cycle).astype(np.int64) + 1, 0)
        r_staple = np.repeat(np.arange(s_product.shape[0]), times_each)
        r_index = np.arange(r_staple.shape[0]) - np.repeat(
            np.cumsum(times_each) - times_each, times_each
        )
        r_days = (
            phase[r_staple]
            + r_index * s_cycle[r_staple]
            + rng.normal(0, 0.1, r_staple.shape[0]) * s_cycle[r_staple]
        )
        staple_customer = s_customer[r_staple]
        staple_product = s_product[r_staple]
        staple_time = arrive[staple_customer] + (np.maximum(r_days, 0) * MICROS_PER_DAY).astype(
            np.int64
        )
        # Exploration: products of the favourite shelves (70%) or anywhere.
        active_days = (leave - arrive) / MICROS_PER_DAY
        explore = rng.poisson(explore_rate * active_days)
        e_customer = np.repeat(np.arange(customers), explore)
        fav = favourite[e_customer, rng.integers(0, 3, e_customer.shape[0])]
        anywhere = rng.choice(n_shelves, e_customer.shape[0], p=shelf_weight / shelf_weight.sum())
        e_shelf = np.where(rng.random(e_customer.shape[0]) < 0.7, fav, anywhere)
        e_product = by_shelf.draw(e_shelf, rng)
        e_time = arrive[e_customer] + (
            rng.random(e_customer.shape[0]) * (leave - arrive)[e_customer]
        ).astype(np.int64)
        customer_ = np.concatenate([staple_customer, e_customer])
        product_ = np.concatenate([staple_product, e_product])
        time_ = np.concatenate([staple_time, e_time])
        # Complements, bought in the same order.
        with_it = rng.random(product_.shape[0]) < 0.35
        customer_ = np.concatenate([customer_, customer_[with_it]])
        time_ = np.concatenate([time_, time_[with_it]])
        product_ = np.concatenate([product_, complement[product_[with_it]]])
        # Not before the product exists, nor after the history ends.
        keep = (time_ >= product_created[product_]) & (time_ < end_us)
        return customer_[keep], product_[keep], time_[keep]

    explore_rate = 0.01
    for _attempt in range(4):
        p_customer, p_product, p_time = purchases(explore_rate)
        basket = (p_time - start_us) // int(BASKET_DAYS * MICROS_PER_DAY)
        keys, line_order = np.unique(p_customer * (HISTORY_DAYS + 1) + basket, return_inverse=True)
        if keys.shape[0] >= orders:
            break
        explore_rate *= 1.3 * orders / max(keys.shape[0], 1)
    line_order = line_order.ravel()
    n_orders = keys.shape[0]
    order_customer = (keys // (HISTORY_DAYS + 1)).astype(np.int64)
    order_time = np.full(n_orders, np.iinfo(np.int64).max)
    np.minimum.at(order_time, line_order, p_time)
    # Exactly ``orders`` orders: drop some at random.
    kept_orders = np.sort(rng.choice(n_orders, min(orders, n_orders), replace=False))
    renumber = np.full(n_orders, -1)
    # In time order: order indexes (and so ids) ascend with time.
    by_time = kept_orders[np.argsort(order_time[kept_orders], kind="stable")]
    renumber[by_time] = np.arange(by_time.shape[0])
    line_keep = renumber[line_order] >= 0
    line_order = renumber[line_order[line_keep]]
    line_product = p_product[line_keep]
    order_customer = order_customer[by_time]
    order_time = order_time[by_time]
    # One line per product and order; none of a product newer than its order (an order's
    # time is its earliest purchase's, whose own product is older).
    pairs = np.unique(line_order * products + line_product)
    line_order, line_product = pairs // products, pairs % products
    existing = product_created[line_product] <= order_time[line_order]
    line_order, line_product = line_order[existing], line_product[existing]

    # Behaviour: before purchases, browsing the favourite shelves, anonymous sessions.
    anonymous = int(events * ANONYMOUS_SHARE)
    customer_events = events - anonymous
    line_customer = order_customer[line_order]
    line_at = order_time[line_order]
    seen = rng.random(line_order.shape[0])
    pre_view = seen < 0.4
    pre_cart = seen < 0.3
    pre = np.concatenate([np.flatnonzero(pre_view), np.flatnonzero(pre_cart)])
    pre = pre[: customer_events // 2]
    pre_kind = np.concatenate(
        [np.zeros(int(pre_view.sum()), np.int64), np.full(int(pre_cart.sum()), 2)]
    )[: pre.shape[0]]
    pre_time = line_at[pre] - (rng.random(pre.shape[0]) * 3600e6).astype(np.int64)
    browse = customer_events - pre.shape[0]
    activity = np.bincount(line_customer, minlength=customers) + 5.0
    b_customer = rng.choice(customers, browse, p=activity / activity.sum())
    fav = favourite[b_customer, rng.integers(0, 3, browse)]
    anywhere = rng.choice(n_shelves, browse, p=shelf_weight / shelf_weight.sum())
    b_product = by_shelf.draw(np.where(rng.random(browse) < 0.8, fav, anywhere), rng)
    b_time = arrive[b_customer] + (rng.random(browse) * (leave - arrive)[b_customer]).astype(
        np.int64
    )
    b_kind = rng.choice(3, browse, p=[0.85, 0.05, 0.10])
    sessions = max(anonymous // SESSION_EVENTS, 1) if anonymous else 0
    a_session = rng.integers(0, max(sessions, 1), anonymous)
    session_shelf = rng.choice(n_shelves, max(sessions, 1), p=shelf_weight / shelf_weight.sum())
    session_start = start_us + (rng.random(max(sessions, 1)) * (end_us - start_us)).astype(np.int64)
    a_product = by_shelf.draw(session_shelf[a_session], rng)
    a_time = session_start[a_session] + (rng.random(anonymous) * 1800e6).astype(np.int64)
    a_kind = rng.choice(3, anonymous, p=[0.9, 0.0, 0.1])
    event_customer = np.concatenate([line_customer[pre], b_customer, np.full(anonymous, -1)])
    event_session = np.concatenate([np.full(customer_events, -1), a_session])
    event_kind = np.concatenate([pre_kind, b_kind, a_kind])
    event_product = np.concatenate([line_product[pre], b_product, a_product])
    event_time = np.concatenate([pre_time, b_time, a_time])
    # Not before the product exists (moved into its life), nor after the history ends.
    created = product_created[event_product]
    early = event_time < created
    event_time[early] = created[early] + (
        rng.random(int(early.sum())) * (end_us - created[early])
    ).astype(np.int64)
    event_time = np.minimum(event_time, end_us - 1)
    order_ = np.argsort(event_time, kind="stable")
    return ShopPlan(
        as_of=end,
        category_parent=category_parent,
        category_name=category_name,
        product_category=leaves[product_shelf],
        product_name=names,
        product_brand=brand_names,
        product_tags=tags,
        product_attributes=attributes,
        product_price=price,
        product_created=product_created,
        product_active=product_active,
        customer_created=customer_created,
        order_customer=order_customer,
        order_time=order_time,
        line_order=line_order.astype(np.int64),
        line_product=line_product.astype(np.int64),
        event_customer=event_customer[order_],
        event_session=event_session[order_],
        event_kind=event_kind[order_].astype(np.int64),
        event_product=event_product[order_],
        event_time=event_time[order_],
    )


# --------------------------------------------------------------------------------------------
# Loading in bulk (bench.insights' writers: executemany on SQLite, COPY on PostgreSQL)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedShop:
    """What was loaded: the ids of its rows, by plan index, and how long it took."""

    plan: ShopPlan
    category_ids: IntArray
    product_ids: IntArray
    variant_ids: IntArray
    customer_ids: IntArray
    order_ids: IntArray
    session_ids: list[str]
    seconds: float


CATEGORY_COLUMNS = ("id", "parent_id", "name", "slug", "description", "position")
PRODUCT_COLUMNS = (
    "id",
    "sku",
    "name",
    "description",
    "brand",
    "category_id",
    "tags",
    "attributes",
    "price_amount",
    "currency",
    "is_active",
    "search_title",
    "search_body",
    "search_pinyin",
    "created_at",
    "updated_at",
)
VARIANT_COLUMNS = (
    "id",
    "product_id",
    "sku",
    "options",
    "option_key",
    "price_amount",
    "position",
    "is_active",
    "created_at",
)
STOCK_COLUMNS = (
    "id",
    "warehouse_id",
    "product_id",
    "variant_id",
    "on_hand",
    "reserved",
    "safety_stock",
)
EVENT_COLUMNS = ("id", "customer_id", "session_id", "kind", "product_id", "data", "occurred_at")
TABLES = (
    "category",
    "product",
    "product_variant",
    "stock_level",
    "customer",
    "order",
    "order_line",
    "customer_event",
)


def _batches(total: int) -> Iterator[slice]:
    for begin in range(0, total, BATCH):
        yield slice(begin, min(total, begin + BATCH))


async def _warehouse(url: str) -> int:
    from server.db import create_engine, session_factory
    from server.models import Warehouse

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            found = Warehouse(code="BENCH-REC", name="推荐基准仓", region="华东", city="杭州")
            session.add(found)
            await session.commit()
            assert found.id is not None
            return found.id
    finally:
        await engine.dispose()


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


async def load_shop(url: str, plan: ShopPlan, *, quiet: bool = False) -> GeneratedShop:
    """Write ``plan`` into the migrated database at ``url`` in bulk: categories, products
    (one variant each, in stock), customers, orders with their lines, behaviour events.
    Search text is left empty (the rebuild and the recommendations do not read it)."""
    began = time.perf_counter()
    warehouse_id = await _warehouse(url)
    first = await _next_ids(url, TABLES)
    writer: insights.BulkWriter = await (
        insights.SqliteWriter.open(url)
        if url.startswith("sqlite")
        else insights.PostgresWriter.open(url)
    )
    sizes = plan.sizes
    progress = None
    if not quiet:
        from server.progress import Progress

        steps = sum(-(-sizes[k] // BATCH) for k in ("products", "customers", "orders", "events"))
        steps += sum(-(-n // BATCH) for n in (sizes["order_lines"],)) + 1
        progress = Progress(
            f"loading {sizes['products']:,} products, {sizes['customers']:,} customers, "
            f"{sizes['orders']:,} orders, {sizes['events']:,} events",
            steps,
        )

    def advance(what: str) -> None:
        if progress is not None:
            progress.advance(what)

    category_ids = first["category"] + np.arange(sizes["categories"], dtype=np.int64)
    product_ids = first["product"] + np.arange(sizes["products"], dtype=np.int64)
    variant_ids = first["product_variant"] + np.arange(sizes["products"], dtype=np.int64)
    customer_ids = first["customer"] + np.arange(sizes["customers"], dtype=np.int64)
    order_ids = first["order"] + np.arange(sizes["orders"], dtype=np.int64)
    session_ids = [f"bench-{k:07d}" for k in range(sizes["sessions"])]
    try:
        rows: list[tuple[Any, ...]] = [
            (
                int(category_ids[i]),
                None if plan.category_parent[i] < 0 else int(category_ids[plan.category_parent[i]]),
                name,
                f"bench-rec-{int(category_ids[i])}",
                "",
                i,
            )
            for i, name in enumerate(plan.category_name)
        ]
        await writer.write("category", CATEGORY_COLUMNS, rows)
        advance("categories")
        for part in _batches(sizes["products"]):
            created = writer.stamps(plan.product_created[part])
            rows, variants, stock = [], [], []
            for k, i in enumerate(range(part.start, part.stop)):
                pid, vid, sku = int(product_ids[i]), int(variant_ids[i]), f"REC-{i:06d}"
                price = int(plan.product_price[i])
                active = bool(plan.product_active[i])
                rows.append(
                    (pid, sku, plan.product_name[i], "", plan.product_brand[i])
                    + (int(category_ids[plan.product_category[i]]),)
                    + (json.dumps(plan.product_tags[i], ensure_ascii=False),)
                    + (json.dumps(plan.product_attributes[i], ensure_ascii=False),)
                    + (price, "CNY", active, "", "", "", created[k], created[k])
                )
                variants.append((vid, pid, sku, "{}", "", price, 0, True, created[k]))
                stock.append((first["stock_level"] + i, warehouse_id, pid, vid, 1_000, 0, 0))
            await writer.write("product", PRODUCT_COLUMNS, rows)
            await writer.write("product_variant", VARIANT_COLUMNS, variants)
            await writer.write("stock_level", STOCK_COLUMNS, stock)
            advance(f"products {part.stop:,}")
        for part in _batches(sizes["customers"]):
            created = writer.stamps(plan.customer_created[part])
            rows = [
                (cid, f"rec-{cid}@example.cn", "顾客", str(cid), "STANDARD", "[]", "[]")
                + (True, at)
                for cid, at in zip(customer_ids[part].tolist(), created, strict=True)
            ]
            await writer.write("customer", insights.CUSTOMER_COLUMNS, rows)
            advance(f"customers {part.stop:,}")
        # Order totals: the sum of their lines (one unit each).
        totals = np.bincount(
            plan.line_order,
            weights=plan.product_price[plan.line_product],
            minlength=sizes["orders"],
        ).astype(np.int64)
        now = _micros(plan.as_of)
        for part in _batches(sizes["orders"]):
            times = plan.order_time[part]
            placed, paid = writer.stamps(times), writer.stamps(times + 60_000_000)
            owners = customer_ids[plan.order_customer[part]].tolist()
            rows = []
            for k, oid in enumerate(order_ids[part].tolist()):
                total = int(totals[part.start + k])
                status = insights.order_status(now - int(times[k]))
                rows.append(
                    (oid, f"SG-REC-{oid:08d}", owners[k], None, status, "CNY", total)
                    + (0, 0, 0, total, "[]", "{}", "[]", placed[k], paid[k], paid[k])
                )
            await writer.write("order", insights.ORDER_COLUMNS, rows)
            advance(f"orders {part.stop:,}")
        for part in _batches(sizes["order_lines"]):
            rows = []
            for i in range(part.start, part.stop):
                p = int(plan.line_product[i])
                price = int(plan.product_price[p])
                rows.append(
                    (first["order_line"] + i, int(order_ids[plan.line_order[i]]))
                    + (int(product_ids[p]), int(variant_ids[p]), f"REC-{p:06d}")
                    + (plan.product_name[p], "{}", 1, price, price, price, "[]")
                )
            await writer.write("order_line", insights.LINE_COLUMNS, rows)
            advance(f"order lines {part.stop:,}")
        for part in _batches(sizes["events"]):
            occurred = writer.stamps(plan.event_time[part])
            owners = plan.event_customer[part].tolist()
            sessions = plan.event_session[part].tolist()
            kinds = plan.event_kind[part].tolist()
            products = plan.event_product[part].tolist()
            rows = [
                (
                    first["customer_event"] + part.start + k,
                    None if owners[k] < 0 else int(customer_ids[owners[k]]),
                    None if sessions[k] < 0 else session_ids[sessions[k]],
                    EVENT_KINDS[kinds[k]],
                    int(product_ids[products[k]]),
                    "{}",
                    occurred[k],
                )
                for k in range(part.stop - part.start)
            ]
            await writer.write("customer_event", EVENT_COLUMNS, rows)
            advance(f"events {part.stop:,}")
    finally:
        if progress is not None:
            progress.close()
        await writer.close(TABLES)
    return GeneratedShop(
        plan=plan,
        category_ids=category_ids,
        product_ids=product_ids,
        variant_ids=variant_ids,
        customer_ids=customer_ids,
        order_ids=order_ids,
        session_ids=session_ids,
        seconds=time.perf_counter() - began,
    )


async def generate_shop(
    url: str,
    *,
    products: int = PRODUCTS,
    customers: int = CUSTOMERS,
    orders: int = ORDERS,
    events: int = EVENTS,
    seed: int = SEED,
    as_of: datetime | None = None,
    quiet: bool = False,
) -> GeneratedShop:
    """Generate the shop (:func:`plan_shop`) and write it into the migrated database at
    ``url`` (:func:`load_shop`)."""
    plan = plan_shop(products, customers, orders, events, seed=seed, as_of=as_of)
    return await load_shop(url, plan, quiet=quiet)


# --------------------------------------------------------------------------------------------
# Measuring a rebuild, in a process of its own
# --------------------------------------------------------------------------------------------


async def rebuild_once(url: str) -> dict[str, Any]:
    """One rebuild of the database at ``url`` (progress on stderr): its stats, the CPU it
    used and its build's id."""
    from plugins.recommendation.service.rebuild import STEPS, rebuild
    from plugins.recommendation.service.settings import RecommendationSettings
    from server.db import create_engine, session_factory
    from server.progress import Progress

    engine = create_engine(url)
    try:
        began_cpu = time.process_time()
        with Progress("rebuild", STEPS) as progress:

            def say(what: str) -> None:
                # Notes of how far a large table's reading got end with "…": not steps.
                (progress.note if what.endswith("…") else progress.advance)(what)

            report = await rebuild(session_factory(engine), RecommendationSettings(), say)
        stats = dict(report.stats)
        stats["cpu_seconds"] = time.process_time() - began_cpu
        stats["build_id"] = report.build_id
        return stats
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Measured:
    database: str
    version: str
    sizes: dict[str, int]
    load_seconds: float
    stats: dict[str, Any]
    database_cpu: float | None


def measure(database: storefront.Database, generated: GeneratedShop) -> Measured:
    """One rebuild in a child process; the database server's CPU meanwhile."""
    before = insights.server_cpu_seconds(database.pid) if database.pid else None
    done = subprocess.run(
        [sys.executable, "-m", "bench.recommendation", "--rebuild", database.url],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    after = insights.server_cpu_seconds(database.pid) if database.pid else None
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(
        database.name,
        database.version,
        generated.plan.sizes,
        generated.seconds,
        stats,
        None if before is None or after is None else after - before,
    )


PHASE_COLUMNS = (
    ("load", "read"),
    ("cf", "CF"),
    ("content", "content"),
    ("rules", "rules"),
    ("popularity", "popularity"),
    ("cycles", "cycles"),
    ("write", "write"),
    ("total", "total"),
)


def report(results: Sequence[Measured]) -> str:
    sizes = results[0].sizes
    lines = [
        f"{sizes['products']:,} products in {sizes['categories']:,} categories, "
        f"{sizes['customers']:,} customers, {sizes['orders']:,} orders "
        f"({sizes['order_lines']:,} lines), {sizes['events']:,} behaviour events "
        f"({sizes['sessions']:,} anonymous sessions); one rebuild with the default settings "
        f"(30 neighbours); {platform.machine()}, {os.cpu_count()} cores.",
        "",
        "| database | "
        + " | ".join(f"{label} (s)" for _, label in PHASE_COLUMNS)
        + " | rebuild CPU (s) | database CPU (s) | peak memory (MB) |",
        "| --- | " + " | ".join("---:" for _ in PHASE_COLUMNS) + " | ---: | ---: | ---: |",
    ]
    for m in results:
        seconds = m.stats["seconds"]
        db_cpu = "–" if m.database_cpu is None else f"{m.database_cpu:.1f}"
        lines.append(
            f"| {m.version or m.database} | "
            + " | ".join(f"{seconds.get(key, 0.0):.1f}" for key, _ in PHASE_COLUMNS)
            + f" | {m.stats['cpu_seconds']:.1f} | {db_cpu} | {m.stats['peak_memory_mb']:,.0f} |"
        )
    lines.append("")
    for m in results:
        rows = ", ".join(f"{n:,} {what.replace('_', ' ')}" for what, n in m.stats["rows"].items())
        lines.append(f"- {m.database}: wrote {rows}; the shop loaded in {m.load_seconds:.0f} s.")
    return "\n".join(lines)


def write_docs(text: str, path: Path = DOCS) -> None:
    doc = path.read_text()
    pattern = re.compile(re.escape(START_MARK) + r".*?" + re.escape(END_MARK), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path}: the markers {START_MARK} … {END_MARK} are missing")
    path.write_text(pattern.sub(lambda _: f"{START_MARK}\n{text}\n{END_MARK}", doc))


def filler(sizes: dict[str, int], loaded: list[GeneratedShop]) -> Callable[[str], None]:
    def fill(url: str) -> None:
        from server import migrate
        from server.config import Settings
        from server.migrate import run_async
        from server.plugins import load_plugins

        migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
        loaded.append(run_async(lambda: generate_shop(url, **sizes)))

    return fill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recommendation", description=__doc__)
    parser.add_argument("--rebuild", help=argparse.SUPPRESS)
    parser.add_argument("--products", type=int, default=PRODUCTS)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--orders", type=int, default=ORDERS)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--write", action="store_true", help="put the table into the docs")
    args = parser.parse_args(argv)
    if args.rebuild:
        print(json.dumps(asyncio.run(rebuild_once(args.rebuild))))
        return 0
    wanted = storefront.comma_list(args.databases, list(storefront.DATABASES), "databases")
    sizes = {
        "products": args.products,
        "customers": args.customers,
        "orders": args.orders,
        "events": args.events,
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            loaded: list[GeneratedShop] = []
            fill = filler(sizes, loaded)
            context = (
                storefront.sqlite_database(Path(tmp), fill, name="recommendation.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with context as database:
                storefront.log(f"{name}: loaded in {loaded[0].seconds:.0f} s; rebuilding")
                results.append(measure(database, loaded[0]))
    text = report(results)
    print(text)
    if args.write:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
