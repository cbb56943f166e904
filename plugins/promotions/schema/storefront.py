"""The promotions plugin's GraphQL: what shoppers see (``Product.promotions``,
``Cart.promotions``) and do (``applyCoupon``, ``removeCoupon``, ``addBundleToCart``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.promotions.models import PromotionClass, PromotionKind
from plugins.promotions.service import storefront
from plugins.promotions.service.checkout import CartDecision, cart_decision_for
from plugins.promotions.service.engine import MissCode
from plugins.promotions.service.settings import promotions_settings
from schema.carts import Cart
from server.models import utcnow
from server.plugin import (
    ConflictError,
    Database,
    Error,
    Info,
    Money,
    NotFound,
    NotFoundError,
    ProductView,
    ValidationError,
    money,
    mutate,
    parse_node_id,
    require_node_id,
    run_mutation,
)

# GraphQL enums: strawberry.enum marks the classes themselves, and fields name them. The
# admin schema registers the promotion's own enums too: one definition for a class either way.
if not hasattr(PromotionKind, "__strawberry_definition__"):
    strawberry.enum(
        PromotionKind,
        name="PromotionKind",
        description="What a promotion does: FLASH_SALE (限时特惠), SPEND_SAVE (满减), SPEND_GIFT "
        "(满赠), BUY_X_GET_Y, COUPON (优惠券), MEMBER_DEAL (会员专享), BUNDLE (套餐), GROUP_BUY "
        "(拼团), FREE_SHIPPING.",
    )
if not hasattr(PromotionClass, "__strawberry_definition__"):
    strawberry.enum(
        PromotionClass,
        name="PromotionClass",
        description="What a promotion takes its discount off: unit prices (PRODUCT), the order "
        "(ORDER) or the shipping (SHIPPING).",
    )
strawberry.enum(
    MissCode,
    name="PromotionMissCode",
    description="Why a promotion did not apply: NOT_STARTED, EXPIRED, PAUSED, LIMIT_REACHED, "
    "BUDGET_SPENT (its campaign's budget), MINIMUM_NOT_MET (spend more: see shortfall), "
    "NOT_ELIGIBLE (not for this shopper), NOT_COMBINABLE (another promotion applies "
    "instead), NO_ELIGIBLE_ITEMS, OUT_OF_STOCK (a gift's stock ran out).",
)


def _promotion_id(pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID("Promotion", str(pk))))


@strawberry.type(description="A promotion running on a product now, for this shopper.")
class ProductPromotion:
    promotion_id: strawberry.ID
    label: str
    kind: PromotionKind
    promotion_class: PromotionClass
    ends_at: datetime | None = strawberry.field(description="When it ends; null: open-ended.")
    effect: str = strawberry.field(description='What it does, e.g. "20% off".')
    units_left: int | None = strawberry.field(
        description="A flash sale's units left (null: unlimited, or not a flash sale)."
    )
    limited: str | None = strawberry.field(description='"limited: N left" for a flash sale.')
    group_size: int | None = strawberry.field(description="A group buy's members needed.")
    group_price: Money | None = strawberry.field(
        description="A group buy's unit price for this product (its base price)."
    )


def _product_promotion(found: storefront.ProductPromotion) -> ProductPromotion:
    return ProductPromotion(
        promotion_id=_promotion_id(found.promotion_id),
        label=found.label,
        kind=found.kind,
        promotion_class=found.promotion_class,
        ends_at=found.ends_at,
        effect=found.effect,
        units_left=found.units_left,
        limited=f"limited: {found.units_left} left" if found.units_left is not None else None,
        group_size=found.group_size,
        group_price=money(found.group_price, found.currency)
        if found.group_price is not None
        else None,
    )


# (viewer's customer id, product id, category id, base price)
_ProductKey = tuple[int | None, int, int | None, int]


class ProductPromotionsLoader(DataLoader[_ProductKey, list[ProductPromotion]]):
    """A product's promotions for the viewer: one batch for the whole page."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[_ProductKey]) -> list[list[ProductPromotion]]:
        # One viewer per request: every key carries the same customer.
        found = await self.db.run(
            storefront.product_promotions, [k[1:] for k in keys], keys[0][0], utcnow()
        )
        return [[_product_promotion(p) for p in found.get(key[1], [])] for key in keys]


