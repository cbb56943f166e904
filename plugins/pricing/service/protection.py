"""Price protection (价格保护): when a product's price drops within ``protection_days`` of a
customer's purchase, the difference per unit times the quantity is credited once per order
line, as a part refund of the order's payments or as a coupon (a plugin issues it).

Credit = (paid unit price − the line's price for this customer now) × quantity, where "now" is
the core's pipeline (``price_variants``) with the order's customer and the line's quantity.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import ClaimMethod, PriceHistory, PriceSource, ProtectionClaim
from plugins.pricing.service import history
from plugins.pricing.service.sql import insert_for
from server.models import (
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentRefund,
    PaymentStatus,
    Product,
    ProductVariant,
    utcnow,
)
from server.plugin import (
    DemoShop,
    DomainError,
    Job,
    JobContext,
    Kpi,
    KpiBucket,
    KpiUnit,
    refund_amount,
)
from server.services.forecasts import day_start, shop_day
from server.services.pricing import price_variants

PROTECTION_JOB = "protection"
# Orders that were paid for and still stand (a cancelled or unpaid order is not protected).
PAID_STATUSES = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.FULFILLING,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
    }
)
NOT_ELIGIBLE = "NOT_ELIGIBLE"
OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
PRICE_NOT_LOWER = "PRICE_NOT_LOWER"
ALREADY_CLAIMED = "ALREADY_CLAIMED"
COUPON_UNAVAILABLE = "COUPON_UNAVAILABLE"
CODES = (NOT_ELIGIBLE, OUTSIDE_WINDOW, PRICE_NOT_LOWER, ALREADY_CLAIMED, COUPON_UNAVAILABLE)


class ClaimRefused(DomainError):
    """A claim that is not credited: ``code`` is one of ``CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="orderLineId")
        self.code = code


def _missing(order_line_id: int) -> ClaimRefused:
    # Another customer's line, an unpaid or cancelled order's and a line that does not exist
    # are answered alike: nothing tells a customer which lines exist.
    return ClaimRefused(
        NOT_ELIGIBLE, f"order line {order_line_id} is not a paid line of one of your orders"
    )


@dataclass(frozen=True)
class Eligible:
    line: OrderLine
    order: Order
    paid_unit: int
    current_unit: int

    @property
    def amount(self) -> int:
        return (self.paid_unit - self.current_unit) * self.line.quantity


async def _current_units(
    session: AsyncSession,
    plugins: Any,
    lines: Sequence[OrderLine],
    customer: Customer | None,
    at: datetime,
) -> dict[int, int]:
    """Each line's unit price for ``customer`` now, by line id, as a cart of it is priced
    (one pipeline call per distinct quantity: a key is a variant)."""
    variants = {
        v.id: v
        for v in await session.scalars(
            select(ProductVariant).where(
                col(ProductVariant.id).in_({ln.variant_id for ln in lines})
            )
        )
    }
    products = {
        p.id: p
        for p in await session.scalars(
            select(Product).where(col(Product.id).in_({ln.product_id for ln in lines}))
        )
    }
    out: dict[int, int] = {}
    for line in lines:
        variant = variants.get(line.variant_id)
        product = products.get(line.product_id)
        if variant is None or product is None or line.id is None:
            continue
        priced = await price_variants(
            session, plugins, {line.variant_id: (product, variant, line.quantity)}, customer, at
        )
        out[line.id] = priced[line.variant_id].final
    return out


