"""Carts, orders, their lines, status history, payments and idempotency keys."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field
from server.models.channels import SalesChannel, channel_column, utm_column
from server.models.products import variant_key


class CartStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONVERTED = "CONVERTED"


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    FULFILLING = "FULFILLING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class PaymentStatus(StrEnum):
    # The gateway holds the money; the core captures it next.
    AUTHORISED = "AUTHORISED"
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    # The shopper has still to act (scan, confirm); the gateway's webhook settles it.
    PENDING = "PENDING"


class Cart(SQLModel, table=True):
    __tablename__ = "cart"

    id: int | None = Field(default=None, primary_key=True)
    # An unguessable token lets an anonymous shopper keep a cart.
    token: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    email: str | None = None
    currency: str = "CNY"
    status: CartStatus = enum_field(CartStatus, CartStatus.ACTIVE)
    shipping_address: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class CartLine(SQLModel, table=True):
    __tablename__ = "cart_line"
    __table_args__ = (
        UniqueConstraint("cart_id", "variant_id", name="cart_variant"),
        variant_key("cart_line"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", index=True)
    variant_id: int = Field(index=True)
    quantity: int


class Order(SQLModel, table=True):
    __tablename__ = "order"
    __table_args__ = (
        # The KPI aggregates read the orders of a day, and those changed since their last run.
        Index("ix_order_placed_at", "placed_at"),
        Index("ix_order_updated_at", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    cart_id: int | None = Field(default=None, foreign_key="cart.id", index=True)
    email: str | None = None
    status: OrderStatus = enum_field(OrderStatus, OrderStatus.PENDING_PAYMENT, index=True)
    currency: str = "CNY"
    subtotal_amount: int = 0
    # What the order's discounts took off (positive), and what its fees added.
    discount_amount: int = 0
    fee_amount: int = 0
    shipping_amount: int = 0
    # The chosen shipping quote's price before the plugins' shipping_adjustments, and those
    # adjustments as placed ([{source, rule, label, amount}]): shipping_amount is the list
    # price plus them, never below zero.
    shipping_list_amount: int = 0
    shipping_adjustments: list[dict[str, Any]] = json_field(list)
    # The chosen shipping quote (its code, carrier and the plugin that offered it) and its
    # delivery promise (dates in the shop's time zone, both included), as placed.
    shipping_method: str | None = Field(default=None, sa_column=Column(String(64)))
    shipping_carrier: str | None = Field(default=None, sa_column=Column(String(120)))
    shipping_source: str | None = Field(default=None, sa_column=Column(String(64)))
    promised_from: date | None = None
    promised_by: date | None = None
    total_amount: int = 0
    # Order-level adjustments as placed: [{source, rule, label, amount}] (negative: discount).
    adjustments: list[dict[str, Any]] = json_field(list)
    shipping_address: dict[str, Any] = json_field(dict)
    # The parcels planned when it was paid for: [{source, warehouse_id, carrier, note,
    # lines: [{order_line_id, quantity}]}] (plan_shipments).
    shipment_plan: list[dict[str, Any]] = json_field(list)
    # Where the order came from: as checkout was told, else the visitor's latest touch
    # (server.services.channels.latest_touch).
    channel: SalesChannel | None = channel_column()
    utm_source: str | None = utm_column()
    utm_medium: str | None = utm_column()
    utm_campaign: str | None = utm_column()
    # A guest's behaviour session (the sessionId their events were recorded with), so that
    # attribution finds their touches; None for a customer's order.
    session_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    placed_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()
    paid_at: datetime | None = datetime_field()
    cancelled_at: datetime | None = datetime_field()


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (variant_key("order_line"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", index=True)
    variant_id: int = Field(index=True)
    warehouse_id: int | None = Field(default=None, foreign_key="warehouse.id")
    sku: str
    product_name: str
    # The variant's option values as ordered ({"colour": "red", "size": "M"}).
    options: dict[str, str] = json_field(dict)
    quantity: int
    base_unit_price_amount: int
    unit_price_amount: int
    line_total_amount: int
    # Unit-price adjustments as placed: [{source, rule, label, amount}].
    adjustments: list[dict[str, Any]] = json_field(list)
    # A free line a plugin added (cart_gifts): the rule that gave it; None for a bought line.
    gift_rule: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    # Units given back (refund_lines); never more than quantity (a conditional UPDATE).
    returned_quantity: int = 0


class OrderStatusChange(SQLModel, table=True):
    __tablename__ = "order_status_change"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True, ondelete="CASCADE")
    from_status: OrderStatus | None = Field(
        default=None,
        sa_column=Column(SAEnum(OrderStatus, native_enum=False, length=32), nullable=True),
    )
    to_status: OrderStatus = enum_field(OrderStatus, OrderStatus.PENDING_PAYMENT)
    # Who made the change ("customer:12", "staff:3", "system"): the history is an audit trail.
    actor: str = ""
    note: str = ""
    at: datetime = created_at_field()


class Payment(SQLModel, table=True):
    __tablename__ = "payment"
    __table_args__ = (Index("ix_payment_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    gateway: str
    amount: int
    currency: str = "CNY"
    status: PaymentStatus = enum_field(PaymentStatus, PaymentStatus.CAPTURED)
    reference: str = ""
    message: str = ""
    created_at: datetime = created_at_field()
    # When its status last changed (a capture, a decline, a refund): the KPI aggregates find
    # the days a late refund changes by it.
    updated_at: datetime | None = datetime_field(index=True)


class PaymentRefund(SQLModel, table=True):
    """Part of a captured payment given back (``server.services.gateways.refund_amount``):
    the parts of a payment never add up to more than its amount."""

    __tablename__ = "payment_refund"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payment.id", index=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    amount: int
    currency: str = "CNY"
    # The gateway's id of the refund, and what it said.
    reference: str = Field(default="", sa_column=Column(String(120), nullable=False))
    reason: str = Field(default="", sa_column=Column(String(500), nullable=False))
    message: str = Field(default="", sa_column=Column(String(500), nullable=False))
    created_at: datetime = created_at_field()


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "operation", "key", name="scope_operation_key"),)

    id: int | None = Field(default=None, primary_key=True)
    # Who used the key ("customer:12", "cart:abc…"): keys are per client, not global.
    scope: str = Field(sa_column=Column(String(120), nullable=False))
    operation: str = Field(sa_column=Column(String(64), nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    request_hash: str
    result_id: int | None = None
    created_at: datetime = created_at_field()
