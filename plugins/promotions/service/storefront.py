"""What shoppers see and do: the promotions on a page of products, coupon codes applied to
and removed from a cart, a bundle added as one choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    CODE_MAX,
    CartCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    Trigger,
)
from plugins.promotions.service import checkout as promo_checkout
from plugins.promotions.service import context, offers
from plugins.promotions.service.context import Promo
from plugins.promotions.service.engine import Miss, MissCode, Offer
from plugins.promotions.service.kinds import BundleRules, GroupBuyRules, parse_rules
from plugins.promotions.service.pricing import unit_discount
from plugins.promotions.service.settings import PromotionsSettings
from server.auth import Viewer
from server.models import Cart, Customer
from server.plugin import NotFound, ValidationFailed
from server.services import carts, checkout


class CouponRefused(ValidationFailed):
    """A code that cannot go on the cart: ``code`` is COUPON_NOT_FOUND, COUPON_<MissCode>
    or TOO_MANY_CODES; ``reason`` the engine's typed reason, ``shortfall`` how much more to
    spend when that is why."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        reason: MissCode | None = None,
        shortfall: int | None = None,
        currency: str = "CNY",
    ) -> None:
        super().__init__(message, field="code")
        self.code = code
        self.reason = reason
        self.shortfall = shortfall
        self.currency = currency


@dataclass(frozen=True)
class ProductPromotion:
    """A running promotion as a product page shows it."""

    promotion_id: int
    label: str
    kind: PromotionKind
    promotion_class: PromotionClass
    ends_at: datetime | None
    effect: str
    currency: str
    units_left: int | None = None
    group_size: int | None = None
    group_price: int | None = None


async def product_promotions(
    session: AsyncSession,
    products: Sequence[tuple[int, int | None, int]],
    customer_id: int | None,
    at: datetime,
) -> dict[int, list[ProductPromotion]]:
    """For each product (id, category id, base price): the running AUTOMATIC promotions that
    apply to it for this shopper, by priority then id. A constant number of statements for
    the whole page: the running promotions, the customer and their facts, the variants
    named by variant-targeted promotions."""
    running = [
        p
        for p in await context.running(session, at)
        if p.trigger is Trigger.AUTOMATIC and p.not_running(at) is None
    ]
    if not running or not products:
        return {pid: [] for pid, _, _ in products}
    customer = await session.get(Customer, customer_id) if customer_id is not None else None
    shopper = await context.shopper(session, customer, running)
    variant_products = await context.products_of_variants(
        session, [v for p in running for v in p.variant_ids]
    )
    answer: dict[int, list[ProductPromotion]] = {}
    for product_id, category_id, price in products:
        shown = []
        for promo in sorted(running, key=lambda p: (-p.ref.priority, p.id)):
            named = promo.targets(product_id, category_id, None) or any(
                variant_products.get(v) == product_id for v in promo.variant_ids
            )
            refused = shopper.eligible(promo)
            # A guest still sees what signing in would give.
            if not named or (refused is not None and not _needs_sign_in(promo, shopper)):
                continue
            shown.append(_shown(promo, price))
        answer[product_id] = shown
    return answer


def _needs_sign_in(promo: Promo, shopper: context.Shopper) -> bool:
    """Whether signing in is all a guest lacks to have ``promo``."""
    unlimited = replace(promo, per_customer_limit=None, per_customer_unit_limit=None)
    return (
        shopper.customer_id is None and promo.per_customer and shopper.eligible(unlimited) is None
    )


def _shown(promo: Promo, price: int) -> ProductPromotion:
    rules = promo.rules
    group_size = group_price = None
    if isinstance(rules, GroupBuyRules):
        group_size = rules.size
        group_price = price - unit_discount(rules, price)
    return ProductPromotion(
        promotion_id=promo.id,
        label=promo.label,
        kind=promo.kind,
        promotion_class=promo.promotion_class,
        ends_at=context.aware(promo.ends_at),
        effect=offers.effect_text(promo, promo.currency),
        currency=promo.currency,
        units_left=promo.units_left if promo.kind is PromotionKind.FLASH_SALE else None,
        group_size=group_size,
        group_price=group_price,
    )


async def _quoted(
    session: AsyncSession, plugins: Any, viewer: Viewer, cart: Cart
) -> tuple[checkout.CartQuote, Customer | None]:
    customer = await checkout.pricing_customer(session, cart, viewer)
    return await checkout.quote_cart(session, plugins, cart, customer), customer


