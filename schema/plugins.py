"""Operating the plugin framework over GraphQL: the installed plugins (plugins.read), and the
outbox deliveries to them, dead letters included (events.manage)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay
from strawberry.scalars import JSON

from server import models as m
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.loaders import ModelByIdLoader
from server.graphql.mutations import run_mutation
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, paginate
from server.graphql.permissions import HasPermission
from server.permissions import EVENTS_MANAGE, PLUGINS_READ
from server.services.errors import NotFound

DeliveryStatus = strawberry.enum(
    m.DeliveryStatus, description="Where an event's delivery to a plugin stands."
)


@strawberry.type(description="An installed plugin, enabled or not.")
class PluginInfo:
    name: str
    version: str
    enabled: bool
    source: str = strawberry.field(description="'built-in', 'entry point' or 'explicit'.")
    description: str
    core_version: str = strawberry.field(description="The shopgraph versions it supports.")
    requires: list[str]
    hooks: list[str] = strawberry.field(description="The hooks it implements.")
    permissions: list[str] = strawberry.field(description="The permissions it adds.")


class OutboxEventByIdLoader(ModelByIdLoader):
    model = m.OutboxEvent


class OutboxDeliveryByIdLoader(ModelByIdLoader):
    model = m.OutboxDelivery


@strawberry.type(description="A domain event, as written in the outbox.")
class OutboxEvent:
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
    status: DeliveryStatus  # type: ignore[valid-type]  # strawberry.enum() returns the enum class; mypy sees a variable
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    _model: strawberry.Private[m.OutboxDelivery]

    @classmethod
    def from_model(cls, model: m.OutboxDelivery) -> OutboxDelivery:  # type: ignore[override]  # from the model alone: no keyword values
        return cls(
            id=model.id,  # type: ignore[arg-type]  # a stored delivery has its id
            plugin=model.plugin,
            status=model.status,
            attempts=model.attempts,
            next_attempt_at=model.next_attempt_at,
            last_error=model.last_error,
            delivered_at=model.delivered_at,
            created_at=model.created_at,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: Any) -> bool:
        return info.context.viewer.has(EVENTS_MANAGE)

    @strawberry.field
    async def event(self, info: Info) -> OutboxEvent | None:
        row = await info.context.loaders.get(OutboxEventByIdLoader).load(self._model.event_id)
        if row is None:
            return None
        return OutboxEvent(
            id=row.id,
            name=row.name,
            payload=row.payload,
            created_at=row.created_at,
            dispatched_at=row.dispatched_at,
        )


@strawberry.input
class OutboxDeliveryFilter:
    status: DeliveryStatus | None = None  # type: ignore[valid-type]  # strawberry.enum() returns the enum class; mypy sees a variable
    plugin: str | None = None
    event_name: str | None = None


@strawberry.type
class PluginQueries:
    @strawberry.field(
        permission_classes=[HasPermission(PLUGINS_READ)],
        description="Every discovered plugin (plugins.read).",
    )
    def plugins(self, info: Info) -> list[PluginInfo]:
        return [
            PluginInfo(
                name=r.name,
                version=r.version,
                enabled=r.enabled,
                source=r.source,
                description=r.description,
                core_version=r.core_version,
                requires=list(r.requires),
                hooks=list(r.hooks),
                permissions=list(r.permissions),
            )
            for r in info.context.plugins.records
        ]

    @strawberry.field(
        permission_classes=[HasPermission(EVENTS_MANAGE)],
        description="Event deliveries to plugins, newest first; filter by status DEAD for the "
        "dead letters (events.manage).",
    )
    async def outbox_deliveries(
        self,
        info: Info,
        filter: OutboxDeliveryFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[OutboxDelivery]:
        stmt = select(m.OutboxDelivery)
        if filter is not None:
            if filter.status is not None:
                stmt = stmt.where(m.OutboxDelivery.status == filter.status)
            if filter.plugin is not None:
                stmt = stmt.where(col(m.OutboxDelivery.plugin) == filter.plugin)
            if filter.event_name is not None:
                stmt = stmt.where(
                    col(m.OutboxDelivery.event_id).in_(
                        select(col(m.OutboxEvent.id)).where(
                            col(m.OutboxEvent.name) == filter.event_name
                        )
                    )
                )
        return await paginate(
            info.context.db.scalars,
            stmt,
            keys=[],
            id_column=m.OutboxDelivery.id,  # type: ignore[arg-type]  # the ORM attribute stands in for its column
            descending=True,
            to_node=OutboxDelivery.from_model,
            key_of=lambda d: [d.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
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


async def _requeue(session: AsyncSession, delivery_id: int) -> m.OutboxDelivery:
    """Give a delivery (typically DEAD) a fresh set of attempts, due now."""
    result = await session.execute(
        update(m.OutboxDelivery)
        .where(col(m.OutboxDelivery.id) == delivery_id)
        .where(col(m.OutboxDelivery.status) != m.DeliveryStatus.DELIVERED)
        .values(
            status=m.DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=m.utcnow(),
            claim_token=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    row = await session.get(m.OutboxDelivery, delivery_id, populate_existing=True)
    if row is None or result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's or DELETE's result is a CursorResult, which execute's type does not say
        raise NotFound("undelivered outbox delivery", delivery_id, field="deliveryId")
    return row


@strawberry.type
class PluginMutations:
    @strawberry.mutation(
        permission_classes=[HasPermission(EVENTS_MANAGE)],
        description="Retry a failed (e.g. DEAD) event delivery from scratch (events.manage).",
    )
    async def retry_outbox_delivery(
        self, info: Info, input: RetryOutboxDeliveryInput
    ) -> RetryOutboxDeliveryResult:
        result = await run_mutation(
            info,
            lambda s: _requeue(
                s, require_node_id(input.delivery_id, "OutboxDelivery", "deliveryId")
            ),
        )
        if isinstance(result, m.OutboxDelivery):
            return RetryOutboxDeliverySuccess(delivery=OutboxDelivery.from_model(result))
        return result  # type: ignore[return-value]  # run_mutation types the Error base; _requeue fails only as the union's errors


QUERIES: list[type[Any]] = [PluginQueries]
MUTATIONS: list[type[Any]] = [PluginMutations]
TYPES: list[type[Any]] = [OutboxDelivery]
