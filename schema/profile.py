"""The signed-in customer's own data over GraphQL: their profile and their address book."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.customers import Address, Customer, signed_in_customer_id
from server import models as m
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.permissions import IsCustomer
from server.services import customers as service

T = TypeVar("T")

PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "gender",
    "age_band",
    "region",
    "city",
    "city_tier",
    "occupation",
    "interests",
    "surveys_opt_out",
)
ADDRESS_FIELDS = (
    "recipient_name",
    "phone",
    "province",
    "city",
    "district",
    "street",
    "postal_code",
)


def _given(data: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields of ``names`` an input gives: UNSET ones are left out, null is kept."""
    values = {name: getattr(data, name, strawberry.UNSET) for name in names}
    return {name: value for name, value in values.items() if value is not strawberry.UNSET}


def profile_changes(data: Any) -> service.ProfileChanges:
    """The profile fields an input gives (UNSET ones are left out, null clears)."""
    return cast(service.ProfileChanges, _given(data, PROFILE_FIELDS))


def _address_fields(data: Any) -> service.AddressFields:
    return cast(service.AddressFields, _given(data, ADDRESS_FIELDS))


@dataclass(frozen=True)
class _AddressChange:
    """What an address mutation did: the address, and its customer as the change left it."""

    address: m.Address
    customer: m.Customer


def _address_payload(payload: Callable[..., T]) -> Callable[[_AddressChange], T]:
    """How an address mutation's success type is built from what it did."""

    def build(change: _AddressChange) -> T:
        return payload(
            address=Address.from_model(change.address),
            customer=Customer.from_model(change.customer),
        )

    return build


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(description="Only the fields given change; null clears an optional one.")
class UpdateProfileInput:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    gender: str | None = strawberry.UNSET
    age_band: str | None = strawberry.UNSET
    region: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    city_tier: int | None = strawberry.UNSET
    occupation: str | None = strawberry.UNSET
    interests: list[str] | None = strawberry.UNSET
    surveys_opt_out: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="true: send me no satisfaction surveys (the open ones close); false: "
        "surveys are welcome again.",
    )


@strawberry.type
class UpdateProfileSuccess:
    customer: Customer


@strawberry.input
class AddAddressInput:
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str = ""
    street: str
    postal_code: str = ""
    is_default: bool = strawberry.field(
        default=False, description="Make it the default (a first address always is)."
    )


@strawberry.input
class UpdateAddressInput:
    id: strawberry.ID
    recipient_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    province: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    district: str | None = strawberry.UNSET
    street: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    is_default: bool = strawberry.field(
        default=False, description="Make it the default; false leaves the default as it is."
    )


@strawberry.input
class AddressIdInput:
    id: strawberry.ID


@strawberry.type
class AddAddressSuccess:
    address: Address
    customer: Customer


@strawberry.type
class UpdateAddressSuccess:
    address: Address
    customer: Customer


@strawberry.type
class SetDefaultAddressSuccess:
    address: Address
    customer: Customer


@strawberry.type
class RemoveAddressSuccess:
    removed_address_id: relay.GlobalID
    customer: Customer


UpdateProfileResult = Annotated[
    UpdateProfileSuccess | ValidationError, strawberry.union("UpdateProfileResult")
]
AddAddressResult = Annotated[
    AddAddressSuccess | ValidationError, strawberry.union("AddAddressResult")
]
UpdateAddressResult = Annotated[
    UpdateAddressSuccess | ValidationError | NotFoundError, strawberry.union("UpdateAddressResult")
]
SetDefaultAddressResult = Annotated[
    SetDefaultAddressSuccess | NotFoundError, strawberry.union("SetDefaultAddressResult")
]
RemoveAddressResult = Annotated[
    RemoveAddressSuccess | NotFoundError, strawberry.union("RemoveAddressResult")
]


# --- mutations ------------------------------------------------------------------------------


@strawberry.type
class ProfileMutations:
    @strawberry.mutation(permission_classes=[IsCustomer])
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UpdateProfileResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> m.Customer:
            return await service.update_profile(session, customer_id, profile_changes(input))

        return await mutate(
            info, work, lambda row: UpdateProfileSuccess(customer=Customer.from_model(row))
        )

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def add_address(self, info: Info, input: AddAddressInput) -> AddAddressResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> _AddressChange:
            address = await service.add_address(
                session, customer_id, _address_fields(input), make_default=input.is_default
            )
            return _AddressChange(address, await service.get_customer(session, customer_id))

        return await mutate(info, work, _address_payload(AddAddressSuccess))

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def update_address(self, info: Info, input: UpdateAddressInput) -> UpdateAddressResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> _AddressChange:
            address = await service.update_address(
                session,
                customer_id,
                require_node_id(input.id, "Address", "id"),
                _address_fields(input),
                make_default=input.is_default,
            )
            return _AddressChange(address, await service.get_customer(session, customer_id))

        return await mutate(info, work, _address_payload(UpdateAddressSuccess))

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def set_default_address(
        self, info: Info, input: AddressIdInput
    ) -> SetDefaultAddressResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> _AddressChange:
            address_id = require_node_id(input.id, "Address", "id")
            address = await service.set_default_address(session, customer_id, address_id)
            return _AddressChange(address, await service.get_customer(session, customer_id))

        return await mutate(info, work, _address_payload(SetDefaultAddressSuccess))

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def remove_address(self, info: Info, input: AddressIdInput) -> RemoveAddressResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> tuple[int, m.Customer]:
            address_id = require_node_id(input.id, "Address", "id")
            return address_id, await service.remove_address(session, customer_id, address_id)

        def removed(result: tuple[int, m.Customer]) -> RemoveAddressSuccess:
            address_id, customer = result
            return RemoveAddressSuccess(
                removed_address_id=relay.GlobalID("Address", str(address_id)),
                customer=Customer.from_model(customer),
            )

        return await mutate(info, work, removed)


QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = [ProfileMutations]
TYPES: list[type[Any]] = []
