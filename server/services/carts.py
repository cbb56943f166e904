"""Carts: created by anyone, reached by an unguessable token, tied to a signed-in customer.

An anonymous cart is reached by its token alone (the token is the secret). A cart created by a
signed-in customer belongs to them: another viewer holding its token is answered as if the cart
did not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer
from server.models import (
    Address,
    Cart,
    CartLine,
    CartStatus,
    CustomerEventKind,
    ProductVariant,
    utcnow,
)
from server.permissions import CUSTOMERS_READ
from server.services import behaviour, idempotency, variant_refs
from server.services.errors import Conflict, NotFound, ValidationFailed

MAX_LINE_QUANTITY = 999
ADD_LINES = "cartAddLines"
ADDRESS_FIELDS = (
    "recipient_name",
    "phone",
    "province",
    "city",
    "district",
    "street",
    "postal_code",
)
REQUIRED_ADDRESS_FIELDS = ("recipient_name", "phone", "province", "city", "street")


@dataclass(frozen=True)
class LineRequest:
    """A line to add: a variant, or a product with a single variant on sale."""

    quantity: int
    product_id: int | None = None
    variant_id: int | None = None


def new_token() -> str:
    # 256 bits from the OS's CSPRNG: guessing a cart token is not an attack worth considering.
    return secrets.token_urlsafe(32)


def behaviour_session_id(cart: Cart) -> str:
    # Anonymous shoppers are followed by their cart, never by the token itself (a secret).
    return f"cart:{cart.id}"


def can_access(cart: Cart, viewer: Viewer, *, write: bool) -> bool:
    if cart.customer_id is None:
        return True
    if viewer.customer_id is not None and viewer.customer_id == cart.customer_id:
        return True
    # customers.read may look at a customer's cart (support), never change it: a cart is the
    # customer's shopping behaviour and personal data (email, address), not an order yet.
    return viewer.has(CUSTOMERS_READ) and not write


async def create_cart(
    session: AsyncSession, viewer: Viewer, *, currency: str, email: str | None = None
) -> Cart:
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValidationFailed("currency must be a 3-letter ISO 4217 code", field="currency")
    cart = Cart(
        token=new_token(),
        customer_id=viewer.customer_id if viewer.is_customer else None,
        email=clean_email(email),
        currency=currency,
    )
    session.add(cart)
    await session.flush()
    return cart


def clean_email(email: str | None) -> str | None:
    """``email`` trimmed and lower-cased; ValidationFailed when it is not an address."""
    if email is None:
        return None
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254:
        raise ValidationFailed(f"{email!r} is not an email address", field="email")
    return email


async def find_cart(session: AsyncSession, viewer: Viewer, token: str) -> Cart | None:
    """The cart with ``token`` if this viewer may see it, else None."""
    cart = await session.scalar(select(Cart).where(col(Cart.token) == token))
    if cart is None or not can_access(cart, viewer, write=False):
        return None
    return cart


async def get_cart(
    session: AsyncSession, viewer: Viewer, token: str, *, active: bool = True
) -> Cart:
    """The cart with ``token`` for changing it: NotFound if absent or not this viewer's."""
    cart = await session.scalar(
        select(Cart).where(col(Cart.token) == token).execution_options(populate_existing=True)
    )
    if cart is None or not can_access(cart, viewer, write=True):
        raise NotFound("cart", "with this token", field="cartToken")
    if active and cart.status is not CartStatus.ACTIVE:
        raise Conflict("this cart was already checked out", field="cartToken")
    return cart


async def _touch(session: AsyncSession, cart: Cart) -> Cart:
    cart.updated_at = utcnow()
    session.add(cart)
    await session.flush()
    return cart


