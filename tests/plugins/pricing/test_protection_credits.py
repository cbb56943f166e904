"""Price protection credited without a claim (the protection job after a price drop), as
coupons (a plugin answering ``pricing_protection_coupon``), and its KPIs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import ClaimMethod, PriceSource, ProtectionClaim
from plugins.pricing.service import history, protection
from plugins.pricing.service.settings import PricingSettings
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import utcnow
from server.plugin import JobContext, KpiBucket, PluginInfo, hookimpl
from server.plugins import PluginRuntime, load_plugins
from server.services.forecasts import shop_day
from server.services.kpi_registry import registered_kpis
from tests.plugins.pricing.protection_support import claims_and_refunds, cut_price, paid_line
from tests.support.accounts import make_customer
from tests.support.orders import make_product

AUTOMATIC = PricingSettings(protection_automatic=True)
COUPONS = PricingSettings(protection_method=ClaimMethod.COUPON)


async def _drop(session: AsyncSession, product_id: int) -> None:
    """The public price's history row of the cut (as the catalogue's event writes it)."""
    await history.refresh(
        session, AUTOMATIC, product_ids=[product_id], source=PriceSource.CATALOGUE, at=utcnow()
    )
    await session.commit()


async def test_the_protection_job_credits_every_eligible_line_once(
    database_url: str, session: AsyncSession, plugins: PluginRuntime
) -> None:
    product = await make_product(session, price=9000)
    await _drop(session, product.id or 0)  # the product's first row: 90.00
    # The first run starts from the history as it is: earlier drops are past.
    await protection.credit_drops(session, plugins, AUTOMATIC, utcnow())
    await session.commit()

    a, b, c = [await make_customer(session) for _ in range(3)]
    bought = await paid_line(session, a.id or 0, product, quantity=2)
    also = await paid_line(session, b.id or 0, product)
    long_ago = await paid_line(session, c.id or 0, product, placed_at=utcnow() - timedelta(days=30))
    await cut_price(session, product, 7500)
    await _drop(session, product.id or 0)

    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def run() -> list[ProtectionClaim]:
        async with sessions() as own:
            credited = await protection.credit_drops(own, plugins, AUTOMATIC, utcnow())
            await own.commit()
            return credited

    try:
        # Two processes at once: each line is credited once.
        first, second = await asyncio.gather(run(), run())
        assert await run() == []  # nothing new since
    finally:
        await engine.dispose()
    credited = sorted(first + second, key=lambda c: c.order_line_id)
    assert [(c.order_line_id, c.amount, c.automatic) for c in credited] == [
        (bought.id, 3000, True),
        (also.id, 1500, True),
    ]
    assert await claims_and_refunds(session, bought.order_id) == (1, 3000)
    assert await claims_and_refunds(session, long_ago.order_id) == (0, 0)


async def test_drops_are_not_credited_when_automatic_crediting_is_off(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    manual = PricingSettings()
    product = await make_product(session, price=9000)
    customer = await make_customer(session)
    await _drop(session, product.id or 0)
    await protection.credit_drops(session, plugins, manual, utcnow())
    await session.commit()
    line = await paid_line(session, customer.id or 0, product)
    await cut_price(session, product, 8000)
    await _drop(session, product.id or 0)
    assert await protection.credit_drops(session, plugins, manual, utcnow()) == []
    await session.commit()
    assert await claims_and_refunds(session, line.order_id) == (0, 0)


class Coupons:
    """A promotions plugin stand-in: issues a coupon of the claim's amount."""

    PLUGIN_INFO = PluginInfo(name="coupons", version="1.0")

    def __init__(self) -> None:
        self.issued: list[tuple[int, int, str]] = []

    @hookimpl
    def pricing_protection_coupon(self, claim: ProtectionClaim) -> str:
        code = f"PP-{claim.order_line_id}"
        self.issued.append((claim.customer_id, claim.amount, claim.currency))
        return code


