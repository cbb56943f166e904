"""The public plugin API: everything a plugin author imports from shopgraph.

A plugin is a module or object with functions marked ``@hookimpl`` whose names match the
specifications below. Every hook is called with keyword arguments; a plugin may accept any
subset of them. A hook's result may be an awaitable: the core awaits it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pluggy

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
    """What a plugin says of itself (its ``PLUGIN_INFO`` attribute)."""

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
