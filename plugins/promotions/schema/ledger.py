"""The discount ledger over GraphQL: ``Order.promotionLedger`` (each promotion's discount on
each line of the order, frozen when it was placed, and what refunds took back) and
``OrderLine.promotionDiscounts`` (the same, for one line). Both are read where the order is:
its customer and staff with orders.read see it (the core shows an order to no one else), and
both are batched (one statement for every order or line of the request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.promotions.models import PromotionClass
from plugins.promotions.service import ledger
from server.plugin import Database, Info, Money, money

# The admin schema may register the enum too: one definition for the class either way.
if not hasattr(PromotionClass, "__strawberry_definition__"):
    strawberry.enum(
        PromotionClass,
        name="PromotionClass",
        description="What a promotion takes its discount off: PRODUCT (unit prices), ORDER "
        "(the order) or SHIPPING (the shipping).",
    )


@strawberry.type(
    description="One promotion's discount on one line of an order, frozen when the order was "
    "placed (promotions plugin). A shipping discount has no line."
)
class PromotionLedgerEntry:
    order_line_id: strawberry.ID | None = strawberry.field(
        description="The order line (an OrderLine id); null for a shipping discount."
    )
    promotion_label: str = strawberry.field(description="The promotion, as shoppers read it.")
    promotion_class: PromotionClass
    amount: Money = strawberry.field(
        description="What the promotion took off this line (all its units)."
    )
    refunded: Money = strawberry.field(
        description="What refunds of returned units took back of it (their share, and what "
        "a threshold no longer reached takes back from the lines kept)."
    )


def _entry(row: ledger.LedgerLine) -> PromotionLedgerEntry:
    e, currency = row.entry, row.currency
    return PromotionLedgerEntry(
        order_line_id=(
            strawberry.ID(relay.to_base64("OrderLine", e.order_line_id))
            if e.order_line_id is not None
            else None
        ),
        promotion_label=row.label,
        promotion_class=e.promotion_class,
        amount=money(e.amount, currency),
        refunded=money(e.refunded_amount, currency),
    )


class LedgerByOrderLoader(DataLoader[int, list[ledger.LedgerLine]]):
    """Order id → its ledger: one statement for every order of the request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[ledger.LedgerLine]]:
        found = await self.db.run(ledger.ledgers_of, list(keys))
        return [found.get(key, []) for key in keys]


class LedgerByLineLoader(DataLoader[int, list[ledger.LedgerLine]]):
    """Order line id → its ledger entries: one statement for every line of the request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[ledger.LedgerLine]]:
        found = await self.db.run(ledger.ledgers_of_lines, list(keys))
        return [found.get(key, []) for key in keys]


@strawberry.type
class OrderPromotionLedger:
    """Fields the promotions plugin adds to the core ``Order`` type."""

    @strawberry.field(
        description="The discount ledger: each promotion's discount on each line, as placed, "
        "and what refunds took back (promotions plugin). Empty for an order no promotion "
        "discounted."
    )
    async def promotion_ledger(self, info: Info, root: Any) -> list[PromotionLedgerEntry]:
        rows = await info.context.loaders.get(LedgerByOrderLoader).load(int(root.id))
        return [_entry(row) for row in rows]


@strawberry.type
class OrderLinePromotionDiscounts:
    """Fields the promotions plugin adds to the core ``OrderLine`` type."""

    @strawberry.field(
        description="What each promotion took off this line, as placed, and what refunds "
        "took back (promotions plugin)."
    )
    async def promotion_discounts(self, info: Info, root: Any) -> list[PromotionLedgerEntry]:
        rows = await info.context.loaders.get(LedgerByLineLoader).load(int(root.id))
        return [_entry(row) for row in rows]


TYPES: list[type[Any]] = [PromotionLedgerEntry]
QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {
    "Order": [OrderPromotionLedger],
    "OrderLine": [OrderLinePromotionDiscounts],
}
