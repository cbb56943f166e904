"""Carts over GraphQL: a cart by its token, its lines priced for the viewer now, and the
mutations that change it.

The rules live in server/services/carts.py; a cart's prices and shipping quotes come from
server/services/checkout.py (``quote_cart``), as placeOrder's do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.addresses import ShippingAddress, ShippingAddressInput
from schema.checkout import ShippingQuote
from schema.pricing import (
    PriceAdjustment,
    PriceBreakdown,
    adjustment_types,
    breakdown_type,
    fee_types,
)
from schema.products import Product
from schema.variants import ProductVariant
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import (
    ConflictError,
    IdempotencyConflict,
    NotFoundError,
    ValidationError,
    VariantRequired,
)
from server.graphql.ids import optional_node_id, require_node_id
from server.graphql.money import Money, money
from server.graphql.mutations import mutate
from server.graphql.node import FromModel
from server.services import carts, checkout
from server.services.errors import ValidationFailed

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.CartStatus, name="CartStatus")


@strawberry.type(description="A variant (SKU) of a product in a cart, priced for the viewer now.")
class CartLine(FromModel):
    # Built from a priced line's cart line (``_priced.line``), with its global id.
    id: relay.GlobalID
    quantity: int
    _priced: strawberry.Private[checkout.PricedLine]

    @strawberry.field
    def product(self) -> Product | None:
        # The row the cart was priced with: no statement of its own.
        return Product.from_model(self._priced.product)

    @strawberry.field(description="The variant (SKU) this line holds.")
    def variant(self) -> ProductVariant:
        # Priced with the line: no statement of its own. Shown even once taken off sale.
        return ProductVariant.from_model(self._priced.variant)

    @strawberry.field
    def unit_price(self) -> Money:
        b = self._priced.breakdown
        return money(b.final, b.currency)

    @strawberry.field
    def price_breakdown(self) -> PriceBreakdown:
        return breakdown_type(self._priced.breakdown, self.quantity)

    @strawberry.field
    def line_total(self) -> Money:
        return money(self._priced.total, self._priced.breakdown.currency)


@strawberry.type(
    description="A free item a plugin adds to a cart (cart_gifts): a variant at a zero price, "
    "not one of the cart's lines (the shopper does not change it)."
)
class CartGift:
    _gift: strawberry.Private[checkout.PricedGift]

    @strawberry.field
    def product(self) -> Product:
        return Product.from_model(self._gift.product)

    @strawberry.field(description="The variant (SKU) given.")
    def variant(self) -> ProductVariant:
        return ProductVariant.from_model(self._gift.variant)

    @strawberry.field
    def quantity(self) -> int:
        return self._gift.quantity

    @strawberry.field(description="Why it is given, e.g. 满299赠保温杯.")
    def label(self) -> str:
        return self._gift.gift.label

    @strawberry.field(description="The rule within the source that gives it.")
    def rule(self) -> str:
        return self._gift.gift.rule

    @strawberry.field(description="The plugin that gives it.")
    def source(self) -> str:
        return self._gift.gift.source

    @strawberry.field(description="The catalogue price, then the gift taking all of it off.")
    def price_breakdown(self) -> PriceBreakdown:
        return breakdown_type(self._gift.breakdown, self._gift.quantity)


class _Quote:
    """A cart object's quote, once computed, and the lock its first computation holds."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.value: checkout.CartQuote | None = None


