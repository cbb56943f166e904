"""API keys for apps and integrations: hashed, scoped, revocable.

A key reads ``sg_<prefix>_<secret>``. The prefix is public and unique (it finds the row with one
indexed lookup); only the sha256 of the whole key is stored, so the database never holds a
usable key. The key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.db import create_engine, mark_write, session_factory
from server.models import ApiKey, utcnow
from server.permissions import RoleMap, UnknownPermission
from server.services.errors import NotFound, ValidationFailed

KEY_PREFIX = "sg_"
# ``last_used_at`` is a convenience, not a log: one write a minute per key is plenty.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    # The plain key: returned once, never stored.
    secret: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def split_key(raw: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = raw[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix or not secret:
        return None
    return prefix


async def create_api_key(
    session: AsyncSession,
    roles: RoleMap,
    *,
    name: str,
    scopes: list[str],
    created_by: str,
) -> CreatedApiKey:
    """Create a key with ``scopes`` (each a known permission). Raises ValidationFailed."""
    clean_name = name.strip()
    if not clean_name or len(clean_name) > 120:
        raise ValidationFailed("a name of 1 to 120 characters is required", field="name")
    try:
        checked = roles.check_scopes(scopes)
    except UnknownPermission as exc:
        raise ValidationFailed(str(exc), field="scopes") from exc
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=clean_name,
        prefix=prefix,
        key_hash=hash_key(raw),
        scopes=checked,
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    return CreatedApiKey(api_key=key, secret=raw)


def api_keys_query(*, active: bool | None = None) -> Select[Any]:
    """The keys, all of them or only the active (not revoked, ``True``) or revoked ones."""
    stmt = select(ApiKey)
    if active is not None:
        revoked = col(ApiKey.revoked_at)
        stmt = stmt.where(revoked.is_(None) if active else revoked.is_not(None))
    return stmt


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Revoke a key (idempotent: revoking a revoked key keeps the first time)."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("API key", key_id, field="id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


async def authenticate(session: AsyncSession, raw: str) -> ApiKey | None:
    """The active key ``raw`` is, or None (unknown, wrong secret or revoked)."""
    prefix = split_key(raw)
    if prefix is None:
        return None
    key = (
        await session.execute(select(ApiKey).where(col(ApiKey.prefix) == prefix))
    ).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, hash_key(raw)):
        return None
    return key


def needs_touch(key: ApiKey) -> bool:
    return key.last_used_at is None or utcnow() - key.last_used_at >= TOUCH_INTERVAL


async def touch(session: AsyncSession, key: ApiKey) -> None:
    """Record a use. Conditional, so concurrent requests of one key write it once a minute."""
    now = utcnow()
    await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.id) == key.id,
            (col(ApiKey.last_used_at).is_(None))
            | (col(ApiKey.last_used_at) <= now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def create_api_key_in(
    database_url: str, roles: RoleMap, *, name: str, scopes: list[str], created_by: str
) -> CreatedApiKey:
    """Create a key in the database at ``database_url`` (the CLI's entry point)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            created = await create_api_key(
                session, roles, name=name, scopes=scopes, created_by=created_by
            )
            await session.commit()
            return created
    finally:
        await engine.dispose()


async def revoke_api_key_in(database_url: str, prefix_or_id: str) -> ApiKey:
    """Revoke a key by prefix (or, failing that, numeric id) in the database at
    ``database_url`` (the CLI)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            found = await session.execute(
                select(col(ApiKey.id)).where(col(ApiKey.prefix) == prefix_or_id)
            )
            key_id = found.scalar_one_or_none()
            if key_id is None and prefix_or_id.isdigit():
                key_id = int(prefix_or_id)
            if key_id is None:
                raise NotFound("API key", prefix_or_id, field="prefix")
            key = await revoke_api_key(session, key_id)
            await session.commit()
            return key
    finally:
        await engine.dispose()
