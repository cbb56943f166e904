"""Returns, exchanges and repairs (reverse logistics): request, decision, the way back,
inspection, and the refund (following the discount ledger when a plugin keeps one).

A request moves REQUESTED → APPROVED | REJECTED, APPROVED → IN_TRANSIT → RECEIVED →
COMPLETED (inspected); REQUESTED → CANCELLED by its customer. Every move is one conditional
UPDATE on the status it leaves, so of two concurrent moves one wins and the other is an
InvalidTransition. Units asked for are checked against what each order line has left (bought −
refunded − in other open requests) with the order lines locked in id order, inside the
request's transaction: two concurrent requests for a line's last unit cannot both pass.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    Carrier,
    ItemCondition,
    ReturnKind,
    ReturnLine,
    ReturnReason,
    ReturnRequest,
    ReturnStatus,
)
from plugins.logistics.service.settings import LogisticsSettings
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    ProductVariant,
    Shipment,
    Warehouse,
    utcnow,
)
from server.plugin import (
    Conflict,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    create_replacement_order,
    publish_live,
    refund_lines,
)
from server.services import warehouses
from server.services.variant_refs import VariantRef

S = ReturnStatus
# Requests that still hold their units: a line's units in them cannot be asked for again.
OPEN = (S.REQUESTED, S.APPROVED, S.IN_TRANSIT, S.RECEIVED)
MAX_LINES = 50
COMMENT_MAX = 1000
NOTE_MAX = 500
TRACKING_MAX = 64
DELIVERED = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)


class OutsideWindow(Conflict):
    """Asked too long after delivery: return_window_days (returns, exchanges) or
    repair_window_days (repairs) have passed."""

    code = "OUTSIDE_WINDOW"


class NotDelivered(Conflict):
    """The order has not been delivered yet: nothing to send back."""

    code = "NOT_DELIVERED"


class QuantityExceeded(ValidationFailed):
    """More units than the line has left to ask for (bought − refunded − in open requests)."""

    code = "QUANTITY_EXCEEDED"


class ExchangeVariantInvalid(ValidationFailed):
    """An exchange needs another active variant of the same product."""

    code = "EXCHANGE_VARIANT_INVALID"


class GiftLine(ValidationFailed):
    """A free gift is not returned or exchanged on its own (it goes back with a bought line)."""

    code = "GIFT_LINE"


class AlreadyRequested(Conflict):
    """An order line is in another open request already (one open request per line)."""

    code = "ALREADY_REQUESTED"


@dataclass(frozen=True)
class LineSpec:
    order_line_id: int
    quantity: int
    exchange_variant_id: int | None = None


@dataclass(frozen=True)
class ReturnSpec:
    order_id: int
    kind: ReturnKind
    reason: ReturnReason
    comment: str
    lines: Sequence[LineSpec]


@dataclass(frozen=True)
class ReturnFilter:
    status: ReturnStatus | None = None
    kind: ReturnKind | None = None
    order_id: int | None = None
    customer_id: int | None = None


# --- reads ---------------------------------------------------------------------------------


def returns_query(flt: ReturnFilter) -> Select[Any]:
    query = select(ReturnRequest)
    if flt.status is not None:
        query = query.where(col(ReturnRequest.status) == flt.status)
    if flt.kind is not None:
        query = query.where(col(ReturnRequest.kind) == flt.kind)
    if flt.order_id is not None:
        query = query.where(col(ReturnRequest.order_id) == flt.order_id)
    if flt.customer_id is not None:
        query = query.where(col(ReturnRequest.customer_id) == flt.customer_id)
    return query


async def lines_of(session: AsyncSession, return_ids: Sequence[int]) -> dict[int, list[ReturnLine]]:
    """Return id → its lines, in one statement."""
    found: dict[int, list[ReturnLine]] = {key: [] for key in return_ids}
    rows = await session.scalars(
        select(ReturnLine)
        .where(col(ReturnLine.return_id).in_(return_ids))
        .order_by(col(ReturnLine.id))
    )
    for row in rows:
        found[row.return_id].append(row)
    return found


async def returns_of_orders(
    session: AsyncSession, order_ids: Sequence[int]
) -> dict[int, list[ReturnRequest]]:
    """Order id → its requests, newest first, in one statement."""
    found: dict[int, list[ReturnRequest]] = {key: [] for key in order_ids}
    rows = await session.scalars(
        select(ReturnRequest)
        .where(col(ReturnRequest.order_id).in_(order_ids))
        .order_by(col(ReturnRequest.id).desc())
    )
    for row in rows:
        found[row.order_id].append(row)
    return found


async def carriers_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, Carrier]:
    rows = await session.scalars(select(Carrier).where(col(Carrier.id).in_(ids)))
    return {row.id: row for row in rows if row.id is not None}


# --- the request ---------------------------------------------------------------------------


def shop_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


async def delivered_at(session: AsyncSession, order: Order) -> datetime | None:
    """When the order was delivered: its latest move to DELIVERED, else (an order marked
    delivered without that history) its shipments' latest delivery."""
    if order.status not in DELIVERED:
        return None
    moved = await session.scalar(
        select(func.max(col(OrderStatusChange.at))).where(
            col(OrderStatusChange.order_id) == order.id,
            col(OrderStatusChange.to_status) == OrderStatus.DELIVERED,
        )
    )
    if moved is not None:
        return moved
    shipped = await session.scalar(
        select(func.max(col(Shipment.delivered_at))).where(col(Shipment.order_id) == order.id)
    )
    return shipped


