"""The logistics plugin's tables (prefix ``logistics_``).

The core owns warehouses, stock levels, shipments and their timeline; this plugin adds what it
takes to promise, allocate, track and bring back: carriers and their service levels, rate and
transit-time tables, where each warehouse and pickup point is, the promise frozen on each order,
carriers' raw tracking events, delays, returns, and replenishment parameters. Money is integer
minor units; dates of promises are days in the shop's time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field

CODE_MAX = 32
NAME_MAX = 120
REGION_MAX = 64
ACTOR_MAX = 120
EVENT_ID_MAX = 100
TEXT_MAX = 500


class CarrierKind(StrEnum):
    OWN_FLEET = "OWN_FLEET"  # the shop's own vans (自营配送)
    THIRD_PARTY = "THIRD_PARTY"  # an express company (快递)
    ALLIANCE = "ALLIANCE"  # a partner network the shop shares (联盟)


class ServiceLevel(StrEnum):
    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    SAME_DAY = "SAME_DAY"  # within hours, from a forward warehouse (前置仓) near the address
    PICKUP = "PICKUP"  # 自提: collected at a store or locker


class PickupKind(StrEnum):
    STORE = "STORE"
    LOCKER = "LOCKER"


class Carrier(SQLModel, table=True):
    """A carrier. ``non_working_days`` (ISO dates) are its own days off besides the public
    calendar; ``works_weekends``: it collects and delivers on Saturdays and Sundays that are
    not public holidays. ``webhook_secret`` signs the tracking events it pushes (HMAC-SHA256)."""

    __tablename__ = "logistics_carrier"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    kind: CarrierKind = enum_field(CarrierKind, CarrierKind.THIRD_PARTY)
    works_weekends: bool = True
    non_working_days: list[str] = json_field(list)
    webhook_secret: str = Field(default="", sa_column=Column(String(200), nullable=False))
    # Tracking numbers the plugin makes for this carrier's parcels start with this.
    tracking_prefix: str = Field(default="", sa_column=Column(String(16), nullable=False))
    is_active: bool = True
    created_at: datetime = created_at_field()


class CarrierService(SQLModel, table=True):
    """A service level a carrier sells, e.g. SF 标快 (STANDARD) or 即时达 (SAME_DAY).
    ``cutoff_minutes``: orders placed after this local time (minutes after midnight) leave a
    working day later; ``handling_days``: working days in the warehouse before it leaves;
    ``within_hours``: SAME_DAY's promise (delivered within this many hours of leaving)."""

    __tablename__ = "logistics_service"

    id: int | None = Field(default=None, primary_key=True)
    carrier_id: int = Field(foreign_key="logistics_carrier.id", index=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    label: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    level: ServiceLevel = enum_field(ServiceLevel, ServiceLevel.STANDARD)
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    within_hours: int | None = None
    is_active: bool = True


class TransitTime(SQLModel, table=True):
    """Working days on the road for a service between two regions (provinces, as addresses
    name them); ``to_region`` "*" is the service's default from ``from_region``."""

    __tablename__ = "logistics_transit_time"
    __table_args__ = (UniqueConstraint("service_id", "from_region", "to_region"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="logistics_service.id", index=True)
    from_region: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    to_region: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    min_days: int = 1
    max_days: int = 3


class Zone(SQLModel, table=True):
    """The rate zone between two regions (``to_region`` "*": the default from
    ``from_region``). Without a row, the zone comes from the distance (settings)."""

    __tablename__ = "logistics_zone"
    __table_args__ = (UniqueConstraint("from_region", "to_region"),)

    id: int | None = Field(default=None, primary_key=True)
    from_region: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    to_region: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    zone: int = 1


class Rate(SQLModel, table=True):
    """A service's price for a zone: ``first_amount`` for the first ``first_grams``, then
    ``extra_amount`` per started ``extra_grams``; free from ``free_over`` (the cart's
    subtotal) when set."""

    __tablename__ = "logistics_rate"
    __table_args__ = (UniqueConstraint("service_id", "zone"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="logistics_service.id", index=True)
    zone: int = 1
    first_grams: int = 1000
    first_amount: int = 0
    extra_grams: int = 1000
    extra_amount: int = 0
    free_over: int | None = None


class Site(SQLModel, table=True):
    """Where a core warehouse is and how it works: its city (a name of the shipped city
    table) and coordinates, local time zone, its order cut-off and handling days, and for a
    forward warehouse (前置仓) the radius it delivers within hours."""

    __tablename__ = "logistics_site"

    id: int | None = Field(default=None, primary_key=True)
    warehouse_id: int = Field(foreign_key="warehouse.id", unique=True)
    city: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    province: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    latitude: float
    longitude: float
    timezone: str = Field(default="Asia/Shanghai", sa_column=Column(String(64), nullable=False))
    cutoff_minutes: int = 16 * 60
    handling_days: int = 0
    same_day_radius_km: float | None = None
    # The carriers that collect here (ids); empty: every active carrier.
    carrier_ids: list[int] = json_field(list)


class PickupPoint(SQLModel, table=True):
    """A store or locker where customers collect (自提). Its stock is its warehouse's (a store
    is a core warehouse); ``hours``: {"mon": [["09:00", "21:00"]], ...} (several intervals a
    day; a day left out is closed); ``ready_hours``: how long after the order it is ready."""

    __tablename__ = "logistics_pickup_point"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    kind: PickupKind = enum_field(PickupKind, PickupKind.STORE)
    warehouse_id: int = Field(foreign_key="warehouse.id", index=True)
    city: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    province: str = Field(sa_column=Column(String(REGION_MAX), nullable=False))
    address: str = Field(default="", sa_column=Column(String(TEXT_MAX), nullable=False))
    latitude: float
    longitude: float
    hours: dict[str, Any] = json_field(dict)
    ready_hours: int = 2
    is_active: bool = True


class Promise(SQLModel, table=True):
    """The delivery promise made when an order was placed (its chosen quote), frozen: what
    on-time is measured against. ``latest`` is the last promised day (included)."""

    __tablename__ = "logistics_promise"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", unique=True)
    quote_code: str = Field(sa_column=Column(String(64), nullable=False))
    service_id: int = Field(foreign_key="logistics_service.id", index=True)
    carrier_id: int = Field(foreign_key="logistics_carrier.id", index=True)
    level: ServiceLevel = enum_field(ServiceLevel, ServiceLevel.STANDARD)
    warehouse_id: int | None = Field(default=None, foreign_key="warehouse.id")
    pickup_point_id: int | None = Field(default=None, foreign_key="logistics_pickup_point.id")
    from_region: str = Field(default="", sa_column=Column(String(REGION_MAX), nullable=False))
    to_region: str = Field(default="", sa_column=Column(String(REGION_MAX), nullable=False))
    earliest: date
    latest: date
    # SAME_DAY and PICKUP promise a time, not only a day.
    deliver_by: datetime | None = datetime_field()
    created_at: datetime = created_at_field()


class TrackedShipment(SQLModel, table=True):
    """What the plugin knows of a core shipment: its service, lane, the latest event applied,
    the revised ETA, and how it ended (on time against the order's promise, transit hours)."""

    __tablename__ = "logistics_tracked_shipment"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", unique=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    carrier_id: int = Field(foreign_key="logistics_carrier.id", index=True)
    service_id: int | None = Field(default=None, foreign_key="logistics_service.id")
    from_region: str = Field(default="", sa_column=Column(String(REGION_MAX), nullable=False))
    to_region: str = Field(default="", sa_column=Column(String(REGION_MAX), nullable=False))
    last_event_at: datetime | None = datetime_field()
    eta: date | None = None
    # Probability it arrives after the promise (the carrier's transit-time distribution).
    late_probability: float | None = None
    on_time: bool | None = None
    transit_hours: float | None = None
    updated_at: datetime | None = datetime_field()


class EventSource(StrEnum):
    WEBHOOK = "WEBHOOK"
    STAFF = "STAFF"


class CarrierEvent(SQLModel, table=True):
    """A tracking event as a carrier sent it, once per (carrier, event id): a delivery sent
    twice is stored once. ``status`` is the normalised core ShipmentStatus; ``applied``: it
    moved the core shipment (an event older than the latest applied one only joins the
    timeline)."""

    __tablename__ = "logistics_carrier_event"
    __table_args__ = (
        UniqueConstraint("carrier_id", "event_id"),
        Index("ix_logistics_carrier_event_shipment", "shipment_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    carrier_id: int = Field(foreign_key="logistics_carrier.id")
    event_id: str = Field(sa_column=Column(String(EVENT_ID_MAX), nullable=False))
    shipment_id: int = Field(foreign_key="shipment.id")
    raw_status: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    occurred_at: datetime = datetime_field(nullable=False)
    location: str = Field(default="", sa_column=Column(String(200), nullable=False))
    description: str = Field(default="", sa_column=Column(String(TEXT_MAX), nullable=False))
    source: EventSource = enum_field(EventSource, EventSource.WEBHOOK)
    applied: bool = False
    received_at: datetime = created_at_field()


class DelayKind(StrEnum):
    AT_RISK = "AT_RISK"  # predicted to miss the promise
    LATE = "LATE"  # past the promise, not delivered


class Delay(SQLModel, table=True):
    """A shipment found late or at risk, once per shipment (the kind may worsen from AT_RISK
    to LATE). ``compensation_ref`` is set once, by a conditional UPDATE, when the
    ``shipment_delay_compensation`` hook answered (超时赔付)."""

    __tablename__ = "logistics_delay"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", unique=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    kind: DelayKind = enum_field(DelayKind, DelayKind.AT_RISK)
    promised_by: date
    late_probability: float | None = None
    detected_at: datetime = created_at_field()
    became_late_at: datetime | None = datetime_field()
    compensation_ref: str | None = Field(default=None, sa_column=Column(String(64)))
    compensated_at: datetime | None = datetime_field()
    resolved_at: datetime | None = datetime_field()


class ReturnKind(StrEnum):
    RETURN = "RETURN"  # money back
    EXCHANGE = "EXCHANGE"  # another variant sent
    REPAIR = "REPAIR"  # repaired and sent back


class ReturnStatus(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    IN_TRANSIT = "IN_TRANSIT"  # on its way back
    RECEIVED = "RECEIVED"
    COMPLETED = "COMPLETED"  # inspected; refunded, exchanged or repaired
    CANCELLED = "CANCELLED"


class ReturnReason(StrEnum):
    DEFECTIVE = "DEFECTIVE"
    DAMAGED = "DAMAGED"
    WRONG_ITEM = "WRONG_ITEM"
    NOT_AS_DESCRIBED = "NOT_AS_DESCRIBED"
    NO_LONGER_NEEDED = "NO_LONGER_NEEDED"  # 七天无理由
    OTHER = "OTHER"


class ItemCondition(StrEnum):
    RESELLABLE = "RESELLABLE"  # back to stock
    DEFECTIVE = "DEFECTIVE"  # written off


class ReturnRequest(SQLModel, table=True):
    """A return, exchange or repair (reverse logistics, RMA) of some lines of one order."""

    __tablename__ = "logistics_return"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_column=Column(String(CODE_MAX), nullable=False, unique=True))
    order_id: int = Field(foreign_key="order.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    kind: ReturnKind = enum_field(ReturnKind, ReturnKind.RETURN)
    status: ReturnStatus = enum_field(ReturnStatus, ReturnStatus.REQUESTED, index=True)
    reason: ReturnReason = enum_field(ReturnReason, ReturnReason.OTHER)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    carrier_id: int | None = Field(default=None, foreign_key="logistics_carrier.id")
    tracking_number: str | None = Field(default=None, sa_column=Column(String(64)))
    # The warehouse it comes back to.
    warehouse_id: int | None = Field(default=None, foreign_key="warehouse.id")
    refund_amount: int | None = None
    currency: str = Field(default="CNY", sa_column=Column(String(3), nullable=False))
    # An exchange's or repair's outgoing order (the replacement at zero price).
    replacement_order_id: int | None = Field(default=None, foreign_key="order.id")
    decided_by: str | None = Field(default=None, sa_column=Column(String(ACTOR_MAX)))
    decision_note: str = Field(default="", sa_column=Column(String(TEXT_MAX), nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class ReturnLine(SQLModel, table=True):
    """Units of one order line in a return; an exchange names the variant wanted instead.
    ``condition`` is set at inspection."""

    __tablename__ = "logistics_return_line"

    id: int | None = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="logistics_return.id", index=True, ondelete="CASCADE")
    order_line_id: int = Field(foreign_key="order_line.id", index=True)
    quantity: int
    exchange_variant_id: int | None = Field(default=None, foreign_key="product_variant.id")
    condition: ItemCondition | None = Field(default=None, sa_column=Column(String(32)))
    inspected_at: datetime | None = datetime_field()


class InventoryClass(StrEnum):
    SAFETY = "SAFETY"  # stock held against uncertainty
    REGULAR = "REGULAR"  # cycle stock for the forecast demand
    SEASONAL = "SEASONAL"  # built ahead of a seasonal peak


class ReplenishmentPolicy(SQLModel, table=True):
    """How one product is replenished at one warehouse: supplier lead time (mean and standard
    deviation, days), the service level aimed at, the review period and minimum order."""

    __tablename__ = "logistics_replenishment"
    __table_args__ = (UniqueConstraint("product_id", "warehouse_id"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    warehouse_id: int = Field(foreign_key="warehouse.id", index=True)
    lead_time_days: float = 7.0
    lead_time_sd_days: float = 0.0
    service_level: float = 0.95
    review_days: int = 7
    min_order_quantity: int = 1
    updated_at: datetime | None = datetime_field()


class StockoutAlert(SQLModel, table=True):
    """A product at a warehouse projected to run out within its lead time (or out), raised
    once per episode: cleared when stock is back above the reorder point."""

    __tablename__ = "logistics_stockout_alert"
    __table_args__ = (
        Index("ix_logistics_stockout_alert_open", "product_id", "warehouse_id", "cleared_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id")
    warehouse_id: int = Field(foreign_key="warehouse.id")
    # Open alerts are unique per (product, warehouse): this is "open" until cleared.
    open_key: str | None = Field(default=None, sa_column=Column(String(64), unique=True))
    available: int = 0
    reorder_point: float = 0.0
    days_of_cover: float | None = None
    raised_at: datetime = created_at_field()
    cleared_at: datetime | None = datetime_field()
