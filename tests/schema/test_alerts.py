"""Alerts over HTTP, on SQLite and PostgreSQL: staff define, change and delete rules (typed
errors that change nothing, every call audited), list alerts newest first by page, state and
kind, and acknowledge them (once); who may read and who may change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from strawberry import relay

from server.config import Settings
from server.models import (
    AlertDirection,
    AlertKind,
    AlertRule,
    AuditLogEntry,
    ProductVariant,
    StaffRole,
    StaffUser,
)
from server.permissions import ALERTS_MANAGE, RoleMap
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import PluginRuntime, load_plugins
from server.services import alerts, apikeys
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_customer, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.statements import counting


async def _nothing(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    return [None for _ in buckets]


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    """The built-in plugins and one offering two KPIs."""
    shop = FakePlugin(
        "shop",
        kpis=lambda: [
            Kpi("shop.orders", "Orders", KpiUnit.COUNT, _nothing),
            Kpi("shop.refund_rate", "Refund rate", KpiUnit.RATIO, _nothing),
        ],
    )
    return load_plugins(settings, extra=[shop])


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def staff(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, role: StaffRole
) -> tuple[GraphQLClient, StaffUser]:
    user = StaffUser(
        email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@example.cn",
        password_hash="!",
        role=role,
    )
    session.add(user)
    await session.commit()
    return gql.as_(token_for(settings, user)), user


RULE = "id name kpi kpiLabel kpiUnit granularity condition threshold enabled active createdBy"
CREATE = f"""mutation($input: CreateAlertRuleInput!) {{ createAlertRule(input: $input) {{
  __typename ... on CreateAlertRuleSuccess {{ rule {{ {RULE} }} }}
  ... on Error {{ code field message }} }} }}"""
UPDATE = f"""mutation($input: UpdateAlertRuleInput!) {{ updateAlertRule(input: $input) {{
  __typename ... on UpdateAlertRuleSuccess {{ rule {{ {RULE} }} }}
  ... on Error {{ code field }} }} }}"""
DELETE = """mutation($id: ID!) { deleteAlertRule(input: {id: $id}) {
  __typename ... on DeleteAlertRuleSuccess { deletedId } ... on Error { code field } } }"""
RULES = f"{{ alertRules(first: 10) {{ totalCount nodes {{ {RULE} }} }} }}"
ALERTS = """query($first: Int, $after: String, $filter: AlertFilter) {
  alerts(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id kind state message kpi kpiLabel bucketStart bucketEnd value expected threshold
            score direction badNews acknowledgedBy acknowledgedAt createdAt
            rule { name } product { sku } variant { sku } } } }"""
ACKNOWLEDGE = """mutation($id: ID!) { acknowledgeAlert(input: {alertId: $id}) {
  __typename ... on AcknowledgeAlertSuccess { alert { id state acknowledgedBy acknowledgedAt } }
  ... on Error { code field message } } }"""

BUSY = {
    "name": "订单破百",
    "kpi": "shop.orders",
    "granularity": "DAY",
    "condition": "ABOVE",
    "threshold": 100,
}


async def rules_in_db(session: AsyncSession) -> int:
    await session.commit()
    return int(await session.scalar(select(func.count()).select_from(AlertRule)) or 0)


async def test_staff_define_change_and_delete_rules(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin, user = await staff(gql, session, settings, StaffRole.ADMIN)
    made = (await admin(CREATE, {"input": BUSY}))["createAlertRule"]
    assert made["__typename"] == "CreateAlertRuleSuccess"
    rule = made["rule"]
    assert {k: v for k, v in rule.items() if k != "id"} == {
        "name": "订单破百",
        "kpi": "shop.orders",
        "kpiLabel": "Orders",
        # The unit of an ABOVE/BELOW threshold, for a client to show it.
        "kpiUnit": "COUNT",
        "granularity": "DAY",
        "condition": "ABOVE",
        "threshold": 100.0,
        "enabled": True,
        "active": True,
        "createdBy": f"staff:{user.id}",
    }

    # Refused, typed, and nothing written.
    refusals = [
        ({"kpi": "no_such_kpi"}, "ValidationError", "UNKNOWN_KPI", "kpi"),
        ({"kpi": "shop.refund_rate", "threshold": 5}, "ValidationError", "INVALID_THRESHOLD", "threshold"),
        ({"condition": "FALLS_BY", "threshold": 30}, "ValidationError", "INVALID_THRESHOLD", "threshold"),
        ({"name": " "}, "ValidationError", "VALIDATION_FAILED", "name"),
    ]  # fmt: skip
    for change, typename, code, field in refusals:
        refused = (await admin(CREATE, {"input": BUSY | change}))["createAlertRule"]
        assert (refused["__typename"], refused["code"], refused["field"]) == (
            typename,
            code,
            field,
        ), change
    unknown = (await admin(CREATE, {"input": BUSY | {"kpi": "no_such_kpi"}}))["createAlertRule"]
    assert "shop.orders" in unknown["message"]  # the refusal names what there is
    assert await rules_in_db(session) == 1

    changed = (
        await admin(
            UPDATE,
            {
                "input": {
                    "id": rule["id"],
                    "condition": "RISES_BY",
                    "threshold": 0.5,
                    "enabled": False,
                }
            },
        )
    )["updateAlertRule"]
    assert changed["__typename"] == "UpdateAlertRuleSuccess"
    assert (changed["rule"]["condition"], changed["rule"]["threshold"]) == ("RISES_BY", 0.5)
    assert (changed["rule"]["enabled"], changed["rule"]["active"]) == (False, False)
    bad = (await admin(UPDATE, {"input": {"id": rule["id"], "kpi": "shop.refund_rate",
                                           "condition": "ABOVE", "threshold": 2}}))  # fmt: skip
    assert bad["updateAlertRule"] == {
        "__typename": "ValidationError",
        "code": "INVALID_THRESHOLD",
        "field": "threshold",
    }
    listed = (await admin(RULES))["alertRules"]
    assert listed["totalCount"] == 1
    assert listed["nodes"][0]["kpi"] == "shop.orders"  # the refused change changed nothing

    gone = (await admin(DELETE, {"id": rule["id"]}))["deleteAlertRule"]
    assert gone == {"__typename": "DeleteAlertRuleSuccess", "deletedId": rule["id"]}
    for missing in (rule["id"], "not-an-id", gid("Alert", 1)):
        again = (await admin(DELETE, {"id": missing}))["deleteAlertRule"]
        assert again == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "id"}
    assert (await admin(UPDATE, {"input": {"id": rule["id"], "enabled": True}}))[
        "updateAlertRule"
    ] == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "id"}
    assert await rules_in_db(session) == 0

    # Every call audited, under the caller, with its outcome.
    entries = (
        await session.execute(
            select(AuditLogEntry.mutation, AuditLogEntry.result, AuditLogEntry.actor).order_by(
                AuditLogEntry.id
            )
        )
    ).all()
    assert [(m, r) for m, r, _ in entries] == [
        ("createAlertRule", "CreateAlertRuleSuccess"),
        ("createAlertRule", "ValidationError:UNKNOWN_KPI"),
        ("createAlertRule", "ValidationError:INVALID_THRESHOLD"),
        ("createAlertRule", "ValidationError:INVALID_THRESHOLD"),
        ("createAlertRule", "ValidationError:VALIDATION_FAILED"),
        ("createAlertRule", "ValidationError:UNKNOWN_KPI"),
        ("updateAlertRule", "UpdateAlertRuleSuccess"),
        ("updateAlertRule", "ValidationError:INVALID_THRESHOLD"),
        ("deleteAlertRule", "DeleteAlertRuleSuccess"),
        ("deleteAlertRule", "NotFoundError:NOT_FOUND"),
        ("deleteAlertRule", "NotFoundError:NOT_FOUND"),
        ("deleteAlertRule", "NotFoundError:NOT_FOUND"),
        ("updateAlertRule", "NotFoundError:NOT_FOUND"),
    ]
    assert {a for _, _, a in entries} == {f"staff:{user.id}"}


async def raise_some(session: AsyncSession, days: int = 1) -> dict[str, int]:
    """A rule's alert, an anomaly and a stock-out, raised an hour apart (oldest first), for each
    of ``days`` days from March 10 2026; the ids of the last day's."""
    product = await make_product(session, "坚果礼盒", sku="NUTS", stock={"SH": 0})
    variant_id = await session.scalar(
        select(ProductVariant.id).where(ProductVariant.product_id == product.id)
    )
    rule = AlertRule(
        name="订单破百",
        kpi_key="shop.orders",
        granularity=alerts.Granularity.DAY,
        condition=alerts.AlertCondition.ABOVE,
        threshold=100,
        created_by="staff:1",
    )
    session.add(rule)
    await session.flush()
    ids: dict[str, int] = {}
    for offset in range(days):
        day = date(2026, 3, 10) + timedelta(days=offset)
        found = [
            alerts.NewAlert(
                key=f"rule:{rule.id}:DAY:{day}",
                kind=AlertKind.THRESHOLD,
                rule_id=rule.id,
                kpi_key="shop.orders",
                bucket_start=day,
                bucket_end=day + timedelta(days=1),
                value=130,
                threshold=100,
                direction=AlertDirection.UP,
                bad_news=False,
                message=f"订单破百: Orders 130 in {day}, above 100",
            ),
            alerts.NewAlert(
                key=f"anomaly:shop.refund_rate:{day}",
                kind=AlertKind.ANOMALY,
                kpi_key="shop.refund_rate",
                bucket_start=day,
                bucket_end=day + timedelta(days=1),
                value=0.09,
                expected=0.036,
                threshold=3.5,
                score=6.2,
                direction=AlertDirection.UP,
                message=f"Refund rate spike on {day}: 9.0%, 3.6% expected (robust z = +6.2)",
            ),
            alerts.NewAlert(
                key=f"stock_out:{variant_id}:{day + timedelta(days=1)}",
                kind=AlertKind.STOCK_OUT,
                product_id=product.id,
                variant_id=variant_id,
                bucket_start=day + timedelta(days=1),
                bucket_end=day + timedelta(days=2),
                value=0,
                expected=4,
                direction=AlertDirection.DOWN,
                message="Out of stock: 坚果礼盒 (NUTS) sold 4 in the last 7 days and has none left",
            ),
        ]
        at = datetime(2026, 3, 11, 1, tzinfo=UTC) + timedelta(days=offset)
        for i, alert in enumerate(found):
            [ids[alert.kind.value]] = await alerts.raise_alerts(
                session, [alert], at=at + timedelta(hours=i)
            )
    await session.commit()
    return ids


