"""Customers: profiles, addresses, membership tiers and tags, and the staff's customer search."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, Select, String, cast, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer
from server.models import Address, Customer, CustomerSegment, MembershipTier, utcnow
from server.permissions import CUSTOMERS_READ
from server.services import rfm, surveys
from server.services.errors import NotFound, ValidationFailed

GENDERS = ("FEMALE", "MALE", "OTHER")
AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")
# First-tier to fifth-tier cities; "new first-tier" cities count as tier 2.
CITY_TIERS = range(1, 6)
MAX_NAME = 64
MAX_LABELS = 50
MAX_LABEL = 32
MAX_ADDRESSES = 20
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,19}$")
_POSTAL_CODE = re.compile(r"^[0-9]{6}$")


class ProfileChanges(TypedDict, total=False):
    """Profile fields to change; a key that is absent is left as it is, None clears it."""

    first_name: str | None
    last_name: str | None
    phone: str | None
    gender: str | None
    age_band: str | None
    region: str | None
    city: str | None
    city_tier: int | None
    occupation: str | None
    interests: list[str] | None
    # True: send no satisfaction survey (the open ones close).
    surveys_opt_out: bool | None


class AddressFields(TypedDict, total=False):
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str | None
    street: str
    postal_code: str | None


@dataclass(frozen=True)
class CustomerFilter:
    membership_tier: MembershipTier | None = None
    tag: str | None = None
    region: str | None = None
    city: str | None = None
    search: str | None = None
    # Customers now in this RFM segment.
    segment: CustomerSegment | None = None


# --- validation -----------------------------------------------------------------------------


def _text(value: str | None, field: str, *, required: bool = False, limit: int = MAX_NAME) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed(f"{field} must not be blank", field=field)
    if len(text) > limit:
        raise ValidationFailed(f"{field} must have at most {limit} characters", field=field)
    return text


def _optional_text(value: str | None, field: str, limit: int = MAX_NAME) -> str | None:
    return _text(value, field, limit=limit) or None


def _phone(value: str | None, field: str = "phone") -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if not _PHONE.match(text):
        raise ValidationFailed(f"{value!r} is not a phone number", field=field)
    return text


def normalize_labels(values: Iterable[str], field: str) -> list[str]:
    """Trimmed, without blanks or repeats, in the order given (tags and interests)."""
    out: list[str] = []
    for raw in values:
        label = raw.strip()
        if not label:
            continue
        if len(label) > MAX_LABEL:
            raise ValidationFailed(f"{label!r} is longer than {MAX_LABEL} characters", field=field)
        if label not in out:
            out.append(label)
    if len(out) > MAX_LABELS:
        raise ValidationFailed(f"at most {MAX_LABELS} {field} are allowed", field=field)
    return out


def apply_profile(customer: Customer, changes: ProfileChanges) -> None:
    """Validate ``changes`` and set them on ``customer`` (all or nothing: checks come first)."""
    values: dict[str, Any] = {}
    for name, field in (("first_name", "firstName"), ("last_name", "lastName")):
        if name in changes:
            values[name] = _text(changes[name], field)  # type: ignore[literal-required]  # a key from the loop: each is one of the TypedDict's
    if "phone" in changes:
        values["phone"] = _phone(changes["phone"])
    if "gender" in changes:
        gender = changes["gender"]
        if gender is not None and gender not in GENDERS:
            raise ValidationFailed(f"gender must be one of {', '.join(GENDERS)}", field="gender")
        values["gender"] = gender
    if "age_band" in changes:
        band = changes["age_band"]
        if band is not None and band not in AGE_BANDS:
            raise ValidationFailed(
                f"ageBand must be one of {', '.join(AGE_BANDS)}", field="ageBand"
            )
        values["age_band"] = band
    for name, field in (("region", "region"), ("city", "city"), ("occupation", "occupation")):
        if name in changes:
            values[name] = _optional_text(changes[name], field)  # type: ignore[literal-required]  # a key from the loop: each is one of the TypedDict's
    if "city_tier" in changes:
        tier = changes["city_tier"]
        if tier is not None and tier not in CITY_TIERS:
            raise ValidationFailed("cityTier must be between 1 and 5", field="cityTier")
        values["city_tier"] = tier
    if "interests" in changes:
        values["interests"] = normalize_labels(changes["interests"] or [], "interests")
    if "surveys_opt_out" in changes:
        opt_out = changes["surveys_opt_out"]
        if opt_out is None:
            raise ValidationFailed("surveysOptOut is true or false", field="surveysOptOut")
        values["surveys_opt_out"] = opt_out
    for name, value in values.items():
        setattr(customer, name, value)


def _address_values(fields: AddressFields, *, partial: bool) -> dict[str, Any]:
    required = (
        ("recipient_name", "recipientName", MAX_NAME),
        ("province", "province", MAX_NAME),
        ("city", "city", MAX_NAME),
        ("street", "street", 200),
    )
    values: dict[str, Any] = {}
    for name, field, limit in required:
        if name in fields or not partial:
            values[name] = _text(fields.get(name), field, required=True, limit=limit)  # type: ignore[arg-type]  # a key from the loop: the TypedDict's value type is lost
    if "phone" in fields or not partial:
        phone = _phone(fields.get("phone"))
        if phone is None:
            raise ValidationFailed("phone must not be blank", field="phone")
        values["phone"] = phone
    if "district" in fields or not partial:
        values["district"] = _text(fields.get("district"), "district")
    if "postal_code" in fields or not partial:
        code = _text(fields.get("postal_code"), "postalCode")
        if code and not _POSTAL_CODE.match(code):
            raise ValidationFailed("postalCode must be 6 digits", field="postalCode")
        values["postal_code"] = code
    return values


# --- customers ------------------------------------------------------------------------------


def can_view(viewer: Viewer, customer_id: int | None) -> bool:
    """Whether ``viewer`` may see the customer's personal data (profile, addresses, behaviour):
    the customer themself, or staff and apps holding customers.read."""
    if viewer.is_customer:
        return viewer.customer_id == customer_id
    return viewer.has(CUSTOMERS_READ)


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    """The customer (from the session when it holds the row already)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("Customer", customer_id, field="customerId")
    return customer


