"""The current build's lists as a product or customer page shows them: similar products,
products bought together, and what a customer is due to buy again. Each reads the lists of
many products (or customers) in one statement, for the GraphQL layer's DataLoaders; only
products on sale and in stock are listed (the business rules of every answer)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    NeighbourSource,
    RecommendationCycle,
    RecommendationNeighbour,
    RecommendationRule,
)
from plugins.recommendation.service.store import current_build_id, pk
from server.models import Order, OrderLine, OrderStatus, Product
from server.services.listing import in_stock_condition

DAY = 86400.0
NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Similar:
    product: Product  # the row, read with the list: a page shows it at no extra cost
    score: float
    source: NeighbourSource


@dataclass(frozen=True)
class Together:
    product: Product
    orders: int
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True)
class BuyAgain:
    product_id: int
    last_bought_at: datetime
    times_bought: int  # orders that held it
    interval_days: float | None  # the product's cycle, else the customer's own mean gap
    due_at: datetime | None


def _on_sale(product_id: Any) -> ColumnElement[bool]:
    """Joins the product ``product_id`` names, when it is on sale and in stock."""
    return and_(col(Product.id) == product_id, col(Product.is_active), in_stock_condition())


async def similar_products(
    session: AsyncSession, product_ids: Sequence[int], first: int
) -> dict[int, list[Similar]]:
    """Per product, its ``first`` nearest products by collaborative filtering and content
    together (a product near by both counts by its higher score), best first."""
    ids = sorted(set(product_ids))
    if not ids or first <= 0:
        return {}
    t = RecommendationNeighbour
    rows = await session.execute(
        select(col(t.product_id), col(t.score), col(t.source), Product)
        .join(Product, _on_sale(t.neighbour_id))
        .where(col(t.build_id) == current_build_id(), col(t.product_id).in_(ids))
    )
    best: dict[int, dict[int, Similar]] = defaultdict(dict)
    for pid, score, source, product in rows:
        seen = best[pid].get(pk(product.id))
        if seen is None or score > seen.score:
            best[pid][pk(product.id)] = Similar(product, float(score), NeighbourSource(source))
    return {
        pid: sorted(near.values(), key=lambda s: (-s.score, pk(s.product.id)))[:first]
        for pid, near in best.items()
    }


async def bought_together(
    session: AsyncSession, product_ids: Sequence[int], first: int
) -> dict[int, list[Together]]:
    """Per product, its ``first`` association rules (by lift, then confidence)."""
    ids = sorted(set(product_ids))
    if not ids or first <= 0:
        return {}
    t = RecommendationRule
    rows = await session.execute(
        select(
            col(t.antecedent_id),
            col(t.orders),
            col(t.support),
            col(t.confidence),
            col(t.lift),
            Product,
        )
        .join(Product, _on_sale(t.consequent_id))
        .where(col(t.build_id) == current_build_id(), col(t.antecedent_id).in_(ids))
        .order_by(col(t.antecedent_id), col(t.rank))
    )
    out: dict[int, list[Together]] = defaultdict(list)
    for a, orders, support, confidence, lift, product in rows:
        if len(out[a]) < first:
            out[a].append(
                Together(product, int(orders), float(support), float(confidence), float(lift))
            )
    return dict(out)


async def buy_again(
    session: AsyncSession, customer_ids: Sequence[int]
) -> dict[int, list[BuyAgain]]:
    """Per customer, what they buy again and when it is due, soonest (most overdue) first:
    the consumables they bought (per the build's cycles), and products without a cycle they
    bought in two orders or more; never durable goods."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    c = RecommendationCycle
    orders = func.count(func.distinct(col(Order.id)))
    rows = await session.execute(
        select(
            col(Order.customer_id),
            col(OrderLine.product_id),
            orders,
            func.max(col(Order.placed_at)),
            func.min(col(Order.placed_at)),
            col(c.interval_days),
            col(c.consumable),
        )
        .join(Order, col(Order.id) == OrderLine.order_id)
        .join(Product, _on_sale(OrderLine.product_id))
        .outerjoin(
            c,
            and_(col(c.product_id) == OrderLine.product_id, col(c.build_id) == current_build_id()),
        )
        .where(col(Order.customer_id).in_(ids), col(Order.status) != OrderStatus.CANCELLED)
        .group_by(
            col(Order.customer_id),
            col(OrderLine.product_id),
            col(c.interval_days),
            col(c.consumable),
        )
    )
    out: dict[int, list[BuyAgain]] = defaultdict(list)
    for customer, product, times, last, first_at, interval, consumable in rows:
        if (consumable is not None and not consumable) or (consumable is None and times < 2):
            continue
        last = _aware(last)
        if interval is None and times >= 2:
            interval = (last - _aware(first_at)).total_seconds() / DAY / (times - 1)
        due = last + timedelta(days=interval) if interval else None
        out[pk(customer)].append(
            BuyAgain(product, last, int(times), float(interval) if interval else None, due)
        )
    for items in out.values():
        items.sort(key=lambda b: (b.due_at or NEVER, -b.times_bought, b.product_id))
    return dict(out)


def _aware(at: datetime | str) -> datetime:
    """A stored moment as an aware UTC datetime, however the driver returned it."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
