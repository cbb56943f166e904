"""How prices are explained over GraphQL: the base, each adjustment with its source, the
guardrail's clamp, the result; and the per-request loader that prices a page's products in
one batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from schema.loaders import CustomerByIdLoader, ProductByIdLoader, ProductVariantByIdLoader
from server import models as m
from server.graphql.context import Context, Database, Info
from server.graphql.money import Money, money
from server.hooktypes import Adjustment
from server.hooktypes import AdjustmentKind as AdjustmentKindValue
from server.services import pricing
from server.services.pricing import PriceBreakdown as PriceBreakdownValue

# Marks the enum class itself: fields are annotated with it (as elsewhere, see README).
strawberry.enum(
    AdjustmentKindValue,
    name="AdjustmentKind",
    description="DISCOUNT: takes off what the shopper pays (a negative amount); FEE: adds to "
    "it (a positive amount: a surcharge, a handling charge).",
)


@strawberry.type(description="One change to a price, and who made it.")
class PriceAdjustment:
    source: str = strawberry.field(description="The plugin (or 'core') that made it.")
    rule: str = strawberry.field(description="The rule within the source, e.g. a promotion id.")
    label: str
    amount: Money = strawberry.field(
        description="Per unit on a price, per order on an order; negative for a discount."
    )
    kind: AdjustmentKindValue


@strawberry.type(description="A price step that was considered and left out, and why.")
class PriceCandidate:
    source: str = strawberry.field(description="The plugin that considered it.")
    rule: str
    label: str
    amount: Money = strawberry.field(
        description="What it would have changed the unit price by (negative: a discount)."
    )
    reason: str = strawberry.field(description="Why it was left out.")


@strawberry.type(description="A unit price explained: base + adjustments + guardrail = unit price.")
class PriceBreakdown:
    quantity: int
    base_price: Money
    adjustments: list[PriceAdjustment]
    guardrail: PriceAdjustment | None = strawberry.field(
        description="The last step: a floor or ceiling (or the core's: never below zero) that "
        "clamped the adjusted price, and who set it; null when none did."
    )
    unit_price: Money
    total: Money
    not_applied: list[PriceCandidate] = strawberry.field(
        description="The candidates left out (a segment price not better than the member "
        "price, a quantity break not reached), with why; empty on a placed order's line."
    )


def _adjustment(data: Mapping[str, Any], currency: str) -> PriceAdjustment:
    amount = int(data["amount"])
    return PriceAdjustment(
        source=str(data["source"]),
        rule=str(data["rule"]),
        label=str(data["label"]),
        amount=money(amount, currency),
        kind=AdjustmentKindValue.FEE if amount > 0 else AdjustmentKindValue.DISCOUNT,
    )


def adjustment_types(
    adjustments: Iterable[Adjustment | Mapping[str, Any]], currency: str
) -> list[PriceAdjustment]:
    """GraphQL adjustments from live Adjustment values or their stored dict form."""
    return [
        _adjustment(adj.as_dict() if isinstance(adj, Adjustment) else adj, currency)
        for adj in adjustments
    ]


def breakdown_type(value: PriceBreakdownValue, quantity: int) -> PriceBreakdown:
    return PriceBreakdown(
        quantity=quantity,
        base_price=money(value.base, value.currency),
        adjustments=adjustment_types(value.adjustments, value.currency),
        guardrail=_adjustment(value.guardrail.as_dict(), value.currency)
        if value.guardrail is not None
        else None,
        unit_price=money(value.final, value.currency),
        total=money(value.final * quantity, value.currency),
        not_applied=[
            PriceCandidate(
                source=c.source,
                rule=c.rule,
                label=c.label,
                amount=money(c.amount, value.currency),
                reason=c.reason,
            )
            for c in value.not_applied
        ],
    )


def stored_breakdown(
    *, base: int, unit: int, quantity: int, adjustments: Iterable[Mapping[str, Any]], currency: str
) -> PriceBreakdown:
    """The breakdown an order line was placed with (from its stored columns)."""
    steps = list(adjustments)
    guardrail = next((s for s in steps if s.get(pricing.GUARDRAIL_KEY)), None)
    return PriceBreakdown(
        quantity=quantity,
        base_price=money(base, currency),
        adjustments=adjustment_types(
            [s for s in steps if not s.get(pricing.GUARDRAIL_KEY)], currency
        ),
        guardrail=_adjustment(guardrail, currency) if guardrail is not None else None,
        unit_price=money(unit, currency),
        total=money(unit * quantity, currency),
        not_applied=[],
    )


# --- prices of the request's products, in batches ------------------------------------------


class _PriceLoader(DataLoader[tuple[int, int], PriceBreakdownValue]):
    """Unit prices keyed by (id, quantity), for the request's viewer: every key a request
    asks for in one pass (a page, a product's variants) is priced with one call of each price
    hook per distinct quantity, so the statements a pricing plugin runs do not grow with the
    page. Subclasses say what the id names and how a batch of them is priced."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.context: Context | None = None
        # Every price this loader has computed: a resolver that finds its price here answers
        # without an await (a page priced ahead by its listing, see price_page).
        self.settled: dict[tuple[int, int], PriceBreakdownValue] = {}
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[tuple[int, int]]) -> list[PriceBreakdownValue]:
        assert self.context is not None, "load prices through the loader's price method"
        ctx = self.context
        customer = None
        if ctx.viewer.customer_id is not None:
            customer = await ctx.loaders.get(CustomerByIdLoader).load(ctx.viewer.customer_id)
        by_quantity: dict[int, list[int]] = defaultdict(list)
        for key, quantity in keys:
            by_quantity[quantity].append(key)
        found: dict[tuple[int, int], PriceBreakdownValue] = {}
        for quantity, ids in by_quantity.items():
            prices = await self._price_batch(ctx, ids, quantity, customer)
            found.update({(key, quantity): value for key, value in prices.items()})
        self.settled.update(found)
        return [found[key] for key in keys]

    async def _price_batch(
        self, ctx: Context, ids: Sequence[int], quantity: int, customer: m.Customer | None
    ) -> Mapping[int, PriceBreakdownValue]:
        raise NotImplementedError


