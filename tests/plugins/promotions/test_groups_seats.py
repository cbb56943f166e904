"""Group-buy seats at the service level, on SQLite and PostgreSQL: opening a group, joining it
until it succeeds, the fulfilment hold while it is open, refusals (full, expired, twice), a
cancelled order's seat given back, and the last seat under concurrent joins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import BuyGroup, GroupMember, GroupStatus
from plugins.promotions.service import groups
from plugins.promotions.service.engine import Offer
from server.db import create_engine, mark_write, session_factory
from server.models import Customer, Order
from server.plugin import CheckoutProblem
from tests.plugins.promotions.groups_support import (
    group_buy,
    group_of,
    member_count,
    offer_of,
    order_of,
    reload,
)
from tests.support.accounts import make_customer
from tests.support.orders import make_product


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions apart from the test's own, one per seat taken (as each placeOrder has)."""
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _seat(
    sessions: async_sessionmaker[AsyncSession],
    order: Order,
    offer: Offer,
    customer: Customer | None,
) -> CheckoutProblem | None:
    async with sessions() as own:
        return await _take(own, order, offer, customer)


async def _take(
    own: AsyncSession, order: Order, offer: Offer, customer: Customer | None
) -> CheckoutProblem | None:
    """take_seat in a transaction of its own: committed when taken, rolled back when refused,
    as placeOrder does with the order around it."""
    await mark_write(own)
    problem = await groups.take_seat(own, order, offer, customer)
    if problem is None:
        await own.commit()
    else:
        await own.rollback()
    return problem


async def test_open_then_two_joins_succeed_and_lift_the_hold(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session, price=10000)
    promotion = await group_buy(session, [product], size=3, hours=24)
    leader, second, third, late = [await make_customer(session) for _ in range(4)]
    orders = [await order_of(session, c, product) for c in (leader, second, third, late)]

    assert await _seat(sessions, orders[0], offer_of(promotion), leader) is None
    group = await group_of(session, orders[0])
    assert group.id is not None
    assert (group.status, group.members, group.size) == (GroupStatus.OPEN, 1, 3)
    assert group.leader_customer_id == leader.id
    assert group.expires_at - group.created_at == timedelta(hours=24)
    assert len(group.code) == groups.GROUP_CODE_LENGTH
    assert set(group.code) <= set(groups.ALPHABET)
    by = group.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    hold = await groups.fulfilment_hold(session, orders[0])
    assert hold == f"group buy {group.code} needs 2 more members by {by}"

    assert await _seat(sessions, orders[1], offer_of(promotion, group.id), second) is None
    group = await reload(session, group.id)
    assert (group.status, group.members, group.decided_at) == (GroupStatus.OPEN, 2, None)
    hold = await groups.fulfilment_hold(session, orders[1])
    assert hold == f"group buy {group.code} needs 1 more member by {by}"

    assert await _seat(sessions, orders[2], offer_of(promotion, group.id), third) is None
    group = await reload(session, group.id)
    assert (group.status, group.members) == (GroupStatus.SUCCEEDED, 3)
    assert group.decided_at is not None
    for order in orders[:3]:
        assert await groups.fulfilment_hold(session, order) is None

    problem = await _seat(sessions, orders[3], offer_of(promotion, group.id), late)
    assert problem is not None and problem.code == groups.GROUP_FULL
    group = await reload(session, group.id)
    assert group.members == 3 and await member_count(session, group.id) == 3
    # An order in no group is never held.
    assert await groups.fulfilment_hold(session, orders[3]) is None


async def test_the_same_customer_cannot_take_two_seats(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session)
    promotion = await group_buy(session, [product], size=3)
    leader, friend = await make_customer(session), await make_customer(session)
    first = await order_of(session, leader, product)
    assert await _seat(sessions, first, offer_of(promotion), leader) is None
    group = await group_of(session, first)
    assert group.id is not None

    again = await order_of(session, leader, product)
    problem = await _seat(sessions, again, offer_of(promotion, group.id), leader)
    assert problem is not None and problem.code == groups.ALREADY_IN_GROUP

    joined = await order_of(session, friend, product)
    assert await _seat(sessions, joined, offer_of(promotion, group.id), friend) is None
    twice = await order_of(session, friend, product)
    problem = await _seat(sessions, twice, offer_of(promotion, group.id), friend)
    assert problem is not None and problem.code == groups.ALREADY_IN_GROUP
    group = await reload(session, group.id)
    assert (group.members, group.status) == (2, GroupStatus.OPEN)
    assert await member_count(session, group.id) == 2


