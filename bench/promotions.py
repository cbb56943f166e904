"""The promotions benchmark, driven by wrk: (a) a 20-line cart's totals quoted with 50 active
promotions of every kind (p50/p99 latency), and (b) the storefront page of 20 products, cold,
with the promotions plugin enabled against the same shop with it disabled.

    python -m bench.promotions [--duration S] [--rounds N] [--databases sqlite,postgresql] [--write]

For each database it fills the storefront benchmark's demo shop (bench/storefront.py, fixed
seed; the plugin's demo promotions included), adds 50 running promotions over the catalogue
(flash sales on the storefront page's products, spend-and-save tiers, gifts, buy X get Y,
bundles, member deals, free shipping, coupons) and a guest cart of 20 lines holding a coupon
code, then starts two uvicorn workers with production settings over that one database:
promotions enabled, and disabled (``SHOPGRAPH_DISABLED_PLUGINS=promotions``). It checks that
the promotions change the cart's total and some prices of the page, warms both servers up,
then measures each query with wrk in alternating rounds. The ratio is enabled requests/s over
disabled, round by round; the storefront page's target is ≥ 0.8×. ``--write`` puts the
tables into docs/benchmarks.md.
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
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import storefront, wrk
from bench.storefront import (
    AS_OF,
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

TARGET = 0.8
START_MARK = "<!-- promotions-results:start -->"
END_MARK = "<!-- promotions-results:end -->"
SIDES = {"on": "promotions enabled", "off": "promotions disabled"}
PROMOTIONS = 50
CART_LINES = 20
CART_TOKEN = "bench-promotions-cart"
COUPON_CODE = "BENCH10"
CART_QUERY = (
    f'{{ cart(token: "{CART_TOKEN}") {{ itemCount subtotal {{ amount }} '
    "orderAdjustments { label amount { amount } } discount { amount } "
    "shipping { amount } total { amount } } }"
)
QUERIES = {"page": storefront.GRAPHQL_QUERY, "cart": CART_QUERY}
LABELS = {"page": "storefront page (20 products)", "cart": f"cart quote ({CART_LINES} lines)"}


def fill(url: str) -> None:
    """The storefront shop, then 50 running promotions and the benchmark's cart."""
    storefront.fill(url)
    asyncio.run(_add_promotions(url))


async def _add_promotions(url: str) -> None:
    from sqlalchemy import select
    from sqlmodel import col

    from plugins.promotions.models import (
        CartCode,
        CouponCode,
        Promotion,
        PromotionClass,
        PromotionKind,
        Trigger,
    )
    from plugins.promotions.service.kinds import class_of, parse_rules
    from server.db import create_engine, session_factory
    from server.models import Cart, CartLine, Product, ProductVariant

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            products = list(
                await session.scalars(
                    select(Product)
                    .where(col(Product.is_active))
                    .order_by(col(Product.created_at).desc(), col(Product.id).desc())
                )
            )
            variant_of: dict[int, int] = {}
            for product_id, variant_id in await session.execute(
                select(col(ProductVariant.product_id), col(ProductVariant.id))
                .where(col(ProductVariant.is_active))
                .order_by(col(ProductVariant.product_id), col(ProductVariant.id))
            ):
                variant_of.setdefault(product_id, variant_id)
            products = [p for p in products if p.id in variant_of]
            page = products[: storefront.PAGE]
            categories = sorted({p.category_id for p in products if p.category_id is not None})
            window = {
                "starts_at": AS_OF - timedelta(days=365),
                "ends_at": AS_OF + timedelta(days=3650),
            }
            both = [PromotionClass.ORDER.value, PromotionClass.SHIPPING.value]
            specs: list[dict[str, Any]] = []
            for n in range(10):
                specs.append(
                    {
                        "kind": PromotionKind.FLASH_SALE,
                        "rules": {"percent_off_bp": 500 + 100 * n},
                        "product_ids": [p.id for p in page[2 * n : 2 * n + 2]],
                        "unit_limit": 100000,
                        "combinable_with": both,
                    }
                )
                specs.append(
                    {
                        "kind": PromotionKind.SPEND_SAVE,
                        "rules": {
                            "tiers": [
                                {"threshold": 10000 * (n + 1), "amount_off": 500 * (n + 1)},
                                {"threshold": 30000 * (n + 1), "amount_off": 2000 * (n + 1)},
                            ]
                        },
                        "category_ids": categories[n % len(categories) :][:3],
                        "exclusive_group": "spend",
                        "combinable_with": [PromotionClass.PRODUCT.value],
                    }
                )
            for n in range(6):
                gift = products[-1 - n]
                specs += [
                    {
                        "kind": PromotionKind.SPEND_GIFT,
                        "rules": {
                            "tiers": [
                                {
                                    "threshold": 20000 * (n + 1),
                                    "variant_id": variant_of[gift.id or 0],
                                }
                            ]
                        },
                        "joint_group": "gifts",
                    },
                    {
                        "kind": PromotionKind.BUY_X_GET_Y,
                        "rules": {"buy_quantity": 2, "get_quantity": 1, "max_applications": 3},
                        "product_ids": [p.id for p in products[40 + 3 * n : 43 + 3 * n]],
                    },
                    {
                        "kind": PromotionKind.BUNDLE,
                        "rules": {
                            "items": [
                                {"product_id": p.id, "quantity": 1}
                                for p in products[60 + 2 * n : 62 + 2 * n]
                            ],
                            "price": max(
                                100,
                                sum(p.price_amount for p in products[60 + 2 * n : 62 + 2 * n])
                                * 8
                                // 10,
                            ),
                        },
                    },
                    {
                        "kind": PromotionKind.MEMBER_DEAL,
                        "rules": {"percent_off_bp": 800},
                        "membership_tier": "GOLD",
                        "category_ids": [categories[n % len(categories)]],
                        "combinable_with": both,
                    },
                ]
            for n in range(4):
                specs.append(
                    {
                        "kind": PromotionKind.FREE_SHIPPING,
                        "rules": {"min_spend": 5000 * (n + 1)},
                        "combinable_with": [
                            PromotionClass.PRODUCT.value,
                            PromotionClass.ORDER.value,
                        ],
                    }
                )
            for n in range(2):
                specs.append(
                    {
                        "kind": PromotionKind.COUPON,
                        "trigger": Trigger.CODE,
                        "rules": {"percent_off_bp": 1000, "min_spend": 10000, "max_discount": 5000}
                        if n == 0
                        else {"amount_off": 1500, "min_spend": 20000},
                        "combinable_with": [PromotionClass.PRODUCT.value],
                    }
                )
            assert len(specs) == PROMOTIONS, len(specs)
            rows = []
            for n, spec in enumerate(specs):
                kind: PromotionKind = spec["kind"]
                rules = parse_rules(kind, spec["rules"])
                name = f"bench {kind.value.lower()} {n}"
                rows.append(
                    Promotion(
                        **spec,
                        **window,
                        name=name,
                        label=name,
                        promotion_class=class_of(kind, rules),
                        created_by="bench",
                    )
                )
            session.add_all(rows)
            await session.flush()
            code = CouponCode(promotion_id=rows[-2].id or 0, code=COUPON_CODE, max_uses=None)
            cart = Cart(token=CART_TOKEN)
            session.add_all([code, cart])
            await session.flush()
            # Twenty lines: the page's products (flash sales, spend tiers) with a few pairs.
            for n, product in enumerate(page[:CART_LINES]):
                session.add(
                    CartLine(
                        cart_id=cart.id or 0,
                        product_id=product.id or 0,
                        variant_id=variant_of[product.id or 0],
                        quantity=1 + n % 3,
                    )
                )
            session.add(CartCode(cart_id=cart.id or 0, code_id=code.id or 0))
            await session.commit()
    finally:
        await engine.dispose()


