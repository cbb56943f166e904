"""Refresh tokens (rotation, reuse detection) and access-token revocation.

A sign-in issues a short-lived JWT access token and a refresh token. Refresh tokens are random,
stored as sha256 hashes, and single-use: ``rotate`` marks the presented one used and issues the
next one of the same *family*. Presenting a token that was already used means two parties hold
it (it leaked), so the whole family is revoked and neither can refresh again.

Access tokens cannot be recalled once issued, so revoked ones are listed in ``token_revocation``
until they expire: by ``jti`` (logout) or by subject with a ``not_before`` time (an erased
account). Every authenticated request checks that list with one primary-key lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer, create_access_token
from server.config import Settings
from server.models import Customer, RefreshToken, TokenRevocation, utcnow


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class Refreshed:
    customer: Customer
    tokens: TokenPair


@dataclass(frozen=True)
class RefreshRejected:
    """Why a refresh failed. The caller commits: a reuse has just revoked the family."""

    reason: str


REFRESH_FAILED = "The refresh token is invalid, expired or revoked. Sign in again."


def hash_token(raw: str) -> str:
    # Refresh tokens are 256 random bits: a plain sha256 is enough (no guessing to slow down).
    return hashlib.sha256(raw.encode()).hexdigest()


async def _issue_refresh(
    session: AsyncSession, settings: Settings, customer_id: int, family: str
) -> str:
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        RefreshToken(
            customer_id=customer_id,
            family_id=family,
            token_hash=hash_token(raw),
            created_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
        )
    )
    await session.flush()
    return raw


async def sign_in(session: AsyncSession, settings: Settings, customer: Customer) -> TokenPair:
    """Start a new refresh-token family for ``customer``: an access and a refresh token."""
    assert customer.id is not None
    family = uuid.uuid4().hex
    refresh = await _issue_refresh(session, settings, customer.id, family)
    access = create_access_token(settings, f"customer:{customer.id}", family=family)
    return TokenPair(access_token=access, refresh_token=refresh)


async def rotate(
    session: AsyncSession, settings: Settings, raw: str
) -> Refreshed | RefreshRejected:
    """Exchange a refresh token for a new pair. Never raises for a bad token: a reused token
    revokes its family, and that must be committed although the request fails."""
    stmt = select(RefreshToken).where(col(RefreshToken.token_hash) == hash_token(raw.strip()))
    token = (await session.execute(stmt)).scalar_one_or_none()
    now = utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return RefreshRejected(REFRESH_FAILED)
    # Only one of two concurrent refreshes with the same token can flip used_at.
    claimed = await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.id) == token.id, col(RefreshToken.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        await revoke_family(session, token.family_id)
        return RefreshRejected(REFRESH_FAILED)
    customer = await session.get(Customer, token.customer_id)
    if customer is None or not customer.is_active:
        await revoke_family(session, token.family_id)
        return RefreshRejected(REFRESH_FAILED)
    refresh = await _issue_refresh(session, settings, token.customer_id, token.family_id)
    access = create_access_token(settings, f"customer:{token.customer_id}", family=token.family_id)
    return Refreshed(customer, TokenPair(access_token=access, refresh_token=refresh))


async def revoke_family(session: AsyncSession, family: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def revoke_all_refresh_tokens(session: AsyncSession, customer_id: int) -> None:
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.customer_id) == customer_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def _put_revocation(
    session: AsyncSession, key: str, *, not_before: datetime | None, expires_at: datetime
) -> None:
    # Expired entries cover only expired tokens: drop them while we are writing anyway.
    await session.execute(delete(TokenRevocation).where(col(TokenRevocation.expires_at) < utcnow()))
    existing = await session.get(TokenRevocation, key)
    if existing is None:
        session.add(TokenRevocation(key=key, not_before=not_before, expires_at=expires_at))
    else:
        existing.not_before = not_before
        existing.expires_at = max(existing.expires_at, expires_at)
    await session.flush()


async def revoke_access_token(session: AsyncSession, settings: Settings, viewer: Viewer) -> None:
    """Refuse the viewer's current access token from now on."""
    if viewer.token_id is None:
        return
    expires = viewer.token_expires_at or utcnow() + timedelta(minutes=settings.access_token_minutes)
    await _put_revocation(session, viewer.token_id, not_before=None, expires_at=expires)


async def revoke_subject(session: AsyncSession, settings: Settings, subject: str) -> None:
    """Refuse every access token of ``subject`` (``customer:12``) issued until now."""
    now = utcnow()
    await _put_revocation(
        session,
        subject,
        not_before=now,
        expires_at=now + timedelta(minutes=settings.access_token_minutes, seconds=5),
    )


def revocation_lookup(viewer: Viewer) -> Select[str, datetime | None]:
    """The one statement that says whether the viewer's token was revoked."""
    keys = [viewer.subject] + ([viewer.token_id] if viewer.token_id else [])
    return select(col(TokenRevocation.key), col(TokenRevocation.not_before)).where(
        col(TokenRevocation.key).in_(keys)
    )


async def is_revoked(session: AsyncSession, viewer: Viewer) -> bool:
    for key, not_before in (await session.execute(revocation_lookup(viewer))).all():
        if key == viewer.token_id:
            return True
        # JWT times are whole seconds: a token from the revocation's own second is refused too.
        if not_before is not None and (
            viewer.token_issued_at is None or viewer.token_issued_at <= not_before
        ):
            return True
    return False


async def logout(
    session: AsyncSession, settings: Settings, viewer: Viewer, refresh_token: str | None
) -> None:
    """Revoke the current access token and its refresh-token family (from the token's ``fam``
    claim, or from the refresh token presented)."""
    families: set[str] = set()
    if viewer.token_family:
        families.add(viewer.token_family)
    if refresh_token:
        stmt = select(RefreshToken).where(col(RefreshToken.token_hash) == hash_token(refresh_token))
        token = (await session.execute(stmt)).scalar_one_or_none()
        # Only the owner's own token (or an anonymous caller holding it) ends its family.
        if token is not None and (
            viewer.customer_id is None or viewer.customer_id == token.customer_id
        ):
            families.add(token.family_id)
    for family in families:
        await revoke_family(session, family)
    await revoke_access_token(session, settings, viewer)
