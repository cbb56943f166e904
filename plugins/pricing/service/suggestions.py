"""Dynamic pricing: suggestions for the products under an active dynamic rule, the operator's
approval or rejection, auto-apply within a rule's tighter bounds, the periodic job and KPIs
(docs/plugins/pricing.md, "Dynamic pricing")."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import (
    CompetitorPrice,
    DynamicMode,
    DynamicPrice,
    DynamicRule,
    PriceSource,
    PriceSuggestion,
    PricingLimit,
    SuggestionStatus,
)
from plugins.pricing.service import elasticity, history, optimiser
from server.models import Order, OrderLine, Product, StockLevel, utcnow
from server.plugin import (
    Conflict,
    DemoShop,
    Job,
    JobContext,
    Kpi,
    KpiBucket,
    KpiUnit,
    NotFound,
    ValidationFailed,
    demand_forecast,
)
from server.services.forecasts import day_start, shop_day
from server.services.rfm import PURCHASE_STATUSES

# Demand velocity (the last 7 days' sales against the forecast's baseline) is kept within this.
VELOCITY_BOUNDS = (0.5, 2.0)
VELOCITY_DAYS = 7
# A competitor's price counts while it is this recent.
COMPETITOR_FRESH_DAYS = 30
APPLIED = (SuggestionStatus.APPROVED, SuggestionStatus.AUTO_APPLIED)


class SuggestionDecided(Conflict):
    """The suggestion is no longer pending: approved, rejected, applied or superseded."""

    code = "ALREADY_DECIDED"


# --- the inputs of each product -----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    product: Product
    rule: DynamicRule
    base: int  # today's price: the applied dynamic price, else the catalogue's


async def targets(session: AsyncSession, product_ids: Sequence[int] | None) -> list[Target]:
    """Active products under an active dynamic rule (their own, else their category's)."""
    rules = list(await session.scalars(select(DynamicRule).where(col(DynamicRule.active))))
    by_product = {r.product_id: r for r in rules if r.product_id is not None}
    by_category = {r.category_id: r for r in rules if r.category_id is not None}
    if not rules:
        return []
    query = select(Product).where(col(Product.is_active))
    wanted = col(Product.id).in_(list(by_product)) | col(Product.category_id).in_(list(by_category))
    query = query.where(wanted)
    if product_ids is not None:
        query = query.where(col(Product.id).in_(list(product_ids)))
    products = list(await session.scalars(query.order_by(col(Product.id))))
    ids = [p.id for p in products if p.id is not None]
    dynamic = {
        row.product_id: row.amount
        for row in await session.scalars(
            select(DynamicPrice).where(col(DynamicPrice.product_id).in_(ids))
        )
    }
    out = []
    for p in products:
        assert p.id is not None
        rule = by_product.get(p.id) or (
            by_category.get(p.category_id) if p.category_id is not None else None
        )
        if rule is not None:
            out.append(Target(p, rule, dynamic.get(p.id, p.price_amount)))
    return out


async def guardrails(
    session: AsyncSession, products: Sequence[Product]
) -> dict[int, dict[str, int | None]]:
    """Each product's limit: its own row's fields, else its category's (variant rows apply to
    the final price of that variant through the core's clamp, not to a product's suggestion)."""
    ids = [p.id for p in products]
    cats = [p.category_id for p in products if p.category_id is not None]
    rows = list(
        await session.scalars(
            select(PricingLimit).where(
                col(PricingLimit.product_id).in_(ids) | col(PricingLimit.category_id).in_(cats)
            )
        )
    )
    own = {r.product_id: r for r in rows if r.product_id is not None}
    of_category = {r.category_id: r for r in rows if r.category_id is not None}
    out: dict[int, dict[str, int | None]] = {}
    for p in products:
        assert p.id is not None
        merged: dict[str, int | None] = {}
        for name in ("floor_amount", "ceiling_amount", "min_margin_bp", "map_amount"):
            value = None
            category = of_category.get(p.category_id) if p.category_id is not None else None
            for row in (own.get(p.id), category):
                if row is not None and getattr(row, name) is not None:
                    value = getattr(row, name)
                    break
            merged[name] = value
        out[p.id] = merged
    return out


async def competitor_mins(
    session: AsyncSession, product_ids: Sequence[int], at: datetime
) -> dict[int, int]:
    """The cheapest current competitor price of each product: each competitor's newest
    sighting per variant in the last :data:`COMPETITOR_FRESH_DAYS` days, the lowest of them."""
    since = at - timedelta(days=COMPETITOR_FRESH_DAYS)
    newest = (
        select(
            col(CompetitorPrice.competitor_id),
            col(CompetitorPrice.variant_id),
            func.max(col(CompetitorPrice.observed_at)).label("seen"),
        )
        .where(
            col(CompetitorPrice.product_id).in_(product_ids),
            col(CompetitorPrice.observed_at) >= since,
            col(CompetitorPrice.observed_at) <= at,
        )
        .group_by(col(CompetitorPrice.competitor_id), col(CompetitorPrice.variant_id))
        .subquery()
    )
    rows = await session.execute(
        select(col(CompetitorPrice.product_id), func.min(col(CompetitorPrice.amount)))
        .join(
            newest,
            (col(CompetitorPrice.competitor_id) == newest.c.competitor_id)
            & (col(CompetitorPrice.variant_id) == newest.c.variant_id)
            & (col(CompetitorPrice.observed_at) == newest.c.seen),
        )
        .group_by(col(CompetitorPrice.product_id))
    )
    return {pid: int(amount) for pid, amount in rows.all()}


async def stock(session: AsyncSession, product_ids: Sequence[int]) -> dict[int, int]:
    """Units available (on hand less reserved) over every warehouse; no row: unknown."""
    rows = await session.execute(
        select(
            col(StockLevel.product_id),
            func.sum(col(StockLevel.on_hand) - col(StockLevel.reserved)),
        )
        .where(col(StockLevel.product_id).in_(product_ids))
        .group_by(col(StockLevel.product_id))
    )
    return {pid: max(0, int(units or 0)) for pid, units in rows.all()}


async def recent_units(
    session: AsyncSession, product_ids: Sequence[int], at: datetime
) -> dict[int, int]:
    """Units purchased in the :data:`VELOCITY_DAYS` whole shop days before ``at``'s day."""
    until = day_start(shop_day(at))
    since = until - timedelta(days=VELOCITY_DAYS)
    rows = await session.execute(
        select(col(OrderLine.product_id), func.sum(col(OrderLine.quantity)))
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(
            col(OrderLine.product_id).in_(product_ids),
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) >= since,
            col(Order.placed_at) < until,
        )
        .group_by(col(OrderLine.product_id))
    )
    return {pid: int(units or 0) for pid, units in rows.all()}


