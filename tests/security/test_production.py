"""Production mode: no introspection, no suggestions, no IDE, masked unexpected errors, and
no start with a weak secret."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import strawberry
from graphql import GraphQLError

from server.app import create_app
from server.config import DEFAULT_SECRET, InsecureSettings, Settings
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin
from tests.support.graphql import GraphQLClient
from tests.support.server import LiveServer

STRONG_SECRET = "k3Yx9v0sQ7bLmR2tW8zN4pC6dF1hJ5aE"


@strawberry.type
class TroubleQueries:
    @strawberry.field
    def broken(self) -> int:
        # An internal failure whose text must never reach a client.
        raise RuntimeError("connection string postgres://admin:hunter2@db/shop")

    @strawberry.field
    def refused(self) -> int:
        raise GraphQLError("You may not do that.", extensions={"code": "FORBIDDEN"})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, env="production", secret_key=STRONG_SECRET)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    trouble = FakePlugin("trouble", graphql_queries=lambda: [TroubleQueries])
    return load_plugins(settings, extra=[trouble])


def errors(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["message"] for e in body["errors"]]


async def test_introspection_is_refused(gql: GraphQLClient) -> None:
    body = await gql.execute("{ __schema { types { name } } }")
    assert body["data"] is None
    assert any("introspection" in m.lower() for m in errors(body)), body
    body = await gql.execute('{ __type(name: "Product") { fields { name } } }')
    assert body["data"] is None
    # __typename is not introspection of the schema: clients rely on it.
    assert await gql("{ __typename }") == {"__typename": "Query"}


async def test_no_field_suggestions(gql: GraphQLClient) -> None:
    body = await gql.execute("{ productz(first: 1) { totalCount } }")
    assert errors(body) == ["Cannot query field 'productz' on type 'Query'."]
    body = await gql.execute("{ products(frist: 1) { totalCount } }")
    assert errors(body) == ["Unknown argument 'frist' on field 'Query.products'."]
    body = await gql.execute("query($s: ProductSrot) { products(sort: $s) { totalCount } }")
    assert "Unknown type 'ProductSrot'." in errors(body)
    assert "Did you mean" not in str(body)


async def test_no_graphiql(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_unexpected_errors_are_masked_deliberate_ones_are_not(gql: GraphQLClient) -> None:
    body = await gql.execute("{ broken }")
    assert errors(body) == ["Unexpected error."]
    assert "hunter2" not in str(body) and "RuntimeError" not in str(body)
    assert "extensions" in body and "cost" in body["extensions"]

    body = await gql.execute("{ refused }")
    assert body["errors"][0]["message"] == "You may not do that."
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}

    # Pagination limits and permission checks keep their messages.
    body = await gql.execute("{ products(first: 500) { totalCount } }")
    assert errors(body) == ["first must be between 0 and 100"]
    body = await gql.execute("{ customers(first: 1) { totalCount } }")
    assert body["errors"][0]["message"] != "Unexpected error."
    assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}

    # Typed domain errors are data, shown as they are.
    data = await gql(
        "mutation($input: LoginInput!) { login(input: $input) { __typename ... on Error { code } } }",
        {"input": {"email": "nobody@example.cn", "password": "not-the-password"}},
    )
    assert data["login"]["__typename"] == "AuthenticationError"


def test_the_server_refuses_to_start_with_a_weak_secret(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    for secret in (DEFAULT_SECRET, "short-secret"):
        settings = Settings(database_url=url, env="production", secret_key=secret)
        with pytest.raises(InsecureSettings, match="SHOPGRAPH_SECRET_KEY"):
            create_app(settings)
    # The same secret is fine outside production (development, tests).
    create_app(Settings(database_url=url, env="development", secret_key="short-secret"))
    create_app(Settings(database_url=url, env="production", secret_key=STRONG_SECRET))


async def test_development_keeps_the_ide_and_the_suggestions(tmp_path: Path) -> None:
    from server import migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    settings = Settings(database_url=url, env="development")
    migrate.upgrade(url, plugins=load_plugins(settings))
    server = LiveServer(create_app(settings, load_plugins(settings))).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            ide = await http.get("/graphql", headers={"accept": "text/html"})
            assert ide.status_code == 200 and "graphiql" in ide.text.lower()
            body = (await http.post("/graphql", json={"query": "{ productz }"})).json()
            assert "Did you mean" in body["errors"][0]["message"]
    finally:
        server.stop()
