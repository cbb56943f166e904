"""Payments over GraphQL: an order's payment attempts (``Order.payments``) and payOrder.

The rules live in server/services/payments.py (``pay_order``); the gateways that charge and
refund in server/services/gateways.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.loaders import PaymentsByOrderIdLoader
from schema.orders import Order, OrderChangeErrors
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import PaymentDeclined
from server.graphql.ids import require_node_id
from server.graphql.money import Money, MoneyInput, money, to_minor
from server.graphql.mutations import mutate
from server.graphql.node import FromModel
from server.services import gateways, orders, payments
from server.services.errors import ValidationFailed

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.PaymentStatus, name="PaymentStatus")


@strawberry.type(description="A payment attempt for an order.")
class Payment(FromModel):
    gateway: str
    amount: Money
    status: m.PaymentStatus
    reference: str
    message: str
    created_at: datetime

    @classmethod
    def from_model(cls, row: m.Payment, **values: Any) -> Self:
        return super().from_model(row, amount=money(row.amount, row.currency), **values)


@strawberry.type
class OrderPayments:
    """Fields this domain adds to Order (``root`` is the Order)."""

    @strawberry.field
    async def payments(self, root: Order, info: Info) -> list[Payment]:
        rows = await info.context.loaders.get(PaymentsByOrderIdLoader).load(root.id)
        return [Payment.from_model(row) for row in rows]


@strawberry.input
class PayOrderInput:
    order_id: strawberry.ID
    gateway: str = strawberry.field(
        description='A gateway\'s code (paymentGateways): the core offers "test" (token '
        '"tok_declined" is declined, "tok_pending" waits for its webhook) and "manual" '
        "(orders.manage: money received offline); plugins offer more."
    )
    amount: MoneyInput = strawberry.field(description="Must equal the order total.")
    token: str | None = None
    cart_token: str | None = strawberry.field(
        default=None, description="A guest proves the order is theirs with its cart's token."
    )


@strawberry.type
class PayOrderSuccess:
    order: Order
    payment: Payment
    next_action: str | None = strawberry.field(
        default=None,
        description="For a PENDING payment, what the shopper must do (a URL to open, a QR "
        "code's content); the gateway's webhook then settles it.",
    )


PayOrderResult = Annotated[
    PayOrderSuccess | OrderChangeErrors | PaymentDeclined, strawberry.union("PayOrderResult")
]


def _minor(amount: MoneyInput, currency: str, field: str) -> int:
    try:
        return to_minor(amount.amount, currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=field) from exc


def _paid(result: tuple[payments.PaymentAttempt, m.Order]) -> PayOrderSuccess | PaymentDeclined:
    attempt, order = result
    payment = attempt.payment
    if payment.status is m.PaymentStatus.DECLINED:
        # The declined attempt is committed (it is history); the client gets a typed error.
        return PaymentDeclined(
            code="PAYMENT_DECLINED",
            message=f"the payment was declined: {payment.message or 'no reason given'}",
            field="token",
        )
    return PayOrderSuccess(
        order=Order.from_model(order),
        payment=Payment.from_model(payment),
        next_action=attempt.next_action,
    )


@strawberry.type(description="A way to pay, offered by a plugin or the core.")
class PaymentGateway:
    code: str = strawberry.field(description="What payOrder(input: {gateway}) names.")
    label: str
    staff_only: bool = strawberry.field(
        description="Only for recording payments with orders.manage (money received offline)."
    )
    source: str = strawberry.field(description="The plugin offering it ('core' for the core).")


@strawberry.type
class PaymentGatewayQueries:
    @strawberry.field(description="The payment gateways you may pay with, by code.")
    async def payment_gateways(self, info: Info) -> list[PaymentGateway]:
        ctx = info.context
        offered = await gateways.offered(ctx.plugins)
        manager = orders.can_manage(ctx.viewer)
        return [
            PaymentGateway(code=g.code, label=g.label, staff_only=g.staff_only, source=g.source)
            for g in sorted(offered.values(), key=lambda g: g.code)
            if manager or not g.staff_only
        ]


@strawberry.type
class PaymentMutations:
    @strawberry.mutation(
        description="Pay an order's total through a gateway; a decline leaves it unpaid."
    )
    async def pay_order(self, info: Info, input: PayOrderInput) -> PayOrderResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> tuple[payments.PaymentAttempt, m.Order]:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            order = await orders.load(session, order_id)
            currency = (input.amount.currency or (order.currency if order else "CNY")).upper()
            attempt = await payments.pay_order(
                session,
                info.context.plugins,
                viewer,
                payments.PayOrderInput(
                    order_id=order_id,
                    gateway=input.gateway,
                    amount=_minor(input.amount, currency, "amount"),
                    currency=currency,
                    token=input.token,
                    cart_token=input.cart_token,
                ),
            )
            fresh = await orders.load(session, order_id)
            assert fresh is not None
            return attempt, fresh

        return await mutate(info, work, _paid)


QUERIES: list[type[Any]] = [PaymentGatewayQueries]
MUTATIONS: list[type[Any]] = [PaymentMutations]
TYPES: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {"Order": [OrderPayments]}
