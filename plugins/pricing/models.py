"""The pricing plugin's tables (prefix ``pricing_``).

Rules and limits are what operators manage; the price history is append-only; suggestions,
competitor prices and alerts are staff-only. Money is integer minor units throughout.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field

NAME_MAX = 120
ACTOR_MAX = 120
REASON_MAX = 500


class RuleKind(StrEnum):
    """Where a rule sits in the price pipeline (docs/plugins/pricing.md, "The pipeline"):
    GROUP (a price list for everyone, a member tier, a segment, a tag or an audience), then
    QUANTITY (a break from ``min_quantity`` units), then SCHEDULED (a price for a window)."""

    GROUP = "GROUP"
    QUANTITY = "QUANTITY"
    SCHEDULED = "SCHEDULED"


class PricingRule(SQLModel, table=True):
    """A price rule: who it is for (nobody named = everyone), what it covers (a variant, a
    product or a category; exactly one), when (``starts_at``/``ends_at``, open when None),
    and its effect: a fixed unit price (``amount``) or a share off (``percent_off_bp``,
    basis points), exactly one. A rule never raises a price."""

    __tablename__ = "pricing_rule"
    __table_args__ = (
        Index("ix_pricing_rule_product", "product_id"),
        Index("ix_pricing_rule_category", "category_id"),
        Index("ix_pricing_rule_variant", "variant_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    kind: RuleKind = enum_field(RuleKind, RuleKind.GROUP)
    # Target: exactly one of these.
    variant_id: int | None = Field(default=None, foreign_key="product_variant.id")
    product_id: int | None = Field(default=None, foreign_key="product.id")
    category_id: int | None = Field(default=None, foreign_key="category.id")
    # Who: at most one of these (none: every shopper, anonymous ones included).
    membership_tier: str | None = Field(default=None, sa_column=Column(String(16)))
    segment: str | None = Field(default=None, sa_column=Column(String(32)))
    tag: str | None = Field(default=None, sa_column=Column(String(64)))
    audience_id: int | None = Field(default=None, foreign_key="audience.id")
    min_quantity: int = 1
    amount: int | None = None
    percent_off_bp: int | None = None
    starts_at: datetime | None = datetime_field()
    ends_at: datetime | None = datetime_field()
    active: bool = True
    created_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class PricingLimit(SQLModel, table=True):
    """Guardrails on a variant, a product or a category (exactly one): a floor and a ceiling
    on the final unit price, a minimum gross margin over cost (``min_margin_bp``: the price is
    at least cost / (1 - margin)), and a minimum advertised price (``map_amount``)."""

    __tablename__ = "pricing_limit"

    # One limit row per target (a unique column allows many NULLs).
    id: int | None = Field(default=None, primary_key=True)
    variant_id: int | None = Field(default=None, foreign_key="product_variant.id", unique=True)
    product_id: int | None = Field(default=None, foreign_key="product.id", unique=True)
    category_id: int | None = Field(default=None, foreign_key="category.id", unique=True)
    floor_amount: int | None = None
    ceiling_amount: int | None = None
    min_margin_bp: int | None = None
    map_amount: int | None = None
    updated_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    updated_at: datetime = created_at_field()


class PriceSource(StrEnum):
    """What changed a public price (a price history row)."""

    CATALOGUE = "CATALOGUE"  # the catalogue price was changed
    RULE = "RULE"  # a rule for everyone was added, changed or removed
    SCHEDULE = "SCHEDULE"  # a scheduled price started or ended
    DYNAMIC = "DYNAMIC"  # a dynamic-pricing suggestion was applied


class PriceHistory(SQLModel, table=True):
    """Append-only: a product's public unit price (its "from" price as an anonymous shopper
    pays it for one unit, before promotions) from ``effective_at`` on, who changed it and
    why."""

    __tablename__ = "pricing_price_history"
    __table_args__ = (
        Index("ix_pricing_price_history_product_at", "product_id", "effective_at"),
        # One row per change: two processes seeing the same scheduled boundary write one.
        UniqueConstraint("product_id", "effective_at", "source", name="uq_pricing_history_change"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id")
    amount: int
    previous_amount: int | None = None
    currency: str = "CNY"
    source: PriceSource = enum_field(PriceSource, PriceSource.CATALOGUE)
    rule_id: int | None = None
    actor: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    reason: str = Field(default="", sa_column=Column(String(REASON_MAX), nullable=False))
    effective_at: datetime = datetime_field(nullable=False)
    recorded_at: datetime = created_at_field()


class DynamicPrice(SQLModel, table=True):
    """The price dynamic pricing set for a product (an applied suggestion): the first step of
    the pipeline, for everyone, in place of the catalogue price."""

    __tablename__ = "pricing_dynamic_price"

    product_id: int = Field(foreign_key="product.id", primary_key=True)
    amount: int
    suggestion_id: int | None = Field(default=None, foreign_key="pricing_suggestion.id")
    applied_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    applied_at: datetime = created_at_field()


class DynamicMode(StrEnum):
    SUGGEST = "SUGGEST"  # suggestions wait for an operator
    AUTO = "AUTO"  # applied at once when within the rule's tighter bounds


class DynamicRule(SQLModel, table=True):
    """Dynamic pricing switched on for a product or a category (exactly one)."""

    __tablename__ = "pricing_dynamic_rule"

    id: int | None = Field(default=None, primary_key=True)
    product_id: int | None = Field(default=None, foreign_key="product.id", unique=True)
    category_id: int | None = Field(default=None, foreign_key="category.id", unique=True)
    mode: DynamicMode = enum_field(DynamicMode, DynamicMode.SUGGEST)
    # AUTO applies a suggestion only when it moves the price by at most this share.
    auto_max_change_bp: int = 500
    active: bool = True
    updated_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    updated_at: datetime = created_at_field()


class SuggestionStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"  # approved and applied
    REJECTED = "REJECTED"
    AUTO_APPLIED = "AUTO_APPLIED"
    SUPERSEDED = "SUPERSEDED"  # a newer suggestion for the product replaced it


class PriceSuggestion(SQLModel, table=True):
    """A suggested price for a product, with the factors that drove it and what it is expected
    to change (per day, at the forecast rate)."""

    __tablename__ = "pricing_suggestion"
    __table_args__ = (
        # At most one PENDING suggestion per product: ``pending`` is 1 while pending, NULL
        # after (NULLs never clash in a unique index, on SQLite and PostgreSQL alike).
        UniqueConstraint("product_id", "pending", name="uq_pricing_suggestion_pending"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    current_amount: int
    suggested_amount: int
    currency: str = "CNY"
    factors: list[dict[str, Any]] = json_field(list)
    elasticity: float | None = None
    expected_units_change: float = 0.0
    expected_profit_change: int = 0
    status: SuggestionStatus = enum_field(SuggestionStatus, SuggestionStatus.PENDING, index=True)
    pending: int | None = 1
    created_at: datetime = created_at_field()
    decided_at: datetime | None = datetime_field()
    decided_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    note: str = Field(default="", sa_column=Column(String(REASON_MAX), nullable=False))


class ClaimMethod(StrEnum):
    REFUND = "REFUND"
    COUPON = "COUPON"


class ProtectionClaim(SQLModel, table=True):
    """A price-protection (价格保护) credit: the difference between what a customer paid for an
    order line and its lower price since, times the quantity. Once per order line."""

    __tablename__ = "pricing_protection_claim"

    id: int | None = Field(default=None, primary_key=True)
    order_line_id: int = Field(foreign_key="order_line.id", unique=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    product_id: int = Field(foreign_key="product.id")
    paid_unit_amount: int
    current_unit_amount: int
    quantity: int
    amount: int
    currency: str = "CNY"
    method: ClaimMethod = enum_field(ClaimMethod, ClaimMethod.REFUND)
    # The refund's or the coupon's reference.
    reference: str = Field(default="", sa_column=Column(String(120), nullable=False))
    automatic: bool = False
    created_at: datetime = created_at_field()


class Competitor(SQLModel, table=True):
    __tablename__ = "pricing_competitor"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False, unique=True))
    created_at: datetime = created_at_field()


class ObservationSource(StrEnum):
    API = "API"  # the recordCompetitorPrices mutation
    CSV = "CSV"  # `shopgraph pricing import-competitors`
    WEBHOOK = "WEBHOOK"  # the signed webhook


class CompetitorPrice(SQLModel, table=True):
    """A competitor's price for one of our variants, seen at ``observed_at``. The same sighting
    imported twice (concurrently too) is one row."""

    __tablename__ = "pricing_competitor_price"
    __table_args__ = (
        UniqueConstraint(
            "competitor_id", "variant_id", "observed_at", name="uq_pricing_competitor_sighting"
        ),
        Index("ix_pricing_competitor_price_product", "product_id", "observed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    competitor_id: int = Field(foreign_key="pricing_competitor.id")
    product_id: int = Field(foreign_key="product.id")
    variant_id: int = Field(foreign_key="product_variant.id")
    amount: int
    currency: str = "CNY"
    observed_at: datetime = datetime_field(nullable=False)
    source: ObservationSource = enum_field(ObservationSource, ObservationSource.API)
    recorded_at: datetime = created_at_field()


class PriceAlertKind(StrEnum):
    UNDERCUT = "UNDERCUT"  # a competitor is cheaper than us by more than the set share
    ABNORMAL_MOVE = "ABNORMAL_MOVE"  # a competitor's price moved far from its usual (robust z)


class PriceAlertState(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ACTED = "ACTED"


class PriceAlert(SQLModel, table=True):
    """A competitor alert. At most one OPEN alert of a kind per competitor and variant: ``open``
    is 1 while OPEN and NULL after, so a continuing undercut does not fire again until the
    first alert is dealt with, and concurrent imports raise it once."""

    __tablename__ = "pricing_alert"
    __table_args__ = (
        UniqueConstraint("competitor_id", "variant_id", "kind", "open", name="uq_pricing_alert"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: PriceAlertKind = enum_field(PriceAlertKind, PriceAlertKind.UNDERCUT)
    competitor_id: int = Field(foreign_key="pricing_competitor.id")
    product_id: int = Field(foreign_key="product.id", index=True)
    variant_id: int = Field(foreign_key="product_variant.id")
    observation_id: int = Field(foreign_key="pricing_competitor_price.id")
    our_amount: int
    their_amount: int
    detail: str = Field(default="", sa_column=Column(String(REASON_MAX), nullable=False))
    state: PriceAlertState = enum_field(PriceAlertState, PriceAlertState.OPEN, index=True)
    open: int | None = 1
    created_at: datetime = created_at_field()
    handled_by: str = Field(default="", sa_column=Column(String(ACTOR_MAX), nullable=False))
    handled_at: datetime | None = datetime_field()
    note: str = Field(default="", sa_column=Column(String(REASON_MAX), nullable=False))


class JobMark(SQLModel, table=True):
    """How far a pricing job got (one row per job, ``name``): the scheduled boundaries the
    history job covered up to ``mark_at``, the history rows the protection job read up to
    ``mark_id``. Updated in the transaction of the job's work, so a run that fails leaves the
    mark where it was."""

    __tablename__ = "pricing_job_mark"

    name: str = Field(sa_column=Column(String(40), primary_key=True))
    mark_at: datetime | None = datetime_field()
    mark_id: int | None = None
    updated_at: datetime = created_at_field()
