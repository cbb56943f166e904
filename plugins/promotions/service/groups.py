"""Group buying (拼团): open a group, share its code, join; a full group's orders proceed, an
expired one's are cancelled (stock and payments given back) by a job safe from several
processes.

A cart first says what it means to do (``choose_open``/``choose_join``: a CartGroupChoice the
engine prices); the seat itself is taken when the order is placed (``take_seat``, inside
``placeOrder``'s transaction) with a conditional UPDATE on the group's ``members``, so the last
seat goes to exactly one buyer whatever the number of server processes."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    BuyGroup,
    Campaign,
    CartGroupChoice,
    GroupMember,
    GroupStatus,
    Promotion,
    PromotionKind,
    PromotionStatus,
)
from plugins.promotions.service.engine import Offer
from plugins.promotions.service.kinds import GroupBuyRules, parse_rules
from plugins.promotions.service.sql import insert_for, rowcount
from server.db import mark_write
from server.models import Cart, CartLine, Customer, Order, OrderStatus, Product, utcnow
from server.plugin import CheckoutProblem, DomainError, Job, JobContext

JOB = "promotions.groups"
log = logging.getLogger(__name__)
# Typed refusals (GroupBuyRefused.code; CheckoutProblem.code at placeOrder).
NOT_GROUP_BUY = "NOT_GROUP_BUY"
NOT_STARTED = "NOT_STARTED"
EXPIRED = "EXPIRED"
PAUSED = "PAUSED"
BUDGET_SPENT = "BUDGET_SPENT"
GROUP_NOT_FOUND = "GROUP_NOT_FOUND"
GROUP_FULL = "GROUP_FULL"
GROUP_EXPIRED = "GROUP_EXPIRED"
ALREADY_IN_GROUP = "ALREADY_IN_GROUP"
SIGN_IN_REQUIRED = "SIGN_IN_REQUIRED"
NO_ELIGIBLE_ITEMS = "NO_ELIGIBLE_ITEMS"
CODES = (
    NOT_GROUP_BUY,
    NOT_STARTED,
    EXPIRED,
    PAUSED,
    BUDGET_SPENT,
    GROUP_NOT_FOUND,
    GROUP_FULL,
    GROUP_EXPIRED,
    ALREADY_IN_GROUP,
    SIGN_IN_REQUIRED,
    NO_ELIGIBLE_ITEMS,
)
# Group codes: upper-case letters and digits without look-alikes (0/O, 1/I/L), as coupons.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUP_CODE_LENGTH = 8
# The states in which the expiry job may cancel a member's order.
CANCELLABLE = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)


class GroupBuyRefused(DomainError):
    """A group-buy choice that is refused: ``code`` is one of ``CODES``; nothing is written."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code


def normalise_code(code: str) -> str:
    return code.strip().upper()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(GROUP_CODE_LENGTH))


# --- the running promotion and the cart ------------------------------------------------------


async def running_group_buy(
    session: AsyncSession, promotion_id: int | None, now: datetime, *, field: str
) -> tuple[Promotion, GroupBuyRules]:
    """The GROUP_BUY promotion ``promotion_id`` if it runs at ``now`` (ACTIVE, inside its
    window, its campaign not stopped); GroupBuyRefused saying why not."""
    promotion = None if promotion_id is None else await session.get(Promotion, promotion_id)
    if promotion is None or promotion.kind is not PromotionKind.GROUP_BUY:
        raise GroupBuyRefused(NOT_GROUP_BUY, "no group-buy promotion has this id", field=field)
    label = promotion.label or promotion.name
    if promotion.status is PromotionStatus.PAUSED:
        raise GroupBuyRefused(PAUSED, f"{label} is paused", field=field)
    if promotion.status is PromotionStatus.ENDED or (
        promotion.ends_at is not None and promotion.ends_at <= now
    ):
        raise GroupBuyRefused(EXPIRED, f"{label} has ended", field=field)
    if promotion.starts_at is not None and promotion.starts_at > now:
        raise GroupBuyRefused(NOT_STARTED, f"{label} has not started yet", field=field)
    if promotion.campaign_id is not None:
        campaign = await session.get(Campaign, promotion.campaign_id)
        if campaign is not None and (
            campaign.exhausted_at is not None or campaign.status is not PromotionStatus.ACTIVE
        ):
            raise GroupBuyRefused(BUDGET_SPENT, f"{label} is no longer offered", field=field)
    rules: GroupBuyRules = parse_rules(PromotionKind.GROUP_BUY, promotion.rules)
    return promotion, rules