async def test_alerts_newest_first_by_page_state_and_kind_and_acknowledged_once(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    ids = await raise_some(session)
    admin, user = await staff(gql, session, settings, StaffRole.ADMIN)
    first = (await admin(ALERTS, {"first": 2}))["alerts"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    assert [n["kind"] for n in first["nodes"]] == ["STOCK_OUT", "ANOMALY"]
    stock_out, anomaly = first["nodes"]
    assert stock_out | {"id": None, "createdAt": None} == {
        "id": None,
        "kind": "STOCK_OUT",
        "state": "OPEN",
        "message": "Out of stock: 坚果礼盒 (NUTS) sold 4 in the last 7 days and has none left",
        "kpi": None,
        "kpiLabel": None,
        "bucketStart": "2026-03-11",
        "bucketEnd": "2026-03-12",
        "value": 0.0,
        "expected": 4.0,
        "threshold": None,
        "score": None,
        "direction": "DOWN",
        "badNews": True,
        "acknowledgedBy": None,
        "acknowledgedAt": None,
        "createdAt": None,
        "rule": None,
        "product": {"sku": "NUTS"},
        "variant": {"sku": "NUTS"},
    }
    assert stock_out["id"] == gid("Alert", ids["STOCK_OUT"])
    assert stock_out["createdAt"] == "2026-03-11T03:00:00+00:00"
    assert (anomaly["kpi"], anomaly["kpiLabel"], anomaly["score"]) == (
        "shop.refund_rate",
        "Refund rate",
        6.2,
    )
    rest = (await admin(ALERTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["alerts"]
    [threshold] = rest["nodes"]
    assert not rest["pageInfo"]["hasNextPage"]
    assert (threshold["kind"], threshold["rule"], threshold["badNews"]) == (
        "THRESHOLD",
        {"name": "订单破百"},
        False,
    )

    # Acknowledged once: by the caller, then a ConflictError.
    done = (await admin(ACKNOWLEDGE, {"id": anomaly["id"]}))["acknowledgeAlert"]
    assert done["__typename"] == "AcknowledgeAlertSuccess"
    assert (done["alert"]["state"], done["alert"]["acknowledgedBy"]) == (
        "ACKNOWLEDGED",
        f"staff:{user.id}",
    )
    assert done["alert"]["acknowledgedAt"] is not None
    twice = (await admin(ACKNOWLEDGE, {"id": anomaly["id"]}))["acknowledgeAlert"]
    assert (twice["__typename"], twice["code"], twice["field"]) == (
        "ConflictError",
        "ALREADY_ACKNOWLEDGED",
        "alertId",
    )
    for missing in (gid("Alert", 987654), gid("AlertRule", ids["ANOMALY"]), "zzz"):
        refused = (await admin(ACKNOWLEDGE, {"id": missing}))["acknowledgeAlert"]
        assert (refused["__typename"], refused["code"]) == ("NotFoundError", "NOT_FOUND")

    async def kinds(filter_: dict[str, str]) -> list[str]:
        found = (await admin(ALERTS, {"first": 10, "filter": filter_}))["alerts"]["nodes"]
        return [n["kind"] for n in found]

    assert await kinds({"state": "OPEN"}) == ["STOCK_OUT", "THRESHOLD"]
    assert await kinds({"state": "ACKNOWLEDGED"}) == ["ANOMALY"]
    assert await kinds({"kind": "STOCK_OUT"}) == ["STOCK_OUT"]
    assert await kinds({"state": "ACKNOWLEDGED", "kind": "THRESHOLD"}) == []


async def test_who_may_read_and_who_may_change_alerts(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    ids = await raise_some(session)
    anomaly = gid("Alert", ids["ANOMALY"])
    read = "{ alerts(first: 5) { totalCount } alertRules(first: 5) { totalCount } }"
    create = (
        "mutation($input: CreateAlertRuleInput!) { createAlertRule(input: $input) { __typename } }"
    )
    acknowledge = "mutation($id: ID!) { acknowledgeAlert(input: {alertId: $id}) { __typename } }"

    # An analyst (insights.read) reads and changes nothing.
    analyst, _ = await staff(gql, session, settings, StaffRole.ANALYST)
    assert (await analyst(read))["alerts"]["totalCount"] == 3
    assert codes(await analyst.execute(create, {"input": BUSY})) == ["FORBIDDEN"]
    assert codes(await analyst.execute(acknowledge, {"id": anomaly})) == ["FORBIDDEN"]
    # An app with alerts.manage alone reads and acknowledges.
    key = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="oncall", scopes=[ALERTS_MANAGE], created_by="test"
    )
    await session.commit()
    app = gql.as_(key.secret)
    assert (await app(read))["alertRules"]["totalCount"] == 1
    done = await app(acknowledge, {"id": anomaly})
    assert done["acknowledgeAlert"]["__typename"] == "AcknowledgeAlertSuccess"
    # Support, the catalogue's staff, customers and strangers: nothing at all.
    support, _ = await staff(gql, session, settings, StaffRole.SUPPORT)
    catalog, _ = await staff(gql, session, settings, StaffRole.CATALOG)
    customer = gql.as_(token_for(settings, await make_customer(session)))
    for who in (support, catalog, customer, gql):
        assert "FORBIDDEN" in codes(await who.execute(read))
        assert codes(await who.execute(create, {"input": BUSY})) == ["FORBIDDEN"]
        body = await who.execute("query($id: ID!) { node(id: $id) { id } }", {"id": anomaly})
        assert body["data"]["node"] is None
    assert await rules_in_db(session) == 1


async def test_a_page_of_alerts_costs_the_same_statements_whatever_its_size(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    await raise_some(session, days=3)
    admin, _ = await staff(gql, session, settings, StaffRole.ADMIN)

    async def statements(first: int) -> tuple[int, list[dict[str, Any]]]:
        with counting(app) as seen:
            data = await admin(ALERTS, {"first": first})
        return len(seen), data["alerts"]["nodes"]

    # Both pages hold every kind: a rule, a product and a variant to load.
    three, small = await statements(3)
    nine, large = await statements(9)
    assert len(small) == 3 and len(large) == 9
    assert (
        {n["kind"] for n in small}
        == {n["kind"] for n in large}
        == {
            "THRESHOLD",
            "ANOMALY",
            "STOCK_OUT",
        }
    )
    assert three == nine
