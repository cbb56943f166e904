"""The database goes away under load and comes back: every answer stays a GraphQL answer, the
server recovers by itself, and a client that retries with its idempotency key loses and
duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import strawberry
from sqlalchemy import select

from server import migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.events import DispatchSettings, OutboxDispatcher
from server.models import CartLine, DeliveryStatus, OutboxDelivery
from server.plugin import Event
from server.plugins import load_plugins
from server.services import outbox
from tests.plugins.fakes import FakePlugin, gid
from tests.support.accounts import make_customer, token_for
from tests.support.catalog import make_product
from tests.support.postgres import TemporaryPostgres, find_bindir
from tests.support.server import LiveServer

GRAPHQL_MEDIA = ("application/json", "application/graphql-response+json")
ME = "query Me { me { email } }"
PRODUCTS = "query Page { products(first: 5) { edges { node { name } } } }"
ADD = """
mutation Add($input: CartAddLinesInput!) {
  cartAddLines(input: $input) {
    __typename ... on CartAddLinesSuccess { cart { itemCount } } ... on Error { code }
  }
}"""


@pytest.fixture
def own_postgres() -> Iterator[TemporaryPostgres]:
    """A server of this test's own: it is stopped and started under load."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing in CI: install postgresql")
        pytest.skip("no PostgreSQL binaries on this machine")
    server = TemporaryPostgres(bindir).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_database_restart_under_load(own_postgres: TemporaryPostgres) -> None:
    admin = await asyncpg.connect(own_postgres.url().replace("+asyncpg", ""))
    await admin.execute('CREATE DATABASE "shop"')
    await admin.close()
    url = own_postgres.url("shop")
    settings = Settings(database_url=url, env="production", secret_key="k" * 40)
    await asyncio.to_thread(migrate.upgrade, url, "heads", load_plugins(settings).pm)
    engine = create_engine(url)
    async with session_factory(engine)() as session:
        customer = await make_customer(session)
        tea = await make_product(session, price=8800, name="西湖龙井", stock={"MAIN": 50})
    token = token_for(settings, customer)

    server = LiveServer(create_app(settings, load_plugins(settings))).start()
    answers: Counter[tuple[int, str]] = Counter()
    bad: list[str] = []
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post(
                "/graphql",
                json={
                    "query": 'mutation { createCart(input: {currency: "CNY"}) { '
                    "... on CreateCartSuccess { cart { token } } } }"
                },
                headers={"authorization": f"Bearer {token}"},
            )
            cart = created.json()["data"]["createCart"]["cart"]["token"]

            async def client(query: str, signed_in: bool) -> None:
                headers = {"authorization": f"Bearer {token}"} if signed_in else {}
                while not stop.is_set():
                    response = await http.post("/graphql", json={"query": query}, headers=headers)
                    media = response.headers.get("content-type", "").split(";")[0]
                    answers[response.status_code, media] += 1
                    if media not in GRAPHQL_MEDIA or response.status_code not in (200, 503):
                        bad.append(f"{response.status_code} {media}: {response.text[:200]}")
                    await asyncio.sleep(0.005)

            async def buyer() -> None:
                # Each addition retried with its key until it is answered: the cart must end
                # with exactly what was asked for, however many answers were lost.
                for n in range(12):
                    variables = {
                        "input": {
                            "cartToken": cart,
                            "lines": [{"productId": gid("Product", tea.id), "quantity": 1}],
                            "idempotencyKey": f"add-{n}",
                        }
                    }
                    deadline = time.monotonic() + 30
                    while True:
                        response = await http.post(
                            "/graphql",
                            json={"query": ADD, "variables": variables},
                            headers={"authorization": f"Bearer {token}"},
                        )
                        data = response.json().get("data") if response.status_code == 200 else None
                        result = (data or {}).get("cartAddLines")
                        if result and result["__typename"] == "CartAddLinesSuccess":
                            break
                        assert time.monotonic() < deadline, response.text
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.05)

            tasks = [
                asyncio.create_task(client(ME, signed_in=True)),
                asyncio.create_task(client(PRODUCTS, signed_in=False)),
                asyncio.create_task(client(PRODUCTS, signed_in=True)),
            ]
            buying = asyncio.create_task(buyer())
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own_postgres.halt)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_postgres.resume)
            await buying
            # Recovered: a signed-in request succeeds again within seconds.
            deadline = time.monotonic() + 10
            while True:
                response = await http.post(
                    "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
                )
                if response.status_code == 200 and "errors" not in response.json():
                    break
                assert time.monotonic() < deadline, response.text
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        stop.set()
        server.stop()

    assert bad == [], bad[:5]
    # The outage was seen: signed-in requests, whose token must be checked against the
    # revocation list, were told the service is unavailable (a GraphQL-shaped 503).
    assert answers[503, "application/json"] > 0, answers
    assert answers[200, "application/json"] > 0, answers
    async with session_factory(engine)() as session:
        lines = (await session.execute(CartLine.__table__.select())).all()
    await engine.dispose()
    assert [line.quantity for line in lines] == [12]


