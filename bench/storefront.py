"""The storefront benchmark: the first page of products over GraphQL against a hand-written
endpoint that runs the same SQL and returns the same JSON, driven by wrk.

    python -m bench.storefront [--duration S] [--connections C] [--threads T] [--rounds N]
                               [--databases sqlite,postgresql] [--modes cold,warm]
                               [--plugins a,b | --no-plugins] [--write]

For each database (a fresh SQLite file, a throwaway PostgreSQL server) it migrates and fills
a demo shop (fixed seed); for each cache mode (cold: ``SHOPGRAPH_RESPONSE_CACHE=false``, warm:
``=true``) and plugin set it starts one uvicorn worker with production settings serving both
endpoints, checks that they answer the same, warms both up, checks the ``X-Cache`` header
against the mode, then measures each endpoint with wrk for a few alternating rounds. It
prints markdown tables (requests/s, p50/p99 latency, server CPU per request, the CPU wrk
itself used) and each GraphQL/hand-written ratio against its target; ``--write`` puts them
into docs/benchmarks.md. Only 127.0.0.1 is contacted; every run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import wrk
from tests.support.postgres import TemporaryPostgres, find_bindir, free_port

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
HANDWRITTEN_PATH = "/handwritten/products"
START_MARK = "<!-- results:start -->"
END_MARK = "<!-- results:end -->"

DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
ENDPOINTS = {"handwritten": "hand-written", "graphql": "GraphQL"}
# The cache modes and their targets: GraphQL's throughput as a share of the hand-written
# endpoint's, measured in the same run.
TARGETS = {"cold": 0.25, "warm": 0.8}
CACHE_SETTING = {"cold": "false", "warm": "true"}
HIT = "HIT"
# Answers checked for X-Cache after the warm-up and after each GraphQL window.
PROBES = 3
# Past these, a window measured the machine rather than the server (see `instrument_notes`).
WRK_BUSY_LIMIT = 0.5
SERVER_BUSY_FLOOR = 0.9
# Cores other processes may use before the machine counts as busy.
OTHERS_LIMIT = 0.25


# --------------------------------------------------------------------------------------------
# The server side (runs in the subprocess)
# --------------------------------------------------------------------------------------------


def global_id(type_name: str, ident: int) -> str:
    """The relay id GraphQL gives a ``type_name`` row (base64 of "Type:id")."""
    return base64.b64encode(f"{type_name}:{ident}".encode()).decode()


def add_handwritten_endpoint(app: Any) -> Any:
    """Add the hand-written endpoint to a shopgraph app, on the app's own engine."""
    from sqlalchemy import text
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    engine = app.state.shopgraph.engine
    statement = text(HAND_SQL)

    async def products(request: Request) -> JSONResponse:
        async with engine.connect() as conn:
            rows = (await conn.execute(statement, {"limit": PAGE})).all()
        edges = [
            {
                "node": {
                    "id": global_id("Product", row.id),
                    "sku": row.sku,
                    "name": row.name,
                    "price": {
                        "amount": str(Decimal(row.price_amount).scaleb(-2)),
                        "currency": row.currency,
                    },
                    "category": None
                    if row.category_id is None
                    else {"id": global_id("Category", row.category_id), "name": row.category_name},
                }
            }
            for row in rows
        ]
        return JSONResponse({"data": {"products": {"edges": edges}}})

    app.router.routes.insert(0, Route(HANDWRITTEN_PATH, products))
    return app


def serve(port: int) -> None:
    import uvicorn

    from server.app import asgi_app

    # The app as `shopgraph serve` builds it (one worker, the same process tuning).
    app = add_handwritten_endpoint(asgi_app())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# CPU time from /proc
