"""Accounts over HTTP: registration, sign-in, tokens, and the staff command line."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import create_access_token, verify_password
from server.cli import main as cli
from server.config import Settings
from server.models import Customer, StaffRole, StaffUser
from tests.support.accounts import DEFAULT_PASSWORD, make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient

REGISTER = """
mutation($input: RegisterCustomerInput!) {
  registerCustomer(input: $input) {
    __typename
    ... on RegisterCustomerSuccess { accessToken customer { id email firstName lastName phone } }
    ... on Error { code message field }
  }
}
"""

LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on LoginSuccess { accessToken customer { email } }
    ... on Error { code message field }
  }
}
"""

STAFF_LOGIN = """
mutation($input: LoginInput!) {
  staffLogin(input: $input) {
    __typename
    ... on StaffLoginSuccess { accessToken staff { email name role } }
    ... on Error { code message }
  }
}
"""

ME = "{ me { id email firstName membershipTier } }"


def registration(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "email": "Li.Na@Example.CN",
        "password": "长城-great-wall-8",
        "firstName": "娜",
        "lastName": "李",
        "phone": "13800138000",
    }
    data.update(overrides)
    return {"input": data}


async def test_register_login_and_me(gql: GraphQLClient, session: AsyncSession) -> None:
    data = await gql(REGISTER, registration())
    result = data["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess"
    # The email is stored and shown lower-cased.
    assert result["customer"]["email"] == "li.na@example.cn"
    assert result["customer"]["phone"] == "13800138000"

    me = (await gql.as_(result["accessToken"])(ME))["me"]
    assert me["id"] == result["customer"]["id"]
    assert me["membershipTier"] == "STANDARD"

    stored = (await session.execute(select(Customer))).scalars().one()
    assert stored.password_hash != "长城-great-wall-8"
    assert verify_password(stored.password_hash, "长城-great-wall-8")

    # Any capitalisation of the address signs in.
    login = (
        await gql(LOGIN, {"input": {"email": " LI.NA@example.cn", "password": "长城-great-wall-8"}})
    )["login"]
    assert login["__typename"] == "LoginSuccess"
    assert (await gql.as_(login["accessToken"])(ME))["me"]["email"] == "li.na@example.cn"


async def test_me_is_null_when_anonymous_or_staff(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    assert (await gql(ME))["me"] is None
    staff = await make_staff(session)
    assert (await gql.as_(token_for(settings, staff))(ME))["me"] is None


async def test_duplicate_email_is_a_conflict(gql: GraphQLClient, session: AsyncSession) -> None:
    await make_customer(session, email="taken@example.cn")
    result = (await gql(REGISTER, registration(email="TAKEN@example.cn")))["registerCustomer"]
    assert result["__typename"] == "ConflictError"
    assert result["field"] == "email"
    count = len((await session.execute(select(Customer))).scalars().all())
    assert count == 1


async def test_concurrent_registrations_of_one_email_create_one_account(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    results = await asyncio.gather(
        *(gql(REGISTER, registration(email="race@example.cn")) for _ in range(5))
    )
    kinds = sorted(r["registerCustomer"]["__typename"] for r in results)
    assert kinds == ["ConflictError"] * 4 + ["RegisterCustomerSuccess"]
    rows = (await session.execute(select(Customer))).scalars().all()
    assert [c.email for c in rows] == ["race@example.cn"]


async def test_bad_registrations_are_validation_errors(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    cases = [
        (registration(password="short7!"), "password"),
        (registration(email="not-an-email"), "email"),
        (registration(email="a@b"), "email"),
        (registration(phone="call me"), "phone"),
        (registration(firstName=" ", lastName=""), "firstName"),
        (registration(cityTier=9), "cityTier"),
        (registration(gender="robot"), "gender"),
    ]
    for variables, field in cases:
        result = (await gql(REGISTER, variables))["registerCustomer"]
        assert result["__typename"] == "ValidationError", variables
        assert result["code"] == "VALIDATION_FAILED"
        assert result["field"] == field
    assert (await session.execute(select(Customer))).scalars().all() == []


async def test_wrong_password_and_unknown_email_fail_alike(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="wang@example.cn")
    wrong = (await gql(LOGIN, {"input": {"email": "wang@example.cn", "password": "nope-nope"}}))[
        "login"
    ]
    unknown = (
        await gql(LOGIN, {"input": {"email": "nobody@example.cn", "password": DEFAULT_PASSWORD}})
    )["login"]
    assert wrong["__typename"] == "AuthenticationError"
    assert wrong == unknown
    ok = await gql(LOGIN, {"input": {"email": "wang@example.cn", "password": DEFAULT_PASSWORD}})
    assert ok["login"]["__typename"] == "LoginSuccess"


async def test_customer_password_does_not_sign_in_staff(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="both@example.cn")
    result = (
        await gql(
            STAFF_LOGIN, {"input": {"email": "both@example.cn", "password": DEFAULT_PASSWORD}}
        )
    )["staffLogin"]
    assert result["__typename"] == "AuthenticationError"


async def test_expired_and_forged_tokens_get_401(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    valid = token_for(settings, customer)
    expired = create_access_token(
        settings.model_copy(update={"access_token_minutes": -1}), f"customer:{customer.id}"
    )
    forged = create_access_token(
        settings.model_copy(update={"secret_key": "someone-elses-secret-that-is-long-enough"}),
        f"customer:{customer.id}",
    )
    tampered = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    for token in (expired, forged, tampered, "not-a-jwt"):
        response = await gql.as_(token).post(ME)
        assert response.status_code == 401, token
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await gql.as_(valid).post(ME)
    assert response.status_code == 200
    assert response.json()["data"]["me"]["email"] == customer.email


async def test_staff_create_command_then_staff_login(
    gql: GraphQLClient, session: AsyncSession, database_url: str
) -> None:
    runner = CliRunner()
    args = ["staff", "create", "--email", "Ops@Shop.CN", "--password", "仓库-secret-1"]
    args += ["--name", "仓管老张", "--role", "logistics"]
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    result = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "ops@shop.cn" in result.output

    staff = (await session.execute(select(StaffUser))).scalars().one()
    assert (staff.email, staff.role, staff.name) == ("ops@shop.cn", StaffRole.LOGISTICS, "仓管老张")

    login = (
        await gql(STAFF_LOGIN, {"input": {"email": "ops@shop.cn", "password": "仓库-secret-1"}})
    )["staffLogin"]
    assert login["__typename"] == "StaffLoginSuccess"
    assert login["staff"] == {"email": "ops@shop.cn", "name": "仓管老张", "role": "LOGISTICS"}
    # The staff token opens what the LOGISTICS role may do (stock levels), not customer data.
    staff_gql = gql.as_(login["accessToken"])
    page = await staff_gql("{ stockLevels(first: 5) { totalCount } }")
    assert page["stockLevels"]["totalCount"] == 0
    refused = await staff_gql.execute("{ customers(first: 5) { totalCount } }")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # The same email again, and a weak password, are refused with a message and exit code 1.
    again = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert again.exit_code == 1
    assert "already exists" in again.output
    weak = ["staff", "create", "--email", "x@shop.cn", "--password", "short"]
    refused = await asyncio.to_thread(runner.invoke, cli, weak, env=env)
    assert refused.exit_code == 1
    assert "at least 8" in refused.output
    bad_role = ["staff", "create", "--email", "y@shop.cn", "--password", "long-enough-1"]
    refused = await asyncio.to_thread(runner.invoke, cli, [*bad_role, "--role", "boss"], env=env)
    assert refused.exit_code == 1
    assert "unknown role" in refused.output
    assert len((await session.execute(select(StaffUser))).scalars().all()) == 1
