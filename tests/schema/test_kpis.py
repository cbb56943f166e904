"""The KPI queries over HTTP, on the hand-worked small shop of tests/support/kpis.py (SQLite
and PostgreSQL): shopKpis with its comparisons, shoppingFunnel, cohortRetention, typed errors
for bad input, and staff-only access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.db import create_engine, session_factory
from server.models import StaffRole
from server.services import kpi_aggregates as agg
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.kpis import D1, D2, WEEK_END, small_shop

SHOP_KPIS = """query($input: ShopKpisInput!) { shopKpis(input: $input) {
  __typename
  ... on ShopKpis { from to granularity previousFrom previousTo lastYearFrom lastYearTo
    refreshedAt
    kpis { key label unit higherIsBetter description total previousTotal lastYearTotal change
           lastYearChange points { start end value previous lastYear } } }
  ... on Error { code field message } } }"""
FUNNEL = """query($input: ShoppingFunnelInput!) { shoppingFunnel(input: $input) {
  __typename
  ... on ShoppingFunnel { from to visitors overallConversionRate
    steps { step visitors stepConversionRate overallConversionRate } }
  ... on Error { code field message } } }"""
COHORTS = """query($input: CohortRetentionInput!) { cohortRetention(input: $input) {
  __typename
  ... on CohortRetention { fromMonth months
    cohorts { month size retention { offset month customers share } } }
  ... on Error { code field message } } }"""


@pytest.fixture
async def staff_gql(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, database_url: str
) -> GraphQLClient:
    await small_shop(session)
    engine = create_engine(database_url)
    await agg.rebuild(session_factory(engine), settings)
    await engine.dispose()
    analyst = await make_staff(session, role=StaffRole.ANALYST)
    return gql.as_(token_for(settings, analyst))


async def test_shop_kpis_over_http(staff_gql: GraphQLClient) -> None:
    period = {"from": D1.isoformat(), "to": D2.isoformat()}
    data = await staff_gql(SHOP_KPIS, {"input": {**period, "keys": ["gmv", "conversion_rate"]}})
    report = data["shopKpis"]
    assert report["__typename"] == "ShopKpis"
    assert (report["previousFrom"], report["previousTo"]) == ("2026-02-28", "2026-03-01")
    assert (report["lastYearFrom"], report["lastYearTo"]) == ("2025-03-02", "2025-03-03")
    assert report["refreshedAt"] is not None
    gmv, conversion = report["kpis"]
    assert (gmv["key"], gmv["unit"], gmv["higherIsBetter"]) == ("gmv", "MONEY", True)
    assert (gmv["total"], gmv["previousTotal"], gmv["lastYearTotal"]) == (25000, 4000, 8000)
    assert gmv["change"] == 5.25 and gmv["lastYearChange"] == 2.125
    assert gmv["points"] == [
        {"start": "2026-03-02", "end": "2026-03-03", "value": 18000, "previous": 0,
         "lastYear": 8000},
        {"start": "2026-03-03", "end": "2026-03-04", "value": 7000, "previous": 4000,
         "lastYear": 0},
    ]  # fmt: skip
    # Conversion: 3 of 8 visitors on D1, 1 of 3 on D2, 3 of 9 over both; nothing before.
    assert conversion["unit"] == "RATIO"
    assert [p["value"] for p in conversion["points"]] == [3 / 8, 1 / 3]
    assert conversion["total"] == 3 / 9
    assert conversion["previousTotal"] is None and conversion["change"] is None
    # Every KPI when no keys are named, the core's first.
    data = await staff_gql(SHOP_KPIS, {"input": {**period, "granularity": "WEEK"}})
    keys = [k["key"] for k in data["shopKpis"]["kpis"]]
    assert keys[:3] == ["gmv", "orders", "aov"] and "payment_success_rate" in keys


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"from": "2026-03-03", "to": "2026-03-02"}, "from", "before"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to", "400 days"),
        ({"from": "2021-01-01", "to": "2026-03-01", "granularity": "MONTH"}, "to", "1830"),
        ({"from": "2026-03-01", "to": "2026-03-02", "keys": ["gmv", "nope"]}, "keys", "nope"),
        ({"from": "2026-03-01", "to": "2026-03-02", "keys": ["k"] * 101}, "keys", "at most"),
    ],
)
async def test_bad_input_is_a_typed_error(
    staff_gql: GraphQLClient, given: dict[str, object], field: str, words: str
) -> None:
    body = await staff_gql.execute(SHOP_KPIS, {"input": given})
    answer = (body.get("data") or {}).get("shopKpis")
    if answer is None:
        # A list past the schema's bound on list input is refused before anything runs.
        assert body["errors"][0]["extensions"]["code"] == "LIST_TOO_LONG"
        return
    assert answer["__typename"] == "ValidationError"
    assert answer["field"] == field and words in answer["message"]


async def test_funnel_and_cohorts_over_http(staff_gql: GraphQLClient) -> None:
    period = {"from": D1.isoformat(), "to": (WEEK_END - timedelta(days=1)).isoformat()}
    funnel = (await staff_gql(FUNNEL, {"input": period}))["shoppingFunnel"]
    assert funnel["visitors"] == 9
    assert [(s["step"], s["visitors"]) for s in funnel["steps"]] == [
        ("VIEW", 8),
        ("ADD_TO_CART", 4),
        ("ORDER", 3),
        ("PAID", 2),
    ]
    assert funnel["steps"][1]["stepConversionRate"] == 0.5
    assert funnel["overallConversionRate"] == 0.25
    cohorts = (await staff_gql(COHORTS, {"input": {"fromMonth": "2026-02-10", "months": 2}}))[
        "cohortRetention"
    ]
    # February: d (first purchase March 1) is March's; a and c are March's too (D1, D2).
    assert cohorts["fromMonth"] == "2026-02-01"
    assert cohorts["cohorts"] == [
        {"month": "2026-02-01", "size": 0,
         "retention": [{"offset": 1, "month": "2026-03-01", "customers": 0, "share": None}]},
        {"month": "2026-03-01", "size": 3, "retention": []},
    ]  # fmt: skip
    bad = (await staff_gql(COHORTS, {"input": {"fromMonth": "2026-02-01", "months": 0}}))[
        "cohortRetention"
    ]
    assert (bad["__typename"], bad["field"]) == ("ValidationError", "months")


async def test_customers_and_support_staff_see_no_kpis(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    support = await make_staff(session, role=StaffRole.SUPPORT)
    period = {"from": "2026-03-01", "to": "2026-03-02"}
    for who in (customer, support, None):
        client = gql.as_(token_for(settings, who) if who is not None else None)
        for query, variables in (
            (SHOP_KPIS, {"input": period}),
            (FUNNEL, {"input": period}),
            (COHORTS, {"input": {"fromMonth": "2026-03-01"}}),
        ):
            body = await client.execute(query, variables)
            assert body["data"] is None
            codes = {e["extensions"]["code"] for e in body["errors"]}
            assert codes <= {"FORBIDDEN", "UNAUTHENTICATED"} and codes, body
