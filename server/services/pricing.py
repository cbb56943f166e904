"""Prices: the catalogue base price composed with every plugin's adjustments, explained."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.hooktypes import Adjustment
from server.models import Customer, Product, utcnow
from server.plugins import PluginRuntime


@dataclass(frozen=True)
class PriceBreakdown:
    """A unit price: the base, each adjustment with its source, and the final amount."""

    currency: str
    base: int
    adjustments: tuple[Adjustment, ...] = field(default_factory=tuple)

    @property
    def final(self) -> int:
        # A price never goes below zero, however many discounts stack.
        return max(0, self.base + sum(a.amount for a in self.adjustments))


async def unit_price(
    session: AsyncSession,
    plugins: PluginRuntime,
    product: Product,
    customer: Customer | None,
    quantity: int = 1,
    at: datetime | None = None,
) -> PriceBreakdown:
    """The unit price of ``product`` for ``customer`` buying ``quantity`` at ``at``."""
    results = await plugins.call(
        "price_adjustments",
        session=session,
        product=product,
        customer=customer,
        quantity=quantity,
        at=at or utcnow(),
        base=product.price_amount,
    )
    adjustments = tuple(adj for _, adjs in results for adj in adjs)
    return PriceBreakdown(
        currency=product.currency, base=product.price_amount, adjustments=adjustments
    )


def adjustments_as_dicts(
    adjustments: tuple[Adjustment, ...] | list[Adjustment],
) -> list[dict[str, Any]]:
    return [a.as_dict() for a in adjustments]
