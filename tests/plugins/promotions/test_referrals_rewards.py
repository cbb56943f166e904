"""Referrals, on SQLite and PostgreSQL: an invite code per customer, accepting one (typed
refusals: self-referral, twice, not a new customer, unknown code), and the reward after the
invitee's first paid order — one per new customer, even when the payment event is delivered
twice or to two processes at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import CouponCode, Referral, ReferralStatus
from plugins.promotions.service import referrals
from plugins.promotions.service.settings import PromotionsSettings
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import Customer, Order, OrderStatus, StaffRole, utcnow
from server.plugin import Event
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid

CONFIG = PromotionsSettings(referral_inviter_amount=3000, referral_invitee_amount=1500)
ACCEPT = """mutation($code: String!) { acceptReferral(input: {code: $code}) { __typename
  ... on AcceptReferralSuccess { referral { status inviterId inviteeId } }
  ... on Error { code field } } }"""


async def _paid_order(session: AsyncSession, customer: Customer) -> Order:
    order = Order(
        number=f"SG-RF-{customer.id}-{utcnow().timestamp()}",
        customer_id=customer.id,
        status=OrderStatus.PAID,
        subtotal_amount=10000,
        total_amount=10000,
        placed_at=utcnow(),
        paid_at=utcnow(),
    )
    session.add(order)
    await session.commit()
    return order


async def _accept(session: AsyncSession, customer: Customer, code: str) -> Referral:
    await mark_write(session)
    try:
        row = await referrals.accept_referral(
            session, customer_id=customer.id or 0, code=code, accept_days=30
        )
    except referrals.ReferralRefused:
        await session.rollback()
        raise
    await session.commit()
    return row


async def test_invites_over_http_with_every_refusal_typed(
    session: AsyncSession, settings: Settings, gql: GraphQLClient
) -> None:
    inviter = await make_customer(session)
    newcomer = await make_customer(session)
    old = await make_customer(session, created_at=utcnow() - timedelta(days=31))
    buyer = await make_customer(session)
    await _paid_order(session, buyer)
    as_inviter = gql.as_(token_for(settings, inviter))
    mine = "{ myReferralCode { code } }"
    code = (await as_inviter(mine))["myReferralCode"]["code"]
    assert (await as_inviter(mine))["myReferralCode"]["code"] == code  # made once

    async def accept(who: Customer, text: str) -> dict[str, object]:
        answer: dict[str, object] = (
            await gql.as_(token_for(settings, who))(ACCEPT, {"code": text})
        )["acceptReferral"]
        return answer

    assert (await accept(inviter, code))["code"] == "SELF_REFERRAL"
    assert (await accept(old, code))["code"] == "NOT_NEW_CUSTOMER"
    assert (await accept(buyer, code))["code"] == "NOT_NEW_CUSTOMER"
    assert (await accept(newcomer, "NOPE-1234"))["code"] == "CODE_NOT_FOUND"
    assert (await accept(newcomer, "?"))["code"] == "CODE_NOT_FOUND"
    accepted = await accept(newcomer, code.lower())  # codes are not case-sensitive
    assert accepted["__typename"] == "AcceptReferralSuccess", accepted
    assert accepted["referral"] == {
        "status": "PENDING",
        "inviterId": _gid(inviter),
        "inviteeId": _gid(newcomer),
    }
    assert (await accept(newcomer, code))["code"] == "ALREADY_REFERRED"
    body = await gql.execute(mine)  # signed out
    assert body["data"] is None and body["errors"]

    staff = await make_staff(session, role=StaffRole.ADMIN)
    listed = await gql.as_(token_for(settings, staff))(
        "{ referrals(first: 10, filter: {status: PENDING}) { edges { node { inviteeId } } } }"
    )
    assert listed["referrals"]["edges"] == [{"node": {"inviteeId": _gid(newcomer)}}]
    hidden = await gql.as_(token_for(settings, newcomer)).execute(
        "{ referrals { edges { cursor } } }"
    )
    assert hidden["data"] is None and hidden["errors"]


def _gid(customer: Customer) -> str:
    return gid("Customer", customer.id)


async def test_the_first_paid_order_rewards_both_sides_once(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    inviter = await make_customer(session)
    invitee = await make_customer(session)
    await mark_write(session)
    invite = await referrals.referral_code(session, inviter.id or 0, 10)
    await session.commit()
    referral = await _accept(session, invitee, invite.code)
    order = await _paid_order(session, invitee)
    event = Event(id=1, name="payment_captured", payload={"order_id": order.id})

    # Through the plugin API, as the outbox delivers it — twice (at least once).
    for _ in range(2):
        await mark_write(session)
        await plugins.call_plugin(
            "promotions", "payment_captured", event=event, session=session, plugins=plugins
        )
        await session.commit()

    row = await session.get(Referral, referral.id, populate_existing=True)
    assert row is not None
    assert (row.status, row.rewarded_order_id) == (ReferralStatus.REWARDED, order.id)
    codes = list(
        await session.scalars(select(CouponCode).where(col(CouponCode.issued_reason) == "REFERRAL"))
    )
    # The plugin's defaults: ¥20.00 each.
    assert sorted((c.source_ref, c.customer_id, c.amount_off) for c in codes) == [
        (f"referral:{row.id}:invitee", invitee.id, 2000),
        (f"referral:{row.id}:inviter", inviter.id, 2000),
    ]
    # A later order of the same customer rewards nobody again.
    later = await _paid_order(session, invitee)
    await mark_write(session)
    assert await referrals.reward(session, later, CONFIG) is None
    await session.commit()


async def test_two_processes_delivering_the_payment_reward_once(
    database_url: str, session: AsyncSession
) -> None:
    inviter = await make_customer(session)
    invitee = await make_customer(session)
    await mark_write(session)
    invite = await referrals.referral_code(session, inviter.id or 0, 10)
    await session.commit()
    await _accept(session, invitee, invite.code)
    order = await _paid_order(session, invitee)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def deliver() -> tuple[str, str] | None:
        async with sessions() as own:
            await mark_write(own)
            fresh = await own.get(Order, order.id)
            assert fresh is not None
            rewarded = await referrals.reward(own, fresh, CONFIG)
            await own.commit()
            return rewarded

    try:
        results = await asyncio.gather(deliver(), deliver())
    finally:
        await engine.dispose()
    rewarded = [r for r in results if r is not None]
    assert len(rewarded) == 1
    inviter_code, invitee_code = rewarded[0]
    values = {
        c.code: (c.customer_id, c.amount_off)
        for c in await session.scalars(
            select(CouponCode).where(col(CouponCode.issued_reason) == "REFERRAL")
        )
    }
    assert values == {inviter_code: (inviter.id, 3000), invitee_code: (invitee.id, 1500)}
