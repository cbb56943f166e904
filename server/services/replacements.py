"""Replacement orders: goods the shop sends a customer at no charge in place of others (an
exchange's other size, a repaired or replaced item, a parcel lost on the way).

:func:`create_replacement_order` writes an order for the original order's customer and
address at a zero total, reserves its stock like checkout does (conditional UPDATEs, in variant
order), plans its shipments (``plan_shipments``) and moves it to PAID, all in the caller's
transaction: it then ships like any paid order. No payment is taken and no ``order_placed``
event is emitted (nothing was bought); its history says what it replaces and why.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
    ProductVariant,
)
from server.plugins import PluginRuntime
from server.services import checkout, fulfilment, inventory, orders
from server.services.errors import NotFound, ValidationFailed

MAX_LINES = 100
REASON_MAX = 400


def _checked(lines: Sequence[tuple[int, int]]) -> dict[int, int]:
    if not lines:
        raise ValidationFailed("a replacement needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"a replacement has at most {MAX_LINES} lines", field="lines")
    wanted: dict[int, int] = {}
    for i, (variant_id, quantity) in enumerate(lines):
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValidationFailed("quantity must be at least 1", field=f"lines.{i}.quantity")
        wanted[variant_id] = wanted.get(variant_id, 0) + quantity
    return wanted


async def create_replacement_order(
    session: AsyncSession,
    plugins: PluginRuntime,
    order_id: int,
    lines: Sequence[tuple[int, int]],
    *,
    reason: str,
    actor: str = "system",
) -> Order:
    """A PAID order at zero price of ``lines`` ([(variant id, units)]) for ``order_id``'s
    customer, shipped to its address, in the session's transaction.

    Refused, with nothing written: an unknown order or variant (NotFound), an empty reason or
    a quantity below 1 (ValidationFailed), units no active warehouse has (OutOfStock)."""
    why = (reason or "").strip()
    if not why or len(why) > REASON_MAX:
        raise ValidationFailed(f"a reason of 1 to {REASON_MAX} characters", field="reason")
    original = await orders.load(session, order_id)
    if original is None:
        raise NotFound("order", order_id, field="orderId")
    wanted = _checked(lines)
    found = {
        variant.id: (variant, product)
        for variant, product in (
            await session.execute(
                select(ProductVariant, Product)
                .join(Product, col(Product.id) == ProductVariant.product_id)
                .where(col(ProductVariant.id).in_(wanted))
            )
        ).all()
    }
    for i, variant_id in enumerate(wanted):
        if variant_id not in found:
            raise NotFound("variant", variant_id, field=f"lines.{i}.variantId")
    # In variant order, like checkout's reservations: concurrent orders cannot deadlock.
    warehouses = {
        variant_id: await inventory.reserve(session, variant_id, wanted[variant_id])
        for variant_id in sorted(wanted)
    }
    order = Order(
        number=checkout.order_number(),
        customer_id=original.customer_id,
        email=original.email,
        status=OrderStatus.PENDING_PAYMENT,
        currency=original.currency,
        shipping_address=dict(original.shipping_address),
    )
    session.add(order)
    await session.flush()
    assert order.id is not None
    session.add_all(
        [
            OrderLine(
                order_id=order.id,
                product_id=product.id,  # type: ignore[arg-type]  # a stored row has its id
                variant_id=variant_id,
                warehouse_id=warehouses[variant_id],
                sku=variant.sku,
                product_name=product.name,
                options=dict(variant.options),
                quantity=units,
                base_unit_price_amount=0,
                unit_price_amount=0,
                line_total_amount=0,
            )
            for variant_id, units in wanted.items()
            for variant, product in [found[variant_id]]
        ]
    )
    session.add(
        OrderStatusChange(
            order_id=order.id,
            from_status=None,
            to_status=OrderStatus.PENDING_PAYMENT,
            actor=actor,
            note=f"replacement for order {original.number}: {why}"[:500],
        )
    )
    await session.flush()
    await fulfilment.plan_order(session, plugins, order)
    return await orders.transition_order(
        session,
        plugins,
        order.id,
        OrderStatus.PAID,
        note=f"replacement at no charge for order {original.number}",
        actor=actor,
    )
