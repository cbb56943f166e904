"""The KPI benchmark (docs/benchmarks.md, "KPIs"): the shop of the insights benchmark
(50,000 customers, 1,000,000 orders and 2,000,000 behaviour events over two years, written in
bulk), its KPI aggregates rebuilt (timed), refreshed after 1,000 new orders (timed), then
``shopKpis`` for a year by day, driven by wrk against a real uvicorn, beside a hand-written
Starlette endpoint in the same server that reads the same aggregate rows and answers the same
figures.

    python -m bench.kpis [--customers N] [--orders N] [--events N] [--databases sqlite,postgresql]
                         [--duration S] [--connections N] [--keys gmv,orders,...]

No timing is asserted anywhere: tests/bench/test_kpis.py runs the parts on a tiny shop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import insights, storefront, wrk

HANDWRITTEN_PATH = "/bench/kpis"
# A dashboard's row of figures: money, counts and shares, distinct counts among them.
KEYS = ("gmv", "orders", "aov", "visitors", "conversion_rate", "repurchase_rate")
# A year by day, ending on the insights shop's "as of" day.
END = insights.AS_OF.date()
START = END - timedelta(days=365)
QUERY = """query($input: ShopKpisInput!) { shopKpis(input: $input) { __typename
  ... on ShopKpis { kpis { key total previousTotal lastYearTotal
                           points { start end value previous lastYear } } } } }"""


def graphql_body(keys: Sequence[str] = KEYS) -> str:
    variables = {
        "input": {
            "from": START.isoformat(),
            "to": (END - timedelta(days=1)).isoformat(),
            "keys": list(keys),
        }
    }
    return json.dumps({"query": QUERY, "variables": variables})


# --------------------------------------------------------------------------------------------
# The hand-written endpoint
# --------------------------------------------------------------------------------------------


def _share(a: int, b: int) -> float | None:
    return a / b if b else None


def _value(key: str, row: dict[str, int]) -> float | None:
    """The figure ``key`` of one period's counters (the definitions of docs/insights.md)."""
    if key == "gmv":
        return float(row["gmv"])
    if key == "orders":
        return float(row["purchases"])
    if key == "aov":
        return _share(row["gmv"], row["purchases"])
    if key == "visitors":
        return float(row["visitors"])
    if key == "conversion_rate":
        return _share(row["payers"], row["visitors"])
    if key == "repurchase_rate":
        paying = row["paying_customers"]
        return _share(paying - row["new_customers"], paying)
    raise KeyError(key)


COUNTERS = ("gmv", "purchases", "visitors", "payers", "paying_customers", "new_customers")


