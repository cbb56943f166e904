"""Price history: append-only rows of each product's public price, who changed it and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import PriceHistory, PriceSource
from plugins.pricing.service import events, rules
from server.models import Product
from server.plugin import Event, Job, PriceItem


async def record(
    session: AsyncSession,
    *,
    product_id: int,
    amount: int,
    previous_amount: int | None,
    currency: str,
    source: PriceSource,
    effective_at: datetime,
    actor: str = "",
    reason: str = "",
    rule_id: int | None = None,
) -> PriceHistory:
    """Append one change of ``product_id``'s public price."""
    row = PriceHistory(
        product_id=product_id,
        amount=amount,
        previous_amount=previous_amount,
        currency=currency,
        source=source,
        effective_at=effective_at,
        actor=actor[:120],
        reason=reason[:500],
        rule_id=rule_id,
    )
    session.add(row)
    await session.flush()
    return row


async def latest(session: AsyncSession, product_ids: Sequence[int]) -> dict[int, PriceHistory]:
    """Each product's newest history row (one statement)."""
    if not product_ids:
        return {}
    newest = (
        select(col(PriceHistory.product_id), func.max(col(PriceHistory.id)).label("id"))
        .where(col(PriceHistory.product_id).in_(product_ids))
        .group_by(col(PriceHistory.product_id))
        .subquery()
    )
    rows = await session.scalars(
        select(PriceHistory).join(newest, col(PriceHistory.id) == newest.c.id)
    )
    return {row.product_id: row for row in rows}


async def refresh(
    session: AsyncSession,
    config: Any,
    *,
    product_ids: Sequence[int] | None,
    source: PriceSource,
    at: datetime,
    actor: str = "",
    reason: str = "",
    rule_id: int | None = None,
) -> list[PriceHistory]:
    """Recompute the public prices of ``product_ids`` (None: every active product) as of
    ``at``, append a history row for each that differs from its newest row, and announce the
    change. Returns the rows written."""
    query = select(Product).where(col(Product.is_active))
    if product_ids is not None:
        query = query.where(col(Product.id).in_(product_ids))
    products = list(await session.scalars(query.order_by(col(Product.id))))
    if not products:
        return []
    items = {p.id: PriceItem(product=p, quantity=1, base=p.price_amount) for p in products if p.id}
    prices = await rules.public_prices(session, items, at, config)
    newest = await latest(session, list(items))
    written = []
    for product in products:
        assert product.id is not None
        before = newest.get(product.id)
        amount = prices[product.id]
        if before is not None and before.amount == amount:
            continue
        written.append(
            await record(
                session,
                product_id=product.id,
                amount=amount,
                previous_amount=before.amount if before is not None else None,
                currency=product.currency,
                source=source,
                effective_at=at,
                actor=actor,
                reason=reason,
                rule_id=rule_id,
            )
        )
    if written:
        await events.prices_changed(session, [row.product_id for row in written], reason)
    return written


def jobs(config: Any) -> list[Job]:
    return []


async def product_changed(session: AsyncSession, config: Any, event: Event) -> None:
    return None
