"""The logistics webhook benchmark: carriers' tracking events ingested per second through
``POST /plugins/logistics/carriers/{code}/events``, against a trivial signed plugin route in
the same run, driven by wrk.

    python -m bench.logistics_webhook [--duration S] [--rounds N] [--batch N]
        [--databases sqlite,postgresql] [--write]

For each database it migrates an empty shop and adds one carrier and ``--shipments`` shipments
on their way (picked up a day ago, their orders SHIPPED, tracked, with a promise and transit
times, so every event revises an ETA): the scans measured are the en-route ones that make up
most of a carrier's traffic. Before each window it signs ``--bodies`` distinct bodies of ``--batch`` events (unique
event ids, scans of different shipments in time order, a timestamp inside the tolerance); the
wrk script only picks the next body (a per-thread counter striding over the table), so it
computes nothing. Three windows per round, alternating:

* **new events**: every request carries events never seen: each is inserted, applied to its
  shipment (its core timeline extended) and the ETA revised;
* **replays**: the bodies of the window before sent again: every event a duplicate;
* **baseline**: a plugin route of this benchmark that checks the same signature and parses the
  same body, and writes nothing: the floor of a signed plugin route.

After the new-events window the stored events are counted: they must equal the events sent
(requests × batch), so the figure is of work done, not of refusals. ``--write`` puts the table
into docs/benchmarks.md ("Logistics: webhook ingestion").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import storefront, wrk
from bench.storefront import DATABASES, DOCS, Database, Options, Setup, log, server_process
from server.plugin import PluginInfo, hookimpl

SECRET = "bench-carrier-secret"
CARRIER = "BENCHX"
START_MARK = "<!-- logistics-webhook-results:start -->"
END_MARK = "<!-- logistics-webhook-results:end -->"
PING = "/plugins/bench-webhook/ping"
EVENTS = f"/plugins/logistics/carriers/{CARRIER}/events"
SIDES = ("new events", "replays", "baseline")


# --- the server ----------------------------------------------------------------------------


class BenchWebhook:
    """A plugin with one signed route that does nothing else: the baseline."""

    PLUGIN_INFO = PluginInfo(name="bench-webhook", version="1.0")

    @hookimpl
    def routes(self) -> list[object]:
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from plugins.logistics.service.tracking import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
        from server.plugin import RouteError

        async def ping(request: Request) -> JSONResponse:
            body = await request.body()
            stamp = request.headers.get(TIMESTAMP_HEADER, "")
            given = request.headers.get(SIGNATURE_HEADER, "")
            if not hmac.compare_digest(sign(SECRET, stamp, body).encode(), given.encode()):
                raise RouteError(401, "INVALID_SIGNATURE", "bad signature")
            data = json.loads(body)
            return JSONResponse({"accepted": 0, "received": len(data)})

        return [Route("/ping", ping, methods=["POST"])]


def serve(port: int) -> None:
    import uvicorn

    from server.app import create_app, tune_process
    from server.config import get_settings
    from server.logs import configure_logging
    from server.plugins import load_plugins

    settings = get_settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    app = create_app(settings, load_plugins(settings, extra=[BenchWebhook()]))
    tune_process()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the shop ----------------------------------------------------------------------------------


def filler(shipments: int) -> Callable[[str], None]:
    def fill(url: str) -> None:
        from server import migrate
        from server.config import Settings
        from server.plugins import load_plugins

        migrate.upgrade(url, plugins=load_plugins(Settings(database_url=url)))
        asyncio.run(_network(url, shipments))

    return fill


async def _network(url: str, shipments: int) -> None:
    from plugins.logistics.models import (
        Carrier,
        CarrierKind,
        CarrierService,
        Promise,
        TrackedShipment,
        TransitTime,
    )
    from server.db import create_engine, session_factory
    from server.models import Order, OrderStatus, Shipment, ShipmentStatus, Warehouse

    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        async with session_factory(engine)() as session:
            carrier = Carrier(
                code=CARRIER,
                name="Bench Express",
                kind=CarrierKind.THIRD_PARTY,
                webhook_secret=SECRET,
            )
            warehouse = Warehouse(code="BENCH-WH", name="杭州仓", province="浙江省", city="杭州市")
            session.add_all([carrier, warehouse])
            await session.flush()
            service = CarrierService(carrier_id=carrier.id or 0, code="BENCH-STD", label="标快")
            session.add(service)
            await session.flush()
            session.add(
                TransitTime(
                    service_id=service.id or 0,
                    from_region="浙江省",
                    to_region="*",
                    min_days=1,
                    max_days=3,
                )
            )
            latest = (now + timedelta(days=3)).date()
            orders = [
                Order(
                    number=f"BENCH-{i}",
                    status=OrderStatus.SHIPPED,
                    subtotal_amount=1000,
                    total_amount=1000,
                    shipping_address={"province": "上海市"},
                    promised_by=latest,
                )
                for i in range(shipments)
            ]
            session.add_all(orders)
            await session.flush()
            parcels = [
                Shipment(
                    order_id=order.id or 0,
                    warehouse_id=warehouse.id or 0,
                    carrier=CARRIER,
                    tracking_number=f"BX{i:08d}",
                    status=ShipmentStatus.IN_TRANSIT,
                    created_at=now - timedelta(days=1, hours=2),
                    shipped_at=now - timedelta(days=1),
                )
                for i, order in enumerate(orders)
            ]
            session.add_all(parcels)
            await session.flush()
            for order, parcel in zip(orders, parcels, strict=True):
                session.add(
                    Promise(
                        order_id=order.id or 0,
                        quote_code="BENCH-STD",
                        service_id=service.id or 0,
                        carrier_id=carrier.id or 0,
                        from_region="浙江省",
                        to_region="上海市",
                        earliest=latest - timedelta(days=2),
                        latest=latest,
                    )
                )
                session.add(
                    TrackedShipment(
                        shipment_id=parcel.id or 0,
                        order_id=order.id or 0,
                        carrier_id=carrier.id or 0,
                        service_id=service.id,
                        from_region="浙江省",
                        to_region="上海市",
                        last_event_at=now - timedelta(days=1),
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()


async def _stored_events(url: str) -> tuple[int, int]:
    """Events stored, and outbox events not yet dispatched."""
    from sqlalchemy import func, select

    from plugins.logistics.models import CarrierEvent
    from server.db import create_engine, session_factory
    from server.models import OutboxEvent

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            stored = await session.scalar(select(func.count()).select_from(CarrierEvent))
            waiting = await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.dispatched_at.is_(None))  # type: ignore[union-attr]
            )
            return int(stored or 0), int(waiting or 0)
    finally:
        await engine.dispose()


def _settled(url: str) -> int:
    """The stored events once the server has finished what it was sent, and dispatched the
    domain events that raised (the next window starts on a quiet server)."""
    deadline = time.monotonic() + 600
    count = asyncio.run(_stored_events(url))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = asyncio.run(_stored_events(url))
        if again == count and again[1] == 0:
            break
        count = again
    return count[0]


# --- the load --------------------------------------------------------------------------------


def _sign(stamp: str, body: bytes) -> str:
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def bodies(window: int, count: int, batch: int, shipments: int) -> list[tuple[str, str]]:
    """``count`` signed bodies of ``batch`` events each, unique ids; each shipment's scans in
    time order across the bodies."""
    base = datetime.now(UTC) - timedelta(hours=20)
    out: list[tuple[str, str]] = []
    for i in range(count):
        events = []
        for j in range(batch):
            n = i * batch + j
            moment = base + timedelta(seconds=window * count * batch + n)
            events.append(
                {
                    "event_id": f"w{window}-{n}",
                    "tracking_number": f"BX{n % shipments:08d}",
                    "status": "31",
                    "occurred_at": moment.isoformat(),
                    "location": "杭州转运中心",
                }
            )
        out.append((json.dumps(events), ""))
    return out


def lua_script(signed: Sequence[tuple[str, str]], stamp: str, path: str) -> str:
    """Each wrk thread sends the bodies ``id, id + threads, …`` in turn: no body is sent twice
    while they last. The signatures are computed here, not in Lua."""

    def q(value: str) -> str:
        return "[==[" + value + "]==]"

    rows = ",\n".join(f"{{{q(b)}, {q(s)}}}" for b, s in signed)
    return f"""
