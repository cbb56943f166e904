"""Staff administration of promotions and campaigns: checked, then written.

Every check runs before anything is written, so bad input changes nothing. Status moves are
ACTIVE ⇄ PAUSED and either → ENDED; ENDED is final. Counters (uses, units, a campaign's
spend) are the checkout's: an update never sets a limit below what was already used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    ACTOR_MAX,
    GROUP_NAME_MAX,
    NAME_MAX,
    Campaign,
    CustomerUse,
    Promotion,
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    ReturnRule,
    Trigger,
)
from plugins.promotions.service import kinds
from server.models import Audience, Category, MembershipTier, Product, ProductVariant, utcnow
from server.plugin import Conflict, NotFound, ValidationFailed

# Targets a promotion names at most, of each kind (products, categories, variants).
MAX_TARGETS = 500
TAG_MAX = 64
MAX_LIMIT = 10**9
MAX_AMOUNT = 10**11
CURRENCY = "CNY"


class InvalidStatusChange(Conflict):
    """A status move the promotion's (or campaign's) current status does not allow."""

    code = "INVALID_TRANSITION"


@dataclass(frozen=True)
class PromotionSpec:
    """A promotion's definition as staff give it (create, or replace on update); ids are
    row ids, already decoded from global ids."""

    name: str
    kind: PromotionKind
    rules: dict[str, Any]
    label: str = ""
    trigger: Trigger = Trigger.AUTOMATIC
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    product_ids: Sequence[int] = ()
    category_ids: Sequence[int] = ()
    variant_ids: Sequence[int] = ()
    membership_tier: str | None = None
    segment: str | None = None
    tag: str | None = None
    audience_id: int | None = None
    new_customers_only: bool = False
    claimable: bool = False
    priority: int = 0
    combinable_with: Sequence[PromotionClass] = ()
    exclusive_group: str | None = None
    joint_group: str | None = None
    total_limit: int | None = None
    per_customer_limit: int | None = None
    unit_limit: int | None = None
    per_customer_unit_limit: int | None = None
    on_return: ReturnRule = ReturnRule.CLAW_BACK
    campaign_id: int | None = None


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    budget_amount: int | None = None
    budget_uses: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass
class _Checked:
    """What checking a spec worked out: the class and the rules as stored."""

    promotion_class: PromotionClass
    rules: dict[str, Any] = field(default_factory=dict)


def _text(value: str, name: str, bound: int, *, required: bool = True) -> str:
    text = value.strip()
    if (required and not text) or len(text) > bound:
        raise ValidationFailed(f"{name}: 1 to {bound} characters", field=name)
    return text


def _window(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("endsAt must be after startsAt", field="endsAt")


def _limit(value: int | None, name: str) -> None:
    if value is not None and not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(f"{name}: from 1 to {MAX_LIMIT} (null: no limit)", field=name)


def _rule_ids(kind: PromotionKind, parsed: Any) -> tuple[set[int], set[int]]:
    """(product ids, variant ids) a kind's rules name, to be checked to exist."""
    products: set[int] = set()
    variants: set[int] = set()
    if isinstance(parsed, kinds.SpendGiftRules):
        variants.update(t.variant_id for t in parsed.tiers)
    elif isinstance(parsed, kinds.BuyXGetYRules) and parsed.get_variant_id is not None:
        variants.add(parsed.get_variant_id)
    elif isinstance(parsed, kinds.BundleRules):
        products.update(i.product_id for i in parsed.items if i.product_id is not None)
        variants.update(i.variant_id for i in parsed.items if i.variant_id is not None)
    return products, variants


async def _all_exist(
    session: AsyncSession, model: Any, ids: set[int], field_name: str, kind: str
) -> None:
    """One statement for the whole list; the first missing id is the typed NOT_FOUND."""
    if not ids:
        return
    found = set(await session.scalars(select(col(model.id)).where(col(model.id).in_(ids))))
    missing = sorted(ids - found)
    if missing:
        raise NotFound(kind, missing[0], field=field_name)


