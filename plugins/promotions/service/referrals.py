"""Referrals: an invite code per customer; the new customer and the inviter each get a coupon
after the new customer's first paid order (no self-referral, one reward per new customer).

A new customer accepts an invite within ``referral_accept_days`` of signing up and before any
paid order. The reward is decided by a conditional UPDATE PENDING → REWARDED, so an event
delivered twice (the outbox delivers at least once) or to two processes rewards once; the two
coupons are issued with refs ``referral:<id>:inviter`` and ``referral:<id>:invitee``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import Referral, ReferralCode, ReferralStatus
from plugins.promotions.service.coupons import compensation_coupon, normalise_code, random_code
from plugins.promotions.service.sql import insert_for
from server.models import Customer, Order, utcnow
from server.plugin import DomainError, Event, ValidationFailed

_RETRIES = 5


class ReferralRefused(DomainError):
    """An invite not accepted: SELF_REFERRAL, ALREADY_REFERRED, NOT_NEW_CUSTOMER or
    CODE_NOT_FOUND."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="code")
        self.code = code


async def referral_code(session: AsyncSession, customer_id: int, code_length: int) -> ReferralCode:
    """The customer's invite code, made on first ask (one per customer, unique)."""
    for _ in range(_RETRIES):
        found = await session.scalar(
            select(ReferralCode).where(col(ReferralCode.customer_id) == customer_id)
        )
        if found is not None:
            return found
        # Insert-or-ignore: a concurrent first ask, or a code drawn twice, writes nothing.
        await session.execute(
            insert_for(session)(ReferralCode)
            .values(customer_id=customer_id, code=random_code(code_length), created_at=utcnow())
            .on_conflict_do_nothing()
        )
    raise ValidationFailed("no free invite code was found: try again", field="code")


async def accept_referral(
    session: AsyncSession, *, customer_id: int, code: str, accept_days: int
) -> Referral:
    """Record that ``customer_id`` came by the invite ``code``."""
    try:
        text = normalise_code(code)
    except ValidationFailed:
        raise ReferralRefused("CODE_NOT_FOUND", "no invite has this code") from None
    invite = await session.scalar(select(ReferralCode).where(col(ReferralCode.code) == text))
    if invite is None:
        raise ReferralRefused("CODE_NOT_FOUND", "no invite has this code")
    if invite.customer_id == customer_id:
        raise ReferralRefused("SELF_REFERRAL", "your own invite code cannot be accepted")
    if await session.scalar(
        select(col(Referral.id)).where(col(Referral.invitee_customer_id) == customer_id)
    ):
        raise ReferralRefused("ALREADY_REFERRED", "you accepted an invite already")
    customer = await session.get(Customer, customer_id)
    paid = await session.scalar(
        select(func.count()).where(
            col(Order.customer_id) == customer_id, col(Order.paid_at).is_not(None)
        )
    )
    if (
        customer is None
        or customer.created_at < utcnow() - timedelta(days=accept_days)
        or int(paid or 0) > 0
    ):
        raise ReferralRefused(
            "NOT_NEW_CUSTOMER",
            f"invites are for new customers: within {accept_days} days of signing up, "
            "before their first paid order",
        )
    new_id = await session.scalar(
        insert_for(session)(Referral)
        .values(
            inviter_customer_id=invite.customer_id,
            invitee_customer_id=customer_id,
            status=ReferralStatus.PENDING,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(col(Referral.id))
    )
    if new_id is None:  # accepted meanwhile, by a concurrent request
        raise ReferralRefused("ALREADY_REFERRED", "you accepted an invite already")
    row = await session.get(Referral, int(new_id))
    assert row is not None
    return row


async def reward(session: AsyncSession, order: Order, config: Any) -> tuple[str, str] | None:
    """When ``order`` is a paid order of a pending invitee: mark the referral REWARDED (a
    conditional UPDATE: one reward per new customer) and issue both coupons. Returns the
    (inviter's, invitee's) codes, or None when nothing was rewarded now."""
    if order.customer_id is None or order.paid_at is None:
        return None
    referral_id = await session.scalar(
        update(Referral)
        .where(
            col(Referral.invitee_customer_id) == order.customer_id,
            col(Referral.status) == ReferralStatus.PENDING,
        )
        .values(status=ReferralStatus.REWARDED, rewarded_order_id=order.id, rewarded_at=utcnow())
        .returning(col(Referral.id))
        .execution_options(synchronize_session=False)
    )
    if referral_id is None:
        return None
    referral = await session.get(Referral, int(referral_id), populate_existing=True)
    assert referral is not None
    codes = []
    for side, customer_id, amount in (
        ("inviter", referral.inviter_customer_id, config.referral_inviter_amount),
        ("invitee", referral.invitee_customer_id, config.referral_invitee_amount),
    ):
        code = await compensation_coupon(
            session,
            config,
            ref=f"referral:{referral.id}:{side}",
            customer_id=customer_id,
            amount=amount,
            currency=order.currency,
            reason=f"referral {referral.id} ({side})",
            issued_reason="REFERRAL",
            purpose="referral",
        )
        codes.append(code or "")
    return codes[0], codes[1]


async def payment_captured(session: AsyncSession, event: Event, plugins: Any, config: Any) -> None:
    order_id = event.payload.get("order_id")
    if not isinstance(order_id, int):
        return
    order = await session.get(Order, order_id)
    if order is not None:
        await reward(session, order, config)


def referrals_query(status: ReferralStatus | None = None) -> Select[Any]:
    query = select(Referral)
    if status is not None:
        query = query.where(col(Referral.status) == status)
    return query
