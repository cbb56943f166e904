"""Limited things reserved inside the order's transaction (``order_placing``) with
conditional UPDATEs — promotion uses and units, per-customer counters, coupon code uses,
campaign budgets, group-buy seats — recorded as redemptions with the order's discount
ledger, and given back when the order is cancelled (``order_cancelling``).

Every counter is raised by one ``UPDATE … SET n = n + k WHERE n + k <= limit``: the row
count says whether it fitted, so two checkouts racing for the last use cannot both get it
(PostgreSQL makes the second wait for the first's row lock and re-check; SQLite has one
writer at a time). Rows are updated in one order — promotions by id (each with its
customer's counter), then codes by id, then campaigns by id — so concurrent checkouts cannot
deadlock on PostgreSQL. A refusal is a CheckoutProblem: the core rolls the whole order back,
counters included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    CustomerUse,
    Promotion,
    PromotionKind,
    Redemption,
    RedemptionStatus,
)
from plugins.promotions.service import groups, ledger
from plugins.promotions.service.engine import Decision, Offer, decision_for
from plugins.promotions.service.sql import insert_for, rowcount
from server.models import Customer, Order, OrderLine, utcnow
from server.plugin import CartView, CheckoutProblem

# The typed refusals of order_placing (CheckoutProblem.code).
PROMOTION_LIMIT_REACHED = "PROMOTION_LIMIT_REACHED"
PROMOTION_UNITS_SOLD_OUT = "PROMOTION_UNITS_SOLD_OUT"
CUSTOMER_LIMIT_REACHED = "CUSTOMER_LIMIT_REACHED"
CUSTOMER_UNIT_LIMIT_REACHED = "CUSTOMER_UNIT_LIMIT_REACHED"
SIGN_IN_REQUIRED = "PROMOTION_SIGN_IN_REQUIRED"
COUPON_USED_UP = "COUPON_USED_UP"
COUPON_NOT_YOURS = "COUPON_NOT_YOURS"
COUPON_EXPIRED = "COUPON_EXPIRED"
CAMPAIGN_BUDGET_SPENT = "CAMPAIGN_BUDGET_SPENT"
PROMOTION_NOT_PRICED = "PROMOTION_NOT_PRICED"

FIELD = "couponCodes"


def _fitted(result: Any) -> bool:
    return rowcount(result) == 1


@dataclass(frozen=True)
class _Use:
    """What one applied promotion reserves for an order."""

    offer: Offer
    units: int
    amount: int


def _uses(
    order: Order, lines: Sequence[OrderLine], decision: Decision
) -> tuple[list[_Use], ledger.Frozen]:
    shipping = _shipping_discounts(order)
    frozen = ledger.freeze(order, lines, decision, shipping)
    uses = [
        _Use(
            offer=offer,
            units=frozen.units.get(offer.promotion.id, 0),
            amount=frozen.amount_of(offer.promotion.id),
        )
        for offer in sorted(decision.applied, key=lambda o: o.promotion.id)
    ]
    # An offer the order does not carry (a guardrail took its price step out, its gift ran
    # out of stock, the chosen shipping was free already) gave nothing: it reserves nothing.
    return [u for u in uses if u.amount > 0], frozen


def _shipping_discounts(order: Order) -> dict[int, int]:
    """{promotion id: what it took off the shipping} as the order keeps its shipping
    adjustments, when the core keeps them (``shipping_adjustments`` stored dicts)."""
    stored = getattr(order, "shipping_adjustments", None)
    if not isinstance(stored, list):
        return {}
    return ledger.plugin_rules(stored)


def _unpriced(
    order: Order, lines: Sequence[OrderLine], decision: Decision | None
) -> list[CheckoutProblem]:
    """Adjustments of this plugin on the order that no decision of this transaction backs:
    reserving nothing for them would let a limit be overrun, so the order is refused."""
    named = set(ledger.plugin_rules(order.adjustments))
    for line in lines:
        named |= set(ledger.plugin_rules(line.adjustments))
    named |= set(_shipping_discounts(order))
    decided = {o.promotion.id for o in decision.applied} if decision is not None else set()
    return [
        CheckoutProblem(
            code=PROMOTION_NOT_PRICED,
            message=f"promotion {pid} was not priced for this checkout; check out again",
        )
        for pid in sorted(named - decided)
    ]


async def order_placing(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    cart: CartView,
    customer: Customer | None,
    config: Any,
) -> Sequence[CheckoutProblem]:
    """Reserve every limited thing the cart's decision uses, then record its redemptions
    and the order's ledger; the first limit that does not fit refuses the order."""
    decision = decision_for(session, cart.cart_id) if cart.cart_id is not None else None
    unpriced = _unpriced(order, lines, decision)
    if unpriced:
        return unpriced
    if decision is None or not decision.applied:
        return []
    assert order.id is not None
    uses, frozen = _uses(order, lines, decision)
    customer_id = customer.id if customer is not None else order.customer_id
    promotions = {
        p.id: p
        for p in await session.scalars(
            select(Promotion).where(col(Promotion.id).in_([u.offer.promotion.id for u in uses]))
        )
    }
    for use in uses:
        problem = await _reserve_promotion(
            session, promotions.get(use.offer.promotion.id), use, customer_id
        )
        if problem is not None:
            return [problem]
    for use in sorted(
        (u for u in uses if u.offer.code_id is not None), key=lambda u: u.offer.code_id or 0
    ):
        problem = await _reserve_code(session, use, customer_id)
        if problem is not None:
            return [problem]
    campaigns = _by_campaign(uses)
    for campaign_id in sorted(campaigns):
        problem = await _reserve_campaign(session, campaign_id, campaigns[campaign_id])
        if problem is not None:
            return [problem]
    for use in uses:
        if use.offer.promotion.kind is PromotionKind.GROUP_BUY:
            problem = await groups.take_seat(session, order, use.offer, customer)
            if problem is not None:
                return [problem]
    session.add_all(
        Redemption(
            order_id=order.id,
            promotion_id=use.offer.promotion.id,
            code_id=use.offer.code_id,
            campaign_id=use.offer.promotion.campaign_id,
            customer_id=customer_id,
            units=use.units,
            amount=use.amount,
        )
        for use in uses
    )
    session.add_all(ledger.ledger_rows(order.id, frozen))
    await session.flush()
    return []


