"""Each kind on hand-computed carts, quoted through the core's checkout service (the
engine's SQL on both backends, no HTTP)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import PromotionClass, PromotionKind
from server.config import Settings
from server.plugin import Adjustment
from server.plugins import PluginRuntime
from tests.plugins.promotions.engine_support import (
    cart,
    coupon,
    promo,
    promotions_only,
    quote,
    variant_of,
)
from tests.support.orders import make_product


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