# --------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine spent working (not idle, not waiting on I/O)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """CPU time of a process and of each of its direct children, by pid: a PostgreSQL server
    and its backends."""
    times = {root: cpu_seconds(root)}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(int(entry))
            if int(fields[1]) == root:
                times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return times


def reaped_cpu_seconds(pid: int) -> float:
    """CPU time of the children of a process that have exited and been waited for (Linux
    /proc: cutime + cstime): a PostgreSQL server's backends and parallel workers that are
    gone."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU time used between two readings of :func:`tree_cpu_seconds`.

    A process that started in between counts from zero. One that exited in between (a
    backend the pool closed, an autovacuum worker) is left out: what it used before exiting
    is no longer readable, and counting its earlier total as a loss would make the sum
    negative.
    """
    return sum(now - before.get(pid, 0.0) for pid, now in after.items())


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    name: str
    url: str
    # CPU time of the database server's processes by pid, where it runs outside the shopgraph
    # process (see `tree_cpu_seconds`).
    cpu: Callable[[], dict[int, float]] | None = None
    version: str = ""
    # The database server's main process (PostgreSQL's postmaster), where it has one.
    pid: int | None = None


def fill(url: str) -> None:
    """Migrate (the core and every enabled plugin) and load the demo shop."""
    from server import demo, migrate
    from server.config import Settings
    from server.plugins import load_plugins

    migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
    # The size docs/benchmarks.md describes (the demo's default has grown since).
    report = asyncio.run(
        demo.load(url, seed=SEED, as_of=AS_OF, customers=200, products=300, orders=600)
    )
    if report is None:
        raise RuntimeError("the demo shop was not loaded")


@contextlib.contextmanager
def sqlite_database(
    directory: Path, fill_with: Callable[[str], None] = fill, name: str = "storefront.db"
) -> Iterator[Database]:
    """A fresh SQLite file in ``directory``, migrated and filled by ``fill_with``."""
    import sqlite3

    url = f"sqlite+aiosqlite:///{directory / name}"
    fill_with(url)
    yield Database(DATABASES["sqlite"], url, None, f"SQLite {sqlite3.sqlite_version}")


async def _vacuum_analyze(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


@contextlib.contextmanager
def postgresql_database(fill_with: Callable[[str], None] = fill) -> Iterator[Database]:
    """A throwaway PostgreSQL server, migrated and filled by ``fill_with``, then analysed."""
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(
            "PostgreSQL's initdb and pg_ctl were not found: install the Debian package "
            "postgresql, or measure SQLite alone with --databases sqlite"
        )
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    said = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"\(PostgreSQL\) (\S+)", said)
    version = found.group(1) if found else said.strip()
    server = TemporaryPostgres(bindir).start()
    try:
        postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
        fill_with(server.url())
        # Autovacuum would otherwise vacuum and analyse the freshly loaded tables on its own,
        # perhaps during a measured window, adding to PostgreSQL's CPU there.
        asyncio.run(_vacuum_analyze(server.url()))
        yield Database(
            DATABASES["postgresql"],
            server.url(),
            lambda: tree_cpu_seconds(postmaster),
            f"PostgreSQL {version}",
            postmaster,
        )
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# The server process and its answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    database: Database
    mode: str
    plugins_label: str
    # SHOPGRAPH_PLUGINS for the server: None leaves it unset (every installed plugin).
    plugins: str | None
    method: str


@dataclass(frozen=True)
class Server:
    base: str
    pid: int


@contextlib.contextmanager
def server_process(
    setup: Setup, module: str = "bench.storefront", *, secret_key: str | None = None
) -> Iterator[Server]:
    """A server for ``setup``: ``python -m <module> --serve PORT`` (the module adds its
    hand-written endpoints to the app). ``secret_key``: the server's, for a benchmark that
    signs its own bearer tokens (by default a random one)."""
    port = free_port()
    env = {**os.environ, "SHOPGRAPH_DATABASE_URL": setup.database.url}
    # Production settings (no GraphiQL, masked errors) need a real secret.
    env |= {"SHOPGRAPH_ENV": "production", "SHOPGRAPH_GRAPHIQL": "false"}
    env |= {"SHOPGRAPH_SECRET_KEY": secret_key or secrets.token_hex(32)}
    # One client sends thousands of queries a second here: the per-client cost budget would
    # throttle it. The cost of each query is still computed; only the refill is unbounded.
    env |= {"SHOPGRAPH_COST_RESTORE_RATE": "1e12"}
    env |= {"SHOPGRAPH_RESPONSE_CACHE": CACHE_SETTING[setup.mode]}
    env.pop("SHOPGRAPH_PLUGINS", None)
    if setup.plugins is not None:
        env["SHOPGRAPH_PLUGINS"] = setup.plugins
    proc = subprocess.Popen([sys.executable, "-m", module, "--serve", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the benchmark server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        yield Server(base, proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def plugin_server(
    setup: Setup, disabled: str | None, module: str = "bench.storefront"
) -> Iterator[Server]:
    """A server process for ``setup`` with the plugin ``disabled`` turned off (None: every
    plugin on): the two sides of a plugin's benchmark over one database."""
    saved = os.environ.get("SHOPGRAPH_DISABLED_PLUGINS")
    if disabled:
        os.environ["SHOPGRAPH_DISABLED_PLUGINS"] = disabled
    else:
        os.environ.pop("SHOPGRAPH_DISABLED_PLUGINS", None)
    try:
        with server_process(setup, module) as server:
            yield server
    finally:
        if saved is None:
            os.environ.pop("SHOPGRAPH_DISABLED_PLUGINS", None)
        else:
            os.environ["SHOPGRAPH_DISABLED_PLUGINS"] = saved


