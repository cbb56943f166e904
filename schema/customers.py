"""Customers over GraphQL: accounts (register, login), profiles, addresses, the staff's
customer administration, and behaviour events (the shopping path)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from schema.loaders import (
    AddressByIdLoader,
    AddressesByCustomerIdLoader,
    CustomerByIdLoader,
    CustomerEventByIdLoader,
    ProductByIdLoader,
    StaffUserByIdLoader,
)
from schema.products import Product
from server import models as m
from server.graphql import audit
from server.graphql.context import Database, Info
from server.graphql.errors import (
    AuthenticationError,
    Error,
    NotFoundError,
    ValidationError,
    to_graphql,
)
from server.graphql.ids import (
    filter_node_id,
    optional_node_id,
    parse_node_id,
    require_node_id,
)
from server.graphql.mutations import run_mutation
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, PaginationError, SortDirection, SortKey, paginate
from server.graphql.permissions import HasPermission, IsCustomer
from server.permissions import AUDIT_READ, CUSTOMERS_MANAGE, CUSTOMERS_READ, STAFF_MANAGE
from server.services import accounts, behaviour
from server.services import customers as service
from server.services.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")

MembershipTier = strawberry.enum(m.MembershipTier, description="Membership tiers.")
StaffRole = strawberry.enum(m.StaffRole, description="What a staff user is responsible for.")
CustomerEventKind = strawberry.enum(m.CustomerEventKind, description="Steps of the shopping path.")


# --- loaders --------------------------------------------------------------------------------


class LatestProductIdsByCustomerLoader(DataLoader[tuple[int, m.CustomerEventKind, int], list[int]]):
    """Keys ``(customer_id, kind, limit)`` → distinct product ids of the customer's events of
    that kind, newest first (favourites, recently viewed). One statement per (kind, limit)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[tuple[int, m.CustomerEventKind, int]]) -> list[list[int]]:
        groups: dict[tuple[m.CustomerEventKind, int], set[int]] = defaultdict(set)
        for customer_id, kind, limit in keys:
            groups[(kind, limit)].add(customer_id)
        found: dict[tuple[int, m.CustomerEventKind, int], list[int]] = defaultdict(list)
        for (kind, limit), customer_ids in groups.items():
            stmt = behaviour.latest_products_stmt(customer_ids, kind, limit)
            for customer_id, product_id, _rank in await self.db.rows(stmt):
                found[(customer_id, kind, limit)].append(product_id)
        return [found.get(key, []) for key in keys]


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


# --- types ----------------------------------------------------------------------------------


def _is_self_or_staff(info: Info, customer_id: int | None) -> bool:
    """The customer themself, or staff / an app holding customers.read (customer PII)."""
    viewer = info.context.viewer
    if viewer.is_customer:
        return viewer.customer_id == customer_id
    return viewer.has(CUSTOMERS_READ)


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
    def from_model(cls, model: m.Address) -> Address:
        return cls(
            id=model.id,
            recipient_name=model.recipient_name,
            phone=model.phone,
            province=model.province,
            city=model.city,
            district=model.district,
            street=model.street,
            postal_code=model.postal_code,
            is_default=model.is_default,
            created_at=model.created_at,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.Address) -> bool:
        return _is_self_or_staff(info, model.customer_id)


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
    membership_tier: MembershipTier
    tags: list[str]
    interests: list[str]
    created_at: datetime
    _model: strawberry.Private[m.Customer]

    @classmethod
    def from_model(cls, model: m.Customer) -> Customer:
        return cls(
            id=model.id,
            email=model.email,
            first_name=model.first_name,
            last_name=model.last_name,
            phone=model.phone,
            gender=model.gender,
            age_band=model.age_band,
            region=model.region,
            city=model.city,
            city_tier=model.city_tier,
            occupation=model.occupation,
            membership_tier=model.membership_tier,
            tags=list(model.tags),
            interests=list(model.interests),
            created_at=model.created_at,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.Customer) -> bool:
        return _is_self_or_staff(info, model.id)

    @strawberry.field(description="The customer's addresses, the default one first.")
    async def addresses(self, info: Info) -> list[Address]:
        rows = await info.context.loaders.get(AddressesByCustomerIdLoader).load(self._model.id)
        ordered = sorted(rows, key=lambda a: (not a.is_default, a.id))
        return [Address.from_model(row) for row in ordered]

    @strawberry.field
    async def default_address(self, info: Info) -> Address | None:
        rows = await info.context.loaders.get(AddressesByCustomerIdLoader).load(self._model.id)
        return next((Address.from_model(a) for a in rows if a.is_default), None)

    @strawberry.field(description="Products the customer favourited: distinct, latest first.")
    async def favorites(self, info: Info, first: int = 20) -> list[Product]:
        return await _latest_products(info, self._model.id, m.CustomerEventKind.FAVORITE, first)

    @strawberry.field(description="Products the customer viewed: distinct, latest first.")
    async def recently_viewed(self, info: Info, first: int = 10) -> list[Product]:
        return await _latest_products(info, self._model.id, m.CustomerEventKind.VIEW, first)


