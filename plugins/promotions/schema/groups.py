"""Group buying (拼团) over GraphQL: a cart opens or joins a group (``openGroupBuy``,
``joinGroupBuy``, ``leaveGroupBuy``), anyone holding a code reads the group's progress
(``groupBuy``: no member is named), a customer lists their own (``myGroupBuys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay

from plugins.promotions.models import CODE_MAX, BuyGroup, CartGroupChoice, GroupMember, GroupStatus
from plugins.promotions.models import Promotion as PromotionRow
from plugins.promotions.service import groups
from server.models import Order as OrderRow
from server.models import OrderStatus
from server.plugin import (
    ConflictError,
    Connection,
    Error,
    Info,
    IsCustomer,
    ModelByIdLoader,
    NotFoundError,
    Page,
    Paged,
    SortKey,
    ValidationError,
    connection,
    parse_node_id,
    run_mutation,
)
from server.services import carts

strawberry.enum(
    GroupStatus,
    name="GroupBuyStatus",
    description="OPEN: taking members until expiresAt; SUCCEEDED: full, its orders proceed; "
    "EXPIRED: not full in time, its orders were cancelled (stock and payments given back).",
)


class _GroupRows(ModelByIdLoader):
    model = BuyGroup


class _PromotionRows(ModelByIdLoader):
    model = PromotionRow


class _OrderRows(ModelByIdLoader):
    model = OrderRow


@strawberry.type(
    description="A group buy (拼团), as anyone holding its code sees it: how many have joined "
    "and how many seats are left; never who."
)
class GroupBuy:
    code: str = strawberry.field(description="The code to share; joinGroupBuy takes it.")
    label: str = strawberry.field(description="The group-buy promotion's label.")
    promotion_id: relay.GlobalID
    size: int = strawberry.field(description="Members the group needs.")
    members: int = strawberry.field(description="Members so far.")
    seats_left: int
    status: GroupStatus
    expires_at: datetime = strawberry.field(
        description="When an OPEN group that is not full expires."
    )


def _group(row: BuyGroup, promotion: PromotionRow | None) -> GroupBuy:
    label = "" if promotion is None else (promotion.label or promotion.name)
    return GroupBuy(
        code=row.code,
        label=label,
        promotion_id=relay.GlobalID("Promotion", str(row.promotion_id)),
        size=row.size,
        members=row.members,
        seats_left=max(row.size - row.members, 0) if row.status is GroupStatus.OPEN else 0,
        status=row.status,
        expires_at=row.expires_at,
    )


@strawberry.type(description="A group buy you are in, with your order in it.")
class MyGroupBuy:
    order_id: relay.GlobalID
    joined_at: datetime
    _group_id: strawberry.Private[int]
    _order_id: strawberry.Private[int]
    _customer_id: strawberry.Private[int]

    async def _row(self, info: Info) -> BuyGroup:
        row: BuyGroup = await info.context.loaders.get(_GroupRows).load(self._group_id)
        return row

    @strawberry.field
    async def group(self, info: Info) -> GroupBuy:
        row = await self._row(info)
        promotion = await info.context.loaders.get(_PromotionRows).load(row.promotion_id)
        return _group(row, promotion)

    @strawberry.field(description="Whether you opened the group.")
    async def leader(self, info: Info) -> bool:
        return (await self._row(info)).leader_customer_id == self._customer_id

    @strawberry.field(description="Your order's number.")
    async def order_number(self, info: Info) -> str:
        row = await info.context.loaders.get(_OrderRows).load(self._order_id)
        return str(row.number)

    @strawberry.field(description="Your order's status.")
    async def order_status(self, info: Info) -> OrderStatus:
        row = await info.context.loaders.get(_OrderRows).load(self._order_id)
        status: OrderStatus = row.status
        return status


def _mine(row: GroupMember) -> MyGroupBuy:
    return MyGroupBuy(
        order_id=relay.GlobalID("Order", str(row.order_id)),
        joined_at=row.created_at,
        _group_id=row.group_id,
        _order_id=row.order_id,
        _customer_id=row.customer_id,
    )


@strawberry.type(
    description="What a cart will do with a group buy when its order is placed: open a new "
    "group of the promotion (group null) or take a seat in group."
)
class CartGroupBuyChoice:
    promotion_id: relay.GlobalID
    group: GroupBuy | None


@strawberry.input
class OpenGroupBuyInput:
    cart_token: str
    promotion_id: strawberry.ID = strawberry.field(description="A GROUP_BUY Promotion's id.")


@strawberry.input
class JoinGroupBuyInput:
    cart_token: str
    code: str = strawberry.field(description=f"A group's code (at most {CODE_MAX} characters).")


@strawberry.input
class LeaveGroupBuyInput:
    cart_token: str


@strawberry.type
class GroupBuyChoiceSuccess:
    choice: CartGroupBuyChoice


@strawberry.type
class LeaveGroupBuySuccess:
    cleared: bool = strawberry.field(description="Whether the cart had a group-buy choice.")


@strawberry.type(
    description="A group-buy choice that was refused, and nothing was written: code "
    "NOT_GROUP_BUY (no group-buy promotion has that id), NOT_STARTED, EXPIRED or PAUSED (the "
    "promotion does not run now), BUDGET_SPENT (its campaign stopped it), GROUP_NOT_FOUND (no "
    "group has that code), GROUP_FULL, GROUP_EXPIRED, ALREADY_IN_GROUP (you are a member "
    "already), SIGN_IN_REQUIRED (a guest cannot open or join a group) or NO_ELIGIBLE_ITEMS "
    "(the cart holds none of the promotion's products)."
)
class GroupBuyRefused(Error):
    pass


GroupBuyChoiceResult = Annotated[
    GroupBuyChoiceSuccess | GroupBuyRefused | NotFoundError | ConflictError | ValidationError,
    strawberry.union("GroupBuyChoiceResult"),
]
LeaveGroupBuyResult = Annotated[
    LeaveGroupBuySuccess | NotFoundError | ConflictError,
    strawberry.union("LeaveGroupBuyResult"),
]


def _refused(result: Error) -> Any:
    if result.code in groups.CODES:
        return GroupBuyRefused(code=result.code, message=result.message, field=result.field)
    return result


async def _choice(session: AsyncSession, row: CartGroupChoice) -> CartGroupBuyChoice:
    group = None
    if row.group_id is not None:
        found = await session.get(BuyGroup, row.group_id)
        promotion = await session.get(PromotionRow, row.promotion_id)
        group = None if found is None else _group(found, promotion)
    return CartGroupBuyChoice(
        promotion_id=relay.GlobalID("Promotion", str(row.promotion_id)), group=group
    )


_NEWEST = [SortKey(GroupMember.created_at, "created_at")]


@strawberry.type
class GroupBuyQueries:
    @strawberry.field(
        description="A group buy by its code (anyone holding the code): its progress, never "
        "its members; null when no group has that code."
    )
    async def group_buy(self, info: Info, code: str) -> GroupBuy | None:
        if len(code) > CODE_MAX:
            return None
        found: Select[Any] = select(BuyGroup, PromotionRow)  # type: ignore[assignment]  # a select of two entities; rows() takes any
        rows = await info.context.db.rows(
            found.join(PromotionRow, col(PromotionRow.id) == BuyGroup.promotion_id).where(
                col(BuyGroup.code) == groups.normalise_code(code)
            )
        )
        return _group(rows[0][0], rows[0][1]) if rows else None

    @strawberry.field(
        description="The signed-in customer's group buys, newest first, each with their order.",
        permission_classes=[IsCustomer],
        extensions=[Paged()],
    )
    async def my_group_buys(self, info: Info, page: Page) -> Connection[MyGroupBuy]:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer
        return await connection(
            info,
            select(GroupMember).where(col(GroupMember.customer_id) == customer_id),
            page,
            sort=_NEWEST,
            to_node=_mine,
            descending=True,
        )


@strawberry.type
class GroupBuyMutations:
    @strawberry.mutation(
        description="Open a group buy with this cart: placing its order opens a new group of "
        "the promotion (the group price, once the group fills within its hours) and makes "
        "you its leader. Replaces the cart's earlier group-buy choice."
    )
    async def open_group_buy(self, info: Info, input: OpenGroupBuyInput) -> GroupBuyChoiceResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> CartGroupBuyChoice:
            cart = await carts.get_cart(session, viewer, input.cart_token)
            promotion_id = parse_node_id(input.promotion_id, "Promotion")
            row = await groups.choose_open(session, cart, viewer.customer_id, promotion_id)
            return await _choice(session, row)

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return _refused(result)
        return GroupBuyChoiceSuccess(choice=result)

    @strawberry.mutation(
        description="Join the group buy of a shared code with this cart: placing its order "
        "takes a seat (refused then if the group filled or expired meanwhile). Replaces the "
        "cart's earlier group-buy choice."
    )
    async def join_group_buy(self, info: Info, input: JoinGroupBuyInput) -> GroupBuyChoiceResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> CartGroupBuyChoice:
            cart = await carts.get_cart(session, viewer, input.cart_token)
            if len(input.code) > CODE_MAX:
                raise groups.GroupBuyRefused(
                    groups.GROUP_NOT_FOUND, "no group buy has this code", field="code"
                )
            row = await groups.choose_join(session, cart, viewer.customer_id, input.code)
            return await _choice(session, row)

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return _refused(result)
        return GroupBuyChoiceSuccess(choice=result)

    @strawberry.mutation(
        description="Clear the cart's group-buy choice: its order is priced without a group."
    )
    async def leave_group_buy(self, info: Info, input: LeaveGroupBuyInput) -> LeaveGroupBuyResult:
        viewer = info.context.viewer

        async def work(session: AsyncSession) -> bool:
            cart = await carts.get_cart(session, viewer, input.cart_token)
            return await groups.leave(session, cart)

        result = await run_mutation(info, work)
        if isinstance(result, Error):
            return _refused(result)
        return LeaveGroupBuySuccess(cleared=result)


TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = [GroupBuyQueries]
MUTATIONS: list[type[Any]] = [GroupBuyMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {}
