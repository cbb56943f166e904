"""The storefront benchmark: the first page of products over GraphQL against a hand-written
endpoint that runs the same SQL and returns the same JSON.

    python bench/storefront.py [--requests N] [--concurrency C] [--plugins a,b | --no-plugins]
                               [--write]

It builds a fresh SQLite shop in a temporary directory (migrations + demo data with a fixed
seed), starts a real uvicorn in a subprocess serving both endpoints, checks that both answer
the same, and drives each over HTTP with httpx at a fixed concurrency: a warm-up, then N
requests (or T seconds, whichever comes first), a few rounds, alternating. It prints a markdown
table (requests/s, p50/p99 latency, server CPU per request) and the GraphQL/hand-written ratio;
``--write`` puts it into docs/benchmarks.md. Without --plugins/--no-plugins it measures both
"all installed plugins" and "none".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SEED = 2024
AS_OF = datetime(2025, 6, 30, tzinfo=UTC)
PAGE = 20
GRAPHQL_QUERY = (
    "{ products(first: 20) { edges { node { id sku name price { amount currency } "
    "category { id name } } } } }"
)
# The same page the products query reads by default (newest first), with each product's
# category: one statement, rows straight to JSON.
HAND_SQL = """
SELECT p.id, p.sku, p.name, p.price_amount, p.currency, c.id AS category_id, c.name AS category_name
FROM product AS p LEFT JOIN category AS c ON c.id = p.category_id
WHERE p.is_active
ORDER BY p.created_at DESC, p.id DESC
LIMIT :limit
"""
START_MARK = "<!-- results:start -->"
END_MARK = "<!-- results:end -->"


# --------------------------------------------------------------------------------------------
# The server side (runs in the subprocess)
# --------------------------------------------------------------------------------------------


def _global_id(type_name: str, ident: int) -> str:
    return base64.b64encode(f"{type_name}:{ident}".encode()).decode()


def create_bench_app() -> Any:
    """The shopgraph app, plus the hand-written endpoint on the same engine."""
    from sqlalchemy import text
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from server.app import create_app

    app = create_app()
    engine = app.state.shopgraph.engine
    statement = text(HAND_SQL)

    async def products(request: Request) -> JSONResponse:
        async with engine.connect() as conn:
            rows = (await conn.execute(statement, {"limit": PAGE})).all()
        edges = [
            {
                "node": {
                    "id": _global_id("Product", row.id),
                    "sku": row.sku,
                    "name": row.name,
                    "price": {
                        "amount": str(Decimal(row.price_amount).scaleb(-2)),
                        "currency": row.currency,
                    },
                    "category": None
                    if row.category_id is None
                    else {"id": _global_id("Category", row.category_id), "name": row.category_name},
                }
            }
            for row in rows
        ]
        return JSONResponse({"data": {"products": {"edges": edges}}})

    app.router.routes.insert(0, Route("/handwritten/products", products))
    return app


def serve(port: int) -> None:
    import uvicorn

    from server.app import tune_process

    app = create_bench_app()
    tune_process()  # as `shopgraph serve` does (server.app.asgi_app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    endpoint: str
    plugins: str
    requests: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def cpu_ms(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds * 1000 / self.requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to see server cost apart from the
    load generator's, which shares the machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare_database(directory: Path) -> str:
    from server import demo, migrate
    from server.config import Settings
    from server.plugins import load_plugins

    url = f"sqlite+aiosqlite:///{directory / 'storefront.db'}"
    # Every installed plugin's tables exist, whichever set a run enables.
    migrate.upgrade(url, plugin_manager=load_plugins(Settings(database_url=url)).pm)
    report = asyncio.run(demo.load(url, seed=SEED, as_of=AS_OF))
    assert report is not None
    return url


@contextlib.contextmanager
def server_process(url: str, plugins: str | None) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "SHOPGRAPH_DATABASE_URL": url, "SHOPGRAPH_ENV": "production"}
    # Production settings (no GraphiQL, masked errors) need a real secret.
    env |= {"SHOPGRAPH_GRAPHIQL": "false", "SHOPGRAPH_SECRET_KEY": secrets.token_hex(32)}
    # One client sends thousands of queries a second here: the per-client cost budget would
    # throttle it. The cost of each query is still computed; only the refill is unbounded.
    env |= {"SHOPGRAPH_COST_RESTORE_RATE": "1e12"}
    env.pop("SHOPGRAPH_PLUGINS", None)
    if plugins is not None:
        env["SHOPGRAPH_PLUGINS"] = plugins
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)], env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the benchmark server exited with {proc.returncode}")
            try:
                httpx.get(f"{base}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _request(endpoint: str) -> tuple[str, str, dict[str, Any] | None]:
    if endpoint == "graphql":
        return "POST", "/graphql", {"query": GRAPHQL_QUERY}
    return "GET", "/handwritten/products", None


async def _fetch(client: httpx.AsyncClient, endpoint: str) -> dict[str, Any]:
    method, path, body = _request(endpoint)
    response = await client.request(method, path, json=body)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    if data.get("errors"):
        raise RuntimeError(f"{endpoint} answered with errors: {data['errors']}")
    return data


async def check_equivalent(base: str, *, compare_prices: bool) -> None:
    """Both endpoints must answer the same page, or the comparison means nothing."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        graphql = await _fetch(client, "graphql")
        hand = await _fetch(client, "handwritten")
    nodes = [e["node"] for e in graphql["data"]["products"]["edges"]]
    others = [e["node"] for e in hand["data"]["products"]["edges"]]
    if len(nodes) != PAGE:
        raise RuntimeError(f"expected {PAGE} products, GraphQL gave {len(nodes)}")
    if not compare_prices:
        # Plugins may adjust prices; everything else must still agree.
        for node in nodes + others:
            node.pop("price")
    if nodes != others:
        raise RuntimeError("GraphQL and the hand-written endpoint disagree")