local bodies = {{
{rows}
}}
local next_thread = 0
function setup(thread)
  thread:set("id", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  n = id + 1
end
function request()
  local entry = bodies[((n - 1) % #bodies) + 1]
  n = n + threads
  return wrk.format("POST", {q(path)}, {{
    ["Content-Type"] = "application/json",
    ["X-Carrier-Timestamp"] = {q(stamp)},
    ["X-Carrier-Signature"] = entry[2],
  }}, entry[1])
end
"""


@dataclass
class Window:
    side: str
    requests_per_second: float
    events_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int


def _window(
    base: str,
    path: str,
    signed: list[tuple[str, str]],
    stamp: str,
    options: Options,
    side: str,
    batch: int,
) -> Window:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        text = lua_script(signed, stamp, path).replace(
            "function init(args)", f"threads = {options.threads}\nfunction init(args)"
        )
        script.write_text(text)
        run = wrk.run(
            base + path,
            duration=options.duration,
            threads=options.threads,
            connections=options.connections,
            script=script,
        )
    report = run.report
    per = batch if side != "baseline" else 0
    return Window(
        side,
        report.requests_per_second,
        report.requests_per_second * per,
        report.p50_ms,
        report.p99_ms,
        report.requests,
        report.bad_statuses + report.socket_errors,
    )


def _signed(
    window: int, count: int, batch: int, shipments: int
) -> tuple[str, list[tuple[str, str]]]:
    stamp = str(int(time.time()))
    raw = bodies(window, count, batch, shipments)
    return stamp, [(b, _sign(stamp, b.encode())) for b, _ in raw]


def measure(
    database: Database, options: Options, batch: int, shipments: int, count: int
) -> list[Window]:
    setup = Setup(database, "cold", "logistics", None, "POST")
    os.environ["SHOPGRAPH_LOGISTICS_WEBHOOK_TOLERANCE_SECONDS"] = "3600"
    windows: list[Window] = []
    with server_process(setup, "bench.logistics_webhook") as server:
        # Warm-up: a window's worth of new events, not measured.
        stamp, signed = _signed(0, count, batch, shipments)
        warm = Options(options.warmup, options.warmup, options.threads, options.connections, 1)
        _window(server.base, EVENTS, signed, stamp, warm, "new events", batch)
        for r in range(1, options.rounds + 1):
            before = _settled(database.url)
            stamp, signed = _signed(r, count, batch, shipments)
            new = _window(server.base, EVENTS, signed, stamp, options, "new events", batch)
            stored = _settled(database.url) - before
            sent = min(new.requests, count) * batch
            if new.requests > count:
                log(f"  {new.requests} requests for {count} bodies: raise --bodies")
            # Requests still in flight when wrk stops are answered after it counted: more may
            # be stored than counted, never fewer.
            if stored < sent:
                raise RuntimeError(f"{sent} new events answered, {stored} stored")
            log(f"  {sent} new events answered in the window, {stored} stored")
            replay = _window(server.base, EVENTS, signed, stamp, options, "replays", batch)
            _settled(database.url)
            base = _window(server.base, PING, signed, stamp, options, "baseline", batch)
            for w in (new, replay, base):
                log(
                    f"  {database.name} round {r} {w.side}: {w.requests_per_second:.0f} req/s, "
                    f"{w.events_per_second:.0f} events/s, p50 {w.p50_ms:.1f} ms, bad {w.bad}"
                )
            windows += [new, replay, base]
    return windows


def table(results: dict[str, list[Window]], batch: int) -> str:
    lines = [
        "| database | side | events/s | requests/s | p50 ms | p99 ms | share of baseline |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, windows in results.items():
        base = statistics.median(w.requests_per_second for w in windows if w.side == "baseline")
        for side in SIDES:
            mine = [w for w in windows if w.side == side]
            rps = statistics.median(w.requests_per_second for w in mine)
            eps = statistics.median(w.events_per_second for w in mine)
            lines.append(
                f"| {name} | {side} | {eps:,.0f} | {rps:,.0f} | "
                f"{statistics.median(w.p50_ms for w in mine):.1f} | "
                f"{statistics.median(w.p99_ms for w in mine):.1f} | {rps / base:.2f} |"
            )
    return "\n".join(lines) + f"\n\nMedians over the rounds; {batch} events per request."


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return 0
    parser = storefront.wrk_parser(
        "python -m bench.logistics_webhook",
        __doc__.split("\n\n")[0],
        duration=10,
        warmup_help="seconds of new events before the measured rounds",
        rounds_help="rounds of the three windows",
    )
    parser.add_argument("--batch", type=int, default=10, help="events per request")
    parser.add_argument("--shipments", type=int, default=2000, help="shipments on their way")
    parser.add_argument("--bodies", type=int, default=1500, help="distinct bodies per window")
    # Writes of one database: more connections only queue behind its write lock.
    parser.set_defaults(connections=4)
    args = parser.parse_args(argv)
    options = storefront.wrk_options(parser, args)
    results: dict[str, list[Window]] = {}
    for name in args.databases:
        fill = filler(args.shipments)
        with tempfile.TemporaryDirectory() as tmp:
            maker = (
                storefront.sqlite_database(Path(tmp), fill, "webhook.db")
                if name == "sqlite"
                else storefront.postgresql_database(fill)
            )
            with maker as database:
                results[DATABASES[name]] = measure(
                    database, options, args.batch, args.shipments, args.bodies
                )
    text = table(results, args.batch)
    print(text)
    if args.write:
        doc = DOCS.read_text()
        DOCS.write_text(storefront.replace_results(doc, text, start=START_MARK, end=END_MARK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
