"""Warehouses and the administration of their stock levels.

Reservation (checkout) lives in ``server.services.inventory``. Here staff set and adjust
what is on hand. Every change is one conditional UPDATE, so concurrent adjustments and
reservations never overwrite one another, and on-hand never drops below what is reserved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import ProductVariant, StockLevel, Warehouse, WarehouseKind
from server.services import outbox, variant_refs
from server.services.errors import Conflict, NotFound, ValidationFailed
from server.services.variant_refs import VariantRef

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
MAX_REASON = 200


@dataclass(frozen=True)
class StockFilter:
    product_id: int | None = None
    variant_id: int | None = None
    warehouse_id: int | None = None
    below_safety_stock: bool | None = None


@dataclass(frozen=True)
class WarehouseFilter:
    kind: WarehouseKind | None = None
    region: str | None = None
    city: str | None = None
    include_inactive: bool = False


def available_expr() -> ColumnElement[int]:
    """What can still be sold, in SQL (``StockLevel.available`` of a row)."""
    return col(StockLevel.on_hand) - StockLevel.reserved


def stock_levels_query(flt: StockFilter) -> Select[StockLevel]:
    """The stock levels ``flt`` selects."""
    conditions: list[ColumnElement[bool]] = []
    if flt.product_id is not None:
        conditions.append(col(StockLevel.product_id) == flt.product_id)
    if flt.variant_id is not None:
        conditions.append(col(StockLevel.variant_id) == flt.variant_id)
    if flt.warehouse_id is not None:
        conditions.append(col(StockLevel.warehouse_id) == flt.warehouse_id)
    # "Below safety stock": what can still be sold is under the buffer the shop keeps.
    if flt.below_safety_stock is True:
        conditions.append(available_expr() < StockLevel.safety_stock)
    elif flt.below_safety_stock is False:
        conditions.append(available_expr() >= StockLevel.safety_stock)
    return select(StockLevel).where(*conditions)


def warehouses_query(flt: WarehouseFilter) -> Select[Warehouse]:
    """The warehouses ``flt`` selects (the active ones unless it includes inactive ones)."""
    conditions: list[SQLColumnExpression[bool]] = []
    if flt.kind is not None:
        conditions.append(col(Warehouse.kind) == flt.kind)
    if flt.region:
        conditions.append(col(Warehouse.region) == flt.region.strip())
    if flt.city:
        conditions.append(col(Warehouse.city) == flt.city.strip())
    if not flt.include_inactive:
        conditions.append(col(Warehouse.is_active))
    return select(Warehouse).where(*conditions)


async def create_warehouse(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    kind: WarehouseKind,
    region: str = "",
    province: str = "",
    city: str = "",
) -> Warehouse:
    normalized = code.strip().upper()
    if not _CODE.match(normalized):
        raise ValidationFailed(
            "code must be 2-32 letters, digits, '-' or '_' (e.g. SH-01)", field="code"
        )
    title = name.strip()
    if not title or len(title) > 100:
        raise ValidationFailed("name must have 1-100 characters", field="name")
    for field, value in (("region", region), ("province", province), ("city", city)):
        if len(value.strip()) > 64:
            raise ValidationFailed(f"{field} must have at most 64 characters", field=field)
    taken = await session.execute(
        select(col(Warehouse.id)).where(col(Warehouse.code) == normalized)
    )
    if taken.first() is not None:
        raise Conflict(f"warehouse code {normalized} is taken", field="code")
    warehouse = Warehouse(
        code=normalized,
        name=title,
        kind=kind,
        region=region.strip(),
        province=province.strip(),
        city=city.strip(),
    )
    session.add(warehouse)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"warehouse code {normalized} is taken", field="code") from exc
    return warehouse


async def _check_targets(
    session: AsyncSession, warehouse_id: int, target: VariantRef
) -> ProductVariant:
    """The variant whose stock changes: any variant (on sale or not) by its id, or a
    product's one variant on sale by the product's id."""
    if await session.get(Warehouse, warehouse_id) is None:
        raise NotFound("Warehouse", warehouse_id, field="warehouseId")
    [(variant, _)] = await variant_refs.resolve(session, [target], on_sale=False)
    return variant


async def _ensure_row(session: AsyncSession, warehouse_id: int, variant: ProductVariant) -> None:
    """Create the (warehouse, variant) stock row if there is none, racing safely: a
    concurrent creator wins and we simply use its row."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(StockLevel)
        .values(
            warehouse_id=warehouse_id,
            product_id=variant.product_id,
            variant_id=variant.id,
            on_hand=0,
            reserved=0,
        )
        .on_conflict_do_nothing(index_elements=["warehouse_id", "variant_id"])
    )
    await session.execute(stmt)


