"""A small shop whose RFM segments are worked out by hand (tests/server/test_rfm.py shows the
working), a shop of customers simulated with known parameters, and functions that write their
orders straight into the database."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer, CustomerSegment, Order, OrderStatus
from tests.support.accounts import make_customer
from tests.support.clv import SimulatedCohort

_numbers = itertools.count(1)
# The moment the small shop is scored at.
AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


async def buy(
    session: AsyncSession,
    customer: Customer | None,
    total: int,
    placed_at: datetime,
    *,
    status: OrderStatus = OrderStatus.COMPLETED,
    currency: str = "CNY",
) -> Order:
    """A committed order of ``total`` minor units placed at ``placed_at`` (no lines: the
    insights read only the order)."""
    order = Order(
        number=f"SG-RFM-{next(_numbers):06d}",
        customer_id=customer.id if customer is not None else None,
        email="buyer@example.cn",
        status=status,
        currency=currency,
        subtotal_amount=total,
        total_amount=total,
        placed_at=placed_at,
        updated_at=placed_at,
    )
    session.add(order)
    await session.commit()
    return order


@dataclass
class SmallShop:
    """Six buyers (a-f), an erased buyer, and orders that are no purchase."""

    a: Customer
    b: Customer
    c: Customer
    d: Customer
    e: Customer
    f: Customer
    erased: Customer
    f_order: Order

    @property
    def buyers(self) -> dict[str, Customer]:
        return {k: getattr(self, k) for k in "abcdef"}


# The segments of the small shop as of AS_OF (worked out in tests/server/test_rfm.py).
SMALL_SHOP_SEGMENTS = {
    "a": CustomerSegment.IMPORTANT_VALUE,
    "b": CustomerSegment.IMPORTANT_DEVELOP,
    "c": CustomerSegment.IMPORTANT_KEEP,
    "d": CustomerSegment.GENERAL_WIN_BACK,
    "e": CustomerSegment.GENERAL_WIN_BACK,
    "f": CustomerSegment.IMPORTANT_WIN_BACK,
}


async def small_shop(session: AsyncSession) -> SmallShop:
    # Without passwords: hashing them would be most of the time of the tests that use it. The
    # addresses sort as the names do (tests list them by e-mail), whatever ran before.
    a, b, c, d, e, f = [
        await make_customer(
            session, email=f"{n}@small-shop.example.cn", first_name=n, password=None
        )
        for n in "abcdef"
    ]
    erased = await make_customer(
        session, email="g@small-shop.example.cn", first_name="g", password=None, is_active=False
    )
    for total, day in ((1000, at(5, 2)), (2000, at(6, 10)), (3000, at(6, 29))):
        await buy(session, a, total, day)
    await buy(session, b, 9000, at(6, 28), status=OrderStatus.PAID)
    for day in (at(1, 5), at(2, 5), at(2, 20), at(3, 1)):
        await buy(session, c, 2000, day, status=OrderStatus.DELIVERED)
    await buy(session, d, 500, at(1, 10), status=OrderStatus.SHIPPED)
    await buy(session, e, 300, at(6, 20), status=OrderStatus.FULFILLING)
    await buy(session, e, 200, at(6, 25))
    f_order = await buy(session, f, 12000, at(2, 1))
    # No purchase: cancelled, unpaid, after AS_OF, a guest's, another currency, an erased
    # customer's.
    await buy(session, a, 500000, at(6, 1), status=OrderStatus.CANCELLED)
    await buy(session, b, 500000, at(6, 29), status=OrderStatus.PENDING_PAYMENT)
    await buy(session, c, 500000, at(7, 5))
    await buy(session, None, 500000, at(6, 29))
    await buy(session, d, 500000, at(6, 29), currency="USD")
    await buy(session, erased, 500000, at(6, 29))
    return SmallShop(a=a, b=b, c=c, d=d, e=e, f=f, erased=erased, f_order=f_order)


# --- a shop of simulated customers, written in bulk ---------------------------------------------

# Week 0 of a simulated cohort (tests/support/clv.py), a UTC midnight.
COHORT_START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass(frozen=True)
class SimulatedShop:
    """Customers simulated from BG/NBD and Gamma-Gamma written as orders up to ``as_of``: the
    purchase log as written (one row per purchase order: customer id, UTC day, minor units),
    and each customer's purchases after ``as_of`` up to ``horizon_end`` (not written: what
    the models are to foresee)."""

    customer_ids: list[int]
    as_of: datetime
    customers: list[int]
    days: list[date]
    amounts: list[int]
    later: dict[int, int]


def _moment(weeks: float) -> datetime:
    return COHORT_START + timedelta(weeks=float(weeks))


async def simulated_shop(
    session: AsyncSession,
    cohort: SimulatedCohort,
    *,
    calibration_weeks: float,
    horizon_weeks: float,
) -> SimulatedShop:
    """Write ``cohort``'s customers and their purchases up to ``calibration_weeks`` with bulk
    inserts. Every 10th customer's first purchase is split into two orders on the same day (one
    purchase of their sum), and every 7th customer also has a cancelled order (no purchase)."""
    n = cohort.start.shape[0]
    created = [_moment(start) - timedelta(days=30) for start in cohort.start.tolist()]
    ids = list(
        (
            await session.execute(
                insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
                [
                    {
                        "email": f"sim{next(_numbers)}@example.cn",
                        "first_name": "模拟",
                        "last_name": "",
                        "membership_tier": "STANDARD",
                        "tags": [],
                        "interests": [],
                        "is_active": True,
                        "created_at": created[i],
                    }
                    for i in range(n)
                ],
            )
        ).scalars()
    )
    orders: list[dict[str, object]] = []
    log = SimulatedShop(ids, _moment(calibration_weeks), [], [], [], {})

    def order(i: int, at: datetime, total: int, status: OrderStatus) -> None:
        orders.append(
            {
                "number": f"SG-SIM-{next(_numbers):07d}",
                "customer_id": ids[i],
                "email": "buyer@example.cn",
                "status": status,
                "currency": "CNY",
                "subtotal_amount": total,
                "discount_amount": 0,
                "fee_amount": 0,
                "shipping_amount": 0,
                "total_amount": total,
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
                "placed_at": at,
                "updated_at": at,
            }
        )
        if status is OrderStatus.COMPLETED:
            log.customers.append(ids[i])
            log.days.append(at.date())
            log.amounts.append(total)

    first = np.zeros(n, dtype=bool)
    for i, weeks, value in zip(
        cohort.customer.tolist(), cohort.time.tolist(), cohort.value.tolist(), strict=True
    ):
        total = max(int(round(value * 100)), 1)
        if weeks > calibration_weeks:
            if weeks <= calibration_weeks + horizon_weeks:
                log.later[ids[i]] = log.later.get(ids[i], 0) + 1
            continue
        if i % 10 == 0 and not first[i]:
            half = total // 2
            order(i, _moment(weeks), half, OrderStatus.COMPLETED)
            order(i, _moment(weeks) + timedelta(minutes=5), total - half, OrderStatus.COMPLETED)
        else:
            order(i, _moment(weeks), total, OrderStatus.COMPLETED)
        first[i] = True
    for i in range(0, n, 7):
        order(i, _moment(cohort.start[i]) + timedelta(days=1), 99999, OrderStatus.CANCELLED)
    await session.execute(insert(Order), orders)
    await session.commit()
    return log
