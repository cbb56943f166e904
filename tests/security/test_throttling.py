"""Throttling over HTTP with a tiny bucket: it empties, refuses, and recovers with time."""

from __future__ import annotations

import asyncio

import pytest

from server.auth import create_access_token
from server.config import Settings
from server.permissions import RoleMap
from server.services.apikeys import create_api_key_in
from tests.support.graphql import GraphQLClient

BUCKET = 10
RESTORE = 2.0
# Two empty connections: 2 × (connection 2 + pageInfo 1) = 6, requested and actual alike.
QUERY = """{
  a: products(first: 0) { pageInfo { hasNextPage } }
  b: products(first: 0) { pageInfo { hasNextPage } }
}"""
COST = 6


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        env="test",
        cost_bucket_size=BUCKET,
        cost_restore_rate=RESTORE,
        max_query_cost=BUCKET,
    )


async def test_throttled_when_the_bucket_is_empty_and_served_again_later(
    gql: GraphQLClient, settings: Settings
) -> None:
    first = await gql.execute(QUERY)
    assert first["extensions"]["cost"]["actualQueryCost"] == COST
    assert first["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < COST

    throttled = await gql.execute(QUERY)
    assert throttled["data"] is None
    [error] = throttled["errors"]
    assert error["extensions"]["code"] == "THROTTLED"
    assert error["extensions"]["retryAfter"] >= 1
    cost = throttled["extensions"]["cost"]
    assert cost["requestedQueryCost"] == COST
    assert cost["actualQueryCost"] is None
    assert cost["throttleStatus"] == {
        "maximumAvailable": BUCKET,
        "currentlyAvailable": pytest.approx(BUCKET - COST, abs=1.5),
        "restoreRate": RESTORE,
    }

    # A client that asks for the GraphQL response media type gets 429 with Retry-After.
    response = await gql.http.post(
        "/graphql", json={"query": QUERY}, headers={"accept": "application/graphql-response+json"}
    )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert "data" not in response.json()

    # Another client (a signed-in customer) has its own bucket.
    token = create_access_token(settings, "customer:42")
    assert (await gql.as_(token).execute(QUERY))["data"] is not None

    # The bucket refills at RESTORE points a second: COST points are back in COST / RESTORE s.
    await asyncio.sleep(COST / RESTORE + 0.5)
    recovered = await gql.execute(QUERY)
    assert recovered.get("errors") is None
    assert recovered["data"]["a"]["pageInfo"] == {"hasNextPage": False}


async def test_a_query_costing_more_than_the_bucket_never_runs(gql: GraphQLClient) -> None:
    body = await gql.execute("{ products(first: 20) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 22
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == BUCKET


async def test_each_api_key_has_its_own_bucket(
    gql: GraphQLClient, settings: Settings, database_url: str
) -> None:
    roles = RoleMap.build(settings)
    first, second = [
        await create_api_key_in(
            database_url, roles, name=name, scopes=["catalog.read"], created_by="test"
        )
        for name in ("ERP", "POS")
    ]
    # Same address, different keys: the first key's empty bucket does not throttle the second.
    assert (await gql.as_(first.secret).execute(QUERY))["data"] is not None
    refused = await gql.as_(first.secret).execute(QUERY)
    assert refused["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert (await gql.as_(second.secret).execute(QUERY))["data"] is not None
    # Nor does it throttle anonymous callers from that address.
    assert (await gql.execute(QUERY))["data"] is not None
