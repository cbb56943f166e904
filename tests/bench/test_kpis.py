"""The KPI benchmark's parts on a tiny shop, on both databases: the bulk-loaded shop's
aggregates rebuilt and refreshed after the new orders, and the hand-written endpoint answering
the same figures as the GraphQL query, in a live server. No timing is asserted."""

from __future__ import annotations

import httpx

from bench import kpis as bench
from server.app import create_app
from server.config import Settings
from server.plugins import PluginRuntime
from tests.support.server import LiveServer


async def test_the_benchmark_parts_on_a_tiny_shop(
    database_url: str, settings: Settings, plugins: PluginRuntime
) -> None:
    built = bench.Built()
    bench.filler(200, 2_000, 1_000, built, migrated=True)(database_url)
    assert built.rebuild_summary.startswith("kpis: rebuilt")
    # The 1,000 new orders were placed on one day (the hour before the shop's "as of").
    assert built.refresh_summary.startswith("kpis: refreshed 1 days, 1 weeks, 1 months")
    server = LiveServer(bench.add_handwritten_endpoint(create_app(settings, plugins))).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            headers = {"X-Api-Key": built.api_key}
            graphql = await http.post(
                "/graphql",
                content=bench.graphql_body(),
                headers=headers | {"Content-Type": "application/json"},
            )
            handwritten = await http.get(bench.HANDWRITTEN_PATH, headers=headers)
            refused = await http.get(bench.HANDWRITTEN_PATH, headers={"X-Api-Key": "sg_x_y"})
    finally:
        server.stop()
    assert graphql.status_code == handwritten.status_code == 200
    assert refused.status_code == 401
    answer = graphql.json()
    kpis = answer["data"]["shopKpis"]["kpis"]
    assert [k["key"] for k in kpis] == list(bench.KEYS)
    assert all(len(k["points"]) == 365 for k in kpis)
    # The year holds orders: the figures are not all zeros, and both endpoints agree on them.
    assert kpis[0]["total"] > 0 and kpis[1]["total"] > 0
    assert bench.same_figures(answer, handwritten.json())
    # A different figure is noticed.
    changed = handwritten.json()
    changed["data"]["shopKpis"]["kpis"][0]["total"] += 1
    assert not bench.same_figures(answer, changed)
