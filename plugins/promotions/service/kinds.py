"""Each promotion kind's parameters (``Promotion.rules``), as pydantic models: checked when a
promotion is written, read back typed by the engine. Amounts are minor units; shares are
basis points (10000 = all of it)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plugins.promotions.models import PromotionClass, PromotionKind
from server.plugin import ValidationFailed

Amount = Annotated[int, Field(ge=1, le=10**11)]
Share = Annotated[int, Field(ge=1, le=10000)]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceEffect(_Rules):
    """A unit price effect: a share off, or a fixed unit price (exactly one)."""

    percent_off_bp: Share | None = None
    fixed_price: Annotated[int, Field(ge=0, le=10**11)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.percent_off_bp is None) == (self.fixed_price is None):
            raise ValueError("give exactly one of percent_off_bp and fixed_price")
        return self


class FlashSaleRules(PriceEffect):
    """FLASH_SALE (PRODUCT): the effect on each targeted unit within the window; units are
    capped by the promotion's ``unit_limit`` and ``per_customer_unit_limit``."""


class MemberDealRules(PriceEffect):
    """MEMBER_DEAL (PRODUCT): the effect for the promotion's ``membership_tier``."""


class SpendTier(_Rules):
    threshold: Amount
    amount_off: Amount | None = None
    percent_off_bp: Share | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.amount_off is None) == (self.percent_off_bp is None):
            raise ValueError("a tier gives exactly one of amount_off and percent_off_bp")
        if self.amount_off is not None and self.amount_off > self.threshold:
            raise ValueError("a tier cannot take off more than its threshold")
        return self


class SpendEvery(_Rules):
    """ "Per every X": ``amount_off`` for each full ``every`` spent, ``max_times`` at most."""

    every: Amount
    amount_off: Amount
    max_times: Annotated[int, Field(ge=1, le=1000)] | None = None


class SpendSaveRules(_Rules):
    """SPEND_SAVE (ORDER, 满减): tiers (only the highest reached applies) or "per every X"
    (exactly one), on the subtotal of the targeted lines."""

    tiers: list[SpendTier] = Field(default_factory=list, max_length=10)
    per_every: SpendEvery | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if bool(self.tiers) == (self.per_every is not None):
            raise ValueError("give tiers or per_every, exactly one")
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tier thresholds must rise")
        return self


class GiftTier(_Rules):
    threshold: Amount
    variant_id: int
    quantity: Annotated[int, Field(ge=1, le=100)] = 1


class SpendGiftRules(_Rules):
    """SPEND_GIFT (ORDER, 满赠): a gift at each threshold reached (``cumulative``: every
    reached tier's gift; otherwise the highest reached only), while its stock lasts."""

    tiers: list[GiftTier] = Field(min_length=1, max_length=10)
    cumulative: bool = True

    @model_validator(mode="after")
    def _rising(self) -> Self:
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tier thresholds must rise")
        return self


class BuyXGetYRules(_Rules):
    """BUY_X_GET_Y (ORDER): for each ``buy_quantity`` targeted units bought, ``get_quantity``
    units at ``percent_off_bp`` off (10000: free): the cheapest targeted units, or
    ``get_variant_id`` (added to the cart as a gift when it is not there). Repeats per multiple,
    ``max_applications`` at most."""

    buy_quantity: Annotated[int, Field(ge=1, le=100)]
    get_quantity: Annotated[int, Field(ge=1, le=100)]
    percent_off_bp: Share = 10000
    get_variant_id: int | None = None
    max_applications: Annotated[int, Field(ge=1, le=1000)] | None = None


