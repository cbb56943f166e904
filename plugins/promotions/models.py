"""The promotions plugin's tables (prefix ``promotions_``).

A promotion is one row whatever its kind; what the kind needs (tiers, gifts, a bundle's items,
a group's size) is its ``rules`` document, checked by ``service.kinds`` when it is written.
Limited things (uses, units, budgets, seats) are counters raised by conditional UPDATEs inside
the order's transaction and lowered when the order is cancelled. Money is integer minor units.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field

NAME_MAX = 120
CODE_MAX = 32
ACTOR_MAX = 120
GROUP_NAME_MAX = 64


class PromotionKind(StrEnum):
    """What a promotion does (docs/plugins/promotions.md, "Kinds")."""

    FLASH_SALE = "FLASH_SALE"  # 限时特惠: a window, a product set, a price or a share off
    SPEND_SAVE = "SPEND_SAVE"  # 满减: spend ≥ X save Y, tiers or "per every X"
    SPEND_GIFT = "SPEND_GIFT"  # 满赠: a gift at zero price from a threshold
    BUY_X_GET_Y = "BUY_X_GET_Y"
    COUPON = "COUPON"  # 优惠券: by code; a share or an amount off, targets, minimum spend
    MEMBER_DEAL = "MEMBER_DEAL"  # 会员专享: a price or a share off for a membership tier
    BUNDLE = "BUNDLE"  # 套餐: a set of products at a bundle price
    GROUP_BUY = "GROUP_BUY"  # 拼团: a group price when N join within T hours
    FREE_SHIPPING = "FREE_SHIPPING"  # shipping off from a threshold


class PromotionClass(StrEnum):
    """What a promotion takes its discount off: unit prices (PRODUCT), the order (ORDER) or
    the shipping (SHIPPING). Stacking rules are stated between classes."""

    PRODUCT = "PRODUCT"
    ORDER = "ORDER"
    SHIPPING = "SHIPPING"


class Trigger(StrEnum):
    """AUTOMATIC applies to whoever qualifies; CODE needs a coupon code on the cart."""

    AUTOMATIC = "AUTOMATIC"
    CODE = "CODE"


class PromotionStatus(StrEnum):
    """What staff set. Whether it runs now also depends on its window and its campaign."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


class ReturnRule(StrEnum):
    """What a return that drops an order under the promotion's threshold does: KEEP the
    discount on the lines kept, or CLAW_BACK (the refund is reduced by the discount the
    remaining lines no longer earn)."""

    KEEP = "KEEP"
    CLAW_BACK = "CLAW_BACK"


class Campaign(SQLModel, table=True):
    """Promotions grouped under a budget: discount spend (``budget_amount``) and/or uses
    (``budget_uses``). ``spent_amount``/``used_count`` are reserved at checkout with a
    conditional UPDATE and given back on cancel; a spent campaign stops its promotions."""

    __tablename__ = "promotions_campaign"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    currency: str = Field(default="CNY", sa_column=Column(String(3), nullable=False))
    budget_amount: int | None = None
    budget_uses: int | None = None
    spent_amount: int = 0
    used_count: int = 0
    starts_at: datetime | None = datetime_field()
    ends_at: datetime | None = datetime_field()
    status: PromotionStatus = enum_field(PromotionStatus, PromotionStatus.ACTIVE)
    # Set by the budget job when the budget is spent (the promotions stop applying).
    exhausted_at: datetime | None = datetime_field()
    created_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    created_at: datetime = created_at_field()