class PriceBreakdownLoader(_PriceLoader):
    """Products' "from" unit prices keyed by (product id, quantity). Use :meth:`price`, which
    hands over the product the resolver holds: the entity, or a listing's read-only record
    (the price hooks read columns only, so a page is priced without loading its entities)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._entities: dict[int, m.Product] = {}

    async def price(self, info: Info, product: m.Product, quantity: int) -> PriceBreakdownValue:
        self.context = info.context
        self._entities.setdefault(product.id, product)  # type: ignore[arg-type]  # a stored product has its id
        return await self.load((product.id, quantity))  # type: ignore[arg-type]  # a stored product has its id

    async def price_page(self, info: Info, products: Sequence[m.Product]) -> None:
        """Price a listing's page (one unit each) in one batch, ahead of its fields."""
        self.context = info.context
        for product in products:
            self._entities.setdefault(product.id, product)  # type: ignore[arg-type]  # a stored product has its id
        await self.load_many([(product.id, 1) for product in products])  # type: ignore[misc]  # a stored product has its id

    async def _price_batch(
        self, ctx: Context, ids: Sequence[int], quantity: int, customer: m.Customer | None
    ) -> Mapping[int, PriceBreakdownValue]:
        missing = [pid for pid in ids if pid not in self._entities]
        if missing:
            for row in await ctx.loaders.get(ProductByIdLoader).load_many(missing):
                if row is not None:
                    self._entities[row.id] = row
        items: dict[int, tuple[m.Product, int]] = {}
        for pid in ids:
            product = self._entities.get(pid)
            if product is None:  # products are archived, never deleted
                raise LookupError(f"product {pid} vanished during the request")
            items[pid] = (product, quantity)
        return await ctx.db.run(pricing.price_products, ctx.plugins, items, customer)


class VariantPriceBreakdownLoader(_PriceLoader):
    """Variants' unit prices keyed by (variant id, quantity): a product page's SKUs priced in
    one batch (``pricing.price_variants``, the way a cart line is priced)."""

    async def price(
        self, info: Info, variant: m.ProductVariant, quantity: int
    ) -> PriceBreakdownValue:
        self.context = info.context
        info.context.loaders.get(ProductVariantByIdLoader).prime(variant.id, variant)  # type: ignore[arg-type]  # a stored variant has its id
        return await self.load((variant.id, quantity))  # type: ignore[arg-type]  # a stored variant has its id

    async def _price_batch(
        self, ctx: Context, ids: Sequence[int], quantity: int, customer: m.Customer | None
    ) -> Mapping[int, PriceBreakdownValue]:
        found = await ctx.loaders.get(ProductVariantByIdLoader).load_many(ids)
        rows = [v for v in found if v is not None]
        products = await ctx.loaders.get(ProductByIdLoader).load_many([v.product_id for v in rows])
        items = {
            v.id: (p, v, quantity) for v, p in zip(rows, products, strict=True) if p is not None
        }
        if len(items) != len(ids):
            raise LookupError("a variant vanished during the request")
        return await ctx.db.run(pricing.price_variants, ctx.plugins, items, customer)


async def product_price(info: Info, product: m.Product, quantity: int) -> PriceBreakdownValue:
    """``product``'s unit price for the viewer buying ``quantity``: its base at once when no
    plugin changes prices, else batched with the request's other prices."""
    if not pricing.is_adjustable(info.context.plugins):
        return pricing.base_breakdown(product)
    return await info.context.loaders.get(PriceBreakdownLoader).price(info, product, quantity)


async def variant_price(
    info: Info, variant: m.ProductVariant, currency: str, quantity: int
) -> PriceBreakdownValue:
    """``variant``'s unit price (its product's ``currency``) for the viewer buying
    ``quantity``: its base at once when no plugin changes prices, else batched with the
    request's other variants."""
    if not pricing.is_adjustable(info.context.plugins):
        return PriceBreakdownValue(currency=currency, base=variant.price_amount)
    loader = info.context.loaders.get(VariantPriceBreakdownLoader)
    return await loader.price(info, variant, quantity)


def _amount(adj: Adjustment | Mapping[str, Any]) -> int:
    return adj.amount if isinstance(adj, Adjustment) else int(adj["amount"])


def fee_types(
    adjustments: Iterable[Adjustment | Mapping[str, Any]], currency: str
) -> list[PriceAdjustment]:
    """The FEE adjustments (positive amounts) of an order or cart."""
    return adjustment_types([a for a in adjustments if _amount(a) > 0], currency)
