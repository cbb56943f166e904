"""The search benchmark: product search over GraphQL on a catalogue of 100,000 products, the
exact full-text query against the forgiving ones (pinyin, initials, a typo, a synonym),
driven by wrk.

    python -m bench.search [--products N] [--duration S] [--rounds N] [--connections C]
                           [--databases sqlite,postgresql] [--write]

For each database (a fresh SQLite file, a throwaway PostgreSQL server) it migrates, inserts
the generated catalogue in bulk (progress on stderr), adds one synonym group, starts one
uvicorn worker with production settings and the response cache off (every request searches),
checks that every query finds its known product first, then measures each query with wrk.
Servers, databases and wrk runs are those of the storefront benchmark (bench.storefront,
bench.wrk). It prints a markdown table; ``--write`` puts it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import storefront, wrk
from bench.storefront import Database, Options, Server, Setup, Window

START_MARK = "<!-- search-results:start -->"
END_MARK = "<!-- search-results:end -->"
SEED = 2025
PRODUCTS = 100_000
BATCH = 2_000
GRAPHQL = (
    "query($q: String!) { products(first: 20, filter: {search: $q}) "
    "{ edges { node { id sku name } } } }"
)
# The products every query must find first (their SKUs), among the generated ones.
TARGETS: list[dict[str, Any]] = [
    {
        "sku": "BENCH-EARPHONES",
        "name": "漫步者 蓝牙耳机 W820NB 旗舰版",
        "brand": "漫步者",
        "description": "主动降噪 头戴式 长续航",
    },
    {
        "sku": "BENCH-HEADPHONES",
        "name": "Sony WH-1000XM5 Wireless Headphones",
        "brand": "Sony",
        "description": "noise cancelling over-ear headphones",
    },
]
SYNONYMS = ["耳机", "headphones", "earphones"]


@dataclass(frozen=True)
class Query:
    key: str
    kind: str
    text: str
    # The SKU the first result must have (None: a broad query, any full first page will do).
    first: str | None


QUERIES = [
    Query("exact-zh", "exact (current full-text)", "蓝牙耳机 漫步者", "BENCH-EARPHONES"),
    Query("exact-en", "exact (current full-text)", "sony headphones", "BENCH-HEADPHONES"),
    Query("exact-broad", "exact, thousands of matches", "无线 键盘", None),
    Query("pinyin-broad", "pinyin, thousands of matches", "wuxian jianpan", None),
    Query("pinyin", "pinyin", "manbuzhe lanya erji", "BENCH-EARPHONES"),
    Query("initials", "initials", "mbz ly ej", "BENCH-EARPHONES"),
    Query("typo", "typo", "sony hedphones", "BENCH-HEADPHONES"),
    Query("synonym", "synonym", "漫步者 earphones", "BENCH-EARPHONES"),
]

# The generated catalogue: Chinese and English names drawn from these, so that every query
# term has many near neighbours (蓝牙音箱 beside 蓝牙耳机, "headphone stand" beside headphones).
_ZH_BRANDS = ["小米", "华为", "联想", "美的", "格力", "海尔", "漫步者", "倍思", "绿联", "罗技"]
_ZH_NOUNS = ["耳麦", "音箱", "手机", "键盘", "鼠标", "充电器", "数据线", "路由器", "手表", "台灯"]
_ZH_MODIFIERS = ["蓝牙", "无线", "降噪", "便携", "智能", "高清", "迷你", "游戏", "家用", "户外"]
_EN_BRANDS = ["Anker", "Logitech", "Philips", "Samson", "Satechi", "Ugreen", "Belkin", "JBL"]
_EN_NOUNS = ["Speaker", "Keyboard", "Mouse", "Charger", "Cable", "Router", "Watch", "Lamp"]
_EN_MODIFIERS = ["Wireless", "Portable", "Smart", "Mini", "Gaming", "Headphone Stand", "Pro"]


def generated_product(i: int, rng: random.Random) -> dict[str, Any]:
    """The i-th generated product's editable fields (name, brand, description, sku)."""
    if rng.random() < 0.5:
        brand = rng.choice(_ZH_BRANDS)
        name = f"{brand} {rng.choice(_ZH_MODIFIERS)}{rng.choice(_ZH_NOUNS)} {rng.randint(1, 999)}"
        description = f"{rng.choice(_ZH_MODIFIERS)} {rng.choice(_ZH_NOUNS)} 正品行货"
    else:
        brand = rng.choice(_EN_BRANDS)
        name = f"{brand} {rng.choice(_EN_MODIFIERS)} {rng.choice(_EN_NOUNS)} {rng.randint(1, 999)}"
        description = f"{rng.choice(_EN_MODIFIERS).lower()} {rng.choice(_EN_NOUNS).lower()}"
    return {"sku": f"GEN-{i:06d}", "name": name, "brand": brand, "description": description}


