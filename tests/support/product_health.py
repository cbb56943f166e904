"""A small shop whose product health is counted by hand (tests/server/test_product_health.py and
tests/schema/test_product_health.py), and a writer of orders and search events in bulk.

The period is the shop days June 1-7, 2026 (``PERIOD``: June 1 inclusive, June 8 exclusive; in
UTC from May 31, 16:00 to June 7, 16:00). Every SKU, what it sold in the period and its stock:

| product (category)   | SKU        | created  | sold in the period       | on hand (reserved)   |
|----------------------|------------|----------|--------------------------|----------------------|
| 大米 RICE (food)     | RICE-5KG   | Jan 1    | 3 + 1                    | 10                   |
|                      | RICE-10KG  | Jan 1    | 2                        | no stock row         |
|                      | RICE-1KG   | inactive | 1                        | 0                    |
| 薯片 CHIPS (food)     | CHIPS      | Jan 1    | 1 (+5 on May 31, 23:59)  | 50                   |
| 茶叶 TEA (food)       | TEA        | Jan 1    | cancelled 3, unpaid 2    | 7 (+100 in an inactive warehouse) |
| 新茶 NEWTEA (food)    | NEWTEA     | Jun 3    | -                        | -                    |
| 手机 PHONE (digital)  | PHONE      | Jan 1    | 1                        | 5 (5)                |
| 耳机 EARBUDS (digital)| EARBUDS    | Jun 10   | (1 on Jun 11)            | 20                   |
| 旧款 OLD (digital)    | OLD        | inactive product | 4                | 0                    |
| 去年款 LASTMONTH (digital) | LASTMONTH | May 8, 23:59:59 | -          | 3                    |
| 新包 NEWBAG (none)    | NEWBAG     | May 20   | 3                        | 9                    |
| 新杯 NEWCUP (none)    | NEWCUP     | May 9, 00:00 | 3                    | 1                    |

(times are the shop's, UTC+8). Costs: RICE 30.00, CHIPS 5.00, PHONE 1,000.00, the others none.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Category,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
    StockLevel,
    Warehouse,
)
from server.services.behaviour import search_key

PERIOD = (date(2026, 6, 1), date(2026, 6, 8))
_numbers = itertools.count(1)


def shop_time(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """A moment given in the shop's time (UTC+8), as UTC."""
    local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
    return local - timedelta(hours=8)


@dataclass
class Seeded:
    categories: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sale:
    at: datetime
    sku: str
    quantity: int
    status: OrderStatus = OrderStatus.PAID


async def write_orders(session: AsyncSession, seeded: Seeded, sales: Sequence[Sale]) -> None:
    """One order per sale (a guest's), written in two statements."""
    rows, lines = [], []
    products = {
        v: p for p, v in await session.execute(select(ProductVariant.product_id, ProductVariant.id))
    }
    for sale in sales:
        number = f"SG-PH-{next(_numbers):06d}"
        rows.append(
            {
                "number": number,
                "status": sale.status,
                "currency": "CNY",
                "placed_at": sale.at,
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
            }
        )
        lines.append((number, sale))
    await session.execute(insert(Order), rows)
    ids = {number: id_ for number, id_ in await session.execute(select(Order.number, Order.id))}
    await session.execute(
        insert(OrderLine),
        [
            {
                "order_id": ids[number],
                "product_id": products[seeded.variants[sale.sku]],
                "variant_id": seeded.variants[sale.sku],
                "sku": sale.sku,
                "product_name": sale.sku,
                "options": {},
                "quantity": sale.quantity,
                "base_unit_price_amount": 100,
                "unit_price_amount": 100,
                "line_total_amount": 100 * sale.quantity,
                "adjustments": [],
            }
            for number, sale in lines
        ],
    )
    await session.commit()


async def write_searches(
    session: AsyncSession, searches: Sequence[tuple[datetime, str, int | None]]
) -> None:
    """SEARCH events (moment, text as typed, result count or None), in one statement."""
    await session.execute(
        insert(CustomerEvent),
        [
            {
                "kind": CustomerEventKind.SEARCH,
                "session_id": f"web-{i}",
                "query": text,
                "search_key": search_key(text),
                "data": {} if count is None else {"result_count": count},
                "occurred_at": at,
            }
            for i, (at, text, count) in enumerate(searches)
        ],
    )
    await session.commit()


_JAN1 = shop_time(date(2026, 1, 1))


