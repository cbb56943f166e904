"""The promotions plugin's GraphQL for staff (promotions, campaigns, coupon codes, issuing,
referrals; promotions.manage changes, promotions.read or promotions.manage reads; every
change audited) and the customers' coupon and referral fields (``claimCoupon``, ``myCoupons``,
``myReferralCode``, ``acceptReferral``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.scalars import JSON

from plugins.promotions import MANAGE, READ
from plugins.promotions.models import Campaign as CampaignRow
from plugins.promotions.models import CouponCode as CouponCodeRow
from plugins.promotions.models import Promotion as PromotionRow
from plugins.promotions.models import (
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    ReferralStatus,
    ReturnRule,
    Trigger,
)
from plugins.promotions.models import Referral as ReferralRow
from plugins.promotions.models import ReferralCode as ReferralCodeRow
from plugins.promotions.service import admin, coupons, referrals
from plugins.promotions.service.settings import promotions_settings
from server.models import CustomerSegment, MembershipTier, utcnow
from server.plugin import (
    ConflictError,
    Connection,
    Error,
    HasPermission,
    Info,
    IsCustomer,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFoundError,
    Page,
    Paged,
    SortDirection,
    SortKey,
    ValidationError,
    ValidationFailed,
    connection,
    filter_node_id,
    money,
    mutate,
    optional_node_id,
    require_node_id,
    run_mutation,
    run_write,
)

_MANAGERS = HasPermission(MANAGE)
_READERS = HasPermission(MANAGE, READ)

strawberry.enum(
    PromotionKind,
    name="PromotionKind",
    description="What a promotion does: FLASH_SALE (限时特惠), SPEND_SAVE (满减), SPEND_GIFT "
    "(满赠), BUY_X_GET_Y, COUPON (优惠券), MEMBER_DEAL (会员专享), BUNDLE (套餐), GROUP_BUY "
    "(拼团), FREE_SHIPPING.",
)
strawberry.enum(
    PromotionClass,
    name="PromotionClass",
    description="What a promotion takes its discount off: unit prices (PRODUCT), the order "
    "(ORDER) or the shipping (SHIPPING).",
)
strawberry.enum(
    Trigger,
    name="PromotionTrigger",
    description="AUTOMATIC: applies to whoever qualifies; CODE: needs a coupon code.",
)
strawberry.enum(
    PromotionStatus,
    name="PromotionStatus",
    description="ACTIVE ⇄ PAUSED; either → ENDED, which is final. Whether a promotion runs "
    "now also depends on its window and its campaign's budget.",
)
strawberry.enum(
    ReturnRule,
    name="PromotionReturnRule",
    description="A return that drops an order under the promotion's threshold: KEEP the "
    "discount on the lines kept, or CLAW_BACK what they no longer earn from the refund.",
)
strawberry.enum(
    coupons.CodeStatus,
    name="CouponCodeStatus",
    description="USABLE; USED (its uses are spent); EXPIRED (its own expiry or its "
    "promotion's end passed, or the promotion ended); DISABLED (by staff).",
)
strawberry.enum(ReferralStatus, name="ReferralStatus")

NAME_MAX = 120


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _gids(type_name: str, pks: list[int]) -> list[strawberry.ID]:
    return [strawberry.ID(str(relay.GlobalID(type_name, str(pk)))) for pk in pks]


def _minor(value: Decimal | None, field: str) -> int | None:
    """An amount (two decimals) in minor units; more decimals are a typed error."""
    if value is None:
        return None
    try:
        scaled = value.scaleb(2)
        if not scaled.is_finite() or scaled != scaled.to_integral_value():
            raise ValidationFailed(f"{field}: at most two decimals", field=field)
        return int(scaled)
    except InvalidOperation as exc:
        raise ValidationFailed(f"{field}: not an amount", field=field) from exc


# --- types ----------------------------------------------------------------------------------


class PromotionByIdLoader(ModelByIdLoader):
    model = PromotionRow


class CampaignByIdLoader(ModelByIdLoader):
    model = CampaignRow


@strawberry.type(
    description="Promotions grouped under a budget: discount spend and/or uses; a spent "
    "budget stops its promotions (promotions.read or promotions.manage)."
)
class Campaign(ModelNode):
    loader = CampaignByIdLoader

    id: relay.NodeID[int]
    name: str
    budget_uses: int | None
    used_count: int
    starts_at: datetime | None
    ends_at: datetime | None
    status: PromotionStatus
    exhausted_at: datetime | None = strawberry.field(
        description="When the budget job found the budget spent (null: not spent)."
    )
    created_by: str
    created_at: datetime
    _model: strawberry.Private[CampaignRow]

    @classmethod
    def can_view(cls, info: Info, model: CampaignRow) -> bool:
        return info.context.viewer.has(MANAGE, READ)

    @strawberry.field(description="The discount spend allowed (null: no amount budget).")
    def budget(self) -> Money | None:
        value = self._model.budget_amount
        return None if value is None else money(value, self._model.currency)

    @strawberry.field(description="The discount given by its promotions' orders so far.")
    def spent(self) -> Money:
        return money(self._model.spent_amount, self._model.currency)


@strawberry.type(
    description="A promotion of any kind, with its counters (promotions.read or promotions.manage)."
)
class Promotion(ModelNode):
    loader = PromotionByIdLoader

    id: relay.NodeID[int]
    name: str
    label: str
    kind: PromotionKind
    promotion_class: PromotionClass
    trigger: Trigger
    status: PromotionStatus
    starts_at: datetime | None
    ends_at: datetime | None
    tag: str | None
    new_customers_only: bool
    claimable: bool
    priority: int
    exclusive_group: str | None
    joint_group: str | None
    total_limit: int | None
    per_customer_limit: int | None
    unit_limit: int | None
    per_customer_unit_limit: int | None
    used_count: int = strawberry.field(description="Orders that used it (not cancelled).")
    units_sold: int = strawberry.field(description="Units sold under it (not cancelled).")
    on_return: ReturnRule
    created_by: str
    created_at: datetime
    updated_at: datetime | None
    _model: strawberry.Private[PromotionRow]

    @classmethod
    def can_view(cls, info: Info, model: PromotionRow) -> bool:
        return info.context.viewer.has(MANAGE, READ)

    @strawberry.field(description="The kind's parameters, as createPromotion takes them.")
    def rules(self) -> JSON:
        return JSON(self._model.rules)

    @strawberry.field(description="Uses left under totalLimit (null: no limit).")
    def remaining(self) -> int | None:
        limit = self._model.total_limit
        return None if limit is None else max(0, limit - self._model.used_count)

    @strawberry.field(description="Units left under unitLimit (null: no limit).")
    def remaining_units(self) -> int | None:
        limit = self._model.unit_limit
        return None if limit is None else max(0, limit - self._model.units_sold)

    @strawberry.field(description="Targeted products (all three lists empty: everything).")
    def product_ids(self) -> list[strawberry.ID]:
        return _gids("Product", self._model.product_ids)

    @strawberry.field
    def category_ids(self) -> list[strawberry.ID]:
        return _gids("Category", self._model.category_ids)

    @strawberry.field
    def variant_ids(self) -> list[strawberry.ID]:
        return _gids("ProductVariant", self._model.variant_ids)

    @strawberry.field(description="The other classes it stacks with.")
    def combinable_with(self) -> list[PromotionClass]:
        return [PromotionClass(c) for c in self._model.combinable_with]

    @strawberry.field(description="Who: a membership tier (null: not by tier).")
    def membership_tier(self) -> MembershipTier | None:
        raw = self._model.membership_tier
        return MembershipTier(raw) if raw is not None else None

    @strawberry.field(description="Who: an RFM segment (null: not by segment).")
    def segment(self) -> CustomerSegment | None:
        raw = self._model.segment
        return CustomerSegment(raw) if raw is not None else None

    @strawberry.field(description="Who: an audience's members (null: not by audience).")
    def audience_id(self) -> strawberry.ID | None:
        return _gid("Audience", self._model.audience_id)

    @strawberry.field
    def campaign(self, info: Info) -> Campaign | None:
        return Campaign.by_id(info, self._model.campaign_id)  # type: ignore[return-value]  # a Campaign or an awaitable of one: GraphQL awaits it


@strawberry.type(
    description="A coupon code: shared (no customer) or personal. Its promotion shows to "
    "staff only."
)
class CouponCode:
    id: strawberry.ID
    code: str
    max_uses: int | None = strawberry.field(description="Uses it allows (null: no own limit).")
    used_count: int
    issued_reason: str = strawberry.field(
        description="SHARED, PERSONAL, BATCH, CLAIMED, SEGMENT, TAG, AUDIENCE, COMPENSATION, "
        "PROTECTION or REFERRAL."
    )
    issued_at: datetime
    _model: strawberry.Private[CouponCodeRow]

    @classmethod
    def of(cls, row: CouponCodeRow) -> CouponCode:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("CouponCode", str(row.id)))),
            code=row.code,
            max_uses=row.max_uses,
            used_count=row.used_count,
            issued_reason=row.issued_reason,
            issued_at=row.issued_at,
            _model=row,
        )

    async def _promotion_row(self, info: Info) -> PromotionRow | None:
        row: PromotionRow | None = await info.context.loaders.get(PromotionByIdLoader).load(
            self._model.promotion_id
        )
        return row

    @strawberry.field(description="What it gives, as shoppers read it.")
    async def label(self, info: Info) -> str:
        row = await self._promotion_row(info)
        return row.label if row is not None else ""

    @strawberry.field
    async def status(self, info: Info) -> coupons.CodeStatus:
        return coupons.status_of(self._model, await self._promotion_row(info), utcnow())

    @strawberry.field(
        description="The last moment it can be used: its own expiry, else its promotion's end."
    )
    async def expires_at(self, info: Info) -> datetime | None:
        if self._model.expires_at is not None:
            return self._model.expires_at
        row = await self._promotion_row(info)
        return row.ends_at if row is not None else None

    @strawberry.field(
        description="The amount it takes off, when the code carries its own (compensation, "
        "referral); null: its promotion's rules decide."
    )
    def amount_off(self, info: Info) -> Money | None:
        value = self._model.amount_off
        return None if value is None else money(value, info.context.settings.currency)

    @strawberry.field(description="The customer a personal code was issued to (staff only).")
    def customer_id(self, info: Info) -> strawberry.ID | None:
        if not info.context.viewer.has(MANAGE, READ):
            return None
        return _gid("Customer", self._model.customer_id)

    @strawberry.field(description="Its promotion (staff only; null for anyone else).")
    def promotion(self, info: Info) -> Promotion | None:
        return Promotion.by_id(info, self._model.promotion_id)  # type: ignore[return-value]  # as above


@strawberry.type(description="An invite: a new customer who came by a customer's code.")
class Referral:
    id: strawberry.ID
    status: ReferralStatus
    created_at: datetime
    rewarded_at: datetime | None
    _model: strawberry.Private[ReferralRow]

    @classmethod
    def of(cls, row: ReferralRow) -> Referral:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("Referral", str(row.id)))),
            status=row.status,
            created_at=row.created_at,
            rewarded_at=row.rewarded_at,
            _model=row,
        )

    @strawberry.field
    def inviter_id(self) -> strawberry.ID | None:
        return _gid("Customer", self._model.inviter_customer_id)

    @strawberry.field
    def invitee_id(self) -> strawberry.ID | None:
        return _gid("Customer", self._model.invitee_customer_id)

    @strawberry.field(description="The order whose payment earned the rewards.")
    def rewarded_order_id(self) -> strawberry.ID | None:
        return _gid("Order", self._model.rewarded_order_id)


@strawberry.type(description="The signed-in customer's invite code, to share.")
class ReferralCode:
    code: str
    created_at: datetime


# --- inputs ---------------------------------------------------------------------------------


@strawberry.input(
    description="A promotion's definition. rules: the kind's parameters (docs/plugins/"
    'promotions.md, "Kinds"; amounts in minor units, shares in basis points). Targets are '
    "global ids (all empty: everything); who: at most one of membershipTier, segment, tag "
    "and audienceId (none: everyone; a MEMBER_DEAL names its tier)."
)
class PromotionInput:
    name: str = strawberry.field(description=f"1 to {NAME_MAX} characters.")
    kind: PromotionKind
    rules: JSON
    label: str = strawberry.field(default="", description="What shoppers read; the name if empty.")
    trigger: Trigger = Trigger.AUTOMATIC
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    product_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    category_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    variant_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    membership_tier: MembershipTier | None = None
    segment: CustomerSegment | None = None
    tag: str | None = None
    audience_id: strawberry.ID | None = None
    new_customers_only: bool = False
    claimable: bool = strawberry.field(
        default=False, description="Customers claim its codes themselves (trigger CODE)."
    )
    priority: int = strawberry.field(default=0, description="-1000 to 1000; higher wins ties.")
    combinable_with: list[PromotionClass] = strawberry.field(
        default_factory=list, description="The other classes it may stack with."
    )
    exclusive_group: str | None = None
    joint_group: str | None = None
    total_limit: int | None = None
    per_customer_limit: int | None = None
    unit_limit: int | None = None
    per_customer_unit_limit: int | None = None
    on_return: ReturnRule = ReturnRule.CLAW_BACK
    campaign_id: strawberry.ID | None = None


@strawberry.input
class CreatePromotionInput:
    promotion: PromotionInput


@strawberry.input(
    description="Replaces the promotion's whole definition (not of an ENDED one; the kind of "
    "a used one stays; no limit below its counter)."
)
class UpdatePromotionInput:
    id: strawberry.ID = strawberry.field(description="A Promotion's id.")
    promotion: PromotionInput


@strawberry.input
class PromotionIdInput:
    id: strawberry.ID = strawberry.field(description="A Promotion's id.")


@strawberry.input(description="Narrows promotions; every given field must match.")
class PromotionFilter:
    status: PromotionStatus | None = None
    kind: PromotionKind | None = None
    campaign_id: strawberry.ID | None = None
    running_at: datetime | None = strawberry.field(
        default=None, description="ACTIVE and within its window at this moment."
    )


@strawberry.enum
class PromotionSortField(Enum):
    CREATED_AT = "CREATED_AT"
    NAME = "NAME"
    PRIORITY = "PRIORITY"


@strawberry.input
class PromotionSort:
    field: PromotionSortField = PromotionSortField.CREATED_AT
    direction: SortDirection = SortDirection.DESC


_PROMOTION_SORT = {
    PromotionSortField.CREATED_AT: SortKey(PromotionRow.created_at, "created_at"),
    PromotionSortField.NAME: SortKey(PromotionRow.name, "name"),
    PromotionSortField.PRIORITY: SortKey(PromotionRow.priority, "priority"),
}


@strawberry.input(description="A campaign: a name, budgets (either, both or none) and window.")
class CampaignInput:
    name: str = strawberry.field(description=f"1 to {NAME_MAX} characters.")
    budget_amount: Decimal | None = strawberry.field(
        default=None, description="Discount spend allowed (two decimals)."
    )
    budget_uses: int | None = strawberry.field(default=None, description="Orders allowed.")
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@strawberry.input
class CreateCampaignInput:
    campaign: CampaignInput


@strawberry.input
class UpdateCampaignInput:
    id: strawberry.ID = strawberry.field(description="A Campaign's id.")
    campaign: CampaignInput


@strawberry.input
class CampaignIdInput:
    id: strawberry.ID = strawberry.field(description="A Campaign's id.")


@strawberry.input(
    description="A code of a promotion applied by code: shared (no customerId) or personal; "
    "code: 4 to 32 of A-Z, 0-9 and '-' (upper-cased; generated when left out)."
)
class CreateCouponCodeInput:
    promotion_id: strawberry.ID
    code: str | None = None
    max_uses: int | None = strawberry.field(default=None, description="Null: no own limit.")
    customer_id: strawberry.ID | None = None
    expires_at: datetime | None = None


@strawberry.input(
    description="count (1 to 10000) new unique codes, each usable maxUsesEach times; prefix: "
    "1 to 12 of A-Z, 0-9 and '-'."
)
class GenerateCouponCodesInput:
    promotion_id: strawberry.ID
    count: int
    max_uses_each: int = 1
    prefix: str | None = None


@strawberry.input(
    description="One personal single-use code for each active customer of a segment, a tag "
    "or an audience (exactly one); issuing again gives nobody a second code."
)
class IssueCouponsInput:
    promotion_id: strawberry.ID
    segment: CustomerSegment | None = None
    tag: str | None = None
    audience_id: strawberry.ID | None = None


@strawberry.input
class ClaimCouponInput:
    promotion_id: strawberry.ID


@strawberry.input
class DisableCouponCodeInput:
    id: strawberry.ID = strawberry.field(description="A CouponCode's id.")


@strawberry.input
class AcceptReferralInput:
    code: str = strawberry.field(description="The inviter's code (4 to 32 characters).")


@strawberry.input
class ReferralFilter:
    status: ReferralStatus | None = None


# --- results --------------------------------------------------------------------------------


@strawberry.type
class PromotionSuccess:
    promotion: Promotion


@strawberry.type
class CampaignSuccess:
    campaign: Campaign


@strawberry.type
class CouponCodeSuccess:
    coupon_code: CouponCode


@strawberry.type
class GenerateCouponCodesSuccess:
    generated: int
    promotion: Promotion


@strawberry.type
class IssueCouponsSuccess:
    matched: int = strawberry.field(description="Active customers of the group.")
    issued: int = strawberry.field(description="New codes issued now.")
    already: int = strawberry.field(description="Customers who held a code from before.")


@strawberry.type
class AcceptReferralSuccess:
    referral: Referral


@strawberry.type(
    description="A coupon request refused: CODE_TAKEN, NOT_A_CODE_PROMOTION (it applies "
    "automatically), NOT_CLAIMABLE, NOT_STARTED, PAUSED, ENDED, EXPIRED or LIMIT_REACHED. "
    "Nothing was written."
)
class CouponRefusal(Error):
    pass


@strawberry.type(
    description="An invite not accepted: CODE_NOT_FOUND, SELF_REFERRAL, ALREADY_REFERRED or "
    "NOT_NEW_CUSTOMER (signed up too long ago, or has a paid order)."
)
class ReferralRefusal(Error):
    pass


PromotionResult = Annotated[
    PromotionSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("PromotionResult"),
]
CampaignResult = Annotated[
    CampaignSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CampaignResult"),
]
CouponCodeResult = Annotated[
    CouponCodeSuccess | ValidationError | NotFoundError | CouponRefusal,
    strawberry.union("CouponCodeResult"),
]
GenerateCouponCodesResult = Annotated[
    GenerateCouponCodesSuccess | ValidationError | NotFoundError | CouponRefusal,
    strawberry.union("GenerateCouponCodesResult"),
]
IssueCouponsResult = Annotated[
    IssueCouponsSuccess | ValidationError | NotFoundError | CouponRefusal,
    strawberry.union("IssueCouponsResult"),
]
ClaimCouponResult = Annotated[
    CouponCodeSuccess | CouponRefusal, strawberry.union("ClaimCouponResult")
]
AcceptReferralResult = Annotated[
    AcceptReferralSuccess | ReferralRefusal, strawberry.union("AcceptReferralResult")
]

_COUPON_CODES = {
    "CODE_TAKEN",
    "NOT_A_CODE_PROMOTION",
    "NOT_CLAIMABLE",
    "NOT_STARTED",
    "PAUSED",
    "ENDED",
    "EXPIRED",
    "LIMIT_REACHED",
}


async def _coupon_mutation(info: Info, work: Any, success: Any) -> Any:
    """``mutate``, with the coupon service's own refusals as CouponRefusal."""
    result = await run_mutation(info, work)
    if isinstance(result, Error):
        if result.code in _COUPON_CODES:
            return CouponRefusal(code=result.code, message=result.message, field=result.field)
        return result
    return success(result)


