"""``shopgraph demo-data`` with the promotions plugin, as ``make demo`` runs it: one promotion of
each kind, a campaign, coupon codes and an invite code, served over GraphQL afterwards."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import (
    Campaign,
    CouponCode,
    Promotion,
    PromotionKind,
    ReferralCode,
    Trigger,
)
from plugins.promotions.service import demo
from plugins.promotions.service.demo import BATCH_CODES, WELCOME_CODE
from plugins.promotions.service.kinds import parse_rules
from plugins.promotions.service.settings import PromotionsSettings
from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import Customer, ProductVariant, StaffRole, utcnow
from server.plugin import DemoShop
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid, make_product

CAMPAIGN_REPORT = """
query($id: ID!) {
  campaignReport(input: {campaignId: $id}) {
    __typename ... on PromotionReport { orders couponsIssued couponsRedeemed couponRedemptionRate }
  }
}
"""
PRODUCT_PRICE = "query($id: ID!) { product(id: $id) { price { amount } } }"


async def test_make_demo_holds_one_promotion_of_each_kind(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """As ``make demo`` runs it, on the embedded database."""
    path = tmp_path / "demo.db"
    shutil.copyfile(sqlite_template, path)
    database_url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await _check_cli(database_url, session)
    finally:
        await engine.dispose()


async def _check_cli(database_url: str, session: AsyncSession) -> None:
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    args = ["demo-data", "--customers", "20", "--products", "10", "--orders", "4"]
    args += ["--seed", "5", "--as-of", "2025-03-01"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if "promotions:" in line]
    summary = "10 promotions, 1 campaigns, 21 coupon codes, 1 invite codes"
    assert [s.split(" (")[0] for s in steps] == [
        "demo-data: promotions: one of each kind and a campaign",
        "demo-data: promotions: coupon codes and an invite code",
        f"demo-data: promotions: {summary}",
    ]
    assert f"plugin promotions: {summary}" in result.stdout

    promotions = list(await session.scalars(select(Promotion).order_by(Promotion.id)))  # type: ignore[arg-type]
    assert sorted(p.kind for p in promotions) == sorted(
        [*PromotionKind, PromotionKind.COUPON]  # a shared code and a batch
    )
    for p in promotions:
        parse_rules(p.kind, p.rules)  # every rule document is valid as written
    flash = next(p for p in promotions if p.kind is PromotionKind.FLASH_SALE)
    assert flash.unit_limit == 100 and len(flash.product_ids) == 3
    member = next(p for p in promotions if p.kind is PromotionKind.MEMBER_DEAL)
    assert member.membership_tier == "GOLD"
    group = next(p for p in promotions if p.kind is PromotionKind.GROUP_BUY)
    assert group.rules["size"] == 2
    campaign = (await session.scalars(select(Campaign))).one()
    assert campaign.budget_amount and {p.campaign_id for p in promotions} == {None, campaign.id}

    codes = list(await session.scalars(select(CouponCode)))
    welcome = [c for c in codes if c.code == WELCOME_CODE]
    assert len(welcome) == 1 and welcome[0].customer_id is None
    coupon = next(p for p in promotions if p.id == welcome[0].promotion_id)
    assert coupon.trigger is Trigger.CODE and coupon.campaign_id == campaign.id
    batch = [c for c in codes if c.issued_reason == "BATCH"]
    assert len(batch) == BATCH_CODES == len({c.customer_id for c in batch})
    assert all(len(c.code) == 10 for c in batch)
    demo = await session.scalar(select(Customer).where(Customer.email == _login(result.stdout)))  # type: ignore[arg-type]
    assert demo is not None
    invite = (await session.scalars(select(ReferralCode))).one()
    assert invite.customer_id == demo.id

    # A populated shop is left alone, the plugin's tables included.
    again = CliRunner().invoke(cli, [*args, "--if-empty"], env=env)
    assert again.exit_code == 0 and "left as it is" in again.output
    assert await _count(session, "promotions_promotion") == len(promotions)
    assert await _count(session, "promotions_coupon_code") == len(codes)


async def test_the_demo_fills_a_small_catalogue_and_is_served(
    session: AsyncSession, gql: GraphQLClient, settings: Settings
) -> None:
    products = [await make_product(session, price=2000 + 1000 * n) for n in range(8)]
    customers = [await make_customer(session) for _ in range(3)]
    # The demo's history ends now: its flash sale is running.
    as_of = utcnow()
    shop = DemoShop(
        seed=1,
        as_of=as_of,
        product_ids=tuple(p.id or 0 for p in products),
        customer_ids=tuple(c.id or 0 for c in customers),
        demo_customer_id=customers[0].id,
    )
    said: list[str] = []
    counts = await demo.fill(session, shop, random.Random(2), PromotionsSettings(), said.append)
    await session.commit()
    assert said == ["one of each kind and a campaign", "coupon codes and an invite code"]
    assert counts == {"promotions": 10, "campaigns": 1, "coupon codes": 4, "invite codes": 1}
    gift = await session.scalar(
        select(Promotion).where(Promotion.kind == PromotionKind.SPEND_GIFT)  # type: ignore[arg-type]
    )
    # The gift is the cheapest product's variant.
    assert gift is not None
    assert gift.rules["tiers"][0]["variant_id"] == await session.scalar(
        select(ProductVariant.id).where(ProductVariant.product_id == products[0].id)  # type: ignore[arg-type,call-overload]
    )
    # The same seed gives the same codes.
    codes = sorted((await session.scalars(select(CouponCode.code))).all())  # type: ignore[call-overload]
    campaign = (await session.scalars(select(Campaign))).one()

    # The app serves the campaign's report: its shared code was issued on its first day.
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    flash = await session.scalar(
        select(Promotion).where(Promotion.kind == PromotionKind.FLASH_SALE)  # type: ignore[arg-type]
    )
    assert flash is not None
    on_sale = next(p for p in products if p.id == flash.product_ids[0])
    # A signed-in shopper sees the flash sale (it has a per-customer cap, so a guest does
    # not): 20% off (¥20 + ¥10 × n, no rounding at stake).
    shopper = gql.as_(token_for(settings, customers[1]))
    seen = await shopper(PRODUCT_PRICE, {"id": gid("Product", on_sale.id)})
    assert seen["product"]["price"]["amount"] == f"{on_sale.price_amount * 8 // 10 / 100:.2f}"
    data = await admin(CAMPAIGN_REPORT, {"id": gid("Campaign", campaign.id)})
    assert data["campaignReport"] == {
        "__typename": "PromotionReport",
        "orders": 0,
        "couponsIssued": 1,
        "couponsRedeemed": 0,
        "couponRedemptionRate": 0.0,
    }
    assert WELCOME_CODE in codes and len(codes) == 4


async def _count(session: AsyncSession, table: str) -> Any:
    return await session.scalar(text(f"SELECT count(*) FROM {table}"))


def _login(summary: str) -> str:
    line = next(line for line in summary.splitlines() if line.startswith("customer login: "))
    return line.removeprefix("customer login: ").split(" / ")[0]
