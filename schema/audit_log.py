"""The audit log over GraphQL: every mutation run by staff or an API key, and every staff
sign-in, for whoever holds audit.read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from schema.access import ApiKey
from schema.accounts import StaffUser
from schema.loaders import ApiKeyByIdLoader, AuditLogEntryByIdLoader, StaffUserByIdLoader
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.ids import parse_node_id
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortKey
from server.graphql.permissions import HasPermission
from server.permissions import AUDIT_READ
from server.services import audit as service


@strawberry.type(
    description="One mutation run by a staff user or an API key, a staff sign-in, or an "
    "export of personal data on the command line."
)
class AuditLogEntry(ModelNode):
    loader = AuditLogEntryByIdLoader

    id: relay.NodeID[int]
    at: datetime
    actor: str = strawberry.field(
        description='"staff:<id>", "apikey:<id>", "anonymous" (a failed staff sign-in), or '
        '"cli:<user>" (an export of the command line).'
    )
    mutation: str
    input: JSON = strawberry.field(description="The arguments, secrets redacted.")
    result: str = strawberry.field(
        description="The result type (e.g. UpdateProductSuccess), Type:CODE for a typed error "
        "(e.g. NotFoundError:NOT_FOUND) or, for a refused or failed call, the GraphQL error code."
    )
    _model: strawberry.Private[m.AuditLogEntry]

    @classmethod
    def can_view(cls, info: Info, model: m.AuditLogEntry) -> bool:
        return info.context.viewer.has(AUDIT_READ)

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


# The actors' node types and how the log names each.
_ACTORS = (("StaffUser", "staff"), ("ApiKey", "apikey"))


def _actor(value: strawberry.ID | None) -> str | None:
    """The log's name of the actor ``value`` names; one no row has when it names none."""
    if value is None:
        return None
    for type_name, kind in _ACTORS:
        pk = parse_node_id(value, type_name)
        if pk is not None:
            return service.actor_label(kind, pk)
    return service.NO_ACTOR


@strawberry.type
class AuditLogQueries:
    @strawberry.field(
        description="The audit log, newest first.",
        permission_classes=[HasPermission(AUDIT_READ)],
        extensions=[Paged()],
    )
    async def audit_log(
        self,
        info: Info,
        page: Page,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditLogEntry]:
        flt = filter or AuditLogFilter()
        stmt = service.entries_query(
            service.AuditFilter(
                actor=_actor(flt.actor),
                mutation=flt.mutation,
                result=flt.result,
                since=flt.from_,
                until=flt.to,
            )
        )
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(m.AuditLogEntry.at, "at")],
            to_node=AuditLogEntry.from_model,
            descending=True,
        )


QUERIES: list[type[Any]] = [AuditLogQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [AuditLogEntry]