def add_handwritten_endpoint(app: Any) -> Any:
    """``GET /bench/kpis?keys=…``: the same year by day as the GraphQL query, from the same
    rows of ``kpi_aggregate`` with hand-written SQL, the API key checked like the API does."""
    from pyroaring import BitMap
    from sqlalchemy import text
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from server.services import apikeys
    from server.services.kpi_aggregates import pieces

    engine = app.state.shopgraph.engine
    days_sql = text(
        "SELECT start, " + ", ".join(COUNTERS) + " FROM kpi_aggregate "
        "WHERE period = 'DAY' AND start >= :a AND start < :b"
    )
    sets_sql = text(
        "SELECT period, start, gmv, purchases, new_customers, customers_set, visitors_set, "
        "payers_set FROM kpi_aggregate WHERE period = :p AND start >= :a AND start < :b"
    )
    ranges = {
        "now": (START, END),
        "previous": (START - (END - START), START),
        "lastYear": (START.replace(year=START.year - 1), END.replace(year=END.year - 1)),
    }

    async def total(conn: Any, start: date, end: date) -> dict[str, int]:
        wanted = pieces(start, end)
        found: dict[tuple[str, date], Any] = {}
        for period in {p for p, _ in wanted}:
            starts = [s for p, s in wanted if p == period]
            rows = await conn.execute(
                sets_sql, {"p": period.value, "a": min(starts), "b": max(starts) + timedelta(1)}
            )
            for row in rows:
                found[(row.period, date.fromisoformat(str(row.start)[:10]))] = row
        sums = {"gmv": 0, "purchases": 0, "new_customers": 0}
        customers, visitors, payers = BitMap(), BitMap(), BitMap()
        for period, start_ in wanted:
            row = found.get((period.value, start_))
            if row is None:
                continue
            for name in sums:
                sums[name] += int(getattr(row, name))
            customers |= BitMap.deserialize(row.customers_set)
            visitors |= BitMap.deserialize(row.visitors_set)
            payers |= BitMap.deserialize(row.payers_set)
        return {
            **sums,
            "paying_customers": len(customers),
            "visitors": len(visitors),
            "payers": len(payers),
        }

    async def kpis(request: Request) -> Response:
        keys = request.query_params.get("keys", ",".join(KEYS)).split(",")
        raw = request.headers.get("x-api-key", "")
        async with engine.connect() as conn:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=conn) as session:
                if await apikeys.authenticate(session, raw) is None:
                    return JSONResponse({"error": "unauthorised"}, status_code=401)
            lowest = min(a for a, _ in ranges.values())
            rows = await conn.execute(days_sql, {"a": lowest, "b": END})
            by_day = {
                date.fromisoformat(str(r.start)[:10]): dict(zip(COUNTERS, r[1:], strict=True))
                for r in rows
            }
            totals = {name: await total(conn, a, b) for name, (a, b) in ranges.items()}
        zero = dict.fromkeys(COUNTERS, 0)
        out = []
        for key in keys:
            points = []
            day = START
            while day < END:
                points.append(
                    {
                        "start": day.isoformat(),
                        "end": (day + timedelta(1)).isoformat(),
                        "value": _value(key, by_day.get(day, zero)),
                        "previous": _value(key, by_day.get(day - (END - START), zero)),
                        "lastYear": _value(key, by_day.get(_year_back(day), zero)),
                    }
                )
                day += timedelta(1)
            out.append(
                {
                    "key": key,
                    "total": _value(key, totals["now"]),
                    "previousTotal": _value(key, totals["previous"]),
                    "lastYearTotal": _value(key, totals["lastYear"]),
                    "points": points,
                }
            )
        return JSONResponse({"data": {"shopKpis": {"kpis": out}}})

    app.router.routes.insert(0, Route(HANDWRITTEN_PATH, kpis))
    return app