async def check(
    session: AsyncSession,
    plugins: Any,
    config: Any,
    order_line_id: int,
    customer_id: int | None,
    now: datetime,
) -> Eligible:
    """Whether the line may be credited now (``customer_id``: the claimant, who must own the
    order; None: the automatic job, for the order's owner). Raises ClaimRefused."""
    line = await session.get(OrderLine, order_line_id)
    order = await session.get(Order, line.order_id) if line is not None else None
    if (
        line is None
        or order is None
        or order.customer_id is None
        or (customer_id is not None and order.customer_id != customer_id)
        or order.status not in PAID_STATUSES
        or order.paid_at is None
    ):
        raise _missing(order_line_id)
    claimed = await session.scalar(
        select(col(ProtectionClaim.id)).where(col(ProtectionClaim.order_line_id) == line.id)
    )
    if claimed is not None:
        raise ClaimRefused(ALREADY_CLAIMED, "this order line's price protection was credited")
    days = config.protection_days
    if now - order.placed_at > timedelta(days=days):
        raise ClaimRefused(
            OUTSIDE_WINDOW, f"price protection lasts {days} days from the order; it has ended"
        )
    customer = await session.get(Customer, order.customer_id)
    current = (await _current_units(session, plugins, [line], customer, now)).get(order_line_id)
    if current is None or current >= line.unit_price_amount:
        raise ClaimRefused(PRICE_NOT_LOWER, "the price is not lower than what was paid")
    return Eligible(line, order, line.unit_price_amount, current)


async def claim(
    session: AsyncSession,
    plugins: Any,
    config: Any,
    *,
    order_line_id: int,
    customer_id: int | None,
    automatic: bool = False,
    now: datetime | None = None,
) -> ProtectionClaim:
    """Credit the price protection of an order line, in the session's transaction: the claim
    row (unique per line: of two concurrent claims one is written, the other is
    ALREADY_CLAIMED), then the refund (``refund_amount``) or the coupon
    (``pricing_protection_coupon``). Raises ClaimRefused, and then nothing is to be kept
    (the caller rolls back)."""
    now = now or utcnow()
    found = await check(session, plugins, config, order_line_id, customer_id, now)
    line, order = found.line, found.order
    method = ClaimMethod(config.protection_method)
    values: dict[str, Any] = {
        "order_line_id": line.id,
        "order_id": order.id,
        "customer_id": order.customer_id,
        "product_id": line.product_id,
        "paid_unit_amount": found.paid_unit,
        "current_unit_amount": found.current_unit,
        "quantity": line.quantity,
        "amount": found.amount,
        "currency": order.currency,
        "method": method,
        "reference": "",
        "automatic": automatic,
        "created_at": now,
    }
    new_id = await session.scalar(
        insert_for(session)(ProtectionClaim)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_line_id"])
        .returning(col(ProtectionClaim.id))
    )
    if new_id is None:
        raise ClaimRefused(ALREADY_CLAIMED, "this order line's price protection was credited")
    row = await session.get(ProtectionClaim, int(new_id))
    assert row is not None
    reason = f"price protection (价格保护), order line {line.id}"
    if method is ClaimMethod.REFUND:
        row.reference = await refund_amount(session, plugins, order, row.amount, reason)
    else:
        answers = await plugins.call("pricing_protection_coupon", session=session, claim=row)
        code = next((str(a) for _, a in answers if a), None)
        if code is None:
            raise ClaimRefused(
                COUPON_UNAVAILABLE, "no plugin issues coupons: price protection cannot be credited"
            )
        row.reference = code
    row.reference = row.reference[:120]
    session.add(row)
    await session.flush()
    return row


# --- automatic crediting -------------------------------------------------------------------


