"""Request limits over HTTP: depth, aliases, tokens, body size, batching, query cost."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from graphql import ValidationContext, print_ast
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import AddValidationRules

from schema.core import build_schema
from server.config import Settings
from server.models import Product
from server.plugins import load_plugins
from tests.support.graphql import GraphQLClient
from tests.support.server import LiveServer

COST_KEYS = {"requestedQueryCost", "actualQueryCost", "throttleStatus"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The shipped limits (the suite's shared fixture widens the cost bucket)."""
    return Settings(database_url=database_url, env="test")


def assert_cost(body: dict[str, Any]) -> dict[str, Any]:
    cost = body["extensions"]["cost"]
    assert set(cost) == COST_KEYS
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 1000
    assert status["restoreRate"] == 50
    assert 0 <= status["currentlyAvailable"] <= 1000
    return cost


def messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body.get("errors", [])]


async def test_depth_bomb_is_refused(gql: GraphQLClient, settings: Settings) -> None:
    nested = "parent { " * 20 + "name" + " }" * 20
    body = await gql.execute(f'{{ product(id: "x") {{ category {{ {nested} }} }} }}')
    assert body["data"] is None
    assert any(
        f"exceeds maximum operation depth of {settings.max_depth}" in m for m in messages(body)
    ), body
    assert assert_cost(body)["requestedQueryCost"] is None
    # Just inside the limit it runs.
    depth_ok = settings.max_depth - 3  # product, category, name
    nested = "parent { " * depth_ok + "name" + " }" * depth_ok
    await gql(f'{{ product(id: "x") {{ category {{ {nested} }} }} }}')


async def test_alias_bomb_is_refused(gql: GraphQLClient, settings: Settings) -> None:
    many = " ".join(f"a{i}: __typename" for i in range(settings.max_aliases + 1))
    body = await gql.execute(f"{{ {many} }}")
    assert body["data"] is None
    assert messages(body) == [
        f"{settings.max_aliases + 1} aliases found. Allowed: {settings.max_aliases}"
    ]
    assert_cost(body)
    few = " ".join(f"a{i}: __typename" for i in range(settings.max_aliases))
    assert len(await gql(f"{{ {few} }}")) == settings.max_aliases


async def test_token_bomb_is_refused_while_parsing(gql: GraphQLClient, settings: Settings) -> None:
    body = await gql.execute("{ " + "__typename " * settings.max_tokens + "}")
    assert body["data"] is None
    assert any(f"more than {settings.max_tokens} tokens" in m for m in messages(body)), body
    assert_cost(body)


