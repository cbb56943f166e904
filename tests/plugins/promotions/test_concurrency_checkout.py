"""Limits exact under concurrent checkouts over HTTP: placeOrder fired at once against a real
server (two server processes' worth on PostgreSQL: two apps, two connection pools, one
database) at a coupon of 5 uses, a promotion of 5 uses and a flash sale of 100 units. The
counters, the redemptions and the orders placed agree; cancelling gives units back."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    CartCode,
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    Redemption,
    RedemptionStatus,
    Trigger,
)
from server.app import create_app
from server.config import Settings
from server.db import mark_write
from server.models import Cart, CartLine, Order, OrderLine, Product, ProductVariant
from server.plugins import load_plugins
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import CANCEL_ORDER, PLACE_ORDER, make_product, order_input, unthrottled
from tests.support.server import LiveServer

_serial = itertools.count(1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return unthrottled(settings).model_copy(update={"plugins": "promotions"})


@pytest.fixture
def servers(settings: Settings, backend: str) -> Iterator[list[LiveServer]]:
    """One server on SQLite; two on PostgreSQL, each its own app and connection pool."""
    started = [
        LiveServer(create_app(settings, load_plugins(settings))).start()
        for _ in range(2 if backend == "postgresql" else 1)
    ]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
async def clients(servers: list[LiveServer]) -> AsyncIterator[list[GraphQLClient]]:
    https = [httpx.AsyncClient(base_url=s.url, timeout=60) for s in servers]
    yield [GraphQLClient(h) for h in https]
    for h in https:
        await h.aclose()


async def _carts(
    session: AsyncSession,
    product: Product,
    quantities: Sequence[int],
    code: CouponCode | None = None,
) -> list[str]:
    """Guest carts of ``product`` (one per quantity), holding ``code`` if given."""
    # A new transaction that writes from its start: an older SQLite snapshot cannot write.
    await session.commit()
    await mark_write(session)
    variant = await session.scalar(
        select(col(ProductVariant.id)).where(col(ProductVariant.product_id) == product.id)
    )
    tokens = []
    for quantity in quantities:
        cart = Cart(token=f"promo-cart-{next(_serial)}")
        session.add(cart)
        await session.flush()
        session.add(
            CartLine(cart_id=cart.id, product_id=product.id, variant_id=variant, quantity=quantity)
        )
        if code is not None:
            session.add(CartCode(cart_id=cart.id, code_id=code.id))
        tokens.append(cart.token)
    await session.commit()
    return tokens


async def _fire(clients: list[GraphQLClient], tokens: Sequence[str]) -> list[dict[str, Any]]:
    bodies = await asyncio.gather(
        *(
            clients[i % len(clients)].execute(PLACE_ORDER, order_input(t, f"k-{t}"))
            for i, t in enumerate(tokens)
        )
    )
    for body in bodies:
        assert not body.get("errors"), body["errors"]
    return [body["data"]["placeOrder"] for body in bodies]


def _problem_codes(results: Sequence[dict[str, Any]]) -> set[str]:
    return {
        (p["plugin"], p["code"])[1]
        for r in results
        if r["__typename"] == "CheckoutProblems"
        for p in r["problems"]
    }


async def _scalar(session: AsyncSession, stmt: Any) -> int:
    await session.commit()
    return int(await session.scalar(stmt) or 0)


async def _redeemed(session: AsyncSession, promotion_id: int | None) -> tuple[int, int]:
    await session.commit()
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Redemption.units), 0)).where(
                col(Redemption.promotion_id) == promotion_id,
                col(Redemption.status) == RedemptionStatus.RESERVED,
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def test_a_coupon_of_five_uses_and_a_promotion_of_five(
    session: AsyncSession, clients: list[GraphQLClient]
) -> None:
    product = await make_product(session, price=20000, stock=1000)
    coupon = Promotion(
        name="新人券",
        label="新人券 30 元",
        kind=PromotionKind.COUPON,
        trigger=Trigger.CODE,
        rules={"amount_off": 3000},
        combinable_with=[PromotionClass.PRODUCT.value],
    )
    session.add(coupon)
    await session.flush()
    code = CouponCode(promotion_id=coupon.id, code="FIVEONLY", max_uses=5)
    session.add(code)
    await session.commit()

    results = await _fire(clients, await _carts(session, product, [1] * 12, code))

    kinds = [r["__typename"] for r in results]
    assert kinds.count("PlaceOrderSuccess") == 5, results
    assert kinds.count("CheckoutProblems") == 7
    # Refused when placing (the last use went meanwhile), or already when the cart was
    # checked (the code was used up by then): either way a typed coupon problem.
    assert _problem_codes(results) <= {"COUPON_USED_UP", "COUPON_LIMIT_REACHED"}
    assert {r["order"]["discount"]["amount"] for r in results if "order" in r} == {"30.00"}
    assert await _scalar(session, select(CouponCode.used_count)) == 5
    assert await _redeemed(session, coupon.id) == (5, 5)
    assert await _scalar(session, select(func.count()).select_from(Order)) == 5

    await session.commit()
    await mark_write(session)
    # An automatic promotion of 5 uses: late shoppers pay full price or are refused (when
    # it was taken between their quote and their order), and exactly 5 orders get it.
    spend = Promotion(
        name="满 100 减 10",
        kind=PromotionKind.SPEND_SAVE,
        rules={"tiers": [{"threshold": 10000, "amount_off": 1000}]},
        total_limit=5,
    )
    session.add(spend)
    await session.commit()
    results = await _fire(clients, await _carts(session, product, [1] * 12))
    discounted = [r for r in results if "order" in r and r["order"]["discount"]["amount"] != "0.00"]
    assert len(discounted) == 5
    assert _problem_codes(results) <= {"PROMOTION_LIMIT_REACHED"}
    assert (
        await _scalar(session, select(Promotion.used_count).where(col(Promotion.id) == spend.id))
        == 5
    )
    assert await _redeemed(session, spend.id) == (5, 5)


async def test_a_flash_sale_of_100_units_sells_100_and_cancels_give_back(
    session: AsyncSession, clients: list[GraphQLClient], settings: Settings
) -> None:
    staff_token = token_for(settings, await make_staff(session))
    product = await make_product(session, price=9900, stock=1000)
    flash = Promotion(
        name="限时特惠",
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 5000},
        product_ids=[product.id],
        unit_limit=100,
    )
    session.add(flash)
    await session.commit()
    rule = f"promotion:{flash.id}"

    async def flash_units() -> int:
        """Units of the order lines placed at the flash price (live orders only)."""
        await session.commit()
        lines = await session.scalars(
            select(OrderLine)
            .join(Order, col(Order.id) == OrderLine.order_id)
            .where(col(Order.cancelled_at).is_(None))
        )
        return sum(ln.quantity for ln in lines if any(a["rule"] == rule for a in ln.adjustments))

    # 65 shoppers of 1–3 units: 129 asked for 100.
    quantities = [1 + (i % 3) for i in range(65)]
    burst = await _fire(clients, await _carts(session, product, quantities))
    assert _problem_codes(burst) <= {"PROMOTION_UNITS_SOLD_OUT"}
    # Whoever missed it found fewer units left than they wanted: at most 2 remain.
    sold = await flash_units()
    assert 98 <= sold <= 100
    # Single units top it up to exactly 100, never 101.
    tail = await _fire(clients, await _carts(session, product, [1] * 4))
    assert sum("order" in r for r in tail) == 4
    assert await flash_units() == 100
    units_sold = select(Promotion.units_sold).where(col(Promotion.id) == flash.id)
    assert await _scalar(session, units_sold) == 100
    redemptions, units = await _redeemed(session, flash.id)
    assert units == 100
    assert {r["order"]["lines"][0]["unitPrice"]["amount"] for r in burst if "order" in r} >= {
        "49.50"
    }

    # Cancelling a 3-unit flash order gives its units back; the next shopper gets them.
    three = next(
        r["order"]["id"]
        for q, r in zip(quantities, burst, strict=True)
        if q == 3 and "order" in r and r["order"]["lines"][0]["unitPrice"]["amount"] == "49.50"
    )
    staff = clients[0].as_(staff_token)
    cancelled = await staff(CANCEL_ORDER, {"input": {"orderId": three}})
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED", cancelled
    assert await _scalar(session, units_sold) == 97
    assert await _redeemed(session, flash.id) == (redemptions - 1, 97)
    again = await _fire(clients, await _carts(session, product, [3]))
    assert again[0]["order"]["lines"][0]["unitPrice"]["amount"] == "49.50"
    assert await _scalar(session, units_sold) == 100
    assert await flash_units() == 100
