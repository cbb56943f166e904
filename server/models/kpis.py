"""The shop's KPI aggregates: per-period counters and sets of customers and visitors, each
customer's first purchase day, the integer ids of anonymous visitors, and the refresh's
watermark (server/services/kpi_aggregates.py keeps them)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Date, Index, LargeBinary, String
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from server.models.base import datetime_field


class KpiPeriod(StrEnum):
    """The periods aggregates are kept for: shop days, ISO weeks (Monday to Sunday) and
    calendar months."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


def _count() -> int:
    return Field(default=0, sa_column=Column(BigInteger(), nullable=False))


def _set() -> bytes:
    # A serialised roaring bitmap of ids (pyroaring): exact distinct counts of any union.
    return Field(default=b"", sa_column=Column(LargeBinary(), nullable=False))


class KpiAggregate(SQLModel, table=True):
    """One period's figures. The counters add up over periods; the distinct counts do not, so
    each row also keeps the sets they count, and a period made of several rows counts their
    union. Days are shop days (UTC+8); ``end`` is exclusive."""

    __tablename__ = "kpi_aggregate"

    period: KpiPeriod = Field(
        sa_column=Column(
            SAEnum(KpiPeriod, native_enum=False, length=32, validate_strings=True),
            primary_key=True,
        )
    )
    start: date = Field(sa_column=Column(Date(), primary_key=True))
    end: date = Field(sa_column=Column(Date(), nullable=False))
    # Orders placed in the period, in the shop's currency.
    placed_orders: int = _count()
    # Of them, those that were paid (paid_at set), whatever happened since.
    paid_orders: int = _count()
    # Purchases: paid and not cancelled (server.services.rfm.PURCHASE_STATUSES).
    purchases: int = _count()
    # The purchases' totals, minor units.
    gmv: int = _count()
    # Paid orders with a refunded payment; of them, those shipped or delivered (returns).
    refunded_orders: int = _count()
    returned_orders: int = _count()
    # Customers whose first purchase is in the period.
    new_customers: int = _count()
    paying_customers: int = _count()
    # Visits (one visitor's events on one shop day), those of a single event.
    visits: int = _count()
    bounced_visits: int = _count()
    searches: int = _count()
    zero_result_searches: int = _count()
    # Payments created in the period whose outcome is known (not PENDING), and of them those
    # authorised or captured (a refunded payment was captured).
    payment_attempts: int = _count()
    payment_successes: int = _count()
    # Distinct visitors: any event; the closed funnel's steps (viewed; viewed and added to
    # cart; … and ordered; … and paid); adders to cart and those of them who ordered; paying
    # visitors (a paid order's PURCHASE event).
    visitors: int = _count()
    viewers: int = _count()
    view_cart: int = _count()
    view_cart_order: int = _count()
    view_cart_order_paid: int = _count()
    carters: int = _count()
    cart_order: int = _count()
    payers: int = _count()
    customers_set: bytes = _set()
    new_customers_set: bytes = _set()
    visitors_set: bytes = _set()
    viewers_set: bytes = _set()
    carters_set: bytes = _set()
    orderers_set: bytes = _set()
    payers_set: bytes = _set()
    computed_at: datetime = datetime_field(nullable=False)


class KpiCustomerFirst(SQLModel, table=True):
    """Each customer's first purchase day (shop day): new customers, returning customers and
    the monthly cohorts."""

    __tablename__ = "kpi_customer_first"
    __table_args__ = (Index("ix_kpi_customer_first_day", "first_day"),)

    customer_id: int = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    first_day: date = Field(sa_column=Column(Date(), nullable=False))


class KpiVisitor(SQLModel, table=True):
    """An anonymous visitor's session id and the integer that stands for it in the visitor
    sets (customers stand for themselves, by id)."""

    __tablename__ = "kpi_visitor"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))


class KpiWatermark(SQLModel, table=True):
    """Where the last refresh of the aggregates stopped reading: the moment it started and the
    highest ids it saw. The next refresh recomputes the days of what changed after."""

    __tablename__ = "kpi_watermark"

    name: str = Field(sa_column=Column(String(32), primary_key=True))
    refreshed_at: datetime = datetime_field(nullable=False)
    max_order_id: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    max_payment_id: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    max_event_id: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
