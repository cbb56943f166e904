"""The audit log: every mutation by staff or an API key, in the change's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
)
from graphql.pyutils import Undefined
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.config import Settings
from server.graphql.structure import graphql_structure
from server.models import AuditLogEntry, StaffRole
from server.permissions import RoleMap
from server.services import apikeys
from tests.support.accounts import DEFAULT_PASSWORD, make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.orders import make_product as make_order_product
from tests.support.orders import place_ok

SCALARS: dict[str, Any] = {
    "String": "审计 audit",
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "ID": str(relay.GlobalID("Nothing", "0")),
    "GlobalID": str(relay.GlobalID("Nothing", "0")),
    "Decimal": "1.00",
    "DateTime": "2030-01-01T00:00:00+00:00",
    "Date": "2030-01-01",
    "JSON": {},
}


def sample(tp: Any) -> Any:
    """A value of GraphQL input type ``tp``: required fields only (enough to be valid); of a
    @oneOf input, its first member that is not the input itself (a rule's first condition)."""
    if isinstance(tp, GraphQLNonNull):
        return sample(tp.of_type)
    if isinstance(tp, GraphQLList):
        return [sample(tp.of_type)]
    if isinstance(tp, GraphQLEnumType):
        return next(iter(tp.values))
    if isinstance(tp, GraphQLInputObjectType) and tp.is_one_of:
        name, field = next(
            (name, field) for name, field in tp.fields.items() if get_named_type(field.type) != tp
        )
        return {name: sample(field.type)}
    if isinstance(tp, GraphQLInputObjectType):
        return {
            name: sample(field.type)
            for name, field in tp.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        }
    if isinstance(tp, GraphQLScalarType):
        return SCALARS.get(tp.name, "x")
    raise AssertionError(f"no sample for {tp}")


def mutation_calls(schema: GraphQLSchema) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every mutation of the schema → (document, variables) that calls it validly."""
    assert schema.mutation_type is not None
    calls = {}
    for name, field in schema.mutation_type.fields.items():
        params, args, variables = [], [], {}
        for arg_name, arg in field.args.items():
            if isinstance(arg.type, GraphQLNonNull):
                params.append(f"${arg_name}: {arg.type}")
                args.append(f"{arg_name}: ${arg_name}")
                variables[arg_name] = sample(arg.type)
        head = f"({', '.join(params)})" if params else ""
        call = f"({', '.join(args)})" if args else ""
        calls[name] = (f"mutation{head} {{ {name}{call} {{ __typename }} }}", variables)
    return calls


async def test_every_mutation_called_by_staff_leaves_an_audit_row(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Any
) -> None:
    staff = await make_staff(session, role=StaffRole.ADMIN)
    schema = graphql_structure(app.state.shopgraph.schema)
    calls = mutation_calls(schema)
    assert {"updateProduct", "createApiKey", "logout", "login"} <= set(calls)
    for name, (document, variables) in calls.items():
        # A fresh token each time: logout revokes the one it is called with.
        body = await gql.as_(token_for(settings, staff)).execute(document, variables)
        assert "errors" not in body or all(e.get("path") for e in body["errors"]), (name, body)
    rows = (await session.execute(select(AuditLogEntry))).scalars().all()
    audited = {row.mutation for row in rows}
    assert audited == set(calls), sorted(set(calls) - audited)
    assert {row.actor for row in rows} == {f"staff:{staff.id}"}
    assert all(row.staff_id == staff.id and row.result for row in rows)
    # One row per call: run_mutation and the safety net never both write.
    assert len(rows) == len(calls)


async def test_audit_row_content_redaction_and_same_transaction(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = await make_staff(session, role=StaffRole.CATALOG, email="cat@shop.cn")
    client = gql.as_(token_for(settings, staff))
    product = await make_product(session, name="桂花乌龙")
    pid = str(relay.GlobalID("Product", str(product.id)))
    update = """mutation($input: UpdateProductInput!) {
      updateProduct(input: $input) { __typename } }"""
    ok = await client(update, {"input": {"id": pid, "name": "桂花乌龙 新"}})
    assert ok["updateProduct"]["__typename"] == "UpdateProductSuccess"
    missing = str(relay.GlobalID("Product", "999999"))
    bad = await client(update, {"input": {"id": missing, "name": "x"}})
    assert bad["updateProduct"]["__typename"] == "NotFoundError"
    login = """mutation($input: LoginInput!) { staffLogin(input: $input) { __typename } }"""
    await client(login, {"input": {"email": "cat@shop.cn", "password": DEFAULT_PASSWORD}})
    denied = await client.execute(
        'mutation { eraseMyAccount(input: {password: "hunter2-hunter2"}) { __typename } }'
    )
    assert denied["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    rows = (await session.execute(select(AuditLogEntry).order_by(AuditLogEntry.id))).scalars()
    got = [(r.mutation, r.result, r.input) for r in rows]
    assert got[0] == (
        "updateProduct",
        "UpdateProductSuccess",
        {"input": {"id": pid, "name": "桂花乌龙 新"}},
    )
    assert got[1][:2] == ("updateProduct", "NotFoundError:NOT_FOUND")
    assert got[2][:2] == ("staffLogin", "StaffLoginSuccess")
    assert got[2][2] == {"input": {"email": "cat@shop.cn", "password": "[REDACTED]"}}
    assert got[3] == ("eraseMyAccount", "UNAUTHENTICATED", {"input": {"password": "[REDACTED]"}})
    await session.refresh(product)
    assert product.name == "桂花乌龙 新"


async def test_audit_rows_record_arguments_as_sent_through_aliases_and_fragments(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = await make_staff(session, role=StaffRole.CATALOG)
    client = gql.as_(token_for(settings, staff))
    product = await make_product(session, name="白茶")
    pid = str(relay.GlobalID("Product", str(product.id)))
    # Literals (an Int stays an int), a variable inside a literal object, an alias, and a
    # root field selected through a fragment spread.
    document = """
      mutation($id: ID!, $name: String!) {
        renamed: updateProduct(input: {id: $id, name: $name}) { __typename }
        ...Again
      }
      fragment Again on Mutation {
        updateProduct(input: {id: $id, name: "白茶 二", attributes: {grams: 250}}) {
          __typename
        }
      }
    """
    body = await client.execute(document, {"id": pid, "name": "白茶 一"})
    assert body["data"] == {
        "renamed": {"__typename": "UpdateProductSuccess"},
        "updateProduct": {"__typename": "UpdateProductSuccess"},
    }
    rows = (await session.execute(select(AuditLogEntry).order_by(AuditLogEntry.id))).scalars()
    assert [(r.mutation, r.result, r.input) for r in rows] == [
        ("updateProduct", "UpdateProductSuccess", {"input": {"id": pid, "name": "白茶 一"}}),
        (
            "updateProduct",
            "UpdateProductSuccess",
            {"input": {"id": pid, "name": "白茶 二", "attributes": {"grams": 250}}},
        ),
    ]


async def test_customer_mutations_are_not_audited(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = gql.as_(token_for(settings, await make_customer(session)))
    await customer('mutation { updateProfile(input: {firstName: "芳"}) { __typename } }')
    assert (await session.execute(select(AuditLogEntry))).first() is None


async def test_audit_log_query_filters_and_needs_audit_read(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin_user = await make_staff(session, role=StaffRole.ADMIN)
    support_user = await make_staff(session, role=StaffRole.SUPPORT)
    admin = gql.as_(token_for(settings, admin_user))
    support = gql.as_(token_for(settings, support_user))
    customer = await make_customer(session)
    cid = str(relay.GlobalID("Customer", str(customer.id)))
    tier = """mutation($input: SetMembershipTierInput!) {
      setMembershipTier(input: $input) { __typename } }"""
    await support(tier, {"input": {"customerId": cid, "tier": "GOLD"}})
    await admin(tier, {"input": {"customerId": cid, "tier": "SILVER"}})
    created = """mutation { createApiKey(input: {name: "bi", scopes: ["audit.read"]}) {
      ... on CreateApiKeySuccess { key } } }"""
    key = (await admin(created))["createApiKey"]["key"]

    query = """query($filter: AuditLogFilter) { auditLog(first: 10, filter: $filter) {
      totalCount edges { node { mutation actor result input staff { email } } } } }"""
    everything = (await admin(query))["auditLog"]
    assert [e["node"]["mutation"] for e in everything["edges"]] == [
        "createApiKey",
        "setMembershipTier",
        "setMembershipTier",
    ]
    by_support = (
        await admin(
            query, {"filter": {"actor": str(relay.GlobalID("StaffUser", str(support_user.id)))}}
        )
    )["auditLog"]["edges"]
    assert [e["node"]["staff"]["email"] for e in by_support] == [support_user.email]
    assert by_support[0]["node"]["input"]["input"]["tier"] == "GOLD"
    by_name = (await admin(query, {"filter": {"mutation": "createApiKey"}}))["auditLog"]
    assert by_name["totalCount"] == 1
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert (await admin(query, {"filter": {"from": future}}))["auditLog"]["totalCount"] == 0
    assert (await admin(query, {"filter": {"from": past, "to": future}}))["auditLog"][
        "totalCount"
    ] == 3
    refused = await support.execute(query)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # An API key with audit.read reads it too; its own mutations would be logged as apikey:<id>.
    assert (await gql.as_(key)(query))["auditLog"]["totalCount"] == 3


LOGIN_NO_TYPENAME = """mutation($input: LoginInput!) {
  staffLogin(input: $input) { ... on StaffLoginSuccess { accessToken } } }"""


async def test_every_staff_sign_in_attempt_is_audited_with_its_outcome(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = await make_staff(session, role=StaffRole.SUPPORT, email="ops@shop.cn")
    # Nobody is signed in, and the client selects no __typename: the row still tells.
    wrong = {"input": {"email": "ops@shop.cn", "password": "not-the-password"}}
    assert (await gql(LOGIN_NO_TYPENAME, wrong))["staffLogin"] == {}
    right = {"input": {"email": "ops@shop.cn", "password": DEFAULT_PASSWORD}}
    assert (await gql(LOGIN_NO_TYPENAME, right))["staffLogin"]["accessToken"]
    nobody = {"input": {"email": "nobody@shop.cn", "password": DEFAULT_PASSWORD}}
    assert (await gql(LOGIN_NO_TYPENAME, nobody))["staffLogin"] == {}
    # A customer's sign-in is not a staff matter.
    await make_customer(session, email="buyer@shop.cn")
    customer_login = """mutation($input: LoginInput!) { login(input: $input) { __typename } }"""
    ok = await gql(
        customer_login, {"input": {"email": "buyer@shop.cn", "password": DEFAULT_PASSWORD}}
    )
    assert ok["login"]["__typename"] == "LoginSuccess"

    rows = (await session.execute(select(AuditLogEntry).order_by(AuditLogEntry.id))).scalars()
    failed = "AuthenticationError:AUTHENTICATION_FAILED"
    assert [(r.mutation, r.actor, r.staff_id, r.result, r.input) for r in rows] == [
        (
            "staffLogin",
            "anonymous",
            None,
            failed,
            {"input": {**wrong["input"], "password": "[REDACTED]"}},
        ),
        (
            "staffLogin",
            f"staff:{staff.id}",
            staff.id,
            "StaffLoginSuccess",
            {"input": {**right["input"], "password": "[REDACTED]"}},
        ),
        (
            "staffLogin",
            "anonymous",
            None,
            failed,
            {"input": {**nobody["input"], "password": "[REDACTED]"}},
        ),
    ]
    # A typed error's type finds it whatever its code.
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    query = """query($filter: AuditLogFilter) { auditLog(first: 10, filter: $filter) {
      totalCount edges { node { actor result staff { email } } } } }"""
    found = (await admin(query, {"filter": {"result": "AuthenticationError"}}))["auditLog"]
    assert found["totalCount"] == 2
    assert {e["node"]["actor"] for e in found["edges"]} == {"anonymous"}
    ok_rows = (await admin(query, {"filter": {"result": "StaffLoginSuccess"}}))["auditLog"]
    assert [e["node"]["staff"]["email"] for e in ok_rows["edges"]] == ["ops@shop.cn"]
    assert (await admin(query, {"filter": {"result": "Authentication"}}))["auditLog"][
        "totalCount"
    ] == 0


async def test_a_typed_error_is_audited_as_such_whatever_the_client_selects(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    created = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="POS", scopes=["orders.manage"], created_by="test"
    )
    await session.commit()
    pos = gql.as_(created.secret)
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    product = await make_order_product(session, price=5000)
    declined_order = await place_ok(buyer, [(product, 1)])
    paid_order = await place_ok(buyer, [(product, 1)])
    pay = """mutation($input: PayOrderInput!) {
      payOrder(input: $input) { ... on PayOrderSuccess { order { status } } } }"""

    def paying(order: dict[str, Any], token: str) -> dict[str, Any]:
        amount = {"amount": order["total"]["amount"]}
        return {
            "input": {"orderId": order["id"], "gateway": "test", "token": token, "amount": amount}
        }

    # The declined attempt is committed (with its audit row) before the answer is a typed error.
    assert (await pos(pay, paying(declined_order, "tok_declined")))["payOrder"] == {}
    done = await pos(pay, paying(paid_order, "tok_visa"))
    assert done["payOrder"]["order"]["status"] == "PAID"
    # A malformed id is answered as data before run_mutation: no __typename selected either.
    catalog = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.CATALOG)))
    update = """mutation($input: UpdateProductInput!) {
      updateProduct(input: $input) { ... on UpdateProductSuccess { product { name } } } }"""
    assert (await catalog(update, {"input": {"id": "not-an-id", "name": "x"}}))[
        "updateProduct"
    ] == {}

    rows = (await session.execute(select(AuditLogEntry).order_by(AuditLogEntry.id))).scalars()
    assert [(r.mutation, r.result) for r in rows] == [
        ("payOrder", "PaymentDeclined:PAYMENT_DECLINED"),
        ("payOrder", "PayOrderSuccess"),
        ("updateProduct", "NotFoundError:NOT_FOUND"),
    ]