async def cart_has_targets(session: AsyncSession, cart_id: int, promotion: Promotion) -> bool:
    """Whether the cart holds a line the promotion targets (no targets: any line)."""
    targeted = []
    if promotion.variant_ids:
        targeted.append(col(CartLine.variant_id).in_(promotion.variant_ids))
    if promotion.product_ids:
        targeted.append(col(CartLine.product_id).in_(promotion.product_ids))
    if promotion.category_ids:
        targeted.append(col(Product.category_id).in_(promotion.category_ids))
    query = (
        select(col(CartLine.id))
        .join(Product, col(Product.id) == CartLine.product_id)
        .where(col(CartLine.cart_id) == cart_id)
    )
    if targeted:
        query = query.where(or_(*targeted))
    return await session.scalar(query.limit(1)) is not None


async def _check_cart(
    session: AsyncSession, cart: Cart, customer_id: int | None, promotion: Promotion
) -> int:
    if customer_id is None:
        raise GroupBuyRefused(
            SIGN_IN_REQUIRED, "sign in to open or join a group buy", field="cartToken"
        )
    assert cart.id is not None
    if not await cart_has_targets(session, cart.id, promotion):
        raise GroupBuyRefused(
            NO_ELIGIBLE_ITEMS,
            f"the cart holds none of the products of {promotion.label or promotion.name}",
            field="cartToken",
        )
    return customer_id


async def _set_choice(
    session: AsyncSession, cart_id: int, promotion_id: int, group_id: int | None
) -> CartGroupChoice:
    # One choice per cart: a second replaces the first (an upsert, so two at once do not
    # collide on the unique cart_id).
    insert = insert_for(session)
    stmt = insert(CartGroupChoice).values(
        cart_id=cart_id, promotion_id=promotion_id, group_id=group_id, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["cart_id"],
        set_={"promotion_id": promotion_id, "group_id": group_id, "created_at": utcnow()},
    )
    await session.execute(stmt)
    choice = await session.scalar(
        select(CartGroupChoice)
        .where(col(CartGroupChoice.cart_id) == cart_id)
        .execution_options(populate_existing=True)
    )
    assert choice is not None
    return choice


async def choose_open(
    session: AsyncSession, cart: Cart, customer_id: int | None, promotion_id: int | None
) -> CartGroupChoice:
    """The cart will open a new group of ``promotion_id`` when its order is placed."""
    promotion, _ = await running_group_buy(session, promotion_id, utcnow(), field="promotionId")
    await _check_cart(session, cart, customer_id, promotion)
    assert cart.id is not None and promotion.id is not None
    return await _set_choice(session, cart.id, promotion.id, None)


async def choose_join(
    session: AsyncSession, cart: Cart, customer_id: int | None, code: str
) -> CartGroupChoice:
    """The cart will take a seat in the group ``code`` when its order is placed. Checked now
    (found, open, a seat left, not already a member) and again, for good, at placeOrder."""
    now = utcnow()
    group = await session.scalar(select(BuyGroup).where(col(BuyGroup.code) == normalise_code(code)))
    if group is None:
        raise GroupBuyRefused(GROUP_NOT_FOUND, "no group buy has this code", field="code")
    promotion, _ = await running_group_buy(session, group.promotion_id, now, field="code")
    if customer_id is None:
        raise GroupBuyRefused(
            SIGN_IN_REQUIRED, "sign in to open or join a group buy", field="cartToken"
        )
    refusal = _closed(group, now)
    if refusal is not None:
        raise GroupBuyRefused(refusal[0], refusal[1], field="code")
    assert group.id is not None and cart.id is not None
    member = await session.scalar(
        select(col(GroupMember.id)).where(
            col(GroupMember.group_id) == group.id, col(GroupMember.customer_id) == customer_id
        )
    )
    if member is not None:
        raise GroupBuyRefused(
            ALREADY_IN_GROUP, f"you are already in group buy {group.code}", field="code"
        )
    await _check_cart(session, cart, customer_id, promotion)
    assert promotion.id is not None
    return await _set_choice(session, cart.id, promotion.id, group.id)


