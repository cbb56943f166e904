"""Sessions (refresh, logout), permissions, API keys, the audit log and personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.scalars import JSON

from schema.customers import Customer, StaffUser
from schema.loaders import StaffUserByIdLoader
from server import models as m
from server import permissions as perms
from server.graphql.context import Info
from server.graphql.errors import (
    AuthenticationError,
    Error,
    NotFoundError,
    ValidationError,
    to_graphql,
)
from server.graphql.ids import parse_node_id, require_node_id
from server.graphql.loaders import ModelByIdLoader
from server.graphql.mutations import run_mutation
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, SortKey, paginate
from server.graphql.permissions import HasPermission, IsCustomer, IsStaffOrApp
from server.services import apikeys, audit, privacy, tokens
from server.services.errors import AuthenticationFailed, ValidationFailed


class ApiKeyByIdLoader(ModelByIdLoader):
    model = m.ApiKey


class AuditLogEntryByIdLoader(ModelByIdLoader):
    model = m.AuditLogEntry


def _roles(info: Info) -> perms.RoleMap:
    return perms.RoleMap.build(info.context.settings, info.context.plugins.permissions)


# --- types ----------------------------------------------------------------------------------


@strawberry.type(
    description="A key an app or integration signs in with. The secret is never shown again."
)
class ApiKey(ModelNode):
    loader = ApiKeyByIdLoader

    id: relay.NodeID[int]
    name: str
    prefix: str = strawberry.field(description="The public start of the key (sg_<prefix>_…).")
    scopes: list[str] = strawberry.field(description="The permissions the key holds.")
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(description="Updated at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, model: m.ApiKey) -> ApiKey:
        return cls(
            id=model.id,
            name=model.name,
            prefix=model.prefix,
            scopes=list(model.scopes),
            created_by=model.created_by,
            created_at=model.created_at,
            last_used_at=model.last_used_at,
            revoked_at=model.revoked_at,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.ApiKey) -> bool:
        return info.context.viewer.has(perms.APIKEYS_MANAGE)

    @strawberry.field
    def is_active(self) -> bool:
        return self.revoked_at is None


@strawberry.type(description="One mutation run by a staff user or an API key, or a staff sign-in.")
class AuditLogEntry(ModelNode):
    loader = AuditLogEntryByIdLoader

    id: relay.NodeID[int]
    at: datetime
    actor: str = strawberry.field(
        description='"staff:<id>", "apikey:<id>", or "anonymous" (a failed staff sign-in).'
    )
    mutation: str
    input: JSON = strawberry.field(description="The arguments, secrets redacted.")
    result: str = strawberry.field(
        description="The result type (e.g. UpdateProductSuccess), Type:CODE for a typed error "
        "(e.g. NotFoundError:NOT_FOUND) or, for a refused or failed call, the GraphQL error code."
    )
    _model: strawberry.Private[m.AuditLogEntry]

    @classmethod
    def from_model(cls, model: m.AuditLogEntry) -> AuditLogEntry:
        return cls(
            id=model.id,
            at=model.at,
            actor=model.actor,
            mutation=model.mutation,
            input=model.input,
            result=model.result,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.AuditLogEntry) -> bool:
        return info.context.viewer.has(perms.AUDIT_READ)

    @strawberry.field
    async def staff(self, info: Info) -> StaffUser | None:
        if self._model.staff_id is None:
            return None
        row = await info.context.loaders.get(StaffUserByIdLoader).load(self._model.staff_id)
        return StaffUser.from_model(row) if row is not None else None

    @strawberry.field
    async def api_key(self, info: Info) -> ApiKey | None:
        if self._model.api_key_id is None:
            return None
        row = await info.context.loaders.get(ApiKeyByIdLoader).load(self._model.api_key_id)
        return ApiKey.from_model(row) if row is not None else None


@strawberry.type(description="A staff role and the permissions it holds.")
class Role:
    name: str
    permissions: list[str]


@strawberry.type(description="A permission: defined by the core or by a plugin.")
class Permission:
    name: str
    description: str
    source: str = strawberry.field(description='"core" or the plugin\'s name.')


# --- queries --------------------------------------------------------------------------------


@strawberry.input
class ApiKeyFilter:
    active: bool | None = strawberry.field(
        default=None, description="true: not revoked; false: revoked."
    )


@strawberry.input
class AuditLogFilter:
    actor: strawberry.ID | None = strawberry.field(
        default=None, description="A StaffUser or ApiKey id."
    )
    mutation: str | None = None
    result: str | None = strawberry.field(
        default=None, description="A result; a typed error's type alone matches every code."
    )
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Entries at or after this time."
    )
    to: datetime | None = strawberry.field(default=None, description="Entries before this time.")


def _actor(global_id: strawberry.ID) -> str:
    for type_name, label in (("StaffUser", "staff"), ("ApiKey", "apikey")):
        pk = parse_node_id(global_id, type_name)
        if pk is not None:
            return f"{label}:{pk}"
    # Not an actor's id: a value no row has, so the filter finds nothing.
    return "none"


@strawberry.type
class SecurityQueries:
    @strawberry.field(
        description="The permissions the viewer holds (staff role or API-key scopes)."
    )
    def viewer_permissions(self, info: Info) -> list[str]:
        return sorted(info.context.viewer.permissions)

    @strawberry.field(
        description="Every permission, the plugins' included (staff and apps).",
        permission_classes=[IsStaffOrApp],
    )
    def permissions(self, info: Info) -> list[Permission]:
        out = [
            Permission(name=n, description=d, source="core")
            for n, d in perms.CORE_PERMISSIONS.items()
        ]
        for name, plugin in sorted(info.context.plugins.permissions.items()):
            out.append(
                Permission(name=name, description=f"Added by plugin {plugin}.", source=plugin)
            )
        return out

    @strawberry.field(
        description="The staff roles and their permissions.",
        permission_classes=[HasPermission(perms.STAFF_MANAGE)],
    )
    def roles(self, info: Info) -> list[Role]:
        mapping = _roles(info).roles
        return [Role(name=r.value, permissions=sorted(mapping[r.value])) for r in m.StaffRole]

    @strawberry.field(
        description="API keys, newest first.",
        permission_classes=[HasPermission(perms.APIKEYS_MANAGE)],
    )
    async def api_keys(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ApiKeyFilter | None = None,
    ) -> Connection[ApiKey]:
        stmt = select(m.ApiKey)
        if filter is not None and filter.active is not None:
            revoked = m.ApiKey.revoked_at
            stmt = stmt.where(revoked.is_(None) if filter.active else revoked.is_not(None))
        return await paginate(
            info.context.db.scalars,
            stmt,
            keys=[SortKey(m.ApiKey.created_at, "created_at")],
            id_column=m.ApiKey.id,
            descending=True,
            to_node=ApiKey.from_model,
            key_of=lambda k: [k.created_at, k.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )

    @strawberry.field(
        description="The audit log, newest first.",
        permission_classes=[HasPermission(perms.AUDIT_READ)],
    )
    async def audit_log(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditLogEntry]:
        flt = filter or AuditLogFilter()
        conditions = audit.conditions(
            audit.AuditFilter(
                actor=_actor(flt.actor) if flt.actor is not None else None,
                mutation=flt.mutation,
                result=flt.result,
                since=flt.from_,
                until=flt.to,
            )
        )
        return await paginate(
            info.context.db.scalars,
            select(m.AuditLogEntry).where(*conditions),
            keys=[SortKey(m.AuditLogEntry.at, "at")],
            id_column=m.AuditLogEntry.id,
            descending=True,
            to_node=AuditLogEntry.from_model,
            key_of=lambda e: [e.at, e.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )

    @strawberry.field(
        description="Everything the shop holds about the signed-in customer, as JSON: profile, "
        "addresses, orders (lines, status history, payments, shipments), carts, behaviour events.",
        permission_classes=[IsCustomer],
    )
    async def export_my_data(self, info: Info) -> JSON:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        return await info.context.db.run(privacy.export_customer_data, customer_id)


# --- mutations: sessions --------------------------------------------------------------------


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


@strawberry.type
class SessionMutations:
    @strawberry.mutation(
        description="Exchange a refresh token for a new access and refresh token. Each refresh "
        "token works once; presenting a spent one revokes every token of its sign-in."
    )
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenResult:
        result = await run_mutation(info, tokens.rotate, info.context.settings, input.refresh_token)
        if isinstance(result, tokens.RefreshRejected):
            # Committed on purpose: a reuse has revoked the family.
            return to_graphql(AuthenticationFailed(result.reason))  # type: ignore[return-value]
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RefreshTokenSuccess(
            customer=Customer.from_model(result.customer),
            access_token=result.tokens.access_token,
            refresh_token=result.tokens.refresh_token,
        )

    @strawberry.mutation(
        description="Sign out: the current access token and its refresh tokens stop working."
    )
    async def logout(self, info: Info, input: LogoutInput | None = None) -> LogoutResult:
        viewer = info.context.viewer
        given = input.refresh_token if input is not None else None
        if viewer.token_id is None and not given:
            missing = ValidationFailed(
                "sign out needs an access token or a refresh token", field="refreshToken"
            )
            return to_graphql(missing)  # type: ignore[return-value]
        result = await run_mutation(info, tokens.logout, info.context.settings, viewer, given)
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return LogoutSuccess(signed_out=True)


# --- mutations: API keys --------------------------------------------------------------------


@strawberry.input
class CreateApiKeyInput:
    name: str
    scopes: list[str] = strawberry.field(description="Permission names, e.g. catalog.read.")


@strawberry.type
class CreateApiKeySuccess:
    api_key: ApiKey
    key: str = strawberry.field(description="The key itself: shown this once, store it now.")


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class RevokeApiKeySuccess:
    api_key: ApiKey


CreateApiKeyResult = Annotated[
    CreateApiKeySuccess | ValidationError, strawberry.union("CreateApiKeyResult")
]
RevokeApiKeyResult = Annotated[
    RevokeApiKeySuccess | NotFoundError, strawberry.union("RevokeApiKeyResult")
]


@strawberry.type
class ApiKeyMutations:
    @strawberry.mutation(permission_classes=[HasPermission(perms.APIKEYS_MANAGE)])
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyResult:
        result = await run_mutation(
            info,
            apikeys.create_api_key,
            _roles(info),
            name=input.name,
            scopes=input.scopes,
            created_by=info.context.viewer.subject,
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return CreateApiKeySuccess(api_key=ApiKey.from_model(result.api_key), key=result.secret)

    @strawberry.mutation(
        description="Revoke a key: requests with it are refused (401) from now on.",
        permission_classes=[HasPermission(perms.APIKEYS_MANAGE)],
    )
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyResult:
        result = await run_mutation(
            info, lambda s: apikeys.revoke_api_key(s, require_node_id(input.id, "ApiKey", "id"))
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RevokeApiKeySuccess(api_key=ApiKey.from_model(result))


# --- mutations: personal data ---------------------------------------------------------------


@strawberry.input
class EraseMyAccountInput:
    password: str = strawberry.field(description="The account's password, to confirm.")


@strawberry.type
class EraseMyAccountSuccess:
    erased_customer_id: relay.GlobalID


EraseMyAccountResult = Annotated[
    EraseMyAccountSuccess | AuthenticationError | NotFoundError,
    strawberry.union("EraseMyAccountResult"),
]


@strawberry.type
class PrivacyMutations:
    @strawberry.mutation(
        description="Erase the signed-in customer's personal data and close the account. Orders "
        "are kept for accounting with personal fields replaced; every token stops working.",
        permission_classes=[IsCustomer],
    )
    async def erase_my_account(
        self, info: Info, input: EraseMyAccountInput
    ) -> EraseMyAccountResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        result = await run_mutation(
            info, privacy.erase_customer, info.context.settings, customer_id, input.password
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return EraseMyAccountSuccess(
            erased_customer_id=relay.GlobalID("Customer", str(customer_id))
        )


QUERIES: list[type[Any]] = [SecurityQueries]
MUTATIONS: list[type[Any]] = [SessionMutations, ApiKeyMutations, PrivacyMutations]
TYPES: list[type[Any]] = [ApiKey, AuditLogEntry]
