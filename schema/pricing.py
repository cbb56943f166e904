"""How prices are explained over GraphQL: the base, each adjustment with its source, the result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import strawberry

from server.graphql.money import Money, money
from server.hooktypes import Adjustment
from server.services.pricing import PriceBreakdown as PriceBreakdownValue


@strawberry.type(description="One change to a price, and who made it.")
class PriceAdjustment:
    source: str = strawberry.field(description="The plugin (or 'core') that made it.")
    rule: str = strawberry.field(description="The rule within the source, e.g. a promotion id.")
    label: str
    amount: Money = strawberry.field(description="Per unit; negative for a discount.")


@strawberry.type(description="A unit price explained: base + adjustments = unit price.")
class PriceBreakdown:
    quantity: int
    base_price: Money
    adjustments: list[PriceAdjustment]
    unit_price: Money
    total: Money


def adjustment_types(
    adjustments: Iterable[Adjustment | Mapping[str, Any]], currency: str
) -> list[PriceAdjustment]:
    """GraphQL adjustments from live Adjustment values or their stored dict form."""
    out = []
    for adj in adjustments:
        data = adj.as_dict() if isinstance(adj, Adjustment) else adj
        out.append(
            PriceAdjustment(
                source=str(data["source"]),
                rule=str(data["rule"]),
                label=str(data["label"]),
                amount=money(int(data["amount"]), currency),
            )
        )
    return out


def breakdown_type(value: PriceBreakdownValue, quantity: int) -> PriceBreakdown:
    return PriceBreakdown(
        quantity=quantity,
        base_price=money(value.base, value.currency),
        adjustments=adjustment_types(value.adjustments, value.currency),
        unit_price=money(value.final, value.currency),
        total=money(value.final * quantity, value.currency),
    )


def stored_breakdown(
    *, base: int, unit: int, quantity: int, adjustments: Iterable[Mapping[str, Any]], currency: str
) -> PriceBreakdown:
    """The breakdown an order line was placed with (from its stored columns)."""
    return PriceBreakdown(
        quantity=quantity,
        base_price=money(base, currency),
        adjustments=adjustment_types(adjustments, currency),
        unit_price=money(unit, currency),
        total=money(unit * quantity, currency),
    )