async def lock_customer(session: AsyncSession, customer_id: int) -> Customer:
    """Load a customer for change, locking the row (PostgreSQL) so that concurrent changes of
    the same customer (tags, default address) run one after the other; SQLite's write
    transactions are serial already."""
    stmt = (
        select(Customer)
        .where(col(Customer.id) == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    customer = (await session.execute(stmt)).scalar_one_or_none()
    if customer is None:
        raise NotFound("Customer", customer_id, field="customerId")
    return customer


async def update_profile(
    session: AsyncSession, customer_id: int, changes: ProfileChanges
) -> Customer:
    customer = await lock_customer(session, customer_id)
    apply_profile(customer, changes)
    if not customer.first_name and not customer.last_name:
        raise ValidationFailed("a first or last name is required", field="firstName")
    customer.updated_at = utcnow()
    await session.flush()
    if customer.surveys_opt_out:
        # Opted out: the surveys they have not answered are not put to them any more.
        await surveys.withdraw_open(session, customer_id)
    return customer


async def set_membership_tier(
    session: AsyncSession, customer_id: int, tier: MembershipTier
) -> Customer:
    customer = await lock_customer(session, customer_id)
    customer.membership_tier = tier
    customer.updated_at = utcnow()
    await session.flush()
    return customer


async def add_tags(session: AsyncSession, customer_id: int, tags: list[str]) -> Customer:
    new = normalize_labels(tags, "tags")
    if not new:
        raise ValidationFailed("give at least one tag", field="tags")
    customer = await lock_customer(session, customer_id)
    # A new list object: SQLAlchemy does not see in-place changes of a JSON value.
    customer.tags = normalize_labels([*customer.tags, *new], "tags")
    customer.updated_at = utcnow()
    await session.flush()
    return customer


async def remove_tags(session: AsyncSession, customer_id: int, tags: list[str]) -> Customer:
    gone = set(normalize_labels(tags, "tags"))
    if not gone:
        raise ValidationFailed("give at least one tag", field="tags")
    customer = await lock_customer(session, customer_id)
    customer.tags = [tag for tag in customer.tags if tag not in gone]
    customer.updated_at = utcnow()
    await session.flush()
    return customer


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def json_array_contains(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """``value`` is an element of the JSON array in ``column`` (SQLite or PostgreSQL)."""
    if dialect == "postgresql":
        return cast(column, JSONB).contains([value])
    elements = func.json_each(column).table_valued("value")
    return exists().select_from(elements).where(elements.c.value == value)


def customers_query(flt: CustomerFilter, dialect: str) -> Select[Any]:
    """The staff's customer list: the customers ``flt`` selects, unordered (the page orders)."""
    return select(Customer).where(*customer_conditions(flt, dialect))


def customer_conditions(flt: CustomerFilter, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the staff's customer list."""
    conditions: list[ColumnElement[bool]] = []
    if flt.membership_tier is not None:
        conditions.append(col(Customer.membership_tier) == flt.membership_tier)
    if flt.region:
        conditions.append(col(Customer.region) == flt.region.strip())
    if flt.city:
        conditions.append(col(Customer.city) == flt.city.strip())
    if flt.tag and flt.tag.strip():
        conditions.append(json_array_contains(Customer.tags, flt.tag.strip(), dialect))
    if flt.segment is not None:
        conditions.append(col(Customer.id).in_(rfm.in_segment(flt.segment)))
    if flt.search and flt.search.strip():
        pattern = _like(flt.search.strip())
        # Chinese names are written family name first: 王小明 is last_name || first_name.
        full_cn = func.lower(cast(Customer.last_name, String) + cast(Customer.first_name, String))
        full_en = func.lower(Customer.first_name + " " + Customer.last_name)
        conditions.append(
            or_(
                *(
                    expr.like(pattern, escape="\\")
                    for expr in (func.lower(Customer.email), full_cn, full_en)
                )
            )
        )
    return conditions


# --- addresses ------------------------------------------------------------------------------


async def _own_address(session: AsyncSession, customer_id: int, address_id: int) -> Address:
    """The customer's address; another customer's address is simply not found."""
    stmt = (
        select(Address)
        .where(col(Address.id) == address_id, col(Address.customer_id) == customer_id)
        .execution_options(populate_existing=True)
    )
    address = (await session.execute(stmt)).scalar_one_or_none()
    if address is None:
        raise NotFound("Address", address_id, field="id")
    return address


async def _make_default(session: AsyncSession, customer_id: int, address_id: int) -> None:
    # One statement flips every address of the customer: exactly one default, never two.
    await session.execute(
        update(Address)
        .where(col(Address.customer_id) == customer_id)
        .values(is_default=Address.id == address_id)
        .execution_options(synchronize_session=False)
    )


async def _reload(session: AsyncSession, address_id: int) -> Address:
    stmt = (
        select(Address)
        .where(col(Address.id) == address_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


async def add_address(
    session: AsyncSession, customer_id: int, fields: AddressFields, *, make_default: bool = False
) -> Address:
    """Add an address; the customer's first address is their default whatever was asked."""
    values = _address_values(fields, partial=False)
    await lock_customer(session, customer_id)
    count = (
        await session.execute(
            select(func.count()).select_from(Address).where(col(Address.customer_id) == customer_id)
        )
    ).scalar_one()
    if count >= MAX_ADDRESSES:
        raise ValidationFailed(f"at most {MAX_ADDRESSES} addresses are allowed", field="id")
    address = Address(customer_id=customer_id, is_default=False, **values)
    session.add(address)
    await session.flush()
    if make_default or count == 0:
        await _make_default(session, customer_id, address.id)  # type: ignore[arg-type]  # a stored address has its id
    return await _reload(session, address.id)  # type: ignore[arg-type]  # a stored address has its id


async def update_address(
    session: AsyncSession,
    customer_id: int,
    address_id: int,
    fields: AddressFields,
    *,
    make_default: bool = False,
) -> Address:
    values = _address_values(fields, partial=True)
    await lock_customer(session, customer_id)
    address = await _own_address(session, customer_id, address_id)
    for name, value in values.items():
        setattr(address, name, value)
    await session.flush()
    if make_default:
        await _make_default(session, customer_id, address_id)
    return await _reload(session, address_id)


async def set_default_address(session: AsyncSession, customer_id: int, address_id: int) -> Address:
    await lock_customer(session, customer_id)
    await _own_address(session, customer_id, address_id)
    await _make_default(session, customer_id, address_id)
    return await _reload(session, address_id)


async def remove_address(session: AsyncSession, customer_id: int, address_id: int) -> Customer:
    """Remove an address. If it was the default, the newest remaining one becomes default."""
    customer = await lock_customer(session, customer_id)
    address = await _own_address(session, customer_id, address_id)
    was_default = address.is_default
    await session.delete(address)
    await session.flush()
    if was_default:
        newest = (
            await session.execute(
                select(col(Address.id))
                .where(col(Address.customer_id) == customer_id)
                .order_by(col(Address.created_at).desc(), col(Address.id).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if newest is not None:
            await _make_default(session, customer_id, newest)
    return customer