def _year_back(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def serve(port: int) -> None:
    import uvicorn

    from server.app import asgi_app

    app = add_handwritten_endpoint(asgi_app())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# The shop and its aggregates
# --------------------------------------------------------------------------------------------


@dataclass
class Built:
    """What loading and building took (seconds)."""

    load: float = 0.0
    rebuild: float = 0.0
    refresh: float = 0.0
    rebuild_summary: str = ""
    refresh_summary: str = ""
    api_key: str = ""


def filler(
    customers: int, orders: int, events: int, built: Built, *, migrated: bool = False
) -> Callable[[str], None]:
    """Migrate (unless ``migrated``), load the shop in bulk, rebuild the aggregates (timed),
    add 1,000 orders and refresh (timed), and make the API key the load uses."""

    def fill(url: str) -> None:
        from server import migrate
        from server.config import Settings
        from server.migrate import run_async
        from server.permissions import RoleMap
        from server.plugins import load_plugins
        from server.services.apikeys import create_api_key_in

        settings = Settings(database_url=url)
        plugins = load_plugins(settings)
        if not migrated:
            migrate.upgrade(url, plugins=plugins)
        loaded = run_async(lambda: insights.load_shop(url, customers, orders, events))
        built.load = loaded.seconds
        built.rebuild, built.rebuild_summary = run_async(lambda: _rebuild(url))
        run_async(lambda: insights.add_orders(url, loaded, insights.NEW_ORDERS, insights.AS_OF))
        built.refresh, built.refresh_summary = run_async(lambda: _refresh(url))
        roles = RoleMap.build(settings, plugins.permissions)
        created = run_async(
            lambda: create_api_key_in(
                url, roles, name="bench", scopes=["insights.read"], created_by="bench"
            )
        )
        built.api_key = created.secret

    return fill


async def _rebuild(url: str) -> tuple[float, str]:
    from server.config import Settings
    from server.db import create_engine, session_factory
    from server.progress import Progress
    from server.services import kpi_aggregates

    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        began = time.perf_counter()
        with Progress("kpis rebuild", await kpi_aggregates.rebuild_steps(sessions)) as progress:
            done = await kpi_aggregates.rebuild(
                sessions, Settings(database_url=url), progress=progress
            )
        return time.perf_counter() - began, done.summary()
    finally:
        await engine.dispose()


async def _refresh(url: str) -> tuple[float, str]:
    from server.config import Settings
    from server.db import create_engine, session_factory
    from server.services import kpi_aggregates

    engine = create_engine(url)
    try:
        began = time.perf_counter()
        done = await kpi_aggregates.refresh(session_factory(engine), Settings(database_url=url))
        return time.perf_counter() - began, done.summary()
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    database: str
    built: Built
    graphql: wrk.WrkReport
    handwritten: wrk.WrkReport

    @property
    def ratio(self) -> float:
        return self.graphql.requests_per_second / self.handwritten.requests_per_second


def _fetch(base: str, path: str, key: str, body: str | None) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path,
        data=body.encode() if body is not None else None,
        headers={"X-Api-Key": key, "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return dict(json.loads(answer.read()))


def same_figures(graphql: dict[str, Any], handwritten: dict[str, Any]) -> bool:
    """Whether both answers give the same numbers (floats to 1e-9)."""

    def close(a: Any, b: Any) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return all(close(a[k], b.get(k)) for k in a if k != "__typename")
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
        if isinstance(a, float | int) and isinstance(b, float | int):
            return abs(a - b) <= 1e-9 * max(1.0, abs(a))
        return bool(a == b)

    return close(graphql["data"], handwritten["data"])


def _script(directory: Path, key: str, body: str | None) -> Path:
    lines = [f'wrk.headers["X-Api-Key"] = "{key}"']
    if body is not None:
        lines.insert(0, wrk.post_script(body))
    path = directory / ("graphql.lua" if body is not None else "handwritten.lua")
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(
    database: storefront.Database, built: Built, directory: Path, duration: int, connections: int
) -> Measured:
    setup = storefront.Setup(database, "cold", "built-in", None, "POST")
    body = graphql_body()
    with storefront.server_process(setup, module="bench.kpis") as server:
        answers = (
            _fetch(server.base, "/graphql", built.api_key, body),
            _fetch(server.base, HANDWRITTEN_PATH, built.api_key, None),
        )
        if not same_figures(*answers):
            raise RuntimeError("the GraphQL query and the hand-written endpoint disagree")
        runs = {}
        for name, path, script in (
            ("graphql", "/graphql", _script(directory, built.api_key, body)),
            ("handwritten", HANDWRITTEN_PATH, _script(directory, built.api_key, None)),
        ):
            # A short warm-up, then the measured run.
            wrk.run(server.base + path, duration=2, threads=1, connections=1, script=script)
            runs[name] = wrk.run(
                server.base + path,
                duration=duration,
                threads=1,
                connections=connections,
                script=script,
            ).report
            if runs[name].failures:
                raise RuntimeError(f"{name}: {runs[name].failures} failed requests")
    return Measured(database.name, built, runs["graphql"], runs["handwritten"])


def report(results: Sequence[Measured], customers: int, orders: int, events: int) -> str:
    lines = [
        f"{customers:,} customers, {orders:,} orders, {events:,} behaviour events; "
        f"shopKpis {START} to {END} by day ({len(KEYS)} KPIs: {', '.join(KEYS)}), one uvicorn "
        f"worker, wrk with one thread; {platform.machine()}, {os.cpu_count()} cores.",
        "",
        "| database | rebuild (s) | refresh after 1,000 orders (s) | endpoint | p50 (ms) | "
        "p99 (ms) | requests/s | GraphQL / hand-written |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        for name, r in (("GraphQL", m.graphql), ("hand-written", m.handwritten)):
            lines.append(
                f"| {m.database} | {m.built.rebuild:.1f} | {m.built.refresh:.2f} | {name} | "
                f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.requests_per_second:.1f} | "
                f"{m.ratio:.2f} |"
            )
    lines.append("")
    for m in results:
        lines.append(f"- {m.database}: {m.built.rebuild_summary}; {m.built.refresh_summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kpis", description=__doc__)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    # The server measured runs no periodic job: the insights recomputation over a million
    # orders would run in the middle of the measurement.
    os.environ["SHOPGRAPH_RUN_JOBS"] = "false"
    wanted = storefront.comma_list(args.databases, list(storefront.DATABASES), "databases")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in wanted:
            built = Built()
            fill = filler(args.customers, args.orders, args.events, built)
            context = (
                storefront.sqlite_database(directory, fill, name="kpis.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with context as database:
                storefront.log(f"{name}: {built.rebuild_summary}; {built.refresh_summary}")
                results.append(measure(database, built, directory, args.duration, args.connections))
    print(report(results, args.customers, args.orders, args.events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
