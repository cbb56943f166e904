"""The core's GraphQL API: its domain modules, composed with the enabled plugins into one schema."""

from __future__ import annotations

import strawberry

from schema import (
    access,
    accounts,
    alerts,
    audiences,
    audit_log,
    behaviour,
    carts,
    catalog_admin,
    categories,
    channels,
    checkout,
    customers,
    experiments,
    facets,
    forecasts,
    insights,
    inventory,
    kpis,
    orders,
    payments,
    privacy,
    product_health,
    products,
    profile,
    search,
    search_insights,
    shipments,
    surveys,
    synonyms,
    variant_admin,
    variants,
)
from schema import plugins as plugin_admin
from server.config import Settings
from server.graphql import assembly
from server.plugins import PluginRuntime
from server.throttle import CostBuckets

DOMAINS: tuple[assembly.Domain, ...] = (
    products,
    variants,
    categories,
    search,
    facets,
    catalog_admin,
    synonyms,
    variant_admin,
    accounts,
    profile,
    customers,
    insights,
    behaviour,
    search_insights,
    product_health,
    forecasts,
    kpis,
    inventory,
    carts,
    checkout,
    payments,
    orders,
    shipments,
    channels,
    access,
    audit_log,
    privacy,
    experiments,
    audiences,
    surveys,
    alerts,
    plugin_admin,
)


def build_schema(
    plugins: PluginRuntime, settings: Settings | None = None, buckets: CostBuckets | None = None
) -> strawberry.Schema:
    """The schema of the core plus every enabled plugin's contributions."""
    return assembly.build_schema(DOMAINS, plugins, settings, buckets)


def shared_schema(
    plugins: PluginRuntime, settings: Settings | None = None
) -> tuple[strawberry.Schema, str]:
    """The schema of the core plus every enabled plugin's contributions, and its SDL: built
    once per process for one configuration (server.graphql.assembly.shared_schema)."""
    return assembly.shared_schema(DOMAINS, plugins, settings)
