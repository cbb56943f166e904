"""Orders over GraphQL: an order with its lines and history, the orders list, and moving an order
along its state machine (cancelOrder, updateOrderStatus, confirmReceipt).

The rules live in server/services/orders.py. Other domains add their fields to Order:
``Order.payments`` (schema/payments.py), ``Order.shipments`` (schema/shipments.py). placeOrder is
in schema/checkout.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.addresses import ShippingAddress
from schema.customers import Customer
from schema.loaders import (
    OrderByIdLoader,
    OrderLineByIdLoader,
    OrderLinesByOrderIdLoader,
    OrderStatusChangesByOrderIdLoader,
    ProductByIdLoader,
    ProductVariantByIdLoader,
)
from schema.pricing import (
    PriceAdjustment,
    PriceBreakdown,
    adjustment_types,
    fee_types,
    stored_breakdown,
)
from schema.products import Product
from schema.shipment_plans import PlannedParcel, planned_parcels
from schema.variants import OptionValue, ProductVariant
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import (
    InvalidTransition,
    NotFoundError,
    NothingCaptured,
    OrderOnHold,
    ReturnExceedsQuantity,
    ValidationError,
)
from server.graphql.ids import filter_node_id, parse_pk, require_node_id
from server.graphql.money import Money, money
from server.graphql.mutations import mutate
from server.graphql.node import FromModel, ModelNode
from server.graphql.pagination import Connection, Page, SortDirection, SortKey
from server.graphql.permissions import HasPermission
from server.graphql.sockets import follow_node
from server.permissions import ORDERS_MANAGE, ORDERS_READ
from server.services import orders as service
from server.services import returns
from server.services.errors import ValidationFailed

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.OrderStatus, name="OrderStatus")


@strawberry.type(
    description="A line of an order: one variant (SKU) of a product, as it was placed."
)
class OrderLine(ModelNode):
    loader = OrderLineByIdLoader

    id: relay.NodeID[int]
    sku: str
    product_name: str
    quantity: int
    _model: strawberry.Private[m.OrderLine]
    # The order's currency (a line has none of its own): pass it to from_model.
    _currency: strawberry.Private[str]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # relay.Node's overloads; one async form here
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        return await cls.visible(info, [parse_pk(i) for i in node_ids])

    @classmethod
    async def visible(cls, info: Info, ids: Sequence[int | None]) -> list[Self | None]:
        """The lines of ``ids``: a line is visible exactly when its order is."""
        loaders = info.context.loaders
        rows = await loaders.get(OrderLineByIdLoader).load_many([i for i in ids if i is not None])
        by_id = {row.id: row for row in rows if row is not None}
        order_rows = await loaders.get(OrderByIdLoader).load_many(
            [row.order_id for row in by_id.values()]
        )
        orders = {o.id: o for o in order_rows if o is not None}
        out: list[Self | None] = []
        for i in ids:
            row = by_id.get(i) if i is not None else None
            order = orders.get(row.order_id) if row is not None else None
            if row is None or order is None or not service.can_view(order, info.context.viewer):
                out.append(None)
            else:
                out.append(cls.from_model(row, _currency=order.currency))
        return out

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        # As placed: shown even when the product is archived since.
        row = await info.context.loaders.get(ProductByIdLoader).load(self._model.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The variant (SKU) ordered; shown even once taken off sale.")
    async def variant(self, info: Info) -> ProductVariant | None:
        row = await info.context.loaders.get(ProductVariantByIdLoader).load(self._model.variant_id)
        return ProductVariant.from_model(row) if row is not None else None

    @strawberry.field(
        description="The variant's option values as ordered (empty for a product without "
        "options), kept even if the variant changes since."
    )
    def options(self) -> list[OptionValue]:
        return [OptionValue(name=k, value=v) for k, v in self._model.options.items()]

    @strawberry.field(description="The unit price paid (adjustments applied).")
    def unit_price(self) -> Money:
        return money(self._model.unit_price_amount, self._currency)

    @strawberry.field(description="The catalogue price when the order was placed.")
    def base_price(self) -> Money:
        return money(self._model.base_unit_price_amount, self._currency)

    @strawberry.field
    def line_total(self) -> Money:
        return money(self._model.line_total_amount, self._currency)

    @strawberry.field(
        description="A free item a plugin added (a spend-and-gift promotion's gift): its unit "
        "price is 0, its breakdown says which rule gave it."
    )
    def is_gift(self) -> bool:
        return self._model.gift_rule is not None

    @strawberry.field(description="The rule that gave this line free (null for a bought line).")
    def gift_rule(self) -> str | None:
        return self._model.gift_rule

    @strawberry.field(description="Units of this line given back and refunded (refundOrderLines).")
    def returned_quantity(self) -> int:
        return self._model.returned_quantity

    @strawberry.field(description="How the unit price was made, as placed.")
    def price_breakdown(self) -> PriceBreakdown:
        return stored_breakdown(
            base=self._model.base_unit_price_amount,
            unit=self._model.unit_price_amount,
            quantity=self._model.quantity,
            adjustments=self._model.adjustments,
            currency=self._currency,
        )


@strawberry.type(description="One step in an order's history.")
class OrderStatusChange(FromModel):
    from_status: m.OrderStatus | None
    to_status: m.OrderStatus
    note: str
    at: datetime
    _model: strawberry.Private[m.OrderStatusChange]

    @strawberry.field(description="Who made the change (with orders.read; null for others).")
    def actor(self, info: Info) -> str | None:
        return self._model.actor if info.context.viewer.has(ORDERS_READ, ORDERS_MANAGE) else None


@strawberry.type(
    description="Why a plugin holds an order back from fulfilment (order_fulfilment_hold)."
)
class OrderHold:
    plugin: str
    reason: str


@strawberry.type(description="An order: visible to its customer and with orders.read only.")
class Order(ModelNode):
    loader = OrderByIdLoader

    id: relay.NodeID[int]
    number: str
    status: m.OrderStatus
    email: str | None
    currency: str
    placed_at: datetime
    updated_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    _model: strawberry.Private[m.Order]

    @classmethod
    def can_view(cls, info: Info, model: m.Order) -> bool:
        return service.can_view(model, info.context.viewer)

    @property
    def row(self) -> m.Order:
        """The order's row, for the fields other domains add to Order."""
        return self._model

    def _money(self, minor: int) -> Money:
        return money(minor, self._model.currency)

    @strawberry.field(description="Sum of the line totals.")
    def subtotal(self) -> Money:
        return self._money(self._model.subtotal_amount)

    @strawberry.field(description="What the order's discounts took off.")
    def discount(self) -> Money:
        return self._money(self._model.discount_amount)

    @strawberry.field(description="The order adjustments that added to the total (kind FEE).")
    def fees(self) -> list[PriceAdjustment]:
        return fee_types(self._model.adjustments, self._model.currency)

    @strawberry.field(description="What the fees added.")
    def fee_total(self) -> Money:
        return self._money(self._model.fee_amount)

    @strawberry.field
    def shipping(self) -> Money:
        return self._money(self._model.shipping_amount)

    @strawberry.field(
        description="The chosen shipping quote's price before its shipping adjustments."
    )
    def shipping_list_amount(self) -> Money:
        return self._money(self._model.shipping_list_amount)

    @strawberry.field(
        description="What plugins changed the shipping price by (e.g. free shipping), as "
        "placed: shipping = shippingListAmount + these, never below zero."
    )
    def shipping_adjustments(self) -> list[PriceAdjustment]:
        return adjustment_types(self._model.shipping_adjustments, self._model.currency)

    @strawberry.field(description="The code of the shipping quote chosen at checkout.")
    def shipping_method(self) -> str | None:
        return self._model.shipping_method

    @strawberry.field(description="The carrier of the chosen shipping quote.")
    def shipping_carrier(self) -> str | None:
        return self._model.shipping_carrier

    @strawberry.field(
        description="The delivery promise made at checkout: the first day it may arrive "
        "(the shop's time zone)."
    )
    def promised_from(self) -> date | None:
        return self._model.promised_from

    @strawberry.field(
        description="The delivery promise made at checkout: the last day it may arrive "
        "(included; the shop's time zone)."
    )
    def promised_by(self) -> date | None:
        return self._model.promised_by

    @strawberry.field(description="Subtotal - discount + fees + shipping: what the customer pays.")
    def total(self) -> Money:
        return self._money(self._model.total_amount)

    @strawberry.field(description="Order-level adjustments (discounts and fees), as placed.")
    def adjustments(self) -> list[PriceAdjustment]:
        return adjustment_types(self._model.adjustments, self._model.currency)

    @strawberry.field(
        description="orders.read: why plugins hold it back from FULFILLING and SHIPPED (empty: "
        "it may go on). Asks the plugins for this order when selected, so ask it of one "
        "order or a short page: a page of orders asks once per order.",
        permission_classes=[HasPermission(ORDERS_READ, ORDERS_MANAGE)],
    )
    async def holds(self, info: Info) -> list[OrderHold]:
        ctx = info.context
        holds = await ctx.db.run(service.holds_of, ctx.plugins, self._model)
        return [OrderHold(plugin=plugin, reason=reason) for plugin, reason in holds]

    @strawberry.field(
        description="The parcels planned when it was paid for (empty before; like shipments, "
        "for its customer and shipments.read)."
    )
    def shipment_plan(self, info: Info) -> list[PlannedParcel]:
        return planned_parcels(info, self._model)

    @strawberry.field
    def shipping_address(self) -> ShippingAddress | None:
        return ShippingAddress.from_dict(self._model.shipping_address)

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await info.context.loaders.get(OrderLinesByOrderIdLoader).load(self.id)
        return [OrderLine.from_model(row, _currency=self.currency) for row in rows]

    @strawberry.field(description="Every status change, oldest first.")
    async def status_history(self, info: Info) -> list[OrderStatusChange]:
        rows = await info.context.loaders.get(OrderStatusChangesByOrderIdLoader).load(self.id)
        return [OrderStatusChange.from_model(row) for row in rows]

    @strawberry.field(description="The buyer; null for a guest order.")
    async def customer(self, info: Info) -> Customer | None:
        return await Customer.load(info, self._model.customer_id)


