"""Loyalty points: plain async functions over a session (no GraphQL here)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Cart, CartStatus, Customer, Order, utcnow
from server.plugin import Adjustment, CartView
from server.services.errors import AuthenticationFailed, NotFound, ValidationFailed
from shopgraph_loyalty.models import (
    LoyaltyAccount,
    LoyaltyRedemption,
    LoyaltyTransaction,
    LoyaltyTransactionKind,
)

# Minor units per whole unit of a currency (fen per yuan); points are earned per whole unit.
_MINOR_PER_UNIT = {"JPY": 1, "KRW": 1, "VND": 1, "BHD": 1000, "KWD": 1000, "OMR": 1000}


class LoyaltySettings(BaseModel):
    """Read from ``SHOPGRAPH_LOYALTY_<FIELD>``."""

    points_per_unit: int = Field(default=1, ge=0, description="Points per whole currency unit.")
    point_value: int = Field(default=1, ge=1, description="Minor units one point is worth.")


async def _ensure_account(session: AsyncSession, customer_id: int) -> None:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(LoyaltyAccount.__table__)  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
        .values(customer_id=customer_id, balance=0, lifetime_earned=0)
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )


async def _change_balance(
    session: AsyncSession, customer_id: int, delta: int, *, earned: bool = False
) -> bool:
    """Add ``delta`` points; a debit only happens if the balance covers it (one conditional
    UPDATE: two concurrent debits cannot both spend the same points)."""
    await _ensure_account(session, customer_id)
    stmt = update(LoyaltyAccount).where(col(LoyaltyAccount.customer_id) == customer_id)
    if delta < 0:
        stmt = stmt.where(col(LoyaltyAccount.balance) >= -delta)
    values: dict[str, Any] = {"balance": LoyaltyAccount.balance + delta, "updated_at": utcnow()}
    if earned:
        values["lifetime_earned"] = LoyaltyAccount.lifetime_earned + delta
    result = await session.execute(
        stmt.values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say


async def account(session: AsyncSession, customer_id: int) -> LoyaltyAccount | None:
    return (
        await session.execute(
            select(LoyaltyAccount).where(col(LoyaltyAccount.customer_id) == customer_id)
        )
    ).scalar_one_or_none()


def _record(
    session: AsyncSession,
    customer_id: int,
    kind: LoyaltyTransactionKind,
    points: int,
    *,
    order_id: int | None = None,
    cart_id: int | None = None,
    note: str = "",
) -> None:
    session.add(
        LoyaltyTransaction(
            customer_id=customer_id,
            kind=kind,
            points=points,
            order_id=order_id,
            cart_id=cart_id,
            note=note,
        )
    )


async def _release_hold(session: AsyncSession, hold: LoyaltyRedemption, note: str) -> None:
    await _change_balance(session, hold.customer_id, hold.points)
    _record(
        session,
        hold.customer_id,
        LoyaltyTransactionKind.RELEASE,
        hold.points,
        cart_id=hold.cart_id,
        note=note,
    )
    await session.delete(hold)
    await session.flush()


async def redeem(
    session: AsyncSession, customer_id: int | None, cart_token: str, points: int
) -> LoyaltyRedemption | None:
    """Hold ``points`` of the customer's balance against their active cart (replacing an
    earlier hold); 0 releases the hold. Returns the hold, or None when released."""
    if customer_id is None:
        raise AuthenticationFailed("sign in to redeem loyalty points")
    if points < 0:
        raise ValidationFailed("points must not be negative", field="points")
    cart = (
        await session.execute(select(Cart).where(col(Cart.token) == cart_token))
    ).scalar_one_or_none()
    if cart is None or cart.customer_id != customer_id or cart.status != CartStatus.ACTIVE:
        # Someone else's cart is answered exactly like a missing one.
        raise NotFound("cart", cart_token, field="cartToken")
    hold = (
        await session.execute(
            select(LoyaltyRedemption).where(col(LoyaltyRedemption.cart_id) == cart.id)
        )
    ).scalar_one_or_none()
    if hold is not None:
        await _release_hold(session, hold, "replaced")
    if points == 0:
        return None
    if not await _change_balance(session, customer_id, -points):
        current = await account(session, customer_id)
        have = current.balance if current else 0
        raise ValidationFailed(f"not enough points: {points} asked, {have} held", field="points")
    hold = LoyaltyRedemption(cart_id=cart.id, customer_id=customer_id, points=points)  # type: ignore[arg-type]  # a stored cart has its id
    session.add(hold)
    _record(session, customer_id, LoyaltyTransactionKind.REDEEM, -points, cart_id=cart.id)
    await session.flush()
    return hold


def discount_for(points: int, config: LoyaltySettings, subtotal: int) -> int:
    """What ``points`` take off an order: their value, never more than the subtotal."""
    return min(points * config.point_value, max(0, subtotal))


async def order_adjustments(
    session: AsyncSession, cart: CartView, config: LoyaltySettings
) -> list[Adjustment]:
    """The discount of the points held against ``cart`` (nothing when none are)."""
    if cart.cart_id is None:
        return []
    hold = (
        await session.execute(
            select(LoyaltyRedemption).where(col(LoyaltyRedemption.cart_id) == cart.cart_id)
        )
    ).scalar_one_or_none()
    if hold is None:
        return []
    amount = discount_for(hold.points, config, cart.subtotal)
    if amount == 0:
        return []
    # The core labels it with this plugin's name ("loyalty") as its source.
    return [
        Adjustment(rule="redeem", label=f"积分抵扣 Loyalty points ({hold.points})", amount=-amount)
    ]


def points_for(total: int, currency: str, config: LoyaltySettings) -> int:
    return max(0, total) // _MINOR_PER_UNIT.get(currency.upper(), 100) * config.points_per_unit


async def attach_hold(session: AsyncSession, order: Order) -> None:
    """Inside placeOrder's transaction: the points held against the order's cart are now spent
    on this order (a cancellation gives them back)."""
    if order.cart_id is None:
        return
    await session.execute(
        update(LoyaltyRedemption)
        .where(col(LoyaltyRedemption.cart_id) == order.cart_id)
        .values(order_id=order.id)
        .execution_options(synchronize_session=False)
    )


async def give_back_hold(session: AsyncSession, order_id: int) -> None:
    """Inside the cancelling transaction: the points redeemed on the order go back to its
    customer's balance (once: a cancelled order is never cancelled again)."""
    hold = (
        await session.execute(
            select(LoyaltyRedemption).where(col(LoyaltyRedemption.order_id) == order_id)
        )
    ).scalar_one_or_none()
    if hold is None:
        return
    await _change_balance(session, hold.customer_id, hold.points)
    _record(
        session,
        hold.customer_id,
        LoyaltyTransactionKind.RELEASE,
        hold.points,
        order_id=order_id,
        note="order cancelled",
    )
    await session.flush()


