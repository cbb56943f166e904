"""A customer's personal data over GraphQL: export everything the shop holds about them, and
erase it."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.scalars import JSON

from schema.customers import signed_in_customer_id
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import AuthenticationError, NotFoundError
from server.graphql.mutations import mutate
from server.graphql.permissions import IsCustomer
from server.services import privacy as service


@strawberry.type
class PrivacyQueries:
    @strawberry.field(
        description="Everything the shop holds about the signed-in customer, as JSON: profile, "
        "addresses, orders (lines, status history, payments, shipments), carts, behaviour events.",
        permission_classes=[IsCustomer],
    )
    async def export_my_data(self, info: Info) -> JSON:
        data = await info.context.db.run(service.export_customer_data, signed_in_customer_id(info))
        return JSON(data)


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
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> m.Customer:
            return await service.erase_customer(
                session, info.context.settings, customer_id, input.password
            )

        def erased(_: m.Customer) -> EraseMyAccountSuccess:
            return EraseMyAccountSuccess(
                erased_customer_id=relay.GlobalID("Customer", str(customer_id))
            )

        return await mutate(info, work, erased)


QUERIES: list[type[Any]] = [PrivacyQueries]
MUTATIONS: list[type[Any]] = [PrivacyMutations]
TYPES: list[type[Any]] = []
