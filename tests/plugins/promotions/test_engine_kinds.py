"""Each kind on hand-computed carts, quoted through the core's checkout service (the
engine's SQL on both backends, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import CustomerUse, PromotionClass, PromotionKind
from plugins.promotions.service import checkout as promo_checkout
from plugins.promotions.service import pricing
from plugins.promotions.service.settings import PromotionsSettings
from server.config import Settings
from server.models import MembershipTier
from server.plugin import Adjustment, NotApplied, PriceItem, ShippingQuote
from server.plugins import PluginRuntime
from server.services import checkout
from tests.plugins.promotions.engine_support import (
    cart,
    coupon,
    promo,
    promotions_only,
    quote,
    variant_of,
)
from tests.support.accounts import make_customer
from tests.support.orders import VariantSpec, make_product, make_variant_product

CONFIG = PromotionsSettings()


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return promotions_only(settings)


def _order(adjustments: tuple[Adjustment, ...]) -> list[tuple[str, int]]:
    return [(a.rule, a.amount) for a in adjustments]


async def test_flash_sale_spend_save_and_coupon_stack_on_one_cart(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    phone = await make_product(session, price=19900)
    case = await make_product(session, price=5000)
    flash = await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 1500},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[phone.id],
        unit_limit=100,
        combinable_with=["ORDER"],
    )
    tiers = await promo(
        session,
        PromotionKind.SPEND_SAVE,
        {
            "tiers": [
                {"threshold": 20000, "amount_off": 2000},
                {"threshold": 40000, "amount_off": 5000},
            ]
        },
        combinable_with=["PRODUCT"],
        joint_group="stack",
    )
    _, code = await coupon(
        session,
        {"percent_off_bp": 1000, "max_discount": 3000},
        joint_group="stack",
        combinable_with=["PRODUCT"],
    )
    row = await cart(session, [(phone, 2), (case, 1)], codes=[code])
    quoted, decision = await quote(session, plugins, row)
    # Phone: 15% of 199.00 = 29.85 off -> 169.15 a unit, 338.30 for two; case 50.00.
    phone_line = next(p for p in quoted.lines if p.product.id == phone.id)
    assert phone_line.breakdown.final == 16915
    assert [(a.rule, a.amount) for a in phone_line.breakdown.adjustments] == [
        (f"promotion:{flash.id}", -2985)
    ]
    assert quoted.subtotal == 38830
    # Spend-and-save: 388.30 reaches the 200.00 tier, not the 400.00 one: 20.00 off.
    # Coupon: 10% of 388.30 = 38.83, capped at 30.00.
    assert sorted(_order(quoted.order_adjustments)) == sorted(
        [(f"promotion:{tiers.id}", -2000), (f"promotion:{code.promotion_id}/code:{code.id}", -3000)]
    )
    assert quoted.discount == 5000
    applied = {o.promotion.id: o for o in decision.applied}
    assert set(applied) == {flash.id, tiers.id, code.promotion_id}
    assert applied[flash.id].units == {phone_line.variant.id: 2}
    # Shares of the 20.00 over 338.30 and 50.00, by largest remainder: 17.42 + 2.58.
    case_variant = await variant_of(session, case)
    assert applied[tiers.id].line_shares == {phone_line.variant.id: 1742, case_variant.id: 258}


NOW = datetime.now(UTC)


def _steps(answer: Any, key: int) -> tuple[list[tuple[str, int]], list[str]]:
    steps = answer.get(key, [])
    return (
        [(s.rule, s.amount) for s in steps if isinstance(s, Adjustment)],
        [s.reason for s in steps if isinstance(s, NotApplied)],
    )


async def test_product_promotions_stack_in_a_joint_group_for_the_right_shopper(
    session: AsyncSession,
) -> None:
    product = await make_product(session, price=10000)
    flash = await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 2000},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[product.id],
        joint_group="p",
    )
    member = await promo(
        session,
        PromotionKind.MEMBER_DEAL,
        {"fixed_price": 9000},
        promotion_class=PromotionClass.PRODUCT,
        category_ids=[product.category_id],
        membership_tier="GOLD",
        joint_group="p",
    )
    dearer = await promo(
        session,
        PromotionKind.MEMBER_DEAL,
        {"fixed_price": 12000},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[product.id],
        joint_group="p",
    )
    gold = await make_customer(session, membership_tier=MembershipTier.GOLD)
    item = {product.id: PriceItem(product=product, quantity=1, base=10000)}
    guest = await pricing.price_adjustments(session, item, None, NOW, CONFIG)
    # Guest: 20% of 100.00; the member price is for gold members; a fixed price of 120.00
    # would raise the price, so it is left out.
    assert _steps(guest, product.id) == (
        [(f"promotion:{flash.id}", -2000)],
        [f"{member.name} is for gold members", f"{dearer.name} is not below the price"],
    )
    await session.commit()
    member_answer = await pricing.price_adjustments(session, item, gold, NOW, CONFIG)
    # Gold: both, each on the listed 100.00: 20.00 + (100.00 - 90.00) = 30.00 off.
    applied, _ = _steps(member_answer, product.id)
    assert sorted(applied) == sorted(
        [(f"promotion:{flash.id}", -2000), (f"promotion:{member.id}", -1000)]
    )
    await session.commit()


async def test_flash_sale_limits_leave_it_out_with_the_reason(session: AsyncSession) -> None:
    product = await make_product(session, price=10000)
    sale = await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 1000},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[product.id],
        unit_limit=10,
        units_sold=9,
    )
    capped = await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 500},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[product.id],
        per_customer_unit_limit=2,
    )
    buyer = await make_customer(session)
    session.add(CustomerUse(promotion_id=capped.id, customer_id=buyer.id, uses=1, units=1))
    await session.commit()
    two = {product.id: PriceItem(product=product, quantity=2, base=10000)}
    answer = await pricing.price_adjustments(session, two, buyer, NOW, CONFIG)
    assert _steps(answer, product.id) == (
        [],
        [
            f"{sale.name}: only 1 left",
            f"{capped.name}: at most 2 units per customer (1 left for you)",
        ],
    )
    await session.commit()
    one = {product.id: PriceItem(product=product, quantity=1, base=10000)}
    answer = await pricing.price_adjustments(session, one, None, NOW, CONFIG)
    # A guest gets the one unit left of the sale; the per-customer cap needs signing in.
    assert _steps(answer, product.id) == (
        [(f"promotion:{sale.id}", -1000)],
        [f"sign in to get {capped.name}"],
    )
    await session.commit()


async def test_a_carts_lines_share_the_units_left_of_a_flash_sale(session: AsyncSession) -> None:
    product, (small, large) = await make_variant_product(
        session,
        [
            VariantSpec(sku="TEE-S", options={"size": "S"}, price=10000),
            VariantSpec(sku="TEE-L", options={"size": "L"}, price=10000),
        ],
    )
    sale = await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 1000},
        promotion_class=PromotionClass.PRODUCT,
        product_ids=[product.id],
        unit_limit=10,
        units_sold=7,
        per_customer_unit_limit=5,
    )
    buyer = await make_customer(session)
    await session.commit()
    cart = {
        large.id: PriceItem(product=product, variant=large, quantity=2, base=10000),
        small.id: PriceItem(product=product, variant=small, quantity=2, base=10000),
    }
    answer = await pricing.price_adjustments(session, cart, buyer, NOW, CONFIG)
    # Three units left: the lower variant id takes two, the other line's two do not fit.
    first, second = sorted([small.id, large.id])
    assert _steps(answer, first) == ([(f"promotion:{sale.id}", -1000)], [])
    assert _steps(answer, second) == ([], [f"{sale.name}: only 1 left"])
    await session.commit()
    # The per-customer cap of 5 counts the cart's other lines too: 3 bought before, 2 on the
    # first line, so the second line's one unit would make 6 (the 3 units left would do).
    session.add(CustomerUse(promotion_id=sale.id, customer_id=buyer.id, uses=1, units=3))
    await session.commit()
    capped = {
        first: PriceItem(
            product=product, variant=small if first == small.id else large, quantity=2, base=10000
        ),
        second: PriceItem(
            product=product, variant=large if first == small.id else small, quantity=1, base=10000
        ),
    }
    answer = await pricing.price_adjustments(session, capped, buyer, NOW, CONFIG)
    assert _steps(answer, first) == ([(f"promotion:{sale.id}", -1000)], [])
    assert _steps(answer, second) == ([], [f"{sale.name}: at most 5 units per customer"])
    await session.commit()
    # A guest: a per-customer cap needs signing in.
    answer = await pricing.price_adjustments(session, capped, None, NOW, CONFIG)
    assert _steps(answer, second)[1] == [f"sign in to get {sale.name}"]
    await session.commit()


async def test_pricing_a_page_reads_as_many_statements_whatever_its_size(
    session: AsyncSession,
) -> None:
    products = [await make_product(session, price=1000 * (i + 1)) for i in range(6)]
    await promo(
        session,
        PromotionKind.FLASH_SALE,
        {"percent_off_bp": 1000},
        promotion_class=PromotionClass.PRODUCT,
        category_ids=[p.category_id for p in products],
        per_customer_limit=3,
        segment="IMPORTANT_VALUE",
        joint_group="p",
    )
    await promo(
        session,
        PromotionKind.MEMBER_DEAL,
        {"percent_off_bp": 500},
        promotion_class=PromotionClass.PRODUCT,
        membership_tier="GOLD",
        joint_group="p",
    )
    buyer = await make_customer(session, membership_tier=MembershipTier.GOLD)
    counts = []
    for size in (1, 6):
        items = {
            p.id: PriceItem(product=p, quantity=1, base=p.price_amount) for p in products[:size]
        }
        statements: list[str] = []

        def count(*args: Any, seen: list[str] = statements) -> None:
            seen.append(str(args[2]))

        engine = session.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", count)
        try:
            answer = await pricing.price_adjustments(session, items, buyer, NOW, CONFIG)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        await session.commit()
        counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
        assert len(answer) == size
    # The running promotions, the segment, the customer's counters: three, whatever the size.
    assert counts == [3, 3]


async def test_checkout_hooks_answer_from_one_decision(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    shoes = await make_product(session, price=30000)
    gift = await make_product(session, price=2000, stock=1)
    gift_variant = await variant_of(session, gift)
    free = await promo(
        session,
        PromotionKind.FREE_SHIPPING,
        {"min_spend": 10000, "max_discount": 1500},
        combinable_with=["ORDER"],
    )
    present = await promo(
        session,
        PromotionKind.SPEND_GIFT,
        {"tiers": [{"threshold": 20000, "variant_id": gift_variant.id}]},
        combinable_with=["SHIPPING"],
    )
    _, code = await coupon(session, {"amount_off": 5000, "min_spend": 50000})
    row = await cart(session, [(shoes, 1)], codes=[code])
    await session.commit()
    quoted = await checkout.quote_cart(session, plugins, row, None)
    view = quoted.view
    quotes = [
        ShippingQuote(code="std", carrier="中通", label="标准", amount=1000),
        ShippingQuote(code="sf", carrier="顺丰", label="次日达", amount=2500),
    ]
    # The decision was made once, for order_adjustments: the other hooks read nothing more.
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = session.bind.sync_engine  # type: ignore[union-attr]
    event.listen(engine, "before_cursor_execute", count)
    try:
        shipping = await promo_checkout.shipping_adjustments(
            session, view, quotes, None, plugins, CONFIG
        )
        gifts = await promo_checkout.cart_gifts(session, view, None, plugins, CONFIG)
        problems = await promo_checkout.validate_checkout(session, view, None, plugins, CONFIG)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert {k: [(a.rule, a.amount) for a in v] for k, v in shipping.items()} == {
        "std": [(f"promotion:{free.id}", -1000)],
        "sf": [(f"promotion:{free.id}", -1500)],
    }
    assert [(g.variant_id, g.quantity, g.rule) for g in gifts] == [
        (gift_variant.id, 1, f"promotion:{present.id}")
    ]
    # The coupon's 500.00 minimum is not met: it blocks the checkout, typed.
    assert [(p.code, p.field, p.message) for p in problems] == [
        ("COUPON_MINIMUM_NOT_MET", "coupons", "spend ¥200.00 more to save ¥50.00")
    ]
    assert quoted.order_adjustments == ()
    await session.commit()