async def leave(session: AsyncSession, cart: Cart) -> bool:
    """Clear the cart's choice; whether there was one."""
    result = await session.execute(
        delete(CartGroupChoice).where(col(CartGroupChoice.cart_id) == cart.id)
    )
    return rowcount(result) > 0


async def choice_of(session: AsyncSession, cart_id: int) -> CartGroupChoice | None:
    """The cart's group-buy choice (for the engine)."""
    choice: CartGroupChoice | None = await session.scalar(
        select(CartGroupChoice).where(col(CartGroupChoice.cart_id) == cart_id)
    )
    return choice


def _closed(group: BuyGroup, now: datetime) -> tuple[str, str] | None:
    """Why no seat can be taken in ``group`` now, or None."""
    if group.status is GroupStatus.EXPIRED or group.expires_at <= now:
        return GROUP_EXPIRED, f"group buy {group.code} has expired"
    if group.status is GroupStatus.SUCCEEDED or group.members >= group.size:
        return GROUP_FULL, f"group buy {group.code} is full"
    return None


async def checkout_problems(
    session: AsyncSession, cart_id: int | None, customer: Customer | None
) -> list[CheckoutProblem]:
    """For ``validate_checkout``: a cart whose group-buy choice can no longer be honoured (the
    promotion stopped, the group filled or expired, the customer joined it meanwhile, the
    cart lost the promotion's products) is refused with why, rather than placed quietly at the
    price without the group. The seat itself is still taken at ``order_placing``."""
    if cart_id is None:
        return []
    choice = await choice_of(session, cart_id)
    if choice is None:
        return []
    now = utcnow()
    try:
        promotion, _ = await running_group_buy(session, choice.promotion_id, now, field="cartToken")
    except GroupBuyRefused as refused:
        return [_problem(refused.code, refused.message)]
    if customer is None or customer.id is None:
        return [_problem(SIGN_IN_REQUIRED, "sign in to open or join a group buy")]
    if choice.group_id is not None:
        group = await session.get(BuyGroup, choice.group_id)
        if group is None:
            return [_problem(GROUP_NOT_FOUND, "no group buy has this code")]
        refusal = _closed(group, now)
        if refusal is not None:
            return [_problem(*refusal)]
        member = await session.scalar(
            select(col(GroupMember.id)).where(
                col(GroupMember.group_id) == group.id,
                col(GroupMember.customer_id) == customer.id,
            )
        )
        if member is not None:
            return [_problem(ALREADY_IN_GROUP, f"you are already in group buy {group.code}")]
    if not await cart_has_targets(session, cart_id, promotion):
        label = promotion.label or promotion.name
        return [_problem(NO_ELIGIBLE_ITEMS, f"the cart holds none of the products of {label}")]
    return []


# --- seats, at placeOrder and at cancel ------------------------------------------------------


def _problem(code: str, message: str) -> CheckoutProblem:
    return CheckoutProblem(code=code, message=message, field="cartToken")


async def take_seat(
    session: AsyncSession, order: Order, offer: Offer, customer: Customer | None
) -> CheckoutProblem | None:
    """Inside ``order_placing``: open a group (``offer.group_id`` None) or take a seat in
    ``offer.group_id`` for ``order``, with a conditional UPDATE; a CheckoutProblem refuses the
    order (the group is full, expired, or the customer is already in it)."""
    if customer is None or customer.id is None:
        return _problem(SIGN_IN_REQUIRED, "sign in to open or join a group buy")
    assert order.id is not None
    now = utcnow()
    if offer.group_id is None:
        await open_group(session, offer.promotion.id, customer.id, order.id, now)
        return None
    return await join_group(session, offer.group_id, offer.promotion.id, customer.id, order.id, now)


