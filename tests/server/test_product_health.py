"""Product health on a shop counted by hand (tests/support/product_health.py has its table), on
SQLite and PostgreSQL: the sell rate, new products' sell-through, slow movers, stock-outs, the
two KPIs the core offers through the ``kpis`` hook, and the periods of shop days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.plugin import KpiBucket, KpiUnit
from server.plugins import load_plugins
from server.services import product_health as service
from server.services.errors import ValidationFailed
from server.services.kpi_registry import registered_kpis
from tests.support.product_health import PERIOD, seed_health_shop

NOW = datetime(2026, 11, 30, 6, tzinfo=UTC)


def _period() -> service.ShopPeriod:
    return service.shop_period(*PERIOD, now=NOW)


async def test_the_figures_match_the_hand_count(session: AsyncSession) -> None:
    seeded = await seed_health_shop(session)
    food, digital = seeded.categories["food"], seeded.categories["digital"]
    health = await service.product_health(session, _period())

    # SKUs on sale: food RICE-5KG, RICE-10KG, CHIPS, TEA, NEWTEA (3 sold); digital PHONE,
    # LASTMONTH (1 sold); none NEWBAG, NEWCUP (2 sold). Not RICE-1KG (inactive), OLD (its
    # product inactive) nor EARBUDS (created after the period).
    rate = health.sell_rate
    assert (rate.skus, rate.selling_skus, rate.rate) == (9, 6, 6 / 9)
    assert [(c.category_id, c.name, c.skus, c.selling_skus, c.rate) for c in rate.categories] == [
        (digital, "数码", 2, 1, 0.5),
        (food, "食品", 5, 3, 0.6),
        (None, None, 2, 2, 1.0),
    ]
    assert rate.category_count == 3

    # New: created from May 9 (30 days before June 8), before June 8: NEWCUP (May 9, 00:00),
    # NEWBAG, NEWTEA; not LASTMONTH (May 8, 23:59:59).
    new = health.new_products
    assert new.created_from == date(2026, 5, 9)
    assert (new.products, new.units_sold, new.on_hand, new.sell_through) == (3, 6, 10, 6 / 16)
    assert [(p.sku, p.units_sold, p.on_hand, p.sell_through) for p in new.items] == [
        ("NEWBAG", 3, 9, 3 / 12),
        ("NEWCUP", 3, 1, 3 / 4),
        ("NEWTEA", 0, 0, None),
    ]

    # Days of cover = on hand / (sold / 7 days): never sold first (most on hand first).
    slow = health.slow_movers
    assert slow.count == 7
    assert [
        (v.sku, v.units_sold, v.on_hand, v.days_of_cover, v.stock_value) for v in slow.items
    ] == [
        ("TEA", 0, 7, None, None),  # the inactive warehouse's 100 do not count
        ("LASTMONTH", 0, 3, None, None),
        ("CHIPS", 1, 50, pytest.approx(350.0), 50 * 500),
        ("PHONE", 1, 5, pytest.approx(35.0), 5 * 100000),
        ("NEWBAG", 3, 9, pytest.approx(21.0), None),
        ("RICE-5KG", 4, 10, pytest.approx(17.5), 10 * 3000),
        ("NEWCUP", 3, 1, pytest.approx(7 / 3), None),
    ]
    assert slow.items[2].daily_units == pytest.approx(1 / 7)

    # Sold in the period, nothing available now (PHONE: 5 on hand, all reserved).
    out = health.stock_outs
    assert out.count == 2
    assert [(v.sku, v.units_sold, v.on_hand, v.available) for v in out.items] == [
        ("RICE-10KG", 2, 0, 0),
        ("PHONE", 1, 5, 0),
    ]
    assert out.items[0].last_sold_at == seeded.extra["rice_10kg_sold_at"]

    # The lists are bounded; the counts are not.
    short = await service.product_health(session, _period(), limit=1)
    assert [c.category_id for c in short.sell_rate.categories] == [digital]
    assert short.sell_rate.category_count == 3
    assert [v.sku for v in short.slow_movers.items] == ["TEA"]
    assert short.slow_movers.count == 7
    assert [p.sku for p in short.new_products.items] == ["NEWBAG"]
    assert short.new_products.products == 3
    assert short.stock_outs.count == 2

    # newWithinDays moves where new begins: 10 days before June 8 is May 29: NEWTEA alone.
    recent = await service.new_products(session, _period(), 10, 20)
    assert (recent.products, recent.units_sold, recent.on_hand, recent.sell_through) == (
        1,
        0,
        0,
        None,
    )


async def test_the_kpis_per_bucket(session: AsyncSession) -> None:
    await seed_health_shop(session)
    kpis = registered_kpis(load_plugins(Settings(plugins="")))
    sell_rate, stock_outs = kpis["sku_sell_rate"], kpis["stock_out_skus"]
    assert (sell_rate.unit, sell_rate.higher_is_better) == (KpiUnit.RATIO, True)
    assert (stock_outs.unit, stock_outs.higher_is_better) == (KpiUnit.COUNT, False)

    buckets = [
        KpiBucket(*PERIOD),
        # June 8-14: EARBUDS is on sale from June 10 and sells one: 1 of 10 SKUs.
        KpiBucket(date(2026, 6, 8), date(2026, 6, 15)),
        # May 31: CHIPS's 5 at 23:59; on sale by its end, 8 SKUs (not NEWTEA nor EARBUDS).
        KpiBucket(date(2026, 5, 31), date(2026, 6, 1)),
        # Before the catalogue: nothing on sale, no rate.
        KpiBucket(date(2025, 1, 1), date(2025, 1, 2)),
        # The first half of 2026, overlapping the others: 7 of the 10 on sale by July 1 sold.
        KpiBucket(date(2026, 1, 1), date(2026, 7, 1)),
    ]
    assert await sell_rate.compute(session, buckets) == [6 / 9, 1 / 10, 1 / 8, None, 7 / 10]
    # RICE-10KG and PHONE sold in the period and have nothing available now.
    assert await stock_outs.compute(session, buckets) == [2.0, 0.0, 0.0, 0.0, 2.0]
    # The KPI and productHealth agree.
    health = await service.product_health(session, _period())
    assert health.sell_rate.rate == (await sell_rate.compute(session, buckets[:1]))[0]
    assert health.stock_outs.count == (await stock_outs.compute(session, buckets[:1]))[0]


async def test_many_buckets_run_in_chunks(session: AsyncSession) -> None:
    await seed_health_shop(session)
    # 2,200 daily buckets from 2021-01-01 to 2027-01-09: two statements' worth of days.
    first = date(2021, 1, 1).toordinal()
    days = [date.fromordinal(first + i) for i in range(2201)]
    buckets = [KpiBucket(a, b) for a, b in zip(days, days[1:], strict=False)]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT")):
            statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        rates = await service.compute_sku_sell_rate(session, buckets)
        outs = await service.compute_stock_out_skus(session, buckets)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # The SKUs on sale in one statement; what sold in two per KPI (2,000 days, then 200).
    assert len([s for s in statements if "order_line" in s]) == 4
    assert len(statements) == 5
    by_day = {b.start: (r, o) for b, r, o in zip(buckets, rates, outs, strict=True)}
    # June 1: RICE-5KG (00:00) and CHIPS (00:30) of the 8 on sale that day; June 3: RICE-10KG,
    # which is out of stock now.
    assert by_day[date(2026, 6, 1)] == (2 / 8, 0.0)
    assert by_day[date(2026, 6, 3)] == (1 / 9, 1.0)
    assert by_day[date(2026, 6, 9)] == (0.0, 0.0)
    assert by_day[date(2025, 12, 31)] == (None, 0.0)


def test_periods_of_shop_days() -> None:
    # 05:00 UTC on November 30 is 13:00 in the shop: today is November 30, and by default the
    # period runs to tomorrow, so that it holds today.
    period = service.shop_period(None, None, now=NOW)
    assert (period.start, period.end, period.today) == (
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2026, 11, 30),
    )
    assert (period.days, period.elapsed_days) == (30, 30)
    # A period reaching past today has had only the days up to today.
    future = service.shop_period(date(2026, 11, 28), date(2026, 12, 8), now=NOW)
    assert (future.days, future.elapsed_days) == (10, 3)
    # Its bounds in UTC: 16:00 the day before.
    assert period.utc_start == datetime(2026, 10, 31, 16, tzinfo=UTC)
    assert period.previous().start == date(2026, 10, 2)
    # At 16:00 UTC the shop's day has turned.
    late = service.shop_period(None, None, now=datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert late.today == date(2026, 12, 1)
    for start, end in ((date(2026, 6, 2), date(2026, 6, 2)), (date(2026, 6, 3), date(2026, 6, 2))):
        with pytest.raises(ValidationFailed, match="from must be before to"):
            service.shop_period(start, end, now=NOW)
    with pytest.raises(ValidationFailed, match="at most 366 days"):
        service.shop_period(date(2025, 1, 1), date(2026, 1, 3), now=NOW)
    # The calendar's ends are refused before any arithmetic on them.
    for start, end in ((date.min, date(1, 1, 5)), (None, date.min), (date(9999, 12, 1), None)):
        with pytest.raises(ValidationFailed, match="must be from 1970-01-01 to 2999-12-31"):
            service.shop_period(start, end, now=NOW)
