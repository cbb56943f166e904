"""Carts, checkout, orders and payments over GraphQL.

Resolvers here translate GraphQL input to the services' plain values and rows back to types;
the rules live in server.services.{carts, checkout, orders, payments}.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.context import Info
from schema.errors import (
    CheckoutProblems,
    ConflictError,
    EmptyCart,
    Error,
    IdempotencyConflict,
    InvalidTransition,
    NotFoundError,
    OutOfStock,
    PaymentDeclined,
    ValidationError,
)
from schema.global_ids import filter_node_id, parse_node_id, parse_pk, require_node_id
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
from schema.money import Money, MoneyInput, money, to_minor
from schema.mutations import run_mutation
from schema.node import ModelNode
from schema.order_flow import PaymentGatewayQueries, PlannedParcel, fee_types, planned_parcels
from schema.pagination import Connection, SortDirection, SortKey, paginate
from schema.pricing import PriceAdjustment, PriceBreakdown, adjustment_types, breakdown_type
from schema.pricing import stored_breakdown as stored_breakdown_type
from schema.products import Product
from server import models as m
from server.permissions import ORDERS_MANAGE, ORDERS_READ
from server.services import carts, checkout, payments
from server.services import orders as service
from server.services import shipments as shipment_service
from server.services.errors import ValidationFailed

if TYPE_CHECKING:
    from schema.customers import Customer
    from schema.shipments import Shipment

R = TypeVar("R")

OrderStatus = strawberry.enum(m.OrderStatus, name="OrderStatus")
PaymentStatus = strawberry.enum(m.PaymentStatus, name="PaymentStatus")
CartStatus = strawberry.enum(m.CartStatus, name="CartStatus")


async def mutate(info: Info, work: Callable[[AsyncSession], Awaitable[R]]) -> R | Error:
    """Run ``work`` as the mutation's one transaction (input parsing errors included)."""
    return await run_mutation(info, work)


# --- shared value types -------------------------------------------------------------------


@strawberry.type(
    description="Where an order goes (a snapshot: editing the address book later "
    "does not change it)."
)
class ShippingAddress:
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    street: str
    postal_code: str

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ShippingAddress | None:
        if not data:
            return None
        return cls(**{name: str(data.get(name) or "") for name in carts.ADDRESS_FIELDS})


@strawberry.input(description="A delivery address, e.g. 浙江省 杭州市 西湖区 文三路 90 号.")
class ShippingAddressInput:
    recipient_name: str
    phone: str
    province: str
    city: str
    street: str
    district: str = ""
    postal_code: str = ""

    def as_dict(self) -> dict[str, str]:
        return carts.clean_address(
            {name: getattr(self, name) for name in carts.ADDRESS_FIELDS}, "shippingAddress"
        )


@strawberry.type(description="One way to ship a cart, offered by a plugin.")
class ShippingQuote:
    source: str
    code: str
    carrier: str
    label: str
    price: Money
    promised_days: int | None


# --- carts -------------------------------------------------------------------------------


@strawberry.type(description="A product in a cart, priced for the viewer now.")
class CartLine:
    id: relay.GlobalID
    quantity: int
    _priced: strawberry.Private[checkout.PricedLine]

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.get(ProductByIdLoader).load(self._priced.line.product_id)
        return Product.from_model(row) if row is not None else None

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
    description="A shopping cart. Reached by its token; a signed-in customer's cart is theirs "
    "alone. Prices are computed now (plugins' adjustments included)."
)
class Cart:
    token: str
    status: CartStatus
    email: str | None
    currency: str
    created_at: datetime
    updated_at: datetime | None
    _model: strawberry.Private[m.Cart]
    # The quote, once computed, and the lock its first computation holds.
    _quote: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_model(cls, model: m.Cart) -> Cart:
        return cls(
            token=model.token,
            status=model.status,
            email=model.email,
            currency=model.currency,
            created_at=model.created_at,
            updated_at=model.updated_at,
            _model=model,
            _quote={"lock": asyncio.Lock()},
        )

    async def quote(self, info: Info) -> checkout.CartQuote:
        # Priced once per cart object, however many fields ask. Computed in the asking field's
        # own task, never a task of its own: when the request's fields are cancelled, so is
        # the pricing, and no work outlives the request's database session.
        async with self._quote["lock"]:
            if "q" not in self._quote:
                self._quote["q"] = await self._compute(info)
        quote: checkout.CartQuote = self._quote["q"]
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
        quote = await self.quote(info)
        return [
            CartLine(
                id=relay.GlobalID("CartLine", str(p.line.id)),
                quantity=p.line.quantity,
                _priced=p,
            )
            for p in quote.lines
        ]

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
            ShippingQuote(
                source=q.source,
                code=q.code,
                carrier=q.carrier,
                label=q.label,
                price=money(q.amount, self.currency),
                promised_days=q.promised_days,
            )
            for q in (await self.quote(info)).shipping_quotes
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


