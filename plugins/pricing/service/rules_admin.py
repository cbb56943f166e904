"""Operators' changes to rules and limits: checked, written, then the public prices they touch
refreshed (a price history row per changed product, and the ``pricing_prices_changed`` event).

Every check runs before anything is written: bad input changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import NAME_MAX, PriceSource, PricingLimit, PricingRule, RuleKind
from plugins.pricing.service import events, history
from plugins.pricing.service.rules import money_text
from server.models import Audience, Category, Product, ProductVariant, utcnow
from server.plugin import Conflict, NotFound, ValidationFailed

TAG_MAX = 64
MAX_AMOUNT = 10**12
MAX_QUANTITY = 100_000


@dataclass(frozen=True)
class RuleSpec:
    """A rule's definition as an operator gives it (create, or replace on update)."""

    name: str
    kind: RuleKind = RuleKind.GROUP
    variant_id: int | None = None
    product_id: int | None = None
    category_id: int | None = None
    membership_tier: str | None = None
    segment: str | None = None
    tag: str | None = None
    audience_id: int | None = None
    min_quantity: int = 1
    amount: int | None = None
    percent_off_bp: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    active: bool = True


@dataclass(frozen=True)
class LimitSpec:
    variant_id: int | None = None
    product_id: int | None = None
    category_id: int | None = None
    floor_amount: int | None = None
    ceiling_amount: int | None = None
    min_margin_bp: int | None = None
    map_amount: int | None = None


def _one_target(variant_id: int | None, product_id: int | None, category_id: int | None) -> None:
    given = [x for x in (variant_id, product_id, category_id) if x is not None]
    if len(given) != 1:
        raise ValidationFailed(
            "name exactly one target: a variant, a product or a category", field="productId"
        )


def _money(value: int | None, field: str, *, zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not zero):
        raise ValidationFailed(
            f"{field} must be {'zero or more' if zero else 'above zero'}", field=field
        )
    if value > MAX_AMOUNT:
        raise ValidationFailed(f"{field} is too large", field=field)


async def _exists(session: AsyncSession, model: Any, ident: int | None, field: str) -> None:
    if ident is not None and await session.get(model, ident) is None:
        raise NotFound(model.__name__, ident, field=field)


async def check_rule(session: AsyncSession, spec: RuleSpec) -> None:
    if not spec.name.strip() or len(spec.name) > NAME_MAX:
        raise ValidationFailed(f"a name of 1 to {NAME_MAX} characters", field="name")
    _one_target(spec.variant_id, spec.product_id, spec.category_id)
    who = [
        x for x in (spec.membership_tier, spec.segment, spec.tag, spec.audience_id) if x is not None
    ]
    if len(who) > 1:
        raise ValidationFailed(
            "name at most one of membershipTier, segment, tag and audienceId (none: everyone)",
            field="membershipTier",
        )
    if spec.tag is not None and not (0 < len(spec.tag.strip()) <= TAG_MAX):
        raise ValidationFailed(f"a tag of 1 to {TAG_MAX} characters", field="tag")
    if (spec.amount is None) == (spec.percent_off_bp is None):
        raise ValidationFailed("give exactly one of amount and percentOffBp", field="amount")
    _money(spec.amount, "amount")
    if spec.percent_off_bp is not None and not 1 <= spec.percent_off_bp <= 9999:
        raise ValidationFailed(
            "percentOffBp is basis points from 1 (0.01%) to 9999 (99.99%)", field="percentOffBp"
        )
    if not 1 <= spec.min_quantity <= MAX_QUANTITY:
        raise ValidationFailed(f"minQuantity from 1 to {MAX_QUANTITY}", field="minQuantity")
    if spec.kind is RuleKind.QUANTITY and spec.min_quantity < 2:
        raise ValidationFailed("a quantity break starts at 2 units or more", field="minQuantity")
    if spec.kind is not RuleKind.QUANTITY and spec.min_quantity != 1:
        raise ValidationFailed("only a QUANTITY rule has a minQuantity", field="minQuantity")
    if spec.starts_at and spec.ends_at and spec.ends_at <= spec.starts_at:
        raise ValidationFailed("endsAt must be after startsAt", field="endsAt")
    if spec.kind is RuleKind.SCHEDULED and spec.starts_at is None and spec.ends_at is None:
        raise ValidationFailed("a SCHEDULED rule needs startsAt or endsAt", field="startsAt")
    await _exists(session, ProductVariant, spec.variant_id, "variantId")
    await _exists(session, Product, spec.product_id, "productId")
    await _exists(session, Category, spec.category_id, "categoryId")
    await _exists(session, Audience, spec.audience_id, "audienceId")


async def affected_products(
    session: AsyncSession, variant_id: int | None, product_id: int | None
) -> list[int] | None:
    """The products whose public price a change on this target may move (None: any)."""
    if product_id is not None:
        return [product_id]
    if variant_id is not None:
        variant = await session.get(ProductVariant, variant_id)
        return [variant.product_id] if variant is not None else []
    return None


