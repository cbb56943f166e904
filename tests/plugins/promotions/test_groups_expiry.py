"""A group buy's orders over their life, on SQLite and PostgreSQL: held back from fulfilment
while the group is open and released when it fills (updateOrderStatus over HTTP); expired by
the job, which cancels the members' orders once even when two runs race (stock released, the
captured payment refunded). Orders are placed and paid through the API; the seats are taken
with the service functions placeOrder's hook calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import BuyGroup, GroupStatus
from plugins.promotions.service import groups
from plugins.promotions.service.settings import PromotionsSettings
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import (
    Customer,
    Order,
    OrderStatus,
    OrderStatusChange,
    Payment,
    PaymentStatus,
    Product,
    utcnow,
)
from server.plugin import JobContext
from server.plugins import PluginRuntime
from tests.plugins.promotions.groups_support import group_buy, ident, reload
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import count, make_product, pay, place_ok, stock_of

UPDATE_STATUS = """
mutation($input: UpdateOrderStatusInput!) { updateOrderStatus(input: $input) {
  __typename
  ... on UpdateOrderStatusSuccess { order { status } }
  ... on OrderOnHold { target reasons }
  ... on Error { code message field }
} }"""
HOLDS = "query($id: ID!) { order(id: $id) { status holds { plugin reason } } }"


async def _order(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    product: Product,
    *,
    paid: bool = True,
) -> tuple[Customer, dict[str, Any], int]:
    """A new customer's order of 2 units of ``product`` through the API (paid, unless not)."""
    customer = await make_customer(session)
    buyer = gql.as_(token_for(settings, customer))
    order = await place_ok(buyer, [(product, 2)])
    if paid:
        assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
    await session.commit()
    order_id = await session.scalar(
        select(col(Order.id)).where(col(Order.number) == order["number"])
    )
    await session.commit()  # no read transaction left open to block the server's writes
    assert order_id is not None
    return customer, order, order_id


async def _open(session: AsyncSession, promotion: int, customer: Customer, order: int) -> int:
    await mark_write(session)
    group = await groups.open_group(session, promotion, ident(customer), order, utcnow())
    await session.commit()
    return ident(group)


async def _join(
    session: AsyncSession, group: int, promotion: int, customer: Customer, order: int
) -> None:
    await mark_write(session)
    problem = await groups.join_group(session, group, promotion, ident(customer), order, utcnow())
    assert problem is None
    await session.commit()


async def test_an_open_group_holds_its_orders_until_it_fills(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, price=5000, stock=10)
    promotion = ident(await group_buy(session, [product], size=2, hours=6))
    leader, first, first_id = await _order(gql, session, settings, product)
    friend, second, second_id = await _order(gql, session, settings, product)
    group_id = await _open(session, promotion, leader, first_id)
    group = await reload(session, group_id)
    await session.commit()
    reason = (
        f"group buy {group.code} needs 1 more member by "
        f"{group.expires_at.strftime('%Y-%m-%d %H:%M UTC')}"
    )

    to_fulfilling = {"input": {"orderId": first["id"], "status": "FULFILLING"}}
    refused = (await staff(UPDATE_STATUS, to_fulfilling))["updateOrderStatus"]
    assert (refused["__typename"], refused["code"], refused["target"]) == (
        "OrderOnHold",
        "ORDER_ON_HOLD",
        "FULFILLING",
    )
    assert refused["reasons"] == [f"promotions: {reason}"]
    listed = (await staff(HOLDS, {"id": first["id"]}))["order"]
    assert listed == {"status": "PAID", "holds": [{"plugin": "promotions", "reason": reason}]}
    # An order in no group is not held.
    assert (await staff(HOLDS, {"id": second["id"]}))["order"]["holds"] == []

    await _join(session, group_id, promotion, friend, second_id)
    assert (await reload(session, group_id)).status is GroupStatus.SUCCEEDED
    await session.commit()
    moved = (await staff(UPDATE_STATUS, to_fulfilling))["updateOrderStatus"]
    assert moved == {"__typename": "UpdateOrderStatusSuccess", "order": {"status": "FULFILLING"}}
    moved = (
        await staff(UPDATE_STATUS, {"input": {"orderId": second["id"], "status": "FULFILLING"}})
    )["updateOrderStatus"]
    assert moved["__typename"] == "UpdateOrderStatusSuccess"


@pytest.fixture
async def two_processes(
    database_url: str,
) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Two engines on the shop's database, as two server processes running jobs have."""
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        yield [session_factory(engine) for engine in engines]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_expiry_job_cancels_members_once(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    plugins: PluginRuntime,
    two_processes: list[async_sessionmaker[AsyncSession]],
) -> None:
    product = await make_product(session, price=5000, stock=10)
    promotion = ident(await group_buy(session, [product], size=3, hours=2))
    leader, _, paid_id = await _order(gql, session, settings, product)
    friend, _, unpaid_id = await _order(gql, session, settings, product, paid=False)
    other, _, other_id = await _order(gql, session, settings, product)
    assert await stock_of(session, product) == [(10, 6)]
    due = await _open(session, promotion, leader, paid_id)
    await _join(session, due, promotion, friend, unpaid_id)
    # Another group, still within its time: left alone.
    open_id = await _open(session, promotion, other, other_id)
    past = utcnow() - timedelta(seconds=1)
    await session.execute(update(BuyGroup).where(col(BuyGroup.id) == due).values(expires_at=past))
    await session.commit()

    [job] = groups.jobs(PromotionsSettings())
    assert (job.name, job.interval_seconds) == ("promotions.groups", 60)
    progress: list[str] = []
    contexts = [
        JobContext(
            sessions=sessions,
            settings=settings,
            plugins=plugins,
            config=PromotionsSettings(),
            progress=progress.append,
        )
        for sessions in two_processes
    ]
    await asyncio.gather(*(job.run(ctx) for ctx in contexts))

    # One run expired the group and cancelled its two orders; the other found nothing to do.
    assert sorted(progress) == [
        "0 group buys expired, 0 orders cancelled",
        "1 group buys expired, 2 orders cancelled",
    ]
    group = await reload(session, due)
    assert group.status is GroupStatus.EXPIRED and group.decided_at is not None
    await session.commit()
    statuses = dict(
        (
            await session.execute(
                select(col(Order.id), col(Order.status)).where(
                    col(Order.id).in_([paid_id, unpaid_id, other_id])
                )
            )
        ).all()
    )
    assert statuses == {
        paid_id: OrderStatus.CANCELLED,
        unpaid_id: OrderStatus.CANCELLED,
        other_id: OrderStatus.PAID,
    }
    for order_id in (paid_id, unpaid_id):
        assert (
            await count(
                session,
                OrderStatusChange,
                col(OrderStatusChange.order_id) == order_id,
                col(OrderStatusChange.to_status) == OrderStatus.CANCELLED,
                col(OrderStatusChange.note) == "group buy expired",
            )
            == 1
        )
    # Stock back (the other group's 2 units stay reserved), the captured payment refunded.
    assert await stock_of(session, product) == [(10, 2)]
    payments = dict(
        (
            await session.execute(
                select(col(Payment.order_id), col(Payment.status)).where(
                    col(Payment.order_id).in_([paid_id, other_id])
                )
            )
        ).all()
    )
    assert payments == {paid_id: PaymentStatus.REFUNDED, other_id: PaymentStatus.CAPTURED}
    await session.commit()
    assert (await reload(session, open_id)).status is GroupStatus.OPEN

    # Run again: nothing left to do.
    await job.run(contexts[0])
    assert progress[-1] == "0 group buys expired, 0 orders cancelled"
