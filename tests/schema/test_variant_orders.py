"""Variants (SKUs) through the order flow: cart lines per variant and the errors of naming one,
reservations per variant and warehouse, cancelling, planning and shipping per variant, what
events say, and prices made per variant by a plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import (
    CartLine,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OutboxEvent,
    ProductVariant,
)
from server.plugin import Adjustment, Parcel, ParcelLine, PluginInfo, PriceItem, hookimpl
from server.plugins import PluginRuntime
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    UPDATE_STATUS,
    VariantSpec,
    cart_with,
    count,
    gid,
    line_input,
    make_product,
    make_variant_product,
    make_warehouse,
    new_cart,
    only_plugins,
    pay,
    place,
    place_ok,
    stock_of,
)

RED, BLUE, GREEN = ({"颜色": c, "尺码": "M"} for c in ("红色", "蓝色", "绿色"))

ADD = """
mutation($input: CartAddLinesInput!) {
  cartAddLines(input: $input) {
    __typename
    ... on CartAddLinesSuccess { cart { itemCount } }
    ... on VariantRequired { productId variantIds }
    ... on Error { code message field }
  }
}"""

CART = """
query($token: String!) {
  cart(token: $token) {
    itemCount subtotal { amount }
    lines {
      quantity product { id }
      variant { id sku options { name value } basePrice { amount } }
      unitPrice { amount } lineTotal { amount }
      priceBreakdown { adjustments { source rule amount { amount } } }
    }
  }
}"""

CREATE_SHIPMENT = """
mutation($input: CreateShipmentInput!) {
  createShipment(input: $input) { __typename ... on Error { code message field } }
}"""

ORDER = """
query($id: ID!) {
  order(id: $id) {
    status
    lines {
      sku quantity options { name value } variant { id sku }
      unitPrice { amount } priceBreakdown { adjustments { source rule amount { amount } } }
    }
    shipmentPlan { warehouse { code } lines { quantity orderLine { sku } } }
  }
}"""


async def _tee(session: AsyncSession, **stock: Any) -> tuple[Any, list[ProductVariant]]:
    """A T-shirt in red (99.00) and blue (109.00) on sale, and green taken off sale."""
    return await make_variant_product(
        session,
        [
            VariantSpec("TEE-RED-M", RED, price=9900, stock=stock.get("red", 20)),
            VariantSpec("TEE-BLUE-M", BLUE, price=10900, stock=stock.get("blue", 20)),
            VariantSpec("TEE-GREEN-M", GREEN, price=9900, stock=20, is_active=False),
        ],
    )


async def _add(gql: GraphQLClient, token: str, *lines: dict[str, Any]) -> dict[str, Any]:
    data = await gql(ADD, {"input": {"cartToken": token, "lines": list(lines)}})
    return dict(data["cartAddLines"])


async def test_cart_lines_are_per_variant_and_capped_per_variant(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tee, (red, blue, _) = await _tee(session)
    token = await new_cart(gql)

    added = await _add(gql, token, line_input(red, 2), line_input(blue, 1), line_input(red, 1))
    assert added == {"__typename": "CartAddLinesSuccess", "cart": {"itemCount": 4}}
    cart = (await gql(CART, {"token": token}))["cart"]
    assert [
        (ln["variant"]["sku"], ln["quantity"], ln["unitPrice"]["amount"]) for ln in cart["lines"]
    ] == [("TEE-RED-M", 3, "99.00"), ("TEE-BLUE-M", 1, "109.00")]
    assert cart["lines"][0]["variant"] == {
        "id": gid("ProductVariant", red.id),
        "sku": "TEE-RED-M",
        "options": [{"name": "颜色", "value": "红色"}, {"name": "尺码", "value": "M"}],
        "basePrice": {"amount": "99.00"},
    }
    assert {ln["product"]["id"] for ln in cart["lines"]} == {gid("Product", tee.id)}
    assert cart["subtotal"]["amount"] == "406.00"

    # Naming the variant together with its own product is fine, and merges into its line.
    both = {"productId": gid("Product", tee.id), **line_input(blue, 1)}
    assert (await _add(gql, token, both))["cart"] == {"itemCount": 5}

    # 999 units per variant: red holds 3, so 997 more is one too many ...
    over = await _add(gql, token, line_input(blue, 1), line_input(red, 997))
    assert (over["__typename"], over["field"]) == ("ValidationError", "lines.1.quantity")
    assert "TEE-RED-M" in over["message"] and "1000" in over["message"]
    # ... while the sibling variant has a cap of its own: 997 blue beside 3 red is fine.
    assert (await _add(gql, token, line_input(blue, 997)))["cart"] == {"itemCount": 1002}
    assert await count(session, CartLine) == 2

    # ADD_TO_CART keeps the product and says which variant, once per variant added.
    events = list(
        await session.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.kind == CustomerEventKind.ADD_TO_CART)
            .order_by(CustomerEvent.id)
        )
    )
    assert [(e.product_id, e.data["variant_id"], e.quantity) for e in events] == [
        (tee.id, red.id, 3),
        (tee.id, blue.id, 1),
        (tee.id, blue.id, 1),
        (tee.id, blue.id, 997),
    ]


async def test_naming_a_variant_wrongly_is_a_precise_typed_error_and_adds_nothing(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tee, (red, blue, green) = await _tee(session)
    tea = await make_product(session, price=8800)
    token = await cart_with(gql, [(tea, 1)])
    good = line_input(tea, 2)

    # Several variants on sale: the client must say which; the answer lists those on sale.
    required = await _add(gql, token, good, {"productId": gid("Product", tee.id), "quantity": 1})
    assert required == {
        "__typename": "VariantRequired",
        "code": "VARIANT_REQUIRED",
        "field": "lines.1.variantId",
        "productId": gid("Product", tee.id),
        "variantIds": [gid("ProductVariant", red.id), gid("ProductVariant", blue.id)],
        "message": required["message"],
    }
    assert "variantId" in required["message"]

    cases: list[tuple[dict[str, Any], str, str]] = [
        # A variant of another product.
        (
            {"productId": gid("Product", tea.id), **line_input(red, 1)},
            "ValidationError",
            "variantId",
        ),
        # A variant taken off sale answers like a missing one.
        (line_input(green, 1), "NotFoundError", "variantId"),
        ({"variantId": gid("ProductVariant", 987654), "quantity": 1}, "NotFoundError", "variantId"),
        ({"variantId": "not-an-id", "quantity": 1}, "NotFoundError", "variantId"),
        ({"variantId": gid("Product", red.id), "quantity": 1}, "NotFoundError", "variantId"),
        ({"productId": gid("Product", 987654), "quantity": 1}, "NotFoundError", "productId"),
        ({"quantity": 1}, "ValidationError", "variantId"),
        ({**line_input(red, 0)}, "ValidationError", "quantity"),
    ]
    for line, kind, field in cases:
        result = await _add(gql, token, good, line)
        assert (result["__typename"], result["field"]) == (kind, f"lines.1.{field}"), line
    wrong_product = await _add(
        gql, token, {"productId": gid("Product", tea.id), **line_input(red, 1)}
    )
    assert "TEE-RED-M" in wrong_product["message"]

    # Nothing was added by any of them, not even the good line beside the bad one.
    assert (await gql(CART, {"token": token}))["cart"]["itemCount"] == 1
    assert await count(session, CartLine) == 1


class Planner:
    """Plans every order from one warehouse (when set), moving reservations there."""

    PLUGIN_INFO = PluginInfo(name="planner", version="1.0")

    def __init__(self) -> None:
        self.warehouse: int | None = None

    @hookimpl
    def plan_shipments(self, lines: list[OrderLine]) -> list[Parcel] | None:
        if self.warehouse is None:
            return None
        return [
            Parcel(
                warehouse_id=self.warehouse,
                lines=tuple(
                    ParcelLine(order_line_id=ln.id, quantity=ln.quantity)  # type: ignore[arg-type]  # a stored row has its id
                    for ln in lines
                ),
            )
        ]


class TestCheckoutPerVariant:
    @pytest.fixture
    def planner(self) -> Planner:
        return Planner()

    @pytest.fixture
    def plugins(self, settings: Settings, planner: Planner) -> PluginRuntime:
        return only_plugins(settings, planner)

    async def test_reserved_cancelled_planned_and_shipped_per_variant(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, planner: Planner
    ) -> None:
        hz = await make_warehouse(session, code="HZ-1")
        sh = await make_warehouse(session, code="SH-1")
        # Red is only in Hangzhou; blue mostly in Shanghai, a little in Hangzhou.
        tee, (red, blue, _) = await _tee(session, red=[(hz, 5)], blue=[(sh, 6), (hz, 3)])
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        staff = gql.as_(token_for(settings, await make_staff(session)))

        # More red than there is: OutOfStock names the variant, and nothing is held.
        short = await place(buyer, await cart_with(buyer, [(red, 6), (blue, 1)]))
        assert short == {
            "__typename": "OutOfStock",
            "code": "OUT_OF_STOCK",
            "productId": gid("Product", tee.id),
            "variantId": gid("ProductVariant", red.id),
            "requested": 6,
            "available": 5,
            "field": "lines",
            "message": short["message"],
        }
        assert short["message"].startswith("TEE-RED-M, product ")
        assert await stock_of(session, tee) == [(5, 0), (6, 0), (3, 0), (20, 0)]

        # Two variants of one product: two lines, each reserved where that variant is.
        first = await place_ok(buyer, [(red, 2), (blue, 2)])
        assert await stock_of(session, red) == [(5, 2)]
        assert await stock_of(session, blue) == [(6, 2), (3, 0)]
        lines = (await buyer(ORDER, {"id": first["id"]}))["order"]["lines"]
        assert [(ln["sku"], ln["quantity"], ln["unitPrice"]["amount"]) for ln in lines] == [
            ("TEE-RED-M", 2, "99.00"),
            ("TEE-BLUE-M", 2, "109.00"),
        ]
        assert lines[1]["variant"] == {"id": gid("ProductVariant", blue.id), "sku": "TEE-BLUE-M"}
        assert lines[1]["options"] == [
            {"name": "颜色", "value": "蓝色"},
            {"name": "尺码", "value": "M"},
        ]
        rows = {ln.variant_id: ln for ln in await session.scalars(select(OrderLine))}
        assert (rows[red.id].warehouse_id, rows[blue.id].warehouse_id) == (hz.id, sh.id)

        # What plugins hear of the order names each variant and its SKU.
        placed = await session.scalar(
            select(OutboxEvent.payload).where(OutboxEvent.name == "order_placed")
        )
        assert placed is not None
        assert [(ln["product_id"], ln["variant_id"], ln["sku"]) for ln in placed["lines"]] == [
            (tee.id, red.id, "TEE-RED-M"),
            (tee.id, blue.id, "TEE-BLUE-M"),
        ]
        purchases = await session.scalars(
            select(CustomerEvent).where(CustomerEvent.kind == CustomerEventKind.PURCHASE)
        )
        assert sorted((e.product_id, e.data["variant_id"]) for e in purchases) == sorted(
            [(tee.id, red.id), (tee.id, blue.id)]
        )
        await session.commit()

        # Cancelling gives each variant back its own units.
        cancelled = await buyer(CANCEL_ORDER, {"input": {"orderId": first["id"]}})
        assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
        assert await stock_of(session, red) == [(5, 0)]
        assert await stock_of(session, blue) == [(6, 0), (3, 0)]

        # Planned from Hangzhou at payment: blue's reservation moves there, red's stays.
        second = await place_ok(buyer, [(red, 2), (blue, 2)])
        assert await stock_of(session, blue) == [(6, 2), (3, 0)]
        planner.warehouse = hz.id
        assert (await pay(buyer, second))["__typename"] == "PayOrderSuccess"
        assert await stock_of(session, red) == [(5, 2)]
        assert await stock_of(session, blue) == [(6, 0), (3, 2)]
        plan = (await buyer(ORDER, {"id": second["id"]}))["order"]["shipmentPlan"]
        assert plan == [
            {
                "warehouse": {"code": "HZ-1"},
                "lines": [
                    {"quantity": 2, "orderLine": {"sku": "TEE-RED-M"}},
                    {"quantity": 2, "orderLine": {"sku": "TEE-BLUE-M"}},
                ],
            }
        ]

        # The shipment's event names each line's variant and SKU.
        created = await staff(
            CREATE_SHIPMENT,
            {
                "input": {
                    "orderId": second["id"],
                    "warehouseId": gid("Warehouse", hz.id),
                    "carrier": "顺丰速运",
                    "trackingNumber": "SF0001",
                }
            },
        )
        assert created["createShipment"]["__typename"] == "CreateShipmentSuccess", created
        shipped = await session.scalar(
            select(OutboxEvent.payload).where(OutboxEvent.name == "shipment_created")
        )
        assert shipped is not None
        assert [(ln["variant_id"], ln["sku"], ln["quantity"]) for ln in shipped["lines"]] == [
            (red.id, "TEE-RED-M", 2),
            (blue.id, "TEE-BLUE-M", 2),
        ]
        await session.commit()

        # Shipping consumes each variant's units where they are held; the rest is untouched.
        moved = await staff(
            UPDATE_STATUS, {"input": {"orderId": second["id"], "status": "SHIPPED"}}
        )
        assert moved["updateOrderStatus"]["order"]["status"] == "SHIPPED"
        assert await stock_of(session, red) == [(3, 0)]
        assert await stock_of(session, blue) == [(6, 0), (1, 0)]
        assert await count(session, Order) == 2


class SkuSale:
    """Takes 10.00 off one SKU, and only that one, answering under the keys it was given."""

    PLUGIN_INFO = PluginInfo(name="sku-sale", version="1.0")
    SKU = "TEE-RED-M"

    def __init__(self) -> None:
        self.batches: list[dict[int, int | None]] = []

    @hookimpl
    def price_adjustments(self, items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
        self.batches.append(
            {key: item.variant.id if item.variant else None for key, item in items.items()}
        )
        return {
            key: [Adjustment("red-sale", "红色特价", -1000)]
            for key, item in items.items()
            if item.variant is not None and item.variant.sku == self.SKU
        }


class TestPricesPerVariant:
    @pytest.fixture
    def sale(self) -> SkuSale:
        return SkuSale()

    @pytest.fixture
    def plugins(self, settings: Settings, sale: SkuSale) -> PluginRuntime:
        return only_plugins(settings, sale)

    async def test_a_plugin_discounts_one_sku_and_not_its_sibling(
        self, gql: GraphQLClient, session: AsyncSession, sale: SkuSale
    ) -> None:
        tee, (red, blue, _) = await _tee(session)
        token = await cart_with(gql, [(red, 2), (blue, 1)])

        sale.batches.clear()
        cart = (await gql(CART, {"token": token}))["cart"]
        # One call for the cart, an item per variant, keyed by the variant's id.
        assert sale.batches == [{red.id: red.id, blue.id: blue.id}]
        by_sku = {ln["variant"]["sku"]: ln for ln in cart["lines"]}
        assert by_sku["TEE-RED-M"]["unitPrice"]["amount"] == "89.00"
        assert by_sku["TEE-RED-M"]["priceBreakdown"]["adjustments"] == [
            {"source": "sku-sale", "rule": "red-sale", "amount": {"amount": "-10.00"}}
        ]
        assert by_sku["TEE-BLUE-M"]["unitPrice"]["amount"] == "109.00"
        assert by_sku["TEE-BLUE-M"]["priceBreakdown"]["adjustments"] == []
        assert cart["subtotal"]["amount"] == "287.00"

        # A listing prices the product's "from" price: an item per product, no variant.
        sale.batches.clear()
        listed = await gql(
            "query($id: ID!) { product(id: $id) { price { amount } } }",
            {"id": gid("Product", tee.id)},
        )
        assert listed["product"]["price"]["amount"] == "99.00"
        assert sale.batches == [{tee.id: None}]

        # The placed order keeps the discount on that line only.
        order = await place_ok(gql, [(red, 2), (blue, 1)])
        assert order["subtotal"]["amount"] == "287.00"
        lines = {ln["sku"]: ln for ln in order["lines"]}
        assert lines["TEE-RED-M"]["unitPrice"]["amount"] == "89.00"
        assert lines["TEE-RED-M"]["basePrice"]["amount"] == "99.00"
        assert lines["TEE-BLUE-M"]["unitPrice"]["amount"] == "109.00"
        stored = {
            ln.sku: (ln.unit_price_amount, [a["rule"] for a in ln.adjustments])
            for ln in await session.scalars(select(OrderLine))
        }
        assert stored == {"TEE-RED-M": (8900, ["red-sale"]), "TEE-BLUE-M": (10900, [])}
