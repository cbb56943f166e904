"""Prices: the catalogue base price composed with every plugin's adjustments, then clamped by
the guardrails, explained step by step.

Prices are computed in batches: all the products of a page or of a cart at once, with one call
of each price hook, so a plugin reads what it needs for all of them in one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.hooktypes import CORE, Adjustment, NotApplied, PricedItem, PriceItem, PriceLimit
from server.models import Customer, Product, ProductVariant, utcnow
from server.plugins import PluginFailed, PluginRuntime
from server.services.answers import price_steps_of, stamped

PRICE_HOOKS = ("list_prices", "price_adjustments", "price_guardrails")
# The core's own guardrail: whatever the discounts, a price is never below zero.
NON_NEGATIVE = PriceLimit(
    rule="non-negative", label="价格不低于零 / never below zero", floor=0, source=CORE
)
# Marks the guardrail step among an order line's stored adjustments.
GUARDRAIL_KEY = "guardrail"


@dataclass(frozen=True)
class PriceBreakdown:
    """A unit price: the base, each adjustment with its source (the shop's list-price steps
    first, then the other plugins'), the guardrail's clamp (if one bound) and the final
    amount, which is their sum; and the candidates that were left out, with why."""

    currency: str
    base: int
    adjustments: tuple[Adjustment, ...] = field(default_factory=tuple)
    guardrail: Adjustment | None = None
    not_applied: tuple[NotApplied, ...] = field(default_factory=tuple)

    @property
    def final(self) -> int:
        clamp = self.guardrail.amount if self.guardrail is not None else 0
        return self.base + sum(a.amount for a in self.adjustments) + clamp

    def stored(self) -> list[dict[str, Any]]:
        """The steps as an order line keeps them: the adjustments, then the guardrail."""
        steps = [a.as_dict() for a in self.adjustments]
        if self.guardrail is not None:
            steps.append({**self.guardrail.as_dict(), GUARDRAIL_KEY: True})
        return steps


def base_breakdown(product: Product) -> PriceBreakdown:
    return PriceBreakdown(currency=product.currency, base=product.price_amount)


def is_adjustable(plugins: PluginRuntime) -> bool:
    """Whether any plugin can change a price (when none can, a price is its base, at once)."""
    return any(plugins.implements(hook) for hook in PRICE_HOOKS)


def _by_item(plugin: str, hook: str, answer: Any, ids: Iterable[int]) -> Mapping[int, Any]:
    if isinstance(answer, (list, tuple)) and not answer:
        return {}  # "nothing", said as an empty list
    if not isinstance(answer, Mapping):
        raise PluginFailed(
            plugin, hook, TypeError(f"returned {answer!r}, not a mapping of item key to values")
        )
    unknown = set(answer) - set(ids)
    if unknown:
        raise PluginFailed(
            plugin, hook, KeyError(f"answered for items it was not asked about: {unknown}")
        )
    return answer


def _limit(plugin: str, value: Any) -> PriceLimit:
    limit = stamped(plugin, "price_guardrails", value, PriceLimit)
    for bound in (limit.floor, limit.ceiling):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise PluginFailed(
                plugin,
                "price_guardrails",
                TypeError(f"limit {limit.rule!r}: floor and ceiling must be ints or None"),
            )
        if bound is not None and bound < 0:
            raise PluginFailed(
                plugin,
                "price_guardrails",
                ValueError(f"limit {limit.rule!r}: a bound below zero is no price"),
            )
    return limit


def clamp(price: int, limits: Sequence[PriceLimit]) -> Adjustment | None:
    """The guardrail step for ``price`` under ``limits``: down to the lowest ceiling, then up
    to the highest floor (so a floor wins over a lower ceiling). None when no bound binds."""
    result, binding = price, None
    ceilings = [(lim.ceiling, lim) for lim in limits if lim.ceiling is not None]
    if ceilings:
        ceiling, lowest = min(ceilings, key=lambda pair: pair[0])
        if result > ceiling:
            result, binding = ceiling, lowest
    floors = [(lim.floor, lim) for lim in limits if lim.floor is not None]
    if floors:
        floor, highest = max(floors, key=lambda pair: pair[0])
        if result < floor:
            result, binding = floor, highest
    if binding is None or result == price:
        return None
    return Adjustment(
        rule=binding.rule,
        label=binding.label,
        amount=result - price,
        source=binding.source,
    )


async def price_products(
    session: AsyncSession,
    plugins: PluginRuntime,
    items: Mapping[int, tuple[Product, int]],
    customer: Customer | None,
    at: datetime | None = None,
) -> dict[int, PriceBreakdown]:
    """The "from" unit prices of products (product id -> (entity, quantity)): each product's
    price, which is its cheapest variant's, as a listing shows it."""
    asked = {
        pid: PriceItem(product=product, quantity=quantity, base=product.price_amount)
        for pid, (product, quantity) in items.items()
    }
    return await _price(session, plugins, asked, customer, at)


async def price_variants(
    session: AsyncSession,
    plugins: PluginRuntime,
    items: Mapping[int, tuple[Product, ProductVariant, int]],
    customer: Customer | None,
    at: datetime | None = None,
) -> dict[int, PriceBreakdown]:
    """The unit prices of variants (variant id -> (product, variant, quantity)), as a cart
    line is priced."""
    asked = {
        vid: PriceItem(
            product=product, quantity=quantity, base=variant.price_amount, variant=variant
        )
        for vid, (product, variant, quantity) in items.items()
    }
    return await _price(session, plugins, asked, customer, at)


async def _price(
    session: AsyncSession,
    plugins: PluginRuntime,
    asked: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime | None,
) -> dict[int, PriceBreakdown]:
    """One call of each price hook for all of ``asked``: ``list_prices``, then
    ``price_adjustments`` on the listed prices, then ``price_guardrails``."""
    if not asked:
        return {}
    if not is_adjustable(plugins):
        return {
            key: PriceBreakdown(currency=item.product.currency, base=item.base)
            for key, item in asked.items()
        }
    at = at or utcnow()
    left_out: dict[int, list[NotApplied]] = {key: [] for key in asked}
    listed = await _steps(session, plugins, "list_prices", asked, customer, at, left_out)
    asked = {
        key: PriceItem(
            product=item.product,
            quantity=item.quantity,
            base=item.base,
            variant=item.variant,
            adjustments=tuple(listed[key]),
        )
        if listed[key]
        else item
        for key, item in asked.items()
    }
    adjusted = await _steps(session, plugins, "price_adjustments", asked, customer, at, left_out)
    priced = {
        key: PricedItem(
            product=item.product,
            quantity=item.quantity,
            base=item.base,
            adjustments=(*item.adjustments, *adjusted[key]),
            variant=item.variant,
        )
        for key, item in asked.items()
    }
    limits: dict[int, list[PriceLimit]] = {key: [NON_NEGATIVE] for key in asked}
    if plugins.implements("price_guardrails"):
        for plugin, answer in await plugins.call(
            "price_guardrails", session=session, items=priced, customer=customer, at=at
        ):
            for key, value in _by_item(plugin, "price_guardrails", answer, asked).items():
                limits[key].append(_limit(plugin, value))
    return {
        key: PriceBreakdown(
            currency=item.product.currency,
            base=item.base,
            adjustments=item.adjustments,
            guardrail=clamp(item.price, limits[key]),
            not_applied=tuple(left_out[key]),
        )
        for key, item in priced.items()
    }


async def _steps(
    session: AsyncSession,
    plugins: PluginRuntime,
    hook: str,
    asked: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    left_out: dict[int, list[NotApplied]],
) -> dict[int, list[Adjustment]]:
    """Every plugin's answer to one price hook: the adjustments per key (the candidates left
    out are added to ``left_out``)."""
    applied: dict[int, list[Adjustment]] = {key: [] for key in asked}
    if not plugins.implements(hook):
        return applied
    for plugin, answer in await plugins.call(
        hook, session=session, items=asked, customer=customer, at=at
    ):
        for key, values in _by_item(plugin, hook, answer, asked).items():
            steps, skipped = price_steps_of(plugin, hook, values)
            applied[key].extend(steps)
            left_out[key].extend(skipped)
    return applied
