"""Price history, the prior price and price protection over GraphQL: ``Product.priorPrice``
(public), the staff's ``priceHistory`` and ``priceProtectionClaims``, the customer's
``claimPriceProtection`` and ``myPriceProtectionClaims``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.pricing import READ
from plugins.pricing.models import ClaimMethod, PriceHistory, PriceSource, ProtectionClaim
from plugins.pricing.service import history, protection
from plugins.pricing.service.settings import pricing_settings
from server.models import utcnow
from server.plugin import (
    Connection,
    Database,
    Error,
    HasPermission,
    Info,
    IsCustomer,
    Money,
    Page,
    Paged,
    ProductView,
    SortKey,
    connection,
    money,
    parse_node_id,
    run_mutation,
)

PRICING_MANAGE = "pricing.manage"
ORDERS_READ = "orders.read"

strawberry.enum(
    PriceSource,
    name="PriceSource",
    description="What changed a public price: CATALOGUE (the catalogue price), RULE (a rule "
    "for everyone), SCHEDULE (a scheduled price started or ended), DYNAMIC (a dynamic-pricing "
    "suggestion was applied).",
)
strawberry.enum(
    ClaimMethod,
    name="PriceProtectionMethod",
    description="How price protection is credited: REFUND (part of the order's payment given "
    "back) or COUPON (a coupon of the difference).",
)


class PriorPriceLoader(DataLoader[int, history.PriorPrice | None]):
    """Product id → its prior price: one statement for every product of the request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[history.PriorPrice | None]:
        found = await self.db.run(history.prior_prices, list(keys), utcnow())
        return [found.get(key) for key in keys]


@strawberry.type
class ProductPriorPrice:
    """Fields the pricing plugin adds to the core ``Product`` type."""

    @strawberry.field(
        description="The lowest public price of the 30 days before the current price's "
        "latest reduction (what a struck-through 'was' price must show under the EU Omnibus "
        "rule), from the price history. Null when the current public price is no reduction, "
        "or the history does not reach 30 days back before it (pricing plugin)."
    )
    async def prior_price(self, info: Info, root: ProductView) -> Money | None:
        prior = await info.context.loaders.get(PriorPriceLoader).load(root.id)
        return money(prior.amount, prior.currency) if prior is not None else None


@strawberry.type(description="A change of a product's public price (pricing.manage, pricing.read).")
class PriceHistoryEntry:
    id: strawberry.ID
    amount: Money = strawberry.field(description="The public unit price from effectiveAt on.")
    previous: Money | None = strawberry.field(description="The price before; null: the first.")
    source: PriceSource
    who: str = strawberry.field(
        description="Who changed it: staff:<id> or apikey:<id> (as the audit log names them), "
        "'schedule' for a scheduled price; empty when unknown (a command, a job)."
    )
    why: str
    rule_id: int | None = strawberry.field(description="The pricing rule behind it, if one.")
    effective_at: datetime
    recorded_at: datetime


def _entry(row: PriceHistory) -> PriceHistoryEntry:
    return PriceHistoryEntry(
        id=strawberry.ID(f"PriceHistoryEntry:{row.id}"),
        amount=money(row.amount, row.currency),
        previous=money(row.previous_amount, row.currency)
        if row.previous_amount is not None
        else None,
        source=row.source,
        who=row.actor,
        why=row.reason,
        rule_id=row.rule_id,
        effective_at=row.effective_at,
        recorded_at=row.recorded_at,
    )


@strawberry.type(description="A price-protection (价格保护) credit of an order line.")
class PriceProtectionClaim:
    id: strawberry.ID
    order_id: relay.GlobalID
    order_line_id: relay.GlobalID
    product_id: relay.GlobalID
    paid_unit_price: Money = strawberry.field(description="What was paid per unit.")
    current_unit_price: Money = strawberry.field(
        description="The line's unit price for the customer when credited."
    )
    quantity: int
    amount: Money = strawberry.field(description="(paidUnitPrice − currentUnitPrice) × quantity.")
    method: ClaimMethod
    reference: str = strawberry.field(description="The refund's reference, or the coupon's code.")
    automatic: bool = strawberry.field(description="Credited by the shop after a price drop.")
    created_at: datetime


def _claim(row: ProtectionClaim) -> PriceProtectionClaim:
    return PriceProtectionClaim(
        id=strawberry.ID(f"PriceProtectionClaim:{row.id}"),
        order_id=relay.GlobalID("Order", str(row.order_id)),
        order_line_id=relay.GlobalID("OrderLine", str(row.order_line_id)),
        product_id=relay.GlobalID("Product", str(row.product_id)),
        paid_unit_price=money(row.paid_unit_amount, row.currency),
        current_unit_price=money(row.current_unit_amount, row.currency),
        quantity=row.quantity,
        amount=money(row.amount, row.currency),
        method=row.method,
        reference=row.reference,
        automatic=row.automatic,
        created_at=row.created_at,
    )


