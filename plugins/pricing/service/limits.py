"""Guardrails after every plugin (the ``price_guardrails`` hook).

Each item gets one PriceLimit combining its limits (docs/plugins/pricing.md, "Guardrails"):
floors — the floor price, the minimum margin over cost (floor = ceil(cost / (1 - margin))) and
the minimum advertised price (MAP) — of which the highest holds, and the ceiling. Each field
comes from the most specific limit row that sets it: the variant's (cart and order lines
only), else the product's, else its category's; the margin falls back to the shop-wide
``min_margin_bp`` setting. The limit is named after the constraint that binds the item's price.
One statement per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import PricingLimit
from plugins.pricing.service.rules import batch_targets, money_text
from server.models import Customer
from server.plugin import PricedItem, PriceLimit

FIELDS = ("floor_amount", "ceiling_amount", "min_margin_bp", "map_amount")


@dataclass(frozen=True)
class Bound:
    rule: str
    label: str
    amount: int


def margin_floor(cost: int, margin_bp: int) -> int:
    """The lowest price with a gross margin of ``margin_bp`` over ``cost``: cost / (1 -
    margin), rounded up to a whole minor unit (so the margin is never short)."""
    return -(-cost * 10000 // (10000 - margin_bp))


def margin_label(margin_bp: int) -> str:
    percent = f"{margin_bp / 100:g}"
    return f"毛利不低于 {percent}% / margin at least {percent}%"


@dataclass(frozen=True)
class LimitRow:
    """A limit as the guardrails read it (plain columns: no ORM entity to build)."""

    variant_id: int | None
    product_id: int | None
    category_id: int | None
    floor_amount: int | None
    ceiling_amount: int | None
    min_margin_bp: int | None
    map_amount: int | None


# Built once, with expanding parameters: a page's guardrails build no SQL.
_LIMITS = select(
    col(PricingLimit.variant_id),
    col(PricingLimit.product_id),
    col(PricingLimit.category_id),
    col(PricingLimit.floor_amount),
    col(PricingLimit.ceiling_amount),
    col(PricingLimit.min_margin_bp),
    col(PricingLimit.map_amount),
).where(
    or_(
        col(PricingLimit.variant_id).in_(bindparam("variant_ids", expanding=True)),
        col(PricingLimit.product_id).in_(bindparam("product_ids", expanding=True)),
        col(PricingLimit.category_id).in_(bindparam("category_ids", expanding=True)),
    )
)


async def read_limits(session: AsyncSession, items: Mapping[int, PricedItem]) -> list[LimitRow]:
    result = await session.execute(_LIMITS, batch_targets(items))
    return [LimitRow(*row) for row in result]


def effective(
    item: PricedItem, rows: Sequence[LimitRow], shop_margin_bp: int
) -> dict[str, int | None]:
    """Each limit field for ``item`` from its most specific row that sets it."""
    variant = next(
        (r for r in rows if item.variant is not None and r.variant_id == item.variant.id), None
    )
    product = next((r for r in rows if r.product_id == item.product.id), None)
    category = next(
        (
            r
            for r in rows
            if item.product.category_id is not None and r.category_id == item.product.category_id
        ),
        None,
    )
    chosen: dict[str, int | None] = {}
    for name in FIELDS:
        chosen[name] = next(
            (
                getattr(row, name)
                for row in (variant, product, category)
                if row is not None and getattr(row, name) is not None
            ),
            None,
        )
    if chosen["min_margin_bp"] is None and shop_margin_bp > 0:
        chosen["min_margin_bp"] = shop_margin_bp
    return chosen


def limit_for(item: PricedItem, fields: Mapping[str, int | None]) -> PriceLimit | None:
    """One PriceLimit for ``item``, named after its binding constraint."""
    floors: list[Bound] = []
    if (floor := fields["floor_amount"]) is not None:
        floors.append(Bound("floor", f"最低价 / floor price {money_text(floor)}", floor))
    margin = fields["min_margin_bp"]
    cost = item.variant.cost_amount if item.variant is not None else None
    if cost is None:
        cost = item.product.cost_amount
    if margin and cost is not None:
        floors.append(Bound("min-margin", margin_label(margin), margin_floor(cost, margin)))
    if (map_amount := fields["map_amount"]) is not None:
        floors.append(
            Bound(
                "map", f"最低广告价 / minimum advertised price {money_text(map_amount)}", map_amount
            )
        )
    ceiling = fields["ceiling_amount"]
    if not floors and ceiling is None:
        return None
    # The highest floor holds; on a tie the first named (floor, margin, MAP) is shown.
    top = max(floors, key=lambda b: b.amount) if floors else None
    price = item.price
    if top is not None and price < top.amount:
        rule, label = top.rule, top.label
    elif ceiling is not None and price > ceiling:
        rule, label = "ceiling", f"最高价 / ceiling price {money_text(ceiling)}"
    elif top is not None:
        rule, label = top.rule, top.label
    else:
        rule, label = "ceiling", f"最高价 / ceiling price {money_text(ceiling or 0)}"
    return PriceLimit(
        rule=rule, label=label, floor=top.amount if top is not None else None, ceiling=ceiling
    )


async def price_guardrails(
    session: AsyncSession,
    items: Mapping[int, PricedItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> dict[int, PriceLimit]:
    if not items:
        return {}
    rows = await read_limits(session, items)
    shop_margin = int(getattr(config, "min_margin_bp", 0) or 0)
    if not rows and not shop_margin:
        return {}
    answer: dict[int, PriceLimit] = {}
    for key, item in items.items():
        limit = limit_for(item, effective(item, rows, shop_margin))
        if limit is not None:
            answer[key] = limit
    return answer
