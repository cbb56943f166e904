"""A small shop whose recommendations are known by hand: a catalogue, a few customers with
orders at known ages, and a READY build written straight into the tables.

Catalogue (every product 200 days old but 新品, 1 day old):

| category | products                                                               |
| 饮料     | 牛奶 milk (consumable, every 7 days), 咖啡 coffee, 茶 tea, 售罄 (no stock) |
| 零食     | 薯片 s1, 饼干 s2, 坚果 s3, 巧克力 s4, 下架 (archived)                        |
| 数码     | 耳机 phone (durable), 充电器 charger, 音箱 speaker, 新品 fresh (new)         |
| 家居     | 台灯 lamp, 花瓶 vase, 地毯 rug                                            |

The build: the shop's popularity 售罄 10, 下架 9, 薯片 8, 饼干 7, 坚果 6, 巧克力 5, 咖啡 4, 音箱 3,
耳机 2.5, 茶 2, 台灯 1.5; per category too. Neighbours 台灯 → 花瓶 (CF 0.9), 地毯 (CONTENT 0.6);
耳机 → 充电器 (CF 0.8); 牛奶 → 茶 (CONTENT 0.5), 售罄 (CONTENT 0.9). Rules 牛奶 → 咖啡
(confidence 0.5, lift 2), 耳机 → 充电器 (0.4, lift 3). Cycles: 牛奶 consumable every 7 days,
咖啡 every 10, 耳机 durable.

Customers: ann bought 牛奶 17 and 10 days ago and 耳机 5 days ago; bob 牛奶 yesterday; cai 牛奶
10 days ago; dan has 耳机 in his cart; eve bought 薯片 20 and 6 days ago.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import NeighbourSource
from plugins.recommendation.service.store import Cycle, Models, Neighbour, Popular, Rule
from server.models import Cart, CartLine, Order, OrderLine, OrderStatus, StaffRole, utcnow
from server.services import variants
from tests.plugins.recommendation.support import write_build
from tests.support.accounts import make_customer, make_staff
from tests.support.catalog import make_category, make_product

CF, CONTENT = NeighbourSource.CF, NeighbourSource.CONTENT
NAMES = {
    "milk": "牛奶",
    "coffee": "咖啡",
    "tea": "茶",
    "soldout": "售罄",
    "s1": "薯片",
    "s2": "饼干",
    "s3": "坚果",
    "s4": "巧克力",
    "archived": "下架",
    "phone": "耳机",
    "charger": "充电器",
    "speaker": "音箱",
    "fresh": "新品",
    "lamp": "台灯",
    "vase": "花瓶",
    "rug": "地毯",
}
CATEGORY_OF = {
    "milk": "drinks",
    "coffee": "drinks",
    "tea": "drinks",
    "soldout": "drinks",
    "s1": "snacks",
    "s2": "snacks",
    "s3": "snacks",
    "s4": "snacks",
    "archived": "snacks",
    "phone": "digital",
    "charger": "digital",
    "speaker": "digital",
    "fresh": "digital",
    "lamp": "home",
    "vase": "home",
    "rug": "home",
}
CATEGORY_NAMES = {"drinks": "饮料", "snacks": "零食", "digital": "数码", "home": "家居"}


async def _order(
    session: AsyncSession,
    customer_id: int,
    products: list[Any],
    at: datetime,
    number: str,
) -> Order:
    order = Order(
        number=number,
        customer_id=customer_id,
        status=OrderStatus.DELIVERED,
        placed_at=at,
        subtotal_amount=sum(p.price_amount for p in products),
        total_amount=sum(p.price_amount for p in products),
    )
    session.add(order)
    await session.flush()
    for product in products:
        [variant] = await variants.variants_of(session, product.id)
        session.add(
            OrderLine(
                order_id=order.id,
                product_id=product.id,
                variant_id=variant.id,
                sku=product.sku,
                product_name=product.name,
                quantity=1,
                base_unit_price_amount=product.price_amount,
                unit_price_amount=product.price_amount,
                line_total_amount=product.price_amount,
            )
        )
    return order


async def seed(session: AsyncSession) -> dict[str, Any]:
    now = utcnow()
    old = now - timedelta(days=200)
    cats = {
        key: await make_category(session, name, slug=f"rec-{key}", commit=False)
        for key, name in CATEGORY_NAMES.items()
    }
    products = {}
    for i, (key, name) in enumerate(NAMES.items()):
        products[key] = await make_product(
            session,
            name,
            sku=f"REC-{key}",
            price="10.00" if key != "phone" else "199.00",
            category=cats[CATEGORY_OF[key]],
            stock={} if key == "soldout" else {"REC-WH": 50},
            is_active=key != "archived",
            created_at=(now - timedelta(days=1)) if key == "fresh" else old + timedelta(minutes=i),
            commit=False,
        )
    await session.commit()
    p = {key: product.id for key, product in products.items()}
    c = {key: cat.id for key, cat in cats.items()}

    def popular(*pairs: tuple[str, float]) -> list[Popular]:
        return [Popular(p[k], s) for k, s in pairs]

    models = Models(
        neighbours={
            p["lamp"]: [Neighbour(p["vase"], 0.9, CF), Neighbour(p["rug"], 0.6, CONTENT)],
            p["phone"]: [Neighbour(p["charger"], 0.8, CF)],
            p["milk"]: [Neighbour(p["soldout"], 0.9, CONTENT), Neighbour(p["tea"], 0.5, CONTENT)],
        },
        rules={
            p["milk"]: [Rule(p["milk"], p["coffee"], 5, 0.05, 0.5, 2.0)],
            p["phone"]: [Rule(p["phone"], p["charger"], 4, 0.04, 0.4, 3.0)],
        },
        popular={
            None: popular(
                ("soldout", 10),
                ("archived", 9),
                ("s1", 8),
                ("s2", 7),
                ("s3", 6),
                ("s4", 5),
                ("coffee", 4),
                ("speaker", 3),
                ("phone", 2.5),
                ("tea", 2),
                ("lamp", 1.5),
            ),
            c["drinks"]: popular(("coffee", 4), ("tea", 2)),
            c["snacks"]: popular(("s1", 8), ("s2", 7), ("s3", 6), ("s4", 5)),
            c["digital"]: popular(("speaker", 3), ("phone", 2.5), ("charger", 1)),
            c["home"]: popular(("lamp", 1.5), ("rug", 1.2)),
        },
        cycles={
            p["milk"]: Cycle(p["milk"], 30, 20, 7.0, True),
            p["coffee"]: Cycle(p["coffee"], 20, 10, 10.0, True),
            p["phone"]: Cycle(p["phone"], 10, 0, None, False),
        },
    )
    build_id = await write_build(session, models)

    people = {
        name: await make_customer(session, email=f"{name}@rec.example.cn")
        for name in ("ann", "bob", "cai", "dan", "eve")
    }
    ids = {name: person.id for name, person in people.items()}
    days = lambda n: now - timedelta(days=n)  # noqa: E731
    await _order(session, ids["ann"], [products["milk"]], days(17), "REC-1")
    await _order(session, ids["ann"], [products["milk"]], days(10), "REC-2")
    await _order(session, ids["ann"], [products["phone"]], days(5), "REC-3")
    await _order(session, ids["bob"], [products["milk"]], days(1), "REC-4")
    await _order(session, ids["cai"], [products["milk"]], days(10), "REC-5")
    await _order(session, ids["eve"], [products["s1"]], days(20), "REC-6")
    await _order(session, ids["eve"], [products["s1"]], days(6), "REC-7")
    cart = Cart(token="rec-dan-cart", customer_id=ids["dan"])
    session.add(cart)
    await session.flush()
    [phone_variant] = await variants.variants_of(session, p["phone"])
    session.add(
        CartLine(cart_id=cart.id, product_id=p["phone"], variant_id=phone_variant.id, quantity=1)
    )
    await session.commit()
    staff = {
        role: await make_staff(session, role=role)
        for role in (StaffRole.ADMIN, StaffRole.ANALYST, StaffRole.CATALOG)
    }
    return {
        "products": p,
        "categories": c,
        "customers": people,
        "staff": staff,
        "build_id": build_id,
        "now": now,
    }