def product_row(fields: dict[str, Any], created: datetime) -> dict[str, Any]:
    """A product table row with its index text, as the catalogue service writes it."""
    from server.services import search

    title, body = search.product_search_text(
        name=fields["name"],
        brand=fields["brand"],
        sku=fields["sku"],
        description=fields["description"],
        tags=[],
        category_names=[],
    )
    return {
        **fields,
        "tags": [],
        "attributes": {},
        "price_amount": 19_900,
        "currency": "CNY",
        "is_active": True,
        "search_title": title,
        "search_body": body,
        "search_pinyin": search.pinyin_text(fields["name"], fields["brand"]),
        "created_at": created,
        "updated_at": created,
    }


async def load_catalogue(url: str, count: int, *, quiet: bool = False) -> None:
    """Insert ``count`` products (the targets among them) in batches, their words, and the
    benchmark's synonym group."""
    from sqlalchemy import insert

    from server.db import create_engine, session_factory
    from server.models import Product
    from server.progress import Progress
    from server.services import search, synonyms

    rng = random.Random(SEED)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    engine = create_engine(url)
    batches = (count + BATCH - 1) // BATCH
    progress = None if quiet else Progress(f"inserting {count:,} products", batches)
    try:
        async with session_factory(engine)() as session:
            for b in range(batches):
                rows = []
                for i in range(b * BATCH, min(count, (b + 1) * BATCH)):
                    fields = TARGETS[i] if i < len(TARGETS) else generated_product(i, rng)
                    rows.append(product_row(fields, start + timedelta(seconds=i)))
                await session.execute(insert(Product), rows)
                await search.remember_words(
                    session,
                    (
                        w
                        for r in rows
                        for w in search.index_words(r["search_title"], r["search_pinyin"])
                    ),
                )
                await session.commit()
                if progress is not None:
                    progress.advance(f"{min(count, (b + 1) * BATCH):,} products")
            await synonyms.create_group(session, SYNONYMS)
            await session.commit()
    finally:
        if progress is not None:
            progress.close()
        await engine.dispose()


def fill_catalogue(count: int) -> Callable[[str], None]:
    """Migrate (the core and every installed plugin) and insert ``count`` products."""

    def fill(url: str) -> None:
        from server import migrate
        from server.config import Settings
        from server.plugins import load_plugins

        migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
        asyncio.run(load_catalogue(url, count))

    return fill


