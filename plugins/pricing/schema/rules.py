"""Price rules and limits over GraphQL: the staff's lists (``pricingRules``,
``pricingLimits``; pricing.manage or pricing.read) and changes (pricing.manage, audited), and
the public price fields the response cache may keep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay

from plugins.pricing import PRICES_CHANGED, READ
from plugins.pricing.models import PricingLimit as LimitRow
from plugins.pricing.models import PricingRule as RuleRow
from plugins.pricing.models import RuleKind
from plugins.pricing.service import rules_admin
from plugins.pricing.service.settings import pricing_settings
from server.models import CustomerSegment, MembershipTier
from server.permissions import PRICING_MANAGE
from server.plugin import (
    Category,
    ConflictError,
    Connection,
    HasPermission,
    Info,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFoundError,
    Page,
    Paged,
    Product,
    ValidationError,
    ValidationFailed,
    connection,
    filter_node_id,
    money,
    mutate,
    optional_node_id,
    require_node_id,
)

_MANAGERS = HasPermission(PRICING_MANAGE)
_READERS = HasPermission(PRICING_MANAGE, READ)
NAME_MAX = 120
TAG_MAX = 64

strawberry.enum(
    RuleKind,
    name="PricingRuleKind",
    description="Where a rule sits in the price pipeline: GROUP (a price list for everyone, "
    "a member tier, a segment, a tag or an audience), then QUANTITY (a break from minQuantity "
    "units), then SCHEDULED (a price for a window).",
)


def _minor(value: Decimal | None, field: str) -> int | None:
    """An amount in the shop's currency (two decimals) in minor units; more decimals are a
    typed error, never rounded."""
    if value is None:
        return None
    try:
        scaled = value.scaleb(2)
        if not scaled.is_finite() or scaled != scaled.to_integral_value():
            raise ValidationFailed(f"{field}: at most two decimals", field=field)
        return int(scaled)
    except InvalidOperation as exc:
        raise ValidationFailed(f"{field}: not an amount", field=field) from exc


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


class PricingRuleByIdLoader(ModelByIdLoader):
    model = RuleRow


class PricingLimitByIdLoader(ModelByIdLoader):
    model = LimitRow


@strawberry.type(description="A price rule (pricing.manage or pricing.read).")
class PricingRule(ModelNode):
    loader = PricingRuleByIdLoader

    id: relay.NodeID[int]
    name: str
    kind: RuleKind
    min_quantity: int = strawberry.field(description="A QUANTITY rule's first unit count.")
    percent_off_bp: int | None = strawberry.field(
        description="The share off the running price in basis points (the discount rounded "
        "half up to a whole minor unit); null when the rule sets an amount."
    )
    starts_at: datetime | None
    ends_at: datetime | None
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime | None
    _model: strawberry.Private[RuleRow]

    @classmethod
    def can_view(cls, info: Info, model: RuleRow) -> bool:
        return info.context.viewer.has(PRICING_MANAGE, READ)

    @strawberry.field(description="The fixed unit price the rule sets; null: a percentage.")
    def amount(self, info: Info) -> Money | None:
        value = self._model.amount
        return None if value is None else money(value, info.context.settings.currency)

    @strawberry.field(description="The variant it covers (its cart and order lines only).")
    def variant_id(self) -> strawberry.ID | None:
        return _gid("ProductVariant", self._model.variant_id)

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._model.product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it

    @strawberry.field(
        description="The category it covers (its own products, not its sub-categories')."
    )
    def category(self, info: Info) -> Category | None:
        return Category.by_id(info, self._model.category_id)  # type: ignore[return-value]  # as above

    @strawberry.field(description="Who: a membership tier (null: not by tier).")
    def membership_tier(self) -> MembershipTier | None:
        raw = self._model.membership_tier
        return MembershipTier(raw) if raw is not None else None

    @strawberry.field(description="Who: an RFM segment (null: not by segment).")
    def segment(self) -> CustomerSegment | None:
        raw = self._model.segment
        return CustomerSegment(raw) if raw is not None else None

    @strawberry.field(description="Who: customers with this tag (null: not by tag).")
    def tag(self) -> str | None:
        return self._model.tag

    @strawberry.field(description="Who: an audience's members (null: not by audience).")
    def audience_id(self) -> strawberry.ID | None:
        return _gid("Audience", self._model.audience_id)


@strawberry.type(
    description="Guardrails on a variant, a product or a category (pricing.manage or "
    "pricing.read): the final unit price stays between them after every promotion."
)
class PricingLimit(ModelNode):
    loader = PricingLimitByIdLoader

    id: relay.NodeID[int]
    min_margin_bp: int | None = strawberry.field(
        description="Minimum gross margin over cost (basis points): the price is at least "
        "ceil(cost / (1 - margin))."
    )
    updated_by: str
    updated_at: datetime
    _model: strawberry.Private[LimitRow]

    @classmethod
    def can_view(cls, info: Info, model: LimitRow) -> bool:
        return info.context.viewer.has(PRICING_MANAGE, READ)

    def _money(self, info: Info, value: int | None) -> Money | None:
        return None if value is None else money(value, info.context.settings.currency)

    @strawberry.field
    def floor(self, info: Info) -> Money | None:
        return self._money(info, self._model.floor_amount)

    @strawberry.field
    def ceiling(self, info: Info) -> Money | None:
        return self._money(info, self._model.ceiling_amount)

    @strawberry.field(description="Minimum advertised price (MAP): a floor.")
    def map(self, info: Info) -> Money | None:
        return self._money(info, self._model.map_amount)

    @strawberry.field
    def variant_id(self) -> strawberry.ID | None:
        return _gid("ProductVariant", self._model.variant_id)

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._model.product_id)  # type: ignore[return-value]  # as above

    @strawberry.field
    def category(self, info: Info) -> Category | None:
        return Category.by_id(info, self._model.category_id)  # type: ignore[return-value]  # as above


@strawberry.input(description="Narrows pricingRules; every given field must match.")
class PricingRuleFilter:
    kind: RuleKind | None = None
    product_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    active: bool | None = None


@strawberry.input(
    description="A rule: exactly one target (variantId, productId, categoryId), at most one "
    "who (membershipTier, segment, tag, audienceId; none: every shopper) and exactly one "
    "effect (amount: a unit price; percentOffBp: 1 to 9999 basis points off)."
)
class PricingRuleInput:
    name: str = strawberry.field(description=f"1 to {NAME_MAX} characters.")
    kind: RuleKind = RuleKind.GROUP
    variant_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    membership_tier: MembershipTier | None = None
    segment: CustomerSegment | None = None
    tag: str | None = strawberry.field(default=None, description=f"At most {TAG_MAX} characters.")
    audience_id: strawberry.ID | None = None
    min_quantity: int = strawberry.field(default=1, description="QUANTITY rules: 2 or more.")
    amount: Decimal | None = None
    percent_off_bp: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    active: bool = True


@strawberry.input
class CreatePricingRuleInput:
    rule: PricingRuleInput


@strawberry.input(description="Replaces the rule's whole definition.")
class UpdatePricingRuleInput:
    id: strawberry.ID = strawberry.field(description="A PricingRule's id.")
    rule: PricingRuleInput


@strawberry.input
class DeletePricingRuleInput:
    id: strawberry.ID = strawberry.field(description="A PricingRule's id.")


@strawberry.input(
    description="Create or replace the limit of one target (exactly one of variantId, "
    "productId, categoryId); at least one bound; amounts above zero; floor and MAP not above "
    "the ceiling."
)
class SetPricingLimitInput:
    variant_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    floor: Decimal | None = None
    ceiling: Decimal | None = None
    min_margin_bp: int | None = strawberry.field(default=None, description="1 to 9999.")
    map: Decimal | None = strawberry.field(default=None, description="Minimum advertised price.")


@strawberry.input
class RemovePricingLimitInput:
    id: strawberry.ID = strawberry.field(description="A PricingLimit's id.")


@strawberry.type
class PricingRuleSuccess:
    rule: PricingRule


@strawberry.type
class DeletePricingRuleSuccess:
    deleted_id: strawberry.ID


@strawberry.type
class SetPricingLimitSuccess:
    limit: PricingLimit


@strawberry.type
class RemovePricingLimitSuccess:
    removed_id: strawberry.ID


PricingRuleResult = Annotated[
    PricingRuleSuccess | ValidationError | NotFoundError,
    strawberry.union("PricingRuleResult"),
]
DeletePricingRuleResult = Annotated[
    DeletePricingRuleSuccess | NotFoundError, strawberry.union("DeletePricingRuleResult")
]
SetPricingLimitResult = Annotated[
    SetPricingLimitSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("SetPricingLimitResult"),
]
RemovePricingLimitResult = Annotated[
    RemovePricingLimitSuccess | NotFoundError, strawberry.union("RemovePricingLimitResult")
]


def _spec(value: PricingRuleInput) -> rules_admin.RuleSpec:
    if len(value.name) > NAME_MAX:
        raise ValidationFailed(f"a name of 1 to {NAME_MAX} characters", field="name")
    if value.tag is not None and len(value.tag) > TAG_MAX:
        raise ValidationFailed(f"a tag of 1 to {TAG_MAX} characters", field="tag")
    return rules_admin.RuleSpec(
        name=value.name.strip(),
        kind=value.kind,
        variant_id=optional_node_id(value.variant_id, "ProductVariant", "variantId"),
        product_id=optional_node_id(value.product_id, "Product", "productId"),
        category_id=optional_node_id(value.category_id, "Category", "categoryId"),
        membership_tier=value.membership_tier.value if value.membership_tier else None,
        segment=value.segment.value if value.segment else None,
        tag=value.tag.strip() if value.tag is not None else None,
        audience_id=optional_node_id(value.audience_id, "Audience", "audienceId"),
        min_quantity=value.min_quantity,
        amount=_minor(value.amount, "amount"),
        percent_off_bp=value.percent_off_bp,
        starts_at=value.starts_at,
        ends_at=value.ends_at,
        active=value.active,
    )


def _rules_query(filter: PricingRuleFilter | None) -> Select[Any]:
    query = select(RuleRow)
    if filter is not None:
        if filter.kind is not None:
            query = query.where(col(RuleRow.kind) == filter.kind)
        if filter.active is not None:
            query = query.where(col(RuleRow.active) == filter.active)
        # A filter's id that names no row finds nothing, like any list's filter.
        product_id = filter_node_id(filter.product_id, "Product")
        if product_id is not None:
            query = query.where(col(RuleRow.product_id) == product_id)
        category_id = filter_node_id(filter.category_id, "Category")
        if category_id is not None:
            query = query.where(col(RuleRow.category_id) == category_id)
    return query


@strawberry.type
class PricingRuleQueries:
    @strawberry.field(
        description="The price rules, oldest first (pricing.manage or pricing.read).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def pricing_rules(
        self, info: Info, page: Page, filter: PricingRuleFilter | None = None
    ) -> Connection[PricingRule]:
        return await connection(
            info, _rules_query(filter), page, sort=[], to_node=PricingRule.from_model
        )

    @strawberry.field(
        description="The price limits, oldest first; productId narrows them to a product's "
        "(pricing.manage or pricing.read).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def pricing_limits(
        self, info: Info, page: Page, product_id: strawberry.ID | None = None
    ) -> Connection[PricingLimit]:
        query = select(LimitRow)
        pid = filter_node_id(product_id, "Product")
        if pid is not None:
            query = query.where(col(LimitRow.product_id) == pid)
        return await connection(info, query, page, sort=[], to_node=PricingLimit.from_model)


@strawberry.type
class PricingRuleMutations:
    @strawberry.mutation(
        description="Add a price rule; the prices it touches are recomputed and recorded in "
        "the price history (pricing.manage).",
        permission_classes=[_MANAGERS],
    )
    async def create_pricing_rule(
        self, info: Info, input: CreatePricingRuleInput
    ) -> PricingRuleResult:
        async def work(session: AsyncSession) -> RuleRow:
            return await rules_admin.create_rule(
                session,
                pricing_settings(info.context.plugins),
                _spec(input.rule),
                info.context.viewer.subject,
            )

        return await mutate(
            info, work, lambda row: PricingRuleSuccess(rule=PricingRule.from_model(row))
        )

    @strawberry.mutation(
        description="Replace a price rule's definition (pricing.manage).",
        permission_classes=[_MANAGERS],
    )
    async def update_pricing_rule(
        self, info: Info, input: UpdatePricingRuleInput
    ) -> PricingRuleResult:
        async def work(session: AsyncSession) -> RuleRow:
            rule_id = require_node_id(input.id, "PricingRule", "id")
            return await rules_admin.update_rule(
                session,
                pricing_settings(info.context.plugins),
                rule_id,
                _spec(input.rule),
                info.context.viewer.subject,
            )

        return await mutate(
            info, work, lambda row: PricingRuleSuccess(rule=PricingRule.from_model(row))
        )

    @strawberry.mutation(
        description="Delete a price rule (set active: false with updatePricingRule to keep "
        "it) (pricing.manage).",
        permission_classes=[_MANAGERS],
    )
    async def delete_pricing_rule(
        self, info: Info, input: DeletePricingRuleInput
    ) -> DeletePricingRuleResult:
        async def work(session: AsyncSession) -> int:
            rule_id = require_node_id(input.id, "PricingRule", "id")
            return await rules_admin.delete_rule(
                session,
                pricing_settings(info.context.plugins),
                rule_id,
                info.context.viewer.subject,
            )

        return await mutate(
            info,
            work,
            lambda rid: DeletePricingRuleSuccess(
                deleted_id=strawberry.ID(str(relay.GlobalID("PricingRule", str(rid))))
            ),
        )

    @strawberry.mutation(
        description="Set the guardrails of a variant, a product or a category, replacing its "
        "earlier ones (pricing.manage).",
        permission_classes=[_MANAGERS],
    )
    async def set_pricing_limit(
        self, info: Info, input: SetPricingLimitInput
    ) -> SetPricingLimitResult:
        async def work(session: AsyncSession) -> LimitRow:
            spec = rules_admin.LimitSpec(
                variant_id=optional_node_id(input.variant_id, "ProductVariant", "variantId"),
                product_id=optional_node_id(input.product_id, "Product", "productId"),
                category_id=optional_node_id(input.category_id, "Category", "categoryId"),
                floor_amount=_minor(input.floor, "floor"),
                ceiling_amount=_minor(input.ceiling, "ceiling"),
                min_margin_bp=input.min_margin_bp,
                map_amount=_minor(input.map, "map"),
            )
            return await rules_admin.set_limit(
                session, pricing_settings(info.context.plugins), spec, info.context.viewer.subject
            )

        return await mutate(
            info, work, lambda row: SetPricingLimitSuccess(limit=PricingLimit.from_model(row))
        )

    @strawberry.mutation(
        description="Remove a limit (pricing.manage).", permission_classes=[_MANAGERS]
    )
    async def remove_pricing_limit(
        self, info: Info, input: RemovePricingLimitInput
    ) -> RemovePricingLimitResult:
        async def work(session: AsyncSession) -> int:
            limit_id = require_node_id(input.id, "PricingLimit", "id")
            return await rules_admin.remove_limit(
                session,
                pricing_settings(info.context.plugins),
                limit_id,
                info.context.viewer.subject,
            )

        return await mutate(
            info,
            work,
            lambda lid: RemovePricingLimitSuccess(
                removed_id=strawberry.ID(str(relay.GlobalID("PricingLimit", str(lid))))
            ),
        )


# Every public price field: the rules for everyone, the dynamic prices and the limits change
# them, and each such change emits pricing_prices_changed (a scheduled price's start and end
# too, from the history's job). Personal prices are never cached: the response cache keeps
# and serves anonymous answers only.
_PRICE_EVENTS = ("product_changed", PRICES_CHANGED)
CACHEABLE: dict[str, Sequence[str]] = {
    coordinate: _PRICE_EVENTS
    for coordinate in (
        "Product.price",
        "Product.priceBreakdown",
        "Product.priceRange",
        "ProductVariant.price",
        "ProductVariant.priceBreakdown",
        "PriceBreakdown.notApplied",
        "PriceCandidate.source",
        "PriceCandidate.rule",
        "PriceCandidate.label",
        "PriceCandidate.amount",
        "PriceCandidate.reason",
    )
}
QUERIES: list[type[Any]] = [PricingRuleQueries]
MUTATIONS: list[type[Any]] = [PricingRuleMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {}
