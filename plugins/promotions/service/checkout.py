"""A cart's ORDER and SHIPPING promotions and gifts: the engine's decision for the cart
(``engine.remember``), answered through ``order_adjustments``, ``shipping_adjustments`` and
``cart_gifts``; ``validate_checkout`` refuses a cart whose coupon no longer applies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer
from server.plugin import Adjustment, CartView, CheckoutProblem, GiftLine, ShippingQuote


async def order_adjustments(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[Adjustment]:
    return []


async def shipping_adjustments(
    session: AsyncSession,
    cart: CartView,
    quotes: Sequence[ShippingQuote],
    customer: Customer | None,
    plugins: Any,
    config: Any,
) -> Mapping[str, Sequence[Adjustment]]:
    return {}


async def cart_gifts(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[GiftLine]:
    return []


async def validate_checkout(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[CheckoutProblem]:
    return []
