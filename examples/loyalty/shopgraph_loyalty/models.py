"""The loyalty plugin's tables (prefix ``loyalty_``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field


class LoyaltyAccount(SQLModel, table=True):
    """A customer's points. The balance only moves by conditional UPDATEs, so concurrent
    redemptions can never spend the same points twice."""

    __tablename__ = "loyalty_account"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_nonneg"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", unique=True, ondelete="CASCADE")
    balance: int = 0
    lifetime_earned: int = 0
    updated_at: datetime | None = datetime_field()


class LoyaltyTransactionKind(StrEnum):
    EARN = "EARN"  # points for a placed order
    REDEEM = "REDEEM"  # points held against a cart
    RELEASE = "RELEASE"  # a hold given back (replaced, released, or its order cancelled)
    REVERSE = "REVERSE"  # points of a cancelled order taken back


class LoyaltyTransaction(SQLModel, table=True):
    """The ledger: every change of a balance, signed. (kind, order) is unique, so an event
    delivered twice (at-least-once) cannot earn or reverse twice."""

    __tablename__ = "loyalty_transaction"
    __table_args__ = (UniqueConstraint("kind", "order_id", name="kind_order"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    kind: LoyaltyTransactionKind = enum_field(LoyaltyTransactionKind, LoyaltyTransactionKind.EARN)
    points: int
    order_id: int | None = Field(default=None, foreign_key="order.id")
    cart_id: int | None = Field(default=None, foreign_key="cart.id")
    note: str = ""
    created_at: datetime = created_at_field()


class LoyaltyRedemption(SQLModel, table=True):
    """Points held against a cart; the cart's order shows them as a discount."""

    __tablename__ = "loyalty_redemption"

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", unique=True, ondelete="CASCADE")
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    points: int
    order_id: int | None = Field(default=None, foreign_key="order.id")
    created_at: datetime = created_at_field()
