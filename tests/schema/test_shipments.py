"""Shipments: creating them, the tracking state machine, and how they move the order."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import OutboxEvent, Shipment
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    CONFIRM_RECEIPT,
    count,
    gid,
    make_product,
    make_warehouse,
    only_plugins,
    pay,
    place_ok,
    stock_of,
)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


SHIPMENT_FIELDS = """
  id carrier trackingNumber status promisedAt shippedAt deliveredAt
  warehouse { code }
  lines { quantity orderLine { sku } }
  events { status description location occurredAt }
"""

CREATE = (
    """
mutation CreateShipment($input: CreateShipmentInput!) {
  createShipment(input: $input) {
    __typename
    ... on CreateShipmentSuccess { order { status } shipment { """
    + SHIPMENT_FIELDS
    + """ } }
    ... on InvalidTransition { current target }
    ... on Error { code message field }
  }
}"""
)

TRACK = (
    """
mutation RecordTrackingEvent($input: RecordTrackingEventInput!) {
  recordTrackingEvent(input: $input) {
    __typename
    ... on RecordTrackingEventSuccess { order { status } shipment { """
    + SHIPMENT_FIELDS
    + """ } }
    ... on InvalidTransition { current target }
    ... on Error { code message field }
  }
}"""
)


class Shop:
    """A paid order of two products (2 + 1 units), a staff client and the buyer's client."""

    def __init__(self, gql: GraphQLClient, session: AsyncSession, settings: Settings) -> None:
        self.gql, self.session, self.settings = gql, session, settings

    async def setup(self) -> Shop:
        self.buyer = self.gql.as_(token_for(self.settings, await make_customer(self.session)))
        self.staff = self.gql.as_(token_for(self.settings, await make_staff(self.session)))
        self.warehouse = await make_warehouse(self.session)
        self.a = await make_product(self.session, price=10000, stock=5)
        self.b = await make_product(self.session, price=5000, stock=5)
        self.order = await place_ok(self.buyer, [(self.a, 2), (self.b, 1)])
        self.lines = {line["sku"]: line["id"] for line in self.order["lines"]}
        return self

    async def create(self, client: GraphQLClient | None = None, **fields: Any) -> Any:
        payload = {
            "orderId": self.order["id"],
            "warehouseId": gid("Warehouse", self.warehouse.id),
            "carrier": "顺丰速运",
            "trackingNumber": "SF1234567890",
            **fields,
        }
        data = await (client or self.staff)(CREATE, {"input": payload})
        return data["createShipment"]

    async def track(self, shipment_id: str, status: str, **fields: Any) -> Any:
        payload = {"shipmentId": shipment_id, "status": status, "location": "杭州", **fields}
        data = await self.staff(TRACK, {"input": payload})
        return data["recordTrackingEvent"]


