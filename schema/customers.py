"""Customers over GraphQL: the Customer and Address types, the signed-in customer (``me``),
and the staff's customer administration (the customer list, membership tiers, tags)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.loaders import (
    AddressByIdLoader,
    AddressesByCustomerIdLoader,
    CustomerByIdLoader,
    LatestProductIdsByCustomerLoader,
    OrderPagesByCustomerIdLoader,
    ProductByIdLoader,
)
from schema.products import Product
from server import models as m
from server.graphql.connections import Paged, connection, nested_connection
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, PaginationError, SortDirection, SortKey
from server.graphql.permissions import HasPermission
from server.permissions import (
    CUSTOMERS_MANAGE,
    CUSTOMERS_READ,
    INSIGHTS_MANAGE,
    INSIGHTS_READ,
    ORDERS_MANAGE,
    ORDERS_READ,
)
from server.services import customers as service

if TYPE_CHECKING:
    from schema.orders import Order

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.MembershipTier, description="Membership tiers.")
strawberry.enum(
    m.CustomerSegment,
    description="The eight RFM segments (insights.read): R, F and M each high or low against "
    "the shop's average score. Chinese names: CustomerRfm.segmentLabel.",
)


async def _latest_products(
    info: Info, customer_id: int, kind: m.CustomerEventKind, first: int
) -> list[Product]:
    if not 0 <= first <= 100:
        raise PaginationError("first must be between 0 and 100")
    if first == 0:
        return []
    loaders = info.context.loaders
    ids = await loaders.get(LatestProductIdsByCustomerLoader).load((customer_id, kind, first))
    rows = await loaders.get(ProductByIdLoader).load_many(ids)
    return [Product.from_model(row) for row in rows if row is not None]


def signed_in_customer_id(info: Info) -> int:
    """The signed-in customer's id, in a field that ``IsCustomer`` admits."""
    customer_id = info.context.viewer.customer_id
    assert customer_id is not None  # IsCustomer let the call through
    return customer_id


def _sees_orders_of(info: Info, customer_id: int) -> bool:
    """Whether the viewer may see every order of the customer (the rule of an order: its
    customer, or orders.read / orders.manage)."""
    viewer = info.context.viewer
    return viewer.customer_id == customer_id or viewer.has(ORDERS_READ, ORDERS_MANAGE)


@strawberry.type(description="A delivery address in China.")
class Address(ModelNode):
    loader = AddressByIdLoader

    id: relay.NodeID[int]
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    street: str
    postal_code: str
    is_default: bool
    created_at: datetime

    @classmethod
    def can_view(cls, info: Info, model: m.Address) -> bool:
        return service.can_view(info.context.viewer, model.customer_id)


@strawberry.type(description="A customer: visible to themself and with customers.read only.")
class Customer(ModelNode):
    loader = CustomerByIdLoader

    id: relay.NodeID[int]
    email: str
    first_name: str
    last_name: str
    phone: str | None
    gender: str | None
    age_band: str | None
    region: str | None
    city: str | None
    city_tier: int | None
    occupation: str | None
    membership_tier: m.MembershipTier
    tags: list[str]
    interests: list[str]
    surveys_opt_out: bool = strawberry.field(
        description="The customer asked for no satisfaction surveys (updateProfile)."
    )
    created_at: datetime
    _model: strawberry.Private[m.Customer]

    @classmethod
    def can_view(cls, info: Info, model: m.Customer) -> bool:
        return service.can_view(info.context.viewer, model.id)

    @strawberry.field(description="The customer's addresses, the default one first.")
    async def addresses(self, info: Info) -> list[Address]:
        rows = await info.context.loaders.get(AddressesByCustomerIdLoader).load(self.id)
        ordered = sorted(rows, key=lambda a: (not a.is_default, a.id))
        return [Address.from_model(row) for row in ordered]

    @strawberry.field
    async def default_address(self, info: Info) -> Address | None:
        rows = await info.context.loaders.get(AddressesByCustomerIdLoader).load(self.id)
        return next((Address.from_model(a) for a in rows if a.is_default), None)

    @strawberry.field(description="Products the customer favourited: distinct, latest first.")
    async def favorites(self, info: Info, first: int = 20) -> list[Product]:
        return await _latest_products(info, self.id, m.CustomerEventKind.FAVORITE, first)

    @strawberry.field(description="Products the customer viewed: distinct, latest first.")
    async def recently_viewed(self, info: Info, first: int = 10) -> list[Product]:
        return await _latest_products(info, self.id, m.CustomerEventKind.VIEW, first)

    @strawberry.field(
        description="The customer's orders, newest first: shown to the customer themself and "
        "with orders.read; anyone else sees none.",
        extensions=[Paged()],
    )
    async def orders(
        self,
        info: Info,
        page: Page,
    ) -> Connection[Annotated[Order, strawberry.lazy("schema.orders")]]:
        from schema.orders import Order

        customer_id = self._model.id
        if customer_id is None or not _sees_orders_of(info, customer_id):
            return OrderPagesByCustomerIdLoader.empty(page)
        return await nested_connection(
            info, OrderPagesByCustomerIdLoader, customer_id, page, to_node=Order.from_model
        )


# --- queries --------------------------------------------------------------------------------


