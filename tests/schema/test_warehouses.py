"""Warehouses and stock administration over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.config import Settings
from server.models import OutboxEvent, Product, StockLevel, Warehouse, WarehouseKind
from server.services import variants
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import VariantSpec, make_variant_product


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


CREATE = """
mutation($input: CreateWarehouseInput!) {
  createWarehouse(input: $input) {
    __typename
    ... on CreateWarehouseSuccess { warehouse { id code name kind region province city } }
    ... on Error { code field }
  }
}
"""

SET = """
mutation($input: SetStockLevelInput!) {
  setStockLevel(input: $input) {
    __typename
    ... on SetStockLevelSuccess { stockLevel { onHand reserved available safetyStock } }
    ... on Error { code field message }
  }
}
"""

ADJUST = """
mutation($input: AdjustStockInput!) {
  adjustStock(input: $input) {
    __typename
    ... on AdjustStockSuccess { stockLevel { onHand reserved available } }
    ... on Error { code field message }
  }
}
"""

LEVELS = """
query($filter: StockLevelFilter, $sort: StockLevelSort) {
  stockLevels(first: 50, filter: $filter, sort: $sort) {
    totalCount
    nodes {
      onHand available safetyStock belowSafetyStock
      product { sku } warehouse { code kind }
    }
  }
}
"""


async def _arrange(session: AsyncSession) -> tuple[Warehouse, Warehouse, Product, Product]:
    hz = Warehouse(code="HZ-RDC", name="杭州区域仓", region="华东", province="浙江省", city="杭州")
    sh = Warehouse(
        code="SH-FDC-01",
        name="上海前置仓",
        kind=WarehouseKind.FORWARD,
        province="上海",
        city="上海",
    )
    tea = Product(sku="TEA-LJ", name="西湖龙井 250g", price_amount=26800)
    cup = Product(sku="CUP-01", name="玻璃杯", price_amount=3900)
    session.add_all([hz, sh, tea, cup])
    await session.flush()
    session.add_all([variants.default_variant(tea), variants.default_variant(cup)])
    await session.commit()
    return hz, sh, tea, cup


async def _level(
    session: AsyncSession, warehouse: Warehouse, product: Product, **values: int
) -> StockLevel:
    """A stock row of ``product``'s one variant in ``warehouse``."""
    [variant] = await variants.variants_of(session, product.id)  # type: ignore[arg-type]  # a stored row has its id
    return StockLevel(
        warehouse_id=warehouse.id, product_id=product.id, variant_id=variant.id, **values
    )


async def _reserve(session: AsyncSession, units: int) -> None:
    """Hold ``units`` of the (single) stock row for orders, as checkout would."""
    # A write as the transaction's first statement: on SQLite it waits for the write lock
    # instead of failing to upgrade a read snapshot the server's event dispatch has outdated.
    await session.execute(update(StockLevel).values(reserved=units))
    await session.commit()


async def _on_hand(session: AsyncSession) -> dict[int, int]:
    # End the previous read transaction first: a SQLite snapshot would show old rows.
    await session.commit()
    rows = (await session.execute(select(StockLevel))).scalars().all()
    return {lv.product_id: lv.on_hand for lv in rows}