@strawberry.type(description="A member of the shop's staff.")
class StaffUser(ModelNode):
    loader = StaffUserByIdLoader

    id: relay.NodeID[int]
    email: str
    name: str
    role: StaffRole
    created_at: datetime

    @classmethod
    def from_model(cls, model: m.StaffUser) -> StaffUser:
        return cls(
            id=model.id,
            email=model.email,
            name=model.name,
            role=model.role,
            created_at=model.created_at,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.StaffUser) -> bool:
        # Oneself; staff.manage; audit.read, which names staff users in the log anyway.
        viewer = info.context.viewer
        return (viewer.is_staff and viewer.staff_id == model.id) or viewer.has(
            STAFF_MANAGE, AUDIT_READ
        )


@strawberry.type(description="One step of a customer's (or anonymous visitor's) shopping path.")
class CustomerEvent(ModelNode):
    loader = CustomerEventByIdLoader

    id: relay.NodeID[int]
    kind: CustomerEventKind
    session_id: str | None
    query: str | None
    quantity: int | None
    result_count: int | None
    occurred_at: datetime
    _model: strawberry.Private[m.CustomerEvent]

    @classmethod
    def from_model(cls, model: m.CustomerEvent) -> CustomerEvent:
        count = (model.data or {}).get("result_count")
        return cls(
            id=model.id,
            kind=model.kind,
            session_id=model.session_id,
            query=model.query,
            quantity=model.quantity,
            result_count=int(count) if count is not None else None,
            occurred_at=model.occurred_at,
            _model=model,
        )

    @classmethod
    def can_view(cls, info: Info, model: m.CustomerEvent) -> bool:
        viewer = info.context.viewer
        return viewer.has(CUSTOMERS_READ) or (
            model.customer_id is not None and _is_self_or_staff(info, model.customer_id)
        )

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        if self._model.customer_id is None:
            return None
        row = await info.context.loaders.get(CustomerByIdLoader).load(self._model.customer_id)
        if row is None or not Customer.can_view(info, row):
            return None
        return Customer.from_model(row)

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        if self._model.product_id is None:
            return None
        row = await info.context.loaders.get(ProductByIdLoader).load(self._model.product_id)
        return Product.from_model(row) if row is not None else None

    @strawberry.field(description="The order of a PURCHASE event.")
    def order_id(self) -> relay.GlobalID | None:
        if self._model.order_id is None:
            return None
        return relay.GlobalID("Order", str(self._model.order_id))


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
    membership_tier: MembershipTier | None = None
    tag: str | None = None
    region: str | None = None
    city: str | None = None
    search: str | None = strawberry.field(
        default=None, description="A substring of the email or the name (case-insensitive)."
    )


