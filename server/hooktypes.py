"""The vocabulary of the hooks: the pluggy markers, and the values hooks pass and return
(adjustments, carts as hooks see them, events, jobs, a plugin's metadata).

Plugins import these from :mod:`server.plugin`; the core imports them from here.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class DemoShop:
    """The core's demo shop, as a plugin's ``demo_data`` hook sees it: the seed it was drawn
    from, the moment its history ends (date demo rows from it, never from the clock), and the
    ids of its rows, each in the order the rows were made (``cart_ids``: the carts customers
    left with something in them). ``demo_customer_id`` is the customer whose login
    ``shopgraph demo-data`` prints (None in a shop without customers)."""

    seed: int
    as_of: datetime
    category_ids: tuple[int, ...] = ()
    product_ids: tuple[int, ...] = ()
    warehouse_ids: tuple[int, ...] = ()
    customer_ids: tuple[int, ...] = ()
    order_ids: tuple[int, ...] = ()
    cart_ids: tuple[int, ...] = ()
    demo_customer_id: int | None = None