def _spec(value: PromotionInput) -> admin.PromotionSpec:
    if len(value.name) > NAME_MAX:
        raise ValidationFailed(f"a name of 1 to {NAME_MAX} characters", field="name")
    if not isinstance(value.rules, dict):
        raise ValidationFailed("rules: a JSON object", field="rules")
    return admin.PromotionSpec(
        name=value.name,
        label=value.label,
        kind=value.kind,
        rules=dict(value.rules),
        trigger=value.trigger,
        starts_at=value.starts_at,
        ends_at=value.ends_at,
        product_ids=[require_node_id(v, "Product", "productIds") for v in value.product_ids],
        category_ids=[require_node_id(v, "Category", "categoryIds") for v in value.category_ids],
        variant_ids=[require_node_id(v, "ProductVariant", "variantIds") for v in value.variant_ids],
        membership_tier=value.membership_tier.value if value.membership_tier else None,
        segment=value.segment.value if value.segment else None,
        tag=value.tag,
        audience_id=optional_node_id(value.audience_id, "Audience", "audienceId"),
        new_customers_only=value.new_customers_only,
        claimable=value.claimable,
        priority=value.priority,
        combinable_with=list(value.combinable_with),
        exclusive_group=value.exclusive_group,
        joint_group=value.joint_group,
        total_limit=value.total_limit,
        per_customer_limit=value.per_customer_limit,
        unit_limit=value.unit_limit,
        per_customer_unit_limit=value.per_customer_unit_limit,
        on_return=value.on_return,
        campaign_id=optional_node_id(value.campaign_id, "Campaign", "campaignId"),
    )