def _policy(config: Any) -> optimiser.Policy:
    return optimiser.Policy(
        endings=tuple(config.price_point_endings),
        hysteresis_bp=config.hysteresis_bp,
        min_profit_gain_bp=config.min_profit_gain_bp,
        horizon_days=config.horizon_days,
        holding_bp_per_day=config.holding_cost_bp_per_day,
    )


def _factor(name: str, value: float | None, detail: str) -> dict[str, Any]:
    return {"name": name, "value": value, "detail": detail}


# --- suggesting ---------------------------------------------------------------------------------


async def suggest(
    session: AsyncSession,
    config: Any,
    product_ids: Sequence[int] | None = None,
    *,
    at: datetime | None = None,
    estimates: Mapping[int, elasticity.Estimate] | None = None,
) -> list[PriceSuggestion]:
    """Suggest a price for each product under an active dynamic rule (``product_ids``: only
    these). A new suggestion supersedes the product's pending one; a product whose best price
    is today's (or within the hysteresis) gets none, and its pending one is superseded. AUTO
    rules apply a suggestion at once when it moves the price by at most their
    ``auto_max_change_bp``. ``estimates`` replaces the estimated elasticities (the demo's)."""
    at = at or utcnow()
    chosen = await targets(session, product_ids)
    if not chosen:
        return []
    ids = [t.product.id for t in chosen if t.product.id is not None]
    fitted = (
        dict(estimates)
        if estimates is not None
        else await elasticity.estimates(session, config, ids, as_of=at)
    )
    limits = await guardrails(session, [t.product for t in chosen])
    competitors = await competitor_mins(session, ids, at)
    on_hand = await stock(session, ids)
    recent = await recent_units(session, ids, at)
    policy = _policy(config)
    written: list[PriceSuggestion] = []
    for target in chosen:
        pid = target.product.id
        assert pid is not None
        estimate = fitted.get(pid)
        if estimate is None or estimate.value is None or target.product.cost_amount is None:
            await _supersede(session, pid, "no elasticity or no cost: nothing to suggest")
            continue
        forecast = await demand_forecast(
            session, product_id=pid, days=config.horizon_days, as_of=at
        )
        baseline = forecast.total / max(1, len(forecast.mean))
        if baseline <= 0:
            await _supersede(session, pid, "no demand forecast")
            continue
        velocity = (recent.get(pid, 0) / VELOCITY_DAYS) / baseline
        velocity = min(max(velocity, VELOCITY_BOUNDS[0]), VELOCITY_BOUNDS[1])
        units = baseline * velocity
        limit = limits[pid]
        market = optimiser.Market(
            price=target.base,
            cost=target.product.cost_amount,
            units=units,
            stock=float(on_hand[pid]) if pid in on_hand else None,
        )
        bounds = optimiser.Bounds(
            floor=limit["floor_amount"],
            ceiling=limit["ceiling_amount"],
            min_margin_bp=limit["min_margin_bp"] or config.min_margin_bp or None,
            map_amount=limit["map_amount"],
            max_change_bp=config.max_change_per_day_bp,
            competitor_min=competitors.get(pid),
            competitor_premium_bp=config.max_competitor_premium_bp,
        )
        choice = optimiser.optimise(market, estimate.value, bounds, policy)
        if not choice.suggest:
            await _supersede(session, pid, choice.reason)
            continue
        cover = None if market.stock is None else market.stock / units
        factors = [
            _factor(
                "stock_cover_days",
                cover,
                "unknown stock"
                if cover is None
                else f"{cover:.1f} days of stock at {units:.2f} units a day "
                f"(horizon {config.horizon_days} days)",
            ),
            _factor(
                "velocity",
                velocity,
                f"last {VELOCITY_DAYS} days: {recent.get(pid, 0)} units against a forecast "
                f"baseline of {baseline:.2f} a day (bounded {VELOCITY_BOUNDS[0]}–"
                f"{VELOCITY_BOUNDS[1]})",
            ),
            _factor(
                "competitor_min",
                competitors.get(pid),
                "no current competitor price"
                if pid not in competitors
                else f"cheapest competitor {competitors[pid]}",
            ),
            _factor(
                "elasticity",
                estimate.value,
                f"{estimate.level.value.lower()} estimate, 95% interval "
                f"{estimate.low:.2f} to {estimate.high:.2f}, {estimate.observations} days"
                if estimate.low is not None and estimate.high is not None
                else f"{estimate.level.value.lower()} estimate",
            ),
            _factor(
                "bound",
                None,
                choice.bound or "none: the optimum lies inside the guardrails",
            ),
        ]
        row = await _write(session, config, target, choice, estimate.value, factors, at)
        if row is not None:
            written.append(row)
    return written