async def drive(
    base: str, endpoint: str, *, count: int, concurrency: int, max_seconds: float
) -> tuple[int, float, list[float]]:
    """``count`` requests from ``concurrency`` workers, stopping early at ``max_seconds``."""
    method, path, body = _request(endpoint)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    remaining = count
    deadline = time.perf_counter() + max_seconds

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                response = await client.request(method, path, json=body)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise RuntimeError(f"{endpoint}: HTTP {response.status_code} {response.text}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, latencies


def measure(base: str, pid: int, endpoint: str, label: str, args: argparse.Namespace) -> Result:
    asyncio.run(
        drive(base, endpoint, count=args.warmup, concurrency=args.concurrency, max_seconds=30)
    )
    cpu_before = _cpu_seconds(pid)
    done, elapsed, latencies = asyncio.run(
        drive(
            base,
            endpoint,
            count=args.requests,
            concurrency=args.concurrency,
            max_seconds=args.max_seconds,
        )
    )
    cpu_after = _cpu_seconds(pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Result(endpoint, label, done, elapsed, latencies, cpu)


def run_configuration(
    url: str, label: str, plugins: str | None, args: argparse.Namespace
) -> list[Result]:
    with server_process(url, plugins) as (base, pid):
        asyncio.run(check_equivalent(base, compare_prices=plugins == ""))
        rounds: dict[str, list[Result]] = {"handwritten": [], "graphql": []}
        for _ in range(args.rounds):
            for endpoint in rounds:
                rounds[endpoint].append(measure(base, pid, endpoint, label, args))
    # The median round by throughput: one noisy round does not decide the result.
    return [sorted(rs, key=lambda r: r.rps)[len(rs) // 2] for rs in rounds.values()]


def table(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "| endpoint | plugins | requests | req/s | p50 ms | p99 ms | server CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cpu = "n/a" if r.cpu_ms is None else f"{r.cpu_ms:.2f}"
        name = "GraphQL `products(first: 20)`" if r.endpoint == "graphql" else "hand-written"
        lines.append(
            f"| {name} | {r.plugins} | {r.requests} | {r.rps:,.0f} | {r.percentile(0.5):.1f} "
            f"| {r.percentile(0.99):.1f} | {cpu} |"
        )
    lines.append("")
    by_label: dict[str, dict[str, Result]] = {}
    for r in results:
        by_label.setdefault(r.plugins, {})[r.endpoint] = r
    for label, pair in by_label.items():
        g, h = pair["graphql"], pair["handwritten"]
        line = f"- GraphQL / hand-written, plugins {label}: **{g.rps / h.rps:.2f}×** throughput"
        if g.cpu_ms and h.cpu_ms:
            line += f", {h.cpu_ms / g.cpu_ms:.2f}× by server CPU per request"
        lines.append(line)
    lines.append("")
    lines.append(
        f"{args.concurrency} concurrent connections, {args.warmup} warm-up requests, then "
        f"{args.requests} requests (at most {args.max_seconds:.0f} s) per endpoint; median of "
        f"{args.rounds} alternating rounds."
    )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {_sqlite_version()}"
    )


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{START_MARK}\n{END_MARK}\n"
    head, _, rest = text.partition(START_MARK)
    _, _, tail = rest.partition(END_MARK)
    DOCS.write_text(f"{head}{START_MARK}\n{section}\n{END_MARK}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60, help="cap per measurement")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plugins", help="SHOPGRAPH_PLUGINS for the server (an allow-list)")
    group.add_argument("--no-plugins", action="store_true", help="an empty allow-list")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        serve(args.serve)
        return 0

    if args.no_plugins:
        configurations = [("none", "")]
    elif args.plugins is not None:
        configurations = [(args.plugins or "none", args.plugins)]
    else:
        configurations = [("all installed", None), ("none", "")]

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-") as tmp:
        print("preparing a demo shop (SQLite) …", file=sys.stderr)
        url = prepare_database(Path(tmp))
        for label, plugins in configurations:
            print(f"measuring with plugins: {label} …", file=sys.stderr)
            results += run_configuration(url, label, plugins, args)

    report = table(results, args)
    print(report)
    if args.write:
        from server.config import Settings
        from server.plugins import load_plugins

        installed = ", ".join(r.name for r in load_plugins(Settings()).records) or "none"
        section = (
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; installed plugins: "
            f"{installed}.\n\n{report}"
        )
        write_docs(section)
        print(f"\nwrote {DOCS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
