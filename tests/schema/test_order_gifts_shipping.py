"""Plugins adjust a cart's shipping quotes (``shipping_adjustments``) and add free gifts to it
(``cart_gifts``): shown on the cart, kept on the order, a gift out of stock left out."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server.config import Settings
from server.models import Order, OrderLine, OrderStatusChange, OutboxEvent
from server.plugin import Adjustment, CartView, GiftLine, ShippingQuote
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import cart_with, make_product, only_plugins, place, stock_of
from tests.support.statements import counting

ADJUSTMENT = "source rule label amount { amount }"
CART = f"""
query($t: String!) {{ cart(token: $t) {{
  subtotal {{ amount }} shipping {{ amount }} total {{ amount }}
  lines {{ quantity }}
  shippingQuotes {{
    code source price {{ amount }} listAmount {{ amount }} adjustments {{ {ADJUSTMENT} }}
  }}
  gifts {{
    quantity label rule source variant {{ sku }} product {{ name }}
    priceBreakdown {{ basePrice {{ amount }} unitPrice {{ amount }} total {{ amount }}
      adjustments {{ {ADJUSTMENT} }} }}
  }}
}} }}"""
ORDER = f"""
query($id: ID!) {{ order(id: $id) {{
  subtotal {{ amount }} shipping {{ amount }} shippingListAmount {{ amount }} total {{ amount }}
  shippingAdjustments {{ {ADJUSTMENT} }}
  lines {{ sku quantity isGift giftRule unitPrice {{ amount }} basePrice {{ amount }}
    lineTotal {{ amount }} priceBreakdown {{ adjustments {{ {ADJUSTMENT} }} }} }}
}} }}"""


class Shop:
    """A carrier plugin quoting two ways, and a promotions plugin that takes 10.00 off every
    quote from a 100.00 subtotal and gives ``gift`` from 100.00; ``bad`` makes either answer
    something that is not what its hook returns."""

    def __init__(self) -> None:
        self.gift_variant: int | None = None
        self.bad: dict[str, Any] = {}
        self.calls: dict[str, int] = {"shipping_adjustments": 0, "cart_gifts": 0}
        self.seen_quotes: list[tuple[str, str, int, int | None]] = []
        self.seen_lines: list[int] = []
        self.placing: list[tuple[str, int, int, str | None]] = []

    def quotes(self, cart: CartView) -> list[ShippingQuote]:
        return [
            ShippingQuote("sf", "顺丰速运", "次日达", 1200, 1),
            ShippingQuote("zto", "中通快递", "标准", 800, 3),
        ]

    def shipping_adjustments(self, cart: CartView, quotes: Any) -> Any:
        self.calls["shipping_adjustments"] += 1
        self.seen_quotes = [(q.code, q.source, q.amount, q.list_amount) for q in quotes]
        if "shipping" in self.bad:
            return self.bad["shipping"]
        if cart.subtotal < 10000:
            return {}
        off = [Adjustment(rule="promotion:3", label="满100减运费10元", amount=-1000)]
        return {q.code: off for q in quotes}

    def cart_gifts(self, cart: CartView) -> Any:
        self.calls["cart_gifts"] += 1
        self.seen_lines = [line.variant_id for line in cart.lines]
        if "gifts" in self.bad:
            return self.bad["gifts"]
        if cart.subtotal < 10000:
            return []
        assert self.gift_variant is not None
        return [GiftLine(self.gift_variant, 1, "promotion:7", "满100赠保温杯", source="forged")]

    def order_placing(self, lines: list[OrderLine]) -> None:
        self.placing = [(ln.sku, ln.quantity, ln.unit_price_amount, ln.gift_rule) for ln in lines]

    def plugins(self) -> list[FakePlugin]:
        return [
            FakePlugin("carrier", shipping_quotes=self.quotes),
            FakePlugin(
                "promo",
                shipping_adjustments=self.shipping_adjustments,
                cart_gifts=self.cart_gifts,
                order_placing=self.order_placing,
            ),
        ]


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def plugins(settings: Settings, shop: Shop) -> PluginRuntime:
    return only_plugins(settings, *shop.plugins())


def _money(value: str) -> dict[str, str]:
    return {"amount": value}


async def test_hook_shipping_adjustments(
    gql: GraphQLClient, session: AsyncSession, shop: Shop, settings: Settings
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, price=5000, stock=10)
    gift = await make_product(session, price=3900, stock=5)
    shop.gift_variant = await _variant_of(session, gift.id)

    small = (await gql(CART, {"t": await cart_with(gql, [(product, 1)])}))["cart"]
    # Under the threshold: list prices, nothing adjusted.
    assert [
        (q["code"], q["price"], q["listAmount"], q["adjustments"]) for q in small["shippingQuotes"]
    ] == [
        ("sf", _money("12.00"), _money("12.00"), []),
        ("zto", _money("8.00"), _money("8.00"), []),
    ]
    # The hook saw every plugin's quotes, stamped, with their list price.
    assert shop.seen_quotes == [("sf", "carrier", 1200, 1200), ("zto", "carrier", 800, 800)]

    token = await cart_with(gql, [(product, 2)])
    cart = (await gql(CART, {"t": token}))["cart"]
    off = {
        "source": "promo",
        "rule": "promotion:3",
        "label": "满100减运费10元",
        "amount": _money("-10.00"),
    }
    assert [
        (q["code"], q["source"], q["price"], q["listAmount"], q["adjustments"])
        for q in cart["shippingQuotes"]
    ] == [
        ("sf", "carrier", _money("2.00"), _money("12.00"), [off]),
        # 8.00 - 10.00 stops at zero.
        ("zto", "carrier", _money("0.00"), _money("8.00"), [off]),
    ]
    assert (cart["subtotal"], cart["shipping"], cart["total"]) == (
        _money("100.00"),
        _money("0.00"),
        _money("100.00"),
    )

    placed = await place(gql, token, shippingMethod="sf")
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    row = await _order(session)
    assert (row.shipping_amount, row.shipping_list_amount, row.total_amount) == (200, 1200, 10200)
    assert row.shipping_adjustments == [
        {"source": "promo", "rule": "promotion:3", "label": "满100减运费10元", "amount": -1000}
    ]
    await session.commit()
    order = (await staff(ORDER, {"id": placed["order"]["id"]}))["order"]
    assert order["shipping"] == _money("2.00")
    assert order["shippingListAmount"] == _money("12.00")
    assert order["shippingAdjustments"] == [off]
    assert order["total"] == _money("102.00")

    # An answer that is not {code: [Adjustment]} fails the request, naming the plugin.
    for bad in (["sf"], {"sf": [{"amount": -100}]}, {"sf": [Adjustment("r", "l", 1.5)]}):  # type: ignore[arg-type]
        shop.bad["shipping"] = bad
        body = await gql.execute(CART, {"t": token})
        [error] = body["errors"]
        assert error["extensions"]["code"] == "PLUGIN_FAILED", bad
        assert (error["extensions"]["plugin"], error["extensions"]["hook"]) == (
            "promo",
            "shipping_adjustments",
        )


async def test_hook_cart_gifts(
    gql: GraphQLClient, session: AsyncSession, shop: Shop, settings: Settings
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, price=5000, stock=10, name="蓝牙耳机")
    gift = await make_product(session, price=3900, stock=1, name="保温杯")
    shop.gift_variant = await _variant_of(session, gift.id)

    token = await cart_with(gql, [(product, 2)])
    cart = (await gql(CART, {"t": token}))["cart"]
    free = {
        "source": "promo",
        "rule": "promotion:7",
        "label": "满100赠保温杯",
        "amount": _money("-39.00"),
    }
    assert cart["gifts"] == [
        {
            "quantity": 1,
            "label": "满100赠保温杯",
            "rule": "promotion:7",
            "source": "promo",
            "variant": {"sku": gift.sku},
            "product": {"name": "保温杯"},
            "priceBreakdown": {
                "basePrice": _money("39.00"),
                "unitPrice": _money("0.00"),
                "total": _money("0.00"),
                "adjustments": [free],
            },
        }
    ]
    # A gift is no line of the cart, costs nothing, and the hooks never see it as a line.
    assert cart["lines"] == [{"quantity": 2}]
    assert (cart["subtotal"], cart["total"]) == (_money("100.00"), _money("100.00"))
    assert shop.seen_lines == [await _variant_of(session, product.id)]

    placed = await place(gql, token)
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    order = (await staff(ORDER, {"id": placed["order"]["id"]}))["order"]
    assert order["total"] == _money("100.00")
    assert [(ln["sku"], ln["isGift"], ln["giftRule"]) for ln in order["lines"]] == [
        (product.sku, False, None),
        (gift.sku, True, "promotion:7"),
    ]
    gift_line = order["lines"][1]
    assert (gift_line["unitPrice"], gift_line["basePrice"], gift_line["lineTotal"]) == (
        _money("0.00"),
        _money("39.00"),
        _money("0.00"),
    )
    assert gift_line["priceBreakdown"]["adjustments"] == [free]
    # order_placing got the gift among the lines; its stock is reserved.
    assert shop.placing == [(product.sku, 2, 5000, None), (gift.sku, 1, 0, "promotion:7")]
    assert await stock_of(session, gift) == [(1, 1)]
    placed_event = await session.scalar(
        select(OutboxEvent.payload).where(OutboxEvent.name == "order_placed")
    )
    assert [(ln["sku"], ln["gift"], ln["gift_rule"]) for ln in placed_event["lines"]] == [
        (product.sku, False, None),
        (gift.sku, True, "promotion:7"),
    ]
    await session.commit()

    # The last gift is gone: the next order goes through without it, and says so.
    second = await place(gql, await cart_with(gql, [(product, 2)]))
    assert second["__typename"] == "PlaceOrderSuccess", second
    assert [ln["sku"] for ln in second["order"]["lines"]] == [product.sku]
    assert await stock_of(session, gift) == [(1, 1)]
    assert await stock_of(session, product) == [(10, 4)]
    note = await session.scalar(
        select(OrderStatusChange.note).order_by(OrderStatusChange.id.desc()).limit(1)  # type: ignore[union-attr]
    )
    assert note is not None and f"gift 保温杯 ({gift.sku}) × 1 left out: out of stock" in note
    await session.commit()

    # A gift that is not a valid GiftLine of a variant on sale fails, naming the plugin.
    for bad in (
        [GiftLine(999_999, 1, "promotion:7", "赠品")],
        [GiftLine(shop.gift_variant, 0, "promotion:7", "赠品")],
        [GiftLine(shop.gift_variant, 1, "", "赠品")],
        [{"variant_id": shop.gift_variant}],
        GiftLine(shop.gift_variant, 1, "promotion:7", "赠品"),
    ):
        shop.bad["gifts"] = bad
        body = await gql.execute(CART, {"t": token})
        [error] = body["errors"]
        assert (error["extensions"]["plugin"], error["extensions"]["hook"]) == (
            "promo",
            "cart_gifts",
        ), bad


async def test_one_call_of_each_hook_and_the_same_statements_whatever_the_cart_size(
    gql: GraphQLClient, session: AsyncSession, shop: Shop, app: Starlette
) -> None:
    products = [await make_product(session, price=5000, stock=10) for _ in range(4)]
    gift = await make_product(session, price=3900, stock=5)
    shop.gift_variant = await _variant_of(session, gift.id)
    counts = []
    for lines in ([(products[0], 2)], [(p, 2) for p in products]):
        token = await cart_with(gql, lines)
        shop.calls = {"shipping_adjustments": 0, "cart_gifts": 0}
        with counting(app) as statements:
            cart = (await gql(CART, {"t": token}))["cart"]
        assert len(cart["gifts"]) == 1
        assert shop.calls == {"shipping_adjustments": 1, "cart_gifts": 1}
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


async def _variant_of(session: AsyncSession, product_id: int | None) -> int:
    from server.models import ProductVariant

    variant_id = await session.scalar(
        select(ProductVariant.id).where(ProductVariant.product_id == product_id)
    )
    await session.commit()
    assert variant_id is not None
    return int(variant_id)


async def _order(session: AsyncSession) -> Order:
    await session.commit()  # a fresh snapshot
    row = await session.scalar(select(Order).order_by(Order.id.desc()).limit(1))  # type: ignore[union-attr]
    assert row is not None
    return row
