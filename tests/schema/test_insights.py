"""Customer insights over HTTP: what staff with insights.read see (Customer.rfm and segment,
the segment filter, customerSegments with movement), what nobody else sees (a customer,
their own segment included; support staff), and rebuildCustomerInsights (insights.manage)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from strawberry import relay

from server.config import Settings
from server.db import mark_write
from server.models import CustomerSegmentChange, OrderStatus, StaffRole, utcnow
from server.services import rfm
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.insights import AS_OF, buy, small_shop
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
