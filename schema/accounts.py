"""Accounts over GraphQL: customers register and sign in, staff sign in, and sessions are
refreshed and ended (refreshToken, logout)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.customers import Customer
from schema.loaders import StaffUserByIdLoader
from schema.profile import profile_changes
from server import models as m
from server.graphql import audit
from server.graphql.context import Info
from server.graphql.errors import AuthenticationError, Error, ValidationError, to_graphql
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.permissions import AUDIT_READ, STAFF_MANAGE
from server.services import accounts, tokens
from server.services.errors import AuthenticationFailed, DomainError, ValidationFailed

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.StaffRole, description="What a staff user is responsible for.")


@strawberry.type(description="A member of the shop's staff.")
class StaffUser(ModelNode):
    loader = StaffUserByIdLoader

    id: relay.NodeID[int]
    email: str
    name: str
    role: m.StaffRole
    created_at: datetime

    @classmethod
    def can_view(cls, info: Info, model: m.StaffUser) -> bool:
        # Oneself; staff.manage; audit.read, which names staff users in the log anyway.
        viewer = info.context.viewer
        return (viewer.is_staff and viewer.staff_id == model.id) or viewer.has(
            STAFF_MANAGE, AUDIT_READ
        )


# --- registering and signing in -------------------------------------------------------------


@strawberry.input
class RegisterCustomerInput:
    email: str
    password: str = strawberry.field(description="At least 8 characters.")
    first_name: str
    last_name: str
    phone: str | None = None
    gender: str | None = strawberry.field(default=None, description="FEMALE, MALE or OTHER.")
    age_band: str | None = strawberry.field(
        default=None, description="<18, 18-24, 25-34, 35-44, 45-54 or 55+."
    )
    region: str | None = None
    city: str | None = None
    city_tier: int | None = strawberry.field(default=None, description="1 (first-tier) to 5.")
    occupation: str | None = None
    interests: list[str] | None = None


@strawberry.type(
    description="The answer to every well-formed registration, whether or not the address "
    "already has an account: a link to finish signing up goes to the address (its owner, if "
    "it has an account, is told of the attempt instead)."
)
class RegistrationAccepted:
    email: str = strawberry.field(description="The address, normalised.")
    message: str


@strawberry.input
class ConfirmRegistrationInput:
    token: str = strawberry.field(description="The token of the link sent by registerCustomer.")


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class LoginSuccess:
    customer: Customer
    access_token: str = strawberry.field(description="Short-lived; send as a bearer token.")
    refresh_token: str = strawberry.field(
        description="Single-use; exchange it with refreshToken for a new pair."
    )

    @classmethod
    def signed_in(cls, session: accounts.CustomerSession) -> LoginSuccess:
        return cls(
            customer=Customer.from_model(session.customer),
            access_token=session.access_token,
            refresh_token=session.refresh_token,
        )


@strawberry.type
class StaffLoginSuccess:
    staff: StaffUser
    access_token: str


RegisterCustomerResult = Annotated[
    RegistrationAccepted | ValidationError, strawberry.union("RegisterCustomerResult")
]
LoginResult = Annotated[LoginSuccess | AuthenticationError, strawberry.union("LoginResult")]
StaffLoginResult = Annotated[
    StaffLoginSuccess | AuthenticationError, strawberry.union("StaffLoginResult")
]


async def _audited_sign_in(
    info: Info, work: Callable[[AsyncSession], Awaitable[accounts.StaffSession]]
) -> Any:
    """A staff sign-in: it only reads (no write transaction), and every attempt is audited
    whoever calls — a success under the staff user who signed in, a failure under the caller
    (usually nobody yet) — where :func:`mutate` audits only staff and apps.

    Typed ``Any`` like :func:`mutate`: the union member is strawberry's check at run time."""
    try:
        signed_in = await info.context.db.run(work)
    except DomainError as exc:
        error = to_graphql(exc)
        await audit.write_sign_in(info, error, staff_id=None)
        return error
    success = StaffLoginSuccess(
        staff=StaffUser.from_model(signed_in.staff), access_token=signed_in.access_token
    )
    await audit.write_sign_in(info, success, staff_id=signed_in.staff.id)
    return success


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        description="Ask for a customer account. The answer never tells whether the address "
        "has one: the account is created when the link sent to it is confirmed "
        "(confirmRegistration)."
    )
    async def register_customer(
        self, info: Info, input: RegisterCustomerInput
    ) -> RegisterCustomerResult:
        async def work(session: AsyncSession) -> accounts.RegistrationAccepted:
            return await accounts.register_customer(
                session,
                info.context.settings,
                email=input.email,
                password=input.password,
                profile=profile_changes(input),
            )

        def accepted(result: accounts.RegistrationAccepted) -> RegistrationAccepted:
            return RegistrationAccepted(email=result.email, message=accounts.REGISTRATION_ACCEPTED)

        return await mutate(info, work, accepted)

    @strawberry.mutation(
        description="Finish a registration with the token of its e-mail link: the account is "
        "created and signed in."
    )
    async def confirm_registration(
        self, info: Info, input: ConfirmRegistrationInput
    ) -> LoginResult:
        async def work(session: AsyncSession) -> accounts.CustomerSession:
            return await accounts.confirm_registration(
                session, info.context.settings, token=input.token
            )

        return await mutate(info, work, LoginSuccess.signed_in)

    @strawberry.mutation(description="Sign a customer in.")
    async def login(self, info: Info, input: LoginInput) -> LoginResult:
        # A write: the sign-in's refresh token is stored.
        async def work(session: AsyncSession) -> accounts.CustomerSession:
            return await accounts.login(
                session, info.context.settings, email=input.email, password=input.password
            )

        return await mutate(info, work, LoginSuccess.signed_in)

    @strawberry.mutation(
        description="Sign a staff user in; the token carries their role. Every attempt, failed "
        "or not, is in the audit log."
    )
    async def staff_login(self, info: Info, input: LoginInput) -> StaffLoginResult:
        async def work(session: AsyncSession) -> accounts.StaffSession:
            return await accounts.staff_login(
                session, info.context.settings, email=input.email, password=input.password
            )

        return await _audited_sign_in(info, work)