def _check_quantity(quantity: int, field: str, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not low <= quantity <= MAX_LINE_QUANTITY:
        raise ValidationFailed(
            f"quantity must be between {low} and {MAX_LINE_QUANTITY}", field=field
        )


def _upsert(session: AsyncSession) -> Any:
    # INSERT … ON CONFLICT: two concurrent adds of one product to one cart both count.
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


async def add_lines(
    session: AsyncSession,
    viewer: Viewer,
    token: str,
    lines: Sequence[LineRequest],
    *,
    idempotency_key: str | None = None,
) -> Cart:
    """Add quantities to the cart (merged into an existing line of the same variant).

    Adding is not naturally safe to repeat: with ``idempotency_key``, a retry of the same lines
    (say, after an answer lost to a network or database failure) adds nothing and returns the
    cart; the same key with other lines is an IdempotencyConflict.
    """
    cart = await get_cart(session, viewer, token)
    if not lines:
        raise ValidationFailed("give at least one line", field="lines")
    for i, line in enumerate(lines):
        _check_quantity(line.quantity, f"lines.{i}.quantity")
    claimed: idempotency.Claim | None = None
    if idempotency_key is not None:
        # The lines as sent (the same references merged): a replay answers as the first
        # request did, whatever has changed in the catalogue since.
        asked: dict[str, int] = {}
        for line in lines:
            ref = f"{line.product_id or ''}:{line.variant_id or ''}"
            asked[ref] = asked.get(ref, 0) + line.quantity
        claimed = await idempotency.claim(
            session,
            scope=f"cart:{cart.id}",
            operation=ADD_LINES,
            key=idempotency.validate_key(idempotency_key),
            digest=idempotency.request_hash(dict(sorted(asked.items()))),
        )
        if claimed.replay_id is not None:
            return cart
    chosen = await variant_refs.resolve(
        session,
        [
            variant_refs.VariantRef(line.product_id, line.variant_id, path=f"lines.{i}")
            for i, line in enumerate(lines)
        ],
        on_sale=True,
    )
    # One line per variant: the lines naming one variant are added up.
    merged: dict[int, int] = {}
    last_line: dict[int, int] = {}
    variant_of: dict[int, ProductVariant] = {}
    for i, (line, (variant, product)) in enumerate(zip(lines, chosen, strict=True)):
        assert variant.id is not None  # a stored variant
        if product.currency != cart.currency:
            raise ValidationFailed(
                f"product {product.id} is priced in {product.currency}, "
                f"the cart in {cart.currency}",
                field=f"lines.{i}",
            )
        merged[variant.id] = merged.get(variant.id, 0) + line.quantity
        last_line[variant.id] = i
        variant_of[variant.id] = variant
    existing = {
        line.variant_id: line.quantity
        for line in await session.scalars(select(CartLine).where(col(CartLine.cart_id) == cart.id))
    }
    for variant_id, quantity in merged.items():
        variant = variant_of[variant_id]
        if existing.get(variant_id, 0) + quantity > MAX_LINE_QUANTITY:
            raise ValidationFailed(
                f"at most {MAX_LINE_QUANTITY} units of one variant per cart: {variant.sku} "
                f"would have {existing.get(variant_id, 0) + quantity}",
                field=f"lines.{last_line[variant_id]}.quantity",
            )
        insert = _upsert(session)(CartLine).values(
            cart_id=cart.id, product_id=variant.product_id, variant_id=variant_id, quantity=quantity
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["cart_id", "variant_id"],
                set_={"quantity": CartLine.quantity + insert.excluded.quantity},
            )
        )
        await behaviour.record(
            session,
            kind=CustomerEventKind.ADD_TO_CART,
            customer_id=cart.customer_id or viewer.customer_id,
            session_id=None if cart.customer_id else behaviour_session_id(cart),
            product_id=variant.product_id,
            quantity=quantity,
            data={"cart_id": cart.id, "variant_id": variant_id, "sku": variant.sku},
        )
    if claimed is not None:
        assert cart.id is not None  # a stored cart
        await idempotency.complete(session, claimed, cart.id)
    return await _touch(session, cart)


async def update_line(
    session: AsyncSession, viewer: Viewer, token: str, line_id: int, quantity: int
) -> Cart:
    """Set a line's quantity; 0 removes the line."""
    cart = await get_cart(session, viewer, token)
    _check_quantity(quantity, "quantity", allow_zero=True)
    if quantity == 0:
        return await remove_line(session, viewer, token, line_id)
    result = await session.execute(
        update(CartLine)
        .where(col(CartLine.id) == line_id, col(CartLine.cart_id) == cart.id)
        .values(quantity=quantity)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        raise NotFound("cart line", line_id, field="lineId")
    return await _touch(session, cart)


async def remove_line(session: AsyncSession, viewer: Viewer, token: str, line_id: int) -> Cart:
    cart = await get_cart(session, viewer, token)
    result = await session.execute(
        delete(CartLine)
        .where(col(CartLine.id) == line_id, col(CartLine.cart_id) == cart.id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        raise NotFound("cart line", line_id, field="lineId")
    return await _touch(session, cart)


def clean_address(data: dict[str, Any], field: str = "address") -> dict[str, str]:
    """A shipping address with its required parts present and whitespace trimmed."""
    address = {name: str(data.get(name) or "").strip() for name in ADDRESS_FIELDS}
    missing = [name for name in REQUIRED_ADDRESS_FIELDS if not address[name]]
    if missing:
        raise ValidationFailed(f"the address needs {', '.join(missing)}", field=field)
    too_long = [name for name, value in address.items() if len(value) > 200]
    if too_long:
        raise ValidationFailed(f"{', '.join(too_long)} is too long", field=field)
    return address


async def saved_address(session: AsyncSession, viewer: Viewer, address_id: int) -> dict[str, str]:
    """One of the viewer's saved addresses as a shipping address."""
    row = await session.get(Address, address_id)
    if row is None or viewer.customer_id is None or row.customer_id != viewer.customer_id:
        raise NotFound("address", address_id, field="addressId")
    return clean_address({name: getattr(row, name) for name in ADDRESS_FIELDS}, "addressId")


async def set_shipping_address(
    session: AsyncSession, viewer: Viewer, token: str, address: dict[str, str]
) -> Cart:
    cart = await get_cart(session, viewer, token)
    cart.shipping_address = address
    return await _touch(session, cart)


async def lines_of(session: AsyncSession, cart_id: int) -> list[CartLine]:
    return list(
        await session.scalars(
            select(CartLine).where(col(CartLine.cart_id) == cart_id).order_by(col(CartLine.id))
        )
    )
