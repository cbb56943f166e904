"""A small carrier network for the tests of quotes and promises: three warehouse sites
(Hangzhou regional, a Shanghai forward warehouse delivering within 30 km, Beijing
regional), a store in Shanghai with two pickup points, an express company working weekends
and the shop's own fleet that does not, and a product of two variants."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import (
    Carrier,
    CarrierKind,
    CarrierService,
    PickupKind,
    PickupPoint,
    Rate,
    ServiceLevel,
    Site,
    TransitTime,
)
from server.models import (
    Category,
    Product,
    ProductVariant,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from server.plugin import CartLineView, CartView
from server.services import variants as variant_service

_serial = itertools.count(1)
WEEKDAY_HOURS = {day: [["09:00", "21:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
SHANGHAI = {"province": "上海市", "city": "上海市"}


@dataclass
class Net:
    warehouses: dict[str, int] = field(default_factory=dict)
    carriers: dict[str, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    # service key (STD, EXP, SD, PU) → its code; pickup point key → its code
    codes: dict[str, str] = field(default_factory=dict)
    product_id: int = 0
    # sku → variant id; "A" weighs 400 g, "B" has no weight (the default, 500 g)
    variants: dict[str, int] = field(default_factory=dict)


async def seed_network(session: AsyncSession, *, stock: dict[str, dict[str, int]]) -> Net:
    """The network, with ``stock`` as {warehouse key: {variant key: units}} (keys: HZ, SH,
    BJ, STORE; A, B). Committed."""
    n = next(_serial)
    net = Net()
    for key, kind, province, city in (
        ("HZ", WarehouseKind.REGIONAL, "浙江省", "杭州市"),
        ("SH", WarehouseKind.FORWARD, "上海市", "上海市"),
        ("BJ", WarehouseKind.REGIONAL, "北京市", "北京市"),
        ("STORE", WarehouseKind.REGIONAL, "上海市", "上海市"),
    ):
        warehouse = Warehouse(
            code=f"LQ{n}-{key}", name=f"{city}仓", kind=kind, province=province, city=city
        )
        session.add(warehouse)
        await session.flush()
        assert warehouse.id is not None
        net.warehouses[key] = warehouse.id
    session.add_all(
        [
            Site(
                warehouse_id=net.warehouses["HZ"],
                province="浙江省",
                city="杭州市",
                latitude=30.2741,
                longitude=120.1551,
            ),
            Site(
                warehouse_id=net.warehouses["SH"],
                province="上海市",
                city="上海市",
                latitude=31.2304,
                longitude=121.4737,
                cutoff_minutes=20 * 60,
                same_day_radius_km=30.0,
            ),
            Site(
                warehouse_id=net.warehouses["BJ"],
                province="北京市",
                city="北京市",
                latitude=39.9042,
                longitude=116.4074,
            ),
        ]
    )
    sf = Carrier(code=f"SF{n}", name="顺丰速运", kind=CarrierKind.THIRD_PARTY, works_weekends=True)
    own = Carrier(code=f"OWN{n}", name="自营配送", kind=CarrierKind.OWN_FLEET, works_weekends=False)
    session.add_all([sf, own])
    await session.flush()
    assert sf.id is not None and own.id is not None
    net.carriers = {"SF": sf.id, "OWN": own.id}
    services = {
        "STD": CarrierService(
            carrier_id=sf.id, code=f"SF{n}-STD", label="顺丰标快", level=ServiceLevel.STANDARD
        ),
        "EXP": CarrierService(
            carrier_id=sf.id, code=f"SF{n}-EXP", label="顺丰特快", level=ServiceLevel.EXPRESS
        ),
        "SD": CarrierService(
            carrier_id=own.id,
            code=f"OWN{n}-SD",
            label="小时达",
            level=ServiceLevel.SAME_DAY,
            cutoff_minutes=18 * 60,
            within_hours=3,
        ),
        "PU": CarrierService(
            carrier_id=own.id, code=f"OWN{n}-PU", label="门店自提", level=ServiceLevel.PICKUP
        ),
    }
    session.add_all(services.values())
    await session.flush()
    net.services = {k: s.id for k, s in services.items() if s.id is not None}
    net.codes = {k: s.code for k, s in services.items()}
    std, exp = net.services["STD"], net.services["EXP"]
    session.add_all(
        [
            TransitTime(
                service_id=std, from_region="浙江省", to_region="*", min_days=2, max_days=3
            ),
            TransitTime(
                service_id=std, from_region="浙江省", to_region="上海市", min_days=1, max_days=2
            ),
            TransitTime(
                service_id=std, from_region="上海市", to_region="*", min_days=1, max_days=2
            ),
            TransitTime(
                service_id=std, from_region="北京市", to_region="*", min_days=2, max_days=4
            ),
            TransitTime(service_id=exp, from_region="*", to_region="*", min_days=1, max_days=1),
            TransitTime(
                service_id=net.services["SD"],
                from_region="*",
                to_region="*",
                min_days=0,
                max_days=0,
            ),
        ]
    )
    # STANDARD: zone z costs 200·z for the first kilo, 300 per started 500 g more, free from
    # 199 yuan; EXPRESS: 2000 for the first kilo, 800 per started kilo, never free.
    session.add_all(
        Rate(
            service_id=std,
            zone=z,
            first_grams=1000,
            first_amount=200 * z,
            extra_grams=500,
            extra_amount=300,
            free_over=19900,
        )
        for z in range(1, 7)
    )
    session.add_all(
        Rate(
            service_id=exp,
            zone=z,
            first_grams=1000,
            first_amount=2000,
            extra_grams=1000,
            extra_amount=800,
        )
        for z in range(1, 7)
    )
    session.add(Rate(service_id=net.services["SD"], zone=1, first_amount=500, extra_amount=0))
    points = {
        "PP1": PickupPoint(
            code=f"PP{n}-1",
            name="南京西路店",
            kind=PickupKind.STORE,
            warehouse_id=net.warehouses["STORE"],
            province="上海市",
            city="上海市",
            address="南京西路 1 号",
            latitude=31.23,
            longitude=121.46,
            hours=WEEKDAY_HOURS,
            ready_hours=2,
        ),
        # A locker stocked from the Beijing warehouse: in Shanghai, but without the units.
        "PP2": PickupPoint(
            code=f"PP{n}-2",
            name="丰巢柜",
            kind=PickupKind.LOCKER,
            warehouse_id=net.warehouses["BJ"],
            province="上海市",
            city="上海市",
            latitude=31.2,
            longitude=121.5,
            hours={"mon": [["00:00", "24:00"]]},
        ),
        "PP3": PickupPoint(
            code=f"PP{n}-3",
            name="西湖店",
            warehouse_id=net.warehouses["HZ"],
            province="浙江省",
            city="杭州市",
            latitude=30.27,
            longitude=120.15,
            hours=WEEKDAY_HOURS,
        ),
    }
    session.add_all(points.values())
    category = Category(name=f"物流测试 {n}", slug=f"logistics-quotes-{n}")
    session.add(category)
    await session.flush()
    net.points = {k: p.id for k, p in points.items() if p.id is not None}
    net.codes.update({k: p.code for k, p in points.items()})
    product = Product(sku=f"LQ{n}", name=f"保温杯 {n}", price_amount=5000, category_id=category.id)
    session.add(product)
    await session.flush()
    assert product.id is not None
    net.product_id = product.id
    for key, weight in (("A", 400), ("B", None)):
        variant = ProductVariant(
            product_id=product.id,
            sku=f"LQ{n}-{key}",
            options={"颜色": key},
            option_key=variant_service.option_key({"颜色": key}),
            price_amount=5000,
            position=len(net.variants),
            weight_grams=weight,
        )
        session.add(variant)
        await session.flush()
        assert variant.id is not None
        net.variants[key] = variant.id
    for wh, units in stock.items():
        for key, on_hand in units.items():
            session.add(
                StockLevel(
                    warehouse_id=net.warehouses[wh],
                    product_id=product.id,
                    variant_id=net.variants[key],
                    on_hand=on_hand,
                )
            )
    await session.commit()
    return net


def cart_of(net: Net, units: dict[str, int], *, subtotal: int = 10000) -> CartView:
    """A cart view of ``units`` ({variant key: quantity})."""
    return CartView(
        cart_id=None,
        customer_id=None,
        currency="CNY",
        lines=tuple(
            CartLineView(
                product_id=net.product_id,
                variant_id=net.variants[key],
                sku=key,
                quantity=quantity,
                unit_price=5000,
            )
            for key, quantity in units.items()
        ),
        subtotal=subtotal,
    )


def pickup_code(net: Net, point: str = "PP1") -> str:
    """The quote code of collecting at ``point``."""
    return f"{net.codes['PU']}@{net.codes[point]}"