async def check_promotion(session: AsyncSession, spec: PromotionSpec) -> _Checked:
    """Every rule a promotion's definition must keep; raises the first broken one."""
    _text(spec.name, "name", NAME_MAX)
    _text(spec.label, "label", NAME_MAX, required=False)
    parsed = kinds.parse_rules(spec.kind, dict(spec.rules))
    promotion_class = kinds.class_of(spec.kind, parsed)
    if spec.kind is PromotionKind.COUPON and spec.trigger is not Trigger.CODE:
        raise ValidationFailed(
            "a COUPON promotion is applied by code: trigger CODE", field="trigger"
        )
    if spec.claimable and spec.trigger is not Trigger.CODE:
        raise ValidationFailed("only a promotion applied by code is claimable", field="claimable")
    _window(spec.starts_at, spec.ends_at)
    for name, ids in (
        ("productIds", spec.product_ids),
        ("categoryIds", spec.category_ids),
        ("variantIds", spec.variant_ids),
    ):
        if len(ids) > MAX_TARGETS:
            raise ValidationFailed(f"{name}: at most {MAX_TARGETS}", field=name)
    who = [
        x for x in (spec.membership_tier, spec.segment, spec.tag, spec.audience_id) if x is not None
    ]
    if len(who) > 1:
        raise ValidationFailed(
            "name at most one of membershipTier, segment, tag and audienceId (none: everyone)",
            field="membershipTier",
        )
    if spec.kind is PromotionKind.MEMBER_DEAL and spec.membership_tier is None:
        raise ValidationFailed("a MEMBER_DEAL names its membershipTier", field="membershipTier")
    if spec.membership_tier is not None and spec.membership_tier not in set(MembershipTier):
        raise ValidationFailed("not a membership tier", field="membershipTier")
    if spec.tag is not None:
        _text(spec.tag, "tag", TAG_MAX)
    for name, group in (("exclusiveGroup", spec.exclusive_group), ("jointGroup", spec.joint_group)):
        if group is not None:
            _text(group, name, GROUP_NAME_MAX)
    if not -1000 <= spec.priority <= 1000:
        raise ValidationFailed("priority: from -1000 to 1000", field="priority")
    if promotion_class in spec.combinable_with:
        raise ValidationFailed(
            "combinableWith names other classes (within a class, use jointGroup)",
            field="combinableWith",
        )
    _limit(spec.total_limit, "totalLimit")
    _limit(spec.per_customer_limit, "perCustomerLimit")
    _limit(spec.unit_limit, "unitLimit")
    _limit(spec.per_customer_unit_limit, "perCustomerUnitLimit")
    rule_products, rule_variants = _rule_ids(spec.kind, parsed)
    await _all_exist(
        session, Product, set(spec.product_ids) | rule_products, "productIds", "product"
    )
    await _all_exist(session, Category, set(spec.category_ids), "categoryIds", "category")
    await _all_exist(
        session, ProductVariant, set(spec.variant_ids) | rule_variants, "variantIds", "variant"
    )
    if spec.audience_id is not None:
        await _all_exist(session, Audience, {spec.audience_id}, "audienceId", "audience")
    if spec.campaign_id is not None:
        await _all_exist(session, Campaign, {spec.campaign_id}, "campaignId", "campaign")
    return _Checked(promotion_class, parsed.model_dump(exclude_none=True))


