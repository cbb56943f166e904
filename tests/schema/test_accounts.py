"""Accounts over HTTP: registration, sign-in, tokens, and the staff command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import create_access_token, verify_password
from server.cli import main as cli
from server.config import Settings
from server.models import Customer, PendingRegistration, StaffRole, StaffUser
from server.plugin import Event
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin, Recorder
from tests.support.accounts import DEFAULT_PASSWORD, make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.waiting import eventually

REGISTER = """
mutation($input: RegisterCustomerInput!) {
  registerCustomer(input: $input) {
    __typename
    ... on RegistrationAccepted { email message }
    ... on Error { code message field }
  }
}
"""

CONFIRM = """
mutation($token: String!) {
  confirmRegistration(input: { token: $token }) {
    __typename
    ... on LoginSuccess { accessToken customer { id email firstName lastName phone } }
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


async def test_me_is_null_when_anonymous_or_staff(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    assert (await gql(ME))["me"] is None
    staff = await make_staff(session)
    assert (await gql.as_(token_for(settings, staff))(ME))["me"] is None


class TestRegistration:
    """Registering never tells whether an address has an account; the mailbox finishes it."""

    mail = Recorder()

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        self.mail.events.clear()
        mailer = FakePlugin(
            "mailer",
            customer_registration_requested=self.mail,
            customer_registration_attempted=self.mail,
        )
        return load_plugins(settings.model_copy(update={"plugins": ""}), extra=[mailer])

    async def mailed(self, name: str, count: int = 1) -> list[Event]:
        def arrived() -> bool:
            return len([e for e in self.mail.events if e.name == name]) >= count

        await eventually(arrived, seconds=5)
        return [e for e in self.mail.events if e.name == name]

    async def test_hook_customer_registration_requested(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        result = (await gql(REGISTER, registration()))["registerCustomer"]
        assert result["__typename"] == "RegistrationAccepted"
        assert result["email"] == "li.na@example.cn"
        # Nothing can sign in yet: the account waits for its address to be confirmed.
        assert (await session.execute(select(Customer))).scalars().all() == []
        [event] = await self.mailed("customer_registration_requested")
        assert event.payload["email"] == "li.na@example.cn"
        token = event.payload["token"]
        [pending] = (await session.execute(select(PendingRegistration))).scalars().all()
        assert pending.token_hash != token and token not in str(pending.profile)

        confirmed = (await gql(CONFIRM, {"token": token}))["confirmRegistration"]
        assert confirmed["__typename"] == "LoginSuccess"
        assert confirmed["customer"]["email"] == "li.na@example.cn"
        assert confirmed["customer"]["phone"] == "13800138000"
        me = (await gql.as_(confirmed["accessToken"])(ME))["me"]
        assert me["id"] == confirmed["customer"]["id"]
        assert me["membershipTier"] == "STANDARD"
        await session.rollback()  # a fresh snapshot (SQLite keeps the read transaction's)
        stored = (await session.execute(select(Customer))).scalars().one()
        assert verify_password(stored.password_hash, "长城-great-wall-8")
        # A link works once.
        again = (await gql(CONFIRM, {"token": token}))["confirmRegistration"]
        assert again["__typename"] == "AuthenticationError" and again["field"] == "token"

        # Any capitalisation of the address signs in.
        login = (
            await gql(
                LOGIN, {"input": {"email": " LI.NA@example.cn", "password": "长城-great-wall-8"}}
            )
        )["login"]
        assert login["__typename"] == "LoginSuccess"

    async def test_hook_customer_registration_attempted(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        owner = await make_customer(session, email="taken@example.cn")
        taken = (await gql(REGISTER, registration(email="TAKEN@example.cn")))["registerCustomer"]
        fresh = (await gql(REGISTER, registration(email="Fresh@example.cn")))["registerCustomer"]
        # The same answer but for the address itself.
        assert {**taken, "email": None} == {**fresh, "email": None}
        assert taken["__typename"] == "RegistrationAccepted"
        [notice] = await self.mailed("customer_registration_attempted")
        assert notice.payload == {"customer_id": owner.id, "email": "taken@example.cn"}
        await self.mailed("customer_registration_requested")
        # Nothing is pending for the taken address, and its owner's password still works.
        pending = (await session.execute(select(PendingRegistration))).scalars().all()
        assert [p.email for p in pending] == ["fresh@example.cn"]
        login = {"input": {"email": "taken@example.cn", "password": DEFAULT_PASSWORD}}
        assert (await gql(LOGIN, login))["login"]["__typename"] == "LoginSuccess"

    async def test_concurrent_confirmations_of_one_address_create_one_account(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        answers = await asyncio.gather(
            *(gql(REGISTER, registration(email="race@example.cn")) for _ in range(5))
        )
        assert {a["registerCustomer"]["__typename"] for a in answers} == {"RegistrationAccepted"}
        requests = await self.mailed("customer_registration_requested", 5)
        tokens = [e.payload["token"] for e in requests]
        results = await asyncio.gather(*(gql(CONFIRM, {"token": t}) for t in tokens[:3]))
        kinds = sorted(r["confirmRegistration"]["__typename"] for r in results)
        assert kinds == ["AuthenticationError"] * 2 + ["LoginSuccess"]
        await session.rollback()  # a fresh snapshot
        rows = (await session.execute(select(Customer))).scalars().all()
        assert [c.email for c in rows] == ["race@example.cn"]
        # The other links died with the confirmation.
        late = (await gql(CONFIRM, {"token": tokens[4]}))["confirmRegistration"]
        assert late["__typename"] == "AuthenticationError"
        await session.rollback()
        assert (await session.execute(select(PendingRegistration))).scalars().all() == []

    async def test_an_expired_link_creates_nothing(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        await gql(REGISTER, registration())
        [event] = await self.mailed("customer_registration_requested")
        await session.execute(
            update(PendingRegistration).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
        result = (await gql(CONFIRM, {"token": event.payload["token"]}))["confirmRegistration"]
        assert result["__typename"] == "AuthenticationError"
        assert (await session.execute(select(Customer))).scalars().all() == []
        unknown = (await gql(CONFIRM, {"token": "not-a-token"}))["confirmRegistration"]
        assert unknown == result


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
    assert (await session.execute(select(PendingRegistration))).scalars().all() == []


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
    bodies = []
    for token in (expired, forged, tampered, "not-a-jwt"):
        response = await gql.as_(token).post(ME)
        assert response.status_code == 401, token
        bodies.append(response.json())
    # One answer for every failed check: which one failed is not the client's to learn.
    assert bodies[0]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert all(body == bodies[0] for body in bodies)
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
