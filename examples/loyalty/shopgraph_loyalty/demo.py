"""The loyalty plugin's demo data (the ``demo_data`` hook): the demo shop's customers get the
points its orders earned them, as if the plugin had run all along, and some of them hold points
against the cart they left, to be taken off at checkout."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Cart, CartStatus, Order, OrderStatus
from server.plugin import DemoShop
from shopgraph_loyalty.models import (
    LoyaltyAccount,
    LoyaltyRedemption,
    LoyaltyTransaction,
    LoyaltyTransactionKind,
)
from shopgraph_loyalty.service import LoyaltySettings, points_for

# The share of customers with points and an abandoned cart who hold points against it.
HOLD_SHARE = 0.3
MIN_HOLD = 100

_Row = TypeVar("_Row", Order, Cart)


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: LoyaltySettings,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """Write the ledger, the holds and the accounts of the demo customers; return the counts."""
    balance: Counter[int] = Counter()
    earned: Counter[int] = Counter()
    last: dict[int, datetime] = {}
    ledger: list[LoyaltyTransaction] = []

    def record(entry: LoyaltyTransaction) -> None:
        ledger.append(entry)
        balance[entry.customer_id] += entry.points
        at = entry.created_at
        last[entry.customer_id] = max(at, last.get(entry.customer_id, at))

    # Every order earned its points when placed; a cancelled one gave them back.
    for order in await _rows(session, Order, shop.order_ids):
        customer_id = order.customer_id
        points = points_for(order.total_amount, order.currency, config)
        if customer_id is None or points <= 0:
            continue
        record(
            LoyaltyTransaction(
                customer_id=customer_id,
                kind=LoyaltyTransactionKind.EARN,
                points=points,
                order_id=order.id,
                note=f"order {order.number}",
                created_at=order.placed_at,
            )
        )
        earned[customer_id] += points
        if order.status is OrderStatus.CANCELLED:
            record(
                LoyaltyTransaction(
                    customer_id=customer_id,
                    kind=LoyaltyTransactionKind.REVERSE,
                    points=-points,
                    order_id=order.id,
                    note="order cancelled",
                    created_at=order.cancelled_at or order.placed_at,
                )
            )
    progress(f"points of {len(shop.order_ids)} orders")

    holds: list[LoyaltyRedemption] = []
    for cart in await _rows(session, Cart, shop.cart_ids):
        customer_id = cart.customer_id
        if customer_id is None or cart.status is not CartStatus.ACTIVE:
            continue
        if balance[customer_id] < MIN_HOLD or rng.random() >= HOLD_SHARE:
            continue
        points = rng.randint(1, min(balance[customer_id], 5000) // MIN_HOLD) * MIN_HOLD
        at = cart.updated_at or cart.created_at
        holds.append(
            LoyaltyRedemption(
                cart_id=cart.id,  # type: ignore[arg-type]  # a stored cart has its id
                customer_id=customer_id,
                points=points,
                created_at=at,
            )
        )
        record(
            LoyaltyTransaction(
                customer_id=customer_id,
                kind=LoyaltyTransactionKind.REDEEM,
                points=-points,
                cart_id=cart.id,
                created_at=at,
            )
        )
    progress(f"{len(holds)} carts with points held")

    accounts = [
        LoyaltyAccount(
            customer_id=customer_id,
            balance=balance[customer_id],
            lifetime_earned=earned[customer_id],
            updated_at=last[customer_id],
        )
        for customer_id in sorted(last)
    ]
    session.add_all([*accounts, *ledger, *holds])
    await session.flush()
    return {
        "loyalty accounts": len(accounts),
        "loyalty transactions": len(ledger),
        "loyalty redemptions": len(holds),
    }


async def _rows(session: AsyncSession, model: type[_Row], ids: tuple[int, ...]) -> list[_Row]:
    """The rows of ``model`` with these ids, in id order (read as one id range, not a long
    ``IN`` list: a big demo shop has more orders than a statement takes parameters)."""
    if not ids:
        return []
    wanted = set(ids)
    key = col(model.id)
    found = await session.execute(
        select(model).where(key >= min(ids), key <= max(ids)).order_by(key)
    )
    return [row for row in found.scalars() if row.id in wanted]