@strawberry.input
class CustomerEventFilter:
    customer_id: strawberry.ID | None = None
    kind: CustomerEventKind | None = None
    product_id: strawberry.ID | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Events at or after this time."
    )
    to: datetime | None = strawberry.field(default=None, description="Events before this time.")


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
    )
    async def customers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: CustomerFilter | None = None,
        sort: CustomerSort | None = None,
    ) -> Connection[Customer]:
        flt = filter or CustomerFilter()
        order = sort or CustomerSort()
        dialect = "sqlite" if info.context.settings.is_sqlite else "postgresql"
        conditions = service.customer_conditions(
            service.CustomerFilter(
                membership_tier=flt.membership_tier,
                tag=flt.tag,
                region=flt.region,
                city=flt.city,
                search=flt.search,
            ),
            dialect,
        )
        if order.field is CustomerSortField.EMAIL:
            keys = [SortKey(m.Customer.email, "email")]

            def key_of(c: m.Customer) -> list[Any]:
                return [c.email, c.id]
        else:
            keys = [SortKey(m.Customer.created_at, "created_at")]

            def key_of(c: m.Customer) -> list[Any]:
                return [c.created_at, c.id]

        return await paginate(
            info.context.db.scalars,
            select(m.Customer).where(*conditions),
            keys=keys,
            id_column=m.Customer.id,
            descending=order.direction is SortDirection.DESC,
            to_node=Customer.from_model,
            key_of=key_of,
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )

    @strawberry.field(
        description="Behaviour events, newest first (customers.read).",
        permission_classes=[HasPermission(CUSTOMERS_READ)],
    )
    async def customer_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: CustomerEventFilter | None = None,
    ) -> Connection[CustomerEvent]:
        flt = filter or CustomerEventFilter()
        conditions = behaviour.event_conditions(
            behaviour.EventFilter(
                customer_id=filter_node_id(flt.customer_id, "Customer"),
                kind=flt.kind,
                product_id=filter_node_id(flt.product_id, "Product"),
                since=flt.from_,
                until=flt.to,
            )
        )
        return await paginate(
            info.context.db.scalars,
            select(m.CustomerEvent).where(*conditions),
            keys=[SortKey(m.CustomerEvent.occurred_at, "occurred_at")],
            id_column=m.CustomerEvent.id,
            descending=True,
            to_node=CustomerEvent.from_model,
            key_of=lambda e: [e.occurred_at, e.id],
            first=first,
            after=after,
            last=last,
            before=before,
            count=info.context.db.scalar,
        )


# --- mutations: accounts --------------------------------------------------------------------


