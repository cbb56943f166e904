"""Customers, their addresses, and staff accounts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field


class MembershipTier(StrEnum):
    STANDARD = "STANDARD"
    SILVER = "SILVER"
    GOLD = "GOLD"
    PLATINUM = "PLATINUM"


class StaffRole(StrEnum):
    ADMIN = "ADMIN"
    CATALOG = "CATALOG"
    SUPPORT = "SUPPORT"
    LOGISTICS = "LOGISTICS"


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    password_hash: str | None = None
    first_name: str = ""
    last_name: str = ""
    phone: str | None = None
    gender: str | None = None
    age_band: str | None = None
    region: str | None = None
    city: str | None = None
    city_tier: int | None = None
    occupation: str | None = None
    membership_tier: MembershipTier = enum_field(
        MembershipTier, MembershipTier.STANDARD, index=True
    )
    tags: list[str] = json_field(list)
    interests: list[str] = json_field(list)
    is_active: bool = True
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class Address(SQLModel, table=True):
    __tablename__ = "address"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str = ""
    street: str
    postal_code: str = ""
    is_default: bool = False
    created_at: datetime = created_at_field()


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    password_hash: str
    name: str = ""
    role: StaffRole = enum_field(StaffRole, StaffRole.ADMIN)
    is_active: bool = True
    created_at: datetime = created_at_field()