async def credit_drops(
    session: AsyncSession, plugins: Any, config: Any, now: datetime
) -> list[ProtectionClaim]:
    """Credit every eligible line of the products whose public price dropped (history rows of
    reductions written since the job's mark): each line in a savepoint of its own, so a line
    that is not eligible leaves the others' credits. Moves the mark to the newest row read.
    The mark is locked for the transaction: two processes at once credit each line once."""
    _, mark = await history.claim_window(session, PROTECTION_JOB, now, timedelta(0))
    if mark.mark_id is None:
        # First run: start from the history as it is now (drops before it are past).
        newest = await session.scalar(select(func.max(col(PriceHistory.id))))
        mark.mark_id = int(newest or 0)
        session.add(mark)
        await session.flush()
        if not config.protection_automatic:
            return []
    drops = list(
        await session.execute(
            select(col(PriceHistory.id), col(PriceHistory.product_id)).where(
                col(PriceHistory.id) > mark.mark_id,
                col(PriceHistory.amount) < col(PriceHistory.previous_amount),
            )
        )
    )
    newest = await session.scalar(select(func.max(col(PriceHistory.id))))
    mark.mark_id = max(mark.mark_id, int(newest or 0))
    mark.updated_at = now
    session.add(mark)
    await session.flush()
    if not config.protection_automatic or not drops:
        return []
    product_ids = sorted({pid for _, pid in drops})
    since = now - timedelta(days=config.protection_days)
    candidates = list(
        await session.scalars(
            select(col(OrderLine.id))
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .outerjoin(ProtectionClaim, col(ProtectionClaim.order_line_id) == col(OrderLine.id))
            .where(
                col(OrderLine.product_id).in_(product_ids),
                col(Order.placed_at) >= since,
                col(Order.status).in_(PAID_STATUSES),
                col(Order.customer_id).is_not(None),
                col(ProtectionClaim.id).is_(None),
            )
            .order_by(col(OrderLine.id))
        )
    )
    credited: list[ProtectionClaim] = []
    for line_id in candidates:
        assert line_id is not None
        try:
            async with session.begin_nested():
                credited.append(
                    await claim(
                        session,
                        plugins,
                        config,
                        order_line_id=line_id,
                        customer_id=None,
                        automatic=True,
                        now=now,
                    )
                )
        except DomainError:
            continue  # not lower for this customer, no coupon plugin, nothing refundable
    return credited


def jobs(config: Any) -> list[Job]:
    async def run(ctx: JobContext) -> None:
        async with ctx.sessions() as session:
            credited = await credit_drops(session, ctx.plugins, ctx.config, utcnow())
            await session.commit()
        ctx.progress(f"{len(credited)} price-protection credits")

    return [
        Job(
            name=PROTECTION_JOB,
            interval_seconds=config.history_interval_minutes * 60,
            run=run,
            description="Credits price protection to every eligible order line after a price "
            "drop (when SHOPGRAPH_PRICING_PROTECTION_AUTOMATIC is on).",
        )
    ]


# --- reading ---------------------------------------------------------------------------------


def claims_query(customer_id: int | None = None) -> Select[Any]:
    """Claims, for a page newest first: a customer's own, or (None) all of them."""
    query = select(ProtectionClaim)
    if customer_id is not None:
        query = query.where(col(ProtectionClaim.customer_id) == customer_id)
    return query


# --- KPIs ------------------------------------------------------------------------------------


async def _per_bucket(
    session: AsyncSession, buckets: Sequence[KpiBucket], money: bool
) -> list[float | None]:
    if not buckets:
        return []
    start = day_start(min(b.start for b in buckets))
    end = day_start(max(b.end for b in buckets))
    rows = await session.execute(
        select(col(ProtectionClaim.created_at), col(ProtectionClaim.amount)).where(
            col(ProtectionClaim.created_at) >= start, col(ProtectionClaim.created_at) < end
        )
    )
    per_day: dict[date, int] = defaultdict(int)
    for at, amount in rows:
        per_day[shop_day(at)] += amount if money else 1
    return [float(sum(v for d, v in per_day.items() if b.start <= d < b.end)) for b in buckets]


