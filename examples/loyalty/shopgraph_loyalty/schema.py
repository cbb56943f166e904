"""The loyalty plugin over GraphQL: ``Customer.loyaltyPoints``, ``loyaltyAccount`` and the
``redeemPoints`` mutation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.plugin import (
    AuthenticationError,
    Info,
    ModelsByFieldLoader,
    Money,
    NotFoundError,
    ValidationError,
    money,
    mutate,
)
from shopgraph_loyalty import service
from shopgraph_loyalty.models import LoyaltyAccount, LoyaltyTransaction

PLUGIN = "loyalty"


class LoyaltyAccountsByCustomerIdLoader(ModelsByFieldLoader):
    model = LoyaltyAccount
    field = "customer_id"


@strawberry.type(name="LoyaltyTransaction", description="One change of a points balance.")
class LoyaltyTransactionType:
    kind: str = strawberry.field(description="EARN, REDEEM, RELEASE or REVERSE.")
    points: int = strawberry.field(description="Signed: positive adds to the balance.")
    note: str
    created_at: datetime


@strawberry.type(name="LoyaltyAccount", description="The signed-in customer's loyalty points.")
class LoyaltyAccountType:
    points: int
    lifetime_earned: int
    _customer_id: strawberry.Private[int]

    @strawberry.field(description="The latest changes, newest first.")
    async def history(self, info: Info, first: int = 20) -> list[LoyaltyTransactionType]:
        rows = await info.context.db.scalars(
            select(LoyaltyTransaction)
            .where(col(LoyaltyTransaction.customer_id) == self._customer_id)
            .order_by(col(LoyaltyTransaction.id).desc())
            .limit(max(0, min(first, 100)))
        )
        return [
            LoyaltyTransactionType(
                kind=row.kind.value, points=row.points, note=row.note, created_at=row.created_at
            )
            for row in rows
        ]


async def _points_of(info: Info, customer_id: int) -> int:
    rows = await info.context.loaders.get(LoyaltyAccountsByCustomerIdLoader).load(customer_id)
    return rows[0].balance if rows else 0


@strawberry.type
class CustomerLoyalty:
    """Fields added to the core ``Customer`` type (``self`` is the Customer)."""

    @strawberry.field(description="Loyalty points available to spend (loyalty plugin).")
    async def loyalty_points(self, info: Info) -> int:
        return await _points_of(info, int(self.id))  # type: ignore[attr-defined]  # self is the core Customer this class adds fields to


@strawberry.type
class LoyaltyQueries:
    @strawberry.field(description="The signed-in customer's points (null when not signed in).")
    async def loyalty_account(self, info: Info) -> LoyaltyAccountType | None:
        customer_id = info.context.viewer.customer_id
        if customer_id is None:
            return None
        rows = await info.context.loaders.get(LoyaltyAccountsByCustomerIdLoader).load(customer_id)
        row = rows[0] if rows else None
        return LoyaltyAccountType(
            points=row.balance if row else 0,
            lifetime_earned=row.lifetime_earned if row else 0,
            _customer_id=customer_id,
        )


@strawberry.input
class RedeemPointsInput:
    cart_token: str
    points: int = strawberry.field(description="Points to hold against the cart; 0 releases.")


@strawberry.type
class RedeemPointsSuccess:
    points: int = strawberry.field(description="Points now held against the cart.")
    discount: Money = strawberry.field(description="What they are worth (capped at checkout).")
    balance: int = strawberry.field(description="Points left to spend.")


RedeemPointsResult = Annotated[
    RedeemPointsSuccess | ValidationError | NotFoundError | AuthenticationError,
    strawberry.union("RedeemPointsResult"),
]


@strawberry.type
class LoyaltyMutations:
    @strawberry.mutation(description="Spend loyalty points on a cart: a discount at checkout.")
    async def redeem_points(self, info: Info, input: RedeemPointsInput) -> RedeemPointsResult:
        ctx = info.context
        config: service.LoyaltySettings = ctx.plugins.config_for(PLUGIN)

        async def work(session: AsyncSession) -> tuple[int, int]:
            customer_id = ctx.viewer.customer_id
            hold = await service.redeem(session, customer_id, input.cart_token, input.points)
            account = await service.account(session, customer_id or 0)
            return (hold.points if hold else 0), (account.balance if account else 0)

        def redeemed(result: tuple[int, int]) -> RedeemPointsSuccess:
            points, balance = result
            discount = money(points * config.point_value, ctx.settings.currency)
            return RedeemPointsSuccess(points=points, discount=discount, balance=balance)

        return await mutate(info, work, redeemed)


QUERIES: list[type[Any]] = [LoyaltyQueries]
MUTATIONS: list[type[Any]] = [LoyaltyMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {"Customer": [CustomerLoyalty]}
