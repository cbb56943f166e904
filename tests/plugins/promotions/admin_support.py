"""A small shop for the promotions plugin's staff and coupon tests: two products in one
category, a customer, and staff who manage, read, or do neither."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import Promotion, PromotionKind, Trigger
from server.db import create_engine, session_factory
from server.models import Customer, ProductVariant, StaffRole, StaffUser
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop
from tests.support.orders import make_product

# The read-only staff of these tests: analysts given promotions.read.
READ_ONLY_ROLES = '{"ANALYST": ["promotions.read"]}'


@dataclass(frozen=True)
class Seeded:
    product_ids: tuple[int, int]
    variant_ids: tuple[int, int]
    category_id: int
    customer: Customer
    other_customer: Customer
    manager: StaffUser
    reader: StaffUser
    outsider: StaffUser


async def seed(session: AsyncSession) -> Seeded:
    first = await make_product(session, price=10000)
    second = await make_product(session, price=5000)
    variants = {
        v.product_id: v.id
        for v in await session.scalars(
            select(ProductVariant).where(col(ProductVariant.product_id).in_([first.id, second.id]))
        )
    }
    return Seeded(
        product_ids=(first.id or 0, second.id or 0),
        variant_ids=(variants[first.id] or 0, variants[second.id] or 0),
        category_id=first.category_id or 0,
        customer=await make_customer(session),
        other_customer=await make_customer(session),
        manager=await make_staff(session, role=StaffRole.ADMIN),
        reader=await make_staff(session, role=StaffRole.ANALYST),
        outsider=await make_staff(session, role=StaffRole.LOGISTICS),
    )


def pk_of(global_id: str) -> int:
    """The row id behind a global id."""
    return int(base64.b64decode(global_id).decode().split(":")[1])


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


@asynccontextmanager
async def database(shop: ModuleShop) -> AsyncIterator[AsyncSession]:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def code_promotion(
    session: AsyncSession,
    name: str = "新人券",
    *,
    rules: dict[str, Any] | None = None,
    **fields: Any,
) -> Promotion:
    """A committed COUPON promotion applied by code (¥20 off unless ``rules`` say)."""
    values: dict[str, Any] = {"trigger": Trigger.CODE, **fields}
    row = Promotion(
        name=name,
        label=name,
        kind=PromotionKind.COUPON,
        rules=rules or {"amount_off": 2000},
        **values,
    )
    session.add(row)
    await session.commit()
    return row
