"""Arrangements of the engine's tests: promotions, codes and carts written directly, and a
cart quoted through the core's checkout service with the promotions plugin alone."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import CartCode, CouponCode, Promotion, PromotionKind, Trigger
from plugins.promotions.service import checkout as promo_checkout
from plugins.promotions.service.engine import Decision, decision_for
from server.config import Settings
from server.models import Cart, CartLine, Customer, Product, ProductVariant
from server.plugins import PluginRuntime, load_plugins
from server.services import checkout

_serial = itertools.count(1)


def promotions_only(settings: Settings) -> PluginRuntime:
    """The core with the promotions plugin alone (no other plugin's prices or discounts)."""
    return load_plugins(settings.model_copy(update={"plugins": "promotions"}))


async def promo(
    session: AsyncSession, kind: PromotionKind, rules: dict[str, Any], **fields: Any
) -> Promotion:
    """A committed ACTIVE promotion of ``kind``."""
    fields.setdefault("name", f"{kind.value.lower()} {next(_serial)}")
    row = Promotion(kind=kind, rules=rules, **fields)
    session.add(row)
    await session.commit()
    return row


async def coupon(
    session: AsyncSession, rules: dict[str, Any], code: str | None = None, **fields: Any
) -> tuple[Promotion, CouponCode]:
    """A COUPON promotion (trigger CODE) with one shared code."""
    code_fields = {
        k: fields.pop(k)
        for k in ("customer_id", "max_uses", "used_count", "expires_at", "amount_off", "disabled")
        if k in fields
    }
    row = await promo(session, PromotionKind.COUPON, rules, trigger=Trigger.CODE, **fields)
    made = CouponCode(promotion_id=row.id, code=code or f"SAVE{next(_serial)}", **code_fields)
    session.add(made)
    await session.commit()
    return row, made


async def variant_of(session: AsyncSession, product: Product) -> ProductVariant:
    from sqlalchemy import select

    found = await session.scalar(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    )
    assert found is not None
    return found


async def cart(
    session: AsyncSession,
    lines: Sequence[tuple[Product, int]],
    customer: Customer | None = None,
    codes: Sequence[CouponCode] = (),
) -> Cart:
    row = Cart(token=f"cart-{next(_serial)}", customer_id=customer.id if customer else None)
    session.add(row)
    await session.flush()
    for product, quantity in lines:
        variant = await variant_of(session, product)
        session.add(
            CartLine(
                cart_id=row.id, product_id=product.id, variant_id=variant.id, quantity=quantity
            )
        )
    for code in codes:
        session.add(CartCode(cart_id=row.id, code_id=code.id))
    await session.commit()
    return row


async def quote(
    session: AsyncSession, plugins: PluginRuntime, row: Cart, customer: Customer | None = None
) -> tuple[checkout.CartQuote, Decision]:
    """The cart quoted as the core quotes it, and the engine's decision for it; in a
    transaction of its own."""
    await session.commit()
    try:
        quoted = await checkout.quote_cart(session, plugins, row, customer)
        decision = decision_for(session, row.id or 0)
        assert decision is not None
        return quoted, decision
    finally:
        await session.commit()


async def decided(
    session: AsyncSession, plugins: PluginRuntime, row: Cart, customer: Customer | None = None
) -> promo_checkout.CartDecision:
    await session.commit()
    try:
        quoted = await checkout.quote_cart(session, plugins, row, customer)
        return await promo_checkout.decide(session, quoted.view, customer, plugins)
    finally:
        await session.commit()