@strawberry.input
class ClaimPriceProtectionInput:
    order_line_id: strawberry.ID = strawberry.field(description="A line of your paid order.")


@strawberry.type
class ClaimPriceProtectionSuccess:
    claim: PriceProtectionClaim


@strawberry.type(
    description="A claim that was not credited: code NOT_ELIGIBLE (no paid, standing line of "
    "your orders has that id), OUTSIDE_WINDOW (bought more than the protection's days ago), "
    "PRICE_NOT_LOWER (your price now is not lower than what you paid), ALREADY_CLAIMED (the "
    "line was credited before), COUPON_UNAVAILABLE (the shop credits coupons and no plugin "
    "issues them), or VALIDATION_FAILED (the order's payments have less left to refund than "
    "the credit). Nothing was written."
)
class PriceProtectionRefused(Error):
    pass


ClaimPriceProtectionResult = Annotated[
    ClaimPriceProtectionSuccess | PriceProtectionRefused,
    strawberry.union("ClaimPriceProtectionResult"),
]

_HISTORY_READERS = HasPermission(PRICING_MANAGE, READ)
_CLAIM_READERS = HasPermission(ORDERS_READ, READ)
_NEWEST_HISTORY = [SortKey(PriceHistory.effective_at, "effective_at")]
_NEWEST_CLAIMS = [SortKey(ProtectionClaim.created_at, "created_at")]


@strawberry.type
class HistoryQueries:
    @strawberry.field(
        description="Public price changes, newest first: who, why, the source, the amount and "
        "the one before — of one product, or of every product when productId is left out "
        "(pricing.manage or pricing.read).",
        permission_classes=[_HISTORY_READERS],
        extensions=[Paged()],
    )
    async def price_history(
        self, info: Info, page: Page, product_id: strawberry.ID | None = None
    ) -> Connection[PriceHistoryEntry]:
        pk = None if product_id is None else parse_node_id(product_id, "Product") or 0
        return await connection(
            info,
            history.history_query(pk),
            page,
            sort=_NEWEST_HISTORY,
            to_node=_entry,
            descending=True,
        )

    @strawberry.field(
        description="The signed-in customer's price-protection credits, newest first.",
        permission_classes=[IsCustomer],
        extensions=[Paged()],
    )
    async def my_price_protection_claims(
        self, info: Info, page: Page
    ) -> Connection[PriceProtectionClaim]:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        return await connection(
            info,
            protection.claims_query(customer_id),
            page,
            sort=_NEWEST_CLAIMS,
            to_node=_claim,
            descending=True,
        )

    @strawberry.field(
        description="Every price-protection credit, newest first (orders.read or pricing.read).",
        permission_classes=[_CLAIM_READERS],
        extensions=[Paged()],
    )
    async def price_protection_claims(
        self, info: Info, page: Page
    ) -> Connection[PriceProtectionClaim]:
        return await connection(
            info,
            protection.claims_query(),
            page,
            sort=_NEWEST_CLAIMS,
            to_node=_claim,
            descending=True,
        )


@strawberry.type
class HistoryMutations:
    @strawberry.mutation(
        description="Claim price protection (价格保护) for a line of your paid order: when its "
        "price for you is now lower than what you paid, within the shop's protection days, "
        "the difference × quantity is refunded or given as a coupon, once per line.",
        permission_classes=[IsCustomer],
    )
    async def claim_price_protection(
        self, info: Info, input: ClaimPriceProtectionInput
    ) -> ClaimPriceProtectionResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        plugins = info.context.plugins
        config = pricing_settings(plugins)

        async def work(session: AsyncSession) -> ProtectionClaim:
            line_id = parse_node_id(input.order_line_id, "OrderLine")
            if line_id is None:
                raise protection.ClaimRefused(
                    protection.NOT_ELIGIBLE,
                    f"order line {str(input.order_line_id)[:40]} is not a paid line of one of "
                    "your orders",
                )
            return await protection.claim(
                session, plugins, config, order_line_id=line_id, customer_id=customer_id
            )

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return PriceProtectionRefused(
                code=result.code, message=result.message, field=result.field
            )
        return ClaimPriceProtectionSuccess(claim=_claim(result))


QUERIES: list[type[Any]] = [HistoryQueries]
MUTATIONS: list[type[Any]] = [HistoryMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {"Product": [ProductPriorPrice]}
CACHEABLE: dict[str, Sequence[str]] = {
    "Product.priorPrice": ["product_changed", "pricing_prices_changed"],
}