async def _supersede(session: AsyncSession, product_id: int, note: str) -> None:
    await session.execute(
        update(PriceSuggestion)
        .where(col(PriceSuggestion.product_id) == product_id, col(PriceSuggestion.pending) == 1)
        .values(status=SuggestionStatus.SUPERSEDED, pending=None, note=note[:500])
    )


async def _write(
    session: AsyncSession,
    config: Any,
    target: Target,
    choice: optimiser.Choice,
    value: float,
    factors: list[dict[str, Any]],
    at: datetime,
) -> PriceSuggestion | None:
    pid = target.product.id
    assert pid is not None
    horizon_profit = round(choice.profit_new - choice.profit_old)
    row = PriceSuggestion(
        product_id=pid,
        current_amount=target.base,
        suggested_amount=choice.price,
        currency=target.product.currency,
        factors=factors,
        elasticity=value,
        expected_units_change=choice.units_new - choice.units_old,
        expected_profit_change=horizon_profit,
        created_at=at,
        note="; ".join(choice.notes),
    )
    try:
        # A savepoint: another process writing the product's pending slot at the same moment
        # makes ours fail alone; theirs stands.
        async with session.begin_nested():
            await _supersede(session, pid, "a newer suggestion replaced it")
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None
    change_bp = abs(choice.price - target.base) * 10000 / target.base
    if target.rule.mode is DynamicMode.AUTO and change_bp <= target.rule.auto_max_change_bp:
        assert row.id is not None
        await _decide(session, row.id, SuggestionStatus.AUTO_APPLIED, "auto", "", at)
        await _apply(session, config, row, "auto", at)
    return row