def _by_campaign(uses: Sequence[_Use]) -> dict[int, int]:
    """{campaign id: the discount its promotions gave this order}."""
    out: dict[int, int] = {}
    for use in uses:
        campaign_id = use.offer.promotion.campaign_id
        if campaign_id is not None:
            out[campaign_id] = out.get(campaign_id, 0) + use.amount
    return out


async def _reserve_promotion(
    session: AsyncSession, promotion: Promotion | None, use: _Use, customer_id: int | None
) -> CheckoutProblem | None:
    ref = use.offer.promotion
    n = use.units
    reserved = await session.execute(
        update(Promotion)
        .where(
            col(Promotion.id) == ref.id,
            (col(Promotion.total_limit).is_(None))
            | (col(Promotion.used_count) + 1 <= col(Promotion.total_limit)),
            (col(Promotion.unit_limit).is_(None))
            | (col(Promotion.units_sold) + n <= col(Promotion.unit_limit)),
        )
        .values(used_count=col(Promotion.used_count) + 1, units_sold=col(Promotion.units_sold) + n)
        .execution_options(synchronize_session=False)
    )
    if not _fitted(reserved):
        return await _why_promotion_refused(session, ref.id, ref.label, n)
    if promotion is None or (
        promotion.per_customer_limit is None and promotion.per_customer_unit_limit is None
    ):
        if customer_id is not None:
            await _count_customer(session, ref.id, customer_id, n)
        return None
    if customer_id is None:
        return CheckoutProblem(
            code=SIGN_IN_REQUIRED,
            message=f"sign in to use {ref.label}: it is limited per customer",
        )
    return await _count_customer(
        session,
        ref.id,
        customer_id,
        n,
        uses_limit=promotion.per_customer_limit,
        units_limit=promotion.per_customer_unit_limit,
        label=ref.label,
    )


