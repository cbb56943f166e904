"""Payments over GraphQL: payOrder. The rules live in server.services.payments."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from schema.orders import Order, OrderChangeErrors, Payment
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import (
    Error,
    PaymentDeclined,
)
from server.graphql.ids import require_node_id
from server.graphql.money import MoneyInput, to_minor
from server.graphql.mutations import run_mutation as mutate
from server.services import orders as service
from server.services import payments
from server.services.errors import ValidationFailed


@strawberry.input
class PayOrderInput:
    order_id: strawberry.ID
    gateway: str = strawberry.field(
        description='"test" (token "tok_declined" is declined) or '
        '"manual" (orders.manage: money received offline).'
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


PayOrderResult = Annotated[
    PayOrderSuccess | OrderChangeErrors | PaymentDeclined, strawberry.union("PayOrderResult")
]


def _minor(amount: MoneyInput, currency: str, field: str) -> int:
    try:
        return to_minor(amount.amount, currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=field) from exc


@strawberry.type
class PaymentMutations:
    @strawberry.mutation(
        description="Pay an order's total through a gateway; a decline leaves it unpaid."
    )
    async def pay_order(self, info: Info, input: PayOrderInput) -> PayOrderResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> tuple[m.Payment, m.Order]:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            order = await service.load(session, order_id)
            currency = (input.amount.currency or (order.currency if order else "CNY")).upper()
            payment = await payments.pay_order(
                session,
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
            fresh = await service.load(session, order_id)
            assert fresh is not None
            return payment, fresh

        result = await mutate(info, work)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        payment, order = result
        if payment.status is m.PaymentStatus.DECLINED:
            # The declined attempt is committed (it is history); the client gets a typed error.
            return PaymentDeclined(  # type: ignore[return-value]
                code="PAYMENT_DECLINED",
                message=f"the payment was declined: {payment.message or 'no reason given'}",
                field="token",
            )
        return PayOrderSuccess(order=Order.from_model(order), payment=Payment.from_model(payment))


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [PaymentMutations]
TYPES: list[type[Any]] = []
