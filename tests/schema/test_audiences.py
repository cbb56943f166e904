"""Audiences over HTTP, on SQLite and PostgreSQL: staff define, preview, change and delete them
(typed errors that change nothing), read their members and stored memberships, export them
(audited); who may do what; and a page of members costs the same statements whatever its
size, for one audience or many. The shop is tests/support/audiences.py; the rules here do not
depend on the day the tests run (tags, tiers, regions, registration)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from strawberry import relay

from server.config import Settings
from server.models import Audience, AuditLogEntry, StaffRole, StaffUser
from server.permissions import INSIGHTS_READ, RoleMap
from server.services import apikeys, audience_export
from tests.support.accounts import token_for
from tests.support.audiences import AudienceShop, audience_shop
from tests.support.graphql import GraphQLClient
from tests.support.statements import counting


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


VIP = {"tags": {"match": "ANY", "tags": ["vip"]}}

AUDIENCE = """id key name description rule count membershipCount computedAt
  members(first: 10) { totalCount nodes { email } }
  changes(first: 10) { totalCount nodes { kind customer { email } } }"""
CREATE = f"""mutation($input: CreateAudienceInput!) {{ createAudience(input: $input) {{
  __typename
  ... on CreateAudienceSuccess {{ audience {{ {AUDIENCE} }} }}
  ... on InvalidAudienceRule {{ code path field message }}
  ... on Error {{ code field message }} }} }}"""
UPDATE = f"""mutation($input: UpdateAudienceInput!) {{ updateAudience(input: $input) {{
  __typename
  ... on UpdateAudienceSuccess {{ audience {{ {AUDIENCE} }} }}
  ... on InvalidAudienceRule {{ code path field }}
  ... on Error {{ code field }} }} }}"""
DELETE = """mutation($key: String!) { deleteAudience(input: {key: $key}) {
  __typename ... on DeleteAudienceSuccess { key deletedId } ... on Error { code field } } }"""
PREVIEW = """query($rule: AudienceRuleInput!, $first: Int! = 10) {
  previewAudience(rule: $rule, first: $first) {
    __typename
    ... on AudiencePreview { count members { email } }
    ... on InvalidAudienceRule { code path field }
    ... on Error { code field } } }"""
EXPORT = """mutation($key: String!) { exportAudience(input: {key: $key}) {
  __typename
  ... on ExportAudienceSuccess { filename contentType rows csv audience { key } }
  ... on Error { code field message } } }"""


async def staff_user(session: AsyncSession, role: StaffRole) -> StaffUser:
    """A staff user with ``role`` who never signs in with a password (none is hashed: that
    takes a good part of a second)."""
    staff = StaffUser(
        email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@example.cn",
        password_hash="!",
        role=role,
    )
    session.add(staff)
    await session.commit()
    return staff


async def staff_client(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, role: StaffRole
) -> GraphQLClient:
    return gql.as_(token_for(settings, await staff_user(session, role)))


def emails(shop: AudienceShop, names: str) -> list[str]:
    return [shop.customers[n].email for n in names]


async def audiences_in_db(session: AsyncSession) -> int:
    await session.commit()
    return int(await session.scalar(select(func.count()).select_from(Audience)) or 0)


async def test_staff_define_preview_change_and_delete_audiences(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await audience_shop(session)
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)

    # A preview counts an unsaved rule and shows the first members, in id order.
    shown = (await admin(PREVIEW, {"rule": VIP}))["previewAudience"]
    assert shown == {
        "__typename": "AudiencePreview",
        "count": 2,
        "members": [{"email": e} for e in emails(shop, "ab")],
    }
    one = await admin(PREVIEW, {"rule": {"tier": {"in": ["GOLD"]}}, "first": 1})
    assert one["previewAudience"]["count"] == 2 and len(one["previewAudience"]["members"]) == 1
    bad = {"all": [VIP, {"rfm": {"measure": "R_SCORE", "op": "AT_LEAST", "value": 9}}]}
    refused = (await admin(PREVIEW, {"rule": bad}))["previewAudience"]
    assert refused == {
        "__typename": "InvalidAudienceRule",
        "code": "OUT_OF_RANGE",
        "path": "all[1].rfm.value",
        "field": "rule.all[1].rfm.value",
    }
    too_many = (await admin(PREVIEW, {"rule": VIP, "first": 101}))["previewAudience"]
    assert too_many == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "first",
    }
    # Two members in one node: refused by GraphQL itself (AudienceRuleInput is @oneOf).
    both = await admin.execute(PREVIEW, {"rule": {**VIP, "tier": {"in": ["GOLD"]}}})
    assert both.get("data") is None and "exactly one key" in both["errors"][0]["message"]

    # Created: its memberships are computed at once.
    made = (
        await admin(
            CREATE,
            {
                "input": {
                    "key": " VIP ",
                    "name": "大客户",
                    "description": "打了 vip 标签",
                    "rule": VIP,
                }
            },
        )
    )["createAudience"]
    assert made["__typename"] == "CreateAudienceSuccess"
    audience = made["audience"]
    assert (audience["key"], audience["name"], audience["rule"]) == ("vip", "大客户", VIP)
    assert (audience["count"], audience["membershipCount"]) == (2, 2)
    assert audience["computedAt"] is not None
    assert audience["members"] == {
        "totalCount": 2,
        "nodes": [{"email": e} for e in emails(shop, "ab")],
    }
    assert sorted(n["customer"]["email"] for n in audience["changes"]["nodes"]) == sorted(
        emails(shop, "ab")
    )
    assert {n["kind"] for n in audience["changes"]["nodes"]} == {"JOINED"}

    # Bad input: a typed error, and nothing written.
    for input_, expected in [
        ({"key": "vip", "name": "again", "rule": VIP}, ("ConflictError", "CONFLICT", "key")),
        (
            {"key": "x y", "name": "空格", "rule": VIP},
            ("ValidationError", "VALIDATION_FAILED", "key"),
        ),
        (
            {"key": "nope", "name": "坏", "rule": {"not": {"noOrder": {"days": 0}}}},
            ("InvalidAudienceRule", "OUT_OF_RANGE", "rule.not.noOrder.days"),
        ),
        (
            {
                "key": "nope",
                "name": "坏",
                "rule": {
                    "behaviour": {"event": "VIEW", "categoryId": gid("Product", 1), "days": 9}
                },
            },
            ("InvalidAudienceRule", "UNKNOWN_CATEGORY", "rule.behaviour.categoryId"),
        ),
    ]:
        got = (await admin(CREATE, {"input": input_}))["createAudience"]
        assert (got["__typename"], got["code"], got["field"]) == expected, input_
    assert await audiences_in_db(session) == 1

    # The rule shows ids as global ids: it can be sent back as it is.
    viewed = {
        "all": [
            {
                "behaviour": {
                    "event": "VIEW",
                    "categoryId": gid("Category", shop.digital.id),
                    "atLeast": 2,
                    "days": 30,
                }
            },
            {"not": {"registered": {"op": "BEFORE", "at": "2026-01-01T00:00:00+00:00"}}},
        ]
    }
    second = await admin(CREATE, {"input": {"key": "viewers", "name": "看过数码", "rule": viewed}})
    rule = second["createAudience"]["audience"]["rule"]
    assert rule == viewed
    again = (await admin(UPDATE, {"input": {"key": "viewers", "rule": rule}}))["updateAudience"]
    assert again["__typename"] == "UpdateAudienceSuccess" and again["audience"]["rule"] == viewed

    # A new rule: b joins, a leaves (the changes, newest first, tell so).
    changed = (
        await admin(
            UPDATE,
            {
                "input": {
                    "key": "vip",
                    "name": "银卡",
                    "rule": {"tier": {"in": ["SILVER", "PLATINUM"]}},
                }
            },
        )
    )["updateAudience"]["audience"]
    assert (changed["name"], changed["description"], changed["membershipCount"]) == (
        "银卡",
        "打了 vip 标签",
        2,
    )
    assert changed["members"]["nodes"] == [{"email": e} for e in emails(shop, "bf")]
    moves = [(n["kind"], n["customer"]["email"]) for n in changed["changes"]["nodes"]]
    assert changed["changes"]["totalCount"] == 4
    assert sorted(moves[:2]) == sorted(
        [("JOINED", shop.customers["f"].email), ("LEFT", shop.customers["a"].email)]
    )
    missing = (await admin(UPDATE, {"input": {"key": "nobody", "name": "x"}}))["updateAudience"]
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "key")

    # Read back: the list by key, one by key, a node by id; the recomputation reports them.
    listed = await admin("{ audiences(first: 10) { totalCount nodes { key } } }")
    assert listed["audiences"] == {"totalCount": 2, "nodes": [{"key": "viewers"}, {"key": "vip"}]}
    found = await admin('{ audience(key: "vip") { id } none: audience(key: "none") { id } }')
    assert found["none"] is None
    node = await admin(
        "query($id: ID!) { node(id: $id) { ... on Audience { key } } }",
        {"id": found["audience"]["id"]},
    )
    assert node["node"] == {"key": "vip"}
    rebuilt = await admin(
        "mutation { rebuildCustomerInsights { ... on RebuildCustomerInsightsSuccess { "
        "audiences { audiences members joined left } } } }"
    )
    summary = rebuilt["rebuildCustomerInsights"]["audiences"]
    assert (summary["audiences"], summary["joined"], summary["left"]) == (2, 0, 0)

    # Deleted, with its memberships; a second delete finds nothing.
    gone = (await admin(DELETE, {"key": "vip"}))["deleteAudience"]
    assert gone == {
        "__typename": "DeleteAudienceSuccess",
        "key": "vip",
        "deletedId": found["audience"]["id"],
    }
    assert (await admin(DELETE, {"key": "vip"}))["deleteAudience"]["__typename"] == "NotFoundError"
    assert await audiences_in_db(session) == 1


async def test_lifetime_value_and_churn_risk_rules_through_the_typed_input(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await audience_shop(session)
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)

    async def members(rule: dict[str, Any]) -> str:
        shown = (await admin(PREVIEW, {"rule": rule}))["previewAudience"]
        assert shown["__typename"] == "AudiencePreview", shown
        by_email = {c.email: n for n, c in shop.customers.items()}
        names = "".join(by_email[m["email"]] for m in shown["members"])
        assert shown["count"] == len(names)
        return names

    valuable = {
        "clv": {
            "op": "AT_LEAST",
            "value": "1000",
            "probabilityAlive": {"op": "AT_LEAST", "value": 0.9},
        }
    }
    assert await members(valuable) == "a"
    overdue = {"churnRisk": {"op": "AT_LEAST", "value": 0, "hasReason": "PURCHASE_OVERDUE"}}
    assert await members(overdue) == "f"
    # c has no value and d's figures are null: `not` holds for both.
    assert await members({"not": overdue}) == "abcd"
    at_risk = {
        "all": [
            {"clv": {"op": "BETWEEN", "value": "-100", "to": "10000.00"}},
            {"churnRisk": {"op": "AT_LEAST", "value": 0.5}},
        ]
    }
    assert await members(at_risk) == "bf"

    # Bad values: typed errors naming the node; an unknown reason code is GraphQL's own error.
    for rule, path in [
        ({"churnRisk": {"op": "AT_LEAST", "value": 1.5}}, "churnRisk.value"),
        (
            {
                "not": {
                    "clv": {
                        "op": "AT_LEAST",
                        "value": "0",
                        "probabilityAlive": {"op": "AT_MOST", "value": -1},
                    }
                }
            },
            "not.clv.probabilityAlive.value",
        ),
        ({"clv": {"op": "AT_LEAST", "value": "0.001"}}, "clv.value"),
    ]:
        refused = (await admin(PREVIEW, {"rule": rule}))["previewAudience"]
        assert (refused["__typename"], refused["path"], refused["field"]) == (
            "InvalidAudienceRule",
            path,
            "rule." + path,
        )
    unknown = {"churnRisk": {"op": "AT_LEAST", "value": 0.5, "hasReason": "SLEEPY"}}
    assert (await admin.execute(PREVIEW, {"rule": unknown})).get("data") is None

    # Saved, read back in its normal form, and sent back as it is.
    made = (
        await admin(
            CREATE, {"input": {"key": "at-risk", "name": "高价值流失风险", "rule": at_risk}}
        )
    )["createAudience"]["audience"]
    stored = {
        "all": [
            {"clv": {"op": "BETWEEN", "value": "-100.00", "to": "10000.00"}},
            {"churnRisk": {"op": "AT_LEAST", "value": 0.5}},
        ]
    }
    assert (made["rule"], made["count"], made["membershipCount"]) == (stored, 2, 2)
    again = (await admin(UPDATE, {"input": {"key": "at-risk", "rule": made["rule"]}}))[
        "updateAudience"
    ]
    assert (again["__typename"], again["audience"]["rule"]) == ("UpdateAudienceSuccess", stored)


async def test_who_may_read_change_and_export_audiences(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await audience_shop(session)
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)
    await admin(CREATE, {"input": {"key": "vip", "name": "大客户", "rule": VIP}})
    read = '{ audience(key: "vip") { key count membershipCount } }'
    members = '{ audience(key: "vip") { members(first: 5) { nodes { email } } } }'

    # An analyst (insights.read, customers.read) reads, previews and exports; changes nothing.
    analyst = await staff_client(gql, session, settings, StaffRole.ANALYST)
    assert (await analyst(read))["audience"] == {"key": "vip", "count": 2, "membershipCount": 2}
    assert len((await analyst(members))["audience"]["members"]["nodes"]) == 2
    assert (await analyst(PREVIEW, {"rule": VIP}))["previewAudience"]["count"] == 2
    assert (await analyst(EXPORT, {"key": "vip"}))["exportAudience"]["rows"] == 2
    for mutation in (
        'mutation { updateAudience(input: {key: "vip", name: "改名"}) { __typename } }',
        'mutation { deleteAudience(input: {key: "vip"}) { __typename } }',
        'mutation { createAudience(input: {key: "x", name: "x", rule: {tier: {in: [GOLD]}}}) { __typename } }',
    ):
        assert codes(await analyst.execute(mutation)) == ["FORBIDDEN"], mutation

    # An app with insights.read alone sees the audience and its counts, not who is in it.
    key = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="crm", scopes=[INSIGHTS_READ], created_by="test"
    )
    await session.commit()
    app = gql.as_(key.secret)
    assert (await app(read))["audience"]["count"] == 2
    moves = await app(
        '{ audience(key: "vip") { changes(first: 5) { nodes { kind customer { id } } } } }'
    )
    assert moves["audience"]["changes"]["nodes"] == [{"kind": "JOINED", "customer": None}] * 2
    assert codes(await app.execute(members)) == ["FORBIDDEN"]
    assert codes(await app.execute(EXPORT, {"key": "vip"})) == ["FORBIDDEN"]
    hidden = await app(PREVIEW.replace("members { email }", ""), {"rule": VIP})
    assert hidden["previewAudience"]["count"] == 2
    assert codes(await app.execute(PREVIEW, {"rule": VIP})) == ["FORBIDDEN"]
    # customers.read alone (support staff): no audience at all.
    support = await staff_client(gql, session, settings, StaffRole.SUPPORT)
    catalog = await staff_client(gql, session, settings, StaffRole.CATALOG)
    customer = gql.as_(token_for(settings, shop.customers["a"]))
    for who in (support, catalog, customer, gql):
        for refused in (read, "{ audiences(first: 5) { totalCount } }"):
            assert codes(await who.execute(refused)) == ["FORBIDDEN"], refused
        assert codes(await who.execute(EXPORT, {"key": "vip"})) == ["FORBIDDEN"]
    # An audience is no node for them either: answered like one that does not exist.
    audience_id = (await admin('{ audience(key: "vip") { id } }'))["audience"]["id"]
    for who in (support, customer):
        body = await who.execute("query($id: ID!) { node(id: $id) { id } }", {"id": audience_id})
        assert body["data"]["node"] is None


async def test_an_export_is_csv_audited_and_bounded(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await audience_shop(session)
    # A name a spreadsheet would run as a formula is written inert.
    shop.customers["f"].last_name = "=HYPERLINK(1)"
    await session.commit()
    analyst_user = await staff_user(session, StaffRole.ANALYST)
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)
    analyst = gql.as_(token_for(settings, analyst_user))
    rule = {"any": [VIP, {"region": {"in": ["华北"]}}]}
    await admin(CREATE, {"input": {"key": "reach", "name": "触达", "rule": rule}})

    done = (await analyst(EXPORT, {"key": "reach"}))["exportAudience"]
    assert (done["filename"], done["contentType"], done["rows"]) == (
        "audience-reach.csv",
        "text/csv; charset=utf-8",
        3,
    )
    rows = list(csv.reader(io.StringIO(done["csv"])))
    a, b, f = (shop.customers[n] for n in "abf")
    assert rows == [
        ["customer_id", "email", "name", "region"],
        [str(a.id), a.email, "王小a", "华东"],
        [str(b.id), b.email, "王小b", "华南"],
        [str(f.id), f.email, "'=HYPERLINK(1)小f", "华北"],
    ]
    await session.commit()
    entries = (
        (
            await session.execute(
                select(AuditLogEntry).where(AuditLogEntry.mutation == "exportAudience")
            )
        )
        .scalars()
        .all()
    )
    assert [(e.actor, e.input, e.result) for e in entries] == [
        (f"staff:{analyst_user.id}", {"input": {"key": "reach"}}, "ExportAudienceSuccess")
    ]

    # Larger than an answer holds: refused, and pointed to the command line.
    monkeypatch.setattr(audience_export, "GRAPHQL_MAX_ROWS", 2)
    refused = (await analyst(EXPORT, {"key": "reach"}))["exportAudience"]
    assert (refused["__typename"], refused["field"]) == ("ValidationError", "key")
    assert "shopgraph insights export-audience reach" in refused["message"]
    unknown = (await analyst(EXPORT, {"key": "nobody"}))["exportAudience"]
    assert unknown["__typename"] == "NotFoundError"


MEMBERS_PAGE = """query($first: Int!) { audience(key: "vip") {
  count membershipCount
  members(first: $first) { totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { email tags rfm { segment } } } } } }"""
MANY_AUDIENCES = """query($first: Int!) { audiences(first: 20) { nodes {
  key count membershipCount
  members(first: $first) { totalCount nodes { email } }
  changes(first: $first) { nodes { kind customer { email } } } } } }"""


async def test_a_page_of_members_costs_the_same_statements_whatever_its_size(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    shop = await audience_shop(session)
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)
    await admin(
        CREATE,
        {
            "input": {
                "key": "vip",
                "name": "大客户",
                "rule": {"any": [VIP, {"tier": {"in": ["GOLD", "PLATINUM"]}}]},
            }
        },
    )

    async def statements(query: str, first: int) -> tuple[int, Any]:
        with counting(app) as seen:
            data = await admin(query, {"first": first})
        return len(seen), data

    one, small = await statements(MEMBERS_PAGE, 1)
    four, large = await statements(MEMBERS_PAGE, 4)
    assert one == four
    assert [e["node"]["email"] for e in large["audience"]["members"]["edges"]] == emails(
        shop, "abdf"
    )
    assert small["audience"]["members"]["pageInfo"]["hasNextPage"] is True
    # The next page after the first member: the three others.
    cursor = small["audience"]["members"]["pageInfo"]["endCursor"]
    after = await admin(
        'query($after: String!) { audience(key: "vip") { members(first: 10, after: $after) { nodes { email } } } }',
        {"after": cursor},
    )
    assert [n["email"] for n in after["audience"]["members"]["nodes"]] == emails(shop, "bdf")
    back = await admin(
        '{ audience(key: "vip") { members(last: 2) { nodes { email } pageInfo { hasPreviousPage } } } }'
    )
    assert back["audience"]["members"] == {
        "nodes": [{"email": e} for e in emails(shop, "df")],
        "pageInfo": {"hasPreviousPage": True},
    }

    # Many audiences with their members and changes: as many statements as one.
    few, _ = await statements(MANY_AUDIENCES, 2)
    for key, rule in (
        ("gold", {"tier": {"in": ["GOLD"]}}),
        ("east", {"region": {"in": ["华东", "华南"]}}),
    ):
        await admin(CREATE, {"input": {"key": key, "name": key, "rule": rule}})
    many, listed = await statements(MANY_AUDIENCES, 2)
    assert few == many
    by_key = {n["key"]: n for n in listed["audiences"]["nodes"]}
    assert {
        k: (n["count"], n["membershipCount"], n["members"]["totalCount"]) for k, n in by_key.items()
    } == {
        "east": (3, 3, 3),
        "gold": (2, 2, 2),
        "vip": (4, 4, 4),
    }
    assert [n["email"] for n in by_key["east"]["members"]["nodes"]] == emails(shop, "ab")
    assert [n["email"] for n in by_key["gold"]["members"]["nodes"]] == emails(shop, "ad")