@contextlib.contextmanager
def promotions_server(database: Database, side: str) -> Iterator[Server]:
    """A cold server over ``database`` with the promotions plugin ``side`` ("on"/"off")."""
    setup = Setup(database, "cold", SIDES[side], None, "POST")
    with plugin_server(setup, None if side == "on" else "promotions") as server:
        yield server


@dataclass
class Checked:
    """What the promotions change, so that the run measured them at work."""

    prices_changed: int
    cart_total_on: str
    cart_total_off: str
    adjustments: int


def check(on: Server, off: Server) -> Checked:
    with_promotions = post_query(on, QUERIES["page"])["data"]["products"]["edges"]
    without = post_query(off, QUERIES["page"])["data"]["products"]["edges"]
    if len(with_promotions) != storefront.PAGE:
        raise RuntimeError(f"expected {storefront.PAGE} products, got {len(with_promotions)}")
    ids = [e["node"]["id"] for e in with_promotions]
    if ids != [e["node"]["id"] for e in without]:
        raise RuntimeError("the two servers answer different pages")
    changed = sum(
        a["node"]["price"] != b["node"]["price"]
        for a, b in zip(with_promotions, without, strict=True)
    )
    cart_on = post_query(on, QUERIES["cart"])["data"]["cart"]
    cart_off = post_query(off, QUERIES["cart"])["data"]["cart"]
    if cart_on["itemCount"] != cart_off["itemCount"]:
        raise RuntimeError("the two servers see different carts")
    if cart_on["total"] == cart_off["total"]:
        raise RuntimeError("the promotions changed nothing of the cart: nothing was measured")
    return Checked(
        changed,
        cart_on["total"]["amount"],
        cart_off["total"]["amount"],
        len(cart_on["orderAdjustments"]),
    )


@dataclass
class Result:
    database: Database
    checked: Checked
    windows: dict[tuple[str, str], list[Window]] = field(default_factory=dict)

    def ratios(self, query: str) -> list[float]:
        pairs = zip(self.windows[(query, "on")], self.windows[(query, "off")], strict=True)
        return [a.rps / b.rps for a, b in pairs]

    def cpu_ratio(self, query: str) -> float:
        """Disabled over enabled server CPU per request (medians): the ratio a busy machine
        disturbs least."""
        on = statistics.median(w.server_cpu_ms for w in self.windows[(query, "on")])
        off = statistics.median(w.server_cpu_ms for w in self.windows[(query, "off")])
        return off / on


