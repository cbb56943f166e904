"""Synonym groups over GraphQL: staff with catalog.manage list and manage them (the groups
themselves and their rules: server.services.synonyms)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.loaders import SynonymGroupByIdLoader, SynonymsByGroupIdLoader
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page
from server.graphql.permissions import HasPermission
from server.permissions import CATALOG_MANAGE
from server.services import synonyms as service


@strawberry.type(
    description="Terms that mean the same to a shopper: a search term in the group matches "
    "any of them (catalog.manage)."
)
class SynonymGroup(ModelNode):
    loader = SynonymGroupByIdLoader

    id: relay.NodeID[int]
    created_at: datetime
    updated_at: datetime | None

    @classmethod
    def can_view(cls, info: Info, model: m.SynonymGroup) -> bool:
        return info.context.viewer.has(CATALOG_MANAGE)

    @strawberry.field(description="Normalised: lower-case words separated by one space.")
    async def terms(self, info: Info) -> list[str]:
        rows = await info.context.loaders.get(SynonymsByGroupIdLoader).load(self.id)
        return [row.term for row in rows]


@strawberry.input(description="2 to 20 terms, each in no other group.")
class CreateSynonymGroupInput:
    terms: list[str]


@strawberry.input(description="The group's terms, all of them: they replace the old ones.")
class UpdateSynonymGroupInput:
    id: strawberry.ID
    terms: list[str]


@strawberry.input
class DeleteSynonymGroupInput:
    id: strawberry.ID


@strawberry.type
class CreateSynonymGroupSuccess:
    synonym_group: SynonymGroup


@strawberry.type
class UpdateSynonymGroupSuccess:
    synonym_group: SynonymGroup


@strawberry.type
class DeleteSynonymGroupSuccess:
    deleted_id: strawberry.ID
    terms: list[str] = strawberry.field(description="The terms the group had.")


CreateSynonymGroupResult = Annotated[
    CreateSynonymGroupSuccess | ValidationError | ConflictError,
    strawberry.union("CreateSynonymGroupResult"),
]
UpdateSynonymGroupResult = Annotated[
    UpdateSynonymGroupSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("UpdateSynonymGroupResult"),
]
DeleteSynonymGroupResult = Annotated[
    DeleteSynonymGroupSuccess | NotFoundError, strawberry.union("DeleteSynonymGroupResult")
]


@strawberry.input
class SynonymGroupFilter:
    term: str | None = strawberry.field(
        default=None, description="The group holding this term (normalised first)."
    )


@strawberry.type
class SynonymQueries:
    @strawberry.field(
        description="Synonym groups, oldest first (catalog.manage).",
        permission_classes=[HasPermission(CATALOG_MANAGE)],
        extensions=[Paged()],
    )
    async def synonym_groups(
        self, info: Info, page: Page, filter: SynonymGroupFilter | None = None
    ) -> Connection[SynonymGroup]:
        term = filter.term if filter is not None else None
        return await connection(
            info, service.groups_query(term), page, sort=[], to_node=SynonymGroup.from_model
        )


def _success_node(found: service.Group) -> SynonymGroup:
    return SynonymGroup.from_model(found.group)


@strawberry.type
class SynonymMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def create_synonym_group(
        self, info: Info, input: CreateSynonymGroupInput
    ) -> CreateSynonymGroupResult:
        async def work(session: AsyncSession) -> service.Group:
            return await service.create_group(session, input.terms)

        return await mutate(
            info, work, lambda g: CreateSynonymGroupSuccess(synonym_group=_success_node(g))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def update_synonym_group(
        self, info: Info, input: UpdateSynonymGroupInput
    ) -> UpdateSynonymGroupResult:
        async def work(session: AsyncSession) -> service.Group:
            pk = require_node_id(input.id, "SynonymGroup", "id")
            return await service.update_group(session, pk, input.terms)

        return await mutate(
            info, work, lambda g: UpdateSynonymGroupSuccess(synonym_group=_success_node(g))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CATALOG_MANAGE)])
    async def delete_synonym_group(
        self, info: Info, input: DeleteSynonymGroupInput
    ) -> DeleteSynonymGroupResult:
        async def work(session: AsyncSession) -> service.Group:
            pk = require_node_id(input.id, "SynonymGroup", "id")
            return await service.delete_group(session, pk)

        return await mutate(
            info,
            work,
            lambda g: DeleteSynonymGroupSuccess(
                deleted_id=strawberry.ID(str(relay.GlobalID("SynonymGroup", str(g.group.id)))),
                terms=list(g.terms),
            ),
        )


QUERIES: list[type[Any]] = [SynonymQueries]
MUTATIONS: list[type[Any]] = [SynonymMutations]
TYPES: list[type[Any]] = [SynonymGroup]
