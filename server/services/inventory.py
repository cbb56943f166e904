"""Stock reservation: conditional UPDATEs, so concurrent buyers never oversell.

Stock is kept per variant (SKU) and warehouse. A reservation moves units from "available"
(on_hand - reserved) to "reserved"; shipping consumes them (on_hand and reserved both drop);
cancelling releases them. Every change is one UPDATE whose
WHERE clause re-checks the condition on the row as it is when the UPDATE runs: PostgreSQL
re-evaluates it after waiting for a concurrent writer's row lock, SQLite runs writers one at a
time. So no read-then-write race can take a unit twice, on one server process or several.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import ProductVariant, StockLevel, Warehouse
from server.services.errors import OutOfStock


async def available_by_warehouse(
    session: AsyncSession, variant_id: int
) -> list[tuple[int, int, int]]:
    """[(stock level id, warehouse id, available)] of active warehouses, most available first."""
    available = (col(StockLevel.on_hand) - StockLevel.reserved).label("available")
    rows = await session.execute(
        select(col(StockLevel.id), col(StockLevel.warehouse_id), available)
        .join(Warehouse, col(Warehouse.id) == StockLevel.warehouse_id)
        .where(col(StockLevel.variant_id) == variant_id, col(Warehouse.is_active))
        .order_by(available.desc(), col(StockLevel.id))
    )
    return [(row.id, row.warehouse_id, row.available) for row in rows]


async def reserve(session: AsyncSession, variant_id: int, quantity: int) -> int:
    """Reserve ``quantity`` units of ``variant_id`` in one warehouse; return that warehouse's id.

    Warehouses are tried in order of availability. Raises OutOfStock (with the most one warehouse
    can supply right now) when none can take the whole quantity.
    """
    for level_id, warehouse_id, available in await available_by_warehouse(session, variant_id):
        if available < quantity:
            # Sorted by availability: no later warehouse has enough either.
            break
        result = await session.execute(
            update(StockLevel)
            .where(
                col(StockLevel.id) == level_id,
                col(StockLevel.on_hand) - StockLevel.reserved >= quantity,
            )
            .values(reserved=StockLevel.reserved + quantity)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
            return warehouse_id
    # Read again: a concurrent buyer may have changed the picture since the first read.
    best = await session.scalar(
        select(func.max(col(StockLevel.on_hand) - StockLevel.reserved))
        .join(Warehouse, col(Warehouse.id) == StockLevel.warehouse_id)
        .where(col(StockLevel.variant_id) == variant_id, col(Warehouse.is_active))
    )
    raise await _out_of_stock(session, variant_id, quantity, best)


async def reserve_in(
    session: AsyncSession, warehouse_id: int, variant_id: int, quantity: int
) -> None:
    """Reserve ``quantity`` units of ``variant_id`` in that warehouse (an active one), or raise
    OutOfStock with what it has available right now."""
    result = await session.execute(
        update(StockLevel)
        .where(
            col(StockLevel.warehouse_id) == warehouse_id,
            col(StockLevel.variant_id) == variant_id,
            col(StockLevel.on_hand) - StockLevel.reserved >= quantity,
            col(StockLevel.warehouse_id).in_(
                select(col(Warehouse.id)).where(col(Warehouse.is_active))
            ),
        )
        .values(reserved=StockLevel.reserved + quantity)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
        return
    available = await session.scalar(
        select(col(StockLevel.on_hand) - StockLevel.reserved).where(
            col(StockLevel.warehouse_id) == warehouse_id, col(StockLevel.variant_id) == variant_id
        )
    )
    raise await _out_of_stock(session, variant_id, quantity, available)


async def _out_of_stock(
    session: AsyncSession, variant_id: int, quantity: int, available: int | None
) -> OutOfStock:
    row = (
        await session.execute(
            select(col(ProductVariant.product_id), col(ProductVariant.sku)).where(
                col(ProductVariant.id) == variant_id
            )
        )
    ).first()
    product_id, sku = (row.product_id, row.sku) if row is not None else (0, "")
    return OutOfStock(product_id, variant_id, quantity, max(0, int(available or 0)), sku)


async def release(session: AsyncSession, warehouse_id: int, variant_id: int, quantity: int) -> None:
    """Give reserved units back to the available pool (an order was cancelled)."""
    await _change(session, warehouse_id, variant_id, quantity, consume=False)


async def consume(session: AsyncSession, warehouse_id: int, variant_id: int, quantity: int) -> None:
    """Take reserved units out of stock for good (an order shipped)."""
    await _change(session, warehouse_id, variant_id, quantity, consume=True)


async def _change(
    session: AsyncSession, warehouse_id: int, variant_id: int, quantity: int, *, consume: bool
) -> None:
    values: dict[str, object] = {"reserved": StockLevel.reserved - quantity}
    if consume:
        values["on_hand"] = StockLevel.on_hand - quantity
    result = await session.execute(
        update(StockLevel)
        .where(
            col(StockLevel.warehouse_id) == warehouse_id,
            col(StockLevel.variant_id) == variant_id,
            col(StockLevel.reserved) >= quantity,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        # A reservation this order holds has gone missing: stock bookkeeping is broken, and
        # carrying on would hide it. Fail the whole transaction instead.
        raise RuntimeError(
            f"stock level of variant {variant_id} in warehouse {warehouse_id} "
            f"holds fewer than {quantity} reserved units"
        )
