"""Accounts: customer registration, customer and staff sign-in, staff creation.

Passwords are argon2 hashes (``server.auth``); hashing is CPU-bound, so it runs in a worker
thread and does not stall the event loop that serves other requests.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import create_access_token, hash_password, verify_password
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import Customer, PendingRegistration, StaffRole, StaffUser, utcnow
from server.services import outbox
from server.services.customers import ProfileChanges, apply_profile
from server.services.errors import AuthenticationFailed, Conflict, ValidationFailed
from server.services.tokens import hash_token, sign_in

log = logging.getLogger("shopgraph.accounts")
REGISTRATION_REQUESTED = "customer_registration_requested"
REGISTRATION_ATTEMPTED = "customer_registration_attempted"

MIN_PASSWORD_LENGTH = 8
# Longer inputs only cost hashing time; nobody types a 256-character password.
MAX_PASSWORD_LENGTH = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# Verified against when the email is unknown, so "no such account" takes as long as
# "wrong password" and the two cannot be told apart by timing either.
_DUMMY_HASH = hash_password("shopgraph-no-such-account")
LOGIN_FAILED = "The email or password is incorrect."


@dataclass(frozen=True)
class CustomerSession:
    customer: Customer
    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class StaffSession:
    staff: StaffUser
    access_token: str


def normalize_email(email: str, *, field: str = "email") -> str:
    """Lower-cased and trimmed; raises ValidationFailed for anything that is not an address."""
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationFailed(f"{email!r} is not a valid email address", field=field)
    return value


def check_password(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field=field
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters", field=field
        )


def customer_token(settings: Settings, customer: Customer) -> str:
    return create_access_token(settings, f"customer:{customer.id}")


def staff_token(settings: Settings, staff: StaffUser) -> str:
    return create_access_token(settings, f"staff:{staff.id}", role=staff.role.value)


@dataclass(frozen=True)
class RegistrationAccepted:
    """The one answer to every well-formed registration, whether or not the address has an
    account: what happens next is told to the mailbox, not to the caller."""

    email: str


REGISTRATION_ACCEPTED = (
    "Check your e-mail: we have sent a link to confirm the address and finish signing up."
)
VERIFICATION_FAILED = "The confirmation link is invalid or has expired. Register again."


async def register_customer(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    profile: ProfileChanges,
) -> RegistrationAccepted:
    """Ask for a customer account; the same answer whether or not ``email`` has one.

    A new address gets a pending registration and a ``customer_registration_requested`` event
    carrying the confirmation token (a mail plugin sends the link; :func:`confirm_registration`
    creates the account). An address with an account gets nothing created and a
    ``customer_registration_attempted`` event, so that its owner can be told. Both paths hash
    the password and write one event, so they also take about as long.

    Raises ValidationFailed (bad email, weak password, bad profile): those depend on the input
    alone, never on the accounts.
    """
    address = normalize_email(email)
    check_password(password)
    probe = Customer(email=address)
    apply_profile(probe, profile)
    if not probe.first_name and not probe.last_name:
        raise ValidationFailed("a first or last name is required", field="firstName")
    password_hash = await asyncio.to_thread(hash_password, password)
    existing = await _customer_by_email(session, address)
    if existing is not None:
        await outbox.emit(
            session,
            REGISTRATION_ATTEMPTED,
            {"customer_id": existing.id, "email": address},
        )
        return RegistrationAccepted(address)
    now = utcnow()
    # Expired requests for this address are of no use to anyone.
    await session.execute(
        delete(PendingRegistration).where(
            col(PendingRegistration.email) == address, col(PendingRegistration.expires_at) <= now
        )
    )
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=settings.registration_link_hours)
    session.add(
        PendingRegistration(
            email=address,
            token_hash=hash_token(token),
            password_hash=password_hash,
            profile=dict(profile),
            expires_at=expires_at,
        )
    )
    await outbox.emit(
        session,
        REGISTRATION_REQUESTED,
        {"email": address, "token": token, "expires_at": expires_at.isoformat()},
    )
    if settings.env == "development":
        # No mail plugin in a development shop: the link's token is shown to the developer.
        log.info("registration of %s: confirm with verifyEmail(token: %r)", address, token)
    return RegistrationAccepted(address)


async def confirm_registration(
    session: AsyncSession, settings: Settings, *, token: str
) -> CustomerSession:
    """Create the account of the pending registration ``token`` confirms, and sign it in.

    Raises AuthenticationFailed for an unknown, expired or used token, and when the address
    got an account in the meantime (another confirmed registration): one message for all.
    """
    now = utcnow()
    pending = (
        await session.execute(
            select(PendingRegistration).where(
                col(PendingRegistration.token_hash) == hash_token(token)
            )
        )
    ).scalar_one_or_none()
    if pending is None or pending.expires_at <= now:
        raise AuthenticationFailed(VERIFICATION_FAILED, field="token")
    address = pending.email
    # Every request for this address is answered by this one confirmation.
    await session.execute(
        delete(PendingRegistration).where(col(PendingRegistration.email) == address)
    )
    if await _customer_by_email(session, address) is not None:
        raise AuthenticationFailed(VERIFICATION_FAILED, field="token")
    customer = Customer(email=address, password_hash=pending.password_hash)
    apply_profile(customer, cast(ProfileChanges, pending.profile))
    session.add(customer)
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two links for one address followed at once: the other one won.
        raise AuthenticationFailed(VERIFICATION_FAILED, field="token") from exc
    tokens = await sign_in(session, settings, customer)
    return CustomerSession(customer, tokens.access_token, tokens.refresh_token)


async def login(
    session: AsyncSession, settings: Settings, *, email: str, password: str
) -> CustomerSession:
    """Sign a customer in: an access token and the first refresh token of a new family.
    Unknown email, wrong password and a disabled account all fail alike."""
    customer = await _customer_by_email(session, email.strip().lower())
    stored = customer.password_hash if customer is not None else None
    ok = await asyncio.to_thread(verify_password, stored or _DUMMY_HASH, password)
    if customer is None or not customer.is_active or stored is None or not ok:
        raise AuthenticationFailed(LOGIN_FAILED)
    tokens = await sign_in(session, settings, customer)
    return CustomerSession(customer, tokens.access_token, tokens.refresh_token)


async def staff_login(
    session: AsyncSession, settings: Settings, *, email: str, password: str
) -> StaffSession:
    """Sign a staff user in; the token carries their role."""
    stmt = select(StaffUser).where(col(StaffUser.email) == email.strip().lower())
    staff = (await session.execute(stmt)).scalar_one_or_none()
    stored = staff.password_hash if staff is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, password)
    if staff is None or not staff.is_active or not ok:
        raise AuthenticationFailed(LOGIN_FAILED)
    return StaffSession(staff, staff_token(settings, staff))


async def create_staff(
    session: AsyncSession, *, email: str, password: str, name: str, role: StaffRole | str
) -> StaffUser:
    """Create a staff user (from the command line: there is no self-service for staff)."""
    address = normalize_email(email)
    check_password(password)
    try:
        staff_role = StaffRole(str(role).upper())
    except ValueError as exc:
        choices = ", ".join(r.value for r in StaffRole)
        raise ValidationFailed(f"unknown role {role!r}; one of {choices}", field="role") from exc
    taken = await session.execute(select(col(StaffUser.id)).where(col(StaffUser.email) == address))
    if taken.first() is not None:
        raise Conflict(f"a staff user {address} already exists", field="email")
    staff = StaffUser(
        email=address,
        password_hash=await asyncio.to_thread(hash_password, password),
        name=name.strip(),
        role=staff_role,
    )
    session.add(staff)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a staff user {address} already exists", field="email") from exc
    return staff


async def _customer_by_email(session: AsyncSession, email: str) -> Customer | None:
    # Emails are stored lower-cased, so plain equality can use the unique index.
    stmt = select(Customer).where(col(Customer.email) == email)
    return (await session.execute(stmt)).scalars().first()


async def create_staff_account(
    database_url: str, *, email: str, password: str, name: str, role: str
) -> StaffUser:
    """Create a staff user in the database at ``database_url`` (the CLI's entry point)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            staff = await create_staff(
                session, email=email, password=password, name=name, role=role
            )
            await session.commit()
            return staff
    finally:
        await engine.dispose()
