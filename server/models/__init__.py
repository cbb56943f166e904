"""The core's tables. Importing this package registers them all on ``SQLModel.metadata``."""

from server.models.base import utcnow
from server.models.customers import Address, Customer, MembershipTier, StaffRole, StaffUser
from server.models.events import CustomerEvent, CustomerEventKind, OutboxEvent
from server.models.inventory import StockLevel, Warehouse, WarehouseKind
from server.models.orders import (
    Cart,
    CartLine,
    CartStatus,
    IdempotencyKey,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Payment,
    PaymentStatus,
)
from server.models.products import Category, Product
from server.models.shipments import Shipment, ShipmentLine, ShipmentStatus, TrackingEvent

__all__ = [
    "Address",
    "Cart",
    "CartLine",
    "CartStatus",
    "Category",
    "Customer",
    "CustomerEvent",
    "CustomerEventKind",
    "IdempotencyKey",
    "MembershipTier",
    "Order",
    "OrderLine",
    "OrderStatus",
    "OrderStatusChange",
    "OutboxEvent",
    "Payment",
    "PaymentStatus",
    "Product",
    "Shipment",
    "ShipmentLine",
    "ShipmentStatus",
    "StaffRole",
    "StaffUser",
    "StockLevel",
    "TrackingEvent",
    "Warehouse",
    "WarehouseKind",
    "utcnow",
]
