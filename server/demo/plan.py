"""What a demo shop plan is: the rows to write and how they refer to each other.

Rows are plain dicts of column values (building thousands of SQLModel objects costs more than
the whole insert); a row refers to another through the planned object, and ``id`` is filled in
once a row is written. A :class:`Draft` is a plan being drawn: the plan so far and the one
``random.Random`` every choice comes from, so that the same seed always draws the same shop.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.demo.catalogue import Leaf
from server.demo.places import City
from server.models import CustomerEventKind, OrderStatus

Row = dict[str, Any]

DEMO_PASSWORD = "shopgraph-demo"
HISTORY_DAYS = 182
OPEN_STATUSES = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.FULFILLING)
CUSTOMER_ACTOR = "customer"  # resolved to "customer:<id>" once the customer has an id


@dataclass
class Preferences:
    """What drives a customer's behaviour. Never stored: analyses have to find it."""

    categories: list[str]  # category slugs of leaf categories
    brands: list[str]
    price_sensitivity: float  # 0 (buys premium) .. 1 (hunts bargains)
    activity: str  # high | medium | low
    lifecycle: str  # loyal | regular | churning | new
    strength: float  # share of shopping done in the favourite categories
    channel: str


@dataclass(eq=False)
class PlannedProduct:
    row: Row
    leaf: Leaf
    top: str
    index: int


def category_slug(product: PlannedProduct) -> str:
    """The slug of the demo category (a leaf under its top category) a product belongs to."""
    return f"{product.top}-{product.leaf.slug}"


@dataclass(eq=False)
class PlannedCustomer:
    row: Row
    city: City
    addresses: list[Row]
    prefs: Preferences
    start: datetime  # first moment they shop
    end: datetime  # last moment they shop (churning customers go quiet early)
    bought: list[PlannedProduct] = field(default_factory=list)


@dataclass(eq=False)
class PlannedOrder:
    row: Row
    customer: PlannedCustomer
    warehouse: str
    lines: list[tuple[Row, PlannedProduct]]
    changes: list[Row] = field(default_factory=list)
    payment: Row | None = None
    shipment: Row | None = None
    tracking: list[Row] = field(default_factory=list)


@dataclass(eq=False)
class PlannedEvent:
    customer: PlannedCustomer
    kind: CustomerEventKind
    at: datetime
    session_id: str
    product: PlannedProduct | None = None
    order: PlannedOrder | None = None
    query: str | None = None
    quantity: int | None = None
    # A SEARCH's result count, when the plan knows it (a search that finds nothing: 0).
    result_count: int | None = None


@dataclass(eq=False)
class PlannedCart:
    """An abandoned cart: what a customer left in it, and when."""

    customer: PlannedCustomer
    at: datetime
    products: list[PlannedProduct]
    token: str = ""


@dataclass(eq=False)
class ShopPlan:
    """A whole demo shop, in memory: everything :func:`server.demo.writer.write_plan` writes."""

    seed: int
    as_of: datetime
    history_start: datetime
    password_hash: str = ""
    categories: list[tuple[Row, list[Row]]] = field(default_factory=list)  # (top, leaves)
    products: list[PlannedProduct] = field(default_factory=list)
    # (warehouse code, product index) → [on_hand, safety_stock]
    stock: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    customers: list[PlannedCustomer] = field(default_factory=list)
    orders: list[PlannedOrder] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    carts: list[PlannedCart] = field(default_factory=list)

    def reserved(self) -> dict[tuple[str, int], int]:
        """Stock held by open orders, per (warehouse, product index)."""
        held: Counter[tuple[str, int]] = Counter()
        for order in self.orders:
            if order.row["status"] in OPEN_STATUSES:
                for line, product in order.lines:
                    held[(order.warehouse, product.index)] += line["quantity"]
        return dict(held)

    def demo_customer(self) -> PlannedCustomer | None:
        """The demo login: the loyal customer with the longest history."""
        orders_of = Counter(id(o.customer) for o in self.orders)
        return max(
            self.customers,
            key=lambda c: (c.prefs.lifecycle == "loyal", orders_of[id(c)]),
            default=None,
        )


@dataclass(eq=False)
class Draft:
    """A plan being drawn: the plan so far, the random source of every choice, and indexes."""

    plan: ShopPlan
    rng: random.Random
    # Products by the slug of their leaf category (every leaf, empty ones included).
    by_leaf: dict[str, list[PlannedProduct]]
    sessions: int = 0

    def next_session_id(self) -> str:
        self.sessions += 1
        return f"s{self.plan.seed:x}-{self.sessions:06d}"


def weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    """One of the pairs' values, drawn with the pairs' weights."""
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]
