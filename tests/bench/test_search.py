"""The search benchmark's query set answers what it claims on a small generated catalogue, on
both databases, over GraphQL and over the plain full-text baseline (the benchmark checks the
same before it measures). No timing is asserted."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from bench import search as bench
from bench import wrk
from bench.storefront import Database, Window
from server.app import create_app
from server.config import Settings
from server.plugins import PluginRuntime
from tests.support.graphql import GraphQLClient


@pytest.fixture
def app(settings: Settings, plugins: PluginRuntime) -> Starlette:
    """The app with the benchmark's hand-written baseline, as its server serves it."""
    built: Starlette = bench.add_baseline_endpoint(create_app(settings, plugins))
    return built


async def test_every_benchmark_query_finds_its_product(database_url: str, gql: GraphQLClient):
    await bench.load_catalogue(database_url, 5_000, quiet=True)
    plain = 0
    for query in bench.QUERIES:
        data = await gql(bench.GRAPHQL, {"q": query.text})
        found: list[dict[str, Any]] = [e["node"] for e in data["products"]["edges"]]
        assert bench.wrong_answer(query, bench.skus(found)) is None, (query, found[:3])
        if not query.plain:
            continue
        # The plain full-text baseline finds the target first too, and GraphQL's first page.
        response = await gql.http.get(bench.baseline_path(query.text))
        assert response.status_code == 200
        baseline = [e["node"] for e in response.json()["data"]["products"]["edges"]]
        assert bench.wrong_answer(query, bench.skus(baseline)) is None, (query, baseline[:3])
        assert bench.agreement(query, found, baseline) == bench.SAME_PAGE, query
        plain += 1
    assert plain == 3
    # And the check itself refuses a wrong answer.
    typo = next(q for q in bench.QUERIES if q.key == "typo")
    assert bench.wrong_answer(typo, ["GEN-000007", typo.first or ""]) is not None


def test_the_baseline_quotes_every_term_as_a_phrase_of_its_words() -> None:
    terms = bench.baseline_terms('蓝牙耳机 Sony"X 漫步者')

    assert terms == ["蓝 牙 耳 机", "sony", "x", "漫 步 者"]
    assert bench.fts5_match(terms) == '"蓝 牙 耳 机" "sony" "x" "漫 步 者"'
    assert bench.fts5_match(['say "hi"']) == '"say ""hi"""'
    statement = bench.baseline_postgresql(2)
    assert "phraseto_tsquery('simple', :t0) && phraseto_tsquery('simple', :t1)" in statement


def test_the_baseline_must_find_graphqls_products() -> None:
    query = next(q for q in bench.QUERIES if q.key == "exact-broad")
    a, b, c = ({"id": str(i), "sku": f"GEN-{i:06d}", "name": "n"} for i in range(3))

    assert bench.agreement(query, [a, b], [a, b]) == bench.SAME_PAGE
    assert bench.agreement(query, [a, b], [b, a]) == bench.SAME_PRODUCTS
    with pytest.raises(RuntimeError, match="disagree"):
        bench.agreement(query, [a, b], [a, c])


def _window(endpoint: str, rps: float, p50: float, p99: float) -> Window:
    report = wrk.WrkReport(int(rps * 5), 5.0, rps, {50.0: p50, 99.0: p99}, 0, 0)
    run = wrk.WrkRun(report, "", wall_seconds=5.0, cpu_seconds=0.1)
    return Window(endpoint, run, 5.0, None, 0.0)


def test_the_table_puts_graphql_over_the_baseline_beside_each_exact_query() -> None:
    exact = next(q for q in bench.QUERIES if q.key == "exact-en")
    typo = next(q for q in bench.QUERIES if q.key == "typo")
    sqlite = Database("SQLite", "sqlite://")
    measured = bench.Measured(sqlite, exact, 1, agreement=bench.SAME_PAGE)
    # Two rounds, each pairing a GraphQL window with a baseline one: the ratios are their medians.
    for graphql, plain in [
        ((100, 40.0, 90.0), (400, 10.0, 30.0)),
        ((90, 44.0, 99.0), (300, 11.0, 33.0)),
    ]:
        measured.windows.append(_window("graphql", *graphql))
        measured.baseline.append(_window("handwritten", *plain))
    forgiving = bench.Measured(sqlite, typo, 1, [_window("graphql", 80, 50.0, 120.0)])

    assert measured.ratios() == pytest.approx((0.275, 4.0, 3.0))
    assert forgiving.ratios() is None
    rows = bench.table([measured, forgiving]).splitlines()[2:]
    assert rows[0].startswith("| SQLite | `sony headphones` | exact")
    assert rows[0].endswith("| **0.28×** | 4.00× | 3.00× |")
    assert f"| {bench.BASELINE_KIND} | 1 | 350 | 10.5 | 31.5 |" in rows[1]
    assert rows[2].startswith("| SQLite | `sony hedphones` | typo") and rows[2].endswith(
        "| – | – | – |"
    )
    assert len({row.count("|") for row in rows}) == 1
    note = bench.agreement_note([measured, forgiving])
    assert note is not None and "the same products in the same order" in note