async def _why_promotion_refused(
    session: AsyncSession, promotion_id: int, label: str, units: int
) -> CheckoutProblem:
    row = (
        await session.execute(
            select(
                col(Promotion.total_limit),
                col(Promotion.used_count),
                col(Promotion.unit_limit),
                col(Promotion.units_sold),
            ).where(col(Promotion.id) == promotion_id)
        )
    ).first()
    if row is not None and row.unit_limit is not None and row.units_sold + units > row.unit_limit:
        left = max(0, row.unit_limit - row.units_sold)
        return CheckoutProblem(
            code=PROMOTION_UNITS_SOLD_OUT,
            message=f"{label}: only {left} promotional units are left, {units} asked",
        )
    return CheckoutProblem(
        code=PROMOTION_LIMIT_REACHED, message=f"{label} has reached its limit of uses"
    )


async def _count_customer(
    session: AsyncSession,
    promotion_id: int,
    customer_id: int,
    units: int,
    *,
    uses_limit: int | None = None,
    units_limit: int | None = None,
    label: str = "",
) -> CheckoutProblem | None:
    insert = insert_for(session)
    await session.execute(
        insert(CustomerUse)
        .values(promotion_id=promotion_id, customer_id=customer_id, uses=0, units=0)
        .on_conflict_do_nothing(index_elements=["promotion_id", "customer_id"])
    )
    where = [
        col(CustomerUse.promotion_id) == promotion_id,
        col(CustomerUse.customer_id) == customer_id,
    ]
    if uses_limit is not None:
        where.append(col(CustomerUse.uses) + 1 <= uses_limit)
    if units_limit is not None:
        where.append(col(CustomerUse.units) + units <= units_limit)
    counted = await session.execute(
        update(CustomerUse)
        .where(*where)
        .values(uses=col(CustomerUse.uses) + 1, units=col(CustomerUse.units) + units)
        .execution_options(synchronize_session=False)
    )
    if _fitted(counted):
        return None
    row = (
        await session.execute(
            select(col(CustomerUse.uses), col(CustomerUse.units)).where(
                col(CustomerUse.promotion_id) == promotion_id,
                col(CustomerUse.customer_id) == customer_id,
            )
        )
    ).first()
    if units_limit is not None and row is not None and row.units + units > units_limit:
        return CheckoutProblem(
            code=CUSTOMER_UNIT_LIMIT_REACHED,
            message=f"{label}: at most {units_limit} units per customer "
            f"({max(0, units_limit - row.units)} left for you)",
        )
    return CheckoutProblem(
        code=CUSTOMER_LIMIT_REACHED,
        message=f"{label}: you have used it {uses_limit} time(s), as often as allowed",
    )


async def _reserve_code(
    session: AsyncSession, use: _Use, customer_id: int | None
) -> CheckoutProblem | None:
    code_id = use.offer.code_id
    now = utcnow()
    reserved = await session.execute(
        update(CouponCode)
        .where(
            col(CouponCode.id) == code_id,
            col(CouponCode.disabled).is_(False),
            (col(CouponCode.max_uses).is_(None))
            | (col(CouponCode.used_count) + 1 <= col(CouponCode.max_uses)),
            (col(CouponCode.customer_id).is_(None)) | (col(CouponCode.customer_id) == customer_id),
            (col(CouponCode.expires_at).is_(None)) | (col(CouponCode.expires_at) > now),
        )
        .values(used_count=col(CouponCode.used_count) + 1)
        .execution_options(synchronize_session=False)
    )
    if _fitted(reserved):
        return None
    code = await session.get(CouponCode, code_id)
    if code is not None and code.customer_id is not None and code.customer_id != customer_id:
        return CheckoutProblem(
            code=COUPON_NOT_YOURS,
            message=f"coupon {code.code} was issued to someone else",
            field=FIELD,
        )
    if code is not None and code.expires_at is not None and code.expires_at <= now:
        return CheckoutProblem(
            code=COUPON_EXPIRED, message=f"coupon {code.code} has expired", field=FIELD
        )
    name = code.code if code is not None else str(code_id)
    return CheckoutProblem(
        code=COUPON_USED_UP, message=f"coupon {name} has been used up", field=FIELD
    )