def _campaign_spec(value: CampaignInput) -> admin.CampaignSpec:
    return admin.CampaignSpec(
        name=value.name,
        budget_amount=_minor(value.budget_amount, "budgetAmount"),
        budget_uses=value.budget_uses,
        starts_at=value.starts_at,
        ends_at=value.ends_at,
    )


def _promotion_success(row: PromotionRow) -> PromotionSuccess:
    return PromotionSuccess(promotion=Promotion.from_model(row))


def _campaign_success(row: CampaignRow) -> CampaignSuccess:
    return CampaignSuccess(campaign=Campaign.from_model(row))


# --- queries --------------------------------------------------------------------------------


@strawberry.type
class PromotionAdminQueries:
    @strawberry.field(
        description="Promotions, newest first unless sorted (promotions.read or "
        "promotions.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def promotions(
        self,
        info: Info,
        page: Page,
        filter: PromotionFilter | None = None,
        sort: PromotionSort | None = None,
    ) -> Connection[Promotion]:
        flt = filter or PromotionFilter()
        order = sort or PromotionSort()
        query = admin.promotions_query(
            status=flt.status,
            kind=flt.kind,
            campaign_id=filter_node_id(flt.campaign_id, "Campaign"),
            running_at=flt.running_at,
        )
        return await connection(
            info,
            query,
            page,
            sort=[_PROMOTION_SORT[order.field]],
            to_node=Promotion.from_model,
            descending=order.direction is SortDirection.DESC,
        )

    @strawberry.field(
        description="Campaigns, newest first (promotions.read or promotions.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def campaigns(
        self, info: Info, page: Page, status: PromotionStatus | None = None
    ) -> Connection[Campaign]:
        return await connection(
            info,
            admin.campaigns_query(status),
            page,
            sort=[SortKey(CampaignRow.created_at, "created_at")],
            to_node=Campaign.from_model,
            descending=True,
        )

    @strawberry.field(
        description="Coupon codes, newest first: of one promotion, or of every promotion "
        "(promotions.read or promotions.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def coupon_codes(
        self, info: Info, page: Page, promotion_id: strawberry.ID | None = None
    ) -> Connection[CouponCode]:
        return await connection(
            info,
            coupons.codes_query(promotion_id=filter_node_id(promotion_id, "Promotion")),
            page,
            sort=[SortKey(CouponCodeRow.issued_at, "issued_at")],
            to_node=CouponCode.of,
            descending=True,
        )

    @strawberry.field(
        description="The signed-in customer's personal coupon codes, newest first, with "
        "whether each is usable, used or expired.",
        permission_classes=[IsCustomer],
        extensions=[Paged()],
    )
    async def my_coupons(self, info: Info, page: Page) -> Connection[CouponCode]:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        return await connection(
            info,
            coupons.codes_query(customer_id=customer_id),
            page,
            sort=[SortKey(CouponCodeRow.issued_at, "issued_at")],
            to_node=CouponCode.of,
            descending=True,
        )

    @strawberry.field(
        description="Invites and their rewards, newest first (promotions.read or "
        "promotions.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def referrals(
        self, info: Info, page: Page, filter: ReferralFilter | None = None
    ) -> Connection[Referral]:
        return await connection(
            info,
            referrals.referrals_query(filter.status if filter else None),
            page,
            sort=[SortKey(ReferralRow.created_at, "created_at")],
            to_node=Referral.of,
            descending=True,
        )

    @strawberry.field(
        description="The signed-in customer's invite code (made on first ask): a new customer "
        "who accepts it and pays a first order earns both of you a coupon.",
        permission_classes=[IsCustomer],
    )
    async def my_referral_code(self, info: Info) -> ReferralCode:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        length = promotions_settings(info.context.plugins).code_length
        row: ReferralCodeRow = await run_write(info, referrals.referral_code, customer_id, length)
        return ReferralCode(code=row.code, created_at=row.created_at)


