"""Loyalty points, an out-of-tree shopgraph plugin: earn on every order, spend at checkout.

The plugin object is this module: ``PLUGIN_INFO`` says what it is, ``HOOKSPECS`` the hooks it
offers other plugins, and the ``@hookimpl`` functions below what it does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.plugin import Adjustment, CartView, DemoShop, Event, PluginInfo, hookimpl
from shopgraph_loyalty import hookspecs as HOOKSPECS  # noqa: N812 - the name shopgraph looks for

if TYPE_CHECKING:
    from server.models import Order

PLUGIN_INFO = PluginInfo(
    name="loyalty",
    version="1.0.0",
    description="Loyalty points: earned on orders, redeemed as an order discount.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"

__all__ = ["HOOKSPECS", "PLUGIN_INFO"]

# --- schema --------------------------------------------------------------------------------


@hookimpl
def graphql_queries() -> Sequence[type]:
    from shopgraph_loyalty import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from shopgraph_loyalty import schema

    return schema.MUTATIONS


@hookimpl
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    from shopgraph_loyalty import schema

    return schema.EXTENSIONS


# --- data ----------------------------------------------------------------------------------


@hookimpl
def models() -> Sequence[str]:
    return ["shopgraph_loyalty.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


@hookimpl
def settings() -> type:
    from shopgraph_loyalty.service import LoyaltySettings

    return LoyaltySettings


# --- order flow ----------------------------------------------------------------------------


@hookimpl
async def order_adjustments(session: Any, cart: CartView, config: Any) -> list[Adjustment]:
    from shopgraph_loyalty import service

    return await service.order_adjustments(session, cart, config)


@hookimpl
async def order_placing(session: Any, order: Order) -> None:
    from shopgraph_loyalty import service

    await service.attach_hold(session, order)


@hookimpl
async def order_cancelling(session: Any, order: Order) -> None:
    from shopgraph_loyalty import service

    await service.give_back_hold(session, int(order.id or 0))


# --- events --------------------------------------------------------------------------------


@hookimpl
async def order_placed(event: Event, session: Any, plugins: Any, config: Any) -> None:
    from shopgraph_loyalty import service

    await service.earn_for_order(session, event.payload, config, plugins)


@hookimpl
async def order_status_changed(event: Event, session: Any) -> None:
    from shopgraph_loyalty import service

    if event.payload.get("to_status") == "CANCELLED":
        await service.order_cancelled(session, int(event.payload["order_id"]))


# --- command line --------------------------------------------------------------------------


@hookimpl
def cli_commands() -> Sequence[Any]:
    from shopgraph_loyalty.commands import loyalty

    return [loyalty]


# --- demo data -----------------------------------------------------------------------------


@hookimpl
async def demo_data(
    session: Any,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    config: Any,
) -> dict[str, int]:
    from shopgraph_loyalty import demo

    return await demo.fill(session, shop, rng, config, progress)