async def seed_health_shop(session: AsyncSession) -> Seeded:
    """The shop of the module's table."""
    seeded = Seeded()
    for slug, name in (("food", "食品"), ("digital", "数码")):
        category = Category(name=name, slug=slug)
        session.add(category)
        await session.flush()
        assert category.id is not None
        seeded.categories[slug] = category.id
    main = Warehouse(code="WH-MAIN", name="上海华东仓")
    closed = Warehouse(code="WH-CLOSED", name="关闭的仓", is_active=False)
    session.add_all([main, closed])
    await session.flush()

    # (product sku, name, category, cost, product active, [(variant sku, created, active)])
    catalogue: list[
        tuple[str, str, str | None, int | None, bool, list[tuple[str, datetime, bool]]]
    ] = [
        (
            "RICE",
            "大米",
            "food",
            3000,
            True,
            [("RICE-5KG", _JAN1, True), ("RICE-10KG", _JAN1, True), ("RICE-1KG", _JAN1, False)],
        ),
        ("CHIPS", "薯片", "food", 500, True, [("CHIPS", _JAN1, True)]),
        ("TEA", "茶叶", "food", None, True, [("TEA", _JAN1, True)]),
        ("NEWTEA", "新茶", "food", None, True, [("NEWTEA", shop_time(date(2026, 6, 3)), True)]),
        ("PHONE", "手机", "digital", 100000, True, [("PHONE", _JAN1, True)]),
        (
            "EARBUDS",
            "耳机",
            "digital",
            None,
            True,
            [("EARBUDS", shop_time(date(2026, 6, 10)), True)],
        ),
        ("OLD", "旧款", "digital", None, False, [("OLD", _JAN1, True)]),
        (
            "LASTMONTH",
            "去年款",
            "digital",
            None,
            True,
            [("LASTMONTH", shop_time(date(2026, 5, 8), 23, 59, 59), True)],
        ),
        ("NEWBAG", "新包", None, None, True, [("NEWBAG", shop_time(date(2026, 5, 20)), True)]),
        ("NEWCUP", "新杯", None, None, True, [("NEWCUP", shop_time(date(2026, 5, 9), 0), True)]),
    ]
    for sku, name, category, cost, active, variants in catalogue:
        created = variants[0][1]
        product = Product(
            sku=sku,
            name=name,
            price_amount=1000,
            cost_amount=cost,
            category_id=seeded.categories[category] if category else None,
            is_active=active,
            created_at=created,
        )
        session.add(product)
        await session.flush()
        assert product.id is not None
        seeded.products[sku] = product.id
        for position, (variant_sku, variant_created, variant_active) in enumerate(variants):
            variant = ProductVariant(
                product_id=product.id,
                sku=variant_sku,
                options={"size": variant_sku} if len(variants) > 1 else {},
                option_key=variant_sku if len(variants) > 1 else "",
                price_amount=1000,
                cost_amount=cost,
                position=position,
                is_active=variant_active,
                created_at=variant_created,
            )
            session.add(variant)
            await session.flush()
            assert variant.id is not None
            seeded.variants[variant_sku] = variant.id

    # (variant sku, warehouse, on hand, reserved)
    stock = [
        ("RICE-5KG", main, 10, 0),
        ("RICE-1KG", main, 0, 0),
        ("CHIPS", main, 50, 0),
        ("TEA", main, 7, 0),
        ("TEA", closed, 100, 0),
        ("PHONE", main, 5, 5),
        ("EARBUDS", main, 20, 0),
        ("OLD", main, 0, 0),
        ("LASTMONTH", main, 3, 0),
        ("NEWBAG", main, 9, 0),
        ("NEWCUP", main, 1, 0),
    ]
    products = {
        v: p for p, v in await session.execute(select(ProductVariant.product_id, ProductVariant.id))
    }
    for variant_sku, warehouse, on_hand, reserved in stock:
        variant_id = seeded.variants[variant_sku]
        session.add(
            StockLevel(
                warehouse_id=warehouse.id,
                product_id=products[variant_id],
                variant_id=variant_id,
                on_hand=on_hand,
                reserved=reserved,
            )
        )
    await session.commit()

    june = date(2026, 6, 1)
    P, C = OrderStatus.PAID, OrderStatus.COMPLETED
    sales = [
        Sale(shop_time(june, 0, 0), "RICE-5KG", 3, OrderStatus.DELIVERED),  # the first moment
        Sale(shop_time(date(2026, 6, 7), 23, 59, 59), "RICE-5KG", 1, C),  # the last moment
        Sale(shop_time(date(2026, 6, 3)), "RICE-10KG", 2, OrderStatus.SHIPPED),
        Sale(shop_time(date(2026, 6, 4)), "RICE-1KG", 1, P),  # an inactive variant
        Sale(shop_time(june, 0, 30), "CHIPS", 1, OrderStatus.FULFILLING),
        Sale(shop_time(date(2026, 5, 31), 23, 59), "CHIPS", 5, P),  # the day before
        Sale(shop_time(date(2026, 6, 2)), "TEA", 3, OrderStatus.CANCELLED),
        Sale(shop_time(date(2026, 6, 2)), "TEA", 2, OrderStatus.PENDING_PAYMENT),
        Sale(shop_time(date(2026, 6, 5)), "PHONE", 1, P),
        Sale(shop_time(date(2026, 6, 11)), "EARBUDS", 1, P),  # after the period
        Sale(shop_time(date(2026, 6, 6)), "OLD", 4, P),  # an inactive product
        Sale(shop_time(date(2026, 6, 2)), "NEWBAG", 3, P),
        Sale(shop_time(date(2026, 6, 6)), "NEWCUP", 3, P),
    ]
    await write_orders(session, seeded, sales)
    seeded.extra["rice_10kg_sold_at"] = shop_time(date(2026, 6, 3))
    return seeded
