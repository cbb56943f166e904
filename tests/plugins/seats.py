"""A made-up group-buy plugin: a limited pool of seats, reserved when an order is placed and
given back when it is cancelled, inside the order's own transactions (order_placing,
order_cancelling), with conditional UPDATEs like the core's stock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Order, OrderLine
from server.plugin import CheckoutProblem, PluginInfo, hookimpl

TABLES = (
    "CREATE TABLE seats_pool (id INTEGER PRIMARY KEY, capacity INTEGER NOT NULL, "
    "taken INTEGER NOT NULL)",
    "CREATE TABLE seats_taken (order_id INTEGER PRIMARY KEY, seats INTEGER NOT NULL)",
)


async def create_pool(session: AsyncSession, capacity: int) -> None:
    """The plugin's tables (a real plugin has a migration branch), with one pool."""
    for statement in TABLES:
        await session.execute(text(statement))
    await session.execute(
        text("INSERT INTO seats_pool (id, capacity, taken) VALUES (1, :c, 0)"), {"c": capacity}
    )
    await session.commit()


async def pool(session: AsyncSession) -> tuple[int, int]:
    """(seats taken, orders holding seats), as committed now."""
    await session.commit()
    taken = await session.scalar(text("SELECT taken FROM seats_pool WHERE id = 1"))
    holders = await session.scalar(text("SELECT COUNT(*) FROM seats_taken"))
    await session.commit()
    return int(taken or 0), int(holders or 0)


class SeatsPlugin:
    """One seat per unit ordered, while the pool lasts."""

    PLUGIN_INFO = PluginInfo(name="seats", version="1.0")

    def __init__(self) -> None:
        # A hook that fails after it has written: the order must still write nothing.
        self.fail_after_reserving = False
        self.placing: list[tuple[int, int]] = []

    @hookimpl
    async def order_placing(
        self, session: AsyncSession, order: Order, lines: Sequence[OrderLine], cart: Any
    ) -> list[CheckoutProblem] | None:
        assert order.id is not None and all(line.order_id == order.id for line in lines)
        seats = sum(line.quantity for line in lines)
        taken = await session.execute(
            text(
                "UPDATE seats_pool SET taken = taken + :n WHERE id = 1 AND taken + :n <= capacity"
            ),
            {"n": seats},
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return [CheckoutProblem("SOLD_OUT", "拼团名额已满 / no seats left", "lines")]
        await session.execute(
            text("INSERT INTO seats_taken (order_id, seats) VALUES (:o, :n)"),
            {"o": order.id, "n": seats},
        )
        self.placing.append((order.id, cart.cart_id))
        if self.fail_after_reserving:
            raise RuntimeError("seat service lost its connection")
        return None

    @hookimpl
    async def order_cancelling(self, session: AsyncSession, order: Order, reason: str) -> None:
        assert order.status.value == "CANCELLED" and reason
        held = await session.scalar(
            text("SELECT seats FROM seats_taken WHERE order_id = :o"), {"o": order.id}
        )
        if held is None:
            return
        await session.execute(
            text("UPDATE seats_pool SET taken = taken - :n WHERE id = 1"), {"n": held}
        )
        await session.execute(text("DELETE FROM seats_taken WHERE order_id = :o"), {"o": order.id})