async def apply_coupon(
    session: AsyncSession,
    plugins: Any,
    config: PromotionsSettings,
    viewer: Viewer,
    token: str,
    code: str,
) -> Cart:
    """Put coupon ``code`` on the cart, if it applies to the cart now; otherwise
    CouponRefused with why (nothing written)."""
    cart = await carts.get_cart(session, viewer, token)
    assert cart.id is not None
    wanted = context.normalise_code(code)
    if not wanted or len(wanted) > CODE_MAX:
        raise CouponRefused("COUPON_NOT_FOUND", "no such coupon code")
    found = await context.code_named(session, wanted)
    if found is None or found.promo is None:
        raise CouponRefused("COUPON_NOT_FOUND", f"no coupon code {wanted}")
    on_cart = await context.cart_codes(session, cart.id)
    if any(c.code_id == found.code_id for c in on_cart):
        return cart
    if len(on_cart) >= config.max_codes_per_cart:
        raise CouponRefused(
            "TOO_MANY_CODES", f"a cart holds at most {config.max_codes_per_cart} codes"
        )
    quote, customer = await _quoted(session, plugins, viewer, cart)
    decided = await promo_checkout.decide(session, quote.view, customer, plugins, extra_code=found)
    outcome = decided.code_outcome(found.code_id)
    if isinstance(outcome, Miss):
        raise CouponRefused(
            f"COUPON_{outcome.code.value}",
            outcome.message,
            reason=outcome.code,
            shortfall=outcome.shortfall,
            currency=cart.currency,
        )
    if not isinstance(outcome, Offer):
        raise CouponRefused("COUPON_NOT_FOUND", f"no coupon code {wanted}")
    session.add(CartCode(cart_id=cart.id, code_id=found.code_id))
    await session.flush()
    context.forget(session)
    return cart


async def remove_coupon(session: AsyncSession, viewer: Viewer, token: str, code: str) -> Cart:
    """Take coupon ``code`` off the cart; NotFound when it is not on it."""
    cart = await carts.get_cart(session, viewer, token)
    assert cart.id is not None
    wanted = context.normalise_code(code)
    on_cart = [c for c in await context.cart_codes(session, cart.id) if c.code == wanted]
    if not on_cart:
        raise NotFound("coupon code", wanted[:CODE_MAX] or "''", field="code")
    await session.execute(
        delete(CartCode).where(
            col(CartCode.cart_id) == cart.id, col(CartCode.code_id) == on_cart[0].code_id
        )
    )
    context.forget(session)
    return cart


async def add_bundle(
    session: AsyncSession,
    viewer: Viewer,
    token: str,
    promotion_id: int,
    variant_ids: Sequence[int],
    at: datetime,
) -> Cart:
    """Add a running BUNDLE promotion's items to the cart in one go (all or nothing): a
    variant item as named; a product item as the variant of ``variant_ids`` that belongs to
    it, or the product's only variant on sale."""
    row = await session.get(Promotion, promotion_id)
    if row is None or row.kind is not PromotionKind.BUNDLE:
        raise NotFound("bundle", promotion_id, field="promotionId")
    starts, ends = context.aware(row.starts_at), context.aware(row.ends_at)
    if row.status is not PromotionStatus.ACTIVE or (
        (starts is not None and at < starts) or (ends is not None and at >= ends)
    ):
        raise ValidationFailed(f"{row.label or row.name} is not on now", field="promotionId")
    rules = parse_rules(row.kind, dict(row.rules or {}))
    assert isinstance(rules, BundleRules)
    chosen = await context.products_of_variants(session, variant_ids)
    lines: list[carts.LineRequest] = []
    for i, item in enumerate(rules.items):
        if item.variant_id is not None:
            lines.append(carts.LineRequest(quantity=item.quantity, variant_id=item.variant_id))
            continue
        mine = sorted(v for v, p in chosen.items() if p == item.product_id)
        if len(mine) > 1:
            raise ValidationFailed(
                f"give one variant of product {item.product_id}", field=f"variantIds.{i}"
            )
        lines.append(
            carts.LineRequest(quantity=item.quantity, variant_id=mine[0])
            if mine
            else carts.LineRequest(quantity=item.quantity, product_id=item.product_id)
        )
    cart = await carts.add_lines(session, viewer, token, lines)
    context.forget(session)
    return cart
