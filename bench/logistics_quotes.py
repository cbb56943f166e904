"""The logistics quotes benchmark, driven by wrk: a 20-line cart's shipping quotes
(``Cart.shippingQuotes``) with 10 warehouses and 5 carriers, p50/p99 latency, against the same
cart's query with the logistics plugin disabled.

    python -m bench.logistics_quotes [--duration S] [--rounds N] [--databases sqlite,postgresql] [--write]

For each database it fills the storefront benchmark's demo shop (bench/storefront.py, fixed
seed), then a carrier network of its own: 10 warehouse sites in 10 cities (one a forward
warehouse in Shanghai delivering within hours), 5 carriers with a standard and an express
service each (the first also same-day and store pickup at two points), transit times per
region pair and rate tables over six zones; every unit of the cart in stock at each site.
Carriers and sites the demo made are left out, so the network is exactly this one. A guest
cart of 20 lines ships to Shanghai. Two uvicorn workers with production settings serve that
one database: logistics enabled, and disabled (``SHOPGRAPH_DISABLED_PLUGINS=logistics``). It
checks that the enabled one quotes every service with promised dates, warms both up, then
measures the query with wrk in alternating rounds. ``--write`` puts the table into
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import storefront, wrk
from bench.storefront import (
    DATABASES,
    DOCS,
    Database,
    Options,
    Outcome,
    Server,
    Setup,
    Window,
    log,
    measure,
    plugin_server,
    post_query,
)

START_MARK = "<!-- logistics-quotes-results:start -->"
END_MARK = "<!-- logistics-quotes-results:end -->"
SIDES = {"on": "logistics enabled", "off": "logistics disabled"}
CART_LINES = 20
CARRIERS = 5
CART_TOKEN = "bench-logistics-quotes-cart"
# (province, city, latitude, longitude); the first is the forward warehouse.
SITES = [
    ("上海市", "上海市", 31.2304, 121.4737),
    ("浙江省", "杭州市", 30.2741, 120.1551),
    ("江苏省", "苏州市", 31.2989, 120.5853),
    ("江苏省", "南京市", 32.0603, 118.7969),
    ("北京市", "北京市", 39.9042, 116.4074),
    ("广东省", "广州市", 23.1291, 113.2644),
    ("广东省", "深圳市", 22.5431, 114.0579),
    ("四川省", "成都市", 30.5728, 104.0668),
    ("湖北省", "武汉市", 30.5928, 114.3055),
    ("陕西省", "西安市", 34.3416, 108.9398),
]
QUERY = (
    f'{{ cart(token: "{CART_TOKEN}") {{ itemCount shippingQuotes {{ code carrier '
    "price { amount } promisedDays promisedFrom promisedBy } } }"
)


def fill(url: str) -> None:
    """The storefront shop, then the network and the benchmark's cart."""
    storefront.fill(url)
    asyncio.run(_add_network(url))


