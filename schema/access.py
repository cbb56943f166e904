"""Who may do what, over GraphQL: the viewer's permissions, every permission and staff role,
and the API keys apps sign in with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.loaders import ApiKeyByIdLoader
from server import models as m
from server import permissions as perms
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortKey
from server.graphql.permissions import HasPermission, IsStaffOrApp
from server.services import apikeys as service


def _roles(info: Info) -> perms.RoleMap:
    return perms.RoleMap.build(info.context.settings, info.context.plugins.permissions)


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
    def can_view(cls, info: Info, model: m.ApiKey) -> bool:
        return info.context.viewer.has(perms.APIKEYS_MANAGE)

    @strawberry.field
    def is_active(self) -> bool:
        return self.revoked_at is None


@strawberry.type(description="A staff role and the permissions it holds.")
class Role:
    name: str
    permissions: list[str]


@strawberry.type(description="A permission: defined by the core or by a plugin.")
class Permission:
    name: str
    description: str
    source: str = strawberry.field(description='"core" or the plugin\'s name.')


@strawberry.input
class ApiKeyFilter:
    active: bool | None = strawberry.field(
        default=None, description="true: not revoked; false: revoked."
    )


@strawberry.type
class AccessQueries:
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
        extensions=[Paged()],
    )
    async def api_keys(
        self,
        info: Info,
        page: Page,
        filter: ApiKeyFilter | None = None,
    ) -> Connection[ApiKey]:
        active = filter.active if filter is not None else None
        return await connection(
            info,
            service.api_keys_query(active=active),
            page,
            sort=[SortKey(m.ApiKey.created_at, "created_at")],
            to_node=ApiKey.from_model,
            descending=True,
        )


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
        async def work(session: AsyncSession) -> service.CreatedApiKey:
            return await service.create_api_key(
                session,
                _roles(info),
                name=input.name,
                scopes=input.scopes,
                created_by=info.context.viewer.subject,
            )

        def created(result: service.CreatedApiKey) -> CreateApiKeySuccess:
            return CreateApiKeySuccess(api_key=ApiKey.from_model(result.api_key), key=result.secret)

        return await mutate(info, work, created)

    @strawberry.mutation(
        description="Revoke a key: requests with it are refused (401) from now on.",
        permission_classes=[HasPermission(perms.APIKEYS_MANAGE)],
    )
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyResult:
        async def work(session: AsyncSession) -> m.ApiKey:
            return await service.revoke_api_key(session, require_node_id(input.id, "ApiKey", "id"))

        return await mutate(
            info, work, lambda row: RevokeApiKeySuccess(api_key=ApiKey.from_model(row))
        )


QUERIES: list[type[Any]] = [AccessQueries]
MUTATIONS: list[type[Any]] = [ApiKeyMutations]
TYPES: list[type[Any]] = [ApiKey]
