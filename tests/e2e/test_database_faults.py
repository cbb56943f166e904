"""The database goes away under load and comes back: every answer stays a GraphQL answer, the
server recovers by itself, and a client that retries with its idempotency key loses and
duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
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
from server.models import (
    CartLine,
    DeliveryStatus,
    Order,
    OrderLine,
    OutboxDelivery,
    OutboxEvent,
    StockLevel,
)
from server.plugin import Event
from server.plugins import load_plugins
from server.services import outbox
from tests.plugins.fakes import ADDRESS, CREATE_CART, FakePlugin, gid
from tests.support.accounts import make_customer, token_for
from tests.support.catalog import make_product
from tests.support.orders import PLACE_ORDER as PLACE
from tests.support.plugins import installed
from tests.support.postgres import TemporaryPostgres, find_bindir, free_port
from tests.support.server import LiveServer

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[2]
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


async def migrated_shop(server: TemporaryPostgres) -> str:
    """A database "shop" on ``server``, migrated with the built-in plugins and the installed
    example plugin (the killed-server test enables it); its URL."""
    admin = await asyncpg.connect(server.url().replace("+asyncpg", ""))
    await admin.execute('CREATE DATABASE "shop"')
    await admin.close()
    url = server.url("shop")
    plugins = load_plugins(installed(Settings(database_url=url), "loyalty"))
    await asyncio.to_thread(migrate.upgrade, url, None, plugins)
    return url


async def test_a_database_restart_under_load(own_postgres: TemporaryPostgres) -> None:
    url = await migrated_shop(own_postgres)
    settings = Settings(database_url=url, env="production", secret_key="k" * 40)
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
                json={"query": CREATE_CART, "variables": {"input": {"currency": "CNY"}}},
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
    url = await migrated_shop(own_postgres)
    settings = Settings(database_url=url, plugins="")
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


async def test_no_work_outlives_its_request(database_url: str, settings: Settings) -> None:
    """A field cancelled because a sibling failed stops with the request: nothing keeps using
    the request's session after it is closed (one asyncpg connection runs one operation at a
    time, and a closed session would quietly open another)."""
    started: list[int] = []
    finished: list[int] = []
    pricing = asyncio.Event()  # bound to the server's loop at first use

    async def price_adjustments(items: Any) -> dict[int, Any]:
        started.extend(items)
        pricing.set()
        await asyncio.sleep(0.4)
        finished.extend(items)
        return {}

    @strawberry.type
    class FailingQueries:
        @strawberry.field
        async def fail_now(self) -> int:
            # Fails once the cart's pricing is under way: it is then what gets cancelled.
            await asyncio.wait_for(pricing.wait(), timeout=10)
            raise RuntimeError("a non-null root field fails: its siblings are cancelled")

    slow = FakePlugin(
        "slow_pricing",
        price_adjustments=price_adjustments,
        graphql_queries=lambda: [FailingQueries],
    )
    plugins = load_plugins(settings.model_copy(update={"plugins": ""}), extra=[slow])
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        tea = await make_product(session, price=8800, name="西湖龙井", stock={"MAIN": 5})
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post(
                "/graphql",
                json={"query": CREATE_CART, "variables": {"input": {"currency": "CNY"}}},
            )
            token = created.json()["data"]["createCart"]["cart"]["token"]
            lines = [{"productId": gid("Product", tea.id), "quantity": 1}]
            await http.post(
                "/graphql",
                json={"query": ADD, "variables": {"input": {"cartToken": token, "lines": lines}}},
            )
            started.clear()
            finished.clear()
            pricing.clear()
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


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHOPGRAPH_DATABASE_URL": url,
        "SHOPGRAPH_ENV": "production",
        "SHOPGRAPH_SECRET_KEY": "k" * 40,
        "SHOPGRAPH_COST_RESTORE_RATE": "1e12",
        "SHOPGRAPH_LOG_LEVEL": "ERROR",
        # A killed process's claimed deliveries come back after their lease: short here.
        "SHOPGRAPH_OUTBOX_LEASE_SECONDS": "2",
        "SHOPGRAPH_OUTBOX_POLL_SECONDS": "0.5",
        # The installed example plugin receives the orders' events.
        "SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true",
        "SHOPGRAPH_PLUGINS": "loyalty",
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=ROOT)


def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz/ready", timeout=1).status_code == 200:
                return
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


async def test_a_server_process_killed_under_load_loses_and_duplicates_nothing(
    own_postgres: TemporaryPostgres,
) -> None:
    url = await migrated_shop(own_postgres)
    settings = Settings(database_url=url, env="production", secret_key="k" * 40)
    engine = create_engine(url)
    buyers = 16
    async with session_factory(engine)() as session:
        tea = await make_product(session, price=88, name="西湖龙井", stock={"MAIN": 100})
        customers = [await make_customer(session) for _ in range(buyers)]
    ports = [free_port(), free_port()]
    servers = [_serve(url, port) for port in ports]
    try:
        for port in ports:
            await asyncio.to_thread(_wait_until_serving, port)
        alive = list(ports)
        refused: list[int] = []

        async def post(
            http: httpx.AsyncClient, start: int, token: str, query: str, variables: Any
        ) -> Any:
            """Send until some server answers, first to ``ports[start]`` (the buyers share
            both), then to the others; a killed one's connections just fail."""
            for attempt in range(200):
                port = ports[(start + attempt) % 2] if attempt < 2 else alive[attempt % len(alive)]
                try:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/graphql",
                        json={"query": query, "variables": variables},
                        headers={"authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError:
                    refused.append(port)
                else:
                    if response.status_code == 200:
                        return response.json()["data"]
                await asyncio.sleep(0.05)
            raise AssertionError("no server answered")

        async def buy(n: int) -> None:
            token = token_for(settings, customers[n])
            async with httpx.AsyncClient(timeout=30) as http:
                created = await post(
                    http,
                    n % 2,
                    token,
                    CREATE_CART,
                    {"input": {"currency": "CNY"}},
                )
                cart = created["createCart"]["cart"]["token"]
                line = [{"productId": gid("Product", tea.id), "quantity": 2}]
                added = await post(
                    http,
                    n % 2,
                    token,
                    ADD,
                    {"input": {"cartToken": cart, "lines": line, "idempotencyKey": f"add-{n}"}},
                )
                assert added["cartAddLines"]["__typename"] == "CartAddLinesSuccess", added
                placed = await post(
                    http,
                    n % 2,
                    token,
                    PLACE,
                    {
                        "input": {
                            "cartToken": cart,
                            "idempotencyKey": f"order-{n}",
                            "shippingAddress": ADDRESS,
                        }
                    },
                )
                assert placed["placeOrder"]["__typename"] == "PlaceOrderSuccess", placed

        async def kill_one() -> None:
            await asyncio.sleep(0.3)
            alive.remove(ports[0])
            servers[0].kill()

        await asyncio.gather(kill_one(), *(buy(n) for n in range(buyers)))
        # The killed process was in the middle of it: requests to it failed and were retried.
        assert ports[0] in refused
        async with session_factory(engine)() as session:
            orders = (await session.execute(select(Order))).scalars().all()
            assert sorted(o.customer_id for o in orders) == sorted(c.id for c in customers)
            lines = (await session.execute(select(OrderLine))).scalars().all()
            assert [line.quantity for line in lines] == [2] * buyers
            [level] = (await session.execute(select(StockLevel))).scalars().all()
            assert (level.on_hand, level.reserved) == (100, 2 * buyers)
        # Every order's event reaches the installed plugin, including those the killed
        # process had claimed: their lease runs out and the survivor delivers them.
        deadline = time.monotonic() + 20
        while True:
            async with session_factory(engine)() as session:
                statuses = (
                    (
                        await session.execute(
                            select(OutboxDelivery.status)
                            .join(OutboxEvent, OutboxEvent.id == OutboxDelivery.event_id)
                            .where(OutboxEvent.name == "order_placed")
                        )
                    )
                    .scalars()
                    .all()
                )
            if len(statuses) == buyers and set(statuses) == {DeliveryStatus.DELIVERED}:
                break
            assert time.monotonic() < deadline, Counter(statuses)
            await asyncio.sleep(0.3)
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=30)
        await engine.dispose()