async def _refresh(
    session: AsyncSession,
    config: Any,
    targets: list[tuple[int | None, int | None]],
    actor: str,
    reason: str,
    rule_id: int | None = None,
) -> None:
    ids: set[int] = set()
    everything = False
    for variant_id, product_id in targets:
        found = await affected_products(session, variant_id, product_id)
        if found is None:
            everything = True
        else:
            ids.update(found)
    await session.flush()
    written = await history.refresh(
        session,
        config,
        product_ids=None if everything else sorted(ids),
        source=PriceSource.RULE,
        at=utcnow(),
        actor=actor,
        reason=reason,
        rule_id=rule_id,
    )
    if not written:
        # Prices of some shoppers (a tier, a segment…) or of a breakdown may still have moved.
        await events.prices_changed(session, [] if everything else ids, reason)


def _describe(row: PricingRule) -> str:
    effect = (
        f"{money_text(row.amount)}" if row.amount is not None else f"{row.percent_off_bp} bp off"
    )
    return f"rule {row.id} {row.name!r} ({row.kind}, {effect})"


async def create_rule(
    session: AsyncSession, config: Any, spec: RuleSpec, actor: str
) -> PricingRule:
    await check_rule(session, spec)
    row = PricingRule(**spec.__dict__, created_by=actor[:120])
    session.add(row)
    await session.flush()
    await _refresh(
        session,
        config,
        [(row.variant_id, row.product_id)],
        actor,
        f"created {_describe(row)}",
        row.id,
    )
    return row


async def _rule(session: AsyncSession, rule_id: int) -> PricingRule:
    row = await session.get(PricingRule, rule_id, with_for_update=True)
    if row is None:
        raise NotFound("PricingRule", rule_id, field="id")
    return row


async def update_rule(
    session: AsyncSession, config: Any, rule_id: int, spec: RuleSpec, actor: str
) -> PricingRule:
    """Replace a rule's definition."""
    row = await _rule(session, rule_id)
    await check_rule(session, spec)
    before = (row.variant_id, row.product_id)
    for name, value in spec.__dict__.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    await _refresh(
        session,
        config,
        [before, (row.variant_id, row.product_id)],
        actor,
        f"updated {_describe(row)}",
        row.id,
    )
    return row


async def delete_rule(session: AsyncSession, config: Any, rule_id: int, actor: str) -> int:
    row = await _rule(session, rule_id)
    target = (row.variant_id, row.product_id)
    text = f"deleted {_describe(row)}"
    await session.delete(row)
    await session.flush()
    await _refresh(session, config, [target], actor, text, rule_id)
    return rule_id


async def check_limit(session: AsyncSession, spec: LimitSpec) -> None:
    _one_target(spec.variant_id, spec.product_id, spec.category_id)
    _money(spec.floor_amount, "floor")
    _money(spec.ceiling_amount, "ceiling")
    _money(spec.map_amount, "map")
    if spec.min_margin_bp is not None and not 1 <= spec.min_margin_bp <= 9999:
        raise ValidationFailed("minMarginBp is basis points from 1 to 9999", field="minMarginBp")
    if all(
        v is None
        for v in (spec.floor_amount, spec.ceiling_amount, spec.min_margin_bp, spec.map_amount)
    ):
        raise ValidationFailed(
            "set at least one of floor, ceiling, minMarginBp and map", field="floor"
        )
    if (
        spec.floor_amount is not None
        and spec.ceiling_amount is not None
        and spec.floor_amount > spec.ceiling_amount
    ):
        raise ValidationFailed("the floor is above the ceiling", field="floor")
    if (
        spec.map_amount is not None
        and spec.ceiling_amount is not None
        and spec.map_amount > spec.ceiling_amount
    ):
        raise ValidationFailed("the minimum advertised price is above the ceiling", field="map")
    await _exists(session, ProductVariant, spec.variant_id, "variantId")
    await _exists(session, Product, spec.product_id, "productId")
    await _exists(session, Category, spec.category_id, "categoryId")


async def set_limit(
    session: AsyncSession, config: Any, spec: LimitSpec, actor: str
) -> PricingLimit:
    """Create or replace the limit of a target (one row per target)."""
    await check_limit(session, spec)
    if spec.variant_id is not None:
        where = col(PricingLimit.variant_id) == spec.variant_id
    elif spec.product_id is not None:
        where = col(PricingLimit.product_id) == spec.product_id
    else:
        where = col(PricingLimit.category_id) == spec.category_id
    row = await session.scalar(select(PricingLimit).where(where).with_for_update())
    if row is None:
        row = PricingLimit(**spec.__dict__)
        session.add(row)
    else:
        for name, value in spec.__dict__.items():
            setattr(row, name, value)
    row.updated_by = actor[:120]
    row.updated_at = utcnow()
    try:
        await session.flush()
    except Exception as exc:  # a concurrent first write on the same target
        if "unique" in str(exc).lower():
            raise Conflict("this target's limit was set meanwhile: try again") from exc
        raise
    await _refresh(
        session,
        config,
        [(row.variant_id, row.product_id)],
        actor,
        f"set the limit {row.id} (floor {row.floor_amount}, ceiling {row.ceiling_amount}, "
        f"margin {row.min_margin_bp} bp, MAP {row.map_amount})",
    )
    return row


async def remove_limit(session: AsyncSession, config: Any, limit_id: int, actor: str) -> int:
    row = await session.get(PricingLimit, limit_id, with_for_update=True)
    if row is None:
        raise NotFound("PricingLimit", limit_id, field="id")
    target = (row.variant_id, row.product_id)
    await session.delete(row)
    await session.flush()
    await _refresh(session, config, [target], actor, f"removed the limit {limit_id}")
    return limit_id
