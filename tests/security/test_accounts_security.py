"""Access and refresh tokens: expiry, forgery, rotation, reuse detection, logout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import ALGORITHM, ISSUER, create_access_token
from server.config import Settings
from server.db import mark_write
from server.models import RefreshToken
from server.services.tokens import hash_token
from tests.support.accounts import DEFAULT_PASSWORD, make_customer
from tests.support.graphql import GraphQLClient

LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on LoginSuccess { accessToken refreshToken customer { id email } }
    ... on Error { code message }
  }
}
"""

REFRESH = """
mutation($input: RefreshTokenInput!) {
  refreshToken(input: $input) {
    __typename
    ... on RefreshTokenSuccess { accessToken refreshToken customer { email } }
    ... on Error { code message }
  }
}
"""

LOGOUT = """
mutation($input: LogoutInput) {
  logout(input: $input) {
    __typename
    ... on LogoutSuccess { signedOut }
    ... on Error { code message field }
  }
}
"""

ME = "{ me { email } }"


async def login(gql: GraphQLClient, email: str) -> dict[str, Any]:
    data = await gql(LOGIN, {"input": {"email": email, "password": DEFAULT_PASSWORD}})
    assert data["login"]["__typename"] == "LoginSuccess", data
    return data["login"]


async def refresh(gql: GraphQLClient, token: str) -> dict[str, Any]:
    return (await gql(REFRESH, {"input": {"refreshToken": token}}))["refreshToken"]


def _token(settings: Settings, **claims: Any) -> str:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "sub": "customer:1",
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "abc",
    }
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None}, settings.secret_key, ALGORITHM
    )


async def test_login_returns_both_tokens_and_stores_only_a_hash(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    customer = await make_customer(session, email="a@shop.cn")
    result = await login(gql, "a@shop.cn")
    assert (await gql.as_(result["accessToken"])(ME))["me"]["email"] == "a@shop.cn"
    rows = (
        (await session.execute(select(RefreshToken).where(RefreshToken.customer_id == customer.id)))
        .scalars()
        .all()
    )
    assert len(rows) == 1
    assert rows[0].token_hash == hash_token(result["refreshToken"])
    assert result["refreshToken"] not in rows[0].token_hash


async def test_expired_forged_and_malformed_tokens_are_refused_with_401(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    sub = f"customer:{customer.id}"
    past = datetime.now(UTC) - timedelta(hours=1)
    cases = {
        "expired": _token(settings, sub=sub, iat=past, exp=past + timedelta(minutes=5)),
        "forged": jwt.encode(
            {
                "sub": sub,
                "iss": ISSUER,
                "iat": datetime.now(UTC),
                "jti": "x",
                "exp": datetime.now(UTC) + timedelta(minutes=5),
            },
            "not-the-server-secret-not-the-server-secret",
            ALGORITHM,
        ),
        "no-jti": _token(settings, sub=sub, jti=None),
        "unsigned": jwt.encode({"sub": sub, "iss": ISSUER}, None, "none"),
        "garbage": "not.a.token",
    }
    for name, token in cases.items():
        response = await gql.as_(token).post(ME)
        assert response.status_code == 401, name
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
    # The real thing works.
    good = create_access_token(settings, sub)
    assert (await gql.as_(good)(ME))["me"] is not None


async def test_refresh_rotates_and_the_old_token_is_spent(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="r@shop.cn")
    first = await login(gql, "r@shop.cn")
    second = await refresh(gql, first["refreshToken"])
    assert second["__typename"] == "RefreshTokenSuccess"
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    assert (await gql.as_(second["accessToken"])(ME))["me"]["email"] == "r@shop.cn"
    third = await refresh(gql, second["refreshToken"])
    assert third["__typename"] == "RefreshTokenSuccess"
    unknown = await refresh(gql, "made-up-token")
    assert unknown["__typename"] == "AuthenticationError"


async def test_reusing_a_rotated_token_revokes_the_whole_family(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="reuse@shop.cn")
    first = await login(gql, "reuse@shop.cn")
    other_device = await login(gql, "reuse@shop.cn")
    second = await refresh(gql, first["refreshToken"])
    assert second["__typename"] == "RefreshTokenSuccess"
    # An attacker replays the spent token: refused...
    replay = await refresh(gql, first["refreshToken"])
    assert replay["__typename"] == "AuthenticationError"
    # ...and the legitimate holder's next token of that family is dead too.
    after = await refresh(gql, second["refreshToken"])
    assert after["__typename"] == "AuthenticationError"
    # Another sign-in (another family) is untouched.
    assert (await refresh(gql, other_device["refreshToken"]))["__typename"] == (
        "RefreshTokenSuccess"
    )
    family = (
        await session.execute(
            select(RefreshToken.revoked_at).where(
                RefreshToken.token_hash == hash_token(second["refreshToken"])
            )
        )
    ).scalar_one()
    assert family is not None


async def test_expired_refresh_token_is_refused(gql: GraphQLClient, session: AsyncSession) -> None:
    await make_customer(session, email="old@shop.cn")
    result = await login(gql, "old@shop.cn")
    await mark_write(session)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(result["refreshToken"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await session.commit()
    assert (await refresh(gql, result["refreshToken"]))["__typename"] == "AuthenticationError"


async def test_logout_revokes_access_token_and_refresh_family(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="bye@shop.cn")
    kept = await login(gql, "bye@shop.cn")
    result = await login(gql, "bye@shop.cn")
    client = gql.as_(result["accessToken"])
    assert (await client(ME))["me"]["email"] == "bye@shop.cn"
    out = (await client(LOGOUT, {"input": {}}))["logout"]
    assert out == {"__typename": "LogoutSuccess", "signedOut": True}
    response = await client.post(ME)
    assert response.status_code == 401
    assert (await refresh(gql, result["refreshToken"]))["__typename"] == "AuthenticationError"
    # The other session of the same customer still works.
    assert (await gql.as_(kept["accessToken"])(ME))["me"]["email"] == "bye@shop.cn"
    assert (await refresh(gql, kept["refreshToken"]))["__typename"] == "RefreshTokenSuccess"


async def test_logout_with_only_a_refresh_token_and_without_anything(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="anon@shop.cn")
    result = await login(gql, "anon@shop.cn")
    nothing = (await gql(LOGOUT, {"input": {}}))["logout"]
    assert nothing["__typename"] == "ValidationError"
    assert nothing["field"] == "refreshToken"
    out = (await gql(LOGOUT, {"input": {"refreshToken": result["refreshToken"]}}))["logout"]
    assert out["__typename"] == "LogoutSuccess"
    assert (await refresh(gql, result["refreshToken"]))["__typename"] == "AuthenticationError"


async def test_another_customer_cannot_end_my_sessions_with_my_refresh_token(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_customer(session, email="mine@shop.cn")
    await make_customer(session, email="thief@shop.cn")
    mine = await login(gql, "mine@shop.cn")
    thief = await login(gql, "thief@shop.cn")
    await gql.as_(thief["accessToken"])(LOGOUT, {"input": {"refreshToken": mine["refreshToken"]}})
    assert (await refresh(gql, mine["refreshToken"]))["__typename"] == "RefreshTokenSuccess"