def run_database(database: Database, options: Options, scripts: dict[str, Path]) -> Result:
    setup = Setup(database, "cold", "", None, "POST")
    with promotions_server(database, "on") as on, promotions_server(database, "off") as off:
        servers = {"on": on, "off": off}
        result = Result(database, check(on, off))
        log(
            f"{database.name}: {result.checked.prices_changed} of {storefront.PAGE} prices "
            f"changed; cart total {result.checked.cart_total_on} against "
            f"{result.checked.cart_total_off}"
        )
        for query, script in scripts.items():
            for server in servers.values():
                measure(server, setup, "graphql", options, script, seconds=options.warmup)
            for round_ in range(options.rounds):
                order = list(SIDES) if round_ % 2 == 0 else list(reversed(SIDES))
                for side in order:
                    window = measure(
                        servers[side], setup, "graphql", options, script, seconds=options.duration
                    )
                    result.windows.setdefault((query, side), []).append(window)
                    log(
                        f"{database.name}: {LABELS[query]}, round {round_ + 1} {SIDES[side]}: "
                        f"{window.rps:,.0f} req/s, p50 {window.run.report.p50_ms:.1f} ms, "
                        f"p99 {window.run.report.p99_ms:.1f} ms, server CPU "
                        f"{window.server_busy:.0%}"
                    )
    return result


def report(results: Sequence[Result], options: Options) -> str:
    lines = [
        "| database | query | promotions | req/s | p50 ms | p99 ms | server CPU ms/req | wrk CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for (query, side), windows in result.windows.items():
            lines.append(
                f"| {result.database.name} | {LABELS[query]} | {SIDES[side]} "
                f"| {statistics.median(w.rps for w in windows):,.0f} "
                f"| {statistics.median(w.run.report.p50_ms for w in windows):.1f} "
                f"| {statistics.median(w.run.report.p99_ms for w in windows):.1f} "
                f"| {statistics.median(w.server_cpu_ms for w in windows):.2f} "
                f"| {max(w.run.cpu_share for w in windows):.0%} |"
            )
    lines += [
        "",
        "| database | page prices changed | cart total, enabled / disabled | page: enabled / "
        "disabled, req/s | by server CPU per request | target | | cart: enabled / disabled, "
        "req/s | by CPU |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        page = result.ratios("page")
        cart = result.ratios("cart")
        ratio = statistics.median(page)
        lines.append(
            f"| {result.database.name} | {result.checked.prices_changed} of {storefront.PAGE} "
            f"| ¥{result.checked.cart_total_on} / ¥{result.checked.cart_total_off} "
            f"| **{ratio:.2f}×** ({min(page):.2f}–{max(page):.2f}) "
            f"| {result.cpu_ratio('page'):.2f}× | ≥ {TARGET:.2f}× "
            f"| {storefront.verdict(ratio, TARGET)} "
            f"| {statistics.median(cart):.2f}× ({min(cart):.2f}–{max(cart):.2f}) "
            f"| {result.cpu_ratio('cart'):.2f}× |"
        )
    lines += [
        "",
        f"wrk with {options.threads} thread(s) and {options.connections} connections; GraphQL "
        f"over POST, cold (no response cache), anonymous; {PROMOTIONS} running promotions; "
        f"per server and query a {options.warmup} s warm-up, then {options.rounds} round(s) of "
        f"{options.duration} s per server, alternating; medians over the rounds (wrk CPU: the "
        "highest), ratios from the same rounds (range in brackets).",
    ]
    outcomes = []
    for result in results:
        outcome = Outcome(Setup(result.database, "cold", "", None, "POST"))
        outcome.windows = {
            "graphql": [w for (_, side), ws in result.windows.items() if side == "on" for w in ws],
            "handwritten": [
                w for (_, side), ws in result.windows.items() if side == "off" for w in ws
            ],
        }
        outcomes.append(outcome)
    notes = storefront.instrument_notes(outcomes)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = storefront.wrk_parser(
        "python -m bench.promotions",
        __doc__.split("\n\n")[0],
        duration=5,
        warmup_help="seconds per server and query",
        rounds_help="alternating rounds",
    )
    args = parser.parse_args(argv)
    options = storefront.wrk_options(parser, args)
    results: list[Result] = []
    databases: list[Database] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-promotions-") as tmp:
        scripts = {}
        for query, text in QUERIES.items():
            scripts[query] = Path(tmp) / f"{query}.lua"
            scripts[query].write_text(wrk.post_script(json.dumps({"query": text})))
        for name in args.databases:
            log(f"preparing a demo shop with {PROMOTIONS} promotions ({DATABASES[name]}) …")
            with storefront.shop_database(name, Path(tmp), fill) as database:
                databases.append(database)
                results.append(run_database(database, options, scripts))
    text = report(results, options)
    print(text)
    if args.write:
        storefront.write_results(DOCS, databases, text, start=START_MARK, end=END_MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
