"""``shopgraph demo-data`` with the recommendation plugin: the models are rebuilt from the demo
shop in its transaction, and answers served through the serving path leave clicks and orders
that the performance query and the KPIs count, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.config import Settings
from server.demo import POPULATE_STEPS
from server.models import StaffRole
from server.services.forecasts import shop_day
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)
PERFORMANCE = """query($from: Date!, $to: Date!) { recommendationPerformance(from: $from, to: $to) {
  ... on RecommendationPerformance { total { answers shown clicks orders converted } } } }"""
KPIS = """query($input: ShopKpisInput!) { shopKpis(input: $input) {
  ... on ShopKpis { kpis { key total } } } }"""
HOME = "{ recommendations(context: HOME, first: 10) { items { component position } } }"


@pytest.mark.heavy
async def test_the_demo_shop_has_models_answers_clicks_and_orders(
    database_url: str, gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": "recommendation"}
    args = ["demo-data", "--customers", "20", "--products", "30", "--orders", "60"]
    args += ["--seed", "9", "--as-of", AS_OF.date().isoformat()]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("demo-data: ")]
    total = POPULATE_STEPS + 1
    summary = re.search(r"plugin recommendation: (.*)", result.stdout)
    assert summary is not None
    # The plugin's step (the rebuild's own notes on the way), then the core's alerts.
    assert steps[-2:] == [
        f"demo-data: recommendation: {summary.group(1)} ({POPULATE_STEPS}/{total})",
        f"demo-data: alerts ({total}/{total})",
    ]
    assert any("build 1 READY" in line for line in steps)
    counts = {
        what: int(n) for n, what in (part.split(" ", 1) for part in summary.group(1).split(", "))
    }

    async def rows(sql: str) -> list[Any]:
        return list((await session.execute(text(sql))).all())

    [build] = await rows("SELECT id, status FROM recommendation_build")
    assert build.status == "READY"
    written = 0
    for table in ("neighbour", "rule", "popularity", "cycle"):
        [(n,)] = await rows(
            f"SELECT count(*) FROM recommendation_{table} WHERE build_id = {build.id}"
        )
        assert n > 0, table
        written += n
    assert counts["model rows"] == written

    impressions = {
        r.id: r
        for r in await rows(
            "SELECT id, customer_id, session_id, context, created_at, items "
            "FROM recommendation_impression"
        )
    }
    assert len(impressions) == counts["recommendations served"] > 40
    clicks = await rows("SELECT impression_id, product_id, position FROM recommendation_click")
    conversions = await rows(
        "SELECT impression_id, order_id, product_ids, revenue_amount FROM recommendation_conversion"
    )
    assert len(clicks) == counts["clicks"] > 0
    assert len(conversions) == counts["conversions"] > 0

    def items(impression: Any) -> dict[int, int]:
        value = impression.items
        value = json.loads(value) if isinstance(value, str) else value
        return {i["product_id"]: i["position"] for i in value}

    for impression in impressions.values():
        at = impression.created_at
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        assert at.replace(tzinfo=UTC) <= AS_OF and len(items(impression)) == 10
    for c in clicks:
        assert items(impressions[c.impression_id])[c.product_id] == c.position
    for c in conversions:
        held = json.loads(c.product_ids) if isinstance(c.product_ids, str) else c.product_ids
        lines = await rows(
            f"SELECT product_id, line_total_amount FROM order_line WHERE order_id = {c.order_id}"
        )
        assert held and set(held) <= set(items(impressions[c.impression_id]))
        assert c.revenue_amount == sum(a for p, a in lines if p in held)
        owner = await rows(f'SELECT customer_id FROM "order" WHERE id = {c.order_id}')
        assert owner[0].customer_id == impressions[c.impression_id].customer_id
    merchandising = await rows("SELECT kind, context, position FROM recommendation_merchandising")
    assert sorted((m.kind, m.context, m.position) for m in merchandising) == [
        ("EXCLUDE", None, None),
        ("PIN", "HOME", 2),
        ("PIN", "HOME", 5),
    ]

    # What the operator sees: every answer counted over the weeks before the demo's end.
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    period = {"from": str(shop_day(AS_OF) - timedelta(days=60)), "to": str(shop_day(AS_OF))}
    figures = (await analyst(PERFORMANCE, period))["recommendationPerformance"]["total"]
    assert figures["answers"] == len(impressions) and figures["clicks"] == len(clicks)
    assert figures["orders"] == len(conversions) and figures["shown"] == 10 * len(impressions)
    keys = ["recommendation.click_through", "recommendation.conversion"]
    kpis = (await analyst(KPIS, {"input": {**period, "keys": keys}}))["shopKpis"]["kpis"]
    assert {k["key"]: k["total"] for k in kpis} == {
        "recommendation.click_through": len(clicks) / (10 * len(impressions)),
        "recommendation.conversion": len({c.impression_id for c in conversions}) / len(impressions),
    }
    # And a shopper's home page shows the shop's pins at their positions.
    home = (await gql(HOME))["recommendations"]["items"]
    assert [i["position"] for i in home if i["component"] == "PINNED"] == [2, 5]