def _window_days(config: LogisticsSettings, kind: ReturnKind) -> int:
    return config.repair_window_days if kind is ReturnKind.REPAIR else config.return_window_days


def return_number() -> str:
    # Date + 8 random hex digits, like order numbers: unique without a sequence.
    return f"RMA{utcnow():%Y%m%d}{secrets.token_hex(4).upper()}"


def _check_spec(spec: ReturnSpec) -> None:
    if len(spec.comment) > COMMENT_MAX:
        raise ValidationFailed(f"a comment of at most {COMMENT_MAX} characters", field="comment")
    if not spec.lines:
        raise ValidationFailed("a request needs at least one line", field="lines")
    if len(spec.lines) > MAX_LINES:
        raise ValidationFailed(f"a request has at most {MAX_LINES} lines", field="lines")
    seen: set[int] = set()
    for i, line in enumerate(spec.lines):
        if line.quantity < 1:
            raise ValidationFailed("quantity must be at least 1", field=f"lines.{i}.quantity")
        if line.order_line_id in seen:
            raise ValidationFailed("an order line once per request", field=f"lines.{i}")
        seen.add(line.order_line_id)
        if spec.kind is ReturnKind.EXCHANGE and line.exchange_variant_id is None:
            raise ExchangeVariantInvalid(
                "an exchange names the variant wanted", field=f"lines.{i}.exchangeVariantId"
            )
        if spec.kind is not ReturnKind.EXCHANGE and line.exchange_variant_id is not None:
            raise ExchangeVariantInvalid(
                "only an exchange names a variant", field=f"lines.{i}.exchangeVariantId"
            )


async def _check_exchanges(
    session: AsyncSession, spec: ReturnSpec, lines: Mapping[int, OrderLine]
) -> None:
    wanted = {ln.exchange_variant_id for ln in spec.lines if ln.exchange_variant_id is not None}
    if not wanted:
        return
    variants = {
        v.id: v
        for v in await session.scalars(
            select(ProductVariant).where(col(ProductVariant.id).in_(wanted))
        )
    }
    for i, ln in enumerate(spec.lines):
        if ln.exchange_variant_id is None:
            continue
        variant = variants.get(ln.exchange_variant_id)
        line = lines[ln.order_line_id]
        if (
            variant is None
            or not variant.is_active
            or variant.product_id != line.product_id
            or variant.id == line.variant_id
        ):
            raise ExchangeVariantInvalid(
                "an exchange is for another active variant of the same product",
                field=f"lines.{i}.exchangeVariantId",
            )