async def _reserve_campaign(
    session: AsyncSession, campaign_id: int, amount: int
) -> CheckoutProblem | None:
    reserved = await session.execute(
        update(Campaign)
        .where(
            col(Campaign.id) == campaign_id,
            (col(Campaign.budget_amount).is_(None))
            | (col(Campaign.spent_amount) + amount <= col(Campaign.budget_amount)),
            (col(Campaign.budget_uses).is_(None))
            | (col(Campaign.used_count) + 1 <= col(Campaign.budget_uses)),
        )
        .values(
            spent_amount=col(Campaign.spent_amount) + amount,
            used_count=col(Campaign.used_count) + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if _fitted(reserved):
        return None
    name = await session.scalar(select(col(Campaign.name)).where(col(Campaign.id) == campaign_id))
    return CheckoutProblem(
        code=CAMPAIGN_BUDGET_SPENT,
        message=f"the budget of campaign {name or campaign_id} is spent",
    )


# --- giving back -----------------------------------------------------------------------------


def _less(column: Any, n: int) -> Any:
    """``column - n``, never below zero (portable: no GREATEST on SQLite)."""
    return case((column >= n, column - n), else_=0)


async def order_cancelling(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], reason: str, config: Any
) -> None:
    """Give back what ``order``'s RESERVED redemptions took, in the order they were taken,
    and mark them RELEASED; released rows are left alone, so giving back twice gives
    nothing more."""
    assert order.id is not None
    held = list(
        await session.scalars(
            select(Redemption)
            .where(
                col(Redemption.order_id) == order.id,
                col(Redemption.status) == RedemptionStatus.RESERVED,
            )
            .order_by(col(Redemption.promotion_id))
        )
    )
    if not held:
        return
    released = await session.execute(
        update(Redemption)
        .where(
            col(Redemption.id).in_([r.id for r in held]),
            col(Redemption.status) == RedemptionStatus.RESERVED,
        )
        .values(status=RedemptionStatus.RELEASED, released_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(released) != len(held):
        # Another transaction released them meanwhile: it gave the counters back.
        return
    for r in held:
        await session.execute(
            update(Promotion)
            .where(col(Promotion.id) == r.promotion_id)
            .values(
                used_count=_less(col(Promotion.used_count), 1),
                units_sold=_less(col(Promotion.units_sold), r.units),
            )
            .execution_options(synchronize_session=False)
        )
        if r.customer_id is not None:
            await session.execute(
                update(CustomerUse)
                .where(
                    col(CustomerUse.promotion_id) == r.promotion_id,
                    col(CustomerUse.customer_id) == r.customer_id,
                )
                .values(
                    uses=_less(col(CustomerUse.uses), 1),
                    units=_less(col(CustomerUse.units), r.units),
                )
                .execution_options(synchronize_session=False)
            )
    for r in sorted((r for r in held if r.code_id is not None), key=lambda r: r.code_id or 0):
        await session.execute(
            update(CouponCode)
            .where(col(CouponCode.id) == r.code_id)
            .values(used_count=_less(col(CouponCode.used_count), 1))
            .execution_options(synchronize_session=False)
        )
    spent: dict[int, int] = {}
    for r in held:
        if r.campaign_id is not None:
            spent[r.campaign_id] = spent.get(r.campaign_id, 0) + r.amount
    for campaign_id in sorted(spent):
        await session.execute(
            update(Campaign)
            .where(col(Campaign.id) == campaign_id)
            .values(
                spent_amount=_less(col(Campaign.spent_amount), spent[campaign_id]),
                used_count=_less(col(Campaign.used_count), 1),
            )
            .execution_options(synchronize_session=False)
        )
    await groups.release_seat(session, order)
