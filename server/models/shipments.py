"""Shipments of orders and their tracking timeline."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field


class ShipmentStatus(StrEnum):
    CREATED = "CREATED"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    EXCEPTION = "EXCEPTION"
    RETURNED = "RETURNED"


class Shipment(SQLModel, table=True):
    __tablename__ = "shipment"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    warehouse_id: int = Field(foreign_key="warehouse.id", index=True)
    carrier: str
    tracking_number: str = Field(index=True)
    status: ShipmentStatus = enum_field(ShipmentStatus, ShipmentStatus.CREATED, index=True)
    promised_at: datetime | None = datetime_field()
    shipped_at: datetime | None = datetime_field()
    delivered_at: datetime | None = datetime_field()
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class ShipmentLine(SQLModel, table=True):
    __tablename__ = "shipment_line"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True, ondelete="CASCADE")
    order_line_id: int = Field(foreign_key="order_line.id", index=True)
    quantity: int


class TrackingEvent(SQLModel, table=True):
    __tablename__ = "tracking_event"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True, ondelete="CASCADE")
    status: ShipmentStatus = enum_field(ShipmentStatus, ShipmentStatus.CREATED)
    description: str = ""
    location: str = ""
    occurred_at: datetime = created_at_field()
    created_at: datetime = created_at_field()
