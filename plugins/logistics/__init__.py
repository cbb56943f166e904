"""Logistics, a built-in plugin: shipping options with honest delivery promises, warehouse
choice, live tracking from carriers' webhooks, delays and their compensation, store and locker
pickup, returns, exchanges and repairs, and replenishment.

The plugin object is this module: ``PLUGIN_INFO`` says what it is, the ``@hookimpl``
functions below what it does. Everything it uses comes from ``server.plugin`` and the core's
public models and services (docs/plugins/logistics.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from plugins.logistics import hookspecs as HOOKSPECS  # noqa: N812  # the name plugins declare hooks by
from server.models import Customer, Order, OrderLine
from server.plugin import (
    CartView,
    CheckoutProblem,
    DemoShop,
    Event,
    Job,
    Kpi,
    Parcel,
    PluginInfo,
    ShippingQuote,
    hookimpl,
)

PLUGIN_INFO = PluginInfo(
    name="logistics",
    version="1.0.0",
    description="Logistics: delivery promises, warehouse choice, live tracking, delay "
    "compensation, pickup points, returns and replenishment.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"
# Logistics staff: the carrier network (carriers, rates, transit times, sites, pickup points),
# tracking events, return decisions and inspections, replenishment policies.
MANAGE = "logistics.manage"
# Staff who read the network, shipments' tracking, returns, replenishment and the report.
READ = "logistics.read"

__all__ = ["HOOKSPECS", "MANAGE", "PLUGIN_INFO", "READ"]

# --- data ----------------------------------------------------------------------------------


# Named apart from the hook: importing the submodule ``models`` sets this package's attribute
# of that name, which would hide a function called ``models`` from the next registration.
@hookimpl(specname="models")
def table_modules() -> Sequence[str]:
    return ["plugins.logistics.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


# --- platform ------------------------------------------------------------------------------


@hookimpl
def settings() -> type:
    from plugins.logistics.service.settings import LogisticsSettings

    return LogisticsSettings


@hookimpl
def permissions() -> Sequence[str]:
    return [MANAGE, READ]


@hookimpl
def jobs(config: Any) -> Sequence[Job]:
    from plugins.logistics.service import allocation, delays, replenishment

    return [*allocation.jobs(config), *delays.jobs(config), *replenishment.jobs(config)]


@hookimpl
def kpis() -> Sequence[Kpi]:
    from plugins.logistics.service import report

    return report.kpis()


@hookimpl
def routes(plugins: Any, config: Any) -> Sequence[BaseRoute]:
    from plugins.logistics.service import replenishment, tracking

    return [*tracking.routes(plugins, config), *replenishment.routes(plugins, config)]


@hookimpl
async def demo_data(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    config: Any,
) -> dict[str, int]:
    from plugins.logistics.service import demo

    return await demo.fill(session, shop, rng, config, progress)


# --- the order flow: quotes and promises, the promise frozen, the warehouse chosen ---------


@hookimpl
async def shipping_quotes(
    session: AsyncSession,
    cart: CartView,
    address: dict[str, Any] | None,
    plugins: Any,
    config: Any,
) -> Sequence[ShippingQuote]:
    from plugins.logistics.service import quotes

    return await quotes.shipping_quotes(session, cart, address, plugins, config)


@hookimpl
async def order_placing(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    cart: CartView,
    customer: Customer | None,
    inputs: Mapping[str, Any],
    config: Any,
) -> Sequence[CheckoutProblem]:
    from plugins.logistics.service import quotes

    return await quotes.freeze_promise(session, order, lines, config)


@hookimpl
async def plan_shipments(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], plugins: Any, config: Any
) -> Sequence[Parcel] | None:
    from plugins.logistics.service import allocation

    return await allocation.plan_shipments(session, order, lines, plugins, config)


# --- events --------------------------------------------------------------------------------


@hookimpl
async def shipment_created(event: Event, session: AsyncSession, plugins: Any, config: Any) -> None:
    from plugins.logistics.service import tracking

    await tracking.shipment_created(session, event, plugins, config)


# --- GraphQL -------------------------------------------------------------------------------


@hookimpl
def graphql_types() -> Sequence[type]:
    from plugins.logistics import schema

    return schema.TYPES


@hookimpl
def graphql_queries() -> Sequence[type]:
    from plugins.logistics import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from plugins.logistics import schema

    return schema.MUTATIONS


@hookimpl
def graphql_subscriptions() -> Sequence[type]:
    from plugins.logistics import schema

    return schema.SUBSCRIPTIONS


@hookimpl
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    from plugins.logistics import schema

    return schema.EXTENSIONS