async def test_expired_foreign_and_guest_seats_are_refused(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session)
    promotion = await group_buy(session, [product], size=2)
    other = await group_buy(session, [product], size=2)
    leader, friend = await make_customer(session), await make_customer(session)
    first = await order_of(session, leader, product)
    assert await _seat(sessions, first, offer_of(promotion), leader) is None
    group = await group_of(session, first)
    assert group.id is not None

    guest = await order_of(session, friend, product)
    problem = await _seat(sessions, guest, offer_of(promotion, group.id), None)
    assert problem is not None and problem.code == groups.SIGN_IN_REQUIRED
    # A group of another promotion is not this offer's group.
    problem = await _seat(sessions, guest, offer_of(other, group.id), friend)
    assert problem is not None and problem.code == groups.GROUP_NOT_FOUND

    await session.execute(
        update(BuyGroup)
        .where(col(BuyGroup.id) == group.id)
        .values(expires_at=group.created_at - timedelta(seconds=1))
    )
    await session.commit()
    problem = await _seat(sessions, guest, offer_of(promotion, group.id), friend)
    assert problem is not None and problem.code == groups.GROUP_EXPIRED
    group = await reload(session, group.id)
    assert (group.members, group.status) == (1, GroupStatus.OPEN)
    assert await member_count(session, group.id) == 1


async def test_a_cancelled_order_frees_its_seat_in_an_open_group_only(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session)
    promotion = await group_buy(session, [product], size=3)
    leader, friend, third = [await make_customer(session) for _ in range(3)]
    first = await order_of(session, leader, product)
    assert await _seat(sessions, first, offer_of(promotion), leader) is None
    group = await group_of(session, first)
    assert group.id is not None
    joined = await order_of(session, friend, product)
    assert await _seat(sessions, joined, offer_of(promotion, group.id), friend) is None

    await groups.release_seat(session, joined)
    await session.commit()
    group = await reload(session, group.id)
    assert (group.members, group.status) == (1, GroupStatus.OPEN)
    assert await member_count(session, group.id) == 1
    # The seat is free again, and the customer may take it with another order.
    rejoined = await order_of(session, friend, product)
    assert await _seat(sessions, rejoined, offer_of(promotion, group.id), friend) is None
    last = await order_of(session, third, product)
    assert await _seat(sessions, last, offer_of(promotion, group.id), third) is None
    group = await reload(session, group.id)
    assert (group.members, group.status) == (3, GroupStatus.SUCCEEDED)

    # A succeeded group is not reopened by a member's cancellation.
    await groups.release_seat(session, last)
    await session.commit()
    group = await reload(session, group.id)
    assert (group.members, group.status) == (3, GroupStatus.SUCCEEDED)
    assert await member_count(session, group.id) == 3
    # An order in no group: nothing to give back.
    await groups.release_seat(session, await order_of(session, third, product))
    await session.commit()


async def test_three_concurrent_joins_take_the_last_seat_once(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    product = await make_product(session)
    promotion = await group_buy(session, [product], size=2)
    leader = await make_customer(session)
    first = await order_of(session, leader, product)
    assert await _seat(sessions, first, offer_of(promotion), leader) is None
    group = await group_of(session, first)
    assert group.id is not None
    joiners = [await make_customer(session) for _ in range(3)]
    orders = [await order_of(session, c, product) for c in joiners]

    offer = offer_of(promotion, group.id)
    problems = await asyncio.gather(
        *(_seat(sessions, o, offer, c) for o, c in zip(orders, joiners, strict=True))
    )
    assert sum(p is None for p in problems) == 1
    assert sorted(p.code for p in problems if p is not None) == [groups.GROUP_FULL] * 2
    group = await reload(session, group.id)
    assert (group.members, group.status) == (2, GroupStatus.SUCCEEDED)
    assert await member_count(session, group.id) == 2
    winner = next(o for o, p in zip(orders, problems, strict=True) if p is None)
    member_orders = set(
        await session.scalars(
            select(col(GroupMember.order_id)).where(col(GroupMember.group_id) == group.id)
        )
    )
    assert member_orders == {first.id, winner.id}
