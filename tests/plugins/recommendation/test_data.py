"""What a rebuild reads from the shop (``load_training_data``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.service import data as data_module
from plugins.recommendation.service.data import load_training_data
from plugins.recommendation.service.settings import RecommendationSettings
from server.models import (
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
)
from tests.support.accounts import make_customer
from tests.support.catalog import make_category, make_product

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
UNTIL = T0 + timedelta(days=10)
E = CustomerEventKind


async def _order(
    session: AsyncSession,
    number: str,
    customer_id: int | None,
    status: OrderStatus,
    at: datetime,
    products: list[Product],
) -> Order:
    order = Order(number=number, customer_id=customer_id, status=status, placed_at=at)
    session.add(order)
    await session.flush()
    for p in products:
        variant = (
            await session.execute(select(ProductVariant).where(ProductVariant.product_id == p.id))
        ).scalar_one()
        session.add(
            OrderLine(
                order_id=order.id,  # type: ignore[arg-type]  # flushed
                product_id=p.id,  # type: ignore[arg-type]  # flushed
                variant_id=variant.id,  # type: ignore[arg-type]  # flushed
                sku=p.sku,
                product_name=p.name,
                quantity=1,
                base_unit_price_amount=p.price_amount,
                unit_price_amount=p.price_amount,
                line_total_amount=p.price_amount,
            )
        )
    return order


def _event(
    kind: CustomerEventKind,
    at: datetime,
    product: Product | None,
    customer_id: int | None = None,
    session_id: str | None = None,
) -> CustomerEvent:
    return CustomerEvent(
        kind=kind,
        customer_id=customer_id,
        session_id=session_id,
        product_id=product.id if product else None,
        occurred_at=at,
    )


async def test_load_training_data_reads_what_a_rebuild_learns_from(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
):
    # Partitions of two rows: the streaming path joins several partitions.
    monkeypatch.setattr(data_module, "PARTITION", 2)
    food = await make_category(session, "食品")
    tea = await make_category(session, "茶叶", parent=food)
    green = await make_product(
        session,
        "有机绿茶",
        category=tea,
        brand="西湖",
        tags=["春茶"],
        attributes={"产地": "杭州"},
        created_at=T0 - timedelta(days=30),
    )
    old = await make_product(session, "旧款茶具", is_active=False, created_at=T0)
    late = await make_product(session, "新品", created_at=UNTIL + timedelta(hours=1))
    a = await make_customer(session)
    b = await make_customer(session)
    assert a.id is not None and b.id is not None
    await _order(session, "R-1", a.id, OrderStatus.PAID, T0 + timedelta(days=1), [green, old])
    await _order(session, "R-2", b.id, OrderStatus.CANCELLED, T0 + timedelta(days=2), [green])
    await _order(session, "R-3", None, OrderStatus.PAID, T0 + timedelta(days=2), [green])
    # Placed but not paid yet: a purchase all the same (it is not cancelled).
    pending = await _order(
        session, "R-4", b.id, OrderStatus.PENDING_PAYMENT, T0 + timedelta(days=3), [old]
    )
    after = await _order(session, "R-5", a.id, OrderStatus.PAID, UNTIL, [green, late])
    session.add_all(
        [
            _event(E.VIEW, T0 + timedelta(hours=1), green, customer_id=a.id, session_id="x"),
            _event(E.FAVORITE, T0 + timedelta(hours=2), old, session_id="s-1"),
            _event(E.ADD_TO_CART, T0 + timedelta(hours=3), green, session_id="s-2"),
            _event(E.VIEW, T0 + timedelta(hours=4), green, session_id="s-1"),
            _event(E.SEARCH, T0 + timedelta(hours=5), None, customer_id=a.id),
            _event(E.PURCHASE, T0 + timedelta(hours=6), green, customer_id=a.id),
            _event(E.VIEW, T0 + timedelta(hours=7), green),  # nobody to learn about
            _event(E.VIEW, UNTIL + timedelta(hours=1), late, customer_id=b.id),
        ]
    )
    await session.commit()
    settings = RecommendationSettings(view_weight=1.5, favorite_weight=3.0, cart_weight=4.0)

    notes: list[str] = []
    data = await load_training_data(session, settings, until=UNTIL, progress=notes.append)
    assert len(notes) >= data_module.LOAD_STEPS
    assert data.now == UNTIL
    assert [p.id for p in data.products] == [green.id, old.id]  # "late" came after
    first = data.products[0]
    assert (first.name, first.category_id, first.brand) == ("有机绿茶", tea.id, "西湖")
    assert (first.tags, first.attributes, first.is_active) == (("春茶",), {"产地": "杭州"}, True)
    assert first.created_at == T0 - timedelta(days=30)
    assert data.products[1].is_active is False
    assert data.parents == {food.id: None, tea.id: food.id}
    assert data.category_names == {food.id: "食品", tea.id: "茶叶"}

    p = data.purchases
    assert p.customer.tolist() == [a.id, a.id, b.id]
    assert p.product.tolist() == [green.id, old.id, old.id]
    assert p.order.tolist()[2] == pending.id
    assert p.at.tolist() == pytest.approx(
        [(T0 + timedelta(days=d)).timestamp() for d in (1, 1, 3)], abs=1e-3
    )

    b_ = data.behaviour
    # The customer's own id (its session id aside); sessions by first appearance: -1, -2.
    assert b_.visitor.tolist() == [a.id, -1, -2, -1]
    assert b_.product.tolist() == [green.id, old.id, green.id, green.id]
    assert b_.weight.tolist() == [1.5, 3.0, 4.0, 1.5]
    assert b_.at.tolist() == pytest.approx(
        [(T0 + timedelta(hours=h)).timestamp() for h in (1, 2, 3, 4)], abs=1e-3
    )
    assert data.stats == {
        "products": 2,
        "categories": 2,
        "order_lines": 3,
        "orders": 2,
        "buyers": 2,
        "events": 4,
        "visitors": 3,
    }

    # Without ``until``: everything up to now.
    everything = await load_training_data(session, settings)
    assert len(everything.products) == 3
    assert everything.purchases.order.tolist()[-2:] == [after.id, after.id]
    assert everything.behaviour.product.tolist()[-1] == late.id
