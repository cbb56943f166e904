"""Operating the plugin framework over GraphQL: the installed plugins (plugins.read), and the
outbox deliveries to them, dead letters included (events.manage)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.scalars import JSON

from schema.loaders import OutboxDeliveryByIdLoader, OutboxEventByIdLoader
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import FromModel, ModelNode
from server.graphql.pagination import Connection, Page
from server.graphql.permissions import HasPermission
from server.permissions import EVENTS_MANAGE, PLUGINS_READ
from server.plugins import PluginRecord
from server.services import deliveries as service

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.DeliveryStatus, description="Where an event's delivery to a plugin stands.")


@strawberry.type(description="An installed plugin, enabled or not.")
class PluginInfo(FromModel):
    name: str
    version: str
    enabled: bool
    source: str = strawberry.field(description="'built-in', 'entry point' or 'explicit'.")
    description: str
    core_version: str = strawberry.field(description="The shopgraph versions it supports.")
    requires: list[str]
    hooks: list[str] = strawberry.field(description="The hooks it implements.")
    permissions: list[str] = strawberry.field(description="The permissions it adds.")

    @classmethod
    def of(cls, record: PluginRecord) -> PluginInfo:
        return cls.from_model(
            record,
            requires=list(record.requires),
            hooks=list(record.hooks),
            permissions=list(record.permissions),
        )


@strawberry.type(description="A domain event, as written in the outbox.")
class OutboxEvent(FromModel):
    id: int
    name: str
    payload: JSON
    created_at: datetime
    dispatched_at: datetime | None


@strawberry.type(description="One event's delivery to one plugin.")
class OutboxDelivery(ModelNode):
    loader = OutboxDeliveryByIdLoader

    id: relay.NodeID[int]
    plugin: str
    status: m.DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    _model: strawberry.Private[m.OutboxDelivery]

    @classmethod
    def can_view(cls, info: Info, model: Any) -> bool:
        return info.context.viewer.has(EVENTS_MANAGE)

    @strawberry.field
    async def event(self, info: Info) -> OutboxEvent | None:
        row = await info.context.loaders.get(OutboxEventByIdLoader).load(self._model.event_id)
        return OutboxEvent.from_model(row) if row is not None else None


@strawberry.input
class OutboxDeliveryFilter:
    status: m.DeliveryStatus | None = None
    plugin: str | None = None
    event_name: str | None = None


@strawberry.type
class PluginQueries:
    @strawberry.field(
        permission_classes=[HasPermission(PLUGINS_READ)],
        description="Every discovered plugin (plugins.read).",
    )
    def plugins(self, info: Info) -> list[PluginInfo]:
        return [PluginInfo.of(record) for record in info.context.plugins.records]

    @strawberry.field(
        permission_classes=[HasPermission(EVENTS_MANAGE)],
        description="Event deliveries to plugins, newest first; filter by status DEAD for the "
        "dead letters (events.manage).",
        extensions=[Paged()],
    )
    async def outbox_deliveries(
        self,
        info: Info,
        page: Page,
        filter: OutboxDeliveryFilter | None = None,
    ) -> Connection[OutboxDelivery]:
        flt = filter or OutboxDeliveryFilter()
        stmt = service.deliveries_query(
            service.DeliveryFilter(status=flt.status, plugin=flt.plugin, event_name=flt.event_name)
        )
        return await connection(
            info,
            stmt,
            page,
            sort=[],
            to_node=OutboxDelivery.from_model,
            descending=True,
        )


@strawberry.input
class RetryOutboxDeliveryInput:
    delivery_id: strawberry.ID


@strawberry.type
class RetryOutboxDeliverySuccess:
    delivery: OutboxDelivery


RetryOutboxDeliveryResult = Annotated[
    RetryOutboxDeliverySuccess | NotFoundError | ValidationError,
    strawberry.union("RetryOutboxDeliveryResult"),
]


@strawberry.type
class PluginMutations:
    @strawberry.mutation(
        permission_classes=[HasPermission(EVENTS_MANAGE)],
        description="Retry a failed (e.g. DEAD) event delivery from scratch (events.manage).",
    )
    async def retry_outbox_delivery(
        self, info: Info, input: RetryOutboxDeliveryInput
    ) -> RetryOutboxDeliveryResult:
        async def work(session: AsyncSession) -> m.OutboxDelivery:
            delivery_id = require_node_id(input.delivery_id, "OutboxDelivery", "deliveryId")
            return await service.requeue(session, delivery_id)

        return await mutate(
            info,
            work,
            lambda row: RetryOutboxDeliverySuccess(delivery=OutboxDelivery.from_model(row)),
        )


QUERIES: list[type[Any]] = [PluginQueries]
MUTATIONS: list[type[Any]] = [PluginMutations]
TYPES: list[type[Any]] = [OutboxDelivery]
