"""Shipment planning: when an order is paid for, which warehouse ships which units, in how
many parcels.

The plan comes from the ``plan_shipments`` hook (firstresult). The core's own implementation,
registered like a plugin's and called last, ships one parcel per warehouse holding the order's
units. A plugin's plan (the nearest warehouse, a split by size) may move a line to another
warehouse: its reservation moves with it, by conditional UPDATEs in the payment's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.hooktypes import Parcel, ParcelLine, hookimpl
from server.models import Order, OrderLine
from server.plugins import PluginFailed, PluginRuntime
from server.services import answers, inventory
from server.services.errors import OutOfStock

HOOK = "plan_shipments"


@hookimpl(trylast=True)
def plan_shipments(lines: Sequence[OrderLine]) -> list[Parcel]:
    """The core's plan: one parcel per warehouse that holds units of the order."""
    by_warehouse: dict[int, list[ParcelLine]] = defaultdict(list)
    for line in lines:
        if line.warehouse_id is not None:
            by_warehouse[line.warehouse_id].append(
                ParcelLine(order_line_id=line.id, quantity=line.quantity)  # type: ignore[arg-type]  # a stored row has its id
            )
    return [
        Parcel(warehouse_id=warehouse_id, lines=tuple(parcel_lines))
        for warehouse_id, parcel_lines in sorted(by_warehouse.items())
    ]


def _warehouses(
    plugin: str, parcels: Sequence[Parcel], lines: Sequence[OrderLine]
) -> dict[int, int]:
    """The warehouse each planned line leaves from; PluginFailed unless the plan ships every
    reserved unit exactly once, each line from one warehouse."""

    def refuse(reason: str) -> PluginFailed:
        return PluginFailed(plugin, HOOK, ValueError(f"an impossible plan: {reason}"))

    by_id = {line.id: line for line in lines}
    planned: dict[int, int] = defaultdict(int)
    warehouse_of: dict[int, int] = {}
    for parcel in parcels:
        if not parcel.lines:
            raise refuse("a parcel with no lines")
        for parcel_line in parcel.lines:
            if not isinstance(parcel_line, ParcelLine):
                raise refuse(f"{parcel_line!r} is not a ParcelLine")
            line_id, quantity = parcel_line.order_line_id, parcel_line.quantity
            if line_id not in by_id:
                raise refuse(f"order line {line_id} is not a line of this order")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise refuse(f"order line {line_id}: {quantity!r} is not a number of units")
            if warehouse_of.setdefault(line_id, parcel.warehouse_id) != parcel.warehouse_id:
                raise refuse(f"order line {line_id} leaves from two warehouses")
            planned[line_id] += quantity
    for line in lines:
        wanted = line.quantity if line.warehouse_id is not None or line.id in planned else 0
        if planned.get(line.id, 0) != wanted:  # type: ignore[arg-type]  # a stored row has its id
            raise refuse(
                f"order line {line.id} has {line.quantity} units, {planned.get(line.id, 0)} planned"  # type: ignore[arg-type]  # a stored row has its id
            )
    return warehouse_of


async def plan_order(session: AsyncSession, plugins: PluginRuntime, order: Order) -> list[Parcel]:
    """Plan ``order``'s shipments (``plan_shipments``), move the reservations of lines planned
    from another warehouse, and keep the plan on the order. Raises PluginFailed, naming the
    planner, for a plan that cannot be carried out."""
    lines = list(
        await session.scalars(
            select(OrderLine).where(col(OrderLine.order_id) == order.id).order_by(col(OrderLine.id))
        )
    )
    [(plugin, answer)] = await plugins.call(HOOK, session=session, order=order, lines=lines)
    parcels = answers.stamped_all(plugin, HOOK, answer, Parcel)
    warehouse_of = _warehouses(plugin, parcels, lines)
    # In variant order, like checkout's reservations: concurrent moves cannot deadlock.
    for line in sorted(lines, key=lambda ln: (ln.variant_id, ln.id)):
        target = warehouse_of.get(line.id)  # type: ignore[arg-type]  # a stored row has its id
        if target is None or target == line.warehouse_id:
            continue
        try:
            await inventory.reserve_in(session, target, line.variant_id, line.quantity)
        except OutOfStock as exc:
            raise PluginFailed(
                plugin,
                HOOK,
                ValueError(f"warehouse {target} cannot ship order line {line.id}: {exc.message}"),
            ) from exc
        if line.warehouse_id is not None:
            await inventory.release(session, line.warehouse_id, line.variant_id, line.quantity)
        line.warehouse_id = target
        session.add(line)
    order.shipment_plan = [parcel.as_dict() for parcel in parcels]
    session.add(order)
    await session.flush()
    return parcels