@pytest.fixture
async def shop(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> Shop:
    return await Shop(gql, session, settings).setup()


async def test_two_shipments_ship_and_deliver_the_order(shop: Shop) -> None:
    unpaid = await shop.create()
    assert unpaid["__typename"] == "InvalidTransition"
    assert (unpaid["current"], unpaid["target"]) == ("PENDING_PAYMENT", "FULFILLING")
    await pay(shop.buyer, shop.order)

    first = await shop.create(
        lines=[{"orderLineId": shop.lines[shop.a.sku], "quantity": 2}],
        promisedAt="2030-01-02T10:00:00Z",
    )
    assert first["__typename"] == "CreateShipmentSuccess", first
    assert first["order"]["status"] == "FULFILLING"
    s1 = first["shipment"]
    assert s1["status"] == "CREATED"
    assert s1["warehouse"]["code"] == shop.warehouse.code
    assert s1["lines"] == [{"quantity": 2, "orderLine": {"sku": shop.a.sku}}]
    assert s1["promisedAt"].startswith("2030-01-02T10:00:00")

    too_many = await shop.create(lines=[{"orderLineId": shop.lines[shop.a.sku], "quantity": 1}])
    assert too_many["__typename"] == "ValidationError"
    rest = await shop.create(trackingNumber="SF0000000002")
    assert rest["shipment"]["lines"] == [{"quantity": 1, "orderLine": {"sku": shop.b.sku}}]
    s2 = rest["shipment"]
    nothing_left = await shop.create()
    assert nothing_left["__typename"] == "ValidationError"
    assert await stock_of(shop.session, shop.a) == [(5, 2)]

    moving = await shop.track(s1["id"], "IN_TRANSIT", description="已揽收")
    assert moving["shipment"]["status"] == "IN_TRANSIT"
    assert moving["shipment"]["shippedAt"] is not None
    assert moving["order"]["status"] == "SHIPPED"
    # Shipping consumed the reserved units of the whole order.
    assert await stock_of(shop.session, shop.a) == [(3, 0)]
    assert await stock_of(shop.session, shop.b) == [(4, 0)]

    scan = await shop.track(s1["id"], "IN_TRANSIT", location="上海转运中心")
    assert scan["__typename"] == "RecordTrackingEventSuccess"
    await shop.track(s1["id"], "OUT_FOR_DELIVERY")
    done1 = await shop.track(s1["id"], "DELIVERED", occurredAt="2030-01-01T12:00:00Z")
    assert done1["__typename"] == "ValidationError"  # in the future
    done1 = await shop.track(s1["id"], "DELIVERED")
    assert done1["shipment"]["deliveredAt"] is not None
    assert done1["order"]["status"] == "SHIPPED"  # the second parcel is still out

    await shop.track(s2["id"], "IN_TRANSIT")
    await shop.track(s2["id"], "OUT_FOR_DELIVERY")
    done2 = await shop.track(s2["id"], "DELIVERED")
    assert done2["order"]["status"] == "DELIVERED"
    assert await stock_of(shop.session, shop.a) == [(3, 0)]

    timeline = done1["shipment"]["events"]
    assert [e["status"] for e in timeline] == [
        "CREATED",
        "IN_TRANSIT",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]
    assert timeline[2]["location"] == "上海转运中心"
    assert [e["occurredAt"] for e in timeline] == sorted(e["occurredAt"] for e in timeline)

    received = await shop.buyer(CONFIRM_RECEIPT, {"input": {"orderId": shop.order["id"]}})
    assert received["confirmReceipt"]["order"]["status"] == "COMPLETED"
    await shop.session.commit()
    changes = list(
        await shop.session.scalars(
            select(OutboxEvent.payload)
            .where(OutboxEvent.name == "shipment_status_changed")
            .order_by(OutboxEvent.id)
        )
    )
    assert [
        (c["from_status"], c["to_status"])
        for c in changes
        if c["tracking_number"] == "SF0000000002"
    ] == [
        (None, "CREATED"),
        ("CREATED", "IN_TRANSIT"),
        ("IN_TRANSIT", "OUT_FOR_DELIVERY"),
        ("OUT_FOR_DELIVERY", "DELIVERED"),
    ]


async def test_shipment_state_machine(shop: Shop) -> None:
    await pay(shop.buyer, shop.order)
    s = (await shop.create())["shipment"]["id"]

    jump = await shop.track(s, "DELIVERED")
    assert jump["__typename"] == "InvalidTransition"
    assert (jump["current"], jump["target"]) == ("CREATED", "DELIVERED")
    assert (await shop.track(s, "RETURNED"))["__typename"] == "InvalidTransition"
    assert (await shop.track(s, "EXCEPTION"))["shipment"]["status"] == "EXCEPTION"
    assert (await shop.track(s, "OUT_FOR_DELIVERY"))["__typename"] == "InvalidTransition"
    back = await shop.track(s, "IN_TRANSIT")
    assert back["shipment"]["status"] == "IN_TRANSIT"
    assert back["order"]["status"] == "SHIPPED"
    assert (await shop.track(s, "CREATED"))["__typename"] == "InvalidTransition"
    assert (await shop.track(s, "EXCEPTION"))["shipment"]["status"] == "EXCEPTION"
    returned = await shop.track(s, "RETURNED")
    assert returned["shipment"]["status"] == "RETURNED"
    # RETURNED is final, also for a scan with the same status.
    for status in ("IN_TRANSIT", "RETURNED", "EXCEPTION"):
        assert (await shop.track(s, status))["__typename"] == "InvalidTransition"
    events = returned["shipment"]["events"]
    assert [e["status"] for e in events] == [
        "CREATED",
        "EXCEPTION",
        "IN_TRANSIT",
        "EXCEPTION",
        "RETURNED",
    ]


async def test_a_cancelled_order_cannot_ship(shop: Shop) -> None:
    await pay(shop.buyer, shop.order)
    s = (await shop.create())["shipment"]["id"]
    cancelled = await shop.staff(CANCEL_ORDER, {"input": {"orderId": shop.order["id"]}})
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert await stock_of(shop.session, shop.a) == [(5, 0)]

    moving = await shop.track(s, "IN_TRANSIT")

    assert moving["__typename"] == "InvalidTransition"
    assert (moving["current"], moving["target"]) == ("CANCELLED", "SHIPPED")
    assert await stock_of(shop.session, shop.a) == [(5, 0)]
    await shop.session.commit()
    status = await shop.session.scalar(select(Shipment.status))
    assert status == "CREATED"


async def test_shipments_are_staff_work_and_private_to_the_buyer(
    shop: Shop, gql: GraphQLClient
) -> None:
    await pay(shop.buyer, shop.order)
    by_buyer = await shop.create(client=shop.buyer)
    assert by_buyer["__typename"] == "NotFoundError"
    assert await count(shop.session, Shipment) == 0
    shipment_id = (await shop.create())["shipment"]["id"]
    by_buyer_track = await shop.buyer(
        TRACK, {"input": {"shipmentId": shipment_id, "status": "IN_TRANSIT"}}
    )
    assert by_buyer_track["recordTrackingEvent"]["__typename"] == "NotFoundError"

    stranger = gql.as_(token_for(shop.settings, await make_customer(shop.session)))
    query = """query($id: ID!) {
      shipment(id: $id) { trackingNumber order { number } }
      node(id: $id) { id }
    }"""
    mine = await shop.buyer(query, {"id": shipment_id})
    assert mine["shipment"]["order"]["number"] == shop.order["number"]
    assert mine["node"] == {"id": shipment_id}
    assert await stranger(query, {"id": shipment_id}) == {"shipment": None, "node": None}
    assert await gql(query, {"id": shipment_id}) == {"shipment": None, "node": None}
    orders = await shop.buyer(
        "query($id: ID!) { order(id: $id) { shipments { trackingNumber status } } }",
        {"id": shop.order["id"]},
    )
    assert orders["order"]["shipments"] == [{"trackingNumber": "SF1234567890", "status": "CREATED"}]


async def test_bad_shipment_input_is_typed(shop: Shop) -> None:
    await pay(shop.buyer, shop.order)
    assert (await shop.create(carrier="  "))["field"] == "carrier"
    assert (await shop.create(warehouseId=gid("Warehouse", 99999)))["field"] == "warehouseId"
    assert (await shop.create(orderId="garbage"))["__typename"] == "NotFoundError"
    wrong_line = await shop.create(lines=[{"orderLineId": gid("OrderLine", 99999), "quantity": 1}])
    assert wrong_line["__typename"] == "NotFoundError"
    zero = await shop.create(lines=[{"orderLineId": shop.lines[shop.a.sku], "quantity": 0}])
    assert zero["__typename"] == "ValidationError"
    assert await count(shop.session, Shipment) == 0
    # Nothing moved the order either.
    data = await shop.staff(
        "query($id: ID!) { order(id: $id) { status } }", {"id": shop.order["id"]}
    )
    assert data["order"]["status"] == "PAID"
