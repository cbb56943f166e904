"""Orders over GraphQL: an order, its lines and history, the orders list, and moving an order
along its state machine. The rules live in server.services.orders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay

from schema.addresses import ShippingAddress
from schema.loaders import (
    CustomerByIdLoader,
    OrderByIdLoader,
    OrderLineByIdLoader,
    OrderLinesByOrderIdLoader,
    OrderStatusChangesByOrderIdLoader,
    PaymentsByOrderIdLoader,
    ProductByIdLoader,
    ShipmentsByOrderIdLoader,
)
from schema.pricing import PriceAdjustment, PriceBreakdown, adjustment_types
from schema.pricing import stored_breakdown as stored_breakdown_type
from schema.products import Product
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import (
    Error,
    InvalidTransition,
    NotFoundError,
    ValidationError,
)
from server.graphql.ids import filter_node_id, parse_node_id, parse_pk, require_node_id
from server.graphql.money import Money, money
from server.graphql.mutations import run_mutation as mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, SortDirection, SortKey, paginate
from server.permissions import ORDERS_MANAGE, ORDERS_READ
from server.services import orders as service
from server.services import shipments as shipment_service

if TYPE_CHECKING:
    from schema.customers import Customer
    from schema.shipments import Shipment

OrderStatus = strawberry.enum(m.OrderStatus, name="OrderStatus")
PaymentStatus = strawberry.enum(m.PaymentStatus, name="PaymentStatus")


@strawberry.type(description="A product line of an order, as it was placed.")
class OrderLine(ModelNode):
    loader = OrderLineByIdLoader

    id: relay.NodeID[int]
    sku: str
    product_name: str
    quantity: int
    _model: strawberry.Private[m.OrderLine]
    _currency: strawberry.Private[str]

    @classmethod
    def from_model(cls, model: m.OrderLine, currency: str = "CNY") -> Self:
        return cls(
            id=model.id,  # type: ignore[arg-type]
            sku=model.sku,
            product_name=model.product_name,
            quantity=model.quantity,
            _model=model,
            _currency=currency,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        # A line is visible exactly when its order is.
        ids = [parse_pk(i) for i in node_ids]
        rows = await info.context.loaders.get(OrderLineByIdLoader).load_many(
            [i for i in ids if i is not None]
        )
        by_id = {row.id: row for row in rows if row is not None}
        order_rows = await info.context.loaders.get(OrderByIdLoader).load_many(
            [row.order_id for row in by_id.values()]
        )
        orders = {o.id: o for o in order_rows if o is not None}
        out: list[Self | None] = []
        for i in ids:
            row = by_id.get(i) if i is not None else None
            order = orders.get(row.order_id) if row is not None else None
            visible = order is not None and service.can_view(order, info.context.viewer)
            out.append(cls.from_model(row, order.currency) if visible else None)  # type: ignore[union-attr,arg-type]
        return out

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.get(ProductByIdLoader).load(self._model.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The unit price paid (adjustments applied).")
    def unit_price(self) -> Money:
        return money(self._model.unit_price_amount, self._currency)

    @strawberry.field(description="The catalogue price when the order was placed.")
    def base_price(self) -> Money:
        return money(self._model.base_unit_price_amount, self._currency)

    @strawberry.field
    def line_total(self) -> Money:
        return money(self._model.line_total_amount, self._currency)

    @strawberry.field(description="How the unit price was made, as placed.")
    def price_breakdown(self) -> PriceBreakdown:
        return stored_breakdown_type(
            base=self._model.base_unit_price_amount,
            unit=self._model.unit_price_amount,
            quantity=self._model.quantity,
            adjustments=self._model.adjustments,
            currency=self._currency,
        )


@strawberry.type(description="One step in an order's history.")
class OrderStatusChange:
    from_status: OrderStatus | None
    to_status: OrderStatus
    note: str
    at: datetime
    _actor: strawberry.Private[str]

    @strawberry.field(description="Who made the change (with orders.read; null for others).")
    def actor(self, info: Info) -> str | None:
        return self._actor if info.context.viewer.has(ORDERS_READ, ORDERS_MANAGE) else None


@strawberry.type(description="A payment attempt for an order.")
class Payment:
    gateway: str
    amount: Money
    status: PaymentStatus
    reference: str
    message: str
    created_at: datetime

    @classmethod
    def from_model(cls, row: m.Payment) -> Payment:
        return cls(
            gateway=row.gateway,
            amount=money(row.amount, row.currency),
            status=row.status,
            reference=row.reference,
            message=row.message,
            created_at=row.created_at,
        )


@strawberry.type(description="An order: visible to its customer and with orders.read only.")
class Order(ModelNode):
    loader = OrderByIdLoader

    id: relay.NodeID[int]
    number: str
    status: OrderStatus
    email: str | None
    currency: str
    placed_at: datetime
    updated_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    _model: strawberry.Private[m.Order]

    @classmethod
    def from_model(cls, model: m.Order) -> Self:
        return cls(
            id=model.id,  # type: ignore[arg-type]
            number=model.number,
            status=model.status,
            email=model.email,
            currency=model.currency,
            placed_at=model.placed_at,
            updated_at=model.updated_at,
            paid_at=model.paid_at,
            cancelled_at=model.cancelled_at,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.Order) -> bool:
        return service.can_view(model, info.context.viewer)

    def _money(self, minor: int) -> Money:
        return money(minor, self._model.currency)

    @strawberry.field(description="Sum of the line totals.")
    def subtotal(self) -> Money:
        return self._money(self._model.subtotal_amount)

    @strawberry.field(description="What the order adjustments took off.")
    def discount(self) -> Money:
        return self._money(self._model.discount_amount)

    @strawberry.field
    def shipping(self) -> Money:
        return self._money(self._model.shipping_amount)

    @strawberry.field(description="Subtotal - discount + shipping: what the customer pays.")
    def total(self) -> Money:
        return self._money(self._model.total_amount)

    @strawberry.field(description="Order-level adjustments, as placed.")
    def adjustments(self) -> list[PriceAdjustment]:
        return adjustment_types(self._model.adjustments, self._model.currency)

    @strawberry.field
    def shipping_address(self) -> ShippingAddress | None:
        return ShippingAddress.from_dict(self._model.shipping_address)

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await info.context.loaders.get(OrderLinesByOrderIdLoader).load(self._model.id)
        return [OrderLine.from_model(row, self._model.currency) for row in rows]

    @strawberry.field(description="Every status change, oldest first.")
    async def status_history(self, info: Info) -> list[OrderStatusChange]:
        rows = await info.context.loaders.get(OrderStatusChangesByOrderIdLoader).load(
            self._model.id
        )
        return [
            OrderStatusChange(
                from_status=row.from_status,
                to_status=row.to_status,
                note=row.note,
                at=row.at,
                _actor=row.actor,
            )
            for row in rows
        ]

    @strawberry.field
    async def payments(self, info: Info) -> list[Payment]:
        rows = await info.context.loaders.get(PaymentsByOrderIdLoader).load(self._model.id)
        return [Payment.from_model(row) for row in rows]

    @strawberry.field
    async def shipments(
        self, info: Info
    ) -> list[Annotated[Shipment, strawberry.lazy("schema.shipments")]]:
        from schema.shipments import Shipment

        # The same rule as a shipment by id: orders.read alone does not show shipments.
        if not shipment_service.can_view(self._model, info.context.viewer):
            return []
        rows = await info.context.loaders.get(ShipmentsByOrderIdLoader).load(self._model.id)
        return [Shipment.from_model(row) for row in rows]

    @strawberry.field(description="The buyer; null for a guest order.")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("schema.customers")] | None:
        from schema.customers import Customer

        if self._model.customer_id is None:
            return None
        row = await info.context.loaders.get(CustomerByIdLoader).load(self._model.customer_id)
        if row is None or not Customer.can_view(info, row):
            return None
        return Customer.from_model(row)


@strawberry.input
class OrderFilter:
    status: OrderStatus | None = None
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


_SORT_COLUMNS = {
    OrderSortField.PLACED_AT: (m.Order.placed_at, "placed_at"),
    OrderSortField.TOTAL: (m.Order.total_amount, "total_amount"),
}


def _orders_statement(info: Info, filter: OrderFilter | None) -> Any:
    viewer = info.context.viewer
    stmt = select(m.Order)
    if viewer.is_customer:
        stmt = stmt.where(m.Order.customer_id == viewer.customer_id)
    elif not viewer.has(ORDERS_READ, ORDERS_MANAGE):
        return None
    if filter is None:
        return stmt
    if filter.status is not None:
        stmt = stmt.where(m.Order.status == filter.status)
    if filter.customer_id is not None:
        # For a customer this can only narrow their own orders (another id gives nothing).
        stmt = stmt.where(m.Order.customer_id == filter_node_id(filter.customer_id, "Customer"))
    if filter.placed_from is not None:
        stmt = stmt.where(m.Order.placed_at >= filter.placed_from)
    if filter.placed_to is not None:
        stmt = stmt.where(m.Order.placed_at < filter.placed_to)
    return stmt


@strawberry.type
class OrderQueries:
    @strawberry.field(
        description="Orders you may see: a customer their own, orders.read all, others none."
    )
    async def orders(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: OrderFilter | None = None,
        sort: OrderSort | None = None,
    ) -> Connection[Order]:
        sort = sort or OrderSort()
        stmt = _orders_statement(info, filter)
        if stmt is None:
            stmt = select(m.Order).where(m.Order.id.is_(None))
        column, attr = _SORT_COLUMNS[sort.field]
        return await paginate(
            info.context.db.scalars,
            stmt,
            keys=[SortKey(column=column, label=attr)],
            id_column=m.Order.id,
            descending=sort.direction is SortDirection.DESC,
            to_node=Order.from_model,
            key_of=lambda o: [getattr(o, attr), o.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )

    @strawberry.field(description="An order by id; null if it is not there or not yours.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        ident = parse_node_id(id, "Order")
        if ident is None:
            return None
        row = await info.context.loaders.get(OrderByIdLoader).load(ident)
        if row is None or not service.can_view(row, info.context.viewer):
            return None
        return Order.from_model(row)


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
    status: OrderStatus
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


OrderChangeErrors = NotFoundError | ValidationError | InvalidTransition
CancelOrderResult = Annotated[
    CancelOrderSuccess | OrderChangeErrors, strawberry.union("CancelOrderResult")
]
UpdateOrderStatusResult = Annotated[
    UpdateOrderStatusSuccess | OrderChangeErrors, strawberry.union("UpdateOrderStatusResult")
]
ConfirmReceiptResult = Annotated[
    ConfirmReceiptSuccess | OrderChangeErrors, strawberry.union("ConfirmReceiptResult")
]


@strawberry.type
class OrderMutations:
    @strawberry.mutation(
        description="Cancel an order: its customer while unpaid or paid, orders.manage until it "
        "ships. Reserved stock is released and a captured payment refunded."
    )
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: service.cancel_order(
                s, viewer, require_node_id(input.order_id, "Order", "orderId"), input.reason
            ),
        )
        return _order_result(result, CancelOrderSuccess)

    @strawberry.mutation(description="orders.manage: move an order along its state machine.")
    async def update_order_status(
        self, info: Info, input: UpdateOrderStatusInput
    ) -> UpdateOrderStatusResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: service.update_status(
                s,
                viewer,
                require_node_id(input.order_id, "Order", "orderId"),
                m.OrderStatus(input.status.value),
                input.note,
            ),
        )
        return _order_result(result, UpdateOrderStatusSuccess)

    @strawberry.mutation(description="The buyer confirms the goods arrived: DELIVERED → COMPLETED.")
    async def confirm_receipt(self, info: Info, input: ConfirmReceiptInput) -> ConfirmReceiptResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: service.confirm_receipt(
                s, viewer, require_node_id(input.order_id, "Order", "orderId")
            ),
        )
        return _order_result(result, ConfirmReceiptSuccess)


def _order_result(result: Any, success: type[Any]) -> Any:
    return result if isinstance(result, Error) else success(order=Order.from_model(result))


QUERIES: list[type[Any]] = [OrderQueries]
MUTATIONS: list[type[Any]] = [OrderMutations]
TYPES: list[type[Any]] = [Order, OrderLine]
