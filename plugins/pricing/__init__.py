"""Pricing, a built-in plugin: every price explained; price lists, tier, segment and quantity
prices; guardrails that hold after every plugin; price history and the prior price; price
protection; elasticity and dynamic pricing suggestions; competitor monitoring.

The plugin object is this module: ``PLUGIN_INFO`` says what it is, the ``@hookimpl``
functions below what it does. Everything it uses comes from ``server.plugin`` and the core's
public models and services (docs/plugins/pricing.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing import hookspecs as HOOKSPECS  # noqa: N812  # the name plugins declare hooks by
from server.models import Customer
from server.plugin import (
    Adjustment,
    DemoShop,
    Event,
    Job,
    Kpi,
    NotApplied,
    PluginInfo,
    PricedItem,
    PriceItem,
    PriceLimit,
    hookimpl,
)

PLUGIN_INFO = PluginInfo(
    name="pricing",
    version="1.0.0",
    description="Pricing: price lists, tier, segment and quantity prices, guardrails, price "
    "history, price protection, elasticity, dynamic pricing and competitor monitoring.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"
# Staff who see costs, margins, suggestions, elasticity, competitor prices and alerts (the
# core's pricing.manage sees them too, and manages rules, limits and competitor prices).
READ = "pricing.read"
# Staff who approve or reject dynamic-pricing suggestions and switch a rule to auto-apply.
APPROVE = "pricing.approve"
# The plugin's own events: a public price changed (payload: product_ids, reason). The
# response cache drops the prices that read it.
PRICES_CHANGED = "pricing_prices_changed"

__all__ = ["APPROVE", "HOOKSPECS", "PLUGIN_INFO", "PRICES_CHANGED", "READ"]

# --- data ----------------------------------------------------------------------------------


# Named apart from the hook: importing the submodule ``models`` sets this package's attribute
# of that name, which would hide a function called ``models`` from the next registration.
@hookimpl(specname="models")
def table_modules() -> Sequence[str]:
    return ["plugins.pricing.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


# --- platform ------------------------------------------------------------------------------


@hookimpl
def settings() -> type:
    from plugins.pricing.service.settings import PricingSettings

    return PricingSettings


@hookimpl
def permissions() -> Sequence[str]:
    return [READ, APPROVE]


@hookimpl
def jobs(config: Any) -> Sequence[Job]:
    from plugins.pricing.service import history, protection, suggestions

    return [*history.jobs(config), *protection.jobs(config), *suggestions.jobs(config)]


@hookimpl
def kpis() -> Sequence[Kpi]:
    from plugins.pricing.service import competitors, protection, suggestions

    return [*suggestions.kpis(), *protection.kpis(), *competitors.kpis()]


@hookimpl
async def demo_data(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    config: Any,
) -> dict[str, int]:
    from plugins.pricing.service import demo

    return await demo.fill(session, shop, rng, config, progress)


@hookimpl
def cli_commands(plugins: Any, config: Any) -> Sequence[Any]:
    from plugins.pricing.commands import pricing_group

    return [pricing_group(plugins, config)]


# Not named ``routes``: importing the submodule plugins.pricing.routes sets the package's
# attribute of that name, and a later plugin manager would find the module, not this hook.
@hookimpl(specname="routes")
def http_routes(plugins: Any, config: Any) -> Sequence[Any]:
    from plugins.pricing.routes import webhook_routes

    return webhook_routes(config)


# --- the price pipeline: the shop's own prices, then the guardrails after every plugin ----


@hookimpl
async def list_prices(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]]:
    from plugins.pricing.service import rules

    return await rules.list_prices(session, items, customer, at, config)


@hookimpl
async def price_guardrails(
    session: AsyncSession,
    items: Mapping[int, PricedItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> Mapping[int, PriceLimit]:
    from plugins.pricing.service import limits

    return await limits.price_guardrails(session, items, customer, at, config)


@hookimpl
def cacheable_fields() -> Mapping[str, Sequence[str]]:
    from plugins.pricing import schema

    return schema.CACHEABLE


# --- history: a catalogue price change is a public price change ------------------------------


@hookimpl
async def product_changed(event: Event, session: AsyncSession, config: Any) -> None:
    from plugins.pricing.service import history

    await history.product_changed(session, config, event)


# --- GraphQL -------------------------------------------------------------------------------


@hookimpl
def graphql_queries() -> Sequence[type]:
    from plugins.pricing import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from plugins.pricing import schema

    return schema.MUTATIONS


@hookimpl
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    from plugins.pricing import schema

    return schema.EXTENSIONS
