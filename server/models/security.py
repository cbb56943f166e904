"""Security records: refresh tokens, token revocations, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, json_field


class RefreshToken(SQLModel, table=True):
    """One refresh token of a customer's sign-in. Only its sha256 is stored.

    All tokens rotated from one sign-in share a ``family_id``: presenting a token that was
    already rotated means it leaked, and the whole family is revoked.
    """

    __tablename__ = "refresh_token"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    family_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = created_at_field()
    expires_at: datetime = datetime_field(nullable=False)
    used_at: datetime | None = datetime_field()
    revoked_at: datetime | None = datetime_field()


class TokenRevocation(SQLModel, table=True):
    """Access tokens that must no longer be accepted although they have not expired.

    ``key`` is a token's ``jti`` (that token is revoked) or a subject such as ``customer:12``
    (every token of the subject issued at or before ``not_before`` is revoked). A row is useless
    once ``expires_at`` passes (the tokens it covers have expired) and may be deleted.
    """

    __tablename__ = "token_revocation"

    key: str = Field(sa_column=Column(String(120), primary_key=True))
    not_before: datetime | None = datetime_field()
    expires_at: datetime = datetime_field(nullable=False, index=True)


class ApiKey(SQLModel, table=True):
    """A key for apps and integrations. The secret is shown once; only its sha256 is kept,
    with a short public ``prefix`` to find the row."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(120), nullable=False))
    prefix: str = Field(sa_column=Column(String(16), nullable=False, unique=True))
    key_hash: str = Field(sa_column=Column(String(64), nullable=False))
    scopes: list[str] = json_field(list)
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = datetime_field()
    revoked_at: datetime | None = datetime_field()


class AuditLogEntry(SQLModel, table=True):
    """One mutation run by staff or by an API key: who, what, when, with which input."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at_id", "at", "id"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_mutation_at", "mutation", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created_at_field()
    # "staff:3" or "apikey:7": one column to filter on whoever acted.
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    mutation: str = Field(sa_column=Column(String(120), nullable=False))
    input: dict[str, Any] = json_field(dict)
    result: str = Field(sa_column=Column(String(120), nullable=False))