@strawberry.enum
class CustomerSortField(Enum):
    CREATED_AT = "CREATED_AT"
    EMAIL = "EMAIL"


@strawberry.input
class CustomerSort:
    field: CustomerSortField = CustomerSortField.CREATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class CustomerFilter:
    membership_tier: m.MembershipTier | None = None
    tag: str | None = None
    region: str | None = None
    city: str | None = None
    search: str | None = strawberry.field(
        default=None, description="A substring of the email or the name (case-insensitive)."
    )
    segment: m.CustomerSegment | None = strawberry.field(
        default=None,
        description="Customers now in this RFM segment (needs insights.read as well).",
    )


_SORT_KEYS = {
    CustomerSortField.CREATED_AT: SortKey(m.Customer.created_at, "created_at"),
    CustomerSortField.EMAIL: SortKey(m.Customer.email, "email"),
}


@strawberry.type
class CustomerQueries:
    @strawberry.field(description="The signed-in customer; null when anonymous or staff.")
    async def me(self, info: Info) -> Customer | None:
        customer_id = info.context.viewer.customer_id
        if customer_id is None:
            return None
        row = await info.context.loaders.get(CustomerByIdLoader).load(customer_id)
        return Customer.from_model(row) if row is not None and row.is_active else None

    @strawberry.field(
        description="Customers (customers.read).",
        permission_classes=[HasPermission(CUSTOMERS_READ)],
        extensions=[Paged()],
    )
    async def customers(
        self,
        info: Info,
        page: Page,
        filter: CustomerFilter | None = None,
        sort: CustomerSort | None = None,
    ) -> Connection[Customer]:
        flt = filter or CustomerFilter()
        if flt.segment is not None and not info.context.viewer.has(INSIGHTS_READ, INSIGHTS_MANAGE):
            # Who is in a segment is an insight: a reader of customers alone may not sort them so.
            raise GraphQLError(
                f"Filtering by segment requires the permission {INSIGHTS_READ} or "
                f"{INSIGHTS_MANAGE}.",
                extensions={"code": "FORBIDDEN", "permission": [INSIGHTS_READ, INSIGHTS_MANAGE]},
            )
        order = sort or CustomerSort()
        dialect = "sqlite" if info.context.settings.is_sqlite else "postgresql"
        stmt = service.customers_query(
            service.CustomerFilter(
                membership_tier=flt.membership_tier,
                tag=flt.tag,
                region=flt.region,
                city=flt.city,
                search=flt.search,
                segment=flt.segment,
            ),
            dialect,
        )
        return await connection(
            info,
            stmt,
            page,
            sort=[_SORT_KEYS[order.field]],
            to_node=Customer.from_model,
            descending=order.direction is SortDirection.DESC,
        )


# --- mutations: staff administration of customers ------------------------------------------


@strawberry.input
class SetMembershipTierInput:
    customer_id: strawberry.ID
    tier: m.MembershipTier


@strawberry.input
class CustomerTagsInput:
    customer_id: strawberry.ID
    tags: list[str]


@strawberry.type
class SetMembershipTierSuccess:
    customer: Customer


@strawberry.type
class AddCustomerTagsSuccess:
    customer: Customer


@strawberry.type
class RemoveCustomerTagsSuccess:
    customer: Customer


SetMembershipTierResult = Annotated[
    SetMembershipTierSuccess | NotFoundError, strawberry.union("SetMembershipTierResult")
]
AddCustomerTagsResult = Annotated[
    AddCustomerTagsSuccess | ValidationError | NotFoundError,
    strawberry.union("AddCustomerTagsResult"),
]
RemoveCustomerTagsResult = Annotated[
    RemoveCustomerTagsSuccess | ValidationError | NotFoundError,
    strawberry.union("RemoveCustomerTagsResult"),
]


def _customer_id(input: SetMembershipTierInput | CustomerTagsInput) -> int:
    return require_node_id(input.customer_id, "Customer", "customerId")


@strawberry.type
class StaffCustomerMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def set_membership_tier(
        self, info: Info, input: SetMembershipTierInput
    ) -> SetMembershipTierResult:
        async def work(session: AsyncSession) -> m.Customer:
            return await service.set_membership_tier(session, _customer_id(input), input.tier)

        return await mutate(
            info, work, lambda row: SetMembershipTierSuccess(customer=Customer.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def add_customer_tags(
        self, info: Info, input: CustomerTagsInput
    ) -> AddCustomerTagsResult:
        async def work(session: AsyncSession) -> m.Customer:
            return await service.add_tags(session, _customer_id(input), input.tags)

        return await mutate(
            info, work, lambda row: AddCustomerTagsSuccess(customer=Customer.from_model(row))
        )

    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def remove_customer_tags(
        self, info: Info, input: CustomerTagsInput
    ) -> RemoveCustomerTagsResult:
        async def work(session: AsyncSession) -> m.Customer:
            return await service.remove_tags(session, _customer_id(input), input.tags)

        return await mutate(
            info, work, lambda row: RemoveCustomerTagsSuccess(customer=Customer.from_model(row))
        )


QUERIES: list[type[Any]] = [CustomerQueries]
MUTATIONS: list[type[Any]] = [StaffCustomerMutations]
TYPES: list[type[Any]] = [Customer, Address]
