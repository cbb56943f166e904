"""The recommendation serving benchmark (docs/benchmarks.md, "Recommendation serving"): on the
generated shop of bench.recommendation (100,000 products, 50,000 customers, 2,000,000 events)
after a full rebuild, wrk drives one uvicorn server with, in the same run:

- ``recommendations(context: HOME, first: 10)`` as a signed-in customer with a purchase
  history (a bearer token),
- the same as an anonymous visitor whose ``sessionId`` has VIEW events of the last minutes
  (the short-term session profile),
- ``recommendations(context: PRODUCT, productId: …, first: 10)`` for a popular product,
- and the baseline ``product(id:)`` for the same product,

and reports p50/p99, requests/s and each p50 over ``product(id:)``'s (goal: under 3).

    python -m bench.recommendation_serving [--products N] [--customers N] [--orders N]
        [--events N] [--databases sqlite,postgresql] [--duration S] [--rounds N]
        [--connections N] [--write]

Every recommendation answer records an impression (one row written per answer): that write is
part of what is measured, as it is part of what a client waits for. No timing is asserted
anywhere: tests/bench/test_recommendation_serving.py runs the parts on a tiny shop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import recommendation, storefront, wrk

START_MARK = "<!-- recommendation-serving-results:start -->"
END_MARK = "<!-- recommendation-serving-results:end -->"
SESSION_ID = "bench-serving-visitor"
# The anonymous visitor's recent views: this many products of one shelf, a few seconds apart.
SESSION_VIEWS = 5
HOME = (
    "{ recommendations(context: HOME, first: 10) "
    "{ id items { product { id name } score reason { text } } } }"
)
HOME_SESSION = (
    "query($s: String!) { recommendations(context: HOME, first: 10, sessionId: $s) "
    "{ id items { product { id name } score reason { text } } } }"
)
PRODUCT_RECS = (
    "query($p: ID!) { recommendations(context: PRODUCT, productId: $p, first: 10) "
    "{ id items { product { id name } score reason { text } } } }"
)
PRODUCT = "query($p: ID!) { product(id: $p) { id name price { amount } } }"
BASELINE = "product"


@dataclass(frozen=True)
class Targets:
    """Who and what the measured queries ask about (database ids)."""

    customer_id: int
    customer_orders: int
    product_id: int
    session_id: str
    session_products: tuple[int, ...]


def pick_targets(shop: recommendation.GeneratedShop) -> Targets:
    """The customer with the most orders (a long purchase history), the most bought active
    product, and an anonymous session viewing the most bought products of that product's
    shelf."""
    plan = shop.plan
    orders = np.bincount(plan.order_customer, minlength=plan.customer_created.shape[0])
    customer = int(np.argmax(orders))
    bought = np.bincount(plan.line_product, minlength=len(plan.product_name)).astype(np.float64)
    bought[~plan.product_active] = -1.0
    product = int(np.argmax(bought))
    shelf = np.flatnonzero(plan.product_category == plan.product_category[product])
    shelf = shelf[plan.product_active[shelf]]
    viewed = shelf[np.argsort(-bought[shelf], kind="stable")][:SESSION_VIEWS]
    return Targets(
        customer_id=int(shop.customer_ids[customer]),
        customer_orders=int(orders[customer]),
        product_id=int(shop.product_ids[product]),
        session_id=SESSION_ID,
        session_products=tuple(int(shop.product_ids[p]) for p in viewed),
    )


async def add_session_views(url: str, targets: Targets, now: datetime | None = None) -> None:
    """The anonymous visitor's VIEW events, the newest a second before ``now``: within the
    session profile's window (30 minutes by default) for the whole measurement."""
    from server.db import create_engine, session_factory
    from server.models import CustomerEvent, CustomerEventKind

    at = now or datetime.now(UTC)
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            for k, product_id in enumerate(targets.session_products):
                session.add(
                    CustomerEvent(
                        session_id=targets.session_id,
                        kind=CustomerEventKind.VIEW,
                        product_id=product_id,
                        occurred_at=at - timedelta(seconds=len(targets.session_products) - k),
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()


async def impressions(url: str) -> int:
    """Rows in the impression table."""
    from sqlalchemy import func, select

    from plugins.recommendation.models import RecommendationImpression
    from server.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(select(func.count()).select_from(RecommendationImpression))
            return int(found or 0)
    finally:
        await engine.dispose()


def customer_token(secret_key: str, database_url: str, customer_id: int) -> str:
    """A bearer token signing requests in as the customer, for a server with ``secret_key``."""
    from server.auth import create_access_token
    from server.config import Settings

    settings = Settings(database_url=database_url, secret_key=secret_key)
    return create_access_token(settings, f"customer:{customer_id}")


@dataclass(frozen=True)
class Query:
    name: str
    body: str
    token: str | None = None


def queries(targets: Targets, token: str) -> list[Query]:
    """The four measured queries; the baseline last."""
    product = storefront.global_id("Product", targets.product_id)
    return [
        Query("HOME, signed-in customer", json.dumps({"query": HOME}), token),
        Query(
            "HOME, anonymous session",
            json.dumps({"query": HOME_SESSION, "variables": {"s": targets.session_id}}),
        ),
        Query(
            "PRODUCT, anonymous",
            json.dumps({"query": PRODUCT_RECS, "variables": {"p": product}}),
        ),
        Query(BASELINE, json.dumps({"query": PRODUCT, "variables": {"p": product}})),
    ]


def headers(query: Query) -> dict[str, str]:
    found = {"Content-Type": "application/json"}
    if query.token is not None:
        found["Authorization"] = f"Bearer {query.token}"
    return found


def check_answer(query: Query, answer: dict[str, Any]) -> int:
    """The items of one answer (1 for ``product``); an error or an empty answer raises: a
    benchmark of failing queries measures nothing."""
    if answer.get("errors"):
        raise RuntimeError(f"{query.name}: {answer['errors']}")
    data = answer.get("data") or {}
    if query.name == BASELINE:
        if not data.get("product"):
            raise RuntimeError(f"{query.name}: no product in {answer}")
        return 1
    items = len(data["recommendations"]["items"])
    if not items:
        raise RuntimeError(f"{query.name}: no recommendation in {answer}")
    return items


def _fetch(base: str, query: Query) -> dict[str, Any]:
    request = urllib.request.Request(
        base + "/graphql", data=query.body.encode(), headers=headers(query), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return dict(json.loads(answer.read()))


def _script(directory: Path, index: int, query: Query) -> Path:
    lines = [wrk.post_script(query.body)]
    if query.token is not None:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {query.token}"')
    path = directory / f"recommendation-serving-{index}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Window:
    """One measured wrk run and what the processes used meanwhile."""

    run: wrk.WrkRun
    server_cpu: float
    database_cpu: float | None
    machine_busy: float  # share of all cores busy, every process of the machine


@dataclass
class Measured:
    database: str
    sizes: dict[str, int]
    rebuild_seconds: float
    targets: Targets
    items: dict[str, int]
    windows: dict[str, list[Window]] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    impressions: int = 0

    def p50(self, name: str) -> float:
        return statistics.median(w.run.report.p50_ms for w in self.windows[name])

    def p99(self, name: str) -> float:
        return statistics.median(w.run.report.p99_ms for w in self.windows[name])

    def rps(self, name: str) -> float:
        return statistics.median(w.run.report.requests_per_second for w in self.windows[name])

    def ratio(self, name: str) -> float:
        return self.p50(name) / self.p50(BASELINE)


def measure(
    database: storefront.Database,
    shop: recommendation.GeneratedShop,
    rebuild_seconds: float,
    directory: Path,
    *,
    duration: int,
    rounds: int,
    connections: int,
) -> Measured:
    """Serve the rebuilt shop from one uvicorn worker and run wrk against it: a warm-up of
    each query, then ``rounds`` rounds of every query in turn."""
    targets = pick_targets(shop)
    secret = secrets.token_hex(32)
    setup = storefront.Setup(database, "cold", "built-in", None, "POST")
    before_impressions = asyncio.run(impressions(database.url))
    with storefront.server_process(setup, secret_key=secret) as server:
        asyncio.run(add_session_views(database.url, targets))
        token = customer_token(secret, database.url, targets.customer_id)
        asked = queries(targets, token)
        items = {q.name: check_answer(q, _fetch(server.base, q)) for q in asked}
        scripts = [_script(directory, i, q) for i, q in enumerate(asked)]
        for script in scripts:
            wrk.run(server.base + "/graphql", duration=2, threads=1, connections=1, script=script)
        measured = Measured(database.name, shop.plan.sizes, rebuild_seconds, targets, items)
        measured.load_before = os.getloadavg()
        for _ in range(rounds):
            for query, script in zip(asked, scripts, strict=True):
                server_before = storefront.cpu_seconds(server.pid)
                db_before = database.cpu() if database.cpu else None
                machine_before = storefront.machine_cpu_seconds()
                began = time.monotonic()
                run = wrk.run(
                    server.base + "/graphql",
                    duration=duration,
                    threads=1,
                    connections=connections,
                    script=script,
                )
                wall = time.monotonic() - began
                if run.report.failures:
                    raise RuntimeError(f"{query.name}: {run.report.failures} failed requests")
                machine = storefront.machine_cpu_seconds() - machine_before
                measured.windows.setdefault(query.name, []).append(
                    Window(
                        run,
                        storefront.cpu_seconds(server.pid) - server_before,
                        None
                        if db_before is None or database.cpu is None
                        else storefront.cpu_between(db_before, database.cpu()),
                        machine / (wall * (os.cpu_count() or 1)),
                    )
                )
        measured.load_after = os.getloadavg()
    measured.impressions = asyncio.run(impressions(database.url)) - before_impressions
    return measured


def report(results: Sequence[Measured], duration: int, rounds: int, connections: int) -> str:
    sizes = results[0].sizes
    targets = results[0].targets
    lines = [
        f"{sizes['products']:,} products, {sizes['customers']:,} customers, "
        f"{sizes['orders']:,} orders, {sizes['events']:,} behaviour events, after one full "
        f"rebuild; one uvicorn worker, response cache off, wrk with one thread and "
        f"{connections} connections, a 2 s warm-up of each query then {rounds} round(s) of "
        f"{duration} s per query in turn (medians over the rounds); the customer has "
        f"{targets.customer_orders} orders, the session {len(targets.session_products)} views "
        f"of the last seconds; {platform.machine()}, {os.cpu_count()} cores.",
        "",
        "| database | query | items | p50 (ms) | p99 (ms) | requests/s | p50 / product(id:) "
        "| server CPU / request (ms) | database CPU / request (ms) | machine busy | wrk CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        for name, windows in m.windows.items():
            requests = sum(w.run.report.requests for w in windows) or 1
            server = sum(w.server_cpu for w in windows) * 1000 / requests
            db = [w.database_cpu for w in windows]
            db_text = (
                "–"
                if any(d is None for d in db)
                else f"{sum(d or 0.0 for d in db) * 1000 / requests:.1f}"
            )
            lines.append(
                f"| {m.database} | {name} | {m.items[name]} | {m.p50(name):.1f} | "
                f"{m.p99(name):.1f} | {m.rps(name):.1f} | {m.ratio(name):.2f} | {server:.1f} | "
                f"{db_text} | {max(w.machine_busy for w in windows):.0%} | "
                f"{max(w.run.cpu_share for w in windows):.0%} |"
            )
    lines.append("")
    for m in results:
        worst = max(m.ratio(n) for n in m.windows if n != BASELINE)
        verdict = "under" if worst < 3 else "over"
        lines.append(
            f"- {m.database}: the slowest recommendation p50 is {worst:.2f}× product(id:)'s, "
            f"{verdict} the goal of 3; {m.impressions:,} impressions written during the run; "
            f"load average {m.load_before[0]:.2f} before, {m.load_after[0]:.2f} after; the "
            f"rebuild took {m.rebuild_seconds:.0f} s."
        )
    return "\n".join(lines)


def write_docs(text: str, path: Path = recommendation.DOCS) -> None:
    doc = path.read_text()
    pattern = re.compile(re.escape(START_MARK) + r".*?" + re.escape(END_MARK), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path}: the markers {START_MARK} … {END_MARK} are missing")
    path.write_text(pattern.sub(lambda _: f"{START_MARK}\n{text}\n{END_MARK}", doc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recommendation_serving", description=__doc__
    )
    parser.add_argument("--products", type=int, default=recommendation.PRODUCTS)
    parser.add_argument("--customers", type=int, default=recommendation.CUSTOMERS)
    parser.add_argument("--orders", type=int, default=recommendation.ORDERS)
    parser.add_argument("--events", type=int, default=recommendation.EVENTS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="put the table into the docs")
    args = parser.parse_args(argv)
    wrk.executable()  # fail before an hour of loading when wrk is missing
    # No periodic job in the measured server: a rebuild would run in the middle of it.
    os.environ["SHOPGRAPH_RUN_JOBS"] = "false"
    wanted = storefront.comma_list(args.databases, list(storefront.DATABASES), "databases")
    sizes = {
        "products": args.products,
        "customers": args.customers,
        "orders": args.orders,
        "events": args.events,
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in wanted:
            loaded: list[recommendation.GeneratedShop] = []
            fill = recommendation.filler(sizes, loaded)
            context = (
                storefront.sqlite_database(directory, fill, name="recommendation-serving.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with context as database:
                storefront.log(f"{name}: loaded in {loaded[0].seconds:.0f} s; rebuilding")
                rebuilt = recommendation.measure(database, loaded[0])
                seconds = float(rebuilt.stats["seconds"]["total"])
                storefront.log(f"{name}: rebuilt in {seconds:.0f} s; serving")
                results.append(
                    measure(
                        database,
                        loaded[0],
                        seconds,
                        directory,
                        duration=args.duration,
                        rounds=args.rounds,
                        connections=args.connections,
                    )
                )
                storefront.log(report(results[-1:], args.duration, args.rounds, args.connections))
    text = report(results, args.duration, args.rounds, args.connections)
    print(text)
    if args.write:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