async def test_a_delivery_cut_off_by_the_database_is_due_again_within_seconds(
    own_postgres: TemporaryPostgres,
) -> None:
    admin = await asyncpg.connect(own_postgres.url().replace("+asyncpg", ""))
    await admin.execute('CREATE DATABASE "shop"')
    await admin.close()
    url = own_postgres.url("shop")
    settings = Settings(database_url=url, plugins="")
    await asyncio.to_thread(migrate.upgrade, url, "heads", load_plugins(settings).pm)
    calls: list[int] = []

    async def order_placed(event: Event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            # The database goes away after the plugin did its work, before the delivery is
            # marked: neither the outcome nor the failure can be written.
            await asyncio.to_thread(own_postgres.halt)

    runtime = load_plugins(settings, extra=[FakePlugin("crm", order_placed=order_placed)])
    engine = create_engine(url)
    sessions = session_factory(engine)
    # The default lease (two minutes) would keep the delivery claimed for the whole test.
    dispatcher = OutboxDispatcher(sessions, runtime, DispatchSettings(backoff_seconds=0.01))
    try:
        async with sessions() as session:
            await outbox.emit(session, "order_placed", {"order_id": 1})
            await session.commit()
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a lost server
            await dispatcher.drain()
        assert len(calls) == 1
        await asyncio.to_thread(own_postgres.resume)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(Exception):  # the pool finds its connections dead first
                report = await dispatcher.drain()
                if report.delivered:
                    break
            assert time.monotonic() < deadline, "the delivery waited for its lease"
            await asyncio.sleep(0.2)
        assert len(calls) == 2  # at least once: delivered again, then marked
        async with sessions() as session:
            [delivery] = (await session.execute(select(OutboxDelivery))).scalars().all()
            assert delivery.status == DeliveryStatus.DELIVERED
    finally:
        await engine.dispose()


@strawberry.type
class FailingQueries:
    @strawberry.field
    async def fail_now(self) -> int:
        await asyncio.sleep(0.05)
        raise RuntimeError("a non-null root field fails: its siblings are cancelled")


async def test_no_work_outlives_its_request(database_url: str, settings: Settings) -> None:
    """A field cancelled because a sibling failed stops with the request: nothing keeps using
    the request's session after it is closed (one asyncpg connection runs one operation at a
    time, and a closed session would quietly open another)."""
    started: list[int] = []
    finished: list[int] = []

    async def price_adjustments(product: Any) -> list[Any]:
        started.append(product.id)
        await asyncio.sleep(0.4)
        finished.append(product.id)
        return []

    pricing = FakePlugin(
        "slow_pricing",
        price_adjustments=price_adjustments,
        graphql_queries=lambda: [FailingQueries],
    )
    plugins = load_plugins(settings.model_copy(update={"plugins": ""}), extra=[pricing])
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        tea = await make_product(session, price=8800, name="西湖龙井", stock={"MAIN": 5})
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post(
                "/graphql",
                json={
                    "query": 'mutation { createCart(input: {currency: "CNY"}) { '
                    "... on CreateCartSuccess { cart { token } } } }"
                },
            )
            token = created.json()["data"]["createCart"]["cart"]["token"]
            lines = [{"productId": gid("Product", tea.id), "quantity": 1}]
            await http.post(
                "/graphql",
                json={"query": ADD, "variables": {"input": {"cartToken": token, "lines": lines}}},
            )
            started.clear()
            finished.clear()
            query = "query($t: String!) { cart(token: $t) { total { amount } } failNow }"
            answer = (
                await http.post("/graphql", json={"query": query, "variables": {"t": token}})
            ).json()
            assert answer["data"] is None and answer["errors"]
            assert started, "the cart was being priced when its sibling failed"
            await asyncio.sleep(0.6)
            assert finished == [], "the pricing went on after the request had ended"
            # The server is unharmed and prices the same cart normally.
            again = await http.post(
                "/graphql",
                json={
                    "query": "query($t: String!) { cart(token: $t) { total { amount } } }",
                    "variables": {"t": token},
                },
            )
            assert again.json()["data"]["cart"]["total"]["amount"] == "8800.00"
    finally:
        server.stop()
        await engine.dispose()
