"""Shipping options with promised dates (``shipping_quotes``) and the promise frozen on the
order (``order_placing``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Order, OrderLine
from server.plugin import CartView, CheckoutProblem, ShippingQuote


async def shipping_quotes(
    session: AsyncSession,
    cart: CartView,
    address: Mapping[str, Any] | None,
    plugins: Any,
    config: Any,
) -> Sequence[ShippingQuote]:
    return []


async def freeze_promise(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], config: Any
) -> Sequence[CheckoutProblem]:
    return []
