"""A small shop whose KPIs are worked out by hand (tests/server/test_kpis.py shows the working),
written straight into the database: orders, payments and behaviour events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Customer,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
)
from tests.support.accounts import make_customer

D1 = date(2026, 3, 2)
D2 = date(2026, 3, 3)
WEEK_END = date(2026, 3, 9)
S = OrderStatus
P = PaymentStatus
E = CustomerEventKind


def at(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock of a shop day, in UTC."""
    return datetime.combine(day, time(hour), tzinfo=UTC) - timedelta(hours=8)


@dataclass
class Shop:
    customers: dict[str, Customer]
    orders: dict[str, Order]


async def order(
    session: AsyncSession,
    name: str,
    customer: Customer | None,
    total: int,
    day: date,
    status: OrderStatus,
    *,
    paid: bool,
    currency: str = "CNY",
) -> Order:
    order = Order(
        number=f"SG-KPI-{name}-{day:%Y%m%d}",
        customer_id=customer.id if customer else None,
        status=status,
        currency=currency,
        subtotal_amount=total,
        total_amount=total,
        placed_at=at(day),
        updated_at=at(day),
        paid_at=at(day, 11) if paid else None,
    )
    session.add(order)
    await session.flush()
    return order


def payment(order: Order, status: PaymentStatus, day: date) -> Payment:
    return Payment(
        order_id=order.id,  # type: ignore[arg-type]  # flushed
        gateway="test",
        amount=order.total_amount,
        currency=order.currency,
        status=status,
        created_at=at(day, 11),
    )


def event(
    kind: CustomerEventKind,
    day: date,
    *,
    customer: Customer | None = None,
    session_id: str | None = None,
    order: Order | None = None,
    results: int | None = None,
    minute: int = 0,
) -> CustomerEvent:
    return CustomerEvent(
        kind=kind,
        customer_id=customer.id if customer else None,
        session_id=session_id,
        order_id=order.id if order else None,
        data={} if results is None else {"result_count": results},
        occurred_at=at(day, 12) + timedelta(minutes=minute),
    )


async def small_shop(session: AsyncSession) -> Shop:
    c = {name: await make_customer(session) for name in "abcd"}
    o: dict[str, Order] = {}
    o["o9"] = await order(session, "o9", c["b"], 8000, date(2025, 3, 2), S.COMPLETED, paid=True)
    o["o10"] = await order(session, "o10", c["d"], 4000, date(2026, 3, 1), S.COMPLETED, paid=True)
    o["o1"] = await order(session, "o1", c["a"], 10000, D1, S.COMPLETED, paid=True)
    o["o2"] = await order(session, "o2", c["b"], 5000, D1, S.PAID, paid=True)
    o["o3"] = await order(session, "o3", None, 3000, D1, S.DELIVERED, paid=True)
    o["o4"] = await order(session, "o4", c["c"], 2000, D1, S.PENDING_PAYMENT, paid=False)
    o["o5"] = await order(session, "o5", c["c"], 4000, D1, S.CANCELLED, paid=True)
    o["o6"] = await order(session, "o6", c["d"], 7000, D1, S.COMPLETED, paid=True, currency="USD")
    o["o7"] = await order(session, "o7", c["a"], 6000, D2, S.COMPLETED, paid=True)
    o["o8"] = await order(session, "o8", c["c"], 1000, D2, S.PAID, paid=True)
    session.add_all(
        [
            payment(o["o1"], P.CAPTURED, D1),
            payment(o["o2"], P.CAPTURED, D1),
            payment(o["o3"], P.REFUNDED, D1),
            payment(o["o4"], P.DECLINED, D1),
            payment(o["o4"], P.PENDING, D1),
            payment(o["o5"], P.REFUNDED, D1),
            payment(o["o7"], P.CAPTURED, D2),
            payment(o["o8"], P.AUTHORISED, D2),
        ]
    )
    a, b, cc = c["a"], c["b"], c["c"]
    session.add_all(
        [
            event(E.VIEW, D1, customer=a),
            event(E.ADD_TO_CART, D1, customer=a, minute=1),
            event(E.PURCHASE, D1, customer=a, order=o["o1"], minute=2),
            event(E.VIEW, D1, customer=b),
            event(E.PURCHASE, D1, customer=b, order=o["o2"], minute=1),
            event(E.VIEW, D1, customer=cc),
            event(E.ADD_TO_CART, D1, customer=cc, minute=1),
            event(E.PURCHASE, D1, customer=cc, order=o["o4"], minute=2),
            event(E.VIEW, D1, session_id="s1"),
            event(E.ADD_TO_CART, D1, session_id="s1", minute=1),
            event(E.PURCHASE, D1, session_id="s1", order=o["o3"], minute=2),
            event(E.VIEW, D1, session_id="s2"),
            event(E.SEARCH, D1, session_id="s3", results=0),
            event(E.SEARCH, D1, session_id="s4", results=5),
            event(E.VIEW, D1, session_id="s4", minute=1),
            event(E.VIEW, D1, session_id="s5"),
            event(E.ADD_TO_CART, D1, session_id="s5", minute=1),
            event(E.VIEW, D2, customer=a),
            event(E.PURCHASE, D2, customer=a, order=o["o7"], minute=1),
            event(E.ADD_TO_CART, D2, session_id="s5"),
            event(E.VIEW, D2, session_id="s6"),
        ]
    )
    await session.commit()
    return Shop(c, o)