def _values(spec: PromotionSpec, checked: _Checked) -> dict[str, Any]:
    return {
        "name": spec.name.strip(),
        "label": spec.label.strip() or spec.name.strip(),
        "kind": spec.kind,
        "promotion_class": checked.promotion_class,
        "trigger": spec.trigger,
        "rules": checked.rules,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "product_ids": sorted(set(spec.product_ids)),
        "category_ids": sorted(set(spec.category_ids)),
        "variant_ids": sorted(set(spec.variant_ids)),
        "membership_tier": spec.membership_tier,
        "segment": spec.segment,
        "tag": spec.tag.strip() if spec.tag is not None else None,
        "audience_id": spec.audience_id,
        "new_customers_only": spec.new_customers_only,
        "claimable": spec.claimable,
        "priority": spec.priority,
        "combinable_with": sorted({c.value for c in spec.combinable_with}),
        "exclusive_group": spec.exclusive_group.strip() if spec.exclusive_group else None,
        "joint_group": spec.joint_group.strip() if spec.joint_group else None,
        "total_limit": spec.total_limit,
        "per_customer_limit": spec.per_customer_limit,
        "unit_limit": spec.unit_limit,
        "per_customer_unit_limit": spec.per_customer_unit_limit,
        "on_return": spec.on_return,
        "campaign_id": spec.campaign_id,
    }


async def create_promotion(session: AsyncSession, spec: PromotionSpec, actor: str) -> Promotion:
    checked = await check_promotion(session, spec)
    row = Promotion(**_values(spec, checked), created_by=actor[:ACTOR_MAX], currency=CURRENCY)
    session.add(row)
    await session.flush()
    return row