async def open_group(
    session: AsyncSession, promotion_id: int, customer_id: int, order_id: int, now: datetime
) -> BuyGroup:
    """A new OPEN group of ``promotion_id`` led by ``customer_id`` (its first member, with
    ``order_id``): ``size`` and ``hours`` from the promotion's rules."""
    promotion = await session.get(Promotion, promotion_id)
    assert promotion is not None
    rules: GroupBuyRules = parse_rules(PromotionKind.GROUP_BUY, promotion.rules)
    insert = insert_for(session)
    while True:
        # A code already taken inserts nothing; draw again (31^8 codes: rarely twice).
        code = new_code()
        result = await session.execute(
            insert(BuyGroup)
            .values(
                promotion_id=promotion_id,
                code=code,
                leader_customer_id=customer_id,
                size=rules.size,
                members=1,
                status=GroupStatus.OPEN,
                expires_at=now + timedelta(hours=rules.hours),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["code"])
        )
        if rowcount(result) == 1:
            break
    group = await session.scalar(select(BuyGroup).where(col(BuyGroup.code) == code))
    assert group is not None and group.id is not None
    session.add(
        GroupMember(group_id=group.id, customer_id=customer_id, order_id=order_id, created_at=now)
    )
    await session.flush()
    return group


async def join_group(
    session: AsyncSession,
    group_id: int,
    promotion_id: int,
    customer_id: int,
    order_id: int,
    now: datetime,
) -> CheckoutProblem | None:
    """Take a seat in ``group_id`` for ``order_id``: the membership is inserted if the
    customer has none (the unique pair refuses a second), then ``members + 1`` only while the
    group is OPEN, unexpired and has a seat; the last seat makes it SUCCEEDED, in this same
    transaction. A refusal leaves the caller to roll the order back."""
    inserted = await session.execute(
        insert_for(session)(GroupMember)
        .values(group_id=group_id, customer_id=customer_id, order_id=order_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["group_id", "customer_id"])
    )
    if rowcount(inserted) != 1:
        return _problem(ALREADY_IN_GROUP, "you are already in this group buy")
    seated = await session.execute(
        update(BuyGroup)
        .where(
            col(BuyGroup.id) == group_id,
            col(BuyGroup.promotion_id) == promotion_id,
            col(BuyGroup.status) == GroupStatus.OPEN,
            col(BuyGroup.members) + 1 <= col(BuyGroup.size),
            col(BuyGroup.expires_at) > now,
        )
        .values(members=col(BuyGroup.members) + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(seated) != 1:
        group = await session.get(BuyGroup, group_id, populate_existing=True)
        if group is None or group.promotion_id != promotion_id:
            return _problem(GROUP_NOT_FOUND, "no group buy has this code")
        code, message = _closed(group, now) or (GROUP_FULL, f"group buy {group.code} is full")
        return _problem(code, message)
    # The seat just taken was the last: the group succeeds with this order.
    await session.execute(
        update(BuyGroup)
        .where(
            col(BuyGroup.id) == group_id,
            col(BuyGroup.status) == GroupStatus.OPEN,
            col(BuyGroup.members) >= col(BuyGroup.size),
        )
        .values(status=GroupStatus.SUCCEEDED, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    return None


async def release_seat(session: AsyncSession, order: Order) -> None:
    """Inside ``order_cancelling``: give back ``order``'s seat while its group is OPEN (the
    member leaves; the customer may join again). A SUCCEEDED group is not reopened and an
    EXPIRED one keeps its members, for the record."""
    member = await session.scalar(select(GroupMember).where(col(GroupMember.order_id) == order.id))
    if member is None:
        return
    freed = await session.execute(
        update(BuyGroup)
        .where(
            col(BuyGroup.id) == member.group_id,
            col(BuyGroup.status) == GroupStatus.OPEN,
            col(BuyGroup.members) > 0,
        )
        .values(members=col(BuyGroup.members) - 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(freed) == 1:
        await session.execute(delete(GroupMember).where(col(GroupMember.id) == member.id))


# --- the hold and the expiry job -------------------------------------------------------------


async def fulfilment_hold(session: AsyncSession, order: Order) -> str | None:
    """Why ``order`` may not be fulfilled yet: its group buy is still OPEN (None otherwise)."""
    group = await session.scalar(
        select(BuyGroup)
        .join(GroupMember, col(GroupMember.group_id) == BuyGroup.id)
        .where(col(GroupMember.order_id) == order.id)
    )
    if group is None or group.status is not GroupStatus.OPEN:
        return None
    missing = max(group.size - group.members, 0)
    by = group.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"group buy {group.code} needs {missing} more member{'s' if missing != 1 else ''} by {by}"
    )


@dataclass(frozen=True)
class Expired:
    """A group the job expired, and the member orders it cancelled."""

    group_id: int
    code: str
    cancelled_order_ids: tuple[int, ...]


async def due_groups(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Ids of OPEN groups past their expiry, oldest first."""
    return list(
        await session.scalars(
            select(col(BuyGroup.id))
            .where(col(BuyGroup.status) == GroupStatus.OPEN, col(BuyGroup.expires_at) <= now)
            .order_by(col(BuyGroup.expires_at), col(BuyGroup.id))
            .limit(limit)
        )
    )


async def expire_group(
    session: AsyncSession, plugins: Any, group_id: int, now: datetime
) -> Expired | None:
    """Expire one group and cancel its members' orders, in the caller's transaction. The
    conditional UPDATE (still OPEN, past its time) decides which of several concurrent runs
    does it: the others find nothing to do (None)."""
    from server.plugin import cancel_order

    result = await session.execute(
        update(BuyGroup)
        .where(
            col(BuyGroup.id) == group_id,
            col(BuyGroup.status) == GroupStatus.OPEN,
            col(BuyGroup.expires_at) <= now,
        )
        .values(status=GroupStatus.EXPIRED, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return None
    group = await session.get(BuyGroup, group_id, populate_existing=True)
    assert group is not None
    order_ids: list[int] = list(
        await session.scalars(
            select(col(Order.id))
            .join(GroupMember, col(GroupMember.order_id) == Order.id)
            .where(col(GroupMember.group_id) == group_id, col(Order.status).in_(CANCELLABLE))
            .order_by(col(Order.id))
        )
    )
    for order_id in order_ids:
        await cancel_order(
            session, plugins, order_id, reason="group buy expired", actor=f"job:{JOB}"
        )
    return Expired(group_id=group_id, code=group.code, cancelled_order_ids=tuple(order_ids))


# Groups expired per transaction: one at a time keeps a failing order from holding back the
# others' (its group stays OPEN and is tried again next run).
BATCH = 100


async def expire_due(sessions: Any, plugins: Any, now: datetime | None = None) -> list[Expired]:
    """Every OPEN group past its time → EXPIRED, its members' orders cancelled; one
    transaction per group. Safe from several processes at once (``expire_group``)."""
    now = now or utcnow()
    async with sessions() as session:
        due = await due_groups(session, now, BATCH)
        await session.commit()
    done: list[Expired] = []
    for group_id in due:
        async with sessions() as session:
            try:
                await mark_write(session)
                expired = await expire_group(session, plugins, group_id, now)
                await session.commit()
            except Exception:
                # One group's failing cancellation must not keep the others OPEN: it rolls
                # back alone and stays due for the next run.
                await session.rollback()
                log.exception("group buy %s could not be expired", group_id)
                continue
        if expired is not None:
            done.append(expired)
    return done


def jobs(config: Any) -> Sequence[Job]:
    async def run(ctx: JobContext) -> None:
        done = await expire_due(ctx.sessions, ctx.plugins)
        orders = sum(len(e.cancelled_order_ids) for e in done)
        ctx.progress(f"{len(done)} group buys expired, {orders} orders cancelled")

    return [
        Job(
            name=JOB,
            interval_seconds=config.group_job_interval_minutes * 60,
            run=run,
            description="Expires the group buys that did not fill in time and cancels their "
            "members' orders (stock released, payments refunded).",
        )
    ]


__all__ = [
    "CODES",
    "checkout_problems",
    "GroupBuyRefused",
    "choice_of",
    "choose_join",
    "choose_open",
    "expire_due",
    "fulfilment_hold",
    "jobs",
    "leave",
    "release_seat",
    "take_seat",
]
