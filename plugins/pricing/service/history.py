"""Price history: append-only rows of each product's public price, who changed it and why; the
prior price (the lowest price of the 30 days before a reduction) derived from it; and the job
that writes the scheduled prices' boundaries as they pass."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import (
    ACTOR_MAX,
    REASON_MAX,
    JobMark,
    PriceHistory,
    PriceSource,
    PricingRule,
)
from plugins.pricing.service import events, rules
from plugins.pricing.service.sql import insert_for
from server.db import mark_write
from server.models import Product, ProductVariant, utcnow
from server.plugin import Event, Job, JobContext, PriceItem

# The EU Omnibus rule: a reduction shows the lowest price of the 30 days before it.
PRIOR_WINDOW = timedelta(days=30)
HISTORY_JOB = "history"
# The first run of the history job looks this far back for boundaries (later runs start at
# the mark the previous one left).
FIRST_LOOK_BACK = timedelta(days=1)


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
) -> PriceHistory | None:
    """Append one change of ``product_id``'s public price; None when a row of that product,
    moment and source is there already (``ON CONFLICT DO NOTHING``: of two processes writing
    the same scheduled boundary, one row stays)."""
    values: dict[str, Any] = {
        "product_id": product_id,
        "amount": amount,
        "previous_amount": previous_amount,
        "currency": currency,
        "source": source,
        "effective_at": effective_at,
        "actor": actor[:ACTOR_MAX],
        "reason": reason[:REASON_MAX],
        "rule_id": rule_id,
        "recorded_at": utcnow(),
    }
    new_id = await session.scalar(
        insert_for(session)(PriceHistory)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["product_id", "effective_at", "source"])
        .returning(col(PriceHistory.id))
    )
    if new_id is None:
        return None
    return PriceHistory(id=int(new_id), **values)


async def latest(
    session: AsyncSession, product_ids: Sequence[int], at: datetime | None = None
) -> dict[int, PriceHistory]:
    """Each product's newest history row (effective at ``at`` or before, when given), in one
    statement. Newest: the latest ``effective_at``, then the highest id."""
    if not product_ids:
        return {}
    query = select(PriceHistory).where(col(PriceHistory.product_id).in_(product_ids))
    if at is not None:
        query = query.where(col(PriceHistory.effective_at) <= at)
    ranked = query.add_columns(
        func.row_number()
        .over(
            partition_by=col(PriceHistory.product_id),
            order_by=(col(PriceHistory.effective_at).desc(), col(PriceHistory.id).desc()),
        )
        .label("rank")
    ).subquery()
    rows = await session.scalars(
        select(PriceHistory)
        .join(ranked, col(PriceHistory.id) == ranked.c.id)
        .where(ranked.c.rank == 1)
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
    ``at``, append a history row for each that differs from its row in effect at ``at``, and
    announce the change. Returns the rows written (a row another process wrote first for the
    same product, moment and source is not written again)."""
    await mark_write(session)
    query = select(Product).where(col(Product.is_active))
    if product_ids is not None:
        if not product_ids:
            return []
        query = query.where(col(Product.id).in_(sorted(set(product_ids))))
    products = list(await session.scalars(query.order_by(col(Product.id))))
    if not products:
        return []
    items = {p.id: PriceItem(product=p, quantity=1, base=p.price_amount) for p in products if p.id}
    prices = await rules.public_prices(session, items, at, config)
    newest = await latest(session, list(items), at)
    written = []
    for product in products:
        assert product.id is not None
        before = newest.get(product.id)
        amount = prices[product.id]
        if before is not None and before.amount == amount:
            continue
        row = await record(
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
        if row is not None:
            written.append(row)
    if written:
        await events.prices_changed(session, [row.product_id for row in written], reason)
    return written


# --- the catalogue's changes -----------------------------------------------------------------


async def product_changed(session: AsyncSession, config: Any, event: Event) -> None:
    """A product created or updated (its price, or a variant's): a CATALOGUE row effective
    when the change was made (the event's time, or the product's last change when that is
    later), naming the staff member or API key who made it (the event's ``actor``), when the
    public price moved — and a product's first row at its creation."""
    change = event.payload.get("change")
    product_id = event.payload.get("product_id")
    if change not in ("created", "updated") or not isinstance(product_id, int):
        return
    await mark_write(session)
    product = await session.get(Product, product_id)
    if product is None:
        return
    # The event may be delivered after later changes of the product (at least once, retried):
    # the price read now took effect at the product's last change, and a row never goes in
    # before the newest one.
    moments = [event.created_at or utcnow()]
    moments += [m for m in (product.updated_at, product.created_at) if m is not None]
    newest = (await latest(session, [product_id])).get(product_id)
    if newest is not None:
        moments.append(newest.effective_at)
    at = max(moments)
    await refresh(
        session,
        config,
        product_ids=[product_id],
        source=PriceSource.CATALOGUE,
        at=at,
        actor=str(event.payload.get("actor") or ""),
        reason="catalogue price created" if change == "created" else "catalogue price changed",
    )


# --- scheduled boundaries ----------------------------------------------------------------------


async def claim_window(
    session: AsyncSession, name: str, now: datetime, first_look_back: timedelta
) -> tuple[datetime, JobMark]:
    """The job ``name``'s mark, locked for the transaction (created at ``now −
    first_look_back`` the first time): of two processes running the job at once, the second
    waits for the first to commit and then starts from the mark it left."""
    await mark_write(session)
    await session.execute(
        insert_for(session)(JobMark)
        .values(name=name, mark_at=now - first_look_back, mark_id=None, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    mark = await session.scalar(
        select(JobMark)
        .where(col(JobMark.name) == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert mark is not None
    return (mark.mark_at or now - first_look_back), mark


async def products_of_rules(session: AsyncSession, found: Sequence[PricingRule]) -> list[int]:
    """The products the rules cover: their product, their variant's product, the products of
    their category (one statement for variants and categories each)."""
    ids = {r.product_id for r in found if r.product_id is not None}
    variant_ids = {r.variant_id for r in found if r.variant_id is not None}
    category_ids = {r.category_id for r in found if r.category_id is not None}
    if variant_ids:
        ids.update(
            await session.scalars(
                select(col(ProductVariant.product_id)).where(
                    col(ProductVariant.id).in_(variant_ids)
                )
            )
        )
    if category_ids:
        ids.update(
            await session.scalars(
                select(col(Product.id)).where(col(Product.category_id).in_(category_ids))
            )
        )
    return sorted(ids)


def _boundaries_query(since: datetime, until: datetime) -> Select[Any]:
    inside = or_(
        (col(PricingRule.starts_at) > since) & (col(PricingRule.starts_at) <= until),
        (col(PricingRule.ends_at) > since) & (col(PricingRule.ends_at) <= until),
    )
    return select(PricingRule).where(inside).order_by(col(PricingRule.id))


async def write_boundaries(session: AsyncSession, config: Any, now: datetime) -> list[PriceHistory]:
    """Every start and end of a rule's window that passed since the job's mark, in time order:
    the covered products' public prices recomputed at the boundary, a SCHEDULE row where they
    moved; then the mark moves to ``now``. One transaction: a failure leaves the mark."""
    since, mark = await claim_window(session, HISTORY_JOB, now, FIRST_LOOK_BACK)
    found = list(await session.scalars(_boundaries_query(since, now)))
    moments: dict[datetime, list[PricingRule]] = defaultdict(list)
    for rule in found:
        for edge in (rule.starts_at, rule.ends_at):
            if edge is not None and since < edge <= now:
                moments[edge].append(rule)
    written: list[PriceHistory] = []
    for at in sorted(moments):
        edge_rules = moments[at]
        product_ids = await products_of_rules(session, edge_rules)
        names = ", ".join(sorted({r.name for r in edge_rules}))
        written += await refresh(
            session,
            config,
            product_ids=product_ids,
            source=PriceSource.SCHEDULE,
            at=at,
            actor="schedule",
            reason=f"scheduled price: {names}",
            rule_id=edge_rules[0].id if len(edge_rules) == 1 else None,
        )
    mark.mark_at = now
    mark.updated_at = now
    session.add(mark)
    await session.flush()
    return written


def jobs(config: Any) -> list[Job]:
    async def run(ctx: JobContext) -> None:
        async with ctx.sessions() as session:
            written = await write_boundaries(session, ctx.config, utcnow())
            await session.commit()
        ctx.progress(f"{len(written)} scheduled price changes")

    return [
        Job(
            name=HISTORY_JOB,
            interval_seconds=config.history_interval_minutes * 60,
            run=run,
            description="Writes the price history rows of scheduled prices that started or "
            "ended since the last run.",
        )
    ]


# --- the prior price ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorPrice:
    amount: int
    currency: str
    # When the reduction it is the prior price of took effect.
    reduced_at: datetime


def prior_from(rows: Sequence[PriceHistory], now: datetime) -> PriorPrice | None:
    """The prior price of one product's history (rows in time order): the lowest public price
    in effect during the 30 days before its current price's latest reduction. None when the
    current price is not lower than the price before it, or the history does not reach 30
    days back before that reduction, or that lowest price is not above today's."""
    rows = [r for r in rows if r.effective_at <= now]
    if len(rows) < 2:
        return None
    current = rows[-1]
    if current.amount >= rows[-2].amount:
        return None  # the current price is no reduction: nothing to strike through
    reduced_at = current.effective_at
    start = reduced_at - PRIOR_WINDOW
    before = [r for r in rows[:-1] if r.effective_at <= start]
    if not before:
        return None  # the history does not cover the whole window
    seen = [before[-1].amount] + [r.amount for r in rows[:-1] if start < r.effective_at]
    lowest = min(seen)
    if lowest <= current.amount:
        return None
    return PriorPrice(amount=lowest, currency=current.currency, reduced_at=reduced_at)


async def prior_prices(
    session: AsyncSession, product_ids: Sequence[int], now: datetime
) -> dict[int, PriorPrice]:
    """The prior price of each product that has one: one statement for all of them (their
    history up to ``now``; a product's history is its changes, a few rows a month)."""
    if not product_ids:
        return {}
    rows = await session.scalars(
        select(PriceHistory)
        .where(
            col(PriceHistory.product_id).in_(sorted(set(product_ids))),
            col(PriceHistory.effective_at) <= now,
        )
        .order_by(
            col(PriceHistory.product_id), col(PriceHistory.effective_at), col(PriceHistory.id)
        )
    )
    by_product: dict[int, list[PriceHistory]] = defaultdict(list)
    for row in rows:
        by_product[row.product_id].append(row)
    found = {pid: prior_from(history, now) for pid, history in by_product.items()}
    return {pid: prior for pid, prior in found.items() if prior is not None}


def history_query(product_id: int | None) -> Select[Any]:
    """A product's history rows, or every product's (None): the staff's ``priceHistory``, for
    a page newest first (an id no product has answers nothing)."""
    query = select(PriceHistory)
    if product_id is not None:
        query = query.where(col(PriceHistory.product_id) == product_id)
    return query