def post_query(server: Server, query: str) -> dict[str, Any]:
    """One GraphQL query's answer; RuntimeError when it has errors or no data."""
    request = urllib.request.Request(
        f"{server.base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: dict[str, Any] = json.loads(answer.read())
    if body.get("errors") or not body.get("data"):
        raise RuntimeError(f"the benchmark's query failed: {body}")
    return body


def shop_database(
    name: str, tmp: Path, fill_with: Callable[[str], None]
) -> contextlib.AbstractContextManager[Database]:
    """A benchmark's shop on ``name`` ("sqlite": a file under ``tmp``; else a throwaway
    PostgreSQL server), filled by ``fill_with``."""
    if name == "sqlite":
        return sqlite_database(tmp, fill_with)
    return postgresql_database(fill_with)


def write_results(
    docs: Path, databases: Sequence[Database], text: str, *, start: str, end: str
) -> None:
    """Put a benchmark's tables, with the machine they were measured on, between its marks
    in ``docs``."""
    section = f"Measured on {machine(databases)}.\n\n{text}"
    docs.write_text(replace_results(docs.read_text(), section, start=start, end=end))
    log(f"wrote {docs}")


def graphql_target(method: str) -> tuple[str, bytes | None]:
    """The GraphQL request as path and body: a POST of JSON, or a GET with the query in the
    URL (the form HTTP caches can store)."""
    if method == "GET":
        return "/graphql?" + urllib.parse.urlencode({"query": GRAPHQL_QUERY}), None
    return "/graphql", json.dumps({"query": GRAPHQL_QUERY}).encode()


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any]
    x_cache: str | None


