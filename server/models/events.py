"""Behaviour events (the shopping path) and the outbox of domain events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field
from server.models.channels import SalesChannel, channel_column, utm_column


class CustomerEventKind(StrEnum):
    VIEW = "VIEW"
    SEARCH = "SEARCH"
    FAVORITE = "FAVORITE"
    ADD_TO_CART = "ADD_TO_CART"
    PURCHASE = "PURCHASE"


class CustomerEvent(SQLModel, table=True):
    __tablename__ = "customer_event"
    __table_args__ = (
        Index("ix_customer_event_customer_time", "customer_id", "occurred_at"),
        Index("ix_customer_event_product_kind", "product_id", "kind"),
        # Search analytics: the searches of a period, a visitor's latest search, its clicks.
        Index("ix_customer_event_kind_time", "kind", "occurred_at"),
        Index("ix_customer_event_session_time", "session_id", "occurred_at"),
        Index("ix_customer_event_search_id", "search_id"),
        # Attribution: a visitor's latest events that say where they came from (only those
        # are indexed: most events carry no channel).
        Index(
            "ix_customer_event_customer_channel",
            "customer_id",
            "occurred_at",
            sqlite_where=text("channel IS NOT NULL"),
            postgresql_where=text("channel IS NOT NULL"),
        ),
        Index(
            "ix_customer_event_session_channel",
            "session_id",
            "occurred_at",
            sqlite_where=text("channel IS NOT NULL"),
            postgresql_where=text("channel IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    # Anonymous visitors are followed by a client-chosen session id.
    session_id: str | None = None
    kind: CustomerEventKind = enum_field(CustomerEventKind, CustomerEventKind.VIEW, index=True)
    product_id: int | None = Field(default=None, foreign_key="product.id")
    order_id: int | None = Field(default=None, foreign_key="order.id")
    query: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    quantity: int | None = None
    data: dict[str, Any] = json_field(dict)
    # A SEARCH event's query normalised (trimmed, case-folded, whitespace collapsed): what
    # search analytics groups by.
    search_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # A VIEW or ADD_TO_CART event's search: the SEARCH event it is a click on, if any
    # (server.services.behaviour decides when it is recorded).
    search_id: int | None = Field(default=None, foreign_key="customer_event.id")
    # Where the visitor came from, as the client reported it (usually on the event of their
    # arrival): a touch that attribution credits (server.services.attribution).
    channel: SalesChannel | None = channel_column()
    utm_source: str | None = utm_column()
    utm_medium: str | None = utm_column()
    utm_campaign: str | None = utm_column()
    occurred_at: datetime = created_at_field()


class OutboxEvent(SQLModel, table=True):
    """A domain event written in the same transaction as the change it reports."""

    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    payload: dict[str, Any] = json_field(dict)
    created_at: datetime = created_at_field()
    dispatched_at: datetime | None = datetime_field(index=True)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"


class OutboxDelivery(SQLModel, table=True):
    """One outbox event's delivery to one plugin.

    Dispatchers claim a delivery with a conditional UPDATE (a lease: ``claim_token`` +
    ``claimed_until``), so concurrent processes never run it twice at once; a failure schedules
    the next attempt with backoff, and after the last attempt the delivery is DEAD.
    """

    __tablename__ = "outbox_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "plugin", name="event_plugin"),
        Index("ix_outbox_delivery_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="outbox_event.id", index=True, ondelete="CASCADE")
    plugin: str = Field(sa_column=Column(String(100), nullable=False))
    status: DeliveryStatus = enum_field(DeliveryStatus, DeliveryStatus.PENDING)
    attempts: int = 0
    next_attempt_at: datetime = created_at_field()
    claimed_until: datetime | None = datetime_field()
    claim_token: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    delivered_at: datetime | None = datetime_field()
    created_at: datetime = created_at_field()


class JobLease(SQLModel, table=True):
    """A periodic job's schedule and lease: one process runs a given job at a time."""

    __tablename__ = "job_lease"

    name: str = Field(sa_column=Column(String(120), primary_key=True))
    holder: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    locked_until: datetime | None = datetime_field()
    last_started_at: datetime | None = datetime_field()
    last_finished_at: datetime | None = datetime_field()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