def ask(server: Server, query: Query) -> list[str]:
    """The SKUs the server finds for ``query``, best first."""
    body = json.dumps({"query": GRAPHQL, "variables": {"q": query.text}}).encode()
    request = urllib.request.Request(f"{server.base}/graphql", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.loads(response.read())
    if data.get("errors"):
        raise RuntimeError(f"{query.key}: {data['errors']}")
    return [e["node"]["sku"] for e in data["data"]["products"]["edges"]]


def wrong_answer(query: Query, found: Sequence[str]) -> str | None:
    """Why ``found`` (SKUs, best first) is not the right answer to ``query``, or None."""
    if query.first is None:
        return None if len(found) == 20 else f"{query.key}: expected a full page, got {len(found)}"
    if not found or found[0] != query.first:
        return f"{query.key}: expected {query.first} first, got {list(found[:3])}"
    return None


@dataclass
class Measured:
    database: Database
    query: Query
    found: int
    windows: list[Window] = field(default_factory=list)


def run_database(database: Database, options: Options, tmp: Path) -> list[Measured]:
    setup = Setup(database, "cold", "none", "", "POST")
    results: list[Measured] = []
    storefront.log(f"{database.name}: starting the server")
    with storefront.server_process(setup) as server:
        for query in QUERIES:
            found = ask(server, query)
            problem = wrong_answer(query, found)
            if problem:
                raise RuntimeError(problem)
            script = tmp / f"{query.key}.lua"
            body = {"query": GRAPHQL, "variables": {"q": query.text}}
            script.write_text(wrk.post_script(json.dumps(body)))
            storefront.measure(server, setup, "graphql", options, script, seconds=options.warmup)
            measured = Measured(database, query, len(found))
            for round_ in range(options.rounds):
                window = storefront.measure(
                    server, setup, "graphql", options, script, seconds=options.duration
                )
                measured.windows.append(window)
                storefront.log(
                    f"{database.name} {query.key} round {round_ + 1}: {window.rps:,.0f} req/s, "
                    f"p50 {window.run.report.p50_ms:.1f} ms, p99 {window.run.report.p99_ms:.1f} ms"
                )
            results.append(measured)
    return results


def table(results: Sequence[Measured]) -> str:
    lines = [
        "| database | query | kind | found (first page) | req/s | p50 ms | p99 ms "
        "| server CPU ms/req | database CPU ms/req |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        w = r.windows
        db_cpu = [x.database_cpu_ms for x in w if x.database_cpu_ms is not None]
        lines.append(
            f"| {r.database.name} | `{r.query.text}` | {r.query.kind} | {r.found} "
            f"| {statistics.median(x.rps for x in w):,.0f} "
            f"| {statistics.median(x.run.report.p50_ms for x in w):.1f} "
            f"| {statistics.median(x.run.report.p99_ms for x in w):.1f} "
            f"| {statistics.median(x.server_cpu_ms for x in w):.2f} "
            f"| {f'{statistics.median(db_cpu):.2f}' if db_cpu else '–'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--products", type=int, default=PRODUCTS, help="catalogue size")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured window")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per query and server")
    parser.add_argument("--rounds", type=int, default=1, help="windows per query")
    parser.add_argument("--connections", type=int, default=4, help="wrk's open connections")
    parser.add_argument(
        "--databases",
        type=lambda v: storefront.comma_list(v, ["sqlite", "postgresql"], "--databases"),
        default=["sqlite", "postgresql"],
        help="comma-separated: sqlite,postgresql",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.products < len(TARGETS) or min(args.duration, args.warmup, args.rounds) < 1:
        parser.error("--products must hold the targets; --duration, --warmup, --rounds >= 1")
    try:
        wrk.executable()
    except wrk.WrkMissing as missing:
        parser.exit(2, f"{missing}\n")
    options = Options(args.duration, args.warmup, 1, args.connections, args.rounds)
    results: list[Measured] = []
    databases: list[Database] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-search-bench-") as tmp:
        for name in args.databases:
            storefront.log(f"preparing {args.products:,} products ({name}) …")
            fill = fill_catalogue(args.products)
            opened = (
                storefront.sqlite_database(Path(tmp), fill, "search.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with opened as database:
                databases.append(database)
                results += run_database(database, options, Path(tmp))
    text = table(results)
    notes = storefront.instrument_notes(
        [_as_outcome(r) for r in results]  # the storefront's notes read windows by endpoint
    )
    footer = (
        f"{args.products:,} products; wrk with 1 thread and {args.connections} connections, "
        f"GraphQL over POST, response cache off; per query a {args.warmup} s warm-up, then "
        f"{args.rounds} window(s) of {args.duration} s (medians)."
    )
    report = "\n".join([text, "", footer, *([""] + [f"- {n}" for n in notes] if notes else [])])
    print(report)
    if args.write:
        section = (
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {storefront.machine(databases)}.\n\n{report}"
        )
        current = storefront.DOCS.read_text()
        storefront.DOCS.write_text(
            storefront.replace_results(current, section, start=START_MARK, end=END_MARK)
        )
        storefront.log(f"wrote {storefront.DOCS.relative_to(storefront.ROOT)}")
    return 0


def _as_outcome(result: Measured) -> storefront.Outcome:
    outcome = storefront.Outcome(Setup(result.database, "cold", "none", "", "POST"))
    outcome.windows["graphql"] = list(result.windows)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
