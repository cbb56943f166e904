"""Helpers for tests that need customers, staff users and their bearer tokens.

Rows are committed, so the server under test (its own connections) sees them at once.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import create_access_token, hash_password
from server.config import Settings
from server.models import Customer, MembershipTier, StaffRole, StaffUser

DEFAULT_PASSWORD = "s3cret-passw0rd"
_serial = itertools.count(1)


@functools.cache
def _password_hash(password: str) -> str:
    """argon2 is slow on purpose (a large fraction of a second here): one hash per password
    serves every account the suite makes with it. Each is a real argon2 hash of that password,
    so signing in verifies it as for any account; the server still hashes what it is sent."""
    return hash_password(password)


async def make_customer(
    session: AsyncSession,
    *,
    email: str | None = None,
    password: str | None = DEFAULT_PASSWORD,
    first_name: str = "小明",
    last_name: str = "王",
    membership_tier: MembershipTier = MembershipTier.STANDARD,
    **fields: Any,
) -> Customer:
    """A committed customer. ``password=None`` leaves the account without a password."""
    customer = Customer(
        email=(email or f"customer{next(_serial)}@example.cn").lower(),
        password_hash=_password_hash(password) if password else None,
        first_name=first_name,
        last_name=last_name,
        membership_tier=membership_tier,
        **fields,
    )
    session.add(customer)
    await session.commit()
    return customer


async def make_staff(
    session: AsyncSession,
    *,
    role: StaffRole = StaffRole.ADMIN,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    name: str = "运营小李",
) -> StaffUser:
    """A committed, active staff user with ``role``."""
    staff = StaffUser(
        email=(email or f"staff{next(_serial)}@example.cn").lower(),
        password_hash=_password_hash(password),
        name=name,
        role=role,
    )
    session.add(staff)
    await session.commit()
    return staff


def token_for(settings: Settings, who: Customer | StaffUser) -> str:
    """A bearer token that signs requests in as ``who`` (staff tokens carry the role)."""
    if isinstance(who, StaffUser):
        return create_access_token(settings, f"staff:{who.id}", role=who.role.value)
    return create_access_token(settings, f"customer:{who.id}")
