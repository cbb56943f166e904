"""The demo shop's rules, limits and the price history they start: gold and platinum prices
on a category, a segment price, a quantity break, a sale running now and one starting later,
a minimum margin, a MAP on a brand's product and a floor — so that ``priceBreakdown`` shows
every stage and its ``notApplied`` candidates in GraphiQL."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import PriceSource, PricingLimit, PricingRule, RuleKind
from plugins.pricing.service import history
from server.models import CustomerSegment, Product
from server.plugin import DemoShop

ACTOR = "demo"


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    if not shop.product_ids:
        return {}
    progress("pricing: rules and limits")
    products = list(
        await session.scalars(
            select(Product)
            .where(col(Product.id).in_(shop.product_ids), col(Product.is_active))
            .order_by(col(Product.id))
        )
    )
    if len(products) < 8:
        return {}
    by_category = Counter(p.category_id for p in products if p.category_id is not None)
    # The busiest category gets the member prices; the next one the segment price.
    categories = [c for c, _ in by_category.most_common(2)]
    now = shop.as_of
    picks = rng.sample(products, 6)
    rules = [
        PricingRule(
            name="金卡会员价 / gold member price",
            category_id=categories[0],
            membership_tier="GOLD",
            percent_off_bp=500,
        ),
        PricingRule(
            name="白金会员价 / platinum member price",
            category_id=categories[0],
            membership_tier="PLATINUM",
            percent_off_bp=1000,
        ),
        PricingRule(
            name="重要价值客户价 / loyal customers' price",
            category_id=categories[-1],
            segment=CustomerSegment.IMPORTANT_VALUE.value,
            percent_off_bp=800,
        ),
        PricingRule(
            name="满 3 件 9 折 / 10% off from 3",
            kind=RuleKind.QUANTITY,
            product_id=picks[0].id,
            min_quantity=3,
            percent_off_bp=1000,
        ),
        PricingRule(
            name="周末特价 / weekend sale",
            kind=RuleKind.SCHEDULED,
            product_id=picks[1].id,
            percent_off_bp=1500,
            starts_at=now - timedelta(days=2),
            ends_at=now + timedelta(days=3),
        ),
        PricingRule(
            name="双十二预售 / 12.12 sale",
            kind=RuleKind.SCHEDULED,
            product_id=picks[2].id,
            percent_off_bp=2000,
            starts_at=now + timedelta(days=10),
            ends_at=now + timedelta(days=13),
        ),
        PricingRule(
            name="会员日 / members' day",
            product_id=picks[1].id,
            membership_tier="GOLD",
            amount=max(picks[1].price_amount * 88 // 100, 1),
        ),
    ]
    for rule in rules:
        rule.created_by = ACTOR
        session.add(rule)
    branded = next((p for p in products if p.brand and p not in picks[:3]), picks[3])
    limits = [
        # A floor under the weekend sale: it binds for the gold member who also gets 12% off.
        PricingLimit(product_id=picks[1].id, floor_amount=picks[1].price_amount * 80 // 100),
        PricingLimit(category_id=categories[0], min_margin_bp=1500),
        PricingLimit(product_id=branded.id, map_amount=branded.price_amount * 95 // 100),
    ]
    for limit in limits:
        limit.updated_by = ACTOR
        session.add(limit)
    await session.flush()
    written = await history.refresh(
        session,
        config,
        product_ids=[p.id for p in picks[:3] if p.id is not None],
        source=PriceSource.RULE,
        at=now,
        actor=ACTOR,
        reason="the demo shop's rules",
    )
    return {
        "pricing rules": len(rules),
        "pricing limits": len(limits),
        "price history rows (rules)": len(written),
    }
