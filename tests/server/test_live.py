"""Live updates over graphql-transport-ws, against a real server: a subscriber of an order or a
shipment hears of every committed change (on PostgreSQL through NOTIFY, on SQLite in the
process), only its own (or staff's) objects, with its credential checked at connection_init.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.models import Customer, Order, OrderStatus, Shipment, StaffRole, StaffUser, Warehouse
from server.permissions import ORDERS_READ
from server.services.apikeys import create_api_key_in
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.server import serve_process
from tests.support.waiting import eventually

PROTOCOL = "graphql-transport-ws"
WAIT = 30  # seconds: a generous bound for a busy machine, never a timing assertion

ORDER_UPDATED = """
subscription ($id: ID!) { orderUpdated(id: $id) { id status paidAt shipments { status } } }
"""
SHIPMENT_UPDATED = """
subscription ($id: ID!) { shipmentUpdated(id: $id) { id status trackingNumber } }
"""
UPDATE_STATUS = """
mutation ($input: UpdateOrderStatusInput!) {
  updateOrderStatus(input: $input) {
    __typename ... on UpdateOrderStatusSuccess { order { status } }
  }
}
"""
TRACK = """
mutation ($input: RecordTrackingEventInput!) {
  recordTrackingEvent(input: $input) { __typename }
}
"""


async def _order(session: AsyncSession, customer: Customer, n: int, status: OrderStatus) -> Order:
    order = Order(
        number=f"SG-LIVE-{n}",
        customer_id=customer.id,
        status=status,
        currency="CNY",
        subtotal_amount=1000,
        total_amount=1000,
    )
    session.add(order)
    await session.flush()
    return order


async def _seed(session: AsyncSession) -> dict[str, Any]:
    owner = await make_customer(session)
    stranger = await make_customer(session)
    admin = await make_staff(session, role=StaffRole.ADMIN)
    warehouse = Warehouse(code="LIVE-SH", name="上海仓")
    session.add(warehouse)
    orders = {
        name: await _order(session, owner, n, status)
        for n, (name, status) in enumerate(
            [
                ("moves", OrderStatus.PENDING_PAYMENT),
                ("hidden", OrderStatus.PENDING_PAYMENT),
                ("shipping", OrderStatus.FULFILLING),
                ("across", OrderStatus.PENDING_PAYMENT),
            ]
        )
    }
    shipment = Shipment(
        order_id=orders["shipping"].id,  # type: ignore[arg-type]  # flushed
        warehouse_id=warehouse.id,  # type: ignore[arg-type]  # flushed by the order's flush
        carrier="顺丰速运",
        tracking_number="SF1000000001",
    )
    session.add(shipment)
    await session.commit()
    return {
        "owner": owner,
        "stranger": stranger,
        "admin": admin,
        "orders": {name: o.id for name, o in orders.items()},
        "shipment": shipment.id,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


def _token(shop: ModuleShop, who: Customer | StaffUser) -> str:
    return token_for(shop.app.state.shopgraph.settings, who)


class Socket:
    """A graphql-transport-ws client: connection_init, subscribe, and the messages back."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def receive(self) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return dict(message)

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        message = {
            "id": op_id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
        await self.ws.send(json.dumps(message))

    async def next(self, op_id: str) -> dict[str, Any]:
        message = await self.receive()
        assert message["id"] == op_id, message
        assert message["type"] == "next", message
        return dict(message["payload"])


@asynccontextmanager
async def socket(
    url: str, params: dict[str, Any] | None, **handshake: Any
) -> AsyncIterator[Socket]:
    ws_url = url.replace("http://", "ws://") + "/graphql"
    async with connect(ws_url, subprotocols=[PROTOCOL], open_timeout=WAIT, **handshake) as ws:  # type: ignore[list-item]  # websockets types subprotocols as its Subprotocol NewType of str
        client = Socket(ws)
        init: dict[str, Any] = {"type": "connection_init"}
        if params is not None:
            init["payload"] = params
        await ws.send(json.dumps(init))
        yield client


async def _unsubscribed(shop: ModuleShop) -> None:
    # A closed socket's operations are cancelled after the close: wait for that to be done.
    await eventually(lambda: shop.app.state.shopgraph.live.subscriber_count() == 0, WAIT)


async def _acked(client: Socket) -> None:
    assert (await client.receive())["type"] == "connection_ack"


async def _mutate(shop: ModuleShop, token: str, query: str, variables: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=shop.url, timeout=WAIT) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_the_customer_follows_their_order_as_staff_move_it(shop: ModuleShop) -> None:
    seeded = shop.seeded
    order_id = gid("Order", seeded["orders"]["moves"])
    auth = {"Authorization": f"Bearer {_token(shop, seeded['owner'])}"}
    async with socket(shop.url, auth) as client:
        await _acked(client)
        await client.subscribe("1", ORDER_UPDATED, {"id": order_id})
        first = await client.next("1")
        # At once: the order as it is (so the subscriber knows it is listening).
        assert first["data"]["orderUpdated"]["status"] == "PENDING_PAYMENT"
        admin = _token(shop, seeded["admin"])
        data = await _mutate(
            shop, admin, UPDATE_STATUS, {"input": {"orderId": order_id, "status": "PAID"}}
        )
        assert data["updateOrderStatus"]["order"]["status"] == "PAID"
        update = (await client.next("1"))["data"]["orderUpdated"]
        assert update["id"] == order_id
        assert update["status"] == "PAID"
        assert update["paidAt"] is not None
        # A second change: one more update, with the new status.
        await _mutate(
            shop, admin, UPDATE_STATUS, {"input": {"orderId": order_id, "status": "CANCELLED"}}
        )
        assert (await client.next("1"))["data"]["orderUpdated"]["status"] == "CANCELLED"
        # The client stops: the server completes nothing more and the socket stays usable.
        await client.ws.send(json.dumps({"id": "1", "type": "complete"}))
        await client.ws.send(json.dumps({"type": "ping"}))
        assert (await client.receive())["type"] == "pong"
    await _unsubscribed(shop)


async def test_a_shipment_and_its_order_follow_a_tracking_event(shop: ModuleShop) -> None:
    seeded = shop.seeded
    shipment_id = gid("Shipment", seeded["shipment"])
    order_id = gid("Order", seeded["orders"]["shipping"])
    auth = {"Authorization": f"Bearer {_token(shop, seeded['owner'])}"}
    async with socket(shop.url, auth) as client:
        await _acked(client)
        await client.subscribe("s", SHIPMENT_UPDATED, {"id": shipment_id})
        assert (await client.next("s"))["data"]["shipmentUpdated"]["status"] == "CREATED"
        await client.subscribe("o", ORDER_UPDATED, {"id": order_id})
        first = (await client.next("o"))["data"]["orderUpdated"]
        assert (first["status"], first["shipments"]) == ("FULFILLING", [{"status": "CREATED"}])
        await _mutate(
            shop,
            _token(shop, seeded["admin"]),
            TRACK,
            {"input": {"shipmentId": shipment_id, "status": "IN_TRANSIT", "location": "上海"}},
        )
        # One commit moved the shipment and shipped the order: one update each.
        got = {}
        for _ in range(2):
            message = await client.receive()
            assert message["type"] == "next", message
            got[message["id"]] = message["payload"]["data"]
        assert got["s"]["shipmentUpdated"]["status"] == "IN_TRANSIT"
        assert got["o"]["orderUpdated"]["status"] == "SHIPPED"
        assert got["o"]["orderUpdated"]["shipments"] == [{"status": "IN_TRANSIT"}]


@pytest.mark.parametrize("who", ["stranger", "anonymous", "malformed", "other type"])
async def test_someone_elses_order_answers_like_a_missing_one(shop: ModuleShop, who: str) -> None:
    seeded = shop.seeded
    order_id = gid("Order", seeded["orders"]["hidden"])
    params: dict[str, Any] = {}
    if who == "stranger":
        params = {"Authorization": f"Bearer {_token(shop, seeded['stranger'])}"}
    elif who == "malformed":
        order_id = "not-an-id"
    elif who == "other type":
        order_id = gid("Shipment", seeded["orders"]["hidden"])
    async with socket(shop.url, params) as client:
        await _acked(client)
        await client.subscribe("x", ORDER_UPDATED, {"id": order_id})
        answer = await client.next("x")
        assert answer["data"] is None
        [error] = answer["errors"]
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["message"] == "No Order with that id."
        assert await client.receive() == {"id": "x", "type": "complete"}
    await _unsubscribed(shop)


async def test_an_app_key_or_the_handshakes_header_signs_the_socket_in(shop: ModuleShop) -> None:
    seeded = shop.seeded
    order_id = gid("Order", seeded["orders"]["hidden"])
    key = await create_api_key_in(
        shop.database_url,
        shop.app.state.shopgraph.roles,
        name="order tracker",
        scopes=[ORDERS_READ],
        created_by="test",
    )
    async with socket(shop.url, {"X-Api-Key": key.secret}) as client:
        await _acked(client)
        await client.subscribe("k", ORDER_UPDATED, {"id": order_id})
        assert (await client.next("k"))["data"]["orderUpdated"]["id"] == order_id
    # A browser's page on another origin (the shop's web app) may connect: nothing is ambient.
    owner = {"Authorization": f"Bearer {_token(shop, seeded['owner'])}"}
    async with socket(
        shop.url, None, additional_headers=owner, origin="https://shop.example"
    ) as client:
        await _acked(client)
        await client.subscribe("h", ORDER_UPDATED, {"id": order_id})
        assert (await client.next("h"))["data"]["orderUpdated"]["id"] == order_id


@pytest.mark.parametrize(
    "params",
    [
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-Api-Key": "sg_nosuchkey0000000000000000000000"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Authorization": 42},
    ],
)
async def test_a_bad_credential_closes_the_socket(shop: ModuleShop, params: dict[str, Any]) -> None:
    async with socket(shop.url, params) as client:
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_subscription_before_connection_init_is_refused(shop: ModuleShop) -> None:
    ws_url = shop.url.replace("http://", "ws://") + "/graphql"
    async with connect(ws_url, subprotocols=[PROTOCOL], open_timeout=WAIT) as ws:  # type: ignore[list-item]  # see socket()
        client = Socket(ws)
        await client.subscribe("1", ORDER_UPDATED, {"id": "x"})
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_only_subscriptions_within_the_limits_are_served(shop: ModuleShop) -> None:
    seeded = shop.seeded
    auth = {"Authorization": f"Bearer {_token(shop, seeded['admin'])}"}
    async with socket(shop.url, auth) as client:
        await _acked(client)
        # Queries and mutations belong to HTTP (audited, charged, one transaction each).
        await client.subscribe("q", "{ orders(first: 1) { edges { node { id } } } }", {})
        refused = await client.receive()
        assert refused["type"] == "error"
        assert "over HTTP" in refused["payload"][0]["message"]
        # The depth limit holds for subscription documents too.
        deep = (
            "subscription ($id: ID!) { orderUpdated(id: $id) { "
            + "customer { orders(first: 1) { edges { node { " * 4
            + "id"
            + " } } } }" * 4
            + " } }"
        )
        await client.subscribe("d", deep, {"id": gid("Order", seeded["orders"]["moves"])})
        answer = await client.receive()
        assert answer["type"] == "error", answer
        assert "depth" in answer["payload"][0]["message"]
        # So do the bounds of its arguments.
        await client.subscribe("b", ORDER_UPDATED, {"id": "长" * 5000})
        answer = await client.receive()
        assert answer["type"] == "next", answer
        [error] = answer["payload"]["errors"]
        assert error["extensions"]["code"] == "STRING_TOO_LONG"