@strawberry.type(
    description="A shopping cart. Reached by its token; a signed-in customer's cart is theirs "
    "alone. Prices are computed now (plugins' adjustments included)."
)
class Cart(FromModel):
    token: str
    status: m.CartStatus
    email: str | None
    currency: str
    created_at: datetime
    updated_at: datetime | None
    _model: strawberry.Private[m.Cart]
    _quote: strawberry.Private[_Quote] = dataclasses.field(default_factory=_Quote)

    async def quote(self, info: Info) -> checkout.CartQuote:
        # Priced once per cart object, however many fields ask. Computed in the asking field's
        # own task, never a task of its own: when the request's fields are cancelled, so is
        # the pricing, and no work outlives the request's database session.
        async with self._quote.lock:
            quote = self._quote.value
            if quote is None:
                quote = self._quote.value = await self._compute(info)
        return quote

    async def _compute(self, info: Info) -> checkout.CartQuote:
        ctx = info.context

        async def run(session: AsyncSession) -> checkout.CartQuote:
            customer = await checkout.pricing_customer(session, self._model, ctx.viewer)
            return await checkout.quote_cart(session, ctx.plugins, self._model, customer)

        return await ctx.db.run(run)

    @strawberry.field
    def shipping_address(self) -> ShippingAddress | None:
        return ShippingAddress.from_dict(self._model.shipping_address)

    @strawberry.field
    async def lines(self, info: Info) -> list[CartLine]:
        return [
            CartLine.from_model(p.line, id=relay.GlobalID("CartLine", str(p.line.id)), _priced=p)
            for p in (await self.quote(info)).lines
        ]

    @strawberry.field(
        description="Free items plugins add to the cart (e.g. a spend-and-gift promotion's), "
        "at a zero price; placing the order adds those still in stock to it."
    )
    async def gifts(self, info: Info) -> list[CartGift]:
        return [CartGift(_gift=g) for g in (await self.quote(info)).gifts]

    @strawberry.field(description="Units in the cart, over all lines.")
    async def item_count(self, info: Info) -> int:
        return sum(p.line.quantity for p in (await self.quote(info)).lines)

    @strawberry.field(description="Sum of the line totals.")
    async def subtotal(self, info: Info) -> Money:
        return money((await self.quote(info)).subtotal, self.currency)

    @strawberry.field(description="Adjustments to the whole order (e.g. spend-and-save).")
    async def order_adjustments(self, info: Info) -> list[PriceAdjustment]:
        return adjustment_types((await self.quote(info)).order_adjustments, self.currency)

    @strawberry.field(description="What the order's discounts take off.")
    async def discount(self, info: Info) -> Money:
        return money((await self.quote(info)).discount, self.currency)

    @strawberry.field(description="The order adjustments that add to the total (kind FEE).")
    async def fees(self, info: Info) -> list[PriceAdjustment]:
        return fee_types((await self.quote(info)).order_adjustments, self.currency)

    @strawberry.field(description="What the fees add.")
    async def fee_total(self, info: Info) -> Money:
        return money((await self.quote(info)).fee_total, self.currency)

    @strawberry.field(description="Ways to ship this cart; none means shipping is free.")
    async def shipping_quotes(self, info: Info) -> list[ShippingQuote]:
        return [
            ShippingQuote.of(q, self.currency) for q in (await self.quote(info)).shipping_quotes
        ]

    @strawberry.field(description="The cheapest shipping quote's price (zero when free).")
    async def shipping(self, info: Info) -> Money:
        quote = await self.quote(info)
        cheapest = quote.shipping_quote()
        return money(cheapest.amount if cheapest else 0, self.currency)

    @strawberry.field(description="Subtotal - discount + fees + cheapest shipping.")
    async def total(self, info: Info) -> Money:
        quote = await self.quote(info)
        cheapest = quote.shipping_quote()
        return money(quote.total(cheapest.amount if cheapest else 0), self.currency)


@strawberry.type
class CartQueries:
    @strawberry.field(description="A cart, by its token; null if there is none for you.")
    async def cart(self, info: Info, token: str) -> Cart | None:
        row = await info.context.db.run(carts.find_cart, info.context.viewer, token)
        return Cart.from_model(row) if row is not None else None


@strawberry.input
class CreateCartInput:
    email: str | None = None
    currency: str | None = strawberry.field(default=None, description="Defaults to the shop's.")


@strawberry.type
class CreateCartSuccess:
    cart: Cart


@strawberry.input
class CartLineInput:
    variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The variant (SKU) to add."
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A product with a single variant on sale: that variant. With variantId, "
        "the product the variant must belong to.",
    )
    quantity: int


@strawberry.input
class CartAddLinesInput:
    cart_token: str
    lines: list[CartLineInput]
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Makes a retry safe: the same key with the same lines adds nothing again "
        "and returns the cart; with other lines it is an IdempotencyConflict.",
    )


@strawberry.type
class CartAddLinesSuccess:
    cart: Cart


@strawberry.input
class CartUpdateLineInput:
    cart_token: str
    line_id: strawberry.ID
    quantity: int = strawberry.field(description="0 removes the line.")


@strawberry.type
class CartUpdateLineSuccess:
    cart: Cart


@strawberry.input
class CartRemoveLineInput:
    cart_token: str
    line_id: strawberry.ID


