"""The static cost estimate and the measured cost, computed on the default schema's AST."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from graphql import parse

from schema.core import build_schema
from server.config import Settings
from server.graphql.limits import QueryCostCalculator
from server.graphql.pagination import DEFAULT_PAGE_SIZE
from server.graphql.structure import graphql_structure
from server.plugins import load_plugins


@pytest.fixture(scope="module")
def schema() -> strawberry.Schema:
    settings = Settings()
    return build_schema(load_plugins(settings), settings)


def cost(
    schema: strawberry.Schema,
    query: str,
    variables: dict[str, Any] | None = None,
    data: Any = None,
    operation_name: str | None = None,
) -> tuple[int, int]:
    calc = QueryCostCalculator(graphql_structure(schema), parse(query), operation_name)
    return calc.requested(variables), calc.actual(data, variables)


def test_scalars_are_free_and_objects_cost_one(schema: strawberry.Schema) -> None:
    assert cost(schema, "{ __typename }")[0] == 0
    assert cost(schema, '{ product(id: "x") { id name } }')[0] == 1
    assert cost(schema, '{ product(id: "x") { id category { name } } }')[0] == 2


def test_connections_cost_two_plus_page_size_times_a_node(schema: strawberry.Schema) -> None:
    query = "{ products(first: 5) { edges { cursor node { id category { name } } } } }"
    assert cost(schema, query)[0] == 2 + 5 * 2
    # nodes instead of edges: the same per item; pageInfo is one object; totalCount is free.
    query = "{ products(last: 7) { nodes { id } pageInfo { hasNextPage } totalCount } }"
    assert cost(schema, query)[0] == 2 + 7 * 1 + 1
    assert cost(schema, "{ products { nodes { id } } }")[0] == 2 + DEFAULT_PAGE_SIZE


def test_page_size_from_variables(schema: strawberry.Schema) -> None:
    query = "query($n: Int) { products(first: $n) { nodes { id } } }"
    assert cost(schema, query, {"n": 40})[0] == 42
    assert cost(schema, query, {})[0] == 2 + DEFAULT_PAGE_SIZE


def test_nested_lists_multiply(schema: strawberry.Schema) -> None:
    # favorites(first: Int! = 20) is a plain list: its default size counts.
    query = (
        "{ customers(first: 10) { nodes { favorites { id } recentlyViewed(first: 3) { id } } } }"
    )
    assert cost(schema, query)[0] == 2 + 10 * (1 + 20 + 3)


def test_fragments_count_like_inline_fields(schema: strawberry.Schema) -> None:
    inline = "{ products(first: 4) { nodes { id category { name } } } }"
    spread = "query { products(first: 4) { nodes { ...P } } } fragment P on Product { id category { name } }"
    assert cost(schema, inline)[0] == cost(schema, spread)[0] == 2 + 4 * 2


def test_abstract_types_cost_their_most_expensive_member(schema: strawberry.Schema) -> None:
    query = '{ node(id: "x") { id ... on Product { category { name } } } }'
    assert cost(schema, query)[0] == 2


def test_mutations_cost_ten(schema: strawberry.Schema) -> None:
    query = "mutation($input: CreateCartInput!) { createCart(input: $input) { __typename } }"
    assert cost(schema, query)[0] == 10


def test_only_the_chosen_operation_counts(schema: strawberry.Schema) -> None:
    document = "query A { products(first: 50) { nodes { id } } } query B { __typename }"
    assert cost(schema, document, operation_name="A")[0] == 52
    assert cost(schema, document, operation_name="B")[0] == 0


def test_actual_cost_counts_what_was_returned(schema: strawberry.Schema) -> None:
    query = "{ products(first: 50) { nodes { id category { name } } } }"
    data = {
        "products": {
            "nodes": [{"id": "1", "category": {"name": "x"}}, {"id": "2", "category": None}]
        }
    }
    requested, actual = cost(schema, query, data=data)
    assert requested == 2 + 50 * 2
    assert actual == 2 + (1 + 1) + 1
    assert cost(schema, '{ product(id: "x") { id } }', data={"product": None})[1] == 0


def test_objects_of_leaves_cost_one_each_when_present(schema: strawberry.Schema) -> None:
    # A price and a category select leaves only: the walk knows they cost 1 apiece without
    # entering them, and still charges nothing for a null one.
    query = "{ products(first: 2) { nodes { id price { amount } category { name } } } }"
    node = {"id": "1", "price": {"amount": "1.00"}, "category": {"name": "x"}}
    data = {"products": {"nodes": [node, {**node, "category": None}]}}
    calc = QueryCostCalculator(graphql_structure(schema), parse(query), None)
    assert calc.requested({}) == 2 + 2 * 3
    # The connection, then each node with its price and (when present) its category.
    for _ in range(2):  # the first walk learns the plans, the second takes the short way
        assert calc.actual(data, {}) == 2 + (1 + 1 + 1) + (1 + 1)
    assert calc.actual({"products": {"nodes": [{**node, "price": None}]}}, {}) == 2 + (1 + 1)


def test_one_calculator_serves_every_request_of_a_document(schema: strawberry.Schema) -> None:
    from server.graphql.limits import CostCache

    query = "query($n: Int) { products(first: $n) { nodes { id } } }"
    document = parse(query)
    cache = CostCache(maxsize=2)
    calc = cache.get(graphql_structure(schema), query, document, None)
    assert cache.get(graphql_structure(schema), query, document, None) is calc
    # Variables are read per request, not baked into the cached plan.
    assert calc.requested({"n": 3}) == 5
    assert calc.requested({"n": 50}) == 52
    data = {"products": {"nodes": [{"id": "a"}, {"id": "b"}]}}
    assert calc.actual(data, {"n": 50}) == 4
    # A re-parsed document (evicted from the parser cache) gets a fresh plan; the LRU is bounded.
    reparsed = parse(query)
    again = cache.get(graphql_structure(schema), query, reparsed, None)
    assert again is not calc
    assert cache.get(graphql_structure(schema), query, reparsed, None) is again
    for other in ("{ __typename }", "{ categories { id } }"):
        cache.get(graphql_structure(schema), other, parse(other), None)
    # Two newer documents pushed it out of a cache of two.
    assert cache.get(graphql_structure(schema), query, reparsed, None) is not again