async def _add_network(url: str) -> None:
    from sqlalchemy import delete, update
    from sqlmodel import col, select

    from plugins.logistics.models import (
        Carrier,
        CarrierKind,
        CarrierService,
        PickupPoint,
        Rate,
        ServiceLevel,
        Site,
        TransitTime,
    )
    from server.db import create_engine, session_factory
    from server.models import (
        Cart,
        CartLine,
        Product,
        ProductVariant,
        StockLevel,
        Warehouse,
        WarehouseKind,
    )

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            await session.execute(update(Carrier).values(is_active=False))
            await session.execute(update(PickupPoint).values(is_active=False))
            await session.execute(delete(Site))
            rows = (
                await session.execute(
                    select(col(ProductVariant.id), col(ProductVariant.product_id))
                    .join(Product, col(Product.id) == col(ProductVariant.product_id))
                    .where(col(ProductVariant.is_active), col(Product.is_active))
                    .order_by(col(ProductVariant.id))
                    .limit(CART_LINES)
                )
            ).all()
            if len(rows) < CART_LINES:
                raise RuntimeError(f"the demo shop has fewer than {CART_LINES} variants")
            warehouses = []
            for n, (province, city, lat, lon) in enumerate(SITES):
                warehouse = Warehouse(
                    code=f"BENCH-LQ-{n}",
                    name=f"{city}仓",
                    kind=WarehouseKind.FORWARD if n == 0 else WarehouseKind.REGIONAL,
                    province=province,
                    city=city,
                )
                session.add(warehouse)
                await session.flush()
                warehouses.append(warehouse)
                session.add(
                    Site(
                        warehouse_id=warehouse.id or 0,
                        province=province,
                        city=city,
                        latitude=lat,
                        longitude=lon,
                        # The forward warehouse works late: same-day stays on offer all day.
                        cutoff_minutes=24 * 60 if n == 0 else 16 * 60,
                        same_day_radius_km=30.0 if n == 0 else None,
                    )
                )
                session.add_all(
                    StockLevel(
                        warehouse_id=warehouse.id or 0,
                        product_id=product_id,
                        variant_id=variant_id or 0,
                        on_hand=1000,
                    )
                    for variant_id, product_id in rows
                )
            services: list[CarrierService] = []
            for c in range(CARRIERS):
                carrier = Carrier(
                    code=f"BENCH-C{c}",
                    name=f"承运商 {c}",
                    kind=CarrierKind.OWN_FLEET if c == 0 else CarrierKind.THIRD_PARTY,
                    works_weekends=True,
                )
                session.add(carrier)
                await session.flush()
                levels = [ServiceLevel.STANDARD, ServiceLevel.EXPRESS]
                if c == 0:
                    levels += [ServiceLevel.SAME_DAY, ServiceLevel.PICKUP]
                for level in levels:
                    services.append(
                        CarrierService(
                            carrier_id=carrier.id or 0,
                            code=f"BENCH-C{c}-{level.value}",
                            label=f"{carrier.name} {level.value}",
                            level=level,
                            cutoff_minutes=24 * 60,
                            within_hours=3 if level is ServiceLevel.SAME_DAY else None,
                        )
                    )
            session.add_all(services)
            await session.flush()
            for service in services:
                fast = service.level is not ServiceLevel.STANDARD
                session.add(
                    TransitTime(
                        service_id=service.id or 0,
                        from_region="*",
                        to_region="*",
                        min_days=0 if service.level is ServiceLevel.SAME_DAY else 1,
                        max_days=0 if service.level is ServiceLevel.SAME_DAY else 3,
                    )
                )
                session.add_all(
                    TransitTime(
                        service_id=service.id or 0,
                        from_region=province,
                        to_region="上海市",
                        min_days=1,
                        max_days=1 if fast else 2 + n % 3,
                    )
                    for n, province in enumerate(sorted({s[0] for s in SITES}))
                )
                session.add_all(
                    Rate(
                        service_id=service.id or 0,
                        zone=z,
                        first_grams=1000,
                        first_amount=(1200 if fast else 600) + 200 * z,
                        extra_grams=500,
                        extra_amount=200 + 50 * z,
                        free_over=None if fast else 99_900,
                    )
                    for z in range(1, 7)
                )
            shanghai = warehouses[0]
            session.add_all(
                PickupPoint(
                    code=f"BENCH-PP{n}",
                    name=f"自提点 {n}",
                    warehouse_id=shanghai.id or 0,
                    province="上海市",
                    city="上海市",
                    latitude=31.23,
                    longitude=121.47,
                    hours={
                        d: [["00:00", "24:00"]]
                        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    },
                    ready_hours=2,
                )
                for n in range(2)
            )
            cart = Cart(
                token=CART_TOKEN,
                shipping_address={
                    "recipient_name": "王小明",
                    "phone": "13800138000",
                    "province": "上海市",
                    "city": "上海市",
                    "district": "静安区",
                    "street": "南京西路 1 号",
                },
            )
            session.add(cart)
            await session.flush()
            session.add_all(
                CartLine(
                    cart_id=cart.id or 0,
                    product_id=product_id,
                    variant_id=variant_id or 0,
                    quantity=1 + n % 3,
                )
                for n, (variant_id, product_id) in enumerate(rows)
            )
            await session.commit()
    finally:
        await engine.dispose()


@contextlib.contextmanager
def logistics_server(database: Database, side: str) -> Iterator[Server]:
    """A cold server over ``database`` with the logistics plugin ``side`` ("on"/"off")."""
    setup = Setup(database, "cold", SIDES[side], None, "POST")
    with plugin_server(setup, None if side == "on" else "logistics") as server:
        yield server


@dataclass
class Checked:
    """What the plugin quoted, so that the run measured it at work."""

    quotes_on: int
    quotes_off: int
    items: int


def check(on: Server, off: Server) -> Checked:
    cart_on = post_query(on, QUERY)["data"]["cart"]
    cart_off = post_query(off, QUERY)["data"]["cart"]
    if cart_on["itemCount"] != cart_off["itemCount"]:
        raise RuntimeError("the two servers see different carts")
    ours = [q for q in cart_on["shippingQuotes"] if q["code"].startswith("BENCH-")]
    # Standard and express of every carrier and two pickup points; same-day too, but on a
    # public holiday (the fleet is off then).
    expected = 2 * CARRIERS + 2
    if len(ours) < expected or any(q["promisedBy"] is None for q in ours):
        raise RuntimeError(f"expected {expected} dated quotes, got {cart_on['shippingQuotes']}")
    return Checked(
        len(cart_on["shippingQuotes"]), len(cart_off["shippingQuotes"]), cart_on["itemCount"]
    )