async def protection_credits(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    return await _per_bucket(session, buckets, money=True)


async def protection_claims(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    return await _per_bucket(session, buckets, money=False)


def kpis() -> list[Kpi]:
    return [
        Kpi(
            "pricing.protection_credits",
            "Price-protection credits",
            KpiUnit.MONEY,
            protection_credits,
            description="Money credited to customers by price protection (价格保护) in the "
            "period: refunds and coupons, claimed or automatic.",
            higher_is_better=False,
        ),
        Kpi(
            "pricing.protection_claims",
            "Price-protection claims",
            KpiUnit.COUNT,
            protection_claims,
            description="Order lines credited by price protection in the period.",
            higher_is_better=False,
        ),
    ]


# --- demo ----------------------------------------------------------------------------------

DEMO_REDUCTION_MINUTES = 30
DEMO_MAX_CLAIMS = 3


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """A price reduction of the demo's best seller of the protection window (10% off, rounded
    down to the minor unit) just after its last sale of the window, with its history (the
    price it had for months before: its prior price shows), and the claims of up to three of
    its latest lines bought before the reduction. Nothing random: the same shop gets the same
    reduction and claims."""
    progress("pricing: a price reduction and its price-protection claims")
    since = shop.as_of - timedelta(days=config.protection_days)
    with_history = select(col(PriceHistory.product_id))
    rows = list(
        await session.execute(
            select(col(OrderLine.product_id), func.count(), func.max(col(Order.placed_at)))
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(
                col(OrderLine.product_id).in_(shop.product_ids),
                col(OrderLine.product_id).not_in(with_history),
                col(Order.placed_at) >= since,
                col(Order.placed_at) < shop.as_of,
                col(Order.status).in_(PAID_STATUSES),
                col(Order.customer_id).is_not(None),
            )
            .group_by(col(OrderLine.product_id))
            .order_by(func.count().desc(), col(OrderLine.product_id))
            .limit(1)
        )
    )
    if not rows:
        return {"pricing_protection_claims": 0}
    # The cut comes just after the product's last sale of the window: every line of the
    # window was bought at the old price.
    reduced_at = min(rows[0][2] + timedelta(minutes=DEMO_REDUCTION_MINUTES), shop.as_of)
    product = await session.get(Product, rows[0][0])
    assert product is not None and product.id is not None
    variants = list(
        await session.scalars(
            select(ProductVariant).where(col(ProductVariant.product_id) == product.id)
        )
    )
    before = product.price_amount
    after = before * 90 // 100
    product.price_amount = after
    for variant in variants:
        variant.price_amount = variant.price_amount * 90 // 100
        session.add(variant)
    session.add(product)
    for at, amount, previous in (
        (shop.as_of - timedelta(days=120), before, None),
        (reduced_at, after, before),
    ):
        await history.record(
            session,
            product_id=product.id,
            amount=amount,
            previous_amount=previous,
            currency=product.currency,
            source=PriceSource.CATALOGUE,
            effective_at=at,
            actor="demo",
            reason="demo: catalogue price",
        )
    lines = list(
        await session.execute(
            select(OrderLine, Order)
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(
                col(OrderLine.product_id) == product.id,
                col(Order.placed_at) >= since,
                col(Order.placed_at) < reduced_at,
                col(Order.status).in_(PAID_STATUSES),
                col(Order.customer_id).is_not(None),
            )
            .order_by(col(OrderLine.id).desc())
            .limit(DEMO_MAX_CLAIMS)
        )
    )
    by_variant = {v.id: v for v in variants}
    made = 0
    for line, order in lines:
        assert line.id is not None and order.id is not None and order.customer_id is not None
        found = by_variant.get(line.variant_id)
        if found is None or found.price_amount >= line.unit_price_amount:
            continue
        amount = (line.unit_price_amount - found.price_amount) * line.quantity
        method = ClaimMethod(config.protection_method)
        reference = f"demo-{order.number}-{line.id}"[:120]
        if method is ClaimMethod.REFUND:
            payment = await session.scalar(
                select(Payment)
                .where(
                    col(Payment.order_id) == order.id,
                    col(Payment.status) == PaymentStatus.CAPTURED,
                    col(Payment.amount) >= amount,
                )
                .order_by(col(Payment.id))
                .limit(1)
            )
            if payment is None or payment.id is None:
                continue
            session.add(
                PaymentRefund(
                    payment_id=payment.id,
                    order_id=order.id,
                    amount=amount,
                    currency=order.currency,
                    reference=reference,
                    reason=f"price protection (价格保护), order line {line.id}",
                    message="demo",
                    created_at=reduced_at,
                )
            )
        session.add(
            ProtectionClaim(
                order_line_id=line.id,
                order_id=order.id,
                customer_id=order.customer_id,
                product_id=product.id,
                paid_unit_amount=line.unit_price_amount,
                current_unit_amount=found.price_amount,
                quantity=line.quantity,
                amount=amount,
                currency=order.currency,
                method=method,
                reference=reference,
                automatic=made % 2 == 1,
                created_at=min(reduced_at + timedelta(minutes=made + 1), shop.as_of),
            )
        )
        made += 1
    await session.flush()
    return {"pricing_protection_claims": made}