async def _locked_promotion(session: AsyncSession, promotion_id: int) -> Promotion:
    row = await session.get(Promotion, promotion_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound("promotion", promotion_id, field="id")
    return row


async def update_promotion(
    session: AsyncSession, promotion_id: int, spec: PromotionSpec, actor: str
) -> Promotion:
    """Replace a promotion's definition. An ENDED promotion stays as it is; once used, its
    kind stays; no limit goes below its counter (in total, or any one customer's)."""
    row = await _locked_promotion(session, promotion_id)
    if row.status is PromotionStatus.ENDED:
        raise InvalidStatusChange("an ended promotion cannot change", field="id")
    checked = await check_promotion(session, spec)
    used = row.used_count > 0 or row.units_sold > 0
    if used and spec.kind is not row.kind:
        raise ValidationFailed("the kind of a promotion already used cannot change", field="kind")
    if spec.total_limit is not None and spec.total_limit < row.used_count:
        raise ValidationFailed(
            f"totalLimit below the {row.used_count} uses already made", field="totalLimit"
        )
    if spec.unit_limit is not None and spec.unit_limit < row.units_sold:
        raise ValidationFailed(
            f"unitLimit below the {row.units_sold} units already sold", field="unitLimit"
        )
    if spec.per_customer_limit is not None or spec.per_customer_unit_limit is not None:
        most = (
            await session.execute(
                select(
                    func.coalesce(func.max(col(CustomerUse.uses)), 0),
                    func.coalesce(func.max(col(CustomerUse.units)), 0),
                ).where(col(CustomerUse.promotion_id) == promotion_id)
            )
        ).one()
        if spec.per_customer_limit is not None and spec.per_customer_limit < int(most[0]):
            raise ValidationFailed(
                f"perCustomerLimit below a customer's {int(most[0])} uses",
                field="perCustomerLimit",
            )
        if spec.per_customer_unit_limit is not None and spec.per_customer_unit_limit < int(most[1]):
            raise ValidationFailed(
                f"perCustomerUnitLimit below a customer's {int(most[1])} units",
                field="perCustomerUnitLimit",
            )
    for name, value in _values(spec, checked).items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    return row


_MOVES: dict[PromotionStatus, tuple[PromotionStatus, ...]] = {
    PromotionStatus.PAUSED: (PromotionStatus.ACTIVE,),
    PromotionStatus.ACTIVE: (PromotionStatus.PAUSED,),
    PromotionStatus.ENDED: (PromotionStatus.ACTIVE, PromotionStatus.PAUSED),
}


async def set_promotion_status(
    session: AsyncSession, promotion_id: int, target: PromotionStatus
) -> Promotion:
    """Pause (from ACTIVE), resume (from PAUSED) or end (from either; final)."""
    row = await _locked_promotion(session, promotion_id)
    if row.status not in _MOVES[target]:
        raise InvalidStatusChange(
            f"a {row.status.value} promotion cannot become {target.value}", field="id"
        )
    row.status = target
    row.updated_at = utcnow()
    await session.flush()
    return row


def promotions_query(
    *,
    status: PromotionStatus | None = None,
    kind: PromotionKind | None = None,
    campaign_id: int | None = None,
    running_at: datetime | None = None,
) -> Select[Any]:
    """The staff's promotion list, filtered; ``running_at``: ACTIVE and within its window
    then (its campaign's budget aside)."""
    query = select(Promotion)
    if status is not None:
        query = query.where(col(Promotion.status) == status)
    if kind is not None:
        query = query.where(col(Promotion.kind) == kind)
    if campaign_id is not None:
        query = query.where(col(Promotion.campaign_id) == campaign_id)
    if running_at is not None:
        query = query.where(
            col(Promotion.status) == PromotionStatus.ACTIVE,
            or_(col(Promotion.starts_at).is_(None), col(Promotion.starts_at) <= running_at),
            or_(col(Promotion.ends_at).is_(None), col(Promotion.ends_at) > running_at),
        )
    return query


# --- campaigns --------------------------------------------------------------------------------


def _check_campaign(spec: CampaignSpec) -> None:
    _text(spec.name, "name", NAME_MAX)
    if spec.budget_amount is not None and not 1 <= spec.budget_amount <= MAX_AMOUNT:
        raise ValidationFailed("budgetAmount: above zero", field="budgetAmount")
    _limit(spec.budget_uses, "budgetUses")
    _window(spec.starts_at, spec.ends_at)


def _spent(row: Campaign) -> bool:
    return (row.budget_amount is not None and row.spent_amount >= row.budget_amount) or (
        row.budget_uses is not None and row.used_count >= row.budget_uses
    )


async def create_campaign(session: AsyncSession, spec: CampaignSpec, actor: str) -> Campaign:
    _check_campaign(spec)
    row = Campaign(
        name=spec.name.strip(),
        currency=CURRENCY,
        budget_amount=spec.budget_amount,
        budget_uses=spec.budget_uses,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        created_by=actor[:ACTOR_MAX],
    )
    session.add(row)
    await session.flush()
    return row


async def _locked_campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    row = await session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound("campaign", campaign_id, field="id")
    return row


async def update_campaign(
    session: AsyncSession, campaign_id: int, spec: CampaignSpec, actor: str
) -> Campaign:
    """Replace a campaign's name, budgets and window. A budget raised above what was spent
    starts its promotions again (the budget job's mark is cleared); one lowered to it or
    below stops them at once."""
    row = await _locked_campaign(session, campaign_id)
    if row.status is PromotionStatus.ENDED:
        raise InvalidStatusChange("an ended campaign cannot change", field="id")
    _check_campaign(spec)
    row.name = spec.name.strip()
    row.budget_amount = spec.budget_amount
    row.budget_uses = spec.budget_uses
    row.starts_at = spec.starts_at
    row.ends_at = spec.ends_at
    if _spent(row):
        row.exhausted_at = row.exhausted_at or utcnow()
    else:
        row.exhausted_at = None
    await session.flush()
    return row


async def set_campaign_status(
    session: AsyncSession, campaign_id: int, target: PromotionStatus
) -> Campaign:
    row = await _locked_campaign(session, campaign_id)
    if row.status not in _MOVES[target]:
        raise InvalidStatusChange(
            f"a {row.status.value} campaign cannot become {target.value}", field="id"
        )
    row.status = target
    await session.flush()
    return row


def campaigns_query(status: PromotionStatus | None = None) -> Select[Any]:
    query = select(Campaign)
    if status is not None:
        query = query.where(col(Campaign.status) == status)
    return query