async def test_a_subscription_over_http_is_refused(shop: ModuleShop) -> None:
    order_id = gid("Order", shop.seeded["orders"]["moves"])
    async with httpx.AsyncClient(base_url=shop.url, timeout=WAIT) as http:
        response = await http.post(
            "/graphql", json={"query": ORDER_UPDATED, "variables": {"id": order_id}}
        )
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        "Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql."
    )


@pytest.fixture(scope="module", params=["postgresql"])
def pg_shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture(scope="module")
def second_process(pg_shop: ModuleShop) -> Iterator[str]:
    settings = pg_shop.app.state.shopgraph.settings
    env = {
        "SHOPGRAPH_DATABASE_URL": pg_shop.database_url,
        "SHOPGRAPH_SECRET_KEY": settings.secret_key,
        "SHOPGRAPH_COST_BUCKET_SIZE": "1000000",
        "SHOPGRAPH_RUN_JOBS": "false",
        # The core alone starts sooner; the subscription and the change are the core's.
        "SHOPGRAPH_PLUGINS": "",
    }
    process, url = serve_process(env)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_a_change_through_one_process_reaches_a_subscriber_of_another(
    pg_shop: ModuleShop, second_process: str
) -> None:
    seeded = pg_shop.seeded
    order_id = gid("Order", seeded["orders"]["across"])
    auth = {"Authorization": f"Bearer {_token(pg_shop, seeded['owner'])}"}
    # Subscribed to the separate process; the change is made through this test's server.
    async with socket(second_process, auth) as client:
        await _acked(client)
        await client.subscribe("1", ORDER_UPDATED, {"id": order_id})
        assert (await client.next("1"))["data"]["orderUpdated"]["status"] == "PENDING_PAYMENT"
        await _mutate(
            pg_shop,
            _token(pg_shop, seeded["admin"]),
            UPDATE_STATUS,
            {"input": {"orderId": order_id, "status": "PAID"}},
        )
        assert (await client.next("1"))["data"]["orderUpdated"]["status"] == "PAID"
