"""The search benchmark's query set answers what it claims on a small generated catalogue, on
both databases (the benchmark checks the same before it measures). No timing is asserted."""

from __future__ import annotations

from bench import search as bench
from tests.support.graphql import GraphQLClient


async def test_every_benchmark_query_finds_its_product(database_url: str, gql: GraphQLClient):
    await bench.load_catalogue(database_url, 5_000, quiet=True)
    for query in bench.QUERIES:
        data = await gql(bench.GRAPHQL, {"q": query.text})
        found = [e["node"]["sku"] for e in data["products"]["edges"]]
        assert bench.wrong_answer(query, found) is None, (query, found[:3])
    # And the check itself refuses a wrong answer.
    typo = next(q for q in bench.QUERIES if q.key == "typo")
    assert bench.wrong_answer(typo, ["GEN-000007", typo.first or ""]) is not None
