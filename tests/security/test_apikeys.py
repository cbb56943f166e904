"""API keys: created once (CLI and GraphQL), hashed, scoped, revocable, lastUsedAt."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.config import Settings
from server.db import mark_write
from server.models import ApiKey, StaffRole
from server.services.apikeys import hash_key
from tests.support.accounts import make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient

CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on CreateApiKeySuccess { key apiKey { id name prefix scopes isActive createdBy } }
    ... on Error { code message field }
  }
}
"""

REVOKE = """
mutation($input: RevokeApiKeyInput!) {
  revokeApiKey(input: $input) {
    __typename
    ... on RevokeApiKeySuccess { apiKey { isActive revokedAt } }
    ... on Error { code }
  }
}
"""

ARCHIVE = """
mutation($input: ArchiveProductInput!) {
  archiveProduct(input: $input) { __typename }
}
"""


async def _create(admin: GraphQLClient, name: str, scopes: list[str]) -> dict[str, object]:
    result = (await admin(CREATE, {"input": {"name": name, "scopes": scopes}}))["createApiKey"]
    assert result["__typename"] == "CreateApiKeySuccess", result
    return result


async def test_cli_creates_a_key_shown_once_and_stored_hashed(
    gql: GraphQLClient, session: AsyncSession, database_url: str
) -> None:
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    runner = CliRunner()
    args = ["apikey", "create", "--name", "ERP 同步", "--scopes", "catalog.read,orders.manage"]
    result = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    key = next(w for w in result.output.split() if w.startswith("sg_"))
    row = (await session.execute(select(ApiKey))).scalar_one()
    assert row.key_hash == hash_key(key) and key not in row.key_hash
    assert key.startswith(f"sg_{row.prefix}_")
    assert row.scopes == ["catalog.read", "orders.manage"]
    assert row.name == "ERP 同步"
    permissions = await gql.as_(key)("{ viewerPermissions }")
    assert permissions["viewerPermissions"] == ["catalog.read", "orders.manage"]

    bad = ["apikey", "create", "--name", "x", "--scopes", "catalog.read,nonsense.do"]
    refused = await asyncio.to_thread(runner.invoke, cli, bad, env=env)
    assert refused.exit_code == 1 and "nonsense.do" in refused.output

    revoked = await asyncio.to_thread(runner.invoke, cli, ["apikey", "revoke", row.prefix], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert (await gql.as_(key).post("{ viewerPermissions }")).status_code == 401


async def test_key_scopes_are_its_permissions(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, live_server: object
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    reader = await _create(admin, "storefront", ["catalog.read"])
    writer = await _create(admin, "PIM", ["catalog.manage"])
    product = await make_product(session)
    from strawberry import relay

    variables = {"input": {"id": str(relay.GlobalID("Product", str(product.id)))}}
    refused = await gql.as_(reader["key"]).execute(ARCHIVE, variables)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # X-Api-Key works like the bearer header.
    async with httpx.AsyncClient(base_url=live_server.url) as http:  # type: ignore[attr-defined]
        response = await http.post(
            "/graphql",
            json={"query": ARCHIVE, "variables": variables},
            headers={"X-Api-Key": str(writer["key"])},
        )
    assert response.json()["data"]["archiveProduct"]["__typename"] == "ArchiveProductSuccess"
    await session.refresh(product)
    assert product.is_active is False
    # A key is not a staff user: no customer data without customers.read.
    listing = await gql.as_(writer["key"]).execute("{ customers(first: 1) { totalCount } }")
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_revoked_unknown_and_tampered_keys_are_refused_with_401(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    created = await _create(admin, "BI export", ["orders.read"])
    key = str(created["key"])
    assert (await gql.as_(key).post("{ viewerPermissions }")).status_code == 200
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    prefix = str(created["apiKey"]["prefix"])  # type: ignore[index]
    for bad in (tampered, f"sg_{prefix}_", "sg_nope_nope", "sg_"):
        assert (await gql.as_(bad).post("{ viewerPermissions }")).status_code == 401, bad
    revoked = (
        await admin(REVOKE, {"input": {"id": created["apiKey"]["id"]}})  # type: ignore[index]
    )["revokeApiKey"]
    assert revoked["apiKey"]["isActive"] is False and revoked["apiKey"]["revokedAt"]
    response = await gql.as_(key).post("{ viewerPermissions }")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_managing_keys_needs_apikeys_manage_and_scopes_must_exist(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    denied = await support.execute(CREATE, {"input": {"name": "x", "scopes": ["catalog.read"]}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    for scopes in (["catalog.read", "root.everything"], []):
        bad = (await admin(CREATE, {"input": {"name": "x", "scopes": scopes}}))["createApiKey"]
        assert bad["__typename"] == "ValidationError" and bad["field"] == "scopes"
    blank = await admin(CREATE, {"input": {"name": "  ", "scopes": ["catalog.read"]}})
    assert blank["createApiKey"]["field"] == "name"
    assert (await session.execute(select(ApiKey))).first() is None
    # Keys are listed without their secret.
    await _create(admin, "one", ["catalog.read"])
    page = await admin("{ apiKeys(first: 5, filter: {active: true}) { edges { node { name } } } }")
    assert [e["node"]["name"] for e in page["apiKeys"]["edges"]] == ["one"]


async def test_last_used_at_is_written_at_most_once_a_minute(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    created = await _create(admin, "poller", ["catalog.read"])
    client = gql.as_(str(created["key"]))
    await client("{ viewerPermissions }")
    first = (await session.execute(select(ApiKey.last_used_at))).scalar_one()
    assert first is not None
    await session.rollback()
    await client("{ viewerPermissions }")
    assert (await session.execute(select(ApiKey.last_used_at))).scalar_one() == first
    await session.rollback()
    # A minute later the next request records the use again.
    await mark_write(session)
    await session.execute(
        update(ApiKey).values(last_used_at=datetime.now(UTC) - timedelta(minutes=2))
    )
    await session.commit()
    await client("{ viewerPermissions }")
    later = (await session.execute(select(ApiKey.last_used_at))).scalar_one()
    assert later > first