async def _claim(
    session: AsyncSession, plugins: PluginRuntime, line_id: int, customer_id: int
) -> ProtectionClaim:
    await mark_write(session)
    try:
        found = await protection.claim(
            session, plugins, COUPONS, order_line_id=line_id, customer_id=customer_id
        )
    except protection.ClaimRefused:
        await session.rollback()
        raise
    await session.commit()
    return found


async def test_coupons_come_from_the_plugin_that_issues_them(
    session: AsyncSession, settings: Settings
) -> None:
    coupons = Coupons()
    # The built-in promotions plugin issues coupons too: left out, nobody else does.
    alone = settings.model_copy(update={"disabled_plugins": "promotions"})
    with_coupons = load_plugins(alone, extra=[coupons])
    without = load_plugins(alone)
    customer = await make_customer(session)
    product = await make_product(session, price=4999)
    line = await paid_line(session, customer.id or 0, product, quantity=3)
    await cut_price(session, product, 3999)
    line_id, cid, order_id = line.id or 0, customer.id or 0, line.order_id

    # Nobody issues coupons: a typed error, and nothing written.
    with pytest.raises(protection.ClaimRefused) as refused:
        await _claim(session, without, line_id, cid)
    assert refused.value.code == "COUPON_UNAVAILABLE"
    assert await claims_and_refunds(session, order_id) == (0, 0)

    found = await _claim(session, with_coupons, line_id, cid)
    assert (found.method, found.reference, found.amount) == (
        ClaimMethod.COUPON,
        f"PP-{line_id}",
        3000,
    )
    assert coupons.issued == [(cid, 3000, "CNY")]
    # A coupon refunds nothing.
    assert await claims_and_refunds(session, order_id) == (1, 0)


async def test_the_kpis_sum_and_count_the_credits(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    kpis = registered_kpis(plugins)
    credits, claims = kpis["pricing.protection_credits"], kpis["pricing.protection_claims"]
    assert (credits.unit.value, claims.unit.value) == ("MONEY", "COUNT")
    today = shop_day(utcnow())
    buckets = [
        KpiBucket(today - timedelta(days=1), today),
        KpiBucket(today, today + timedelta(days=1)),
    ]
    assert await credits.compute(session, buckets) == [0.0, 0.0]
    customer = await make_customer(session)
    product = await make_product(session, price=2000)
    first = await paid_line(session, customer.id or 0, product, quantity=2)
    second = await paid_line(session, customer.id or 0, product)
    await cut_price(session, product, 1750)
    for line in (first, second):
        await mark_write(session)
        await protection.claim(
            session,
            plugins,
            PricingSettings(),
            order_line_id=line.id or 0,
            customer_id=customer.id,
        )
        await session.commit()
    # 250 × 2 + 250 × 1
    assert await credits.compute(session, buckets) == [0.0, 750.0]
    assert await claims.compute(session, buckets) == [0.0, 2.0]
    total = await session.scalar(select(func.count()).select_from(ProtectionClaim))
    assert total == 2


async def test_the_jobs_run_through_the_plugin_api(
    database_url: str, session: AsyncSession, settings: Settings, plugins: PluginRuntime
) -> None:
    from plugins.pricing import jobs as pricing_jobs
    from plugins.pricing.models import JobMark

    found = {job.name: job for job in pricing_jobs(AUTOMATIC)}
    assert {"history", "protection"} <= set(found)
    assert found["history"].interval_seconds == AUTOMATIC.history_interval_minutes * 60
    engine = create_engine(database_url)
    try:
        context = JobContext(
            sessions=session_factory(engine), settings=settings, plugins=plugins, config=AUTOMATIC
        )
        for name in ("history", "protection"):
            await found[name].run(context)
    finally:
        await engine.dispose()
    marks = {m.name for m in await session.scalars(select(JobMark))}
    assert marks == {"history", "protection"}
