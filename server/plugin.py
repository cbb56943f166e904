"""The public plugin API: everything a plugin author imports from shopgraph.

A plugin is a module or object with functions marked ``@hookimpl`` whose names match the
specifications in :mod:`server.hookspecs`. Every hook is called with keyword arguments; an
implementation takes any subset of the spec's parameters (ordinary parameters, not
keyword-only ones: pluggy matches them by name). A hook's result may be an awaitable: the core
awaits it.

Besides ``hookimpl``/``hookspec`` and the value types below, this module re-exports the core
GraphQL helpers a plugin's ``schema.py`` needs (``Info``, ``run_mutation``, ``Error`` …), so a
plugin has one import surface. They are loaded on first access to keep this module free of
import-time work.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from server.config import Settings
    from server.plugins import PluginRuntime

PROJECT = "shopgraph"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class Adjustment:
    """A change to a price, explained: who made it (plugin + rule), why (label), how much.

    ``amount`` is in minor units of the order's currency; negative for discounts.
    """

    source: str
    rule: str
    label: str
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rule": self.rule,
            "label": self.label,
            "amount": self.amount,
        }


@dataclass(frozen=True)
class ShippingQuote:
    """A way to ship a cart: carrier + service, price in minor units, promised delivery."""

    source: str
    code: str
    carrier: str
    label: str
    amount: int
    promised_days: int | None = None


@dataclass(frozen=True)
class CheckoutProblem:
    """A reason a cart may not be checked out (shown to the shopper, blocks placeOrder)."""

    source: str
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class CartLineView:
    """A cart line as order-flow hooks see it: product, quantity and unit price so far."""

    product_id: int
    sku: str
    quantity: int
    unit_price: int
    category_id: int | None = None
    brand: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CartView:
    """A cart as order-flow hooks see it."""

    cart_id: int | None
    customer_id: int | None
    currency: str
    lines: tuple[CartLineView, ...]
    subtotal: int
    shipping_address: dict[str, Any] | None = None


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin says of itself (its ``PLUGIN_INFO`` attribute).

    ``core_version`` is a PEP 440 specifier set the running shopgraph version must satisfy;
    ``requires`` names plugins that must be installed and enabled alongside this one.
    """

    name: str
    version: str
    description: str = ""
    core_version: str = ">=0.1"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """A domain event as plugins receive it, after the change that raised it committed."""

    id: int
    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class JobContext:
    """What a periodic job gets: a session factory (one transaction per ``async with``),
    the core settings, the plugin set, and the job's own plugin's settings."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    plugins: PluginRuntime
    config: Any = None


@dataclass(frozen=True)
class Job:
    """Periodic work a plugin asks for (the ``jobs`` hook): run every ``interval_seconds``
    by ``shopgraph jobs run``; at most one process runs a given job at a time."""

    name: str
    interval_seconds: float
    run: Callable[[JobContext], Awaitable[None]]
    description: str = ""


# Core GraphQL helpers re-exported for plugins: name -> "module:attribute".
_REEXPORTS = {
    "Info": "server.graphql.context:Info",
    "Context": "server.graphql.context:Context",
    "run_mutation": "server.graphql.mutations:run_mutation",
    "Error": "server.graphql.errors:Error",
    "ValidationError": "server.graphql.errors:ValidationError",
    "NotFoundError": "server.graphql.errors:NotFoundError",
    "ConflictError": "server.graphql.errors:ConflictError",
    "AuthenticationError": "server.graphql.errors:AuthenticationError",
    "Money": "server.graphql.money:Money",
    "money": "server.graphql.money:money",
    "ModelNode": "server.graphql.node:ModelNode",
    "parse_node_id": "server.graphql.ids:parse_node_id",
    "require_node_id": "server.graphql.ids:require_node_id",
    "Connection": "server.graphql.pagination:Connection",
    "paginate": "server.graphql.pagination:paginate",
    "ModelByIdLoader": "server.graphql.loaders:ModelByIdLoader",
    "ModelsByFieldLoader": "server.graphql.loaders:ModelsByFieldLoader",
    "IsAuthenticated": "server.graphql.permissions:IsAuthenticated",
    "IsCustomer": "server.graphql.permissions:IsCustomer",
    "IsStaff": "server.graphql.permissions:IsStaff",
    "HasPermission": "server.graphql.permissions:HasPermission",
    # The catalogue's core types (a plugin's payload may return them), the typed roots their
    # extension resolvers receive, and the filters plugins add to core lists.
    "Product": "schema.products:Product",
    "ProductView": "schema.products:ProductView",
    "Category": "schema.categories:Category",
    "CategoryView": "schema.categories:CategoryView",
    "Warehouse": "schema.inventory:Warehouse",
    "ListFilter": "server.graphql.list_filters:ListFilter",
}


def __getattr__(name: str) -> Any:
    target = _REEXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


__all__ = [
    "PROJECT",
    "Adjustment",
    "CartLineView",
    "CartView",
    "CheckoutProblem",
    "Event",
    "Job",
    "JobContext",
    "PluginInfo",
    "ShippingQuote",
    "hookimpl",
    "hookspec",
    *_REEXPORTS,
]
