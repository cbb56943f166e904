"""Customer insights over HTTP: what staff with insights.read see (Customer.rfm and segment,
the segment filter, customerSegments with movement and average lifetime value, Customer.clv
and churnRisk, clvModel), what nobody else sees (a customer, their own figures included;
support staff), and rebuildCustomerInsights (insights.manage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from strawberry import relay

from server.config import Settings
from server.db import mark_write
from server.graphql.money import to_decimal
from server.models import (
    Customer,
    CustomerRfm,
    CustomerSegment,
    CustomerSegmentChange,
    CustomerValue,
    OrderStatus,
    StaffRole,
    utcnow,
)
from server.services import rfm
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.clv import simulate
from tests.support.graphql import GraphQLClient
from tests.support.insights import AS_OF, buy, simulated_shop, small_shop
from tests.support.statements import counting


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


SEGMENTS = """
query($since: DateTime) {
  customerSegments(since: $since) {
    segment label count share revenue { amount currency } averageMonetary { amount }
    movedIn movedOut
  }
}
"""

BY_SEGMENT = """
query($segment: CustomerSegment!) {
  customers(first: 10, filter: {segment: $segment}, sort: {field: EMAIL, direction: ASC}) {
    totalCount
    nodes {
      firstName segment
      rfm { recency frequency monetary { amount currency } rScore fScore mScore
            segment segmentLabel lastPurchaseAt computedAt }
    }
  }
}
"""


async def test_an_analyst_sees_the_small_shops_segments_and_their_movement(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    shop = await small_shop(session)
    await mark_write(session)
    await rfm.rebuild(session, currency="CNY", as_of=AS_OF)
    await session.commit()
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))

    listed = (await analyst(BY_SEGMENT, {"segment": "GENERAL_WIN_BACK"}))["customers"]
    assert listed["totalCount"] == 2
    d, e = listed["nodes"]
    assert (d["firstName"], d["segment"], e["firstName"]) == ("d", "GENERAL_WIN_BACK", "e")
    assert d["rfm"] == {
        "recency": 171,
        "frequency": 1,
        "monetary": {"amount": "5.00", "currency": "CNY"},
        "rScore": 1,
        "fScore": 2,
        "mScore": 1,
        "segment": "GENERAL_WIN_BACK",
        "segmentLabel": "一般挽留",
        "lastPurchaseAt": "2026-01-10T10:00:00+00:00",
        "computedAt": "2026-06-30T12:00:00+00:00",
    }
    nobody = await analyst(BY_SEGMENT, {"segment": "GENERAL_VALUE"})
    assert nobody["customers"] == {"totalCount": 0, "nodes": []}
    # Every customer's figures in one statement (a DataLoader): two on the page cost what one
    # does.
    with counting(app) as two:
        await analyst(BY_SEGMENT, {"segment": "GENERAL_WIN_BACK"})
    with counting(app) as one:
        await analyst(BY_SEGMENT, {"segment": "IMPORTANT_VALUE"})
    # The token's revocation check, the page, its count, the figures.
    assert len(two) == len(one) == 4
    assert "customer_rfm" in two[-1]
    query = "query($id: ID!) { node(id: $id) { ... on Customer { segment rfm { rScore } } } }"
    a = await analyst(query, {"id": gid("Customer", shop.a.id)})
    assert a["node"] == {"segment": "IMPORTANT_VALUE", "rfm": {"rScore": 5}}
    # No figures for an erased customer's purchases, nor for a customer who never bought.
    newcomer = await make_customer(session)
    for customer in (shop.erased, newcomer):
        node = await analyst(query, {"id": gid("Customer", customer.id)})
        assert node["node"] == {"segment": None, "rfm": None}

    summaries = (await analyst(SEGMENTS, {"since": AS_OF.isoformat()}))["customerSegments"]
    assert [s["segment"] for s in summaries] == [
        "IMPORTANT_VALUE",
        "IMPORTANT_DEVELOP",
        "IMPORTANT_KEEP",
        "IMPORTANT_WIN_BACK",
        "GENERAL_VALUE",
        "GENERAL_DEVELOP",
        "GENERAL_KEEP",
        "GENERAL_WIN_BACK",
    ]
    by = {s["segment"]: s for s in summaries}
    assert by["GENERAL_WIN_BACK"] == {
        "segment": "GENERAL_WIN_BACK",
        "label": "一般挽留",
        "count": 2,
        "share": 2 / 6,
        "revenue": {"amount": "10.00", "currency": "CNY"},
        "averageMonetary": {"amount": "5.00"},
        "movedIn": 2,  # first purchases, recorded as of AS_OF
        "movedOut": 0,
    }
    assert (by["IMPORTANT_VALUE"]["label"], by["IMPORTANT_VALUE"]["revenue"]["amount"]) == (
        "重要价值",
        "60.00",
    )
    assert by["GENERAL_VALUE"]["count"] == 0 and by["GENERAL_VALUE"]["averageMonetary"] is None
    assert sum(s["count"] for s in summaries) == 6
    # Nothing moved after AS_OF.
    later = (AS_OF + timedelta(seconds=1)).isoformat()
    assert {
        s["movedIn"] for s in (await analyst(SEGMENTS, {"since": later}))["customerSegments"]
    } == {0}

    refused = await analyst.execute("mutation { rebuildCustomerInsights { __typename } }")
    assert codes(refused) == ["FORBIDDEN"]


async def test_customers_and_support_staff_never_see_a_segment(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    now = utcnow()
    buyer = await make_customer(session, email="vip@example.cn", password=None)
    other = await make_customer(session, password=None)
    await buy(session, buyer, 880000, now - timedelta(days=2))
    await buy(session, buyer, 120000, now - timedelta(days=40), status=OrderStatus.SHIPPED)
    await buy(session, other, 9900, now - timedelta(days=200))

    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    rebuild = """mutation($input: RebuildCustomerInsightsInput) {
      rebuildCustomerInsights(input: $input) {
        __typename ... on RebuildCustomerInsightsSuccess {
          rfm { skipped customers written removed segmentChanges asOf } } } }"""
    done = (await admin(rebuild))["rebuildCustomerInsights"]["rfm"]
    assert {k: v for k, v in done.items() if k != "asOf"} == {
        "skipped": False,
        "customers": 2,
        "written": 2,
        "removed": 0,
        "segmentChanges": 2,
    }
    # Unchanged data on the same day: with force off, nothing is done.
    again = (await admin(rebuild, {"input": {"force": False}}))["rebuildCustomerInsights"]
    assert again["rfm"]["skipped"] is True and again["rfm"]["customers"] == 2
    await session.commit()
    history = await session.scalar(select(func.count()).select_from(CustomerSegmentChange))
    await session.commit()  # end the read: the server writes meanwhile
    assert history == 2
    # buyer: R 4, F 4, M 4 (above the averages of 3); other: 2, 2, 2.
    vip = "query($id: ID!) { node(id: $id) { ... on Customer { email segment rfm { segment } } } }"
    seen = await admin(vip, {"id": gid("Customer", buyer.id)})
    assert seen["node"] == {
        "email": "vip@example.cn",
        "segment": "IMPORTANT_VALUE",
        "rfm": {"segment": "IMPORTANT_VALUE"},
    }

    # The customer themself: not through me, node, nor their profile's payload.
    customer = gql.as_(token_for(settings, buyer))
    for query, variables in (
        ("{ me { email segment rfm { segment } } }", None),
        (vip, {"id": gid("Customer", buyer.id)}),
        (
            'mutation { updateProfile(input: {firstName: "小王"}) { '
            "... on UpdateProfileSuccess { customer { email segment rfm { rScore } } } } }",
            None,
        ),
    ):
        body = await customer.execute(query, variables)
        assert codes(body) == ["FORBIDDEN", "FORBIDDEN"], query
        shown = next(iter(body["data"].values()))
        customer_seen = shown.get("customer", shown)
        assert customer_seen == {"email": "vip@example.cn", "segment": None, "rfm": None}
    for refused in (
        "{ customerSegments { count } }",
        "mutation { rebuildCustomerInsights { __typename } }",
    ):
        assert codes(await customer.execute(refused)) == ["FORBIDDEN"], refused
        assert codes(await gql.execute(refused)) == ["FORBIDDEN"], refused

    # Support staff read customers, not their segments.
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    body = await support.execute(vip, {"id": gid("Customer", buyer.id)})
    assert codes(body) == ["FORBIDDEN", "FORBIDDEN"]
    assert body["data"]["node"] == {"email": "vip@example.cn", "segment": None, "rfm": None}
    listed = await support("{ customers(first: 10) { totalCount } }")
    assert listed["customers"]["totalCount"] == 2
    filtered = await support.execute(
        "{ customers(first: 10, filter: {segment: IMPORTANT_VALUE}) { nodes { email } } }"
    )
    assert codes(filtered) == ["FORBIDDEN"] and filtered["data"] is None
    assert codes(await support.execute("{ customerSegments { count } }")) == ["FORBIDDEN"]


CLV_PAGE = """
query($first: Int!) {
  customers(first: $first, sort: {field: EMAIL, direction: ASC}) {
    nodes {
      id segment
      clv { value { amount currency } expectedPurchases probabilityAlive
            expectedSpend { amount } marginRate horizonDays reason computedAt }
      churnRisk { probability reasons { code message value } computedAt }
    }
  }
}
"""

CLV_MODEL = """
{ clvModel { r alpha a b p q v logLikelihood spendLogLikelihood customers repeatCustomers
             calibrationEnd unit converged reason horizonDays fittedAt } }
