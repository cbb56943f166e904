"""The shopping path over GraphQL: behaviour events (view, search, favourite, add to cart,
purchase) reported by clients and read by staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

import schema.channels  # noqa: F401  # registers the SalesChannel enum this module names
from schema.customers import Customer
from schema.loaders import CustomerByIdLoader, CustomerEventByIdLoader, ProductByIdLoader
from schema.products import Product
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import filter_node_id, optional_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortKey
from server.graphql.permissions import HasPermission
from server.permissions import CUSTOMERS_READ
from server.services import behaviour as service
from server.services import channels, customers

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.CustomerEventKind, description="Steps of the shopping path.")


@strawberry.type(description="One step of a customer's (or anonymous visitor's) shopping path.")
class CustomerEvent(ModelNode):
    loader = CustomerEventByIdLoader

    id: relay.NodeID[int]
    kind: m.CustomerEventKind
    session_id: str | None
    query: str | None
    quantity: int | None
    result_count: int | None
    channel: m.SalesChannel | None = strawberry.field(
        description="Where the visitor came from, as the client reported it."
    )
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    occurred_at: datetime
    _model: strawberry.Private[m.CustomerEvent]

    @classmethod
    def from_model(cls, row: Any, **values: Any) -> Self:
        """The event's node; a search's result count is kept in the event's data."""
        count = (row.data or {}).get("result_count")
        values.setdefault("result_count", int(count) if count is not None else None)
        return super().from_model(row, **values)

    @classmethod
    def can_view(cls, info: Info, model: m.CustomerEvent) -> bool:
        viewer = info.context.viewer
        return viewer.has(CUSTOMERS_READ) or (
            model.customer_id is not None and customers.can_view(viewer, model.customer_id)
        )

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        if self._model.customer_id is None:
            return None
        row = await info.context.loaders.get(CustomerByIdLoader).load(self._model.customer_id)
        return (
            Customer.from_model(row) if row is not None and Customer.can_view(info, row) else None
        )

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        if self._model.product_id is None:
            return None
        row = await info.context.loaders.get(ProductByIdLoader).load(self._model.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(
        description="A VIEW's or ADD_TO_CART's search: the SEARCH event it is a click on."
    )
    def search_id(self) -> relay.GlobalID | None:
        if self._model.search_id is None:
            return None
        return relay.GlobalID("CustomerEvent", str(self._model.search_id))

    @strawberry.field(description="The order of a PURCHASE event.")
    def order_id(self) -> relay.GlobalID | None:
        if self._model.order_id is None:
            return None
        return relay.GlobalID("Order", str(self._model.order_id))


@strawberry.input
class CustomerEventFilter:
    customer_id: strawberry.ID | None = None
    kind: m.CustomerEventKind | None = None
    product_id: strawberry.ID | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Events at or after this time."
    )
    to: datetime | None = strawberry.field(default=None, description="Events before this time.")


@strawberry.type
class BehaviourQueries:
    @strawberry.field(
        description="Behaviour events, newest first (customers.read).",
        permission_classes=[HasPermission(CUSTOMERS_READ)],
        extensions=[Paged()],
    )
    async def customer_events(
        self,
        info: Info,
        page: Page,
        filter: CustomerEventFilter | None = None,
    ) -> Connection[CustomerEvent]:
        flt = filter or CustomerEventFilter()
        stmt = service.events_query(
            service.EventFilter(
                customer_id=filter_node_id(flt.customer_id, "Customer"),
                kind=flt.kind,
                product_id=filter_node_id(flt.product_id, "Product"),
                since=flt.from_,
                until=flt.to,
            )
        )
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(m.CustomerEvent.occurred_at, "occurred_at")],
            to_node=CustomerEvent.from_model,
            descending=True,
        )


@strawberry.input(description="A step of the shopping path, reported by the client.")
class RecordEventInput:
    kind: m.CustomerEventKind = strawberry.field(
        description="VIEW, SEARCH, FAVORITE or ADD_TO_CART (PURCHASE is recorded by checkout)."
    )
    product_id: strawberry.ID | None = None
    query: str | None = strawberry.field(default=None, description="The search text (SEARCH).")
    session_id: str | None = strawberry.field(
        default=None, description="Follows an anonymous visitor; required when not signed in."
    )
    quantity: int | None = strawberry.field(default=None, description="ADD_TO_CART only.")
    result_count: int | None = strawberry.field(
        default=None, description="How many results the search found (SEARCH)."
    )
    search_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="VIEW, ADD_TO_CART: the id of the viewer's SEARCH event whose results "
        "this was chosen from.",
    )
    channel: str | None = strawberry.field(
        default=None,
        description="Where the visitor came from: a SalesChannel's name (any case). Report it "
        "with the event of their arrival: an event with a channel is a touch that "
        "attribution credits.",
    )
    utm_source: str | None = strawberry.field(default=None, description="At most 100.")
    utm_medium: str | None = strawberry.field(default=None, description="At most 100.")
    utm_campaign: str | None = strawberry.field(default=None, description="At most 100.")


@strawberry.type
class RecordEventSuccess:
    event: CustomerEvent


RecordEventResult = Annotated[
    RecordEventSuccess | ValidationError | NotFoundError, strawberry.union("RecordEventResult")
]


@strawberry.type
class BehaviourMutations:
    @strawberry.mutation(description="Record a behaviour event for the viewer.")
    async def record_event(self, info: Info, input: RecordEventInput) -> RecordEventResult:
        async def work(session: AsyncSession) -> m.CustomerEvent:
            return await service.record_client_event(
                session,
                kind=m.CustomerEventKind(input.kind.value),
                customer_id=info.context.viewer.customer_id,
                session_id=input.session_id,
                product_id=optional_node_id(input.product_id, "Product", "productId"),
                query=input.query,
                quantity=input.quantity,
                result_count=input.result_count,
                search_id=optional_node_id(input.search_id, "CustomerEvent", "searchId"),
                source=channels.traffic_source(
                    input.channel, input.utm_source, input.utm_medium, input.utm_campaign
                ),
            )

        return await mutate(
            info, work, lambda row: RecordEventSuccess(event=CustomerEvent.from_model(row))
        )


QUERIES: list[type[Any]] = [BehaviourQueries]
MUTATIONS: list[type[Any]] = [BehaviourMutations]
TYPES: list[type[Any]] = [CustomerEvent]
