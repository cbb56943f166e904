"""Idempotency keys: a retried request returns the first result instead of doing the work twice.

A key is claimed by inserting its row (scope, operation, key) in the same transaction as the work
it guards, with a hash of the canonical input. The unique constraint decides between concurrent
requests with the same key: the loser's INSERT waits for the winner (PostgreSQL) or queues on the
write lock (SQLite), then finds the committed row and replays its result. If the winner rolls
back, its claim disappears with it and the key is free again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import IdempotencyKey
from server.services.errors import Conflict, IdempotencyConflict, ValidationFailed

MAX_KEY_LENGTH = 255


def request_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of a request's input: keys sorted, no whitespace, so equal inputs match."""
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Claim:
    """The outcome of claiming a key: either ``replay_id`` (the stored result) or ``row`` (ours,
    to be completed with the result id before the transaction commits)."""

    replay_id: int | None = None
    row: IdempotencyKey | None = None


def validate_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"an idempotency key must be 1 to {MAX_KEY_LENGTH} characters",
            field="idempotencyKey",
        )
    return key


async def _find(
    session: AsyncSession, scope: str, operation: str, key: str
) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey)
        .where(
            col(IdempotencyKey.scope) == scope,
            col(IdempotencyKey.operation) == operation,
            col(IdempotencyKey.key) == key,
        )
        .execution_options(populate_existing=True)
    )


def _replay(row: IdempotencyKey, key: str, digest: str) -> Claim:
    if row.request_hash != digest:
        raise IdempotencyConflict(key)
    if row.result_id is None:
        # Only possible if a claim was committed without its result: never by this module.
        raise Conflict(f"the request with idempotency key {key!r} has no stored result")
    return Claim(replay_id=row.result_id)


async def claim(
    session: AsyncSession, *, scope: str, operation: str, key: str, digest: str
) -> Claim:
    """Claim ``key`` for this request, or return the stored result of an earlier one.

    Raises IdempotencyConflict when the key was used with a different input.
    """
    existing = await _find(session, scope, operation, key)
    if existing is not None:
        return _replay(existing, key, digest)
    row = IdempotencyKey(scope=scope, operation=operation, key=key, request_hash=digest)
    try:
        # A savepoint, so that losing the race leaves the outer transaction usable.
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        # A concurrent request with the same key committed first: its row is visible now.
        existing = await _find(session, scope, operation, key)
        if existing is None:
            raise
        return _replay(existing, key, digest)
    return Claim(row=row)


async def complete(session: AsyncSession, claimed: Claim, result_id: int) -> None:
    """Store the result of the claimed request (same transaction as the work)."""
    assert claimed.row is not None
    claimed.row.result_id = result_id
    session.add(claimed.row)
    await session.flush()
