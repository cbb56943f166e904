"""The search benchmark: product search over GraphQL on a catalogue of 100,000 products, the
exact full-text query against the forgiving ones (pinyin, initials, a typo, a synonym), and
the exact ones against a hand-written endpoint running the plain full-text SQL, driven by wrk.

    python -m bench.search [--products N] [--duration S] [--rounds N] [--connections C]
                           [--databases sqlite,postgresql] [--write]

For each database (a fresh SQLite file, a throwaway PostgreSQL server) it migrates, inserts
the generated catalogue in bulk (progress on stderr), adds one synonym group, starts one
uvicorn worker with production settings and the response cache off (every request searches),
serving GraphQL and the hand-written baseline: the full-text query as the API ran it before
search forgave (every term a phrase, ranked by the engine alone), in one SQL statement, rows
straight to JSON of the GraphQL answer's shape. It checks that every query finds its known
product first and, for each exact query, that the baseline's first page is GraphQL's, then
measures each query with wrk (an exact query's two endpoints in the same rounds, alternating).
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
import urllib.parse
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
    # The plain full-text query answers it too: measured against the hand-written baseline.
    plain: bool = False


QUERIES = [
    Query("exact-zh", "exact (current full-text)", "蓝牙耳机 漫步者", "BENCH-EARPHONES", True),
    Query("exact-en", "exact (current full-text)", "sony headphones", "BENCH-HEADPHONES", True),
    Query("exact-broad", "exact, thousands of matches", "无线 键盘", None, True),
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


# --------------------------------------------------------------------------------------------
# The baseline: the plain full-text query, hand-written (runs in the server process)

BASELINE_PATH = "/handwritten/search"
BASELINE_KIND = "plain full-text SQL, hand-written (baseline)"
# The statement the API ran before search forgave: every term must match, ranked by bm25
# alone (title 10, body 1, as then), ties by id as the listing orders them. product_fts has a
# third column since (search_pinyin, migration 0006): it did not count then, so its weight is 0.
BASELINE_SQLITE = """
SELECT product.id, product.sku, product.name
FROM product JOIN product_fts ON product_fts.rowid = product.id
WHERE product_fts MATCH :match AND product.is_active
ORDER BY bm25(product_fts, 10.0, 1.0, 0.0), product.id DESC
LIMIT :limit
"""


def baseline_postgresql(terms: int) -> str:
    """The PostgreSQL statement for ``terms`` terms (bound as :t0, :t1, …): every term a phrase
    (``phraseto_tsquery``), all of them needed, ranked by ``ts_rank_cd`` with the weights
    {D, C, B, A} of then (body 0.1 against title 1.0), ties by id."""
    query = " && ".join(f"phraseto_tsquery('simple', :t{i})" for i in range(terms))
    return f"""
SELECT product.id, product.sku, product.name
FROM product
WHERE product.search_vector @@ ({query}) AND product.is_active
ORDER BY ts_rank_cd(CAST('{{0.1, 0.1, 0.1, 1.0}}' AS float4[]), product.search_vector, ({query}))
    DESC, product.id DESC
LIMIT :limit
"""


def baseline_terms(text: str) -> list[str]:
    """The query's terms as the plain full-text query takes them: the search service's terms
    (a CJK run is one term), each segmented (every CJK character a word of its own, so that the
    run matches as a phrase of its characters), at most MAX_TERMS."""
    from server.services import search

    return [search.segment(term) for term in search.query_terms(text)[: search.MAX_TERMS]]


def fts5_match(terms: Sequence[str]) -> str:
    """An FTS5 query needing every one of ``terms``, each a double-quoted phrase (so nothing in
    it is FTS5 syntax)."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def baseline_path(text: str) -> str:
    """The baseline endpoint's URL path for the search text ``text``."""
    return f"{BASELINE_PATH}?{urllib.parse.urlencode({'q': text})}"


