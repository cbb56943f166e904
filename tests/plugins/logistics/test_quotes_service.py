"""Shipping quotes worked out from the network: which warehouse, the price (zone × weight,
free over a subtotal), the promised window, same-day within a forward warehouse's radius
and before its cut-off, pickup where a point holds the units and is open, and a fixed
number of statements whatever the cart's size. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import Rate, Site, TransitTime, Zone
from plugins.logistics.service.quotes import (
    price,
    remembered,
    shipping_quotes,
    transit_of,
    zone_of,
)
from plugins.logistics.service.settings import LogisticsSettings
from server.plugin import ShippingQuote
from tests.plugins.logistics.quotes_support import (
    SHANGHAI,
    Net,
    cart_of,
    pickup_code,
    seed_network,
)

CST = timezone(timedelta(hours=8))
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=CST).astimezone(UTC)
CONFIG = LogisticsSettings()


async def _quotes(
    session: AsyncSession,
    net: Net,
    units: dict[str, int],
    *,
    now: datetime = TUESDAY_10,
    address: dict[str, Any] | None = None,
    subtotal: int = 10000,
) -> dict[str, ShippingQuote]:
    found = await shipping_quotes(
        session,
        cart_of(net, units, subtotal=subtotal),
        SHANGHAI if address is None else address,
        None,
        CONFIG,
        now=now,
    )
    return {q.code: q for q in found}


def test_price_by_weight_rounds_started_steps_up() -> None:
    rate = Rate(
        service_id=1,
        zone=3,
        first_grams=1000,
        first_amount=600,
        extra_grams=500,
        extra_amount=300,
        free_over=19900,
    )
    assert price(rate, 1, 100) == 600
    assert price(rate, 1000, 100) == 600
    assert price(rate, 1001, 100) == 900  # one gram more starts a step
    assert price(rate, 1500, 100) == 900
    assert price(rate, 1501, 100) == 1200
    assert price(rate, 5000, 19899) == 600 + 8 * 300
    assert price(rate, 5000, 19900) == 0  # free from the threshold, included


async def test_standard_express_and_pickup_from_the_warehouse_holding_everything(
    session: AsyncSession,
) -> None:
    # Hangzhou holds everything; the Shanghai forward warehouse lacks B; the store holds all.
    net = await seed_network(
        session,
        stock={"HZ": {"A": 10, "B": 10}, "SH": {"A": 10}, "STORE": {"A": 5, "B": 5}},
    )
    quotes = await _quotes(session, net, {"A": 2, "B": 1})
    std, exp, pu = net.codes["STD"], net.codes["EXP"], pickup_code(net)
    # No same-day (the forward warehouse lacks B), no locker (its warehouse holds nothing),
    # no Hangzhou store (another city).
    assert set(quotes) == {std, exp, pu}
    # 2 × 400 g + 1 × 500 g (no weight: the default) = 1300 g; Hangzhou → Shanghai is
    # 165 km across a province line: zone 3 (no band passed).
    assert quotes[std].amount == 3 * 200 + 300
    assert quotes[exp].amount == 2000 + 800
    # Tuesday 10:00, before the 16:00 cut-off: leaves Tuesday, 1..2 days 浙江 → 上海.
    assert (quotes[std].promised_from, quotes[std].promised_by) == (
        date(2026, 3, 11),
        date(2026, 3, 12),
    )
    assert quotes[std].promised_days == 2
    assert (quotes[exp].promised_from, quotes[exp].promised_by) == (
        date(2026, 3, 11),
        date(2026, 3, 11),
    )
    assert quotes[std].carrier == "顺丰速运" and quotes[pu].carrier == "自营配送"
    # Pickup: ready two hours later, the store open from 09:00 to 21:00; no rate: free.
    assert (quotes[pu].amount, quotes[pu].promised_from, quotes[pu].promised_by) == (
        0,
        date(2026, 3, 10),
        date(2026, 3, 10),
    )
    kept = remembered(session, None, pu)
    assert kept is not None and kept.pickup_point_id == net.points["PP1"]
    assert kept.deliver_by == datetime(2026, 3, 10, 12, 0, tzinfo=CST)
    kept = remembered(session, None, std)
    assert kept is not None and kept.warehouse_id == net.warehouses["HZ"]
    assert (kept.from_region, kept.to_region) == ("浙江省", "上海市")

    # A heavier cart: 3 × 400 + 500 = 1700 g, two started steps; free from 199 yuan.
    heavier = await _quotes(session, net, {"A": 3, "B": 1})
    assert heavier[std].amount == 600 + 2 * 300
    assert heavier[exp].amount == 2000 + 800
    free = await _quotes(session, net, {"A": 2, "B": 1}, subtotal=19900)
    assert (free[std].amount, free[exp].amount) == (0, 2800)

    # After the cut-off it leaves Wednesday; Friday evening, Monday (the express company
    # delivers on Saturday and Sunday).
    late = await _quotes(session, net, {"A": 1}, now=TUESDAY_10 + timedelta(hours=6))
    assert (late[std].promised_from, late[std].promised_by) == (
        date(2026, 3, 12),
        date(2026, 3, 13),
    )
    friday = await _quotes(session, net, {"A": 1}, now=TUESDAY_10 + timedelta(days=3, hours=8))
    assert (friday[std].promised_from, friday[std].promised_by) == (
        date(2026, 3, 17),
        date(2026, 3, 18),
    )
    # Friday 18:00 the store closes at 21:00: ready at 20:00. At 20:00, ready Monday 09:00.
    assert friday[pu].promised_from == date(2026, 3, 13)
    later = await _quotes(session, net, {"A": 1}, now=TUESDAY_10 + timedelta(days=3, hours=10))
    assert later[pu].promised_from == date(2026, 3, 16)

    # Nothing in stock anywhere for 20 units; no address, no quotes.
    assert await _quotes(session, net, {"A": 20}) == {}
    assert await shipping_quotes(session, cart_of(net, {"A": 1}), None, None, CONFIG) == []


async def test_same_day_only_inside_the_radius_and_before_the_cut_off(
    session: AsyncSession,
) -> None:
    net = await seed_network(session, stock={"HZ": {"A": 10, "B": 10}, "SH": {"A": 5, "B": 5}})
    sd, std = net.codes["SD"], net.codes["STD"]
    quotes = await _quotes(session, net, {"A": 1, "B": 1})
    # Tuesday 10:00 in Shanghai, the forward warehouse in the city: within 3 hours, zone 1.
    assert quotes[sd].amount == 500
    assert (quotes[sd].promised_from, quotes[sd].promised_by) == (
        date(2026, 3, 10),
        date(2026, 3, 10),
    )
    kept = remembered(session, None, sd)
    assert kept is not None and kept.warehouse_id == net.warehouses["SH"]
    assert kept.deliver_by == datetime(2026, 3, 10, 13, 0, tzinfo=CST)
    # Standard now leaves from the nearest warehouse holding everything: Shanghai, zone 1,
    # 1..2 days; 900 g costs the first kilo.
    assert quotes[std].amount == 200
    assert remembered(session, None, std).warehouse_id == net.warehouses["SH"]  # type: ignore[union-attr]

    # 17:59 is before the service's 18:00 cut-off; 18:00 is not.
    assert sd in await _quotes(session, net, {"A": 1}, now=TUESDAY_10 + timedelta(minutes=479))
    assert sd not in await _quotes(session, net, {"A": 1}, now=TUESDAY_10 + timedelta(hours=8))
    # Suzhou is 85 km from the forward warehouse: outside its 30 km radius.
    suzhou = await _quotes(session, net, {"A": 1}, address={"province": "江苏省", "city": "苏州市"})
    assert sd not in suzhou and std in suzhou
    # More than the forward warehouse holds: no same-day.
    assert sd not in await _quotes(session, net, {"A": 6})
    # The fleet does not work on Saturdays: no same-day then.
    saturday = TUESDAY_10 + timedelta(days=4)
    assert sd not in await _quotes(session, net, {"A": 1}, now=saturday)


async def test_a_split_cart_is_promised_for_its_slowest_parcel(session: AsyncSession) -> None:
    # No warehouse holds both variants: A from Hangzhou, B from Beijing.
    net = await seed_network(session, stock={"HZ": {"A": 10}, "BJ": {"B": 10}})
    quotes = await _quotes(session, net, {"A": 1, "B": 1})
    std = quotes[net.codes["STD"]]
    # Beijing → anywhere takes 2..4 days (the express company works weekends): Tuesday
    # + 2 = Thursday, + 4 = Saturday; Hangzhou's 1..2 days are sooner.
    assert (std.promised_from, std.promised_by) == (date(2026, 3, 12), date(2026, 3, 14))
    # Charged once at the farthest warehouse's zone: Beijing → Shanghai is 1070 km, two
    # bands passed: zone 5. 900 g.
    assert std.amount == 5 * 200
    # No same-day and no pickup: neither the forward warehouse nor the store holds them.
    assert set(quotes) == {net.codes["STD"], net.codes["EXP"]}


@contextmanager
def _statements(session: AsyncSession) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = session.bind.sync_engine  # type: ignore[union-attr]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_the_same_statements_whatever_the_cart_size(session: AsyncSession) -> None:
    net = await seed_network(
        session,
        stock={"HZ": {"A": 50, "B": 50}, "SH": {"A": 50, "B": 50}, "STORE": {"A": 50, "B": 50}},
    )
    await session.commit()
    with _statements(session) as small:
        one = await _quotes(session, net, {"A": 1})
    with _statements(session) as large:
        both = await _quotes(session, net, {"A": 20, "B": 20})
    assert (
        set(one)
        == set(both)
        == {
            net.codes["STD"],
            net.codes["EXP"],
            net.codes["SD"],
            pickup_code(net),
        }
    )
    assert len(small) == len(large) == 7


def test_zone_rows_come_before_distance_and_transit_rows_by_precision() -> None:
    site = Site(warehouse_id=1, province="浙江省", city="杭州市", latitude=30.27, longitude=120.16)
    bands = [500, 1000, 2000]
    rows = [
        Zone(from_region="浙江", to_region="上海", zone=2),
        Zone(from_region="浙江省", to_region="*", zone=4),
        Zone(from_region="北京市", to_region="上海市", zone=6),
    ]
    # The pair's row (with or without the suffix), else the site province's "*" row.
    assert zone_of(rows, site, "上海市", "上海市", 165.0, bands) == 2
    assert zone_of(rows, site, "广东省", "广州市", 1050.0, bands) == 4
    # No row: by distance; same city 1, same province 2, then 3 + bands passed.
    assert zone_of([], site, "浙江省", "杭州市", 0.0, bands) == 1
    assert zone_of([], site, "浙江省", "温州市", 250.0, bands) == 2
    assert zone_of([], site, "江苏省", "苏州市", 500.0, bands) == 3
    assert zone_of([], site, "广东省", "广州市", 1050.0, bands) == 5
    assert zone_of([], site, "新疆维吾尔自治区", "乌鲁木齐市", 3300.0, bands) == 6
    assert zone_of([], site, "火星", "火星城", None, bands) == 6

    transits = [
        TransitTime(service_id=1, from_region="*", to_region="*", min_days=3, max_days=5),
        TransitTime(service_id=1, from_region="浙江省", to_region="*", min_days=2, max_days=3),
        TransitTime(service_id=1, from_region="浙江省", to_region="上海市", min_days=1, max_days=2),
    ]
    found = transit_of(transits, "浙江", "上海")
    assert found is not None and (found.min_days, found.max_days) == (1, 2)
    found = transit_of(transits, "浙江省", "广东省")
    assert found is not None and (found.min_days, found.max_days) == (2, 3)
    found = transit_of(transits, "北京市", "上海市")
    assert found is not None and (found.min_days, found.max_days) == (3, 5)
    assert transit_of(transits[1:], "北京市", "上海市") is None
