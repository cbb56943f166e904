"""What a rebuild learns from, as arrays: the catalogue, the orders and the behaviour.

``load_training_data`` reads it from a shop's database (everything before ``until``), so the
job and the offline evaluation (on the shop, or on an imported order log in a scratch
database) fit the same components from the same shape of data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Float, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.service.settings import RecommendationSettings
from server.models import (
    Category,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    utcnow,
)
from server.services.insight_runs import utc

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProductRow:
    id: int
    name: str
    description: str
    category_id: int | None
    brand: str | None
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    created_at: datetime
    is_active: bool


@dataclass
class Purchases:
    """One row per order line: who (customer id), which order (order id), what, when (epoch
    seconds, UTC). Rows are in time order."""

    customer: IntArray
    order: IntArray
    product: IntArray
    at: FloatArray


@dataclass
class Behaviour:
    """One row per product event (VIEW, FAVORITE, ADD_TO_CART): the visitor (a customer id,
    or a negative code per anonymous session), the product, its weight (the settings' weight
    of its kind) and when (epoch seconds, UTC)."""

    visitor: IntArray
    product: IntArray
    weight: FloatArray
    at: FloatArray


@dataclass
class TrainingData:
    products: list[ProductRow]
    parents: dict[int, int | None]  # category id -> parent id
    category_names: dict[int, str]
    purchases: Purchases
    behaviour: Behaviour
    now: datetime
    stats: dict[str, int] = field(default_factory=dict)


# --- loading -------------------------------------------------------------------------------

# Rows read per round trip: large tables (order lines, behaviour events) are streamed and
# turned into arrays a partition at a time, so no Python object per row outlives its partition.
PARTITION = 50_000
# Reading a large table, say how far it got every this many partitions.
NOTE_EVERY = 10
# The behaviour a rebuild learns from (SEARCH has no product; PURCHASE is read from orders).
BEHAVIOUR_KINDS = (
    CustomerEventKind.VIEW,
    CustomerEventKind.FAVORITE,
    CustomerEventKind.ADD_TO_CART,
)
# The steps ``load_training_data`` reports to ``progress``.
LOAD_STEPS = 4

Note = Callable[[str], None]


def kind_weights(settings: RecommendationSettings) -> dict[str, float]:
    """What one behaviour of each kind counts for (the settings' weights)."""
    return {
        CustomerEventKind.VIEW.value: settings.view_weight,
        CustomerEventKind.FAVORITE.value: settings.favorite_weight,
        CustomerEventKind.ADD_TO_CART.value: settings.cart_weight,
    }


def _epoch(column: Any, dialect: str) -> ColumnElement[float]:
    """A timestamp column as seconds since the epoch (UTC), computed by the database: cheaper
    than a datetime object per row. SQLite stores naive UTC text; julianday reads it."""
    if dialect == "sqlite":
        return cast((func.julianday(column) - 2440587.5) * 86400.0, Float)
    return cast(extract("epoch", column), Float)


async def _stream(session: AsyncSession, stmt: Any) -> AsyncIterator[Sequence[Any]]:
    """The rows of ``stmt``, :data:`PARTITION` at a time (a server-side cursor on PostgreSQL)."""
    result = await (await session.connection()).stream(stmt)
    async for rows in result.partitions(PARTITION):
        yield rows


async def load_products(session: AsyncSession, until: datetime | None = None) -> list[ProductRow]:
    """Every product (archived ones included, flagged), in id order; ``until``: only those
    created before it."""
    stmt = select(
        col(Product.id),
        col(Product.name),
        col(Product.description),
        col(Product.category_id),
        col(Product.brand),
        col(Product.tags),
        col(Product.attributes),
        col(Product.created_at),
        col(Product.is_active),
    ).order_by(col(Product.id))
    if until is not None:
        stmt = stmt.where(col(Product.created_at) < until)
    products: list[ProductRow] = []
    async for rows in _stream(session, stmt):
        products.extend(
            ProductRow(
                id=int(pid),
                name=name or "",
                description=description or "",
                category_id=category_id,
                brand=brand or None,
                tags=tuple(str(t) for t in (tags or ())),
                attributes=dict(attributes or {}),
                created_at=utc(created_at),
                is_active=bool(active),
            )
            for pid, name, description, category_id, brand, tags, attributes, created_at, active in rows
        )
    return products


async def load_categories(session: AsyncSession) -> tuple[dict[int, int | None], dict[int, str]]:
    """The category tree: each category's parent, and its name."""
    rows = (
        await session.execute(select(col(Category.id), col(Category.parent_id), col(Category.name)))
    ).all()
    parents: dict[int, int | None] = {}
    names: dict[int, str] = {}
    for cid, parent, name in rows:
        assert cid is not None  # a primary key
        parents[cid] = parent
        names[cid] = name
    return parents, names


async def load_purchases(
    session: AsyncSession, until: datetime | None = None, progress: Note | None = None
) -> Purchases:
    """One row per order line of a customer's placed order that was not cancelled (before
    ``until``), in time order."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = (
        select(
            col(Order.customer_id),
            col(Order.id),
            col(OrderLine.product_id),
            _epoch(col(Order.placed_at), dialect),
        )
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(col(Order.customer_id).is_not(None), col(Order.status) != OrderStatus.CANCELLED)
        .order_by(col(OrderLine.id))
    )
    if until is not None:
        stmt = stmt.where(col(Order.placed_at) < until)
    parts: list[tuple[IntArray, IntArray, IntArray, FloatArray]] = []
    read = 0
    async for rows in _stream(session, stmt):
        customers, orders, products, at = zip(*rows, strict=True)
        parts.append(
            (
                np.array(customers, dtype=np.int64),
                np.array(orders, dtype=np.int64),
                np.array(products, dtype=np.int64),
                np.array(at, dtype=np.float64),
            )
        )
        read += len(rows)
        if progress is not None and len(parts) % NOTE_EVERY == 0:
            progress(f"{read:,} order lines read…")
    customer, order, product, when = (
        (np.concatenate([p[i] for p in parts]) for i in range(4))
        if parts
        else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    )
    by_time = np.lexsort((order, when))
    return Purchases(
        customer=np.asarray(customer[by_time], dtype=np.int64),
        order=np.asarray(order[by_time], dtype=np.int64),
        product=np.asarray(product[by_time], dtype=np.int64),
        at=np.asarray(when[by_time], dtype=np.float64),
    )


async def load_behaviour(
    session: AsyncSession,
    settings: RecommendationSettings,
    until: datetime | None = None,
    progress: Note | None = None,
) -> Behaviour:
    """Every VIEW, FAVORITE and ADD_TO_CART of a product (before ``until``), in time order:
    a customer's under their id, an anonymous visitor's under a negative code of their
    session (-1 for the first session met, -2 for the next…)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    weights = kind_weights(settings)
    stmt = (
        select(
            col(CustomerEvent.customer_id),
            col(CustomerEvent.session_id),
            col(CustomerEvent.kind),
            col(CustomerEvent.product_id),
            _epoch(col(CustomerEvent.occurred_at), dialect),
        )
        .where(
            col(CustomerEvent.kind).in_(BEHAVIOUR_KINDS),
            col(CustomerEvent.product_id).is_not(None),
            or_(
                col(CustomerEvent.customer_id).is_not(None),
                col(CustomerEvent.session_id).is_not(None),
            ),
        )
        .order_by(col(CustomerEvent.id))
    )
    if until is not None:
        stmt = stmt.where(col(CustomerEvent.occurred_at) < until)
    sessions: dict[str, int] = {}
    parts: list[tuple[IntArray, IntArray, FloatArray, FloatArray]] = []
    read = 0
    async for rows in _stream(session, stmt):
        visitors: list[int] = []
        for customer_id, session_id, _kind, _pid, _at in rows:
            if customer_id is not None:
                visitors.append(customer_id)
            else:
                code = sessions.get(session_id)
                if code is None:
                    code = sessions[session_id] = -(len(sessions) + 1)
                visitors.append(code)
        _c, _s, kinds, products, at = zip(*rows, strict=True)
        parts.append(
            (
                np.array(visitors, dtype=np.int64),
                np.array(products, dtype=np.int64),
                np.array([weights[str(k)] for k in kinds], dtype=np.float64),
                np.array(at, dtype=np.float64),
            )
        )
        read += len(rows)
        if progress is not None and len(parts) % NOTE_EVERY == 0:
            progress(f"{read:,} behaviour events read…")
    if parts:
        visitor, product, weight, when = (np.concatenate([p[i] for p in parts]) for i in range(4))
    else:
        visitor, product = np.zeros(0, np.int64), np.zeros(0, np.int64)
        weight, when = np.zeros(0), np.zeros(0)
    by_time = np.argsort(when, kind="stable")
    return Behaviour(
        visitor=np.asarray(visitor[by_time], dtype=np.int64),
        product=np.asarray(product[by_time], dtype=np.int64),
        weight=np.asarray(weight[by_time], dtype=np.float64),
        at=np.asarray(when[by_time], dtype=np.float64),
    )


async def load_training_data(
    session: AsyncSession,
    settings: RecommendationSettings,
    *,
    until: datetime | None = None,
    progress: Note | None = None,
) -> TrainingData:
    """Everything a rebuild learns from, read from the shop's tables: the products, the
    category tree, the order lines of placed orders that were not cancelled, and the
    behaviour events with a product — everything strictly before ``until`` when given (the
    data's ``now`` is then ``until``). ``progress`` hears of each of :data:`LOAD_STEPS`
    steps, and of how far the reading of a large table got meanwhile: those notes end with
    "…" (not a step)."""
    now = utc(until) if until is not None else utcnow()
    products = await load_products(session, until)
    if progress is not None:
        progress(f"{len(products):,} products read")
    parents, names = await load_categories(session)
    if progress is not None:
        progress(f"{len(parents):,} categories read")
    purchases = await load_purchases(session, until, progress)
    if progress is not None:
        progress(f"{purchases.product.shape[0]:,} order lines read")
    behaviour = await load_behaviour(session, settings, until, progress)
    if progress is not None:
        progress(f"{behaviour.product.shape[0]:,} behaviour events read")
    stats = {
        "products": len(products),
        "categories": len(parents),
        "order_lines": int(purchases.product.shape[0]),
        "orders": int(np.unique(purchases.order).shape[0]),
        "buyers": int(np.unique(purchases.customer).shape[0]),
        "events": int(behaviour.product.shape[0]),
        "visitors": int(np.unique(behaviour.visitor).shape[0]),
    }
    return TrainingData(
        products=products,
        parents=parents,
        category_names=names,
        purchases=purchases,
        behaviour=behaviour,
        now=now,
        stats=stats,
    )
