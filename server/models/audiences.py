"""Audiences: saved rules over customers (server.services.audience_rules), the memberships the
insights recomputation stores for each, and the history of who joined and left.

A rule is data: a JSON tree of ``all``/``any``/``not`` nodes and conditions, validated when it
is saved and turned into SQLAlchemy expressions when members are asked for; never SQL text.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field

AUDIENCE_KEY_MAX = 64


class AudienceChangeKind(StrEnum):
    JOINED = "JOINED"
    LEFT = "LEFT"


class Audience(SQLModel, table=True):
    __tablename__ = "audience"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(AUDIENCE_KEY_MAX), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The rule tree, normalised (server.services.audience_rules): {"all": [{"tags": {…}}, …]}.
    rule: dict[str, Any] = json_field(dict)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    # The "as of" moment of the last computation of the stored memberships (None: never).
    computed_at: datetime | None = datetime_field()


class AudienceMember(SQLModel, table=True):
    """A customer in an audience as of its last computation: what plugins check."""

    __tablename__ = "audience_member"

    audience_id: int = Field(
        sa_column=Column(Integer, ForeignKey("audience.id", ondelete="CASCADE"), primary_key=True)
    )
    customer_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )
    # When the customer joined (the computation that first found them in it).
    since: datetime = datetime_field(nullable=False)


class AudienceChange(SQLModel, table=True):
    """A customer joined or left an audience: written by the computation that saw it."""

    __tablename__ = "audience_change"
    __table_args__ = (Index("ix_audience_change_audience_at", "audience_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    audience_id: int = Field(
        sa_column=Column(Integer, ForeignKey("audience.id", ondelete="CASCADE"), nullable=False)
    )
    customer_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    kind: AudienceChangeKind = enum_field(AudienceChangeKind)
    at: datetime = datetime_field(nullable=False)
