"""Compensation coupons, on SQLite and PostgreSQL: a personal code worth the amount, of the
compensation promotion, once per source (also when two processes ask at once); asked through
the hooks the complaints and logistics plugins declare (a stand-in declares them here), and
through the pricing plugin's price protection over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import CouponCode, Promotion, PromotionKind, Trigger
from plugins.promotions.service.coupons import compensation_coupon
from plugins.promotions.service.settings import PromotionsSettings
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import utcnow
from server.plugin import PluginInfo, hookimpl, hookspec
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.pricing.protection_support import cut_price, paid_line
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid, make_product

CONFIG = PromotionsSettings()


@pytest.fixture
def plugins(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> PluginRuntime:
    # Price protection credited as coupons: the promotions plugin issues them.
    monkeypatch.setenv("SHOPGRAPH_PRICING_PROTECTION_METHOD", "COUPON")
    return load_plugins(settings)


async def _coupon(session: AsyncSession, code: str) -> CouponCode:
    row = await session.scalar(select(CouponCode).where(col(CouponCode.code) == code))
    assert row is not None
    return row


async def test_a_compensation_coupon_is_issued_once_per_source(session: AsyncSession) -> None:
    customer = await make_customer(session)
    cid = customer.id or 0

    async def issue(ref: str, amount: int = 1500, customer_id: int | None = cid) -> str | None:
        await mark_write(session)
        code = await compensation_coupon(
            session,
            CONFIG,
            ref=ref,
            customer_id=customer_id,
            amount=amount,
            currency="CNY",
            reason="test",
        )
        await session.commit()
        return code

    first = await issue("complaint:1")
    assert first is not None
    assert await issue("complaint:1", amount=9999) == first  # the same code, not a new value
    other = await issue("complaint:2", amount=500)
    assert other not in (None, first)
    assert await issue("complaint:3", amount=0) is None
    assert await issue("complaint:4", customer_id=None) is None

    row = await _coupon(session, first)
    assert (row.customer_id, row.amount_off, row.max_uses, row.used_count) == (cid, 1500, 1, 0)
    assert (row.issued_reason, row.source_ref) == ("COMPENSATION", "complaint:1")
    assert row.expires_at is not None
    left = row.expires_at - utcnow()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    promotion = await session.get(Promotion, row.promotion_id)
    assert promotion is not None
    assert (promotion.name, promotion.kind, promotion.trigger) == (
        "Compensation",
        PromotionKind.COUPON,
        Trigger.CODE,
    )
    assert sorted(promotion.combinable_with) == ["PRODUCT", "SHIPPING"]
    # Every compensation coupon is a code of that one promotion.
    assert (await _coupon(session, other)).promotion_id == promotion.id
    assert (
        await session.scalar(
            select(func.count()).where(col(Promotion.created_by) == "system:compensation")
        )
        == 1
    )
    assert (
        await session.scalar(select(func.count()).where(col(CouponCode.source_ref).is_not(None)))
        == 2
    )


async def test_a_configured_compensation_promotion_is_used(session: AsyncSession) -> None:
    customer = await make_customer(session)
    own = Promotion(
        name="客服补偿", kind=PromotionKind.COUPON, trigger=Trigger.CODE, rules={"amount_off": 1}
    )
    session.add(own)
    await session.commit()
    config = PromotionsSettings(compensation_promotion_id=own.id, compensation_valid_days=7)
    await mark_write(session)
    code = await compensation_coupon(
        session, config, ref="x:1", customer_id=customer.id, amount=800, currency="CNY", reason=""
    )
    await session.commit()
    assert code is not None
    row = await _coupon(session, code)
    assert (row.promotion_id, row.amount_off) == (own.id, 800)
    assert row.expires_at is not None and row.expires_at - utcnow() <= timedelta(days=7)


async def test_two_processes_asking_at_once_get_the_same_code(
    database_url: str, session: AsyncSession
) -> None:
    customer = await make_customer(session)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def ask(ref: str) -> str | None:
        async with sessions() as own:
            await mark_write(own)
            code = await compensation_coupon(
                own,
                CONFIG,
                ref=ref,
                customer_id=customer.id,
                amount=1000,
                currency="CNY",
                reason="late delivery",
            )
            await own.commit()
            return code

    try:
        await ask("shipment-delay:0")  # the compensation promotion exists from here on
        codes = await asyncio.gather(*(ask("shipment-delay:1") for _ in range(4)))
    finally:
        await engine.dispose()
    assert len(set(codes)) == 1 and codes[0] is not None
    assert (
        await session.scalar(
            select(func.count()).where(col(CouponCode.source_ref) == "shipment-delay:1")
        )
        == 1
    )


class _Specs:
    """The compensation hook as the complaints plugin declares it (logistics, built in, declares
    ``shipment_delay_compensation``)."""

    @hookspec
    def complaint_resolved(  # type: ignore[empty-body]
        self,
        session: AsyncSession,
        complaint_id: int,
        customer_id: int | None,
        compensation: int,
        currency: str,
        resolution: str,
        config: object,
    ) -> str | None:
        """A complaint was resolved with ``compensation`` (minor units) for the customer."""


class ServicePlugins:
    """A stand-in for the complaints plugin, which declares ``complaint_resolved``."""

    PLUGIN_INFO = PluginInfo(name="service-stand-in", version="1.0")
    HOOKSPECS = _Specs

    @hookimpl
    def permissions(self) -> list[str]:
        return []


async def test_the_promotions_plugin_answers_the_compensation_hooks_once_per_source(
    session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    runtime = load_plugins(settings, extra=[ServicePlugins()])

    async def resolved(complaint_id: int, amount: int) -> list[tuple[str, object]]:
        await mark_write(session)
        answers = await runtime.call(
            "complaint_resolved",
            session=session,
            complaint_id=complaint_id,
            customer_id=customer.id,
            compensation=amount,
            currency="CNY",
            resolution="REFUND",
        )
        await session.commit()
        return answers

    async def late(shipment_id: int) -> list[tuple[str, object]]:
        await mark_write(session)
        answers = await runtime.call(
            "shipment_delay_compensation",
            session=session,
            shipment_id=shipment_id,
            order_id=99,
            customer_id=customer.id,
            amount=1000,
            currency="CNY",
        )
        await session.commit()
        return answers

    first = await resolved(12, 3000)
    assert [name for name, _ in first] == ["promotions"]
    assert await resolved(12, 3000) == first
    assert await resolved(13, 0) == []  # nothing to compensate: no code
    shipped = await late(5)
    assert [name for name, _ in shipped] == ["promotions"]
    assert await late(5) == shipped
    complaint_code = await _coupon(session, str(first[0][1]))
    late_code = await _coupon(session, str(shipped[0][1]))
    assert (complaint_code.source_ref, complaint_code.amount_off) == ("complaint:12", 3000)
    assert (late_code.source_ref, late_code.amount_off) == ("shipment-delay:5", 1000)
    assert complaint_code.customer_id == late_code.customer_id == customer.id


async def test_price_protection_is_credited_as_a_coupon_of_this_plugin(
    session: AsyncSession, settings: Settings, gql: GraphQLClient
) -> None:
    customer = await make_customer(session)
    product = await make_product(session, price=10000)
    line = await paid_line(session, customer.id or 0, product, quantity=2)
    await cut_price(session, product, 8800)
    claim = """mutation($id: ID!) { claimPriceProtection(input: {orderLineId: $id}) {
      __typename ... on ClaimPriceProtectionSuccess { claim { method reference
        amount { amount } } } ... on Error { code message } } }"""
    buyer = gql.as_(token_for(settings, customer))
    answer = (await buyer(claim, {"id": gid("OrderLine", line.id)}))["claimPriceProtection"]
    assert answer["__typename"] == "ClaimPriceProtectionSuccess", answer
    assert (answer["claim"]["method"], answer["claim"]["amount"]["amount"]) == ("COUPON", "24.00")
    code = answer["claim"]["reference"]
    row = await _coupon(session, code)
    # (100.00 − 88.00) × 2 = 24.00, as a single-use code of the customer's.
    assert (row.customer_id, row.amount_off, row.issued_reason) == (customer.id, 2400, "PROTECTION")
    assert row.source_ref is not None and row.source_ref.startswith("price-protection:")
    mine = await buyer(
        "{ myCoupons(first: 5) { edges { node { code status amountOff { amount } } } } }"
    )
    assert mine["myCoupons"]["edges"] == [
        {"node": {"code": code, "status": "USABLE", "amountOff": {"amount": "24.00"}}}
    ]
