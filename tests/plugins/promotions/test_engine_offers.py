"""Each ORDER and SHIPPING kind's offer on hand-computed carts (pure: no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from plugins.promotions.models import Promotion as PromotionRow
from plugins.promotions.models import PromotionClass, PromotionKind, Trigger
from plugins.promotions.service.context import CodeOnCart, Promo, Shopper, snapshot
from plugins.promotions.service.engine import Gift, Miss, MissCode, Offer
from plugins.promotions.service.offers import (
    CartFacts,
    Line,
    allocate,
    coupon_offer,
    offer_for,
    shipping_discount,
)
from server.plugin import ShippingQuote

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
_ids = itertools.count(1)


def promo(kind: PromotionKind, rules: dict[str, Any], **fields: Any) -> Promo:
    row = PromotionRow(id=next(_ids), name=f"p{kind.value}", kind=kind, rules=rules, **fields)
    made = snapshot(row)
    assert made is not None
    return made


def line(variant_id: int, quantity: int, unit_price: int, product_id: int | None = None) -> Line:
    return Line(
        variant_id=variant_id,
        product_id=product_id if product_id is not None else variant_id + 1000,
        category_id=None,
        quantity=quantity,
        unit_price=unit_price,
    )


def facts(*lines: Line, **extra: Any) -> CartFacts:
    extra.setdefault("shopper", Shopper(customer_id=7))
    return CartFacts(lines=tuple(lines), currency="CNY", at=AT, **extra)


TIERS = {
    "tiers": [
        {"threshold": 20000, "amount_off": 2000},
        {"threshold": 40000, "amount_off": 5000},
    ]
}


def test_spend_save_takes_the_highest_tier_reached_from_its_threshold_exactly() -> None:
    p = promo(PromotionKind.SPEND_SAVE, TIERS)
    at_first = offer_for(p, facts(line(1, 2, 10000)))
    assert isinstance(at_first, Offer) and at_first.amount == 2000
    just_under = offer_for(p, facts(line(1, 1, 19999)))
    assert isinstance(just_under, Miss)
    assert (just_under.code, just_under.shortfall) == (MissCode.MINIMUM_NOT_MET, 1)
    assert just_under.message == "spend ¥0.01 more to save ¥20.00"
    at_second = offer_for(p, facts(line(1, 4, 10000)))
    assert isinstance(at_second, Offer) and at_second.amount == 5000
    # Percent tier: 10% of 333.35 = 33.335, half up to 33.34.
    percent = promo(
        PromotionKind.SPEND_SAVE, {"tiers": [{"threshold": 100, "percent_off_bp": 1000}]}
    )
    found = offer_for(percent, facts(line(1, 1, 33335)))
    assert isinstance(found, Offer) and found.amount == 3334


def test_spend_save_per_every_repeats_up_to_max_times() -> None:
    p = promo(
        PromotionKind.SPEND_SAVE,
        {"per_every": {"every": 10000, "amount_off": 1000, "max_times": 3}},
    )
    three = offer_for(p, facts(line(1, 1, 35000)))
    assert isinstance(three, Offer) and three.amount == 3000
    capped = offer_for(p, facts(line(1, 1, 45000)))
    assert isinstance(capped, Offer) and capped.amount == 3000
    none = offer_for(p, facts(line(1, 1, 9999)))
    assert isinstance(none, Miss) and none.message == "spend ¥0.01 more to save ¥10.00"


def test_order_shares_split_by_largest_remainder_and_sum_exactly() -> None:
    assert allocate(100, {3: 1, 2: 1, 1: 1}) == {1: 34, 2: 33, 3: 33}
    # 20.00 over 338.30 and 50.00: 17.4246… and 2.5753… -> 17.42 + 2.58.
    assert allocate(2000, {1: 33830, 2: 5000}) == {1: 1742, 2: 258}
    p = promo(PromotionKind.SPEND_SAVE, TIERS)
    found = offer_for(p, facts(line(1, 1, 7000), line(2, 1, 7000), line(3, 1, 7000)))
    assert isinstance(found, Offer)
    assert found.line_shares == {1: 667, 2: 667, 3: 666}
    assert sum(found.line_shares.values()) == found.amount == 2000


def test_buy_two_get_one_free_discounts_the_cheapest_units_per_multiple() -> None:
    p = promo(PromotionKind.BUY_X_GET_Y, {"buy_quantity": 2, "get_quantity": 1})
    cart = facts(line(1, 3, 1000), line(2, 2, 3000), line(3, 1, 500))
    # 6 units: two applications, so the two cheapest units are free: 5.00 and 10.00.
    found = offer_for(p, cart)
    assert isinstance(found, Offer)
    assert (found.amount, found.line_shares, found.units) == (1500, {3: 500, 1: 1000}, {3: 1, 1: 1})
    capped = promo(
        PromotionKind.BUY_X_GET_Y, {"buy_quantity": 2, "get_quantity": 1, "max_applications": 1}
    )
    one = offer_for(capped, cart)
    assert isinstance(one, Offer) and one.amount == 500
    short = offer_for(p, facts(line(1, 2, 1000)))
    assert isinstance(short, Miss) and short.message == "add 1 more to get 1 free"


def test_buy_x_get_a_named_item_discounts_it_or_adds_it_as_a_gift() -> None:
    rules = {"buy_quantity": 2, "get_quantity": 1, "get_variant_id": 9}
    p = promo(PromotionKind.BUY_X_GET_Y, rules)
    in_cart = offer_for(p, facts(line(1, 4, 1000), line(9, 1, 800)))
    assert isinstance(in_cart, Offer)
    assert (in_cart.amount, in_cart.line_shares) == (800, {9: 800})
    gift = offer_for(p, facts(line(1, 4, 1000), stock={9: 5}))
    assert isinstance(gift, Offer)
    assert (gift.amount, gift.gifts) == (0, (Gift(variant_id=9, quantity=2),))
    gone = offer_for(p, facts(line(1, 4, 1000), stock={9: 1}))
    assert isinstance(gone, Miss) and gone.code is MissCode.OUT_OF_STOCK


def test_bundle_prices_each_complete_set() -> None:
    p = promo(
        PromotionKind.BUNDLE,
        {"items": [{"product_id": 101}, {"product_id": 102}], "price": 10000},
    )
    cart = facts(line(1, 2, 6000, product_id=101), line(2, 3, 5000, product_id=102))
    # Two complete sets: 2 x (60.00 + 50.00) = 220.00 for 200.00: 20.00 off, split
    # 120.00 : 100.00 -> 10.909… and 9.090… -> 10.91 + 9.09.
    found = offer_for(p, cart)
    assert isinstance(found, Offer)
    assert (found.amount, found.line_shares, found.units) == (2000, {1: 1091, 2: 909}, {1: 2, 2: 2})
    dear = promo(
        PromotionKind.BUNDLE,
        {"items": [{"product_id": 101}, {"product_id": 102}], "price": 20000},
    )
    assert isinstance(offer_for(dear, cart), Miss)  # never a negative discount
    incomplete = offer_for(p, facts(line(1, 2, 6000, product_id=101)))
    assert isinstance(incomplete, Miss) and incomplete.code is MissCode.NO_ELIGIBLE_ITEMS


def test_spend_and_gift_gives_what_is_in_stock() -> None:
    p = promo(
        PromotionKind.SPEND_GIFT,
        {
            "tiers": [
                {"threshold": 10000, "variant_id": 900},
                {"threshold": 20000, "variant_id": 901, "quantity": 2},
            ]
        },
    )
    both = offer_for(p, facts(line(1, 1, 25000), stock={900: 3, 901: 2}))
    assert isinstance(both, Offer)
    assert both.gifts == (Gift(900, 1), Gift(901, 2))
    one_left = offer_for(p, facts(line(1, 1, 25000), stock={900: 0, 901: 2}))
    assert isinstance(one_left, Offer) and one_left.gifts == (Gift(901, 2),)
    none = offer_for(p, facts(line(1, 1, 25000), stock={}))
    assert isinstance(none, Miss) and none.code is MissCode.OUT_OF_STOCK
    highest = promo(
        PromotionKind.SPEND_GIFT,
        {
            "tiers": [
                {"threshold": 10000, "variant_id": 900},
                {"threshold": 20000, "variant_id": 901},
            ],
            "cumulative": False,
        },
    )
    only = offer_for(highest, facts(line(1, 1, 25000), stock={900: 3, 901: 3}))
    assert isinstance(only, Offer) and only.gifts == (Gift(901, 1),)


def _code(p: Promo, **fields: Any) -> CodeOnCart:
    values: dict[str, Any] = {
        "code_id": next(_ids),
        "code": "CODE",
        "promo": p,
        "customer_id": None,
        "max_uses": None,
        "used_count": 0,
        "expires_at": None,
        "amount_off": None,
        "disabled": False,
    }
    values.update(fields)
    return CodeOnCart(**values)


def test_coupon_checks_and_amounts() -> None:
    percent = promo(
        PromotionKind.COUPON,
        {"percent_off_bp": 1000, "max_discount": 3000},
        trigger=Trigger.CODE,
        product_ids=[1001],
    )
    cart = facts(line(1, 1, 50000), line(2, 1, 20000))
    # Only the targeted line (product 1001): 10% of 500.00 = 50.00, capped at 30.00.
    found = coupon_offer(_code(percent), cart)
    assert isinstance(found, Offer) and (found.amount, found.line_shares) == (3000, {1: 3000})
    amount = promo(PromotionKind.COUPON, {"amount_off": 10000}, trigger=Trigger.CODE)
    small = coupon_offer(_code(amount), facts(line(1, 1, 4000)))
    assert isinstance(small, Offer) and small.amount == 4000  # never more than the lines
    override = coupon_offer(_code(amount, amount_off=1500), facts(line(1, 1, 4000)))
    assert isinstance(override, Offer) and override.amount == 1500
    cases = [
        (_code(amount, customer_id=8), MissCode.NOT_ELIGIBLE),
        (_code(amount, disabled=True), MissCode.NOT_ELIGIBLE),
        (_code(amount, max_uses=5, used_count=5), MissCode.LIMIT_REACHED),
        (_code(amount, expires_at=AT - timedelta(seconds=1)), MissCode.EXPIRED),
        (
            _code(
                promo(PromotionKind.COUPON, {"amount_off": 100}, starts_at=AT + timedelta(hours=1))
            ),
            MissCode.NOT_STARTED,
        ),
        (
            _code(promo(PromotionKind.COUPON, {"amount_off": 100}, per_customer_limit=1)),
            MissCode.LIMIT_REACHED,
        ),
    ]
    for code, expected in cases:
        shopper = Shopper(customer_id=7, uses={code.promo.id: (1, 0)} if code.promo else {})  # type: ignore[union-attr]
        missed = coupon_offer(code, facts(line(1, 1, 4000), shopper=shopper))
        assert isinstance(missed, Miss) and missed.code is expected, (code, missed)
    guest = coupon_offer(_code(amount, customer_id=8), facts(line(1, 1, 4000), shopper=Shopper()))
    assert isinstance(guest, Miss) and guest.message == "sign in to use code CODE"


def test_a_line_discounted_by_an_uncombinable_product_promotion_does_not_count() -> None:
    flash = promo(
        PromotionKind.FLASH_SALE, {"percent_off_bp": 1000}, promotion_class=PromotionClass.PRODUCT
    )
    tiers = promo(PromotionKind.SPEND_SAVE, TIERS)
    on_sale = Line(1, 1001, None, 2, 9000, product_promotions=(flash.ref,))
    rest = line(2, 1, 5000)
    found = offer_for(tiers, facts(on_sale, rest))
    # 180.00 on sale does not count: 50.00 is 150.00 short of the first tier.
    assert isinstance(found, Miss) and found.shortfall == 15000
    friendly = promo(PromotionKind.SPEND_SAVE, TIERS, combinable_with=["PRODUCT"])
    mutual = Line(
        1,
        1001,
        None,
        2,
        9000,
        product_promotions=(
            promo(
                PromotionKind.FLASH_SALE, {"percent_off_bp": 1000}, combinable_with=["ORDER"]
            ).ref,
        ),
    )
    counted = offer_for(friendly, facts(mutual, rest))
    assert isinstance(counted, Offer) and counted.amount == 2000


def test_free_shipping_takes_the_cheapest_quote_off_up_to_its_cap() -> None:
    p = promo(PromotionKind.FREE_SHIPPING, {"min_spend": 9900, "max_discount": 1500})
    quotes = (
        ShippingQuote(code="std", carrier="中通", label="标准", amount=1000),
        ShippingQuote(code="sf", carrier="顺丰", label="次日达", amount=2500),
    )
    found = offer_for(p, facts(line(1, 1, 9900), quotes=quotes))
    assert isinstance(found, Offer) and found.amount == 1000 and not found.line_shares
    assert found.promotion.promotion_class is PromotionClass.SHIPPING
    assert [shipping_discount(q, 1500) for q in quotes] == [1000, 1500]
    short = offer_for(p, facts(line(1, 1, 9800), quotes=quotes))
    assert isinstance(short, Miss) and short.message == "spend ¥1.00 more to get free shipping"
    only_sf = promo(PromotionKind.FREE_SHIPPING, {"quote_codes": ["sf"]})
    sf = offer_for(only_sf, facts(line(1, 1, 100), quotes=quotes))
    assert isinstance(sf, Offer) and sf.amount == 2500
