"""The carrier webhook and the staff mutation over HTTP, on SQLite and PostgreSQL: a signed
batch moves the shipment and the order, out of order and twice; a bad signature, a stale
timestamp or a malformed body writes nothing (and the refusal is logged, without the secret);
the customer follows the tracking on their order; staff record an event by hand."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import CarrierEvent
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import StaffRole, utcnow
from server.plugins import load_plugins
from tests.plugins.logistics.tracking_support import event, make_network, shipped_order, signed
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

URL = "/plugins/logistics/carriers/SF/events"
SETTINGS = Settings(env="test")


async def _seed(session: AsyncSession) -> dict[str, Any]:
    url = session.get_bind().url.render_as_string(hide_password=False)
    plugins = load_plugins(Settings(database_url=url, env="test"))
    net = await make_network(session)
    customer = await make_customer(session)
    staff = await make_staff(session, role=StaffRole.ADMIN)
    latest = (utcnow() + timedelta(days=2)).date()
    orders = {}
    for name in ("webhook", "refused", "staff"):
        orders[name] = await shipped_order(
            session, plugins, net, latest=latest, customer_id=customer.id
        )
    return {
        "orders": orders,
        "customer": token_for(SETTINGS, customer),
        "staff": token_for(SETTINGS, staff),
        "latest": latest,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture
async def http(shop: ModuleShop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
        yield client


async def stored(shop: ModuleShop, shipment_id: int) -> int:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(CarrierEvent)
                    .where(col(CarrierEvent.shipment_id) == shipment_id)
                )
                or 0
            )
    finally:
        await engine.dispose()


FOLLOW = """
query($id: ID!) {
  order(id: $id) {
    status
    shipments {
      status
      tracking { eta onTime transitHours events { eventId rawStatus status applied source } }
      delay { kind }
    }
    shipmentDelays { kind }
  }
}"""


async def test_a_signed_batch_moves_the_order_and_a_replay_changes_nothing(
    shop: ModuleShop, http: httpx.AsyncClient
) -> None:
    order_id, shipment_id, number = shop.seeded["orders"]["webhook"]
    now = utcnow()
    # The delivery listed (and happening) after the pick-up, sent first in the batch.
    batch = [
        event("w-2", number, "80", now - timedelta(hours=1), location="上海"),
        event("w-1", number, "50", now - timedelta(hours=3), location="杭州"),
        event("w-3", "SF-UNKNOWN-1", "50", now - timedelta(hours=3)),
    ]
    body, headers = signed(batch)
    response = await http.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 2,
        "duplicates": 0,
        "unknownShipment": ["w-3"],
        "unknownStatus": [],
        "unapplied": [],
    }
    # The very same delivery again (a retry within the tolerance): stored once.
    again = await http.post(URL, content=body, headers=headers)
    assert again.status_code == 200
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    assert await stored(shop, shipment_id) == 2

    customer = GraphQLClient(http, shop.seeded["customer"])
    data = (await customer(FOLLOW, {"id": gid("Order", order_id)}))["order"]
    assert data["status"] == "DELIVERED"
    (shipment,) = data["shipments"]
    assert shipment["status"] == "DELIVERED"
    tracking = shipment["tracking"]
    assert tracking["onTime"] is True
    assert tracking["transitHours"] == 2.0
    assert [
        (e["eventId"], e["rawStatus"], e["status"], e["applied"]) for e in tracking["events"]
    ] == [
        ("w-1", "50", "IN_TRANSIT", True),
        ("w-2", "80", "DELIVERED", True),
    ]
    assert {e["source"] for e in tracking["events"]} == {"WEBHOOK"}
    assert shipment["delay"] is None and data["shipmentDelays"] == []


async def test_bad_signatures_and_stale_timestamps_write_nothing(
    shop: ModuleShop, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, shipment_id, number = shop.seeded["orders"]["refused"]
    batch = [event("r-1", number, "50", utcnow() - timedelta(hours=1))]
    caplog.set_level(logging.WARNING, logger="shopgraph.logistics")

    body, headers = signed(batch, secret="not-the-secret")
    response = await http.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_SIGNATURE"

    # A body changed after signing.
    body, headers = signed(batch)
    response = await http.post(URL, content=body.replace(b"50", b"80"), headers=headers)
    assert response.status_code == 401

    # Signed right, but sent (or replayed) ten minutes late: past the 300 s tolerance.
    body, headers = signed(batch, at=time.time() - 600)
    response = await http.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "STALE_TIMESTAMP"

    # No timestamp at all.
    body, headers = signed(batch)
    del headers["X-Carrier-Timestamp"]
    assert (await http.post(URL, content=body, headers=headers)).status_code == 401

    body, headers = signed(batch)
    response = await http.post(
        "/plugins/logistics/carriers/NOPE/events", content=body, headers=headers
    )
    assert response.status_code == 404

    body, headers = signed({"events": [{"event_id": "x"}]})
    response = await http.post(URL, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_EVENT"

    future = [event("r-2", number, "50", utcnow() + timedelta(hours=2))]
    body, headers = signed(future)
    assert (await http.post(URL, content=body, headers=headers)).status_code == 400

    assert await stored(shop, shipment_id) == 0
    refusals = [r.getMessage() for r in caplog.records if r.name == "shopgraph.logistics"]
    assert any("bad signature for SF from 127.0.0.1" in m for m in refusals), refusals
    assert any("stale timestamp for SF" in m for m in refusals), refusals
    assert not any("sf-webhook-secret" in m for m in refusals)


RECORD = """
mutation($input: RecordCarrierEventInput!) {
  recordCarrierEvent(input: $input) {
    __typename
    ... on RecordCarrierEventSuccess { duplicate applied status shipmentId tracking { eta } }
    ... on Error { code message field }
  }
}"""


async def test_staff_record_an_event_by_hand(shop: ModuleShop, http: httpx.AsyncClient) -> None:
    _, shipment_id, number = shop.seeded["orders"]["staff"]
    staff = GraphQLClient(http, shop.seeded["staff"])
    scan = {
        "carrierCode": "sf",
        "eventId": "staff-1",
        "trackingNumber": number,
        "status": "PICKED_UP",
        "occurredAt": (utcnow() - timedelta(hours=1)).isoformat(),
        "location": "杭州",
    }
    first = (await staff(RECORD, {"input": scan}))["recordCarrierEvent"]
    assert first["__typename"] == "RecordCarrierEventSuccess", first
    assert (first["duplicate"], first["applied"], first["status"]) == (False, True, "IN_TRANSIT")
    assert first["shipmentId"] == gid("Shipment", shipment_id)
    assert first["tracking"]["eta"] is not None
    again = (await staff(RECORD, {"input": scan}))["recordCarrierEvent"]
    assert (again["duplicate"], again["applied"]) == (True, True)

    wrong = (await staff(RECORD, {"input": {**scan, "carrierCode": "ZZ"}}))["recordCarrierEvent"]
    assert (wrong["__typename"], wrong["field"]) == ("NotFoundError", "carrierCode")
    lost = {**scan, "eventId": "staff-2", "trackingNumber": "SF-NONE"}
    missing = (await staff(RECORD, {"input": lost}))["recordCarrierEvent"]
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "trackingNumber")
    long = (await staff(RECORD, {"input": {**scan, "eventId": "x" * 101}}))["recordCarrierEvent"]
    assert (long["__typename"], long["field"]) == ("ValidationError", "eventId")
    assert await stored(shop, shipment_id) == 1

    customer = GraphQLClient(http, shop.seeded["customer"])
    refused = await customer.execute(RECORD, {"input": {**scan, "eventId": "staff-3"}})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await stored(shop, shipment_id) == 1


PAGE = """
query($first: Int!) {
  orders(first: $first) {
    edges { node {
      shipmentDelays { kind }
      shipments { tracking { eta lateProbability events { eventId status } } delay { kind } }
    } }
  }
}"""


async def test_tracking_is_read_in_batches(shop: ModuleShop, http: httpx.AsyncClient) -> None:
    staff = GraphQLClient(http, shop.seeded["staff"])

    async def statements_for(first: int) -> list[str]:
        with counting(shop.app) as statements:
            data = await staff(PAGE, {"first": first})
        assert len(data["orders"]["edges"]) == first
        return [s for s in statements if "logistics_" in s]

    one, three = await statements_for(1), await statements_for(3)
    # Tracking rows, carrier events, delays by shipment and by order: one statement each.
    assert len(one) == len(three) == 4, three