class CouponRules(_Rules):
    """COUPON (优惠券): a share or an amount off the targeted lines (ORDER), or the shipping
    (``free_shipping``: SHIPPING); ``min_spend`` on the targeted subtotal; ``max_discount``
    caps a share off. A code may carry its own ``amount_off`` (a compensation coupon)."""

    percent_off_bp: Share | None = None
    amount_off: Amount | None = None
    free_shipping: bool = False
    min_spend: Annotated[int, Field(ge=0, le=10**11)] = 0
    max_discount: Amount | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = sum(
            [self.percent_off_bp is not None, self.amount_off is not None, self.free_shipping]
        )
        if given != 1:
            raise ValueError("give exactly one of percent_off_bp, amount_off and free_shipping")
        return self


class BundleItem(_Rules):
    product_id: int | None = None
    variant_id: int | None = None
    quantity: Annotated[int, Field(ge=1, le=100)] = 1

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.product_id is None) == (self.variant_id is None):
            raise ValueError("a bundle item names a product_id or a variant_id, exactly one")
        return self


class BundleRules(_Rules):
    """BUNDLE (ORDER, 套餐): each complete set of ``items`` in the cart costs ``price``
    (the discount is the set's price at the lines' unit prices less ``price``), at most
    ``max_applications`` sets."""

    items: list[BundleItem] = Field(min_length=2, max_length=20)
    price: Amount
    max_applications: Annotated[int, Field(ge=1, le=1000)] | None = None


class GroupBuyRules(PriceEffect):
    """GROUP_BUY (ORDER, 拼团): the effect on the targeted units of a member's order; the
    group succeeds with ``size`` members within ``hours`` of opening."""

    size: Annotated[int, Field(ge=2, le=100)] = 2
    hours: Annotated[int, Field(ge=1, le=24 * 14)] = 24


class FreeShippingRules(_Rules):
    """FREE_SHIPPING (SHIPPING): shipping off from ``min_spend`` (all of it, or at most
    ``max_discount``), for the quotes in ``quote_codes`` (empty: every quote)."""

    min_spend: Annotated[int, Field(ge=0, le=10**11)] = 0
    max_discount: Amount | None = None
    quote_codes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20
    )


RULES: dict[PromotionKind, type[_Rules]] = {
    PromotionKind.FLASH_SALE: FlashSaleRules,
    PromotionKind.MEMBER_DEAL: MemberDealRules,
    PromotionKind.SPEND_SAVE: SpendSaveRules,
    PromotionKind.SPEND_GIFT: SpendGiftRules,
    PromotionKind.BUY_X_GET_Y: BuyXGetYRules,
    PromotionKind.COUPON: CouponRules,
    PromotionKind.BUNDLE: BundleRules,
    PromotionKind.GROUP_BUY: GroupBuyRules,
    PromotionKind.FREE_SHIPPING: FreeShippingRules,
}

# The class each kind takes its discount off (a COUPON's follows its rules).
KIND_CLASS: dict[PromotionKind, PromotionClass] = {
    PromotionKind.FLASH_SALE: PromotionClass.PRODUCT,
    PromotionKind.MEMBER_DEAL: PromotionClass.PRODUCT,
    PromotionKind.SPEND_SAVE: PromotionClass.ORDER,
    PromotionKind.SPEND_GIFT: PromotionClass.ORDER,
    PromotionKind.BUY_X_GET_Y: PromotionClass.ORDER,
    PromotionKind.COUPON: PromotionClass.ORDER,
    PromotionKind.BUNDLE: PromotionClass.ORDER,
    PromotionKind.GROUP_BUY: PromotionClass.ORDER,
    PromotionKind.FREE_SHIPPING: PromotionClass.SHIPPING,
}


def class_of(kind: PromotionKind, rules: _Rules) -> PromotionClass:
    if isinstance(rules, CouponRules) and rules.free_shipping:
        return PromotionClass.SHIPPING
    return KIND_CLASS[kind]


def parse_rules(kind: PromotionKind, rules: dict[str, Any], *, field: str = "rules") -> Any:
    """``rules`` checked against ``kind``'s model; ValidationFailed naming the first problem."""
    try:
        return RULES[kind].model_validate(rules)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(
            f"{kind.value} rules: {where + ': ' if where else ''}{first['msg']}", field=field
        ) from exc