async def run_read(
    info: Info,
    service_fn: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R | Error:
    """Run a service that only reads (sign-in): its DomainError becomes the typed error."""
    try:
        return await info.context.db.run(service_fn, *args, **kwargs)
    except DomainError as exc:
        return to_graphql(exc)


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


@strawberry.input
class RegisterCustomerInput:
    email: str
    password: str = strawberry.field(description="At least 8 characters.")
    first_name: str
    last_name: str
    phone: str | None = None
    gender: str | None = strawberry.field(default=None, description="FEMALE, MALE or OTHER.")
    age_band: str | None = strawberry.field(
        default=None, description="<18, 18-24, 25-34, 35-44, 45-54 or 55+."
    )
    region: str | None = None
    city: str | None = None
    city_tier: int | None = strawberry.field(default=None, description="1 (first-tier) to 5.")
    occupation: str | None = None
    interests: list[str] | None = None


@strawberry.type(
    description="The answer to every well-formed registration, whether or not the address "
    "already has an account: a link to finish signing up goes to the address (its owner, if "
    "it has an account, is told of the attempt instead)."
)
class RegistrationAccepted:
    email: str = strawberry.field(description="The address, normalised.")
    message: str


@strawberry.input
class ConfirmRegistrationInput:
    token: str = strawberry.field(description="The token of the link sent by registerCustomer.")


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class LoginSuccess:
    customer: Customer
    access_token: str = strawberry.field(description="Short-lived; send as a bearer token.")
    refresh_token: str = strawberry.field(
        description="Single-use; exchange it with refreshToken for a new pair."
    )

    @classmethod
    def signed_in(cls, session: accounts.CustomerSession) -> LoginSuccess:
        return cls(
            customer=Customer.from_model(session.customer),
            access_token=session.access_token,
            refresh_token=session.refresh_token,
        )


@strawberry.type
class StaffLoginSuccess:
    staff: StaffUser
    access_token: str


RegisterCustomerResult = Annotated[
    RegistrationAccepted | ValidationError, strawberry.union("RegisterCustomerResult")
]
LoginResult = Annotated[LoginSuccess | AuthenticationError, strawberry.union("LoginResult")]
StaffLoginResult = Annotated[
    StaffLoginSuccess | AuthenticationError, strawberry.union("StaffLoginResult")
]


def _profile_changes(data: Any) -> service.ProfileChanges:
    """The profile fields an input gives (UNSET ones are left out, null clears)."""
    changes: dict[str, Any] = {}
    for name in (
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
    ):
        value = getattr(data, name, strawberry.UNSET)
        if _given(value):
            changes[name] = value
    return changes  # type: ignore[return-value]


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        description="Ask for a customer account. The answer never tells whether the address "
        "has one: the account is created when the link sent to it is confirmed "
        "(confirmRegistration)."
    )
    async def register_customer(
        self, info: Info, input: RegisterCustomerInput
    ) -> RegisterCustomerResult:
        result = await run_mutation(
            info,
            accounts.register_customer,
            info.context.settings,
            email=input.email,
            password=input.password,
            profile=_profile_changes(input),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RegistrationAccepted(email=result.email, message=accounts.REGISTRATION_ACCEPTED)

    @strawberry.mutation(
        description="Finish a registration with the token of its e-mail link: the account is "
        "created and signed in."
    )
    async def confirm_registration(
        self, info: Info, input: ConfirmRegistrationInput
    ) -> LoginResult:
        result = await run_mutation(
            info, accounts.confirm_registration, info.context.settings, token=input.token
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return LoginSuccess.signed_in(result)

    @strawberry.mutation(description="Sign a customer in.")
    async def login(self, info: Info, input: LoginInput) -> LoginResult:
        # A write: the sign-in's refresh token is stored.
        result = await run_mutation(
            info,
            accounts.login,
            info.context.settings,
            email=input.email,
            password=input.password,
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return LoginSuccess.signed_in(result)

    @strawberry.mutation(
        description="Sign a staff user in; the token carries their role. Every attempt, failed "
        "or not, is in the audit log."
    )
    async def staff_login(self, info: Info, input: LoginInput) -> StaffLoginResult:
        result = await run_read(
            info,
            accounts.staff_login,
            info.context.settings,
            email=input.email,
            password=input.password,
        )
        if isinstance(result, Error):
            await audit.write_sign_in(info, result, staff_id=None)
            return result  # type: ignore[return-value]
        success = StaffLoginSuccess(
            staff=StaffUser.from_model(result.staff), access_token=result.access_token
        )
        await audit.write_sign_in(info, success, staff_id=result.staff.id)
        return success


# --- mutations: profile and addresses -------------------------------------------------------


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

_ADDRESS_FIELDS = (
    "recipient_name",
    "phone",
    "province",
    "city",
    "district",
    "street",
    "postal_code",
)


def _address_fields(data: Any) -> service.AddressFields:
    fields = {name: getattr(data, name) for name in _ADDRESS_FIELDS}
    return {k: v for k, v in fields.items() if _given(v)}  # type: ignore[return-value]


async def _customer_node(info: Info, customer_id: int) -> Customer:
    row = await info.context.loaders.get(CustomerByIdLoader).load(customer_id)
    return Customer.from_model(row)


@strawberry.type
class ProfileMutations:
    @strawberry.mutation(permission_classes=[IsCustomer])
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UpdateProfileResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        result = await run_mutation(
            info, service.update_profile, customer_id, _profile_changes(input)
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return UpdateProfileSuccess(customer=Customer.from_model(result))

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def add_address(self, info: Info, input: AddAddressInput) -> AddAddressResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        result = await run_mutation(
            info,
            service.add_address,
            customer_id,
            _address_fields(input),
            make_default=input.is_default,
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return AddAddressSuccess(
            address=Address.from_model(result), customer=await _customer_node(info, customer_id)
        )

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def update_address(self, info: Info, input: UpdateAddressInput) -> UpdateAddressResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        result = await run_mutation(
            info,
            lambda s: service.update_address(
                s,
                customer_id,
                require_node_id(input.id, "Address", "id"),
                _address_fields(input),
                make_default=input.is_default,
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return UpdateAddressSuccess(
            address=Address.from_model(result), customer=await _customer_node(info, customer_id)
        )

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def set_default_address(
        self, info: Info, input: AddressIdInput
    ) -> SetDefaultAddressResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        result = await run_mutation(
            info,
            lambda s: service.set_default_address(
                s, customer_id, require_node_id(input.id, "Address", "id")
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return SetDefaultAddressSuccess(
            address=Address.from_model(result), customer=await _customer_node(info, customer_id)
        )

    @strawberry.mutation(permission_classes=[IsCustomer])
    async def remove_address(self, info: Info, input: AddressIdInput) -> RemoveAddressResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None
        address_id = parse_node_id(input.id, "Address")
        result = await run_mutation(
            info,
            lambda s: service.remove_address(
                s, customer_id, require_node_id(input.id, "Address", "id")
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RemoveAddressSuccess(
            removed_address_id=relay.GlobalID("Address", str(address_id)),
            customer=await _customer_node(info, customer_id),
        )


# --- mutations: staff administration of customers ------------------------------------------


@strawberry.input
class SetMembershipTierInput:
    customer_id: strawberry.ID
    tier: MembershipTier


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


@strawberry.type
class StaffCustomerMutations:
    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def set_membership_tier(
        self, info: Info, input: SetMembershipTierInput
    ) -> SetMembershipTierResult:
        result = await run_mutation(
            info,
            lambda s: service.set_membership_tier(
                s, require_node_id(input.customer_id, "Customer", "customerId"), input.tier
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return SetMembershipTierSuccess(customer=Customer.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def add_customer_tags(
        self, info: Info, input: CustomerTagsInput
    ) -> AddCustomerTagsResult:
        result = await run_mutation(
            info,
            lambda s: service.add_tags(
                s, require_node_id(input.customer_id, "Customer", "customerId"), input.tags
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return AddCustomerTagsSuccess(customer=Customer.from_model(result))

    @strawberry.mutation(permission_classes=[HasPermission(CUSTOMERS_MANAGE)])
    async def remove_customer_tags(
        self, info: Info, input: CustomerTagsInput
    ) -> RemoveCustomerTagsResult:
        result = await run_mutation(
            info,
            lambda s: service.remove_tags(
                s, require_node_id(input.customer_id, "Customer", "customerId"), input.tags
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RemoveCustomerTagsSuccess(customer=Customer.from_model(result))


# --- mutations: behaviour events ------------------------------------------------------------


@strawberry.input(description="A step of the shopping path, reported by the client.")
class RecordEventInput:
    kind: CustomerEventKind = strawberry.field(
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
        result = await run_mutation(
            info,
            lambda s: behaviour.record_client_event(
                s,
                kind=m.CustomerEventKind(input.kind.value),
                customer_id=info.context.viewer.customer_id,
                session_id=input.session_id,
                product_id=optional_node_id(input.product_id, "Product", "productId"),
                query=input.query,
                quantity=input.quantity,
                result_count=input.result_count,
            ),
        )
        if isinstance(result, Error):
            return result  # type: ignore[return-value]
        return RecordEventSuccess(event=CustomerEvent.from_model(result))


QUERIES: list[type[Any]] = [CustomerQueries]
MUTATIONS: list[type[Any]] = [
    AccountMutations,
    ProfileMutations,
    StaffCustomerMutations,
    BehaviourMutations,
]
TYPES: list[type[Any]] = [Customer, Address, StaffUser, CustomerEvent]