# --- orders ------------------------------------------------------------------------------


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

    @strawberry.field(description="Subtotal - discount + fees + shipping: what the customer pays.")
    def total(self) -> Money:
        return self._money(self._model.total_amount)

    @strawberry.field(description="Order-level adjustments (discounts and fees), as placed.")
    def adjustments(self) -> list[PriceAdjustment]:
        return adjustment_types(self._model.adjustments, self._model.currency)

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
    @strawberry.field(description="A cart, by its token; null if there is none for you.")
    async def cart(self, info: Info, token: str) -> Cart | None:
        row = await info.context.db.run(carts.find_cart, info.context.viewer, token)
        return Cart.from_model(row) if row is not None else None

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


# --- mutations ---------------------------------------------------------------------------


@strawberry.input
class CreateCartInput:
    email: str | None = None
    currency: str | None = strawberry.field(default=None, description="Defaults to the shop's.")


@strawberry.type
class CreateCartSuccess:
    cart: Cart


@strawberry.input
class CartLineInput:
    product_id: strawberry.ID
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


@strawberry.type
class PlaceOrderSuccess:
    order: Order


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


CartErrors = NotFoundError | ValidationError | ConflictError
CreateCartResult = Annotated[
    CreateCartSuccess | ValidationError, strawberry.union("CreateCartResult")
]
CartAddLinesResult = Annotated[
    CartAddLinesSuccess | CartErrors | IdempotencyConflict, strawberry.union("CartAddLinesResult")
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
OrderChangeErrors = NotFoundError | ValidationError | InvalidTransition
PayOrderResult = Annotated[
    PayOrderSuccess | OrderChangeErrors | PaymentDeclined, strawberry.union("PayOrderResult")
]
CancelOrderResult = Annotated[
    CancelOrderSuccess | OrderChangeErrors, strawberry.union("CancelOrderResult")
]
UpdateOrderStatusResult = Annotated[
    UpdateOrderStatusSuccess | OrderChangeErrors, strawberry.union("UpdateOrderStatusResult")
]
ConfirmReceiptResult = Annotated[
    ConfirmReceiptSuccess | OrderChangeErrors, strawberry.union("ConfirmReceiptResult")
]


def _lines(lines: list[CartLineInput]) -> list[carts.LineRequest]:
    return [
        carts.LineRequest(
            product_id=require_node_id(line.product_id, "Product", f"lines.{i}.productId"),
            quantity=line.quantity,
        )
        for i, line in enumerate(lines)
    ]


def _minor(amount: MoneyInput, currency: str, field: str) -> int:
    try:
        return to_minor(amount.amount, currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=field) from exc


@strawberry.type
class OrderMutations:
    @strawberry.mutation(description="Start a cart; a signed-in customer's cart is theirs.")
    async def create_cart(self, info: Info, input: CreateCartInput) -> CreateCartResult:
        ctx = info.context
        result = await mutate(
            info,
            lambda s: carts.create_cart(
                s, ctx.viewer, currency=input.currency or ctx.settings.currency, email=input.email
            ),
        )
        return (
            CreateCartSuccess(cart=Cart.from_model(result))
            if isinstance(result, m.Cart)
            else result
        )  # type: ignore[return-value]

    @strawberry.mutation(description="Add products (merged into existing lines).")
    async def cart_add_lines(self, info: Info, input: CartAddLinesInput) -> CartAddLinesResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: carts.add_lines(
                s,
                viewer,
                input.cart_token,
                _lines(input.lines),
                idempotency_key=input.idempotency_key,
            ),
        )
        return _cart_result(result, CartAddLinesSuccess)

    @strawberry.mutation(description="Set a line's quantity (0 removes it).")
    async def cart_update_line(
        self, info: Info, input: CartUpdateLineInput
    ) -> CartUpdateLineResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: carts.update_line(
                s,
                viewer,
                input.cart_token,
                require_node_id(input.line_id, "CartLine", "lineId"),
                input.quantity,
            ),
        )
        return _cart_result(result, CartUpdateLineSuccess)

    @strawberry.mutation
    async def cart_remove_line(
        self, info: Info, input: CartRemoveLineInput
    ) -> CartRemoveLineResult:
        viewer = info.context.viewer
        result = await mutate(
            info,
            lambda s: carts.remove_line(
                s, viewer, input.cart_token, require_node_id(input.line_id, "CartLine", "lineId")
            ),
        )
        return _cart_result(result, CartRemoveLineSuccess)

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
                address = await carts.saved_address(
                    session, viewer, require_node_id(input.address_id or "", "Address", "addressId")
                )
            return await carts.set_shipping_address(session, viewer, input.cart_token, address)

        return _cart_result(await mutate(info, work), CartSetShippingAddressSuccess)

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
            )
            return await checkout.place_order(session, ctx.plugins, ctx.viewer, data)

        result = await mutate(info, work)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return PlaceOrderSuccess(order=Order.from_model(result))

    @strawberry.mutation(
        description="Pay an order's total through a gateway; a decline leaves it unpaid."
    )
    async def pay_order(self, info: Info, input: PayOrderInput) -> PayOrderResult:
        viewer, plugins = info.context.viewer, info.context.plugins

        async def work(session: AsyncSession) -> tuple[payments.PaymentAttempt, m.Order]:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            order = await service.load(session, order_id)
            currency = (input.amount.currency or (order.currency if order else "CNY")).upper()
            attempt = await payments.pay_order(
                session,
                plugins,
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
            return attempt, fresh

        result = await mutate(info, work)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        attempt, order = result
        payment = attempt.payment
        if payment.status is m.PaymentStatus.DECLINED:
            # The declined attempt is committed (it is history); the client gets a typed error.
            return PaymentDeclined(  # type: ignore[return-value]
                code="PAYMENT_DECLINED",
                message=f"the payment was declined: {payment.message or 'no reason given'}",
                field="token",
            )
        return PayOrderSuccess(
            order=Order.from_model(order),
            payment=Payment.from_model(payment),
            next_action=attempt.next_action,
        )

    @strawberry.mutation(
        description="Cancel an order: its customer while unpaid or paid, orders.manage until it "
        "ships. Reserved stock is released and a captured payment refunded."
    )
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderResult:
        viewer, plugins = info.context.viewer, info.context.plugins
        result = await mutate(
            info,
            lambda s: service.cancel_order(
                s,
                plugins,
                viewer,
                require_node_id(input.order_id, "Order", "orderId"),
                input.reason,
            ),
        )
        return _order_result(result, CancelOrderSuccess)

    @strawberry.mutation(description="orders.manage: move an order along its state machine.")
    async def update_order_status(
        self, info: Info, input: UpdateOrderStatusInput
    ) -> UpdateOrderStatusResult:
        viewer, plugins = info.context.viewer, info.context.plugins
        result = await mutate(
            info,
            lambda s: service.update_status(
                s,
                plugins,
                viewer,
                require_node_id(input.order_id, "Order", "orderId"),
                m.OrderStatus(input.status.value),
                input.note,
            ),
        )
        return _order_result(result, UpdateOrderStatusSuccess)

    @strawberry.mutation(description="The buyer confirms the goods arrived: DELIVERED → COMPLETED.")
    async def confirm_receipt(self, info: Info, input: ConfirmReceiptInput) -> ConfirmReceiptResult:
        viewer, plugins = info.context.viewer, info.context.plugins
        result = await mutate(
            info,
            lambda s: service.confirm_receipt(
                s, plugins, viewer, require_node_id(input.order_id, "Order", "orderId")
            ),
        )
        return _order_result(result, ConfirmReceiptSuccess)


def _cart_result(result: Any, success: type[Any]) -> Any:
    return result if isinstance(result, Error) else success(cart=Cart.from_model(result))


def _order_result(result: Any, success: type[Any]) -> Any:
    return result if isinstance(result, Error) else success(order=Order.from_model(result))


QUERIES: list[type[Any]] = [OrderQueries, PaymentGatewayQueries]
MUTATIONS: list[type[Any]] = [OrderMutations]
TYPES: list[type[Any]] = [Order, OrderLine]