async def earn_for_order(
    session: AsyncSession, payload: dict[str, Any], config: LoyaltySettings, plugins: Any
) -> int:
    """Award the points of a placed order (once, however often the event is delivered).
    Returns the points awarded by this call."""
    order_id = int(payload["order_id"])
    customer_id = payload.get("customer_id")
    if customer_id is None:
        return 0  # guests earn nothing
    customer_id = int(customer_id)
    already = (
        await session.execute(
            select(col(LoyaltyTransaction.id)).where(
                col(LoyaltyTransaction.kind) == LoyaltyTransactionKind.EARN,
                col(LoyaltyTransaction.order_id) == order_id,
            )
        )
    ).first()
    if already is not None:
        return 0
    total = int(payload.get("total", 0))
    currency = str(payload.get("currency", "CNY"))
    base = points_for(total, currency, config)
    bonus = 0
    for _plugin, extra in await plugins.call(
        "loyalty_bonus_points",
        session=session,
        order_id=order_id,
        customer_id=customer_id,
        total=total,
        currency=currency,
        base_points=base,
    ):
        bonus += int(extra)
    points = base + bonus
    if points <= 0:
        return 0
    await _change_balance(session, customer_id, points, earned=True)
    note = f"order {payload.get('number') or order_id}" + (f" (+{bonus} bonus)" if bonus else "")
    _record(session, customer_id, LoyaltyTransactionKind.EARN, points, order_id=order_id, note=note)
    await session.flush()
    return points


async def order_cancelled(session: AsyncSession, order_id: int) -> None:
    """Take back the points a cancelled order earned (as far as the balance still holds them),
    once per order. (The points it spent went back when it was cancelled: give_back_hold.)"""
    done = set(
        (
            await session.execute(
                select(col(LoyaltyTransaction.kind)).where(
                    col(LoyaltyTransaction.order_id) == order_id
                )
            )
        ).scalars()
    )
    earned = (
        await session.execute(
            select(LoyaltyTransaction).where(
                col(LoyaltyTransaction.kind) == LoyaltyTransactionKind.EARN,
                col(LoyaltyTransaction.order_id) == order_id,
            )
        )
    ).scalar_one_or_none()
    if earned is not None and LoyaltyTransactionKind.REVERSE not in done:
        current = await account(session, earned.customer_id)
        take = min(earned.points, current.balance if current else 0)
        if take and not await _change_balance(session, earned.customer_id, -take):
            # The balance moved under us: fail the delivery; it is retried.
            raise RuntimeError("balance changed while reversing; retry")
        _record(
            session,
            earned.customer_id,
            LoyaltyTransactionKind.REVERSE,
            -take,
            order_id=order_id,
            note="order cancelled",
        )
    await session.flush()


async def balance_of(session: AsyncSession, email: str) -> int:
    """The points of the customer with ``email`` (a command line's question)."""
    points = await session.scalar(
        select(col(LoyaltyAccount.balance))
        .join(Customer, col(Customer.id) == LoyaltyAccount.customer_id)
        .where(col(Customer.email) == email.strip().lower())
    )
    if (
        points is None
        and await session.scalar(
            select(col(Customer.id)).where(col(Customer.email) == email.strip().lower())
        )
        is None
    ):
        raise NotFound("customer with the email", repr(email))
    return int(points or 0)