async def _load(session: AsyncSession, warehouse_id: int, variant_id: int) -> StockLevel:
    stmt = (
        select(StockLevel)
        .where(*_row(warehouse_id, variant_id))
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


def _row(warehouse_id: int, variant_id: int) -> list[ColumnElement[bool]]:
    return [col(StockLevel.warehouse_id) == warehouse_id, col(StockLevel.variant_id) == variant_id]


async def set_stock_level(
    session: AsyncSession,
    *,
    warehouse_id: int,
    target: VariantRef,
    on_hand: int,
    safety_stock: int | None = None,
    staff_id: int | None = None,
) -> StockLevel:
    """Set the counted on-hand quantity (a stock take). Fails, changing nothing, if that is
    less than what is reserved for orders already placed."""
    if on_hand < 0:
        raise ValidationFailed("onHand must not be negative", field="onHand")
    if safety_stock is not None and safety_stock < 0:
        raise ValidationFailed("safetyStock must not be negative", field="safetyStock")
    variant = await _check_targets(session, warehouse_id, target)
    variant_id = variant.id
    assert variant_id is not None  # a stored variant
    await _ensure_row(session, warehouse_id, variant)
    values: dict[str, int] = {"on_hand": on_hand}
    if safety_stock is not None:
        values["safety_stock"] = safety_stock
    # The reserved check is part of the UPDATE: a reservation landing concurrently either
    # happens before (and we see it) or after (and it sees our on_hand).
    result = await session.execute(
        update(StockLevel)
        .where(*_row(warehouse_id, variant_id), col(StockLevel.reserved) <= on_hand)
        .values(**values)
        .returning(col(StockLevel.id))
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:
        level = await _load(session, warehouse_id, variant_id)
        raise ValidationFailed(
            f"onHand {on_hand} is below the {level.reserved} units reserved", field="onHand"
        )
    level = await _load(session, warehouse_id, variant_id)
    await outbox.emit(
        session,
        "stock_level_set",
        {
            "warehouse_id": warehouse_id,
            "product_id": variant.product_id,
            "variant_id": variant_id,
            "on_hand": level.on_hand,
            "safety_stock": level.safety_stock,
            "staff_id": staff_id,
        },
    )
    return level


async def adjust_stock(
    session: AsyncSession,
    *,
    warehouse_id: int,
    target: VariantRef,
    delta: int,
    reason: str,
    staff_id: int | None = None,
) -> StockLevel:
    """Add ``delta`` (negative to remove) units on hand, atomically.

    ``on_hand = on_hand + delta`` is computed by the database under the row lock, so N
    concurrent adjustments add up exactly; the result may not fall below what is reserved.
    """
    if delta == 0:
        raise ValidationFailed("delta must not be zero", field="delta")
    why = reason.strip()
    if not why:
        raise ValidationFailed("give a reason for the adjustment", field="reason")
    if len(why) > MAX_REASON:
        raise ValidationFailed(f"reason must have at most {MAX_REASON} characters", field="reason")
    variant = await _check_targets(session, warehouse_id, target)
    variant_id = variant.id
    assert variant_id is not None  # a stored variant
    if delta > 0:
        await _ensure_row(session, warehouse_id, variant)
    result = await session.execute(
        update(StockLevel)
        .where(
            *_row(warehouse_id, variant_id), col(StockLevel.on_hand) + delta >= StockLevel.reserved
        )
        .values(on_hand=StockLevel.on_hand + delta)
        .returning(col(StockLevel.on_hand))
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    if row is None:
        current = (
            await session.execute(select(StockLevel).where(*_row(warehouse_id, variant_id)))
        ).scalar_one_or_none()
        on_hand = current.on_hand if current else 0
        reserved = current.reserved if current else 0
        raise ValidationFailed(
            f"removing {-delta} would leave {on_hand + delta} on hand, "
            f"below the {reserved} reserved",
            field="delta",
        )
    await outbox.emit(
        session,
        "stock_adjusted",
        {
            "warehouse_id": warehouse_id,
            "product_id": variant.product_id,
            "variant_id": variant_id,
            "delta": delta,
            "reason": why,
            "on_hand": row[0],
            "staff_id": staff_id,
        },
    )
    return await _load(session, warehouse_id, variant_id)