def fetch(server: Server, endpoint: str, method: str) -> Answer:
    """One answer of ``endpoint``; GraphQL is asked with ``method``, as wrk asks it."""
    if endpoint == "graphql":
        path, body = graphql_target(method)
    else:
        path, body, method = HANDWRITTEN_PATH, None, "GET"
    request = urllib.request.Request(f"{server.base}{path}", data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
            x_cache = response.headers.get("X-Cache")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{endpoint}: HTTP {error.code} {error.read()!r}") from None
    if data.get("errors"):
        raise RuntimeError(f"{endpoint} answered with errors: {data['errors']}")
    return Answer(data, x_cache)


def check_equivalent(
    graphql: dict[str, Any], hand: dict[str, Any], *, compare_prices: bool
) -> None:
    """Both endpoints must answer the same page, or the comparison means nothing."""
    nodes = [e["node"] for e in graphql["data"]["products"]["edges"]]
    others = [e["node"] for e in hand["data"]["products"]["edges"]]
    if len(nodes) != PAGE:
        raise RuntimeError(f"expected {PAGE} products, GraphQL gave {len(nodes)}")
    if not compare_prices:
        # Plugins may adjust prices; everything else must still agree.
        nodes = [{k: v for k, v in n.items() if k != "price"} for n in nodes]
        others = [{k: v for k, v in n.items() if k != "price"} for n in others]
    if nodes != others:
        raise RuntimeError("GraphQL and the hand-written endpoint disagree")


def cache_problem(mode: str, seen: Sequence[str | None]) -> str | None:
    """Why the X-Cache headers ``seen`` on GraphQL answers do not fit the cache ``mode``, or
    None when they do: cold answers are never HIT, warm ones (after a warm-up) always are."""
    said = ", ".join(sorted({s or "no header" for s in seen}))
    hits = sum(s == HIT for s in seen)
    if mode == "cold":
        return None if hits == 0 else f"X-Cache said HIT with the cache off (saw {said})"
    if hits == len(seen):
        return None
    if hits == 0:
        return f"the server never answered X-Cache: HIT (saw {said}): no response cache to measure"
    return f"only {hits} of {len(seen)} answers said X-Cache: HIT (saw {said})"


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One endpoint measured by one wrk run."""

    endpoint: str
    run: wrk.WrkRun
    server_cpu_seconds: float
    database_cpu_seconds: float | None
    # What every other process of the machine used meanwhile (other work shares the cores).
    others_cpu_seconds: float

    @property
    def requests(self) -> int:
        return self.run.report.requests

    @property
    def rps(self) -> float:
        return self.run.report.requests_per_second

    @property
    def server_cpu_ms(self) -> float:
        return self.server_cpu_seconds * 1000 / self.requests

    @property
    def database_cpu_ms(self) -> float | None:
        if self.database_cpu_seconds is None:
            return None
        return self.database_cpu_seconds * 1000 / self.requests

    @property
    def server_busy(self) -> float:
        """The server's CPU as a share of one core over the window."""
        return self.server_cpu_seconds / self.run.wall_seconds

    @property
    def others_busy(self) -> float:
        """Other processes' CPU over the window, in cores."""
        return max(0.0, self.others_cpu_seconds / self.run.wall_seconds)


@dataclass
class Outcome:
    setup: Setup
    windows: dict[str, list[Window]] = field(
        default_factory=lambda: {name: [] for name in ENDPOINTS}
    )
    x_cache: list[str | None] = field(default_factory=list)
    # Why nothing is reported for this setup (the warm mode without a response cache).
    skipped: str | None = None

    def ratios(self) -> list[float]:
        """GraphQL's requests/s over the hand-written endpoint's, round by round."""
        pairs = zip(self.windows["graphql"], self.windows["handwritten"], strict=True)
        return [g.rps / h.rps for g, h in pairs]

    def cpu_ratios(self) -> list[float]:
        """The hand-written endpoint's server CPU per request over GraphQL's, round by round."""
        pairs = zip(self.windows["graphql"], self.windows["handwritten"], strict=True)
        return [h.server_cpu_ms / g.server_cpu_ms for g, h in pairs]

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios()
        return statistics.median(ratios) if ratios and self.skipped is None else None


def verdict(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "not measured"
    return "met" if ratio >= target else "not met"


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    threads: int
    connections: int
    rounds: int


def measure(
    server: Server,
    setup: Setup,
    endpoint: str,
    options: Options,
    script: Path | None,
    *,
    seconds: int,
    path: str | None = None,
) -> Window:
    """One wrk window on ``endpoint``: GraphQL (with ``script``) or a hand-written endpoint,
    at ``path`` (by default, this benchmark's own)."""
    if path is None:
        path = graphql_target(setup.method)[0] if endpoint == "graphql" else HANDWRITTEN_PATH
    cpu = setup.database.cpu
    machine_before = machine_cpu_seconds()
    server_before = cpu_seconds(server.pid)
    database_before = cpu() if cpu else None
    run = wrk.run(
        f"{server.base}{path}",
        duration=seconds,
        threads=options.threads,
        connections=options.connections,
        script=script if endpoint == "graphql" else None,
    )
    server_cpu = cpu_seconds(server.pid) - server_before
    database_cpu = None
    if cpu and database_before is not None:
        database_cpu = cpu_between(database_before, cpu())
    machine = machine_cpu_seconds() - machine_before
    others = machine - server_cpu - (database_cpu or 0.0) - run.cpu_seconds
    if run.report.failures:
        raise RuntimeError(
            f"{endpoint}: {run.report.failures} requests failed during the run "
            f"(socket errors or non-2xx answers):\n{run.output}"
        )
    return Window(endpoint, run, server_cpu, database_cpu, others)


def probe_cache(server: Server, setup: Setup, expected: dict[str, Any]) -> list[str | None]:
    seen = []
    for _ in range(PROBES):
        answer = fetch(server, "graphql", setup.method)
        if answer.data != expected:
            raise RuntimeError("GraphQL's answer changed during the benchmark")
        seen.append(answer.x_cache)
    return seen


def run_setup(setup: Setup, options: Options, script: Path | None) -> Outcome:
    outcome = Outcome(setup)
    label = f"{setup.database.name}, {setup.mode}, plugins {setup.plugins_label}"
    log(f"{label}: starting the server")
    with server_process(setup) as server:
        graphql = fetch(server, "graphql", setup.method)
        hand = fetch(server, "handwritten", setup.method)
        check_equivalent(graphql.data, hand.data, compare_prices=setup.plugins == "")
        for endpoint in ENDPOINTS:
            measure(server, setup, endpoint, options, script, seconds=options.warmup)
        outcome.x_cache = probe_cache(server, setup, graphql.data)
        problem = cache_problem(setup.mode, outcome.x_cache)
        if problem and setup.mode == "cold":
            raise RuntimeError(f"{label}: {problem}")
        if problem:
            log(f"{label}: not measured: {problem}")
            outcome.skipped = problem
            return outcome
        for round_ in range(options.rounds):
            # Each round pairs the two endpoints back to back, the order swapped every round so
            # that a drift in the machine's load does not always favour the same one.
            order = list(ENDPOINTS) if round_ % 2 == 0 else list(reversed(ENDPOINTS))
            for endpoint in order:
                window = measure(server, setup, endpoint, options, script, seconds=options.duration)
                outcome.windows[endpoint].append(window)
                log(
                    f"{label}: round {round_ + 1} {ENDPOINTS[endpoint]}: {window.rps:,.0f} req/s, "
                    f"p99 {window.run.report.p99_ms:.1f} ms, server CPU {window.server_busy:.0%}, "
                    f"wrk CPU {window.run.cpu_share:.0%}"
                )
                if endpoint != "graphql":
                    continue
                problem = cache_problem(setup.mode, probe_cache(server, setup, graphql.data))
                if problem and setup.mode == "cold":
                    raise RuntimeError(f"{label}: after round {round_ + 1}: {problem}")
                if problem:
                    # The window may have mixed cached and uncached answers: no figure.
                    outcome.skipped = f"after round {round_ + 1}, {problem}"
                    log(f"{label}: not measured: {outcome.skipped}")
                    return outcome
    return outcome


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ms(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cache_seen(outcome: Outcome) -> str:
    return "/".join(sorted({s or "none" for s in outcome.x_cache})) or "–"


def measurements_table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| database | cache | plugins | endpoint | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| database CPU ms/req | server CPU | wrk CPU | X-Cache |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for outcome in outcomes:
        setup = outcome.setup
        head = f"| {setup.database.name} | {setup.mode} | {setup.plugins_label} "
        if outcome.skipped:
            lines.append(
                f"{head}| GraphQL | n/a: {outcome.skipped} ||||||| {_cache_seen(outcome)} |"
            )
            continue
        for endpoint, windows in outcome.windows.items():
            cached = _cache_seen(outcome) if endpoint == "graphql" else "–"
            lines.append(
                f"{head}| {ENDPOINTS[endpoint]} "
                f"| {statistics.median(w.rps for w in windows):,.0f} "
                f"| {_ms(_median([w.run.report.p50_ms for w in windows]), 1)} "
                f"| {_ms(_median([w.run.report.p99_ms for w in windows]), 1)} "
                f"| {_ms(_median([w.server_cpu_ms for w in windows]))} "
                f"| {_ms(_median([w.database_cpu_ms for w in windows]))} "
                f"| {statistics.median(w.server_busy for w in windows):.0%} "
                f"| {max(w.run.cpu_share for w in windows):.0%} "
                f"| {cached} |"
            )
    return "\n".join(lines)


def ratios_table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| database | cache | plugins | GraphQL / hand-written, req/s | by server CPU per request "
        "| target | |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for outcome in outcomes:
        setup = outcome.setup
        target = TARGETS[setup.mode]
        ratio = outcome.ratio
        if ratio is None:
            shown, by_cpu = "n/a", "n/a"
        else:
            ratios = outcome.ratios()
            shown = f"**{ratio:.2f}×** ({min(ratios):.2f}–{max(ratios):.2f})"
            by_cpu = f"{statistics.median(outcome.cpu_ratios()):.2f}×"
        lines.append(
            f"| {setup.database.name} | {setup.mode} | {setup.plugins_label} | {shown} "
            f"| {by_cpu} | ≥ {target:.2f}× | {verdict(ratio, target)} |"
        )
    return "\n".join(lines)


def instrument_notes(outcomes: Sequence[Outcome]) -> list[str]:
    """What the windows say about the instrument: wrk's CPU should stay well below a core
    while the server's is near one, or the figures measure the machine's load instead."""
    windows = [w for o in outcomes for ws in o.windows.values() for w in ws]
    if not windows:
        return []
    wrk_max = max(w.run.cpu_share for w in windows)
    busy = [w.server_busy for w in windows]
    others = statistics.median(w.others_busy for w in windows)
    notes = [
        f"Instrument: wrk used at most {wrk_max:.0%} of a core in any measured window; the "
        f"server process used {min(busy):.0%}–{max(busy):.0%} of a core "
        f"(median {statistics.median(busy):.0%}); other processes of the machine used "
        f"{others:.2f} of its {os.cpu_count()} cores (median)."
    ]
    if wrk_max > WRK_BUSY_LIMIT:
        notes.append(
            f"**Warning:** wrk went above {WRK_BUSY_LIMIT:.0%} of a core: it may have limited "
            "the throughput; fewer connections or threads would measure the server better."
        )
    if min(busy) < SERVER_BUSY_FLOOR:
        notes.append(
            f"**Warning:** the server was below {SERVER_BUSY_FLOOR:.0%} of a core in some "
            "windows: it was waiting (for the database, for the CPU on a busy machine, or for "
            "the load generator), so those requests/s understate it. Server CPU per request "
            "depends much less on this."
        )
    if others > OTHERS_LIMIT:
        notes.append(
            f"**Warning:** other processes used {others:.2f} cores while the benchmark ran: "
            "the machine was busy with other work, and these figures are noisy. Measure on "
            "a quiet machine."
        )
    return notes


def report(outcomes: Sequence[Outcome], options: Options, method: str) -> str:
    parts = [measurements_table(outcomes), "", ratios_table(outcomes), ""]
    parts.append(
        f"wrk with {options.threads} thread(s) and {options.connections} connections; "
        f"GraphQL over {method}; per server, a {options.warmup:g} s warm-up of each endpoint, "
        f"then {options.rounds} round(s) of {options.duration:g} s per endpoint, alternating; "
        "medians over the rounds (wrk CPU: the highest), ratios from the same rounds (range in "
        "brackets)."
    )
    notes = instrument_notes(outcomes)
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts)


def machine(databases: Sequence[Database]) -> str:
    cpu = platform.processor() or platform.machine()
    versions = ", ".join(d.version for d in databases)
    wrk_version = subprocess.run(
        [wrk.executable(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {versions}, "
        f"wrk {wrk_version[1] if len(wrk_version) > 1 else '?'}"
    )


def replace_results(
    text: str, section: str, *, start: str = START_MARK, end: str = END_MARK
) -> str:
    """``text`` with what lies between the result markers replaced by ``section`` (the
    markers added at the end when missing)."""
    if start not in text or end not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{section}\n{end}{tail}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def comma_list(value: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{what}: choose from {', '.join(allowed)} (got {value!r})"
        )
    return names


def wrk_parser(
    prog: str, description: str, *, duration: int, warmup_help: str, rounds_help: str
) -> argparse.ArgumentParser:
    """The command line every benchmark of servers under wrk shares (the storefront's, the
    pricing and promotions plugins'): windows, warm-up, rounds, wrk's connections and threads,
    the databases, and ``--write`` (docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--duration", type=int, default=duration, help="seconds per measured window"
    )
    parser.add_argument("--warmup", type=int, default=2, help=warmup_help)
    parser.add_argument("--rounds", type=int, default=3, help=rounds_help)
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads")
    parser.add_argument(
        "--databases",
        type=lambda v: comma_list(v, list(DATABASES), "--databases"),
        default=list(DATABASES),
        help="comma-separated: sqlite,postgresql",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    return parser


def wrk_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """The measuring options of ``wrk_parser``'s arguments, checked; exits when wrk is
    missing."""
    if min(args.duration, args.warmup, args.rounds, args.threads) < 1:
        parser.error("--duration, --warmup, --rounds and --threads must be at least 1")
    try:
        wrk.executable()
    except wrk.WrkMissing as missing:
        parser.exit(2, f"{missing}\n")
    return Options(args.duration, args.warmup, args.threads, args.connections, args.rounds)


def main(argv: list[str] | None = None) -> int:
    parser = wrk_parser(
        "python -m bench.storefront",
        __doc__.split("\n\n")[0],
        duration=10,
        warmup_help="seconds per endpoint and server",
        rounds_help="alternating rounds per setup",
    )
    parser.add_argument(
        "--modes",
        type=lambda v: comma_list(v, list(TARGETS), "--modes"),
        default=list(TARGETS),
        help="comma-separated: cold,warm",
    )
    parser.add_argument(
        "--method", choices=["POST", "GET"], default="POST", help="how GraphQL is asked"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plugins", help="SHOPGRAPH_PLUGINS for the server (an allow-list)")
    group.add_argument("--no-plugins", action="store_true", help="an empty allow-list")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        serve(args.serve)
        return 0
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk gives each thread some)")
    options = wrk_options(parser, args)

    if args.no_plugins:
        plugin_sets: list[tuple[str, str | None]] = [("none", "")]
    elif args.plugins is not None:
        plugin_sets = [(args.plugins or "none", args.plugins)]
    else:
        plugin_sets = [("all installed", None), ("none", "")]

    outcomes: list[Outcome] = []
    databases: list[Database] = []
    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-") as tmp:
        script: Path | None = None
        if args.method == "POST":
            script = Path(tmp) / "graphql.lua"
            script.write_text(wrk.post_script(json.dumps({"query": GRAPHQL_QUERY})))
        for name in args.databases:
            log(f"preparing a demo shop ({DATABASES[name]}) …")
            opened = sqlite_database(Path(tmp)) if name == "sqlite" else postgresql_database()
            with opened as database:
                databases.append(database)
                for label, plugins in plugin_sets:
                    for mode in args.modes:
                        setup = Setup(database, mode, label, plugins, args.method)
                        outcomes.append(run_setup(setup, options, script))

    text = report(outcomes, options, args.method)
    print(text)
    if args.write:
        from server.config import Settings
        from server.plugins import load_plugins

        installed = ", ".join(r.name for r in load_plugins(Settings()).records) or "none"
        section = (
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine(databases)}; installed "
            f"plugins: {installed}.\n\n{text}"
        )
        current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        DOCS.write_text(replace_results(current, section))
        log(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