async def _staff(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> GraphQLClient:
    return gql.as_(token_for(settings, await make_staff(session)))


async def test_create_and_list_warehouses(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = await _staff(gql, session, settings)
    made = (
        await staff(
            CREATE,
            {
                "input": {
                    "code": "bj-fdc-01",
                    "name": "北京朝阳前置仓",
                    "kind": "FORWARD",
                    "region": "华北",
                    "province": "北京",
                    "city": "北京",
                }
            },
        )
    )["createWarehouse"]
    assert made["__typename"] == "CreateWarehouseSuccess"
    assert made["warehouse"]["code"] == "BJ-FDC-01"
    await staff(CREATE, {"input": {"code": "GZ-RDC", "name": "广州区域仓", "region": "华南"}})

    taken = (await staff(CREATE, {"input": {"code": "BJ-fdc-01", "name": "x"}}))["createWarehouse"]
    assert (taken["__typename"], taken["field"]) == ("ConflictError", "code")
    bad = (await staff(CREATE, {"input": {"code": "坏 code", "name": "x"}}))["createWarehouse"]
    assert (bad["__typename"], bad["field"]) == ("ValidationError", "code")

    # Anyone may list warehouses (delivery promises depend on them); only staff create them.
    listed = await gql("{ warehouses(first: 10) { edges { node { code kind } } } }")
    assert [e["node"] for e in listed["warehouses"]["edges"]] == [
        {"code": "BJ-FDC-01", "kind": "FORWARD"},
        {"code": "GZ-RDC", "kind": "REGIONAL"},
    ]
    forward = await gql("{ warehouses(filter: {kind: FORWARD}) { nodes { code } } }")
    assert forward["warehouses"]["nodes"] == [{"code": "BJ-FDC-01"}]
    customer = gql.as_(token_for(settings, await make_customer(session)))
    body = await customer.execute(CREATE, {"input": {"code": "X-1", "name": "x"}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert len((await session.execute(select(Warehouse))).scalars().all()) == 2


async def test_set_stock_level_rules(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    hz, _, tea, _ = await _arrange(session)
    staff = await _staff(gql, session, settings)
    ids = {"warehouseId": gid("Warehouse", hz.id), "productId": gid("Product", tea.id)}

    created = await staff(SET, {"input": {**ids, "onHand": 40, "safetyStock": 10}})
    assert created["setStockLevel"]["stockLevel"] == {
        "onHand": 40,
        "reserved": 0,
        "available": 40,
        "safetyStock": 10,
    }
    # Orders hold 15 units.
    await _reserve(session, 15)
    level = (await session.execute(select(StockLevel))).scalars().one()

    refused = (await staff(SET, {"input": {**ids, "onHand": 14, "safetyStock": 0}}))[
        "setStockLevel"
    ]
    assert (refused["__typename"], refused["field"]) == ("ValidationError", "onHand")
    assert "15" in refused["message"]
    await session.commit()  # end the read transaction: a fresh snapshot (SQLite)
    await session.refresh(level)
    assert (level.on_hand, level.reserved, level.safety_stock) == (40, 15, 10)

    ok = (await staff(SET, {"input": {**ids, "onHand": 15}}))["setStockLevel"]
    assert ok["stockLevel"] == {"onHand": 15, "reserved": 15, "available": 0, "safetyStock": 10}

    negative = (await staff(SET, {"input": {**ids, "onHand": -1}}))["setStockLevel"]
    assert negative["__typename"] == "ValidationError"
    for missing in (
        {**ids, "warehouseId": gid("Warehouse", 999)},
        {**ids, "productId": gid("Product", 999)},
        {**ids, "productId": gid("Warehouse", hz.id)},
    ):
        result = (await staff(SET, {"input": {**missing, "onHand": 1}}))["setStockLevel"]
        assert result["__typename"] == "NotFoundError"
    assert len((await session.execute(select(StockLevel))).scalars().all()) == 1


async def test_adjust_stock_rules(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    hz, _, tea, _ = await _arrange(session)
    staff = await _staff(gql, session, settings)
    ids = {"warehouseId": gid("Warehouse", hz.id), "productId": gid("Product", tea.id)}

    def adjust(delta: int, reason: str = "到货入库") -> dict[str, Any]:
        return {"input": {**ids, "delta": delta, "reason": reason}}

    # Removing from a product that has no stock row is refused; adding creates the row.
    assert (await staff(ADJUST, adjust(-1)))["adjustStock"]["__typename"] == "ValidationError"
    added = (await staff(ADJUST, adjust(12)))["adjustStock"]
    assert added["stockLevel"] == {"onHand": 12, "reserved": 0, "available": 12}

    await _reserve(session, 5)
    level = (await session.execute(select(StockLevel))).scalars().one()
    too_many = (await staff(ADJUST, adjust(-8, "盘亏")))["adjustStock"]
    assert (too_many["__typename"], too_many["field"]) == ("ValidationError", "delta")
    removed = (await staff(ADJUST, adjust(-7, "盘亏")))["adjustStock"]
    assert removed["stockLevel"] == {"onHand": 5, "reserved": 5, "available": 0}

    for bad, field in ((adjust(0), "delta"), (adjust(3, "  "), "reason")):
        result = (await staff(ADJUST, bad))["adjustStock"]
        assert (result["__typename"], result["field"]) == ("ValidationError", field)
    await session.commit()  # end the read transaction: a fresh snapshot (SQLite)
    await session.refresh(level)
    assert level.on_hand == 5

    # Each adjustment is reported, with its reason, in the outbox.
    events = (
        (await session.execute(select(OutboxEvent).where(OutboxEvent.name == "stock_adjusted")))
        .scalars()
        .all()
    )
    assert [(e.payload["delta"], e.payload["reason"]) for e in events] == [
        (12, "到货入库"),
        (-7, "盘亏"),
    ]


async def test_concurrent_adjustments_never_lose_one(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    hz, _, tea, cup = await _arrange(session)
    session.add(await _level(session, hz, tea, on_hand=100))
    await session.commit()
    staff = await _staff(gql, session, settings)

    def adjust(product: Product, delta: int) -> dict[str, Any]:
        ids = {"warehouseId": gid("Warehouse", hz.id), "productId": gid("Product", product.id)}
        return {"input": {**ids, "delta": delta, "reason": "并发测试"}}

    # 20 concurrent +1 on an existing row, and 20 concurrent +1 racing to create a new row.
    results = await asyncio.gather(
        *(staff(ADJUST, adjust(tea, 1)) for _ in range(20)),
        *(staff(ADJUST, adjust(cup, 1)) for _ in range(20)),
    )
    assert all(r["adjustStock"]["__typename"] == "AdjustStockSuccess" for r in results)
    assert await _on_hand(session) == {tea.id: 120, cup.id: 20}

    # 30 concurrent -5 on 120: exactly 24 succeed and stock ends at 0, never below.
    results = await asyncio.gather(*(staff(ADJUST, adjust(tea, -5)) for _ in range(30)))
    kinds = [r["adjustStock"]["__typename"] for r in results]
    assert kinds.count("AdjustStockSuccess") == 24
    assert kinds.count("ValidationError") == 6
    assert await _on_hand(session) == {tea.id: 0, cup.id: 20}


async def test_stock_levels_filter_and_sort(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    hz, sh, tea, cup = await _arrange(session)
    session.add_all(
        [
            await _level(session, hz, tea, on_hand=50, reserved=5, safety_stock=10),
            await _level(session, hz, cup, on_hand=8, reserved=0, safety_stock=10),
            await _level(session, sh, tea, on_hand=12, reserved=4, safety_stock=10),
        ]
    )
    await session.commit()
    staff = await _staff(gql, session, settings)

    async def rows(
        flt: dict[str, Any], sort: dict[str, Any] | None = None
    ) -> list[tuple[str, str, int]]:
        data = (await staff(LEVELS, {"filter": flt, "sort": sort}))["stockLevels"]
        assert data["totalCount"] == len(data["nodes"])
        return [
            (n["warehouse"]["code"], n["product"]["sku"], n["available"]) for n in data["nodes"]
        ]

    assert await rows({}) == [
        ("HZ-RDC", "TEA-LJ", 45),
        ("HZ-RDC", "CUP-01", 8),
        ("SH-FDC-01", "TEA-LJ", 8),
    ]
    assert await rows({"belowSafetyStock": True}) == [
        ("HZ-RDC", "CUP-01", 8),
        ("SH-FDC-01", "TEA-LJ", 8),
    ]
    assert await rows({"belowSafetyStock": False}) == [("HZ-RDC", "TEA-LJ", 45)]
    assert await rows({"productId": gid("Product", tea.id)}) == [
        ("HZ-RDC", "TEA-LJ", 45),
        ("SH-FDC-01", "TEA-LJ", 8),
    ]
    assert await rows({"warehouseId": gid("Warehouse", sh.id)}) == [("SH-FDC-01", "TEA-LJ", 8)]
    assert await rows({"warehouseId": gid("Product", sh.id)}) == []
    assert await rows({}, {"field": "AVAILABLE", "direction": "DESC"}) == [
        ("HZ-RDC", "TEA-LJ", 45),
        ("SH-FDC-01", "TEA-LJ", 8),
        ("HZ-RDC", "CUP-01", 8),
    ]
    first = (await staff(LEVELS, {}))["stockLevels"]["nodes"][0]
    assert first["belowSafetyStock"] is False
    assert first["warehouse"]["kind"] == "REGIONAL"


LEVELS_OF_VARIANTS = """
query($filter: StockLevelFilter) {
  stockLevels(first: 50, filter: $filter) {
    nodes { onHand reserved warehouse { code } product { sku } variant { id sku options { value } } }
  }
}
"""


async def test_stock_per_variant(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    hz, sh, tea, _ = await _arrange(session)
    tee, (red, blue, green) = await make_variant_product(
        session,
        [
            VariantSpec("TEE-RED-M", {"颜色": "红色"}, stock=[]),
            VariantSpec("TEE-BLUE-M", {"颜色": "蓝色"}, stock=[]),
            VariantSpec("TEE-GREEN-M", {"颜色": "绿色"}, stock=[], is_active=False),
        ],
    )
    staff = await _staff(gql, session, settings)
    at_hz = {"warehouseId": gid("Warehouse", hz.id)}

    async def set_level(target: dict[str, Any], on_hand: int) -> dict[str, Any]:
        data = await staff(SET, {"input": {**at_hz, **target, "onHand": on_hand}})
        return dict(data["setStockLevel"])

    async def adjust(target: dict[str, Any], delta: int) -> dict[str, Any]:
        data = await staff(ADJUST, {"input": {**at_hz, **target, "delta": delta, "reason": "到货"}})
        return dict(data["adjustStock"])

    red_id, blue_id = gid("ProductVariant", red.id), gid("ProductVariant", blue.id)
    assert (await set_level({"variantId": red_id}, 30))["stockLevel"]["onHand"] == 30
    assert (await adjust({"variantId": blue_id}, 12))["stockLevel"]["onHand"] == 12
    # Staff keep the stock of a variant taken off sale too, and may name its product beside it.
    green_of_tee = {
        "variantId": gid("ProductVariant", green.id),
        "productId": gid("Product", tee.id),
    }
    assert (await set_level(green_of_tee, 4))["__typename"] == "SetStockLevelSuccess"
    # A product with one variant is still named by the product alone.
    assert (await adjust({"productId": gid("Product", tea.id)}, 7))["stockLevel"]["onHand"] == 7

    # The product alone does not say which of its variants: both mutations say so, typed.
    for result in (
        await set_level({"productId": gid("Product", tee.id)}, 1),
        await adjust({"productId": gid("Product", tee.id)}, 1),
    ):
        assert (result["__typename"], result["field"]) == ("VariantRequired", "variantId")
        assert result["code"] == "VARIANT_REQUIRED"
    required = await staff(
        """mutation($input: AdjustStockInput!) { adjustStock(input: $input) {
             ... on VariantRequired { productId variantIds } } }""",
        {"input": {**at_hz, "productId": gid("Product", tee.id), "delta": 1, "reason": "到货"}},
    )
    assert required["adjustStock"] == {
        "productId": gid("Product", tee.id),
        "variantIds": [red_id, blue_id],
    }
    for target, kind in (
        ({"variantId": red_id, "productId": gid("Product", tea.id)}, "ValidationError"),
        ({"variantId": gid("ProductVariant", 98765)}, "NotFoundError"),
        ({"variantId": "garbage"}, "NotFoundError"),
        ({}, "ValidationError"),
    ):
        result = await set_level(target, 99)
        assert (result["__typename"], result["field"]) == (kind, "variantId"), target

    # Nothing else was written: red 30, blue 12, green 4 (all in Hangzhou), tea 7.
    rows = (await staff(LEVELS_OF_VARIANTS, {"filter": {"productId": gid("Product", tee.id)}}))[
        "stockLevels"
    ]["nodes"]
    assert [(n["variant"]["sku"], n["onHand"], n["product"]["sku"]) for n in rows] == [
        ("TEE-RED-M", 30, tee.sku),
        ("TEE-BLUE-M", 12, tee.sku),
        ("TEE-GREEN-M", 4, tee.sku),
    ]
    only_blue = await staff(LEVELS_OF_VARIANTS, {"filter": {"variantId": blue_id}})
    assert only_blue["stockLevels"]["nodes"] == [
        {
            "onHand": 12,
            "reserved": 0,
            "warehouse": {"code": "HZ-RDC"},
            "product": {"sku": tee.sku},
            "variant": {"id": blue_id, "sku": "TEE-BLUE-M", "options": [{"value": "蓝色"}]},
        }
    ]
    # Blue in Shanghai, then both filters together.
    shanghai = {"warehouseId": gid("Warehouse", sh.id), "variantId": blue_id}
    await staff(SET, {"input": {**shanghai, "onHand": 3}})
    both = await staff(LEVELS_OF_VARIANTS, {"filter": shanghai})
    assert [n["onHand"] for n in both["stockLevels"]["nodes"]] == [3]
    none = await staff(LEVELS_OF_VARIANTS, {"filter": {"variantId": gid("Product", blue.id)}})
    assert none["stockLevels"]["nodes"] == []
