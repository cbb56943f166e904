"""What shoppers see and do, over HTTP on one live shop per backend: promotions on product
pages, coupons applied and refused, a cart's applied and missed promotions, and placeOrder
charging exactly what the cart showed; statements flat with page and cart size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import (
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    Trigger,
)
from server.db import create_engine, session_factory
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import cart_with, gid, make_product, place
from tests.support.statements import counting

CART = """query($token: String!) { cart(token: $token) {
  subtotal { amount } discount { amount } total { amount }
  lines { quantity unitPrice { amount } }
  promotions {
    codes
    applied { promotionId label kind promotionClass amount { amount } code source }
    notApplied { label code message couponCode shortfall { amount } }
  }
} }"""

APPLY = """mutation($input: ApplyCouponInput!) { applyCoupon(input: $input) {
  __typename
  ... on ApplyCouponSuccess { cart { discount { amount } promotions { codes } } }
  ... on CouponRefused { code message field reason shortfall { amount } }
  ... on Error { code message field }
} }"""

REMOVE = """mutation($input: RemoveCouponInput!) { removeCoupon(input: $input) {
  __typename
  ... on RemoveCouponSuccess { cart { promotions { codes } } }
  ... on Error { code message field }
} }"""

BUNDLE = """mutation($input: AddBundleToCartInput!) { addBundleToCart(input: $input) {
  __typename
  ... on AddBundleToCartSuccess { cart {
    lines { quantity unitPrice { amount } }
    discount { amount }
    promotions { applied { kind amount { amount } } }
  } }
  ... on Error { code message field }
} }"""

PRODUCTS = """query($first: Int!) { products(first: $first) { nodes {
  id price { amount }
  promotions { label kind promotionClass effect unitsLeft limited endsAt }
} } }"""

NOW = datetime.now(UTC)


async def _seed(session: AsyncSession) -> dict[str, Any]:
    phone = await make_product(session, price=19900, name="手机")
    case = await make_product(session, price=5000, name="手机壳")
    others = [await make_product(session, price=1000 + i) for i in range(9)]
    flash = Promotion(
        name="flash",
        label="限时特惠 85折",
        kind=PromotionKind.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 1500},
        product_ids=[phone.id],
        unit_limit=100,
        units_sold=40,
        ends_at=NOW + timedelta(days=2),
        combinable_with=["ORDER"],
    )
    tiers = Promotion(
        name="tiers",
        label="满200减20",
        kind=PromotionKind.SPEND_SAVE,
        rules={
            "tiers": [
                {"threshold": 20000, "amount_off": 2000},
                {"threshold": 40000, "amount_off": 5000},
            ]
        },
        product_ids=[phone.id, case.id],
        combinable_with=["PRODUCT"],
        joint_group="stack",
    )
    coupon = Promotion(
        name="coupon",
        label="九折券",
        kind=PromotionKind.COUPON,
        trigger=Trigger.CODE,
        rules={"percent_off_bp": 1000, "max_discount": 3000},
        combinable_with=["PRODUCT"],
        joint_group="stack",
    )
    big = Promotion(
        name="big",
        label="满1000减100",
        kind=PromotionKind.COUPON,
        trigger=Trigger.CODE,
        rules={"amount_off": 10000, "min_spend": 100000},
        combinable_with=["PRODUCT"],
        joint_group="stack",
    )
    bundle = Promotion(
        name="bundle",
        label="套餐价 25元",
        kind=PromotionKind.BUNDLE,
        rules={
            "items": [{"product_id": others[0].id}, {"product_id": others[1].id, "quantity": 2}],
            "price": 2500,
        },
        product_ids=[others[0].id, others[1].id],
    )
    session.add_all([flash, tiers, coupon, big, bundle])
    await session.flush()
    session.add_all(
        [
            CouponCode(promotion_id=coupon.id, code="SAVE10"),
            CouponCode(promotion_id=big.id, code="BIG100"),
            CouponCode(promotion_id=coupon.id, code="OLD10", expires_at=NOW - timedelta(days=1)),
        ]
    )
    await session.commit()
    return {
        "phone": phone,
        "case": case,
        "others": others,
        "flash": flash.id,
        "tiers": tiers.id,
        "coupon": coupon.id,
        "bundle": bundle.id,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


async def _units_sold(shop: ModuleShop, promotion_id: int) -> int:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            promotion = await session.get(Promotion, promotion_id)
            assert promotion is not None
            return promotion.units_sold
    finally:
        await engine.dispose()


async def _apply(gql: GraphQLClient, token: str, code: str) -> dict[str, Any]:
    data = await gql(APPLY, {"input": {"cartToken": token, "code": code}})
    return dict(data["applyCoupon"])


async def test_flash_sale_spend_save_and_coupon_from_cart_to_order(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    seeded = shop.seeded
    token = await cart_with(gql, [(seeded["phone"], 2), (seeded["case"], 1)])
    # Phone 199.00 less 15% (29.85) = 169.15 a unit; 2 x 169.15 + 50.00 = 388.30; the 200.00
    # tier takes 20.00 off.
    cart = (await gql(CART, {"token": token}))["cart"]
    assert [line["unitPrice"]["amount"] for line in cart["lines"]] == ["169.15", "50.00"]
    assert cart["subtotal"]["amount"] == "388.30"
    assert cart["discount"]["amount"] == "20.00"
    promotions = cart["promotions"]
    assert [(a["kind"], a["amount"]["amount"]) for a in promotions["applied"]] == [
        ("FLASH_SALE", "59.70"),
        ("SPEND_SAVE", "20.00"),
    ]
    # A code in another case, spaces and all; 10% of 388.30 = 38.83, capped at 30.00.
    applied = await _apply(gql, token, " save10 ")
    assert applied["__typename"] == "ApplyCouponSuccess", applied
    assert applied["cart"]["discount"]["amount"] == "50.00"
    assert applied["cart"]["promotions"]["codes"] == ["SAVE10"]
    cart = (await gql(CART, {"token": token}))["cart"]
    coupon = [a for a in cart["promotions"]["applied"] if a["kind"] == "COUPON"]
    assert [(c["code"], c["amount"]["amount"], c["promotionClass"]) for c in coupon] == [
        ("SAVE10", "30.00", "ORDER")
    ]
    assert coupon[0]["source"].startswith(f"promotion:{seeded['coupon']}/code:")
    assert cart["total"]["amount"] == "338.30"
    order = await place(gql, token)
    assert order["__typename"] == "PlaceOrderSuccess", order
    assert order["order"]["subtotal"]["amount"] == "388.30"
    assert order["order"]["discount"]["amount"] == "50.00"
    assert order["order"]["total"]["amount"] == "338.30"


async def test_a_coupon_that_would_not_apply_is_refused_with_why(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    token = await cart_with(gql, [(shop.seeded["case"], 1)])
    # 50.00 of the 1,000.00 minimum: 950.00 short.
    refused = await _apply(gql, token, "BIG100")
    assert refused["__typename"] == "CouponRefused"
    assert (refused["code"], refused["reason"], refused["field"]) == (
        "COUPON_MINIMUM_NOT_MET",
        "MINIMUM_NOT_MET",
        "code",
    )
    assert refused["message"] == "spend ¥950.00 more to save ¥100.00"
    assert refused["shortfall"]["amount"] == "950.00"
    expired = await _apply(gql, token, "OLD10")
    assert (expired["code"], expired["reason"]) == ("COUPON_EXPIRED", "EXPIRED")
    missing = await _apply(gql, token, "NOPE")
    assert (missing["__typename"], missing["code"]) == ("CouponRefused", "COUPON_NOT_FOUND")
    cart = (await gql(CART, {"token": token}))["cart"]
    assert cart["promotions"]["codes"] == []
    # The spend-and-save explains what is missing: 150.00 short of the 200.00 tier.
    missed = [m for m in cart["promotions"]["notApplied"] if m["code"] == "MINIMUM_NOT_MET"]
    assert [(m["message"], m["shortfall"]["amount"]) for m in missed] == [
        ("spend ¥150.00 more to save ¥20.00", "150.00")
    ]
    # Applied then removed.
    assert (await _apply(gql, token, "SAVE10"))["__typename"] == "ApplyCouponSuccess"
    removed = await gql(REMOVE, {"input": {"cartToken": token, "code": "save10"}})
    assert removed["removeCoupon"]["cart"]["promotions"]["codes"] == []
    again = await gql(REMOVE, {"input": {"cartToken": token, "code": "SAVE10"}})
    assert again["removeCoupon"]["__typename"] == "NotFoundError"


async def test_product_pages_show_their_promotions_in_flat_statements(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    counts = []
    for first in (2, 11):
        with counting(shop.app) as statements:
            nodes = (await gql(PRODUCTS, {"first": first}))["products"]["nodes"]
        counts.append(len(statements))
    assert counts[0] == counts[1]
    phone = next(n for n in nodes if n["id"] == gid("Product", shop.seeded["phone"].id))
    assert phone["price"]["amount"] == "169.15"
    # 100 units, 40 sold by the seed; another test of this module may have sold more.
    left = 100 - await _units_sold(shop, shop.seeded["flash"])
    assert [
        (p["kind"], p["effect"], p["unitsLeft"], p["limited"]) for p in phone["promotions"]
    ] == [
        ("FLASH_SALE", "15% off", left, f"limited: {left} left"),
        ("SPEND_SAVE", "spend ¥200.00 save ¥20.00, spend ¥400.00 save ¥50.00", None, None),
    ]
    other = next(n for n in nodes if n["id"] == gid("Product", shop.seeded["others"][5].id))
    assert other["promotions"] == []


async def test_a_cart_quote_runs_as_many_statements_whatever_its_size(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    others = shop.seeded["others"]
    counts = []
    for size in (1, 8):
        token = await cart_with(gql, [(p, 1) for p in others[:size]])
        await _apply(gql, token, "SAVE10")
        with counting(shop.app) as statements:
            await gql(CART, {"token": token})
        counts.append(len(statements))
    assert counts[0] == counts[1]


async def test_a_bundle_is_added_as_one_choice_and_priced_per_set(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    token = await cart_with(gql, [])
    missing = await gql(
        BUNDLE,
        {"input": {"cartToken": token, "promotionId": gid("Promotion", shop.seeded["tiers"])}},
    )
    assert missing["addBundleToCart"]["__typename"] == "NotFoundError"
    bundle = gid("Promotion", shop.seeded["bundle"])
    added = (await gql(BUNDLE, {"input": {"cartToken": token, "promotionId": bundle}}))[
        "addBundleToCart"
    ]
    assert added["__typename"] == "AddBundleToCartSuccess", added
    # One 10.00 item and two 10.01 items: 30.02 for 25.00, 5.02 off.
    cart = added["cart"]
    assert [(ln["quantity"], ln["unitPrice"]["amount"]) for ln in cart["lines"]] == [
        (1, "10.00"),
        (2, "10.01"),
    ]
    assert cart["discount"]["amount"] == "5.02"
    assert cart["promotions"]["applied"] == [{"kind": "BUNDLE", "amount": {"amount": "5.02"}}]
