"""The core's tables. Importing this package registers them all on ``SQLModel.metadata``."""

from server.models.audiences import Audience, AudienceChange, AudienceChangeKind, AudienceMember
from server.models.base import utcnow
from server.models.channels import MarketingCost, SalesChannel
from server.models.customers import (
    Address,
    Customer,
    MembershipTier,
    PendingRegistration,
    StaffRole,
    StaffUser,
)
from server.models.events import (
    CustomerEvent,
    CustomerEventKind,
    DeliveryStatus,
    JobLease,
    OutboxDelivery,
    OutboxEvent,
)
from server.models.experiments import (
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
)
from server.models.insights import (
    ClvModelFit,
    CustomerRfm,
    CustomerSegment,
    CustomerSegmentChange,
    CustomerValue,
    InsightRun,
)
from server.models.inventory import StockLevel, Warehouse, WarehouseKind
from server.models.kpis import (
    KpiAggregate,
    KpiCustomerFirst,
    KpiPeriod,
    KpiVisitor,
    KpiWatermark,
)
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
from server.models.products import Category, Product, ProductOption, ProductVariant
from server.models.search import SearchWord, Synonym, SynonymGroup
from server.models.security import ApiKey, AuditLogEntry, RefreshToken, TokenRevocation
from server.models.shipments import Shipment, ShipmentLine, ShipmentStatus, TrackingEvent
from server.models.surveys import Survey, SurveyKind, SurveyState, SurveyTrigger

__all__ = [
    "Address",
    "ApiKey",
    "Audience",
    "AudienceChange",
    "AudienceChangeKind",
    "AudienceMember",
    "AuditLogEntry",
    "Cart",
    "CartLine",
    "CartStatus",
    "Category",
    "ClvModelFit",
    "Customer",
    "CustomerEvent",
    "CustomerEventKind",
    "CustomerRfm",
    "CustomerSegment",
    "CustomerSegmentChange",
    "CustomerValue",
    "DeliveryStatus",
    "Experiment",
    "ExperimentExposure",
    "ExperimentMetric",
    "ExperimentStatus",
    "IdempotencyKey",
    "InsightRun",
    "JobLease",
    "KpiAggregate",
    "KpiCustomerFirst",
    "KpiPeriod",
    "KpiVisitor",
    "KpiWatermark",
    "MarketingCost",
    "MembershipTier",
    "Order",
    "OrderLine",
    "OrderStatus",
    "OrderStatusChange",
    "OutboxDelivery",
    "OutboxEvent",
    "PendingRegistration",
    "Payment",
    "PaymentStatus",
    "Product",
    "ProductOption",
    "ProductVariant",
    "RefreshToken",
    "SalesChannel",
    "SearchWord",
    "Shipment",
    "ShipmentLine",
    "ShipmentStatus",
    "StaffRole",
    "StaffUser",
    "StockLevel",
    "Survey",
    "SurveyKind",
    "SurveyState",
    "SurveyTrigger",
    "Synonym",
    "SynonymGroup",
    "TokenRevocation",
    "TrackingEvent",
    "Warehouse",
    "WarehouseKind",
    "utcnow",
]