# --- sessions -------------------------------------------------------------------------------


@strawberry.input
class RefreshTokenInput:
    refresh_token: str


@strawberry.type
class RefreshTokenSuccess:
    customer: Customer
    access_token: str
    refresh_token: str = strawberry.field(
        description="The next refresh token; the one presented is now spent."
    )


@strawberry.input
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None,
        description="Also end this refresh token's family (when signing out without an access "
        "token, or from another family).",
    )


@strawberry.type
class LogoutSuccess:
    signed_out: bool


RefreshTokenResult = Annotated[
    RefreshTokenSuccess | AuthenticationError, strawberry.union("RefreshTokenResult")
]
LogoutResult = Annotated[LogoutSuccess | ValidationError, strawberry.union("LogoutResult")]


def _refreshed(result: tokens.Refreshed | tokens.RefreshRejected) -> RefreshTokenSuccess | Error:
    if isinstance(result, tokens.RefreshRejected):
        # Committed on purpose: a reuse has revoked the family.
        return to_graphql(AuthenticationFailed(result.reason))
    return RefreshTokenSuccess(
        customer=Customer.from_model(result.customer),
        access_token=result.tokens.access_token,
        refresh_token=result.tokens.refresh_token,
    )


@strawberry.type
class SessionMutations:
    @strawberry.mutation(
        description="Exchange a refresh token for a new access and refresh token. Each refresh "
        "token works once; presenting a spent one revokes every token of its sign-in."
    )
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenResult:
        async def work(session: AsyncSession) -> tokens.Refreshed | tokens.RefreshRejected:
            return await tokens.rotate(session, info.context.settings, input.refresh_token)

        return await mutate(info, work, _refreshed)

    @strawberry.mutation(
        description="Sign out: the current access token and its refresh tokens stop working."
    )
    async def logout(self, info: Info, input: LogoutInput | None = None) -> LogoutResult:
        viewer = info.context.viewer
        given = input.refresh_token if input is not None else None

        async def work(session: AsyncSession) -> None:
            if viewer.token_id is None and not given:
                raise ValidationFailed(
                    "sign out needs an access token or a refresh token", field="refreshToken"
                )
            await tokens.logout(session, info.context.settings, viewer, given)

        return await mutate(info, work, lambda _: LogoutSuccess(signed_out=True))


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [AccountMutations, SessionMutations]
TYPES: list[type[Any]] = [StaffUser]
