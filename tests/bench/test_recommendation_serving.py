"""The recommendation serving benchmark's parts on a tiny shop, on both databases: after a
rebuild, the four measured queries (signed in with the benchmark's bearer token, an anonymous
session with recent views, a product page, ``product(id:)``) answer in a live server, each
recommendation answer writes an impression, and the report has its columns. No timing is
asserted (wrk is not run here)."""

from __future__ import annotations

import httpx

from bench import recommendation, wrk
from bench import recommendation_serving as bench
from server.app import create_app
from server.config import Settings
from server.plugins import PluginRuntime
from tests.support.server import LiveServer

SIZES = {"products": 1_500, "customers": 200, "orders": 1_500, "events": 5_000}


async def test_the_measured_queries_answer_on_a_rebuilt_tiny_shop(
    database_url: str, settings: Settings, plugins: PluginRuntime
) -> None:
    shop = await recommendation.generate_shop(database_url, **SIZES, quiet=True)
    await recommendation.rebuild_once(database_url)
    targets = bench.pick_targets(shop)
    plan = shop.plan
    # The customer with the most orders; the session views products of the product's shelf.
    customer = int(shop.customer_ids.tolist().index(targets.customer_id))
    assert targets.customer_orders == int((plan.order_customer == customer).sum()) > 1
    assert len(targets.session_products) == bench.SESSION_VIEWS
    index = shop.product_ids.tolist()
    shelf = plan.product_category[index.index(targets.product_id)]
    assert all(plan.product_category[index.index(p)] == shelf for p in targets.session_products)
    await bench.add_session_views(database_url, targets)

    before = await bench.impressions(database_url)
    token = bench.customer_token(settings.secret_key, database_url, targets.customer_id)
    asked = bench.queries(targets, token)
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            answers = [
                (await http.post("/graphql", content=q.body, headers=bench.headers(q))).json()
                for q in asked
            ]
    finally:
        server.stop()
    items = [bench.check_answer(q, a) for q, a in zip(asked, answers, strict=True)]
    assert items == [10, 10, 10, 1]
    # The baseline is the product the product page's recommendations are for.
    assert answers[3]["data"]["product"]["id"] == bench.storefront.global_id(
        "Product", targets.product_id
    )
    # Signed in, the answer is the customer's (it differs from the anonymous session's), and
    # the product page does not recommend its own product.
    home = [i["product"]["id"] for i in answers[0]["data"]["recommendations"]["items"]]
    session = [i["product"]["id"] for i in answers[1]["data"]["recommendations"]["items"]]
    page = [i["product"]["id"] for i in answers[2]["data"]["recommendations"]["items"]]
    assert home != session
    assert answers[3]["data"]["product"]["id"] not in page
    # Each recommendation answer wrote its impression.
    assert await bench.impressions(database_url) - before == 3

    # A report from made-up wrk figures: the ratio is each p50 over product(id:)'s.
    def window(p50: float) -> bench.Window:
        report = wrk.WrkReport(100, 1.0, 100.0, {50.0: p50, 99.0: p50 * 2}, 0, 0)
        return bench.Window(wrk.WrkRun(report, "", 1.0, 0.1), 0.5, None, 0.5)

    measured = bench.Measured(
        "SQLite", plan.sizes, 1.0, targets, dict(zip([q.name for q in asked], items, strict=True))
    )
    for q, p50 in zip(asked, (12.0, 9.0, 6.0, 4.0), strict=True):
        measured.windows[q.name] = [window(p50), window(p50)]
    table = bench.report([measured], duration=1, rounds=2, connections=2).splitlines()
    assert table[2].startswith("| database | query | items | p50 (ms) | p99 (ms)")
    assert table[4].startswith(
        "| SQLite | HOME, signed-in customer | 10 | 12.0 | 24.0 | 100.0 | 3.00 |"
    )
    assert table[7].startswith("| SQLite | product | 1 | 4.0 | 8.0 | 100.0 | 1.00 |")
    assert "3.00× product(id:)'s, over the goal of 3" in table[-1]
