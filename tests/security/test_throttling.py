"""Throttling over HTTP with a tiny bucket: it empties, refuses, and recovers with time; staff
of a role with a budget of its own draw on that role's bigger buckets."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import create_access_token
from server.config import CostBudget, Settings
from server.graphql.limits import cost_buckets
from server.models import StaffRole
from server.permissions import RoleMap
from server.services.apikeys import create_api_key_in
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient

BUCKET = 10
RESTORE = 2.0
# The analysts' budget here: five of the queries below.
ANALYST_BUCKET = 30
ANALYST_RESTORE = 3.0
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
        role_cost_budgets={
            "ANALYST": CostBudget(size=ANALYST_BUCKET, restore_rate=ANALYST_RESTORE)
        },
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


async def test_staff_of_a_role_with_a_budget_draw_on_the_roles_buckets(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    # 30 points: five queries of 6, then throttled (everyone else: one).
    for served in range(ANALYST_BUCKET // COST):
        body = await analyst.execute(QUERY)
        assert body["data"] is not None, served
    status = body["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == ANALYST_BUCKET
    assert status["restoreRate"] == ANALYST_RESTORE
    assert status["currentlyAvailable"] < COST
    refused = await analyst.execute(QUERY)
    assert refused["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "3 points are restored per second" in refused["errors"][0]["message"]
    # Support has no budget of its own: everyone's bucket of 10.
    assert (await support.execute(QUERY))["data"] is not None
    again = await support.execute(QUERY)
    assert again["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert again["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == BUCKET
    # The single query's maximum stays everyone's: a bigger bucket is for more queries.
    big = await analyst.execute("{ products(first: 20) { nodes { id } } }")
    assert big["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


def test_role_budgets_raise_a_roles_buckets_and_never_lower_them() -> None:
    shipped = cost_buckets(Settings())
    # Admins and analysts read the dashboard: ten times everyone's budget.
    for role in ("ADMIN", "ANALYST"):
        bucket = shipped.for_role(role)
        assert (bucket.size, bucket.restore_rate) == (10_000, 500)
    for role in ("SUPPORT", "CATALOG", None):
        bucket = shipped.for_role(role)
        assert (bucket.size, bucket.restore_rate) == (1000, 50)
        assert bucket is shipped.default

    settings = Settings(
        cost_bucket_size=100,
        cost_restore_rate=5,
        role_cost_budgets={
            " support ": CostBudget(size=5, restore_rate=20),
            "ANALYST": CostBudget(size=400, restore_rate=1),
        },
    )
    buckets = cost_buckets(settings, RoleMap.build(settings).roles)
    # Each part at least everyone's; the setting's name in any case, spaces aside.
    assert (buckets.for_role("SUPPORT").size, buckets.for_role("SUPPORT").restore_rate) == (100, 20)
    assert (buckets.for_role("ANALYST").size, buckets.for_role("ANALYST").restore_rate) == (400, 5)
    # The setting replaces the default: admins are everyone here.
    assert buckets.for_role("ADMIN") is buckets.default

    typo = Settings(role_cost_budgets={"ANALYTS": CostBudget(size=10, restore_rate=1)})
    with pytest.raises(ValueError, match="role_cost_budgets names role 'ANALYTS'; one of ADMIN"):
        cost_buckets(typo, RoleMap.build(typo).roles)


def test_role_budgets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHOPGRAPH_ROLE_COST_BUDGETS", '{"ANALYST": {"size": 20000, "restore_rate": 1000}}'
    )
    assert Settings().role_cost_budgets == {"ANALYST": CostBudget(size=20_000, restore_rate=1000)}