# --- deciding -----------------------------------------------------------------------------------


async def _decide(
    session: AsyncSession,
    suggestion_id: int,
    status: SuggestionStatus,
    actor: str,
    note: str,
    at: datetime,
) -> PriceSuggestion:
    """PENDING → ``status``, once: a conditional UPDATE, so of concurrent deciders one wins."""
    result = await session.execute(
        update(PriceSuggestion)
        .where(
            col(PriceSuggestion.id) == suggestion_id,
            col(PriceSuggestion.status) == SuggestionStatus.PENDING,
        )
        .values(status=status, pending=None, decided_at=at, decided_by=actor[:120], note=note)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(PriceSuggestion, suggestion_id, populate_existing=True)
    if row is None:
        raise NotFound("PriceSuggestion", suggestion_id, field="id")
    if getattr(result, "rowcount", 0) != 1:
        raise SuggestionDecided(
            f"the suggestion is {row.status.value}, not PENDING: it was decided already",
            field="id",
        )
    return row


async def _apply(
    session: AsyncSession, config: Any, row: PriceSuggestion, actor: str, at: datetime
) -> None:
    """Set the product's dynamic price (the pipeline's first step) and record the change."""
    values = {
        "product_id": row.product_id,
        "amount": row.suggested_amount,
        "suggestion_id": row.id,
        "applied_by": actor[:120],
        "applied_at": at,
    }
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = maker(DynamicPrice).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["product_id"],
        set_={k: v for k, v in values.items() if k != "product_id"},
    )
    await session.execute(stmt)
    await history.refresh(
        session,
        config,
        product_ids=[row.product_id],
        source=PriceSource.DYNAMIC,
        at=at,
        actor=actor,
        reason=f"dynamic pricing suggestion {row.id}: {row.current_amount} → "
        f"{row.suggested_amount}",
    )


async def approve(
    session: AsyncSession,
    config: Any,
    suggestion_id: int,
    actor: str,
    note: str = "",
    *,
    at: datetime | None = None,
) -> PriceSuggestion:
    """Approve a pending suggestion and apply it: once, whoever else approves at the same
    time (the others get ALREADY_DECIDED)."""
    at = at or utcnow()
    row = await _decide(session, suggestion_id, SuggestionStatus.APPROVED, actor, note[:500], at)
    await _apply(session, config, row, actor, at)
    return row


async def reject(
    session: AsyncSession,
    config: Any,
    suggestion_id: int,
    actor: str,
    note: str = "",
    *,
    at: datetime | None = None,
) -> PriceSuggestion:
    """Reject a pending suggestion (nothing changes price)."""
    return await _decide(
        session, suggestion_id, SuggestionStatus.REJECTED, actor, note[:500], at or utcnow()
    )


async def set_rule(
    session: AsyncSession,
    *,
    product_id: int | None,
    category_id: int | None,
    mode: DynamicMode,
    auto_max_change_bp: int,
    active: bool,
    actor: str,
) -> DynamicRule:
    """Switch dynamic pricing for a product or a category (one rule each: updated in place)."""
    if (product_id is None) == (category_id is None):
        raise ValidationFailed("give a product or a category, not both", field="productId")
    if not 0 <= auto_max_change_bp <= 10000:
        raise ValidationFailed("autoMaxChangeBp must be 0 to 10000", field="autoMaxChangeBp")
    if product_id is not None and await session.get(Product, product_id) is None:
        raise NotFound("Product", product_id, field="productId")
    if category_id is not None:
        from server.models import Category

        if await session.get(Category, category_id) is None:
            raise NotFound("Category", category_id, field="categoryId")
    query = select(DynamicRule).where(
        col(DynamicRule.product_id) == product_id
        if product_id is not None
        else col(DynamicRule.category_id) == category_id
    )
    rule = (await session.scalars(query)).first()
    if rule is None:
        rule = DynamicRule(product_id=product_id, category_id=category_id)
        session.add(rule)
    rule.mode = mode
    rule.auto_max_change_bp = auto_max_change_bp
    rule.active = active
    rule.updated_by = actor[:120]
    rule.updated_at = utcnow()
    await session.flush()
    return rule