@dataclass
class Result:
    database: Database
    checked: Checked
    windows: dict[str, list[Window]] = field(default_factory=dict)

    def ratios(self) -> list[float]:
        pairs = zip(self.windows["on"], self.windows["off"], strict=True)
        return [a.rps / b.rps for a, b in pairs]


def run_database(database: Database, options: Options, script: Path) -> Result:
    setup = Setup(database, "cold", "", None, "POST")
    with logistics_server(database, "on") as on, logistics_server(database, "off") as off:
        servers = {"on": on, "off": off}
        result = Result(database, check(on, off))
        log(
            f"{database.name}: {result.checked.quotes_on} quotes for {result.checked.items} "
            f"items ({result.checked.quotes_off} without the plugin)"
        )
        for server in servers.values():
            measure(server, setup, "graphql", options, script, seconds=options.warmup)
        for round_ in range(options.rounds):
            order = list(SIDES) if round_ % 2 == 0 else list(reversed(SIDES))
            for side in order:
                window = measure(
                    servers[side], setup, "graphql", options, script, seconds=options.duration
                )
                result.windows.setdefault(side, []).append(window)
                log(
                    f"{database.name}: round {round_ + 1} {SIDES[side]}: "
                    f"{window.rps:,.0f} req/s, p50 {window.run.report.p50_ms:.1f} ms, "
                    f"p99 {window.run.report.p99_ms:.1f} ms, server CPU {window.server_busy:.0%}"
                )
    return result


def report(results: Sequence[Result], options: Options) -> str:
    lines = [
        f"| database | cart ({CART_LINES} lines) shipping quotes | quotes | req/s | p50 ms "
        "| p99 ms | server CPU ms/req | wrk CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for side, windows in result.windows.items():
            quotes = result.checked.quotes_on if side == "on" else result.checked.quotes_off
            lines.append(
                f"| {result.database.name} | {SIDES[side]} | {quotes} "
                f"| {statistics.median(w.rps for w in windows):,.0f} "
                f"| {statistics.median(w.run.report.p50_ms for w in windows):.1f} "
                f"| {statistics.median(w.run.report.p99_ms for w in windows):.1f} "
                f"| {statistics.median(w.server_cpu_ms for w in windows):.2f} "
                f"| {max(w.run.cpu_share for w in windows):.0%} |"
            )
    lines += [
        "",
        "| database | enabled / disabled, req/s (range) | p50 added, ms |",
        "|---|---:|---:|",
    ]
    for result in results:
        ratios = result.ratios()
        added = statistics.median(w.run.report.p50_ms for w in result.windows["on"]) - (
            statistics.median(w.run.report.p50_ms for w in result.windows["off"])
        )
        lines.append(
            f"| {result.database.name} | {statistics.median(ratios):.2f}× "
            f"({min(ratios):.2f}–{max(ratios):.2f}) | {added:.1f} |"
        )
    lines += [
        "",
        f"wrk with {options.threads} thread(s) and {options.connections} connections; GraphQL "
        f"over POST, cold (no response cache), anonymous; {len(SITES)} warehouse sites, "
        f"{CARRIERS} carriers; per server a {options.warmup} s warm-up, then {options.rounds} "
        f"round(s) of {options.duration} s per server, alternating; medians over the rounds "
        "(wrk CPU: the highest).",
    ]
    outcomes = []
    for result in results:
        outcome = Outcome(Setup(result.database, "cold", "", None, "POST"))
        outcome.windows = {"graphql": result.windows["on"], "handwritten": result.windows["off"]}
        outcomes.append(outcome)
    notes = storefront.instrument_notes(outcomes)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = storefront.wrk_parser(
        "python -m bench.logistics_quotes",
        __doc__.split("\n\n")[0],
        duration=5,
        warmup_help="seconds per server",
        rounds_help="alternating rounds",
    )
    args = parser.parse_args(argv)
    options = storefront.wrk_options(parser, args)
    results: list[Result] = []
    databases: list[Database] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-logistics-") as tmp:
        script = Path(tmp) / "quotes.lua"
        script.write_text(wrk.post_script(json.dumps({"query": QUERY})))
        for name in args.databases:
            log(f"preparing a demo shop with a carrier network ({DATABASES[name]}) …")
            with storefront.shop_database(name, Path(tmp), fill) as database:
                databases.append(database)
                results.append(run_database(database, options, script))
    text = report(results, options)
    print(text)
    if args.write:
        storefront.write_results(DOCS, databases, text, start=START_MARK, end=END_MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