async def _raw_post(server: LiveServer, head: str, body: bytes) -> tuple[int, bytes]:
    """POST over a raw socket: the test decides exactly what is sent, so the server's
    early answer cannot race a client that is still writing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{head}\r\n".encode()
            + body
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_huge_body_is_refused_before_parsing(
    live_server: LiveServer, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    # A declared length over the limit is answered before a single body byte is read.
    status, body = await _raw_post(live_server, f"Content-Length: {limit + 1}\r\n", b"")
    assert status == 413
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    # Without a Content-Length (chunked), reading stops as soon as the limit is passed.
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 1))
    status, body = await _raw_post(live_server, "Transfer-Encoding: chunked\r\n", chunks)
    assert status == 413
    assert b"PAYLOAD_TOO_LARGE" in body

    # Under the limit, the same server answers normally.
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        padded = {"query": "{ __typename }", "variables": {"pad": "x" * (limit // 2)}}
        ok = await http.post("/graphql", json=padded)
        assert ok.json()["data"] == {"__typename": "Query"}


async def test_a_client_that_sends_its_whole_oversized_body_first_gets_the_413(
    live_server: LiveServer, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    body = b'{"query": "{ __typename }", "pad": "' + b"x" * (limit + 500_000) + b'"}'
    chunk = b"x" * 65536
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 8)
    )
    for head, payload in (
        (f"Content-Length: {len(body)}\r\n", body),
        # No length given: refused once past the limit, the rest still read.
        ("Transfer-Encoding: chunked\r\n", chunked + b"0\r\n\r\n"),
    ):
        # Everything is written before anything is read; a reset would fail _raw_post's read.
        status, answer = await _raw_post(live_server, head, payload)
        assert status == 413, head
        assert json.loads(answer)["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_deeply_nested_variables_are_a_bad_request(live_server: LiveServer) -> None:
    # 3 KB of brackets: past what either JSON decoder can nest. A 400, never a 500.
    nested = "[" * 1500 + "]" * 1500
    body = '{"query": "query($v: JSON) { __typename }", "variables": {"v": ' + nested + "}}"
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert "parse" in response.text.lower()
        # The server is unharmed.
        ok = await http.post("/graphql", json={"query": "{ __typename }"})
        assert ok.json()["data"] == {"__typename": "Query"}


async def test_batches_are_not_accepted(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        response = await http.post(
            "/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}]
        )
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text


async def test_costly_query_is_refused_before_execution(gql: GraphQLClient) -> None:
    # customers is staff-only: had it executed, there would be a permission error too.
    query = "{ customers(first: 100) { nodes { id favorites { id } recentlyViewed { id } } } }"
    body = await gql.execute(query)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["MAX_COST_EXCEEDED"]
    assert "Query cost is 3102" in body["errors"][0]["message"]
    cost = assert_cost(body)
    assert cost["requestedQueryCost"] == 2 + 100 * (1 + 20 + 10)
    assert cost["actualQueryCost"] is None
    assert cost["throttleStatus"]["currentlyAvailable"] == 1000  # nothing was charged


class TestRefund:
    # A slow refill, so what the bucket holds after the request is what was charged, however
    # long the request took.
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return Settings(database_url=database_url, env="test", cost_restore_rate=0.001)

    async def test_actual_cost_is_measured_and_the_rest_refunded(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        products = [Product(sku=f"C-{i}", name=f"茶叶 {i}", price_amount=1000) for i in range(2)]
        session.add_all(products)
        await session.commit()
        body = await gql.execute("{ products(first: 50) { nodes { id } } }")
        assert len(body["data"]["products"]["nodes"]) == 2
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 52
        assert cost["actualQueryCost"] == 4
        # 52 taken up front, 48 given back: 4 spent.
        assert 996 <= cost["throttleStatus"]["currentlyAvailable"] < 996.01


async def test_every_response_carries_the_cost(gql: GraphQLClient) -> None:
    bodies = [
        await gql.execute("{ __typename }"),
        await gql.execute("{ products(first: 3) { totalCount } }"),
        await gql.execute("{ nope }"),  # validation error
        await gql.execute("{ products("),  # syntax error
        await gql.execute("query($n: Int!) { products(first: $n) { totalCount } }"),
        await gql.execute("{ products(first: 101) { totalCount } }"),  # resolver error
        await gql.execute(
            "mutation($input: LoginInput!) { login(input: $input) { __typename } }",
            {"input": {"email": "nobody@example.cn", "password": "wrong-password"}},
        ),
    ]
    for body in bodies:
        assert_cost(body)
    assert bodies[1]["extensions"]["cost"]["requestedQueryCost"] == 2
    assert bodies[6]["data"]["login"]["__typename"] == "AuthenticationError"
    assert bodies[6]["extensions"]["cost"]["actualQueryCost"] == 10


async def test_a_repeated_document_is_validated_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit rules are made once per schema: a rule made per request would change the
    # validation cache's key, and every request would be validated again.
    schema = build_schema(load_plugins(settings), settings)
    rules = [
        rule
        for extension in (factory() for factory in schema.extensions)
        if isinstance(extension, AddValidationRules)
        for rule in extension.validation_rules
    ]
    assert rules
    validated: list[str] = []
    original = rules[0].__init__

    def counting(self: Any, context: ValidationContext) -> None:
        validated.append(print_ast(context.document))
        original(self, context)

    monkeypatch.setattr(rules[0], "__init__", counting)
    for query in ("{ __typename }", "{ __typename }", "{ a: __typename }", "{ __typename }"):
        result = await schema.execute(query)
        assert result.errors is None
    assert validated == ["{\n  __typename\n}", "{\n  a: __typename\n}"]


async def test_text_with_a_nul_character_is_refused_before_the_database(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL's text cannot hold U+0000: without the check the driver fails (a 500 in
    # disguise). As a variable and as a literal, in a mutation and in a query.
    login = 'mutation($e: String!) { login(input: {email: $e, password: "x"}) { __typename } }'
    cases = [
        (login, {"e": "a\x00@example.cn"}, "input.email"),
        # A GraphQL string literal spells it as an escape.
        ('{ searchSuggestions(prefix: "耳\\u0000机") { text } }', None, "prefix"),
    ]
    with caplog.at_level(logging.ERROR):
        for query, variables, path in cases:
            body = await gql.execute(query, variables)
            assert body.get("data") is None, body
            [error] = body["errors"]
            assert error["extensions"]["code"] == "NUL_CHARACTER"
            assert error["extensions"]["argument"] == path
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