def add_baseline_endpoint(app: Any) -> Any:
    """Add the hand-written baseline (``GET /handwritten/search?q=…``) to a shopgraph app, on
    the app's own engine. It answers as GraphQL does: the first page's id, sku and name."""
    from sqlalchemy import text
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from server.services.search import MAX_TERMS

    engine = app.state.shopgraph.engine
    on_sqlite = engine.dialect.name == "sqlite"
    sqlite_statement = text(BASELINE_SQLITE)
    postgresql_statements = {n: text(baseline_postgresql(n)) for n in range(1, MAX_TERMS + 1)}

    async def products(request: Request) -> JSONResponse:
        terms = baseline_terms(request.query_params.get("q", ""))
        rows: Sequence[Any] = []
        if terms:
            if on_sqlite:
                statement = sqlite_statement
                params: dict[str, Any] = {"match": fts5_match(terms)}
            else:
                statement = postgresql_statements[len(terms)]
                params = {f"t{i}": term for i, term in enumerate(terms)}
            async with engine.connect() as conn:
                rows = (await conn.execute(statement, params | {"limit": storefront.PAGE})).all()
        edges = [
            {
                "node": {
                    "id": storefront.global_id("Product", row.id),
                    "sku": row.sku,
                    "name": row.name,
                }
            }
            for row in rows
        ]
        return JSONResponse({"data": {"products": {"edges": edges}}})

    app.router.routes.insert(0, Route(BASELINE_PATH, products))
    return app


def serve(port: int) -> None:
    import uvicorn

    from server.app import asgi_app

    # The app as `shopgraph serve` builds it (one worker, the same process tuning).
    app = add_baseline_endpoint(asgi_app())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# Asking, checking, measuring


def _nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["node"] for e in data["data"]["products"]["edges"]]