# --- mutations ------------------------------------------------------------------------------


def _status_mutation(target: PromotionStatus) -> Any:
    async def resolve(info: Info, input: PromotionIdInput) -> PromotionResult:
        async def work(session: AsyncSession) -> PromotionRow:
            pk = require_node_id(input.id, "Promotion", "id")
            return await admin.set_promotion_status(session, pk, target)

        return await mutate(info, work, _promotion_success)

    return resolve


def _campaign_status_mutation(target: PromotionStatus) -> Any:
    async def resolve(info: Info, input: CampaignIdInput) -> CampaignResult:
        async def work(session: AsyncSession) -> CampaignRow:
            pk = require_node_id(input.id, "Campaign", "id")
            return await admin.set_campaign_status(session, pk, target)

        return await mutate(info, work, _campaign_success)

    return resolve


@strawberry.type
class PromotionAdminMutations:
    @strawberry.mutation(
        description="Create a promotion (promotions.manage).", permission_classes=[_MANAGERS]
    )
    async def create_promotion(self, info: Info, input: CreatePromotionInput) -> PromotionResult:
        async def work(session: AsyncSession) -> PromotionRow:
            return await admin.create_promotion(
                session, _spec(input.promotion), info.context.viewer.subject
            )

        return await mutate(info, work, _promotion_success)

    @strawberry.mutation(
        description="Replace a promotion's definition (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    async def update_promotion(self, info: Info, input: UpdatePromotionInput) -> PromotionResult:
        async def work(session: AsyncSession) -> PromotionRow:
            pk = require_node_id(input.id, "Promotion", "id")
            return await admin.update_promotion(
                session, pk, _spec(input.promotion), info.context.viewer.subject
            )

        return await mutate(info, work, _promotion_success)

    pause_promotion: PromotionResult = strawberry.mutation(
        resolver=_status_mutation(PromotionStatus.PAUSED),
        description="Pause an ACTIVE promotion (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    resume_promotion: PromotionResult = strawberry.mutation(
        resolver=_status_mutation(PromotionStatus.ACTIVE),
        description="Resume a PAUSED promotion (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    end_promotion: PromotionResult = strawberry.mutation(
        resolver=_status_mutation(PromotionStatus.ENDED),
        description="End a promotion for good (promotions.manage).",
        permission_classes=[_MANAGERS],
    )

    @strawberry.mutation(
        description="Create a campaign (promotions.manage).", permission_classes=[_MANAGERS]
    )
    async def create_campaign(self, info: Info, input: CreateCampaignInput) -> CampaignResult:
        async def work(session: AsyncSession) -> CampaignRow:
            return await admin.create_campaign(
                session, _campaign_spec(input.campaign), info.context.viewer.subject
            )

        return await mutate(info, work, _campaign_success)

    @strawberry.mutation(
        description="Replace a campaign's name, budgets and window; a budget raised above its "
        "spend starts its promotions again (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    async def update_campaign(self, info: Info, input: UpdateCampaignInput) -> CampaignResult:
        async def work(session: AsyncSession) -> CampaignRow:
            pk = require_node_id(input.id, "Campaign", "id")
            return await admin.update_campaign(
                session, pk, _campaign_spec(input.campaign), info.context.viewer.subject
            )

        return await mutate(info, work, _campaign_success)

    pause_campaign: CampaignResult = strawberry.mutation(
        resolver=_campaign_status_mutation(PromotionStatus.PAUSED),
        description="Pause an ACTIVE campaign: its promotions stop (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    end_campaign: CampaignResult = strawberry.mutation(
        resolver=_campaign_status_mutation(PromotionStatus.ENDED),
        description="End a campaign for good (promotions.manage).",
        permission_classes=[_MANAGERS],
    )

    @strawberry.mutation(
        description="Create one coupon code (promotions.manage).", permission_classes=[_MANAGERS]
    )
    async def create_coupon_code(
        self, info: Info, input: CreateCouponCodeInput
    ) -> CouponCodeResult:
        length = promotions_settings(info.context.plugins).code_length

        async def work(session: AsyncSession) -> CouponCodeRow:
            return await coupons.create_code(
                session,
                promotion_id=require_node_id(input.promotion_id, "Promotion", "promotionId"),
                code=input.code,
                max_uses=input.max_uses,
                customer_id=optional_node_id(input.customer_id, "Customer", "customerId"),
                expires_at=input.expires_at,
                code_length=length,
            )

        return await _coupon_mutation(
            info, work, lambda row: CouponCodeSuccess(coupon_code=CouponCode.of(row))
        )

    @strawberry.mutation(
        description="Generate a batch of unique codes (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    async def generate_coupon_codes(
        self, info: Info, input: GenerateCouponCodesInput
    ) -> GenerateCouponCodesResult:
        length = promotions_settings(info.context.plugins).code_length

        async def work(session: AsyncSession) -> tuple[int, PromotionRow]:
            pk = require_node_id(input.promotion_id, "Promotion", "promotionId")
            made = await coupons.generate_codes(
                session,
                promotion_id=pk,
                count=input.count,
                max_uses_each=input.max_uses_each,
                prefix=input.prefix,
                code_length=length,
            )
            row = await session.get(PromotionRow, pk)
            assert row is not None
            return made, row

        return await _coupon_mutation(
            info,
            work,
            lambda done: GenerateCouponCodesSuccess(
                generated=done[0], promotion=Promotion.from_model(done[1])
            ),
        )

    @strawberry.mutation(
        description="Issue a personal code to every customer of a segment, a tag or an "
        "audience (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    async def issue_coupons(self, info: Info, input: IssueCouponsInput) -> IssueCouponsResult:
        length = promotions_settings(info.context.plugins).code_length

        async def work(session: AsyncSession) -> coupons.Issued:
            return await coupons.issue_coupons(
                session,
                promotion_id=require_node_id(input.promotion_id, "Promotion", "promotionId"),
                segment=input.segment.value if input.segment else None,
                tag=input.tag,
                audience_id=optional_node_id(input.audience_id, "Audience", "audienceId"),
                code_length=length,
            )

        return await _coupon_mutation(
            info,
            work,
            lambda done: IssueCouponsSuccess(
                matched=done.matched, issued=done.issued, already=done.already
            ),
        )

    @strawberry.mutation(
        description="Disable a coupon code: it applies no more (promotions.manage).",
        permission_classes=[_MANAGERS],
    )
    async def disable_coupon_code(
        self, info: Info, input: DisableCouponCodeInput
    ) -> CouponCodeResult:
        async def work(session: AsyncSession) -> CouponCodeRow:
            return await coupons.disable_code(
                session, require_node_id(input.id, "CouponCode", "id")
            )

        return await _coupon_mutation(
            info, work, lambda row: CouponCodeSuccess(coupon_code=CouponCode.of(row))
        )

    @strawberry.mutation(
        description="Claim a coupon of a claimable promotion: one personal code per customer "
        "(claiming again answers the same code).",
        permission_classes=[IsCustomer],
    )
    async def claim_coupon(self, info: Info, input: ClaimCouponInput) -> ClaimCouponResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        length = promotions_settings(info.context.plugins).code_length

        async def work(session: AsyncSession) -> CouponCodeRow:
            pk = filter_node_id(input.promotion_id, "Promotion") or 0
            return await coupons.claim_coupon(
                session, promotion_id=pk, customer_id=customer_id, code_length=length
            )

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return CouponRefusal(code=result.code, message=result.message, field=result.field)
        return CouponCodeSuccess(coupon_code=CouponCode.of(result))

    @strawberry.mutation(
        description="Accept an invite: within the shop's days of signing up, before a first "
        "paid order; both of you get a coupon once your first order is paid.",
        permission_classes=[IsCustomer],
    )
    async def accept_referral(self, info: Info, input: AcceptReferralInput) -> AcceptReferralResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        days = promotions_settings(info.context.plugins).referral_accept_days

        async def work(session: AsyncSession) -> ReferralRow:
            return await referrals.accept_referral(
                session, customer_id=customer_id, code=input.code, accept_days=days
            )

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return ReferralRefusal(code=result.code, message=result.message, field=result.field)
        return AcceptReferralSuccess(referral=Referral.of(result))


TYPES: list[type[Any]] = [Promotion, Campaign]
QUERIES: list[type[Any]] = [PromotionAdminQueries]
MUTATIONS: list[type[Any]] = [PromotionAdminMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {}
