"""Checkout over GraphQL: the ways a cart can ship (``Cart.shippingQuotes``) and placeOrder.

The rules live in server/services/checkout.py: ``quote_cart`` prices a cart and asks the plugins
how it can ship, ``place_order`` turns it into an order.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.addresses import ShippingAddressInput
from schema.orders import Order
from schema.pricing import PriceAdjustment, adjustment_types
from server import hooktypes
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import (
    CheckoutProblems,
    ConflictError,
    EmptyCart,
    IdempotencyConflict,
    NotFoundError,
    OutOfStock,
    ValidationError,
)
from server.graphql.inputs import input_extras
from server.graphql.money import Money, money
from server.graphql.mutations import mutate
from server.graphql.node import FromModel
from server.services import channels, checkout


@strawberry.type(description="One way to ship a cart, offered by a plugin.")
class ShippingQuote(FromModel):
    """Built from a plugin's quote (server.plugin.ShippingQuote), its amount as ``price``."""

    source: str
    code: str
    carrier: str
    label: str
    price: Money = strawberry.field(
        description="What shipping this way costs: listAmount + adjustments, never below zero."
    )
    list_amount: Money = strawberry.field(
        description="The price the shipping plugin asked, before adjustments."
    )
    adjustments: list[PriceAdjustment] = strawberry.field(
        description="What plugins changed the price by (e.g. free shipping from a threshold)."
    )
    promised_days: int | None
    promised_from: date | None = strawberry.field(
        description="The first day it may arrive (the shop's time zone)."
    )
    promised_by: date | None = strawberry.field(
        description="The last day it may arrive, included (the shop's time zone)."
    )

    @classmethod
    def of(cls, quote: hooktypes.ShippingQuote, currency: str) -> ShippingQuote:
        listed = quote.amount if quote.list_amount is None else quote.list_amount
        return cls.from_model(
            quote,
            price=money(quote.amount, currency),
            list_amount=money(listed, currency),
            adjustments=adjustment_types(quote.adjustments, currency),
        )


@strawberry.input
class PlaceOrderInput:
    cart_token: str
    idempotency_key: str = strawberry.field(
        description="Retry with the same key and input to get the same order back."
    )
    shipping_address: ShippingAddressInput | None = strawberry.field(
        default=None, description="Defaults to the cart's shipping address."
    )
    email: str | None = None
    shipping_method: str | None = strawberry.field(
        default=None, description="A shipping quote's code; defaults to the cheapest."
    )
    channel: str | None = strawberry.field(
        default=None,
        description="Where the order came from: a SalesChannel's name (any case). With none "
        "of channel and the UTM tags, the order takes those of the visitor's latest touch "
        "(an event with a channel) within the attribution lookback.",
    )
    utm_source: str | None = strawberry.field(default=None, description="At most 100.")
    utm_medium: str | None = strawberry.field(default=None, description="At most 100.")
    utm_campaign: str | None = strawberry.field(default=None, description="At most 100.")
    session_id: str | None = strawberry.field(
        default=None,
        description="A guest's behaviour session (the sessionId of their recordEvent calls): "
        "their touches count for the order.",
    )


@strawberry.type
class PlaceOrderSuccess:
    order: Order


PlaceOrderResult = Annotated[
    PlaceOrderSuccess
    | NotFoundError
    | ValidationError
    | ConflictError
    | EmptyCart
    | OutOfStock
    | CheckoutProblems
    | IdempotencyConflict,
    strawberry.union("PlaceOrderResult"),
]


@strawberry.type
class CheckoutMutations:
    @strawberry.mutation(
        description="Turn a cart into an order: prices, stock and the order in one transaction. "
        "Idempotent on idempotencyKey."
    )
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderResult:
        ctx = info.context

        async def work(session: AsyncSession) -> m.Order:
            data = checkout.PlaceOrderInput(
                cart_token=input.cart_token,
                idempotency_key=input.idempotency_key,
                shipping_address=input.shipping_address.as_dict()
                if input.shipping_address
                else None,
                email=input.email,
                shipping_method=input.shipping_method,
                plugin_inputs=input_extras(input),
                source=channels.traffic_source(
                    input.channel, input.utm_source, input.utm_medium, input.utm_campaign
                ),
                session_id=input.session_id,
            )
            return await checkout.place_order(
                session, ctx.plugins, ctx.viewer, data, lookback=channels.lookback_of(ctx.settings)
            )

        return await mutate(
            info, work, lambda order: PlaceOrderSuccess(order=Order.from_model(order))
        )


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [CheckoutMutations]
TYPES: list[type[Any]] = []
