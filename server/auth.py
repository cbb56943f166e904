"""Passwords (argon2), access tokens (JWT) and the viewer a request acts as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.config import Settings

_hasher = PasswordHasher()
ALGORITHM = "HS256"
ISSUER = "shopgraph"


class ViewerKind(StrEnum):
    ANONYMOUS = "ANONYMOUS"
    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"
    # An app or integration signed in with an API key: it holds exactly the key's scopes.
    APP = "APP"


@dataclass(frozen=True)
class Viewer:
    """Who a request acts as. Anonymous unless a valid bearer token says otherwise."""

    kind: ViewerKind = ViewerKind.ANONYMOUS
    customer_id: int | None = None
    staff_id: int | None = None
    role: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    api_key_id: int | None = None
    # The access token's id, issue and expiry times, and refresh-token family (logout).
    token_id: str | None = None
    token_issued_at: datetime | None = None
    token_expires_at: datetime | None = None
    token_family: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind is ViewerKind.STAFF

    @property
    def is_customer(self) -> bool:
        return self.kind is ViewerKind.CUSTOMER

    @property
    def is_app(self) -> bool:
        return self.kind is ViewerKind.APP

    def has(self, *permissions: str) -> bool:
        """True when the viewer holds any of ``permissions`` (staff role or API-key scope)."""
        return any(p in self.permissions for p in permissions)

    @property
    def subject(self) -> str:
        if self.is_customer:
            return f"customer:{self.customer_id}"
        if self.is_staff:
            return f"staff:{self.staff_id}"
        if self.is_app:
            return f"apikey:{self.api_key_id}"
        return "anonymous"


ANONYMOUS = Viewer()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_access_token(
    settings: Settings, subject: str, *, role: str | None = None, family: str | None = None
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": subject,
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_minutes),
        "jti": uuid.uuid4().hex,
    }
    if role:
        claims["role"] = role
    if family:
        # The refresh-token family this token was issued with: logout revokes it.
        claims["fam"] = family
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


class InvalidToken(Exception):
    pass


def viewer_from_token(settings: Settings, token: str) -> Viewer:
    """Decode a bearer token. Raises InvalidToken for expired, forged or malformed tokens."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    kind, _, ident = str(claims["sub"]).partition(":")
    if not ident.isdigit():
        raise InvalidToken("malformed subject")
    token_fields: dict[str, Any] = {
        "token_id": str(claims["jti"]) if claims.get("jti") else None,
        "token_issued_at": _timestamp(claims.get("iat")),
        "token_expires_at": _timestamp(claims.get("exp")),
        "token_family": str(claims["fam"]) if claims.get("fam") else None,
    }
    if kind == "customer":
        return Viewer(kind=ViewerKind.CUSTOMER, customer_id=int(ident), **token_fields)
    if kind == "staff":
        role = str(claims.get("role") or "")
        return Viewer(kind=ViewerKind.STAFF, staff_id=int(ident), role=role, **token_fields)
    raise InvalidToken("unknown subject kind")


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None