@strawberry.type
class ProductPromotions:
    """Fields the promotions plugin adds to the core ``Product`` type."""

    @strawberry.field(
        description="The promotions running on this product now that this shopper can have "
        "(a guest also sees those that need signing in), by priority (promotions plugin)."
    )
    async def promotions(self, info: Info, root: ProductView) -> list[ProductPromotion]:
        loader = info.context.loaders.get(ProductPromotionsLoader)
        customer_id = info.context.viewer.customer_id
        return await loader.load((customer_id, root.id, root.category_id, root.price_amount))


@strawberry.type(description="A promotion applied to a cart, with what it takes off.")
class AppliedPromotion:
    promotion_id: strawberry.ID
    label: str
    kind: PromotionKind
    promotion_class: PromotionClass
    amount: Money = strawberry.field(
        description="What it takes off (unit prices, the order or the cheapest shipping)."
    )
    code: str | None = strawberry.field(description="The coupon code it came by, if any.")
    source: str = strawberry.field(
        description="The rule its adjustments carry: promotion:<id> or promotion:<id>/code:<id>."
    )


@strawberry.type(description="A promotion that did not apply to a cart, and why.")
class MissedPromotion:
    promotion_id: strawberry.ID
    label: str
    code: MissCode
    message: str = strawberry.field(description='Why, e.g. "spend ¥12.00 more to save ¥20.00".')
    coupon_code: str | None = strawberry.field(description="The coupon code it is about.")
    shortfall: Money | None = strawberry.field(description="How much more to spend.")


@strawberry.type(description="The cart's promotions: what applied and what did not, with why.")
class CartPromotions:
    applied: list[AppliedPromotion]
    not_applied: list[MissedPromotion]
    codes: list[str] = strawberry.field(description="The coupon codes on the cart.")


def _cart_promotions(decided: CartDecision, currency: str) -> CartPromotions:
    code_text = {c.code_id: c.code for c in decided.codes}
    return CartPromotions(
        applied=[
            AppliedPromotion(
                promotion_id=_promotion_id(o.promotion.id),
                label=o.label,
                kind=o.promotion.kind,
                promotion_class=o.promotion.promotion_class,
                amount=money(o.amount, currency),
                code=code_text.get(o.code_id) if o.code_id is not None else None,
                source=o.rule,
            )
            for o in decided.decision.applied
        ],
        not_applied=[
            MissedPromotion(
                promotion_id=_promotion_id(m.promotion.id),
                label=m.promotion.label,
                code=m.code,
                message=m.message,
                coupon_code=code_text.get(m.code_id) if m.code_id is not None else None,
                shortfall=money(m.shortfall, currency) if m.shortfall is not None else None,
            )
            for m in decided.decision.missed
        ],
        codes=[c.code for c in decided.codes],
    )


@strawberry.type
class CartPromotionsField:
    """Fields the promotions plugin adds to the core ``Cart`` type."""

    @strawberry.field(
        description="The promotions applied to this cart now and those that did not apply, "
        "with why (promotions plugin)."
    )
    async def promotions(self, info: Info, root: Cart) -> CartPromotions:
        quote = await root.quote(info)
        decided = cart_decision_for(info.context.db.session, quote.view)
        if decided is None:
            return CartPromotions(applied=[], not_applied=[], codes=[])
        return _cart_promotions(decided, root.currency)


# --- mutations -----------------------------------------------------------------------------


@strawberry.type(
    description="A coupon code was refused and nothing was written: `code` is "
    "COUPON_NOT_FOUND, COUPON_EXPIRED, COUPON_NOT_STARTED, COUPON_PAUSED, "
    "COUPON_LIMIT_REACHED, COUPON_BUDGET_SPENT, COUPON_NOT_ELIGIBLE, COUPON_MINIMUM_NOT_MET, "
    "COUPON_NOT_COMBINABLE, COUPON_NO_ELIGIBLE_ITEMS or TOO_MANY_CODES."
)
class CouponRefused(Error):
    reason: MissCode | None = strawberry.field(
        description="The engine's reason (null: the code does not exist, or too many codes)."
    )
    shortfall: Money | None = strawberry.field(description="How much more to spend, if that.")