"""


async def test_staff_see_lifetime_value_and_churn_risk_and_customers_never_do(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    cohort = simulate(
        200, r=0.5, alpha=6.0, a=0.8, b=2.5, p=6.0, q=4.0, v=15.0, horizon=39.0, seed=3
    )
    shop = await simulated_shop(session, cohort, calibration_weeks=39.0, horizon_weeks=0.0)
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    rebuild = """mutation { rebuildCustomerInsights { ... on RebuildCustomerInsightsSuccess {
      rfm { customers } clv { skipped customers written removed fitted reason asOf } } } }"""
    done = (await admin(rebuild))["rebuildCustomerInsights"]
    assert done["rfm"]["customers"] == 200
    assert {k: v for k, v in done["clv"].items() if k != "asOf"} == {
        "skipped": False,
        "customers": 200,
        "written": 200,
        "removed": 0,
        "fitted": True,
        "reason": None,
    }
    await session.commit()
    stored = {
        row.customer_id: row
        for row in (await session.execute(select(CustomerValue))).scalars().all()
    }
    segments = {
        row.customer_id: row.segment
        for row in (await session.execute(select(CustomerRfm))).scalars().all()
    }
    await session.commit()  # end the read: the server writes meanwhile

    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    page = (await analyst(CLV_PAGE, {"first": 20}))["customers"]["nodes"]
    assert len(page) == 20
    for node in page:
        row = stored[int(relay.GlobalID.from_id(node["id"]).node_id)]
        assert row.clv_amount is not None and row.expected_spend is not None
        assert node["clv"] == {
            "value": {"amount": str(to_decimal(row.clv_amount, "CNY")), "currency": "CNY"},
            "expectedPurchases": row.expected_purchases,
            "probabilityAlive": row.p_alive,
            "expectedSpend": {"amount": str(to_decimal(row.expected_spend, "CNY"))},
            "marginRate": 0.3,
            "horizonDays": 365,
            "reason": None,
            "computedAt": row.computed_at.isoformat(),
        }
        assert node["churnRisk"]["probability"] == row.churn_probability
        assert [r["code"] for r in node["churnRisk"]["reasons"]] == [
            r["code"] for r in row.churn_reasons
        ]
    # A page of customers with their values, risks and segments costs what one customer does.
    with counting(app) as many:
        await analyst(CLV_PAGE, {"first": 20})
    with counting(app) as one:
        await analyst(CLV_PAGE, {"first": 1})
    assert len(many) == len(one)
    assert sum("customer_value" in s for s in many) == 1

    model = (await analyst(CLV_MODEL))["clvModel"]
    assert (model["customers"], model["unit"], model["converged"], model["reason"]) == (
        200,
        "day",
        True,
        None,
    )
    # The recomputation ran now: its day ends the calibration.
    as_of = datetime.fromisoformat(done["clv"]["asOf"])
    assert model["calibrationEnd"] == as_of.astimezone(UTC).date().isoformat()
    assert all(model[k] > 0 for k in ("r", "alpha", "a", "b", "p", "q", "v"))

    # The average lifetime value of each segment's customers.
    summaries = (await analyst("{ customerSegments { segment count averageClv { amount } } }"))[
        "customerSegments"
    ]
    for summary in summaries:
        values = [
            stored[c].clv_amount for c, s in segments.items() if s.value == summary["segment"]
        ]
        if not values:
            assert summary["averageClv"] is None
            continue
        total = sum(v for v in values if v is not None)
        average = (2 * total + len(values)) // (2 * len(values))
        assert summary["averageClv"] == {"amount": str(to_decimal(average, "CNY"))}
    assert sum(s["count"] for s in summaries) == 200

    # A customer never sees their own value or risk: not through me, node, nor a payload.
    customer_id = shop.customer_ids[0]
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    me = gql.as_(token_for(settings, customer))
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    node = (
        "query($id: ID!) { node(id: $id) { ... on Customer { "
        "email clv { value { amount } } churnRisk { probability } } } }"
    )
    for query, variables in (
        ("{ me { email clv { value { amount } } churnRisk { probability } } }", None),
        (node, {"id": gid("Customer", customer_id)}),
        (
            'mutation { updateProfile(input: {firstName: "小王"}) { '
            "... on UpdateProfileSuccess { customer { email clv { probabilityAlive } "
            "churnRisk { reasons { code } } } } } }",
            None,
        ),
    ):
        body = await me.execute(query, variables)
        assert codes(body) == ["FORBIDDEN", "FORBIDDEN"], query
        shown = next(iter(body["data"].values()))
        seen = shown.get("customer", shown)
        assert seen["clv"] is None and seen["churnRisk"] is None and seen["email"], query
    for client in (me, gql):
        assert codes(await client.execute(CLV_MODEL)) == ["FORBIDDEN"]
    # Support staff serve customers and do not see their value.
    body = await support.execute(node, {"id": gid("Customer", customer_id)})
    assert codes(body) == ["FORBIDDEN", "FORBIDDEN"]
    assert body["data"]["node"]["clv"] is None and body["data"]["node"]["churnRisk"] is None
    assert codes(await support.execute(CLV_MODEL)) == ["FORBIDDEN"]


MOVEMENTS = """
query($input: SegmentMovementsInput!) {
  customerSegmentMovements(input: $input) {
    ... on CustomerSegmentMovements {
      from to granularity total
      buckets { start end moved entered left }
      flows { from to count }
    }
    ... on ValidationError { code field message }
  }
}
"""


def _utc(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


async def test_segment_movements_are_counted_per_bucket_of_shop_days_and_per_pair(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    c1, c2, c3, c4, c5 = [await make_customer(session) for _ in range(5)]
    S = CustomerSegment
    # (customer, from, to, at in UTC): a shop day starts at 16:00 UTC the day before (UTC+8).
    changes = [
        (c1, None, S.IMPORTANT_VALUE, _utc("2026-06-01", "15:59:00")),  # shop day 06-01 (Mon)
        (c2, None, S.GENERAL_DEVELOP, _utc("2026-06-01", "16:00:00")),  # shop day 06-02
        (c1, S.IMPORTANT_VALUE, S.IMPORTANT_KEEP, _utc("2026-06-08", "02:00:00")),  # 06-08 (Mon)
        (c2, S.GENERAL_DEVELOP, S.IMPORTANT_DEVELOP, _utc("2026-06-09", "02:00:00")),
        (c3, S.GENERAL_WIN_BACK, None, _utc("2026-06-10", "02:00:00")),
        (c5, None, S.GENERAL_DEVELOP, _utc("2026-06-14", "15:59:59")),  # 06-14, the last day
        (c4, None, S.GENERAL_DEVELOP, _utc("2026-05-31", "15:59:00")),  # 05-31: before
        (c4, S.GENERAL_DEVELOP, S.GENERAL_VALUE, _utc("2026-06-14", "16:00:00")),  # 06-15: after
    ]
    for customer, source, target, at in changes:
        session.add(
            CustomerSegmentChange(
                customer_id=customer.id, from_segment=source, to_segment=target, at=at
            )
        )
    await session.commit()
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))

    async def movements(first: str, last: str, granularity: str) -> dict[str, Any]:
        variables = {"input": {"from": first, "to": last, "granularity": granularity}}
        return (await analyst(MOVEMENTS, variables))["customerSegmentMovements"]

    weeks = await movements("2026-06-01", "2026-06-14", "WEEK")
    assert weeks["buckets"] == [
        {"start": "2026-06-01", "end": "2026-06-08", "moved": 0, "entered": 2, "left": 0},
        {"start": "2026-06-08", "end": "2026-06-15", "moved": 2, "entered": 1, "left": 1},
    ]
    assert weeks["flows"] == [
        {"from": None, "to": "IMPORTANT_VALUE", "count": 1},
        {"from": None, "to": "GENERAL_DEVELOP", "count": 2},
        {"from": "IMPORTANT_VALUE", "to": "IMPORTANT_KEEP", "count": 1},
        {"from": "GENERAL_DEVELOP", "to": "IMPORTANT_DEVELOP", "count": 1},
        {"from": "GENERAL_WIN_BACK", "to": None, "count": 1},
    ]
    assert (weeks["from"], weeks["to"], weeks["granularity"], weeks["total"]) == (
        "2026-06-01",
        "2026-06-14",
        "WEEK",
        6,
    )
    labelled = await analyst(
        "query($input: SegmentMovementsInput!) { customerSegmentMovements(input: $input) {"
        " ... on CustomerSegmentMovements { flows { fromLabel toLabel } } } }",
        {"input": {"from": "2026-06-01", "to": "2026-06-14"}},
    )
    assert [
        (f["fromLabel"], f["toLabel"]) for f in labelled["customerSegmentMovements"]["flows"]
    ] == [
        (None, "重要价值"),
        (None, "一般发展"),
        ("重要价值", "重要保持"),
        ("一般发展", "重要发展"),
        ("一般挽留", None),
    ]
    # Weeks run Monday to Sunday: a period from a Wednesday is cut to it.
    cut = await movements("2026-06-03", "2026-06-09", "WEEK")
    assert [(b["start"], b["end"], b["moved"], b["entered"]) for b in cut["buckets"]] == [
        ("2026-06-03", "2026-06-08", 0, 0),
        ("2026-06-08", "2026-06-10", 2, 0),
    ]
    # Calendar months; a change at 15:59 UTC on 05-31 is on the shop's 05-31.
    months = await movements("2026-05-31", "2026-06-01", "MONTH")
    assert [(b["start"], b["end"], b["entered"]) for b in months["buckets"]] == [
        ("2026-05-31", "2026-06-01", 1),
        ("2026-06-01", "2026-06-02", 1),
    ]
    days = await movements("2026-06-13", "2026-06-15", "DAY")
    assert [(b["start"], b["entered"], b["moved"]) for b in days["buckets"]] == [
        ("2026-06-13", 0, 0),
        ("2026-06-14", 1, 0),
        ("2026-06-15", 0, 1),
    ]
    assert days["flows"] == [
        {"from": None, "to": "GENERAL_DEVELOP", "count": 1},
        {"from": "GENERAL_DEVELOP", "to": "GENERAL_VALUE", "count": 1},
    ]
    nothing = await movements("2025-01-01", "2025-01-31", "MONTH")
    assert nothing["total"] == 0 and nothing["flows"] == []
    assert nothing["buckets"] == [
        {"start": "2025-01-01", "end": "2025-02-01", "moved": 0, "entered": 0, "left": 0}
    ]

    # Refused periods are data, and nothing is read.
    reversed_ = await movements("2026-06-14", "2026-06-01", "DAY")
    assert (reversed_["code"], reversed_["field"]) == ("VALIDATION_FAILED", "to")
    by_day = await movements("2025-01-01", "2026-06-30", "DAY")
    assert (by_day["code"], by_day["field"]) == ("VALIDATION_FAILED", "granularity")
    assert (await movements("2025-01-01", "2026-06-30", "WEEK"))["total"] == 8
    too_long = await movements("2020-01-01", "2026-06-30", "MONTH")
    assert (too_long["code"], too_long["field"]) == ("VALIDATION_FAILED", "to")

    # Staff-only, and insights.read only.
    variables = {"input": {"from": "2026-06-01", "to": "2026-06-14"}}
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    customer = gql.as_(token_for(settings, c1))
    for client in (gql, customer, support):
        assert codes(await client.execute(MOVEMENTS, variables)) == ["FORBIDDEN"]
