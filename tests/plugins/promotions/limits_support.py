"""Orders placed the way ``placeOrder`` places them, for the limits and ledger tests: the order
and its lines written (with the adjustments the engine priced) in one transaction of their
own, the cart's decision remembered on that session, then the real ``order_placing``; the
transaction commits when nothing was refused and rolls back otherwise, as the core does."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    Promotion,
    PromotionClass,
    Redemption,
    RedemptionStatus,
)
from plugins.promotions.service import limits
from plugins.promotions.service.engine import Decision, Offer, PromotionRef, remember, rule_of
from plugins.promotions.service.settings import PromotionsSettings
from server import migrate
from server.db import mark_write
from server.models import Order, OrderLine, OrderStatus, Product, ProductVariant
from server.plugin import CartLineView, CartView, CheckoutProblem

_serial = itertools.count(1)
CONFIG = PromotionsSettings()


def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of the migrated template on ``request.param``'s backend, for every test of
    a module whose tests each write rows of their own (no test reads another's)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("promotions-limits") / "shop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    if admin is None:
        pytest.skip("no PostgreSQL binaries on this machine")
    template = request.getfixturevalue("postgres_template")
    name = f"shopgraph_limits_{os.getpid()}_{next(_serial)}"
    plain = admin.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(plain)
        await conn.execute(sql)
        await conn.close()

    migrate.run_async(lambda: run(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        migrate.run_async(lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def add(session: AsyncSession, row: Any) -> Any:
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def promotion(session: AsyncSession, **fields: Any) -> Promotion:
    fields.setdefault("name", f"促销 {next(_serial)}")
    fields.setdefault("label", fields["name"])
    return await add(session, Promotion(**fields))


async def coupon(session: AsyncSession, promo: Promotion, **fields: Any) -> CouponCode:
    fields.setdefault("code", f"CODE{next(_serial)}")
    return await add(session, CouponCode(promotion_id=promo.id, **fields))


async def campaign(session: AsyncSession, **fields: Any) -> Campaign:
    fields.setdefault("name", f"双十一 {next(_serial)}")
    return await add(session, Campaign(**fields))


def ref(promo: Promotion) -> PromotionRef:
    assert promo.id is not None
    return PromotionRef(
        id=promo.id,
        kind=promo.kind,
        promotion_class=promo.promotion_class,
        label=promo.label,
        priority=promo.priority,
        campaign_id=promo.campaign_id,
    )


async def variant_id(session: AsyncSession, product: Product) -> int:
    found = await session.scalar(
        select(col(ProductVariant.id)).where(col(ProductVariant.product_id) == product.id)
    )
    assert found is not None
    return int(found)


@dataclass(frozen=True)
class Line:
    """A line to order: ``quantity`` of ``variant`` at ``base`` less ``off`` per unit by
    ``product_rule`` (a PRODUCT promotion's adjustment), if any."""

    product_id: int
    variant_id: int
    quantity: int
    base: int
    off: int = 0
    product_rule: str | None = None

    @property
    def unit(self) -> int:
        return self.base - self.off


@dataclass
class Placed:
    order_id: int | None
    problems: Sequence[CheckoutProblem] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


async def place(
    factory: async_sessionmaker[AsyncSession],
    lines: Sequence[Line],
    offers: Sequence[Offer],
    *,
    customer_id: int | None = None,
    order_rules: Sequence[tuple[str, int]] = (),
    decide: bool = True,
    priced: dict[int, int] | None = None,
) -> Placed:
    """Place an order of ``lines`` whose cart the engine decided ``offers`` for; the order
    carries an adjustment of ``-amount`` for each ORDER offer (``priced[promotion id]`` when
    given: what the order's total really took off), and ``order_rules`` besides."""
    priced = priced or {}
    async with factory() as session:
        await mark_write(session)
        cart_id = next(_serial)
        adjustments = [
            {
                "source": "promotions",
                "rule": o.rule,
                "label": o.label,
                "amount": -priced.get(o.promotion.id, o.amount),
            }
            for o in offers
            if o.promotion.promotion_class is PromotionClass.ORDER
        ] + [
            {"source": "promotions", "rule": rule, "label": rule, "amount": -amount}
            for rule, amount in order_rules
        ]
        subtotal = sum(line.unit * line.quantity for line in lines)
        discount = -sum(int(a["amount"]) for a in adjustments)
        order = Order(
            number=f"SGT{next(_serial):010d}",
            customer_id=customer_id,
            cart_id=None,
            status=OrderStatus.PENDING_PAYMENT,
            subtotal_amount=subtotal,
            discount_amount=discount,
            total_amount=subtotal - discount,
            adjustments=adjustments,
        )
        session.add(order)
        await session.flush()
        assert order.id is not None
        rows = [
            OrderLine(
                order_id=order.id,
                product_id=line.product_id,
                variant_id=line.variant_id,
                sku=f"SKU-{line.variant_id}",
                product_name="商品",
                quantity=line.quantity,
                base_unit_price_amount=line.base,
                unit_price_amount=line.unit,
                line_total_amount=line.unit * line.quantity,
                adjustments=(
                    [
                        {
                            "source": "promotions",
                            "rule": line.product_rule,
                            "label": "",
                            "amount": -line.off,
                        }
                    ]
                    if line.product_rule
                    else []
                ),
            )
            for line in lines
        ]
        session.add_all(rows)
        await session.flush()
        cart = CartView(
            cart_id=cart_id,
            customer_id=customer_id,
            currency="CNY",
            lines=tuple(
                CartLineView(
                    product_id=line.product_id,
                    variant_id=line.variant_id,
                    sku=f"SKU-{line.variant_id}",
                    quantity=line.quantity,
                    unit_price=line.unit,
                )
                for line in lines
            ),
            subtotal=subtotal,
        )
        if decide:
            remember(session, cart_id, Decision(applied=tuple(offers)))
        problems = await limits.order_placing(session, order, rows, cart, None, CONFIG)
        if problems:
            await session.rollback()
            return Placed(None, problems)
        await session.commit()
        return Placed(order.id)


async def cancel(factory: async_sessionmaker[AsyncSession], order_id: int) -> None:
    async with factory() as session:
        await mark_write(session)
        order = await session.get(Order, order_id)
        assert order is not None
        lines = list(
            await session.scalars(select(OrderLine).where(col(OrderLine.order_id) == order_id))
        )
        await limits.order_cancelling(session, order, lines, "test", CONFIG)
        await session.commit()


def product_offer(promo: Promotion, units: dict[int, int], per_unit: int) -> Offer:
    return Offer(
        promotion=ref(promo),
        amount=sum(units.values()) * per_unit,
        label=promo.label,
        units=units,
    )


def order_offer(
    promo: Promotion,
    shares: dict[int, int],
    code_id: int | None = None,
    units: dict[int, int] | None = None,
) -> Offer:
    return Offer(
        promotion=ref(promo),
        amount=sum(shares.values()),
        label=promo.label,
        line_shares=shares,
        units=units or {},
        code_id=code_id,
    )


def product_rule(promo: Promotion) -> str:
    assert promo.id is not None
    return rule_of(promo.id)


async def reserved(session: AsyncSession, promotion_id: int) -> tuple[int, int]:
    """(redemptions RESERVED, their units) of a promotion."""
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


async def fresh(session: AsyncSession, row: Any) -> Any:
    """``row`` read again (another session changed it): a new transaction, so a new
    snapshot on SQLite."""
    await session.commit()
    return await session.get(type(row), row.id, populate_existing=True)