class Promotion(SQLModel, table=True):
    """A promotion of any kind. Who: everyone, or a membership tier / RFM segment / tag /
    audience (at most one). What: ``product_ids`` / ``category_ids`` / ``variant_ids`` (all
    empty: the whole catalogue). Stacking: ``promotion_class``, ``priority`` (higher first on
    ties), ``combinable_with`` (the other classes it may stack with), ``exclusive_group`` (at
    most one promotion of the group applies) and ``joint_group`` (promotions of one joint group
    may stack within a class). Limits: uses in total and per customer, units in total and per
    customer; counters are raised at checkout and lowered on cancel."""

    __tablename__ = "promotions_promotion"
    __table_args__ = (Index("ix_promotions_promotion_status", "status", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    # What shoppers read ("spend ¥300 save ¥40"); defaults to the name.
    label: str = Field(default="", sa_column=Column(String(NAME_MAX), nullable=False))
    kind: PromotionKind = enum_field(PromotionKind, PromotionKind.COUPON)
    promotion_class: PromotionClass = enum_field(PromotionClass, PromotionClass.ORDER)
    trigger: Trigger = enum_field(Trigger, Trigger.AUTOMATIC)
    status: PromotionStatus = enum_field(PromotionStatus, PromotionStatus.ACTIVE)
    campaign_id: int | None = Field(default=None, foreign_key="promotions_campaign.id", index=True)
    currency: str = Field(default="CNY", sa_column=Column(String(3), nullable=False))
    starts_at: datetime | None = datetime_field()
    ends_at: datetime | None = datetime_field()
    # The kind's parameters, checked by service.kinds (e.g. {"tiers": [{"threshold": 30000,
    # "amount_off": 4000}]}, {"percent_off_bp": 2000}, {"fixed_price": 9900}).
    rules: dict[str, Any] = json_field(dict)
    # Targets (ids); all empty: every product.
    product_ids: list[int] = json_field(list)
    category_ids: list[int] = json_field(list)
    variant_ids: list[int] = json_field(list)
    # Who: at most one (none: every shopper; a CODE promotion: whoever holds a code).
    membership_tier: str | None = Field(default=None, sa_column=Column(String(16)))
    segment: str | None = Field(default=None, sa_column=Column(String(32)))
    tag: str | None = Field(default=None, sa_column=Column(String(64)))
    audience_id: int | None = Field(default=None, foreign_key="audience.id")
    new_customers_only: bool = False
    # A CODE promotion whose codes customers claim for themselves (``claimCoupon``).
    claimable: bool = False
    # Stacking.
    priority: int = 0
    combinable_with: list[str] = json_field(list)
    exclusive_group: str | None = Field(default=None, sa_column=Column(String(GROUP_NAME_MAX)))
    joint_group: str | None = Field(default=None, sa_column=Column(String(GROUP_NAME_MAX)))
    # Limits (None: none) and their counters.
    total_limit: int | None = None
    per_customer_limit: int | None = None
    unit_limit: int | None = None
    per_customer_unit_limit: int | None = None
    used_count: int = 0
    units_sold: int = 0
    on_return: ReturnRule = enum_field(ReturnRule, ReturnRule.CLAW_BACK)
    created_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class PromotionsVersion(SQLModel, table=True):
    """One row (id 1) whose ``value`` database triggers renew (a value never seen before)
    whenever a promotion or a
    campaign is inserted, deleted or changed other than in its counters (``used_count``,
    ``units_sold``; a campaign's ``spent_amount``, ``used_count``): every writer, whatever
    code or process it is, moves it in its own transaction. The engine keeps the parsed
    running promotions per process under this value and reads it (one small row) per
    request, so a change made anywhere is seen by the next request everywhere; the counters,
    which every checkout moves, are read fresh instead."""

    __tablename__ = "promotions_version"

    id: int = Field(default=1, primary_key=True)
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class CustomerUse(SQLModel, table=True):
    """A customer's uses and units of a promotion: the per-customer limits' counters (one row
    per pair, inserted if missing, then raised with a conditional UPDATE)."""

    __tablename__ = "promotions_customer_use"
    __table_args__ = (
        UniqueConstraint("promotion_id", "customer_id", name="uq_promotions_customer_use"),
    )

    id: int | None = Field(default=None, primary_key=True)
    promotion_id: int = Field(foreign_key="promotions_promotion.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    uses: int = 0
    units: int = 0


class CouponCode(SQLModel, table=True):
    """One code of a COUPON promotion: a shared code (``customer_id`` None, ``max_uses``
    bounding it) or a unique code issued to one customer (a batch, a claim, a compensation).
    ``code`` is stored upper-case; ``source_ref`` makes issuing idempotent (one compensation
    coupon per complaint or shipment: ``complaint:12``)."""

    __tablename__ = "promotions_coupon_code"

    id: int | None = Field(default=None, primary_key=True)
    promotion_id: int = Field(foreign_key="promotions_promotion.id", index=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    max_uses: int | None = None
    used_count: int = 0
    # A code's own validity (None: the promotion's window).
    expires_at: datetime | None = datetime_field()
    # Why it exists: SHARED, BATCH, CLAIMED, SEGMENT, COMPENSATION, REFERRAL, PROTECTION.
    issued_reason: str = Field(default="SHARED", sa_column=Column(String(32), nullable=False))
    source_ref: str | None = Field(
        default=None, sa_column=Column(String(120), nullable=True, unique=True)
    )
    # A compensation or protection coupon's value, when it differs from the promotion's.
    amount_off: int | None = None
    disabled: bool = False
    issued_at: datetime = created_at_field()


class CartCode(SQLModel, table=True):
    """A coupon code a shopper applied to a cart (``applyCoupon``); checked at every quote."""

    __tablename__ = "promotions_cart_code"
    __table_args__ = (UniqueConstraint("cart_id", "code_id", name="uq_promotions_cart_code"),)

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", index=True)
    code_id: int = Field(foreign_key="promotions_coupon_code.id")
    created_at: datetime = created_at_field()


class RedemptionStatus(StrEnum):
    RESERVED = "RESERVED"
    RELEASED = "RELEASED"


class Redemption(SQLModel, table=True):
    """A promotion applied to an order: what it reserved (a use, ``units``, ``amount`` of the
    campaign budget, a code's use), given back when the order is cancelled (RELEASED)."""

    __tablename__ = "promotions_redemption"
    __table_args__ = (
        UniqueConstraint("order_id", "promotion_id", name="uq_promotions_redemption"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    promotion_id: int = Field(foreign_key="promotions_promotion.id", index=True)
    code_id: int | None = Field(default=None, foreign_key="promotions_coupon_code.id")
    campaign_id: int | None = Field(default=None, foreign_key="promotions_campaign.id")
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    units: int = 0
    # The discount it gave (positive, minor units): product, order and shipping parts summed.
    amount: int = 0
    status: RedemptionStatus = enum_field(RedemptionStatus, RedemptionStatus.RESERVED)
    created_at: datetime = created_at_field()
    released_at: datetime | None = datetime_field()


class LedgerEntry(SQLModel, table=True):
    """The discount ledger, frozen when the order is placed: each promotion's discount on each
    order line (a shipping discount has no line). A partial refund takes back each returned
    line's share (``refunded_amount``)."""

    __tablename__ = "promotions_ledger"
    __table_args__ = (
        UniqueConstraint(
            "order_id", "order_line_id", "promotion_id", name="uq_promotions_ledger_line"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    order_line_id: int | None = Field(default=None, foreign_key="order_line.id")
    promotion_id: int = Field(foreign_key="promotions_promotion.id", index=True)
    promotion_class: PromotionClass = enum_field(PromotionClass, PromotionClass.ORDER)
    # Positive, minor units: what this promotion took off this line (all its units).
    amount: int = 0
    refunded_amount: int = 0
    created_at: datetime = created_at_field()


class LineRefund(SQLModel, table=True):
    """A partial refund of returned units, as the ledger computed it: the units' price less
    their discount shares, less a threshold claw-back; ``payment_refund_id`` is the core's."""

    __tablename__ = "promotions_line_refund"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    # {order_line_id: units} returned.
    lines: dict[str, int] = json_field(dict)
    gross_amount: int = 0
    discount_taken_back: int = 0
    clawback_amount: int = 0
    amount: int = 0
    reason: str = Field(default="", sa_column=Column(String(500), nullable=False))
    actor: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    created_at: datetime = created_at_field()


class GroupStatus(StrEnum):
    OPEN = "OPEN"
    SUCCEEDED = "SUCCEEDED"
    EXPIRED = "EXPIRED"


class BuyGroup(SQLModel, table=True):
    """A group buy (拼团) someone opened: ``size`` members within ``expires_at``; seats are
    taken with a conditional UPDATE on ``members``. SUCCEEDED releases its orders' hold;
    EXPIRED cancels them (stock and payments given back)."""

    __tablename__ = "promotions_group"
    __table_args__ = (Index("ix_promotions_group_status", "status", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    promotion_id: int = Field(foreign_key="promotions_promotion.id", index=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    leader_customer_id: int = Field(foreign_key="customer.id")
    size: int = 2
    members: int = 0
    status: GroupStatus = enum_field(GroupStatus, GroupStatus.OPEN)
    expires_at: datetime = datetime_field(nullable=False)
    created_at: datetime = created_at_field()
    decided_at: datetime | None = datetime_field()


class GroupMember(SQLModel, table=True):
    """A member's order in a group (one per customer per group)."""

    __tablename__ = "promotions_group_member"
    __table_args__ = (
        UniqueConstraint("group_id", "customer_id", name="uq_promotions_group_member"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="promotions_group.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    order_id: int = Field(foreign_key="order.id", unique=True)
    created_at: datetime = created_at_field()


class CartGroupChoice(SQLModel, table=True):
    """A cart's group-buy choice: open a new group of ``promotion_id``, or join ``group_id``."""

    __tablename__ = "promotions_cart_group"

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", unique=True)
    promotion_id: int = Field(foreign_key="promotions_promotion.id")
    group_id: int | None = Field(default=None, foreign_key="promotions_group.id")
    created_at: datetime = created_at_field()


class ReferralCode(SQLModel, table=True):
    """A customer's invite code (one each)."""

    __tablename__ = "promotions_referral_code"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", unique=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    created_at: datetime = created_at_field()


class ReferralStatus(StrEnum):
    PENDING = "PENDING"
    REWARDED = "REWARDED"


class Referral(SQLModel, table=True):
    """A new customer who came by an invite: rewarded once (unique invitee), after their
    first paid order, with a coupon for each side."""

    __tablename__ = "promotions_referral"

    id: int | None = Field(default=None, primary_key=True)
    inviter_customer_id: int = Field(foreign_key="customer.id", index=True)
    invitee_customer_id: int = Field(foreign_key="customer.id", unique=True)
    status: ReferralStatus = enum_field(ReferralStatus, ReferralStatus.PENDING)
    rewarded_order_id: int | None = Field(default=None, foreign_key="order.id")
    created_at: datetime = created_at_field()
    rewarded_at: datetime | None = datetime_field()