async def request_return(
    session: AsyncSession,
    config: LogisticsSettings,
    customer_id: int,
    spec: ReturnSpec,
    *,
    now: datetime | None = None,
) -> ReturnRequest:
    """A customer asks to send back units of their delivered order's lines."""
    _check_spec(spec)
    order = await session.get(Order, spec.order_id)
    # Someone else's order answers like a missing one.
    if order is None or order.customer_id != customer_id:
        raise NotFound("order", spec.order_id, field="orderId")
    delivered = await delivered_at(session, order)
    if delivered is None:
        raise NotDelivered("the order has not been delivered yet", field="orderId")
    days = _window_days(config, spec.kind)
    today = shop_day(now or utcnow(), config.timezone)
    last_day = shop_day(delivered, config.timezone) + timedelta(days=days)
    if today > last_day:
        raise OutsideWindow(
            f"{spec.kind.value.lower()}s are accepted until {last_day.isoformat()} "
            f"({days} days after delivery)",
            field="orderId",
        )
    ids = sorted(ln.order_line_id for ln in spec.lines)
    # Locked in id order: concurrent requests for the same lines queue here (PostgreSQL row
    # locks; SQLite runs one writer at a time), so each counts the other's committed units.
    lines = {
        line.id: line
        for line in await session.scalars(
            select(OrderLine)
            .where(col(OrderLine.id).in_(ids), col(OrderLine.order_id) == order.id)
            .order_by(col(OrderLine.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if line.id is not None
    }
    for i, ln in enumerate(spec.lines):
        if ln.order_line_id not in lines:
            raise NotFound("order line", ln.order_line_id, field=f"lines.{i}.orderLineId")
    if spec.kind is not ReturnKind.REPAIR and all(
        lines[ln.order_line_id].gift_rule is not None for ln in spec.lines
    ):
        raise GiftLine(
            "a free gift goes back together with a bought line of the order", field="lines"
        )
    if spec.kind is ReturnKind.EXCHANGE:
        for i, ln in enumerate(spec.lines):
            if lines[ln.order_line_id].gift_rule is not None:
                raise GiftLine("a free gift is not exchanged", field=f"lines.{i}.orderLineId")
    await _check_exchanges(session, spec, lines)
    is_open = col(ReturnRequest.status).in_(OPEN)
    # Units exchanged are gone for good too: the customer has their replacement.
    exchanged = (col(ReturnRequest.status) == S.COMPLETED) & (
        col(ReturnRequest.kind) == ReturnKind.EXCHANGE
    )
    held = {
        row[0]: (int(row[1] or 0), int(row[2] or 0))
        for row in await session.execute(
            select(
                col(ReturnLine.order_line_id),
                func.sum(case((is_open, col(ReturnLine.quantity)), else_=0)),
                func.sum(case((exchanged, col(ReturnLine.quantity)), else_=0)),
            )
            .join(ReturnRequest, col(ReturnRequest.id) == ReturnLine.return_id)
            .where(col(ReturnLine.order_line_id).in_(ids), is_open | exchanged)
            .group_by(col(ReturnLine.order_line_id))
        )
    }
    for i, ln in enumerate(spec.lines):
        line = lines[ln.order_line_id]
        in_open, gone = held.get(ln.order_line_id, (0, 0))
        left = line.quantity - line.returned_quantity - gone - in_open
        if in_open and left < ln.quantity:
            raise AlreadyRequested(
                "units of this line are in another open request", field=f"lines.{i}.orderLineId"
            )
        if ln.quantity > left:
            raise QuantityExceeded(
                f"{max(left, 0)} units of this line may be sent back", field=f"lines.{i}.quantity"
            )
    request = ReturnRequest(
        number=return_number(),
        order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
        customer_id=customer_id,
        kind=spec.kind,
        reason=spec.reason,
        comment=spec.comment.strip(),
        currency=order.currency,
    )
    session.add(request)
    await session.flush()
    session.add_all(
        [
            ReturnLine(
                return_id=request.id,  # type: ignore[arg-type]  # a stored row has its id
                order_line_id=ln.order_line_id,
                quantity=ln.quantity,
                exchange_variant_id=ln.exchange_variant_id,
            )
            for ln in spec.lines
        ]
    )
    await session.flush()
    await _published(session, request)
    return request


# --- moves ---------------------------------------------------------------------------------


async def _get(
    session: AsyncSession, return_id: int, customer_id: int | None = None
) -> ReturnRequest:
    request = await session.get(ReturnRequest, return_id, populate_existing=True)
    if request is None or (customer_id is not None and request.customer_id != customer_id):
        raise NotFound("return", return_id, field="id")
    return request


async def _move(
    session: AsyncSession,
    request: ReturnRequest,
    allowed: Sequence[ReturnStatus],
    target: ReturnStatus,
    **values: Any,
) -> ReturnRequest:
    """``request`` to ``target`` from one of ``allowed``, with one conditional UPDATE on the
    status it has: a concurrent move that got there first makes this one invalid."""
    current = request.status
    if current not in allowed:
        raise InvalidTransition("return", current.value, target.value)
    moved = await session.execute(
        update(ReturnRequest)
        .where(col(ReturnRequest.id) == request.id, col(ReturnRequest.status) == current)
        .values(status=target, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
        fresh = await _get(session, request.id)  # type: ignore[arg-type]  # a stored row has its id
        raise InvalidTransition("return", fresh.status.value, target.value)
    fresh = await _get(session, request.id)  # type: ignore[arg-type]  # as above
    await _published(session, fresh)
    return fresh


async def _published(session: AsyncSession, request: ReturnRequest) -> None:
    # Customers follow their order live: its returns are part of it.
    await publish_live(
        session,
        f"order:{request.order_id}",
        {"return_id": request.id, "return_status": request.status.value},
    )


def _tracking(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > TRACKING_MAX:
        raise ValidationFailed(
            f"a tracking number of 1 to {TRACKING_MAX} characters", field="trackingNumber"
        )
    return value


def _note(value: str, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed("give a note", field="note")
    if len(value) > NOTE_MAX:
        raise ValidationFailed(f"a note of at most {NOTE_MAX} characters", field="note")
    return value


async def _carrier(session: AsyncSession, code: str | None) -> Carrier | None:
    if code is None:
        return None
    carrier = await session.scalar(select(Carrier).where(col(Carrier.code) == code.strip()))
    if carrier is None or not carrier.is_active:
        raise NotFound("carrier", code, field="carrierCode")
    return carrier


async def cancel_return(session: AsyncSession, customer_id: int, return_id: int) -> ReturnRequest:
    """The customer withdraws a request not decided yet."""
    request = await _get(session, return_id, customer_id)
    return await _move(session, request, [S.REQUESTED], S.CANCELLED)


async def approve_return(
    session: AsyncSession,
    actor: str,
    return_id: int,
    *,
    warehouse_id: int | None = None,
    carrier_code: str | None = None,
    tracking_number: str | None = None,
    note: str = "",
) -> ReturnRequest:
    """Staff accept a request: the warehouse it comes back to (the first line's warehouse by
    default) and, with a carrier, a return tracking number (given, or the carrier's prefix and
    the request's number)."""
    request = await _get(session, return_id)
    if request.status is not S.REQUESTED:
        raise InvalidTransition("return", request.status.value, S.APPROVED.value)
    note = _note(note)
    tracking = _tracking(tracking_number)
    carrier = await _carrier(session, carrier_code)
    if warehouse_id is not None:
        warehouse = await session.get(Warehouse, warehouse_id)
        if warehouse is None or not warehouse.is_active:
            raise NotFound("warehouse", warehouse_id, field="warehouseId")
    else:
        warehouse_id = await session.scalar(
            select(col(OrderLine.warehouse_id))
            .join(ReturnLine, col(ReturnLine.order_line_id) == OrderLine.id)
            .where(
                col(ReturnLine.return_id) == request.id, col(OrderLine.warehouse_id).is_not(None)
            )
            .order_by(col(ReturnLine.id))
            .limit(1)
        )
        if warehouse_id is None:
            raise ValidationFailed("name the warehouse it comes back to", field="warehouseId")
    if carrier is not None and tracking is None:
        tracking = f"{carrier.tracking_prefix}{request.number}"[:TRACKING_MAX]
    return await _move(
        session,
        request,
        [S.REQUESTED],
        S.APPROVED,
        warehouse_id=warehouse_id,
        carrier_id=carrier.id if carrier is not None else None,
        tracking_number=tracking,
        decided_by=actor,
        decision_note=note,
    )


async def reject_return(
    session: AsyncSession, actor: str, return_id: int, note: str
) -> ReturnRequest:
    request = await _get(session, return_id)
    note = _note(note, required=True)
    return await _move(
        session, request, [S.REQUESTED], S.REJECTED, decided_by=actor, decision_note=note
    )


async def record_shipped(
    session: AsyncSession,
    return_id: int,
    *,
    customer_id: int | None = None,
    carrier_code: str | None = None,
    tracking_number: str | None = None,
) -> ReturnRequest:
    """The parcel is on its way back (staff, or the customer with the tracking number they
    shipped with): IN_TRANSIT. Without a tracking number, the approved one must exist."""
    request = await _get(session, return_id, customer_id)
    if request.status is not S.APPROVED:
        raise InvalidTransition("return", request.status.value, S.IN_TRANSIT.value)
    tracking = _tracking(tracking_number)
    carrier = await _carrier(session, carrier_code)
    values: dict[str, Any] = {}
    if tracking is not None:
        values["tracking_number"] = tracking
    elif request.tracking_number is None:
        raise ValidationFailed("give the tracking number", field="trackingNumber")
    if carrier is not None:
        values["carrier_id"] = carrier.id
    return await _move(session, request, [S.APPROVED], S.IN_TRANSIT, **values)


async def receive_return(session: AsyncSession, return_id: int) -> ReturnRequest:
    request = await _get(session, return_id)
    return await _move(session, request, [S.IN_TRANSIT], S.RECEIVED)


async def inspect_return(
    session: AsyncSession,
    plugins: Any,
    actor: str,
    return_id: int,
    conditions: Mapping[int, ItemCondition],
) -> ReturnRequest:
    """Staff inspect what came back, every line: RESELLABLE units go back on hand at the
    receiving warehouse, DEFECTIVE ones are written off (recorded, not restocked). Then a
    RETURN is refunded (``refund_lines``: what the plugins say the units are worth, e.g. the
    price less the line's share of the order's discounts), an EXCHANGE gets a replacement order
    of the variants wanted at no charge, a REPAIR one of the same variants. COMPLETED."""
    request = await _get(session, return_id)
    if request.status is not S.RECEIVED:
        raise InvalidTransition("return", request.status.value, S.COMPLETED.value)
    lines = (await lines_of(session, [return_id]))[return_id]
    by_id = {line.id: line for line in lines}
    for line_id in conditions:
        if line_id not in by_id:
            raise NotFound("return line", line_id, field="lines")
    missing = [line.id for line in lines if line.id not in conditions]
    if missing:
        raise ValidationFailed("inspect every line of the return", field="lines")
    order_lines = {
        ol.id: ol
        for ol in await session.scalars(
            select(OrderLine).where(col(OrderLine.id).in_([ln.order_line_id for ln in lines]))
        )
    }
    # Moved first: a concurrent inspection finds it COMPLETED and changes nothing.
    request = await _move(session, request, [S.RECEIVED], S.COMPLETED)
    now = utcnow()
    assert request.warehouse_id is not None  # set on approval
    for line in sorted(lines, key=lambda ln: order_lines[ln.order_line_id].variant_id):
        condition = conditions[line.id]  # type: ignore[index]  # a stored row has its id
        line.condition = condition
        line.inspected_at = now
        session.add(line)
        if condition is ItemCondition.RESELLABLE:
            await warehouses.adjust_stock(
                session,
                warehouse_id=request.warehouse_id,
                target=VariantRef(variant_id=order_lines[line.order_line_id].variant_id),
                delta=line.quantity,
                reason=f"returned resellable ({request.number})",
            )
    values: dict[str, Any] = {}
    if request.kind is ReturnKind.RETURN:
        order = await session.get(Order, request.order_id)
        assert order is not None
        refund = await refund_lines(
            session,
            plugins,
            order,
            {line.order_line_id: line.quantity for line in lines},
            reason=f"return {request.number}",
            actor=actor,
        )
        values["refund_amount"] = refund.amount
    else:
        wanted = [
            (
                line.exchange_variant_id
                if request.kind is ReturnKind.EXCHANGE and line.exchange_variant_id is not None
                else order_lines[line.order_line_id].variant_id,
                line.quantity,
            )
            for line in lines
        ]
        label = "exchange" if request.kind is ReturnKind.EXCHANGE else "repair"
        replacement = await create_replacement_order(
            session,
            plugins,
            request.order_id,
            wanted,
            reason=f"{label} {request.number}",
            actor=actor,
        )
        values["replacement_order_id"] = replacement.id
    await session.execute(
        update(ReturnRequest)
        .where(col(ReturnRequest.id) == request.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return await _get(session, return_id)