def ask(server: Server, query: Query) -> list[dict[str, Any]]:
    """The first page GraphQL finds for ``query`` (id, sku, name), best first."""
    body = json.dumps({"query": GRAPHQL, "variables": {"q": query.text}}).encode()
    request = urllib.request.Request(f"{server.base}/graphql", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.loads(response.read())
    if data.get("errors"):
        raise RuntimeError(f"{query.key}: {data['errors']}")
    return _nodes(data)


def ask_baseline(server: Server, query: Query) -> list[dict[str, Any]]:
    """The first page the hand-written baseline finds for ``query``, best first."""
    with urllib.request.urlopen(f"{server.base}{baseline_path(query.text)}", timeout=60) as r:
        return _nodes(json.loads(r.read()))


def skus(nodes: Sequence[dict[str, Any]]) -> list[str]:
    return [n["sku"] for n in nodes]


SAME_PAGE = "same page"
SAME_PRODUCTS = "same products, another order"


def agreement(
    query: Query, graphql: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
) -> str:
    """How the baseline's first page agrees with GraphQL's: SAME_PAGE (the same products in the
    same order), or SAME_PRODUCTS (GraphQL's tiered rank scores the whole forgiving expression
    of a query that has synonyms or corrections, which may order them otherwise). Other
    products would make the comparison meaningless: RuntimeError."""
    if list(graphql) == list(baseline):
        return SAME_PAGE
    if sorted(map(_node_key, graphql)) == sorted(map(_node_key, baseline)):
        return SAME_PRODUCTS
    raise RuntimeError(
        f"{query.key}: the plain full-text baseline and GraphQL disagree: "
        f"{skus(baseline)[:5]} against {skus(graphql)[:5]}"
    )


def _node_key(node: dict[str, Any]) -> str:
    return json.dumps(node, sort_keys=True)


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
    # The hand-written baseline's windows (exact queries), each in the same round as GraphQL's.
    baseline: list[Window] = field(default_factory=list)
    # How the baseline's first page agreed with GraphQL's (see `agreement`).
    agreement: str | None = None

    def ratios(self) -> tuple[float, float, float] | None:
        """GraphQL over the baseline, for requests/s, p50 and p99: each the median of the
        ratios of the rounds (the two windows of a round measured back to back)."""
        if not self.baseline:
            return None
        pairs = list(zip(self.windows, self.baseline, strict=True))
        return (
            statistics.median(g.rps / b.rps for g, b in pairs),
            statistics.median(g.run.report.p50_ms / b.run.report.p50_ms for g, b in pairs),
            statistics.median(g.run.report.p99_ms / b.run.report.p99_ms for g, b in pairs),
        )


ENDPOINTS = {"graphql": "GraphQL", "handwritten": "plain full-text"}


def run_database(database: Database, options: Options, tmp: Path) -> list[Measured]:
    setup = Setup(database, "cold", "none", "", "POST")
    results: list[Measured] = []
    storefront.log(f"{database.name}: starting the server")
    with storefront.server_process(setup, module="bench.search") as server:
        for query in QUERIES:
            found = ask(server, query)
            problem = wrong_answer(query, skus(found))
            if problem:
                raise RuntimeError(problem)
            measured = Measured(database, query, len(found))
            # Each endpoint measured for this query, and its path (None: GraphQL's own).
            paths: dict[str, str | None] = {"graphql": None}
            if query.plain:
                measured.agreement = agreement(query, found, ask_baseline(server, query))
                paths["handwritten"] = baseline_path(query.text)
            script = tmp / f"{query.key}.lua"
            body = {"query": GRAPHQL, "variables": {"q": query.text}}
            script.write_text(wrk.post_script(json.dumps(body)))
            for endpoint, path in paths.items():
                storefront.measure(
                    server, setup, endpoint, options, script, seconds=options.warmup, path=path
                )
            for round_ in range(options.rounds):
                # As in the storefront benchmark: the order swapped every round, so that a
                # drift in the machine's load does not always favour the same endpoint.
                order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                for endpoint in order:
                    window = storefront.measure(
                        server,
                        setup,
                        endpoint,
                        options,
                        script,
                        seconds=options.duration,
                        path=paths[endpoint],
                    )
                    (measured.windows if endpoint == "graphql" else measured.baseline).append(
                        window
                    )
                    storefront.log(
                        f"{database.name} {query.key} round {round_ + 1} {ENDPOINTS[endpoint]}: "
                        f"{window.rps:,.0f} req/s, p50 {window.run.report.p50_ms:.1f} ms, "
                        f"p99 {window.run.report.p99_ms:.1f} ms"
                    )
            results.append(measured)
    return results


def _figures(windows: Sequence[Window]) -> str:
    """req/s, p50, p99, server and database CPU per request: the medians of ``windows``."""
    db_cpu = [x.database_cpu_ms for x in windows if x.database_cpu_ms is not None]
    return (
        f"| {statistics.median(x.rps for x in windows):,.0f} "
        f"| {statistics.median(x.run.report.p50_ms for x in windows):.1f} "
        f"| {statistics.median(x.run.report.p99_ms for x in windows):.1f} "
        f"| {statistics.median(x.server_cpu_ms for x in windows):.2f} "
        f"| {f'{statistics.median(db_cpu):.2f}' if db_cpu else '–'} "
    )


def table(results: Sequence[Measured]) -> str:
    """One row per query (GraphQL), each exact query's followed by the baseline's; on the
    GraphQL row of an exact query, GraphQL's figures over the baseline's."""
    lines = [
        "| database | query | kind | found (first page) | req/s | p50 ms | p99 ms "
        "| server CPU ms/req | database CPU ms/req "
        "| GraphQL ÷ plain, req/s | p50 ÷ plain | p99 ÷ plain |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        head = f"| {r.database.name} | `{r.query.text}` "
        ratios = r.ratios()
        shown = "| – | – | – |"
        if ratios is not None:
            rps, p50, p99 = ratios
            shown = f"| **{rps:.2f}×** | {p50:.2f}× | {p99:.2f}× |"
        lines.append(f"{head}| {r.query.kind} | {r.found} {_figures(r.windows)}{shown}")
        if r.baseline:
            lines.append(f"{head}| {BASELINE_KIND} | {r.found} {_figures(r.baseline)}| | | |")
    return "\n".join(lines)


def agreement_note(results: Sequence[Measured]) -> str | None:
    """What the check before measuring found: the baseline's first page against GraphQL's."""
    checked = [r for r in results if r.agreement is not None]
    if not checked:
        return None
    reordered = [r for r in checked if r.agreement != SAME_PAGE]
    if not reordered:
        return (
            "Before measuring, the plain full-text baseline's first page was GraphQL's for "
            "every exact query: the same products in the same order."
        )
    which = ", ".join(f"`{r.query.text}` ({r.database.name})" for r in reordered)
    return (
        "Before measuring, the plain full-text baseline found the same products as GraphQL "
        f"for every exact query, in another order for {which}: GraphQL's tiered rank scores "
        "the query with its synonyms or corrections."
    )


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
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
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
    checked = agreement_note(results)
    if checked:
        notes.insert(0, checked)
    footer = (
        f"{args.products:,} products; wrk with 1 thread and {args.connections} connections, "
        f"GraphQL over POST, the plain full-text baseline over GET, response cache off; per "
        f"query and endpoint a {args.warmup} s warm-up, then {args.rounds} round(s) of one "
        f"{args.duration} s window per endpoint, alternating (medians; GraphQL ÷ plain: the "
        "median of the rounds' ratios, above 1× for latency meaning slower)."
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
    outcome.windows["handwritten"] = list(result.baseline)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
