"""The price pipeline on hand-computed prices (service level: the rules' SQL on both
backends, no HTTP): every stage, its order, the ties, rounding, windows and the statements."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import DynamicPrice, PricingRule, RuleKind
from plugins.pricing.service import rules
from plugins.pricing.service.settings import PricingSettings
from server.models import (
    Audience,
    AudienceMember,
    Customer,
    CustomerRfm,
    CustomerSegment,
    MembershipTier,
    Product,
    ProductVariant,
)
from server.plugin import Adjustment, NotApplied, PriceItem
from tests.plugins.pricing.rules_support import rule
from tests.support.accounts import make_customer
from tests.support.orders import make_product

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CONFIG = PricingSettings()


async def variant_of(session: AsyncSession, product: Product) -> ProductVariant:
    found = await session.scalar(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    )
    assert found is not None
    return found


def listing(product: Product, quantity: int = 1) -> PriceItem:
    return PriceItem(product=product, quantity=quantity, base=product.price_amount)


async def price(
    session: AsyncSession,
    items: dict[int, PriceItem],
    customer: Customer | None = None,
    at: datetime = NOW,
) -> dict[int, tuple[int, list[Adjustment | NotApplied]]]:
    answer = await rules.list_prices(session, items, customer, at, CONFIG)
    return {
        key: (
            item.base + sum(s.amount for s in answer.get(key, ()) if isinstance(s, Adjustment)),
            list(answer.get(key, ())),
        )
        for key, item in items.items()
    }


def applied(steps: list[Adjustment | NotApplied]) -> list[tuple[str, int]]:
    return [(s.rule, s.amount) for s in steps if isinstance(s, Adjustment)]


def left_out(steps: list[Adjustment | NotApplied]) -> list[str]:
    return [s.reason for s in steps if isinstance(s, NotApplied)]


async def test_every_stage_in_order_on_the_running_price(session: AsyncSession) -> None:
    product = await make_product(session, price=20000)
    assert product.id is not None
    session.add(DynamicPrice(product_id=product.id, amount=21000))  # dynamic raises: allowed
    await session.commit()
    everyone = await rule(session, product_id=product.id, percent_off_bp=1000, name="list")
    gold = await rule(
        session, category_id=product.category_id, membership_tier="GOLD", amount=17000
    )
    bulk = await rule(
        session,
        kind=RuleKind.QUANTITY,
        product_id=product.id,
        min_quantity=3,
        percent_off_bp=500,
    )
    sale = await rule(
        session,
        kind=RuleKind.SCHEDULED,
        product_id=product.id,
        percent_off_bp=1000,
        starts_at=datetime(2026, 5, 1, tzinfo=UTC),
        ends_at=datetime(2026, 7, 1, tzinfo=UTC),
    )
    customer = await make_customer(session, membership_tier=MembershipTier.GOLD)
    key = product.id
    # Anonymous, 1 unit: 210.00 dynamic; list 10% off -> 189.00; quantity not reached;
    # sale 10% off 189.00 = 18.90 -> 170.10.
    final, steps = (await price(session, {key: listing(product)}))[key]
    assert applied(steps) == [
        ("dynamic", 1000),
        (f"rule-{everyone.id}", -2100),
        (f"rule-{sale.id}", -1890),
    ]
    assert final == 17010
    assert left_out(steps) == ["quantity break from 3 units not reached (1)"]
    # Gold, 3 units: dynamic 210.00; group: gold 170.00 beats list 189.00; bulk 5% of 170.00
    # = 8.50 -> 161.50; sale 10% of 161.50 = 16.15 -> 145.35.
    final, steps = (await price(session, {key: listing(product, 3)}, customer))[key]
    assert applied(steps) == [
        ("dynamic", 1000),
        (f"rule-{gold.id}", -4000),
        (f"rule-{bulk.id}", -850),
        (f"rule-{sale.id}", -1615),
    ]
    assert final == 14535
    assert left_out(steps) == ["list price 189.00 not better than gold member price 170.00"]


async def _a_customer_in_several_groups_gets_the_lowest_then_the_most_specific(
    session: AsyncSession,
) -> None:
    product = await make_product(session, price=10000)
    assert product.id is not None
    customer = await make_customer(session, membership_tier=MembershipTier.PLATINUM, tags=["vip"])
    audience = Audience(key="big-spenders", name="大客户")
    session.add(audience)
    await session.flush()
    assert audience.id is not None and customer.id is not None
    session.add(AudienceMember(audience_id=audience.id, customer_id=customer.id, since=NOW))
    session.add(
        CustomerRfm(
            customer_id=customer.id,
            recency_days=3,
            frequency=5,
            monetary=100000,
            last_purchase_at=NOW,
            r_score=5,
            f_score=5,
            m_score=5,
            segment=CustomerSegment.IMPORTANT_VALUE,
            computed_at=NOW,
        )
    )
    await session.commit()
    tier = await rule(
        session, category_id=product.category_id, membership_tier="PLATINUM", amount=8000
    )
    segment = await rule(session, product_id=product.id, segment="IMPORTANT_VALUE", amount=8500)
    tag = await rule(session, product_id=product.id, tag="vip", amount=8000)
    crowd = await rule(session, product_id=product.id, audience_id=audience.id, percent_off_bp=2000)
    other_tier = await rule(session, product_id=product.id, membership_tier="GOLD", amount=5000)
    final, steps = (await price(session, {product.id: listing(product)}, customer))[product.id]
    # 80.00 three ways (tier on the category, tag and audience 20% on the product): the product
    # target beats the category; between the product's two, the lower id (the tag's).
    assert final == 8000
    assert applied(steps) == [(f"rule-{tag.id}", -2000)]
    assert sorted(left_out(steps)) == sorted(
        [
            "platinum member price 80.00 not better than tag price 80.00",
            "segment price 85.00 not better than tag price 80.00",
            "audience price 80.00 not better than tag price 80.00",
        ]
    )
    # The gold rule is not this customer's: not even a candidate.
    assert f"rule-{other_tier.id}" not in {s.rule for s in steps}
    # Anonymous: none of them.
    assert (await price(session, {product.id: listing(product)}))[product.id] == (10000, [])
    del segment, crowd, tier


async def _a_rule_never_raises_and_variant_rules_skip_the_listing(
    session: AsyncSession,
) -> None:
    product = await make_product(session, price=10000)
    variant = await variant_of(session, product)
    assert product.id is not None and variant.id is not None
    higher = await rule(session, product_id=product.id, amount=12000, name="贵")
    on_sku = await rule(session, variant_id=variant.id, amount=9000, name="SKU 价")
    final, steps = (await price(session, {product.id: listing(product)}))[product.id]
    assert final == 10000
    assert steps == [
        NotApplied(
            f"rule-{higher.id}", "贵", 2000, "list price 120.00 not below the current price 100.00"
        )
    ]
    line = PriceItem(product=product, quantity=1, base=variant.price_amount, variant=variant)
    final, steps = (await price(session, {variant.id: line}))[variant.id]
    assert final == 9000 and applied(steps) == [(f"rule-{on_sku.id}", -1000)]


async def _percent_off_rounds_the_discount_half_up(session: AsyncSession) -> None:
    # 12.35 less 10%: 1.235 off rounds to 1.24 -> 11.11; 12.25 less 10%: 1.225 -> 1.23 -> 11.02;
    # 12.34 less 10%: 1.234 -> 1.23 -> 11.11.
    prices = {}
    for base in (1235, 1225, 1234):
        product = await make_product(session, price=base)
        assert product.id is not None
        await rule(session, product_id=product.id, percent_off_bp=1000)
        prices[base] = (await price(session, {product.id: listing(product)}))[product.id][0]
    assert prices == {1235: 1111, 1225: 1102, 1234: 1111}
    assert rules.percent_of(1, 5000) == 1 and rules.percent_of(1, 4999) == 0


async def _scheduled_window_starts_and_ends(session: AsyncSession) -> None:
    product = await make_product(session, price=10000)
    assert product.id is not None
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 13, tzinfo=UTC)
    await rule(
        session,
        kind=RuleKind.SCHEDULED,
        product_id=product.id,
        amount=6600,
        starts_at=start,
        ends_at=end,
    )
    item = {product.id: listing(product)}
    before = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert (await price(session, item, at=before))[product.id][0] == 10000
    assert (await price(session, item, at=start))[product.id][0] == 6600  # from starts_at on
    assert (await price(session, item, at=end))[product.id][0] == 10000  # ends_at excluded


async def _inactive_rules_and_public_prices(session: AsyncSession) -> None:
    product = await make_product(session, price=10000)
    assert product.id is not None
    off = await rule(session, product_id=product.id, amount=5000, active=False)
    await rule(session, product_id=product.id, amount=9000)
    await rule(session, product_id=product.id, membership_tier="GOLD", amount=7000)
    public = await rules.public_prices(session, {product.id: listing(product)}, NOW, CONFIG)
    assert public == {product.id: 9000}
    assert off.id is not None


async def test_a_fixed_number_of_statements(session: AsyncSession) -> None:
    products = [await make_product(session, price=10000 + n) for n in range(6)]
    customer = await make_customer(session, membership_tier=MembershipTier.GOLD)
    counted: list[str] = []

    def count(*args: object) -> None:
        if not str(args[2]).startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            counted.append(str(args[2]))

    engine = session.bind.sync_engine  # type: ignore[union-attr]

    async def statements(items: dict[int, PriceItem], who: Customer | None) -> int:
        counted.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            await rules.list_prices(session, items, who, NOW, CONFIG)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(counted)

    small = {p.id: listing(p) for p in products[:2] if p.id}
    large = {p.id: listing(p) for p in products if p.id}
    # No rules at all: one cheap statement.
    assert await statements(large, customer) == 1
    audience = Audience(key="a1", name="a1")
    session.add(audience)
    await session.commit()
    for p in products:
        await rule(session, product_id=p.id, segment="IMPORTANT_VALUE", amount=9000)
        await rule(session, category_id=p.category_id, audience_id=audience.id, amount=9500)
        await rule(session, product_id=p.id, membership_tier="GOLD", percent_off_bp=500)
    # Rules, segment, audiences: three, whatever the batch's size.
    assert await statements(small, customer) == await statements(large, customer) == 3
    assert await statements(large, None) == 1
    assert len(list(await session.scalars(select(PricingRule)))) == 18


async def test_groups_raises_variants_rounding_windows_and_public_prices(
    session: AsyncSession,
) -> None:
    # One database for these (each arranges products of its own): a database per test costs
    # more than the checks.
    await _a_customer_in_several_groups_gets_the_lowest_then_the_most_specific(session)
    await _a_rule_never_raises_and_variant_rules_skip_the_listing(session)
    await _percent_off_rounds_the_discount_half_up(session)
    await _scheduled_window_starts_and_ends(session)
    await _inactive_rules_and_public_prices(session)
