"""A small shop whose RFM segments are worked out by hand (tests/server/test_rfm.py shows the
working), and functions that write its orders straight into the database."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer, CustomerSegment, Order, OrderStatus
from tests.support.accounts import make_customer

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
    # Without passwords: hashing them would be most of the time of the tests that use it.
    a, b, c, d, e, f = [await make_customer(session, first_name=n, password=None) for n in "abcdef"]
    erased = await make_customer(session, first_name="g", password=None, is_active=False)
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