# --- the job and the KPIs ---------------------------------------------------------------------


def jobs(config: Any) -> list[Job]:
    async def run(ctx: JobContext) -> None:
        ctx.progress("dynamic pricing: suggesting")
        async with ctx.sessions() as session:
            await suggest(session, ctx.config)
            await session.commit()

    return [
        Job(
            "suggest",
            config.suggest_interval_minutes * 60,
            run,
            description="Suggest prices for the products under dynamic pricing (applied at "
            "once under AUTO rules within their bounds).",
        )
    ]


async def _applied(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[tuple[Any, int]]:
    if not buckets:
        return []
    since = day_start(min(b.start for b in buckets))
    until = day_start(max(b.end for b in buckets))
    rows = await session.execute(
        select(col(PriceSuggestion.decided_at), col(PriceSuggestion.expected_profit_change)).where(
            col(PriceSuggestion.status).in_(APPLIED),
            col(PriceSuggestion.decided_at) >= since,
            col(PriceSuggestion.decided_at) < until,
        )
    )
    return [(shop_day(at), profit) for at, profit in rows.all() if at is not None]


async def _count(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    rows = await _applied(session, buckets)
    return [float(sum(1 for d, _ in rows if b.start <= d < b.end)) for b in buckets]


async def _profit(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    rows = await _applied(session, buckets)
    return [float(sum(p for d, p in rows if b.start <= d < b.end)) for b in buckets]


def kpis() -> list[Kpi]:
    return [
        Kpi(
            "pricing.suggestions_applied",
            "Price suggestions applied",
            KpiUnit.COUNT,
            _count,
            description="Dynamic-pricing suggestions approved or applied automatically.",
        ),
        Kpi(
            "pricing.suggestions_expected_profit",
            "Expected daily profit change of applied suggestions",
            KpiUnit.MONEY,
            _profit,
            description="The sum of the expected change in profit per day of the suggestions "
            "applied in the period (at the forecast rate).",
        ),
    ]


# --- the demo -------------------------------------------------------------------------------------


DEMO_PRODUCTS = 8
# The demo's orders are all at catalogue prices, so no elasticity can be estimated from them:
# the demo assumes this one (labelled as such in the factors) where the data says INSUFFICIENT.
DEMO_ELASTICITY = -2.2


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """Dynamic pricing on (SUGGEST) for a demo category, suggestions for up to
    :data:`DEMO_PRODUCTS` of its products, the first of them approved."""
    # The category of the first demo product with a cost (parent categories hold none).
    category = (
        await session.scalars(
            select(col(Product.category_id))
            .where(
                col(Product.id).in_(shop.product_ids),
                col(Product.cost_amount).is_not(None),
                col(Product.category_id).is_not(None),
            )
            .order_by(col(Product.id))
            .limit(1)
        )
    ).first()
    if category is None:
        return {}
    progress("pricing: dynamic pricing suggestions")
    await set_rule(
        session,
        product_id=None,
        category_id=category,
        mode=DynamicMode.SUGGEST,
        auto_max_change_bp=500,
        active=True,
        actor="demo",
    )
    ids = [
        pid
        for pid in await session.scalars(
            select(col(Product.id))
            .where(col(Product.category_id) == category, col(Product.cost_amount).is_not(None))
            .order_by(col(Product.id))
            .limit(DEMO_PRODUCTS)
        )
        if pid is not None
    ]
    found = await elasticity.estimates(session, config, ids, as_of=shop.as_of)
    assumed = {
        pid: e
        if e.ok
        else elasticity.Estimate(
            elasticity.EstimateStatus.OK,
            e.level,
            e.observations,
            e.price_levels,
            f"demo assumption ({e.reason})",
            DEMO_ELASTICITY,
            DEMO_ELASTICITY,
            DEMO_ELASTICITY,
            0.0,
            product_id=pid,
        )
        for pid, e in found.items()
    }
    rows = await suggest(session, config, ids, at=shop.as_of, estimates=assumed)
    approved = 0
    if rows and rows[0].id is not None:
        await approve(session, config, rows[0].id, "demo", "demo approval", at=shop.as_of)
        approved = 1
    return {"price_suggestions": len(rows), "price_suggestions_approved": approved}
