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
from typing import TYPE_CHECKING, Any

from server.demo.catalogue import Leaf
from server.demo.places import City
from server.demo.seasons import Season
from server.models import CustomerEventKind, OrderStatus

if TYPE_CHECKING:
    from server.demo.plan_surveys import PlannedSurvey

Row = dict[str, Any]

DEMO_PASSWORD = "shopgraph-demo"
HISTORY_DAYS = 548  # 18 months
OPEN_STATUSES = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.FULFILLING)
CUSTOMER_ACTOR = "customer"  # resolved to "customer:<id>" once the customer has an id


@dataclass
class Preferences:
    """What drives a customer's behaviour. Never stored: analyses have to find it."""

    categories: list[str]  # category slugs of leaf categories
    brands: list[str]
    price_sensitivity: float  # 0 (buys premium) .. 1 (hunts bargains)
    activity: str  # how much they browse: high | medium | low
    # Their buying rhythm (server.demo.plan_rhythms.ARCHETYPES): loyal | regular | seasonal |
    # one_time | big_ticket | churner | new | browser.
    archetype: str
    strength: float  # share of shopping done in the favourite categories
    channel: str


@dataclass
class Rhythm:
    """When and how much a customer buys: the BG/NBD and Gamma-Gamma story, drawn for them.

    While active they buy as a Poisson process at ``rate`` purchases a week (in shopping days:
    seasonal, see server.demo.seasons), from their first purchase on; after each repeat
    purchase they drop out with probability ``dropout``, so ``repeats`` is the number of repeat
    purchases they would make before dropping out. A churner also stops at ``stop``. Each
    order's value is Gamma(``spend_shape``, ``spend_rate``) in yuan. Never stored.
    """

    archetype: str
    rate: float  # λ: purchases a week while active
    dropout: float  # p: the chance of dropping out after a repeat purchase
    repeats: int | None  # repeat purchases before dropping out (None: never drops out)
    spend_shape: float  # Gamma-Gamma's p
    spend_rate: float  # Gamma-Gamma's ν, per yuan
    first: datetime | None  # the first purchase (None: browses, never buys)
    stop: datetime | None = None  # a churner's last day as a customer
    purchases: list[datetime] = field(default_factory=list)  # every purchase, in time order
    # When they stopped for good (a churner's stop, a dropout's last purchase); None: active.
    lapsed: datetime | None = None

    @property
    def mean_spend(self) -> float:
        """Their expected order value, in yuan."""
        return self.spend_shape / self.spend_rate


@dataclass(eq=False)
class PlannedProduct:
    row: Row
    leaf: Leaf
    top: str
    index: int
    # Its option axes (name, values) and its variants: one without options when it has none.
    options: list[tuple[str, list[str]]] = field(default_factory=list)
    variants: list[PlannedVariant] = field(default_factory=list)

    def on_sale(self) -> list[PlannedVariant]:
        return [v for v in self.variants if v.row["is_active"]]


@dataclass(eq=False)
class PlannedVariant:
    """A variant (SKU) of a planned product: what stock, order lines and cart lines hold."""

    row: Row
    product: PlannedProduct
    index: int  # its place among the product's variants


def pick_variant(rng: random.Random, product: PlannedProduct) -> PlannedVariant:
    """One of the product's variants on sale, as a shopper picks a size or a colour."""
    return rng.choice(product.on_sale())


def category_slug(product: PlannedProduct) -> str:
    """The slug of the demo category (a leaf under its top category) a product belongs to."""
    return f"{product.top}-{product.leaf.slug}"


@dataclass(eq=False)
class PlannedCustomer:
    row: Row
    city: City
    addresses: list[Row]
    prefs: Preferences
    rhythm: Rhythm
    start: datetime  # first moment they shop (their account is made)
    end: datetime  # last moment they shop (those who stopped go quiet)
    bought: list[PlannedProduct] = field(default_factory=list)


@dataclass(eq=False)
class PlannedOrder:
    row: Row
    customer: PlannedCustomer
    warehouse: str
    lines: list[tuple[Row, PlannedVariant]]
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
    # Where the visitor came from (channel and UTM columns), on the first event of a visit.
    source: Row | None = None


@dataclass(eq=False)
class PlannedCart:
    """An abandoned cart: what a customer left in it, and when."""

    customer: PlannedCustomer
    at: datetime
    variants: list[PlannedVariant]
    token: str = ""


@dataclass(eq=False)
class ShopPlan:
    """A whole demo shop, in memory: everything :func:`server.demo.writer.write_plan` writes."""

    seed: int
    as_of: datetime
    history_start: datetime
    # The common factor every purchase rate was scaled by to give exactly the orders asked for
    # (1 when the rhythms alone decide how many orders there are).
    rate_scale: float = 1.0
    password_hash: str = ""
    categories: list[tuple[Row, list[Row]]] = field(default_factory=list)  # (top, leaves)
    products: list[PlannedProduct] = field(default_factory=list)
    # (warehouse code, product index, variant index) → [on_hand, safety_stock]
    stock: dict[tuple[str, int, int], list[int]] = field(default_factory=dict)
    customers: list[PlannedCustomer] = field(default_factory=list)
    orders: list[PlannedOrder] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    carts: list[PlannedCart] = field(default_factory=list)
    surveys: list[PlannedSurvey] = field(default_factory=list)
    # What the paid channels cost per shop day (server.demo.plan_channels).
    marketing_costs: list[Row] = field(default_factory=list)

    def reserved(self) -> dict[tuple[str, int, int], int]:
        """Stock held by open orders, per (warehouse, product index, variant index)."""
        held: Counter[tuple[str, int, int]] = Counter()
        for order in self.orders:
            if order.row["status"] in OPEN_STATUSES:
                for line, variant in order.lines:
                    key = (order.warehouse, variant.product.index, variant.index)
                    held[key] += line["quantity"]
        return dict(held)

    def demo_customer(self) -> PlannedCustomer | None:
        """The demo login: the loyal customer with the longest history."""
        orders_of = Counter(id(o.customer) for o in self.orders)
        return max(
            self.customers,
            key=lambda c: (c.prefs.archetype == "loyal", orders_of[id(c)]),
            default=None,
        )


@dataclass(eq=False)
class Draft:
    """A plan being drawn: the plan so far, the random source of every choice, and indexes."""

    plan: ShopPlan
    rng: random.Random
    # Products by the slug of their leaf category (every leaf, empty ones included).
    by_leaf: dict[str, list[PlannedProduct]]
    # The history's calendars: the whole shop's seasonality, and seasonal buyers'.
    shop_season: Season
    promotion_season: Season
    sessions: int = 0
    # The median price of each leaf category's products (filled as they are asked for).
    typical_price: dict[str, int] = field(default_factory=dict)

    def typical(self, leaf: str) -> int:
        """The median price of the products of ``leaf`` (a leaf category's slug), in fen."""
        if leaf not in self.typical_price:
            prices = sorted(p.row["price_amount"] for p in self.by_leaf[leaf])
            self.typical_price[leaf] = prices[len(prices) // 2]
        return self.typical_price[leaf]

    def next_session_id(self) -> str:
        self.sessions += 1
        return f"s{self.plan.seed:x}-{self.sessions:06d}"


def weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    """One of the pairs' values, drawn with the pairs' weights."""
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]
