"""Compose the core's GraphQL types and the enabled plugins' contributions into one schema.

A pure function of the plugin set: two schemas built in one process share nothing mutable.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay
from strawberry.extensions import MaskErrors, ParserCache, ValidationCache
from strawberry.tools import merge_types

from schema import customers, inventory, orders, products, shipments
from server.config import Settings
from server.plugins import PluginRuntime

CORE_DOMAINS = (products, customers, inventory, orders, shipments)


def _node_queries() -> type[Any]:
    # relay.node() fields are mutated when a schema is built: each build needs its own.
    @strawberry.type
    class NodeQueries:
        node: relay.Node | None = relay.node(description="Fetch any object by its global id.")

    return NodeQueries


def build_schema(plugins: PluginRuntime, settings: Settings | None = None) -> strawberry.Schema:
    queries: list[type[Any]] = [_node_queries()]
    mutations: list[type[Any]] = []
    types: list[type[Any]] = []
    for domain in CORE_DOMAINS:
        queries.extend(domain.QUERIES)
        mutations.extend(domain.MUTATIONS)
        types.extend(domain.TYPES)

    extensions: list[Any] = [lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)]
    if settings is not None and settings.env == "production":
        extensions.append(MaskErrors)

    query = merge_types("Query", tuple(queries))
    mutation = merge_types("Mutation", tuple(mutations)) if mutations else None
    return strawberry.Schema(query=query, mutation=mutation, types=types, extensions=extensions)
