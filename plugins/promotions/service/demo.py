"""The demo shop's promotions: one of each kind on the demo catalogue, a campaign with a budget
holding some of them, a shared coupon code (``WELCOME10``) and a batch of personal codes, and
an invite code for the demo customer — so that GraphiQL and the dashboard show the plugin at
work right after ``make demo``.

Rows are written through the plugin's models, each promotion's rules checked by
``service.kinds`` as an admin's would be. Every choice comes from ``rng`` and every date from
``shop.as_of``: the same seed gives the same promotions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    ReferralCode,
    Trigger,
)
from plugins.promotions.service.kinds import class_of, parse_rules
from server.models import Product, ProductVariant
from server.plugin import DemoShop

ACTOR = "demo"
WELCOME_CODE = "WELCOME10"
# Personal codes of the batch coupon, one for each of the first demo customers.
BATCH_CODES = 20
# Generated codes read aloud and typed by hand: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
FLASH_SALE_PRODUCTS = 3
FLASH_SALE_UNITS = 100


def _code(rng: random.Random, length: int, prefix: str = "") -> str:
    return prefix + "".join(rng.choice(CODE_ALPHABET) for _ in range(length - len(prefix)))


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    if not shop.product_ids:
        return {}
    progress("one of each kind and a campaign")
    products = list(
        await session.scalars(
            select(Product)
            .where(col(Product.id).in_(shop.product_ids), col(Product.is_active))
            .order_by(col(Product.id))
        )
    )
    if len(products) < 8:
        return {}
    variants = await _first_variants(session, [p.id for p in products if p.id is not None])
    products = [p for p in products if p.id in variants]
    by_category = Counter(p.category_id for p in products if p.category_id is not None)
    categories = [c for c, _ in by_category.most_common(2)]
    now = shop.as_of
    picks = rng.sample(products, 8)
    # The gift: the cheapest product of the catalogue.
    gift = min(products, key=lambda p: (p.price_amount, p.id or 0))

    campaign = Campaign(
        name="双11 预热 / Singles' Day warm-up",
        budget_amount=500_000,  # ¥5,000 of discounts
        budget_uses=500,
        starts_at=now - timedelta(days=3),
        ends_at=now + timedelta(days=30),
        created_by=ACTOR,
    )
    session.add(campaign)
    await session.flush()
    running = {"starts_at": now - timedelta(days=3), "ends_at": now + timedelta(days=30)}
    bundle_items = picks[5:7]
    bundle_list_price = sum(p.price_amount for p in bundle_items)
    specs: list[dict[str, Any]] = [
        {
            "name": "限时特惠 8 折 / Flash sale 20% off",
            "kind": PromotionKind.FLASH_SALE,
            "rules": {"percent_off_bp": 2000},
            "product_ids": [p.id for p in picks[:FLASH_SALE_PRODUCTS]],
            "unit_limit": FLASH_SALE_UNITS,
            "per_customer_unit_limit": 2,
            "starts_at": now - timedelta(hours=2),
            "ends_at": now + timedelta(days=2),
            "priority": 10,
            "combinable_with": [PromotionClass.ORDER, PromotionClass.SHIPPING],
            "campaign_id": campaign.id,
        },
        {
            "name": "满 300 减 40，满 500 减 80 / ¥40 off ¥300, ¥80 off ¥500",
            "kind": PromotionKind.SPEND_SAVE,
            "rules": {
                "tiers": [
                    {"threshold": 30000, "amount_off": 4000},
                    {"threshold": 50000, "amount_off": 8000},
                ]
            },
            "combinable_with": [PromotionClass.PRODUCT, PromotionClass.SHIPPING],
            "exclusive_group": "order-discount",
            "campaign_id": campaign.id,
            **running,
        },
        {
            "name": "满 199 赠好礼 / a gift from ¥199",
            "kind": PromotionKind.SPEND_GIFT,
            "rules": {"tiers": [{"threshold": 19900, "variant_id": variants[gift.id or 0]}]},
            "combinable_with": [PromotionClass.PRODUCT, PromotionClass.SHIPPING],
            "joint_group": "gifts",
            **running,
        },
        {
            "name": "买二送一 / buy 2 get 1 free",
            "kind": PromotionKind.BUY_X_GET_Y,
            "rules": {"buy_quantity": 2, "get_quantity": 1, "max_applications": 2},
            "category_ids": categories[-1:],
            "combinable_with": [PromotionClass.SHIPPING],
            "exclusive_group": "order-discount",
            **running,
        },
        {
            "name": "新人 9 折券 / WELCOME10: 10% off",
            "kind": PromotionKind.COUPON,
            "trigger": Trigger.CODE,
            "rules": {"percent_off_bp": 1000, "min_spend": 10000, "max_discount": 5000},
            "per_customer_limit": 1,
            "combinable_with": [PromotionClass.PRODUCT, PromotionClass.SHIPPING],
            "joint_group": "gifts",
            "campaign_id": campaign.id,
            **running,
        },
        {
            "name": "满 100 减 15 券 / ¥15 off ¥100",
            "kind": PromotionKind.COUPON,
            "trigger": Trigger.CODE,
            "rules": {"amount_off": 1500, "min_spend": 10000},
            "per_customer_limit": 1,
            "combinable_with": [PromotionClass.PRODUCT, PromotionClass.SHIPPING],
            **running,
        },
        {
            "name": "金卡会员专享 88 折 / Gold members 12% off",
            "kind": PromotionKind.MEMBER_DEAL,
            "rules": {"percent_off_bp": 1200},
            "membership_tier": "GOLD",
            "category_ids": categories[:1],
            "combinable_with": [PromotionClass.ORDER, PromotionClass.SHIPPING],
            **running,
        },
        {
            "name": "超值套餐 / bundle",
            "kind": PromotionKind.BUNDLE,
            "rules": {
                "items": [{"product_id": p.id, "quantity": 1} for p in bundle_items],
                # 15% off the set, rounded down to a whole yuan.
                "price": bundle_list_price * 85 // 100 // 100 * 100,
                "max_applications": 3,
            },
            "combinable_with": [PromotionClass.SHIPPING],
            **running,
        },
        {
            "name": "两人拼团 85 折 / team up with a friend: 15% off",
            "kind": PromotionKind.GROUP_BUY,
            "rules": {"percent_off_bp": 1500, "size": 2, "hours": 24},
            "product_ids": [picks[7].id],
            "combinable_with": [PromotionClass.SHIPPING],
            **running,
        },
        {
            "name": "满 99 包邮 / free shipping from ¥99",
            "kind": PromotionKind.FREE_SHIPPING,
            "rules": {"min_spend": 9900},
            "combinable_with": [PromotionClass.PRODUCT, PromotionClass.ORDER],
            **running,
        },
    ]
    promotions = [_promotion(spec) for spec in specs]
    session.add_all(promotions)
    await session.flush()
    welcome, batch = promotions[4], promotions[5]

    progress("coupon codes and an invite code")
    codes = [
        CouponCode(
            promotion_id=welcome.id or 0,
            code=WELCOME_CODE,
            max_uses=1000,
            issued_reason="SHARED",
            issued_at=now - timedelta(days=3),
        )
    ]
    taken = {WELCOME_CODE}
    for customer_id in shop.customer_ids[:BATCH_CODES]:
        code = _code(rng, config.code_length)
        while code in taken:
            code = _code(rng, config.code_length)
        taken.add(code)
        codes.append(
            CouponCode(
                promotion_id=batch.id or 0,
                code=code,
                customer_id=customer_id,
                max_uses=1,
                issued_reason="BATCH",
                issued_at=now - timedelta(days=2),
            )
        )
    session.add_all(codes)
    referrals = 0
    if shop.demo_customer_id is not None:
        session.add(
            ReferralCode(
                customer_id=shop.demo_customer_id,
                code=_code(rng, config.code_length, prefix="INV"),
                created_at=now - timedelta(days=3),
            )
        )
        referrals = 1
    await session.flush()
    return {
        "promotions": len(promotions),
        "campaigns": 1,
        "coupon codes": len(codes),
        "invite codes": referrals,
    }


def _promotion(spec: dict[str, Any]) -> Promotion:
    """A promotion row from ``spec``, its rules checked as an admin's are."""
    kind: PromotionKind = spec["kind"]
    rules = parse_rules(kind, spec["rules"])
    return Promotion(
        **{**spec, "combinable_with": [c.value for c in spec.get("combinable_with", [])]},
        label=spec["name"].split(" / ")[0],
        promotion_class=class_of(kind, rules),
        created_by=ACTOR,
    )


async def _first_variants(session: AsyncSession, product_ids: Sequence[int]) -> dict[int, int]:
    """Product id → its first active variant's id (one statement)."""
    rows = await session.execute(
        select(col(ProductVariant.product_id), col(ProductVariant.id))
        .where(col(ProductVariant.product_id).in_(product_ids), col(ProductVariant.is_active))
        .order_by(
            col(ProductVariant.product_id), col(ProductVariant.position), col(ProductVariant.id)
        )
    )
    out: dict[int, int] = {}
    for product_id, variant_id in rows.all():
        if variant_id is not None:
            out.setdefault(product_id, variant_id)
    return out
