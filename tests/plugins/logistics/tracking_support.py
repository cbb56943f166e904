"""A small carrier network and shipped orders for the tracking and delay tests: SF (a
third-party carrier) takes 1 to 3 working days from 浙江省 anywhere; an order of one line goes
to 上海市 with a frozen promise, and its shipment is created by the core."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import (
    Carrier,
    CarrierKind,
    CarrierService,
    Promise,
    ServiceLevel,
    TransitTime,
)
from plugins.logistics.service.tracking import ensure_tracked
from server.auth import Viewer, ViewerKind
from server.db import mark_write
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Product,
    ProductVariant,
    Shipment,
    TrackingEvent,
)
from server.plugins import PluginRuntime
from server.services import shipments
from tests.support.orders import make_product, make_warehouse

SECRET = "sf-webhook-secret"
SHIPPER = Viewer(kind=ViewerKind.STAFF, staff_id=1, permissions=frozenset({"shipments.manage"}))
_serial = itertools.count(1)


@dataclass(frozen=True)
class Network:
    carrier_id: int
    service_id: int
    warehouse_id: int
    product: Product


async def make_network(session: AsyncSession, *, code: str = "SF") -> Network:
    carrier = Carrier(
        code=code,
        name=f"{code} Express",
        kind=CarrierKind.THIRD_PARTY,
        webhook_secret=SECRET,
        works_weekends=False,
    )
    session.add(carrier)
    await session.flush()
    service = CarrierService(
        carrier_id=carrier.id or 0, code=f"{code}-STD", label="标快", level=ServiceLevel.STANDARD
    )
    session.add(service)
    await session.flush()
    session.add(
        TransitTime(
            service_id=service.id or 0, from_region="浙江省", to_region="*", min_days=1, max_days=3
        )
    )
    await session.commit()
    warehouse = await make_warehouse(session)
    product = await make_product(session, price=5000, stock=[(warehouse, 100)])
    return Network(carrier.id or 0, service.id or 0, warehouse.id or 0, product)


async def shipped_order(
    session: AsyncSession,
    plugins: PluginRuntime,
    net: Network,
    *,
    latest: date,
    customer_id: int | None = None,
    carrier: str = "SF",
    created: datetime | None = None,
) -> tuple[int, int, str]:
    """A paid order with a promise ending ``latest`` and its shipment (CREATED, tracked, made
    at ``created``: by default the start of the promise's earliest day, UTC); (order id,
    shipment id, tracking number)."""
    n = next(_serial)
    order = Order(
        number=f"SG-LT-{n}-{time.monotonic_ns()}",
        customer_id=customer_id,
        status=OrderStatus.PAID,
        subtotal_amount=5000,
        total_amount=5000,
        shipping_address={"province": "上海市", "city": "上海市"},
        promised_by=latest,
    )
    session.add(order)
    await session.flush()
    variant = await session.scalar(
        select(ProductVariant).where(col(ProductVariant.product_id) == net.product.id)
    )
    assert variant is not None
    session.add(
        OrderLine(
            order_id=order.id,
            product_id=net.product.id,
            variant_id=variant.id,
            sku=variant.sku,
            product_name=net.product.name,
            quantity=1,
            base_unit_price_amount=5000,
            unit_price_amount=5000,
            line_total_amount=5000,
        )
    )
    session.add(Payment(order_id=order.id, gateway="test", amount=5000, reference="pay"))
    session.add(
        Promise(
            order_id=order.id or 0,
            quote_code=f"{carrier}-STD",
            service_id=net.service_id,
            carrier_id=net.carrier_id,
            from_region="浙江省",
            to_region="上海市",
            earliest=latest - timedelta(days=2),
            latest=latest,
        )
    )
    await session.commit()
    number = f"{carrier}{n:08d}{time.monotonic_ns() % 1000}"
    await mark_write(session)
    shipment = await shipments.create_shipment(
        session,
        plugins,
        SHIPPER,
        shipments.CreateShipmentInput(
            order_id=order.id or 0,
            warehouse_id=net.warehouse_id,
            carrier=carrier,
            tracking_number=number,
        ),
    )
    # What the shipment_created event does once dispatched.
    await ensure_tracked(session, shipment.id or 0)
    # Made back then, so that the carrier's scans of the test's days come after it.
    made = created or datetime.combine(latest - timedelta(days=3), datetime.min.time(), UTC)
    await session.execute(
        update(Shipment).where(col(Shipment.id) == shipment.id).values(created_at=made)
    )
    await session.execute(
        update(TrackingEvent)
        .where(col(TrackingEvent.shipment_id) == shipment.id)
        .values(occurred_at=made)
    )
    await session.commit()
    return order.id or 0, shipment.id or 0, number


def event(event_id: str, number: str, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tracking_number": number,
        "status": status,
        "occurred_at": at.isoformat(),
        **extra,
    }


def signed(
    body: Any, *, secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time() if at is None else at))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return raw, {
        "Content-Type": "application/json",
        "X-Carrier-Timestamp": stamp,
        "X-Carrier-Signature": f"sha256={mac}",
    }