@strawberry.type
class CartRemoveLineSuccess:
    cart: Cart


@strawberry.input(description="Give an address, or the id of one of your saved addresses.")
class CartSetShippingAddressInput:
    cart_token: str
    address: ShippingAddressInput | None = None
    address_id: strawberry.ID | None = None


@strawberry.type
class CartSetShippingAddressSuccess:
    cart: Cart


CartErrors = NotFoundError | ValidationError | ConflictError
CreateCartResult = Annotated[
    CreateCartSuccess | ValidationError, strawberry.union("CreateCartResult")
]
CartAddLinesResult = Annotated[
    CartAddLinesSuccess | CartErrors | VariantRequired | IdempotencyConflict,
    strawberry.union("CartAddLinesResult"),
]
CartUpdateLineResult = Annotated[
    CartUpdateLineSuccess | CartErrors, strawberry.union("CartUpdateLineResult")
]
CartRemoveLineResult = Annotated[
    CartRemoveLineSuccess | CartErrors, strawberry.union("CartRemoveLineResult")
]
CartSetShippingAddressResult = Annotated[
    CartSetShippingAddressSuccess | CartErrors, strawberry.union("CartSetShippingAddressResult")
]


@strawberry.type
class CartMutations:
    @strawberry.mutation(description="Start a cart; a signed-in customer's cart is theirs.")
    async def create_cart(self, info: Info, input: CreateCartInput) -> CreateCartResult:
        ctx = info.context

        async def work(session: AsyncSession) -> m.Cart:
            currency = input.currency or ctx.settings.currency
            return await carts.create_cart(
                session, ctx.viewer, currency=currency, email=input.email
            )

        return await mutate(info, work, lambda cart: CreateCartSuccess(cart=Cart.from_model(cart)))

    @strawberry.mutation(
        description="Add variants (SKUs) to the cart, merged into the line of the same variant."
    )
    async def cart_add_lines(self, info: Info, input: CartAddLinesInput) -> CartAddLinesResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Cart:
            lines = [
                carts.LineRequest(
                    quantity=line.quantity,
                    product_id=optional_node_id(line.product_id, "Product", f"lines.{i}.productId"),
                    variant_id=optional_node_id(
                        line.variant_id, "ProductVariant", f"lines.{i}.variantId"
                    ),
                )
                for i, line in enumerate(input.lines)
            ]
            return await carts.add_lines(
                session, viewer, input.cart_token, lines, idempotency_key=input.idempotency_key
            )

        return await mutate(
            info, work, lambda cart: CartAddLinesSuccess(cart=Cart.from_model(cart))
        )

    @strawberry.mutation(description="Set a line's quantity (0 removes it).")
    async def cart_update_line(
        self, info: Info, input: CartUpdateLineInput
    ) -> CartUpdateLineResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Cart:
            line_id = require_node_id(input.line_id, "CartLine", "lineId")
            return await carts.update_line(
                session, viewer, input.cart_token, line_id, input.quantity
            )

        return await mutate(
            info, work, lambda cart: CartUpdateLineSuccess(cart=Cart.from_model(cart))
        )

    @strawberry.mutation
    async def cart_remove_line(
        self, info: Info, input: CartRemoveLineInput
    ) -> CartRemoveLineResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Cart:
            line_id = require_node_id(input.line_id, "CartLine", "lineId")
            return await carts.remove_line(session, viewer, input.cart_token, line_id)

        return await mutate(
            info, work, lambda cart: CartRemoveLineSuccess(cart=Cart.from_model(cart))
        )

    @strawberry.mutation
    async def cart_set_shipping_address(
        self, info: Info, input: CartSetShippingAddressInput
    ) -> CartSetShippingAddressResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Cart:
            if (input.address is None) == (input.address_id is None):
                raise ValidationFailed("give either address or addressId", field="address")
            if input.address is not None:
                address = input.address.as_dict()
            else:
                address_id = require_node_id(input.address_id, "Address", "addressId")
                address = await carts.saved_address(session, viewer, address_id)
            return await carts.set_shipping_address(session, viewer, input.cart_token, address)

        return await mutate(
            info, work, lambda cart: CartSetShippingAddressSuccess(cart=Cart.from_model(cart))
        )


QUERIES: list[type[Any]] = [CartQueries]
MUTATIONS: list[type[Any]] = [CartMutations]
TYPES: list[type[Any]] = []
