"""Personal data: a customer's export of everything the shop holds about them, and erasure.

Erasure keeps orders (the shop must keep them for accounting) with every personal field
replaced by a placeholder; deletes addresses, refresh tokens, carts' contact data and the
customer's RFM figures, segment history and audience memberships; detaches behaviour events from the person;
closes their open satisfaction surveys and deletes their comments (the scores stay, in the
shop's figures); disables sign-in and revokes every token. An outbox event ``customer_erased`` tells plugins
to erase what they hold.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import verify_password
from server.config import Settings
from server.models import (
    Address,
    Cart,
    CartLine,
    Customer,
    CustomerEvent,
    Order,
    OrderLine,
    OrderStatusChange,
    Payment,
    RefreshToken,
    Shipment,
    Survey,
    TrackingEvent,
    utcnow,
)
from server.services import audiences, customer_value, rfm, surveys, tokens
from server.services.errors import AuthenticationFailed, NotFound
from server.services.outbox import emit

PLACEHOLDER = "[erased]"
# Kept on anonymised orders: a province/city is not a person, and regional sales and tax
# reporting need it.
KEPT_ADDRESS_FIELDS = ("province", "city")
ERASED_EVENT = "customer_erased"

PROFILE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "gender",
    "age_band",
    "region",
    "city",
    "city_tier",
    "occupation",
    "membership_tier",
    "tags",
    "interests",
    "surveys_opt_out",
    "created_at",
    "updated_at",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _row(model: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        name: _plain(getattr(model, name))
        for name in type(model).model_fields
        if name not in exclude
    }


async def _all(session: AsyncSession, stmt: Any) -> list[Any]:
    return list((await session.execute(stmt)).scalars().all())


async def export_customer_data(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    """Everything the core holds about the customer, as JSON-ready data."""
    customer = await session.get(Customer, customer_id)
    if customer is None or not customer.is_active:
        raise NotFound("customer", customer_id)
    addresses = await _all(
        session,
        select(Address).where(col(Address.customer_id) == customer_id).order_by(col(Address.id)),
    )
    orders = await _all(
        session, select(Order).where(col(Order.customer_id) == customer_id).order_by(col(Order.id))
    )
    order_ids = [o.id for o in orders]
    lines = await _all(session, select(OrderLine).where(col(OrderLine.order_id).in_(order_ids)))
    history = await _all(
        session,
        select(OrderStatusChange)
        .where(col(OrderStatusChange.order_id).in_(order_ids))
        .order_by(col(OrderStatusChange.at), col(OrderStatusChange.id)),
    )
    payments = await _all(session, select(Payment).where(col(Payment.order_id).in_(order_ids)))
    shipments = await _all(session, select(Shipment).where(col(Shipment.order_id).in_(order_ids)))
    tracking = await _all(
        session,
        select(TrackingEvent)
        .where(col(TrackingEvent.shipment_id).in_([s.id for s in shipments]))
        .order_by(col(TrackingEvent.occurred_at), col(TrackingEvent.id)),
    )
    carts = await _all(
        session, select(Cart).where(col(Cart.customer_id) == customer_id).order_by(col(Cart.id))
    )
    cart_lines = await _all(
        session, select(CartLine).where(col(CartLine.cart_id).in_([c.id for c in carts]))
    )
    events = await _all(
        session,
        select(CustomerEvent)
        .where(col(CustomerEvent.customer_id) == customer_id)
        .order_by(col(CustomerEvent.occurred_at), col(CustomerEvent.id)),
    )
    their_surveys = await _all(
        session,
        select(Survey).where(col(Survey.customer_id) == customer_id).order_by(col(Survey.id)),
    )

    def of(rows: list[Any], attr: str, key: int | None) -> list[dict[str, Any]]:
        return [_row(r, exclude=(attr,)) for r in rows if getattr(r, attr) == key]

    return {
        "exportedAt": utcnow().isoformat(),
        "profile": {"id": customer.id, **{f: _plain(getattr(customer, f)) for f in PROFILE_FIELDS}},
        "addresses": [_row(a, exclude=("customer_id",)) for a in addresses],
        "orders": [
            {
                **_row(o, exclude=("customer_id",)),
                "lines": of(lines, "order_id", o.id),
                "statusHistory": of(history, "order_id", o.id),
                "payments": of(payments, "order_id", o.id),
                "shipments": [
                    {
                        **_row(s, exclude=("order_id",)),
                        "tracking": of(tracking, "shipment_id", s.id),
                    }
                    for s in shipments
                    if s.order_id == o.id
                ],
            }
            for o in orders
        ],
        "carts": [
            {**_row(c, exclude=("customer_id", "token")), "lines": of(cart_lines, "cart_id", c.id)}
            for c in carts
        ],
        "events": [_row(e, exclude=("customer_id",)) for e in events],
        "surveys": [_row(s, exclude=("customer_id",)) for s in their_surveys],
    }


def anonymised_address(address: dict[str, Any] | None) -> dict[str, Any]:
    return {
        key: (value if key in KEPT_ADDRESS_FIELDS else PLACEHOLDER)
        for key, value in (address or {}).items()
    }


def erased_email(customer_id: int) -> str:
    # Unique (the column is) and undeliverable (.invalid is reserved).
    return f"erased-{customer_id}@erased.invalid"


async def erase_customer(
    session: AsyncSession, settings: Settings, customer_id: int, password: str
) -> Customer:
    """Erase the customer's personal data after checking their password (AuthenticationFailed)."""
    customer = await session.get(Customer, customer_id)
    if customer is None or not customer.is_active:
        raise NotFound("customer", customer_id)
    ok = await asyncio.to_thread(verify_password, customer.password_hash, password)
    if not ok:
        raise AuthenticationFailed("The password is incorrect.", field="password")

    customer.email = erased_email(customer_id)
    customer.password_hash = None
    customer.first_name = ""
    customer.last_name = ""
    for name in ("phone", "gender", "age_band", "region", "city", "city_tier", "occupation"):
        setattr(customer, name, None)
    customer.tags = []
    customer.interests = []
    customer.is_active = False
    customer.updated_at = utcnow()

    await session.execute(delete(Address).where(col(Address.customer_id) == customer_id))
    orders = await _all(session, select(Order).where(col(Order.customer_id) == customer_id))
    for order in orders:
        order.email = erased_email(customer_id)
        order.shipping_address = anonymised_address(order.shipping_address)
    carts = await _all(session, select(Cart).where(col(Cart.customer_id) == customer_id))
    for cart in carts:
        cart.email = None
        cart.shipping_address = (
            anonymised_address(cart.shipping_address) if cart.shipping_address else None
        )
    # Behaviour stays in product statistics, but no longer points at a person.
    await session.execute(
        update(CustomerEvent)
        .where(col(CustomerEvent.customer_id) == customer_id)
        .values(customer_id=None, session_id=None, query=None, data={})
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(RefreshToken).where(col(RefreshToken.customer_id) == customer_id))
    # Their RFM figures, segment history, lifetime value, churn risk and audience memberships
    # describe a person: gone with the account (the recomputations leave erased customers out).
    await rfm.erase(session, customer_id)
    await customer_value.erase(session, customer_id)
    await audiences.erase(session, customer_id)
    await surveys.erase(session, customer_id)
    await tokens.revoke_subject(session, settings, f"customer:{customer_id}")
    await emit(session, ERASED_EVENT, {"customer_id": customer_id})
    await session.flush()
    return customer
