"""Guardrails: each limit on hand-computed prices (service level, both backends), which limit
row wins, the binding constraint's name, and the clamp holding after a plugin that discounts
hard, on a listing, a cart and a placed order (over HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.service import limits
from plugins.pricing.service.settings import PricingSettings
from server.config import Settings
from server.models import Product, ProductVariant
from server.plugin import Adjustment, PricedItem, PriceItem, PriceLimit
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin
from tests.plugins.pricing.rules_support import limit
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import cart_with, gid, make_product, place

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def priced(product: Product, price: int, variant: ProductVariant | None = None) -> PricedItem:
    base = variant.price_amount if variant is not None else product.price_amount
    return PricedItem(
        product=product,
        quantity=1,
        base=base,
        adjustments=(Adjustment("promo", "promo", price - base),),
        variant=variant,
    )


async def guard(
    session: AsyncSession, items: Mapping[int, PricedItem], margin_bp: int = 0
) -> dict[int, PriceLimit]:
    config = PricingSettings(min_margin_bp=margin_bp)
    return await limits.price_guardrails(session, items, None, NOW, config)


def test_the_margin_floor_rounds_up() -> None:
    # cost 70.00 at 20%: 87.50 exactly; cost 70.01: 87.5125 -> 87.52 (never short of the margin).
    assert limits.margin_floor(7000, 2000) == 8750
    assert limits.margin_floor(7001, 2000) == 8752
    assert limits.margin_floor(1, 3333) == 2  # 1.4999…: up to 2
    assert limits.margin_label(2000) == "毛利不低于 20% / margin at least 20%"
    assert limits.margin_label(1250) == "毛利不低于 12.5% / margin at least 12.5%"


async def _each_limit_and_the_binding_name(session: AsyncSession) -> None:
    product = await make_product(session, price=10000)
    product.cost_amount = 7000
    await session.commit()
    assert product.id is not None
    key = product.id
    # Nothing set, no shop-wide margin: no answer.
    assert await guard(session, {key: priced(product, 1000)}) == {}
    # The shop-wide margin: 20% over 70.00 = 87.50.
    assert (await guard(session, {key: priced(product, 1000)}, 2000))[key] == PriceLimit(
        "min-margin", "毛利不低于 20% / margin at least 20%", floor=8750
    )
    row = await limit(
        session, product_id=product.id, floor_amount=6000, ceiling_amount=12000, map_amount=9000
    )
    # The highest floor binds: MAP 90.00 over the floor 60.00 and the margin 87.50.
    found = (await guard(session, {key: priced(product, 5000)}, 2000))[key]
    assert found == PriceLimit(
        "map", "最低广告价 / minimum advertised price 90.00", floor=9000, ceiling=12000
    )
    # Above the ceiling: the ceiling is named.
    found = (await guard(session, {key: priced(product, 15000)}))[key]
    assert (found.rule, found.floor, found.ceiling) == ("ceiling", 9000, 12000)
    # The row's own margin beats the shop's: 50% over 70.00 = 140.00, above the ceiling (the
    # core lets the floor win).
    row.min_margin_bp = 5000
    row.map_amount = None
    await session.commit()
    found = (await guard(session, {key: priced(product, 5000)}, 2000))[key]
    assert (found.rule, found.floor, found.ceiling) == ("min-margin", 14000, 12000)


async def _variant_then_product_then_category(session: AsyncSession) -> None:
    product = await make_product(session, price=10000)
    variant = await session.scalar(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    )
    assert variant is not None and product.id is not None and variant.id is not None
    await limit(session, category_id=product.category_id, floor_amount=3000, ceiling_amount=20000)
    listing = {product.id: priced(product, 100)}
    assert (await guard(session, listing))[product.id].floor == 3000
    await limit(session, product_id=product.id, floor_amount=4000)
    found = (await guard(session, listing))[product.id]
    # The product's floor; the ceiling it leaves empty comes from the category.
    assert (found.floor, found.ceiling) == (4000, 20000)
    await limit(session, variant_id=variant.id, floor_amount=5000)
    assert (await guard(session, listing))[product.id].floor == 4000  # a listing: no variant
    line = {variant.id: priced(product, 100, variant)}
    assert (await guard(session, line))[variant.id].floor == 5000


async def test_limits_their_names_and_which_row_wins(session: AsyncSession) -> None:
    await _each_limit_and_the_binding_name(session)
    await _variant_then_product_then_category(session)


# --- after every plugin, over HTTP ------------------------------------------------------------


def ninety_percent_off(items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
    return {
        key: [Adjustment(rule="flash", label="一折", amount=-(item.price * 9 // 10))]
        for key, item in items.items()
    }


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return load_plugins(settings, extra=[FakePlugin("flash", price_adjustments=ninety_percent_off)])


PRODUCT = """query($id: ID!) { node(id: $id) { ... on Product { price { amount }
  priceBreakdown { adjustments { source amount { amount } } guardrail { source rule amount { amount } } } } } }"""
CART = """query($t: String!) { cart(token: $t) { lines { unitPrice { amount }
  priceBreakdown { guardrail { rule } } } } }"""
ORDER_LINES = """query($id: ID!) { order(id: $id) { lines { sku unitPrice { amount }
  priceBreakdown { guardrail { source rule label } } } } }"""


async def test_guardrails_hold_after_a_hard_discount(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    floored = await make_product(session, price=10000, stock=10)
    margin = await make_product(session, price=10000, stock=10)
    mapped = await make_product(session, price=20000, stock=10)
    free = await make_product(session, price=10000, stock=10)
    margin.cost_amount = 6000
    variants = {
        v.product_id: v
        for v in await session.scalars(
            select(ProductVariant).where(ProductVariant.product_id == margin.id)
        )
    }
    variants[margin.id].cost_amount = 6000
    await session.commit()
    await limit(session, product_id=floored.id, floor_amount=8000)
    await limit(session, product_id=margin.id, min_margin_bp=2500)  # 60.00 / 0.75 = 80.00
    await limit(session, category_id=mapped.category_id, map_amount=15000)
    expected = {
        floored.id: ("80.00", "floor"),
        margin.id: ("80.00", "min-margin"),
        mapped.id: ("150.00", "map"),
        free.id: ("10.00", None),
    }
    for pid, (price, rule) in expected.items():
        data = await gql(PRODUCT, {"id": gid("Product", pid)})
        assert data["node"]["price"]["amount"] == price
        guardrail = data["node"]["priceBreakdown"]["guardrail"]
        assert (guardrail["rule"] if guardrail else None) == rule
        if guardrail:
            assert guardrail["source"] == "pricing"
    products = [floored, margin, mapped, free]
    token = await cart_with(buyer, [(p, 2) for p in products])
    lines = (await buyer(CART, {"t": token}))["cart"]["lines"]
    assert sorted(line["unitPrice"]["amount"] for line in lines) == [
        "10.00",
        "150.00",
        "80.00",
        "80.00",
    ]
    result = await place(buyer, token)
    assert result["__typename"] == "PlaceOrderSuccess", result
    assert result["order"]["subtotal"]["amount"] == "640.00"  # 2 × (80 + 80 + 150 + 10)
    order = (await buyer(ORDER_LINES, {"id": result["order"]["id"]}))["order"]
    rules = sorted(
        (line["priceBreakdown"]["guardrail"] or {}).get("rule") or "" for line in order["lines"]
    )
    assert rules == ["", "floor", "map", "min-margin"]
