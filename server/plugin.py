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
    by the serving processes (``SHOPGRAPH_RUN_JOBS``) and ``shopgraph jobs run``; at most one
    process runs a given job at a time, across the cluster."""

    name: str
    interval_seconds: float
    run: Callable[[JobContext], Awaitable[None]]
    description: str = ""


# Core GraphQL helpers re-exported for plugins: name -> "module:attribute".
_REEXPORTS = {
    "Info": "schema.context:Info",
    "Context": "schema.context:Context",
    "run_mutation": "schema.mutations:run_mutation",
    "Error": "schema.errors:Error",
    "ValidationError": "schema.errors:ValidationError",
    "NotFoundError": "schema.errors:NotFoundError",
    "ConflictError": "schema.errors:ConflictError",
    "AuthenticationError": "schema.errors:AuthenticationError",
    "Money": "schema.money:Money",
    "money": "schema.money:money",
    "ModelNode": "schema.node:ModelNode",
    "parse_node_id": "schema.global_ids:parse_node_id",
    "require_node_id": "schema.global_ids:require_node_id",
    "Connection": "schema.pagination:Connection",
    "paginate": "schema.pagination:paginate",
    "ModelByIdLoader": "schema.loaders:ModelByIdLoader",
    "ModelsByFieldLoader": "schema.loaders:ModelsByFieldLoader",
    "IsAuthenticated": "schema.permissions:IsAuthenticated",
    "IsCustomer": "schema.permissions:IsCustomer",
    "IsStaff": "schema.permissions:IsStaff",
    "HasPermission": "schema.permissions:HasPermission",
    # Events of a plugin's own (delivered after commit to every plugin implementing the hook
    # of that name, see the plugin guide).
    "emit_event": "server.services.outbox:emit",
    # For plugins' HTTP routes (the routes hook).
    "Viewer": "server.auth:Viewer",
    "RouteError": "server.plugin_routes:RouteError",
    "request_viewer": "server.plugin_routes:request_viewer",
    "require_permission": "server.plugin_routes:require_permission",
    "require_staff": "server.plugin_routes:require_staff",
    "require_signature": "server.plugin_routes:require_signature",
    "verify_signature": "server.plugin_routes:verify_signature",
    "route_session": "server.plugin_routes:route_session",
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
