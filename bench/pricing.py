"""The pricing benchmark: the storefront page of 20 products, cold (no response cache), served
with the pricing plugin enabled and rules in place against the same shop with the plugin
disabled, driven by wrk.

    python -m bench.pricing [--duration S] [--rounds N] [--databases sqlite,postgresql] [--write]

For each database it fills the storefront benchmark's demo shop (bench/storefront.py, fixed
seed; the pricing plugin's demo rules and limits included), adds rules and limits covering
every product of the page (a list price, a quantity break and a scheduled sale for everyone,
member prices, floors and a shop-wide minimum margin), then starts two uvicorn workers with
production settings over that one database: pricing enabled, and pricing disabled
(``SHOPGRAPH_DISABLED_PLUGINS=pricing``). It checks that both answer the same page and that the
rules change some of its prices, warms both up, then measures them with wrk in alternating
rounds. The ratio is pricing-enabled requests/s over pricing-disabled, round by round; the
target is ≥ 0.8×. ``--write`` puts the tables into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
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
    fetch,
    log,
    measure,
    plugin_server,
)
from server.plugin import PluginInfo, hookimpl

TARGET = 0.8
START_MARK = "<!-- pricing-results:start -->"
END_MARK = "<!-- pricing-results:end -->"
SIDES = {
    "on": "pricing enabled",
    "off": "pricing disabled",
    "noop": "pricing disabled, a no-op price plugin",
}


class NoopPricing:
    """A plugin answering ``price_guardrails`` with nothing: with it the core prices every
    product through its batched pipeline, as with the pricing plugin, at no cost of the
    plugin's own. The difference to "pricing disabled" is the core pipeline's cost."""

    PLUGIN_INFO = PluginInfo(name="noop-pricing", version="1.0")

    @hookimpl
    def price_guardrails(self) -> dict[int, object]:
        return {}


def serve(port: int) -> None:
    """The server of the "noop" side: the app as ``shopgraph serve`` builds it, plus
    :class:`NoopPricing`."""
    import uvicorn

    from server.app import create_app, tune_process
    from server.config import get_settings
    from server.logs import configure_logging
    from server.plugins import load_plugins

    settings = get_settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    app = create_app(settings, load_plugins(settings, extra=[NoopPricing()]))
    tune_process()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def fill(url: str) -> None:
    """The storefront shop, then rules and limits on every product of its first page."""
    storefront.fill(url)
    asyncio.run(_add_rules(url))


async def _add_rules(url: str) -> None:
    from sqlalchemy import select

    from plugins.pricing.models import PricingLimit, PricingRule, RuleKind
    from server.db import create_engine, session_factory
    from server.models import Product

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            page = list(
                await session.scalars(
                    select(Product)
                    .where(Product.is_active)  # type: ignore[arg-type]
                    .order_by(Product.created_at.desc(), Product.id.desc())  # type: ignore[attr-defined,union-attr]
                    .limit(storefront.PAGE)
                )
            )
            categories = sorted({p.category_id for p in page if p.category_id is not None})
            # The demo's own limits stay (one limit row per target).
            limited = set(
                await session.execute(
                    select(PricingLimit.product_id, PricingLimit.category_id)  # type: ignore[call-overload]
                )
            )
            limited_products = {p for p, _ in limited if p is not None}
            limited_categories = {c for _, c in limited if c is not None}
            for n, product in enumerate(page):
                session.add(PricingRule(name="list", product_id=product.id, percent_off_bp=300))
                session.add(
                    PricingRule(
                        name="bulk",
                        kind=RuleKind.QUANTITY,
                        product_id=product.id,
                        min_quantity=3,
                        percent_off_bp=500,
                    )
                )
                if n % 2 == 0:
                    session.add(
                        PricingRule(
                            name="sale",
                            kind=RuleKind.SCHEDULED,
                            product_id=product.id,
                            percent_off_bp=1000,
                            starts_at=AS_OF - timedelta(days=365),
                            ends_at=AS_OF + timedelta(days=3650),
                        )
                    )
                if product.id not in limited_products:
                    session.add(
                        PricingLimit(product_id=product.id, floor_amount=product.price_amount // 2)
                    )
            for category_id in categories:
                session.add(
                    PricingRule(
                        name="gold",
                        category_id=category_id,
                        membership_tier="GOLD",
                        percent_off_bp=800,
                    )
                )
                if category_id not in limited_categories:
                    session.add(PricingLimit(category_id=category_id, min_margin_bp=1000))
            await session.commit()
    finally:
        await engine.dispose()


@contextlib.contextmanager
def pricing_server(database: Database, side: str) -> Iterator[Server]:
    """A cold server over ``database`` with the pricing plugin ``side`` ("on"/"off")."""
    setup = Setup(database, "cold", SIDES[side], None, "POST")
    module = "bench.pricing" if side == "noop" else "bench.storefront"
    with plugin_server(setup, None if side == "on" else "pricing", module) as server:
        yield server


def check_pages(on: Server, off: Server) -> int:
    """Both servers answer the same page; returns how many of its prices the rules changed
    (none would mean nothing of the pipeline was measured)."""
    with_pricing = fetch(on, "graphql", "POST").data["data"]["products"]["edges"]
    without = fetch(off, "graphql", "POST").data["data"]["products"]["edges"]
    if len(with_pricing) != storefront.PAGE:
        raise RuntimeError(f"expected {storefront.PAGE} products, got {len(with_pricing)}")
    strip = [{k: v for k, v in e["node"].items() if k != "price"} for e in with_pricing]
    if strip != [{k: v for k, v in e["node"].items() if k != "price"} for e in without]:
        raise RuntimeError("the two servers answer different pages")
    changed = sum(
        a["node"]["price"] != b["node"]["price"] for a, b in zip(with_pricing, without, strict=True)
    )
    if not changed:
        raise RuntimeError("the rules changed no price of the page: nothing was measured")
    return changed


@dataclass
class Result:
    database: Database
    changed: int
    windows: dict[str, list[Window]] = field(default_factory=lambda: {s: [] for s in SIDES})

    def ratios(self, side: str = "on", baseline: str = "off") -> list[float]:
        pairs = zip(self.windows[side], self.windows[baseline], strict=True)
        return [a.rps / b.rps for a, b in pairs]

    def cpu_ratios(self, side: str = "on", baseline: str = "off") -> list[float]:
        pairs = zip(self.windows[side], self.windows[baseline], strict=True)
        return [b.server_cpu_ms / a.server_cpu_ms for a, b in pairs]


def run_database(database: Database, options: Options, script: Path) -> Result:
    setup = Setup(database, "cold", "", None, "POST")
    with (
        pricing_server(database, "on") as on,
        pricing_server(database, "off") as off,
        pricing_server(database, "noop") as noop,
    ):
        servers = {"on": on, "off": off, "noop": noop}
        result = Result(database, check_pages(on, off))
        for server in servers.values():
            measure(server, setup, "graphql", options, script, seconds=options.warmup)
        for round_ in range(options.rounds):
            order = list(SIDES) if round_ % 2 == 0 else list(reversed(SIDES))
            for side in order:
                window = measure(
                    servers[side], setup, "graphql", options, script, seconds=options.duration
                )
                result.windows[side].append(window)
                log(
                    f"{database.name}: round {round_ + 1} {SIDES[side]}: {window.rps:,.0f} "
                    f"req/s, server CPU {window.server_busy:.0%}, wrk CPU {window.run.cpu_share:.0%}"
                )
    return result


def report(results: Sequence[Result], options: Options) -> str:
    lines = [
        "| database | pricing | req/s | p50 ms | p99 ms | server CPU ms/req | server CPU "
        "| wrk CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for side, windows in result.windows.items():
            lines.append(
                f"| {result.database.name} | {SIDES[side]} "
                f"| {statistics.median(w.rps for w in windows):,.0f} "
                f"| {statistics.median(w.run.report.p50_ms for w in windows):.1f} "
                f"| {statistics.median(w.run.report.p99_ms for w in windows):.1f} "
                f"| {statistics.median(w.server_cpu_ms for w in windows):.2f} "
                f"| {statistics.median(w.server_busy for w in windows):.0%} "
                f"| {max(w.run.cpu_share for w in windows):.0%} |"
            )
    lines += [
        "",
        "| database | prices the rules changed | enabled / disabled, req/s | by server CPU per "
        "request | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for result in results:
        ratios = result.ratios()
        ratio = statistics.median(ratios)
        lines.append(
            f"| {result.database.name} | {result.changed} of {storefront.PAGE} "
            f"| **{ratio:.2f}×** ({min(ratios):.2f}–{max(ratios):.2f}) "
            f"| {statistics.median(result.cpu_ratios()):.2f}× | ≥ {TARGET:.2f}× "
            f"| {storefront.verdict(ratio, TARGET)} |"
        )
    lines += [
        "",
        "Where the difference lies: the core's price pipeline alone (a no-op price plugin) "
        "against pricing disabled, and the pricing plugin against that no-op plugin (its own "
        "work: rules, limits, their statements).",
        "",
        "| database | no-op plugin / disabled, req/s | by CPU | pricing / no-op plugin, req/s "
        "| by CPU |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        core = statistics.median(result.ratios("noop", "off"))
        own = statistics.median(result.ratios("on", "noop"))
        lines.append(
            f"| {result.database.name} | {core:.2f}× "
            f"| {statistics.median(result.cpu_ratios('noop', 'off')):.2f}× | {own:.2f}× "
            f"| {statistics.median(result.cpu_ratios('on', 'noop')):.2f}× |"
        )
    lines += [
        "",
        f"wrk with {options.threads} thread(s) and {options.connections} connections; GraphQL "
        f"over POST, cold (no response cache); per server a {options.warmup} s warm-up, then "
        f"{options.rounds} round(s) of {options.duration} s per server, alternating; medians "
        "over the rounds (wrk CPU: the highest), ratios from the same rounds (range in "
        "brackets).",
    ]
    outcomes = []
    for result in results:
        outcome = Outcome(Setup(result.database, "cold", "", None, "POST"))
        outcome.windows = {
            "graphql": result.windows["on"] + result.windows["noop"],
            "handwritten": result.windows["off"],
        }
        outcomes.append(outcome)
    notes = storefront.instrument_notes(outcomes)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = storefront.wrk_parser(
        "python -m bench.pricing",
        __doc__.split("\n\n")[0],
        duration=5,
        warmup_help="seconds per server",
        rounds_help="alternating rounds",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    options = storefront.wrk_options(parser, args)
    results: list[Result] = []
    databases: list[Database] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-pricing-") as tmp:
        script = Path(tmp) / "graphql.lua"
        script.write_text(wrk.post_script(json.dumps({"query": storefront.GRAPHQL_QUERY})))
        for name in args.databases:
            log(f"preparing a demo shop with rules ({DATABASES[name]}) …")
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