@strawberry.input
class OrderFilter:
    status: m.OrderStatus | None = None
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="One customer's orders (a customer gets only their own)."
    )
    placed_from: datetime | None = None
    placed_to: datetime | None = strawberry.field(
        default=None, description="Exclusive upper bound."
    )


@strawberry.enum
class OrderSortField(Enum):
    PLACED_AT = "PLACED_AT"
    TOTAL = "TOTAL"


@strawberry.input
class OrderSort:
    field: OrderSortField = OrderSortField.PLACED_AT
    direction: SortDirection = SortDirection.DESC


_SORT_KEYS = {
    OrderSortField.PLACED_AT: SortKey(column=m.Order.placed_at, label="placed_at"),
    OrderSortField.TOTAL: SortKey(column=m.Order.total_amount, label="total_amount"),
}


def _order_query(filter: OrderFilter | None) -> service.OrderQuery:
    if filter is None:
        return service.OrderQuery()
    return service.OrderQuery(
        status=filter.status,
        customer_id=filter_node_id(filter.customer_id, "Customer"),
        placed_from=filter.placed_from,
        placed_to=filter.placed_to,
    )


@strawberry.type
class OrderQueries:
    @strawberry.field(
        description="Orders you may see: a customer their own, orders.read all, others none.",
        extensions=[Paged()],
    )
    async def orders(
        self,
        info: Info,
        page: Page,
        filter: OrderFilter | None = None,
        sort: OrderSort | None = None,
    ) -> Connection[Order]:
        sort = sort or OrderSort()
        return await connection(
            info,
            service.list_orders(info.context.viewer, _order_query(filter)),
            page,
            sort=[_SORT_KEYS[sort.field]],
            to_node=Order.from_model,
            descending=sort.direction is SortDirection.DESC,
        )

    @strawberry.field(description="An order by id; null if it is not there or not yours.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        return await Order.load_global_id(info, id)


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    reason: str | None = None


@strawberry.type
class CancelOrderSuccess:
    order: Order


@strawberry.input
class UpdateOrderStatusInput:
    order_id: strawberry.ID
    status: m.OrderStatus
    note: str | None = None


@strawberry.type
class UpdateOrderStatusSuccess:
    order: Order


@strawberry.input
class ConfirmReceiptInput:
    order_id: strawberry.ID


@strawberry.type
class ConfirmReceiptSuccess:
    order: Order


# What a mutation moving an order can answer (payOrder's too, in schema/payments.py).
OrderChangeErrors = NotFoundError | ValidationError | InvalidTransition
CancelOrderResult = Annotated[
    CancelOrderSuccess | OrderChangeErrors, strawberry.union("CancelOrderResult")
]
# OrderOnHold: a plugin holds the order back from FULFILLING/SHIPPED.
UpdateOrderStatusResult = Annotated[
    UpdateOrderStatusSuccess | OrderChangeErrors | OrderOnHold,
    strawberry.union("UpdateOrderStatusResult"),
]
ConfirmReceiptResult = Annotated[
    ConfirmReceiptSuccess | OrderChangeErrors, strawberry.union("ConfirmReceiptResult")
]


@strawberry.input
class ReturnedLineInput:
    order_line_id: strawberry.ID
    quantity: int = strawberry.field(description="Units of the line given back (at least 1).")


@strawberry.input
class RefundOrderLinesInput:
    order_id: strawberry.ID
    lines: list[ReturnedLineInput] = strawberry.field(
        description=f"At most {returns.MAX_LINES} lines; a line named twice adds up."
    )
    reason: str = strawberry.field(description="Why (1 to 500 characters); kept with the refund.")


@strawberry.type
class RefundOrderLinesSuccess:
    order: Order
    amount: Money = strawberry.field(description="What was given back (0 for free lines).")
    reference: str = strawberry.field(
        description="The gateways' reference of the refund (empty when nothing was given back)."
    )


RefundOrderLinesResult = Annotated[
    RefundOrderLinesSuccess
    | NotFoundError
    | ValidationError
    | ReturnExceedsQuantity
    | NothingCaptured,
    strawberry.union("RefundOrderLinesResult"),
]


def _returned_lines(lines: list[ReturnedLineInput]) -> dict[int, int]:
    if len(lines) > returns.MAX_LINES:
        raise ValidationFailed(f"a return has at most {returns.MAX_LINES} lines", field="lines")
    wanted: dict[int, int] = {}
    for i, line in enumerate(lines):
        line_id = require_node_id(line.order_line_id, "OrderLine", f"lines.{i}.orderLineId")
        if line.quantity < 1:
            raise ValidationFailed("quantity must be at least 1", field=f"lines.{i}.quantity")
        wanted[line_id] = wanted.get(line_id, 0) + line.quantity
    return wanted


@strawberry.type
class OrderMutations:
    @strawberry.mutation(
        description="Cancel an order: its customer while unpaid or paid, orders.manage until it "
        "ships. Reserved stock is released and a captured payment refunded."
    )
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Order:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            return await service.cancel_order(
                session, info.context.plugins, viewer, order_id, input.reason
            )

        return await mutate(
            info, work, lambda order: CancelOrderSuccess(order=Order.from_model(order))
        )

    @strawberry.mutation(description="orders.manage: move an order along its state machine.")
    async def update_order_status(
        self, info: Info, input: UpdateOrderStatusInput
    ) -> UpdateOrderStatusResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Order:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            target = m.OrderStatus(input.status.value)
            return await service.update_status(
                session, info.context.plugins, viewer, order_id, target, input.note
            )

        return await mutate(
            info, work, lambda order: UpdateOrderStatusSuccess(order=Order.from_model(order))
        )

    @strawberry.mutation(
        description="orders.manage: units of an order's lines come back; the money for them "
        "(as the plugins reckon it: a discounted line gives back what was paid for it) is "
        "refunded from the order's captured payments."
    )
    async def refund_order_lines(
        self, info: Info, input: RefundOrderLinesInput
    ) -> RefundOrderLinesResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> returns.LinesRefund:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            wanted = _returned_lines(input.lines)
            return await returns.refund_order_lines(
                session, info.context.plugins, viewer, order_id, wanted, input.reason
            )

        return await mutate(
            info,
            work,
            lambda done: RefundOrderLinesSuccess(
                order=Order.from_model(done.order),
                amount=money(done.amount, done.order.currency),
                reference=done.reference,
            ),
        )

    @strawberry.mutation(description="The buyer confirms the goods arrived: DELIVERED → COMPLETED.")
    async def confirm_receipt(self, info: Info, input: ConfirmReceiptInput) -> ConfirmReceiptResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> m.Order:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            return await service.confirm_receipt(session, info.context.plugins, viewer, order_id)

        return await mutate(
            info, work, lambda order: ConfirmReceiptSuccess(order=Order.from_model(order))
        )


@strawberry.type
class OrderSubscriptions:
    @strawberry.subscription(
        description=(
            "The order at once, then afresh whenever it changes (status, payment, shipments). "
            "Its customer and orders.read only; anyone else gets NOT_FOUND and the stream ends."
        )
    )
    async def order_updated(self, info: Info, id: strawberry.ID) -> AsyncIterator[Order | None]:
        async for order in follow_node(info, Order, id, "order"):
            yield order


QUERIES: list[type[Any]] = [OrderQueries]
MUTATIONS: list[type[Any]] = [OrderMutations]
SUBSCRIPTIONS: list[type[Any]] = [OrderSubscriptions]
TYPES: list[type[Any]] = [Order, OrderLine]
