"""Customers, their addresses, and staff accounts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

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
    # Reads the shop's figures (insights, orders, catalogue, customers); changes nothing.
    ANALYST = "ANALYST"


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
    # Set by the customer (updateProfile): no satisfaction survey is sent to them.
    surveys_opt_out: bool = False
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class PendingRegistration(SQLModel, table=True):
    """A registration waiting for its e-mail address to be confirmed.

    The account is created only when the link sent to the address is followed, with the
    password and profile of *this* registration: nobody without the mailbox can create or
    take over an account, and registering never reveals whether an address has one.
    """

    __tablename__ = "pending_registration"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(254), nullable=False, index=True))
    # sha256 of the token in the link: the raw token is only in the e-mail.
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    password_hash: str
    profile: dict[str, Any] = json_field(dict)
    expires_at: datetime = datetime_field(nullable=False)
    created_at: datetime = created_at_field()


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