@strawberry.input
class ApplyCouponInput:
    cart_token: str
    code: str = strawberry.field(description="The coupon code (case and spaces ignored).")


@strawberry.input
class RemoveCouponInput:
    cart_token: str
    code: str


@strawberry.input
class AddBundleToCartInput:
    cart_token: str
    promotion_id: strawberry.ID = strawberry.field(description="A BUNDLE promotion's id.")
    variant_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="For each bundle item naming a product with several variants, the "
        "variant chosen.",
    )


@strawberry.type
class ApplyCouponSuccess:
    cart: Cart


@strawberry.type
class RemoveCouponSuccess:
    cart: Cart


@strawberry.type
class AddBundleToCartSuccess:
    cart: Cart


ApplyCouponResult = Annotated[
    ApplyCouponSuccess | CouponRefused | NotFoundError | ConflictError | ValidationError,
    strawberry.union("ApplyCouponResult"),
]
RemoveCouponResult = Annotated[
    RemoveCouponSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("RemoveCouponResult"),
]
AddBundleToCartResult = Annotated[
    AddBundleToCartSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("AddBundleToCartResult"),
]


def _refused(result: Error, refusal: storefront.CouponRefused | None) -> Any:
    if refusal is not None:
        return CouponRefused(
            code=refusal.code,
            message=refusal.message,
            field=refusal.field,
            reason=refusal.reason,
            shortfall=money(refusal.shortfall, refusal.currency)
            if refusal.shortfall is not None
            else None,
        )
    return result


@strawberry.type
class StorefrontMutations:
    @strawberry.mutation(
        description="Apply a coupon code to a cart. A code that would not apply to the cart "
        "now is refused with why (CouponRefused), and nothing is written (promotions plugin)."
    )
    async def apply_coupon(self, info: Info, input: ApplyCouponInput) -> ApplyCouponResult:
        ctx = info.context
        config = promotions_settings(ctx.plugins)
        refusal: list[storefront.CouponRefused] = []

        async def work(session: AsyncSession) -> Any:
            try:
                return await storefront.apply_coupon(
                    session, ctx.plugins, config, ctx.viewer, input.cart_token, input.code
                )
            except storefront.CouponRefused as exc:
                refusal.append(exc)
                raise

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return _refused(result, refusal[0] if refusal else None)
        return ApplyCouponSuccess(cart=Cart.from_model(result))

    @strawberry.mutation(description="Take a coupon code off a cart (promotions plugin).")
    async def remove_coupon(self, info: Info, input: RemoveCouponInput) -> RemoveCouponResult:
        ctx = info.context

        async def work(session: AsyncSession) -> Any:
            return await storefront.remove_coupon(session, ctx.viewer, input.cart_token, input.code)

        return await mutate(
            info, work, lambda cart: RemoveCouponSuccess(cart=Cart.from_model(cart))
        )

    @strawberry.mutation(
        description="Add a bundle's items to a cart as one choice: all of them or none "
        "(promotions plugin)."
    )
    async def add_bundle_to_cart(
        self, info: Info, input: AddBundleToCartInput
    ) -> AddBundleToCartResult:
        ctx = info.context

        async def work(session: AsyncSession) -> Any:
            promotion_id = require_node_id(input.promotion_id, "Promotion", "promotionId")
            variant_ids = []
            for i, raw in enumerate(input.variant_ids[:20]):
                pk = parse_node_id(raw, "ProductVariant")
                if pk is None:
                    raise NotFound("variant", str(raw)[:40], field=f"variantIds.{i}")
                variant_ids.append(pk)
            return await storefront.add_bundle(
                session, ctx.viewer, input.cart_token, promotion_id, variant_ids, utcnow()
            )

        return await mutate(
            info, work, lambda cart: AddBundleToCartSuccess(cart=Cart.from_model(cart))
        )


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [StorefrontMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {
    "Product": [ProductPromotions],
    "Cart": [CartPromotionsField],
}
