"""The hook specifications: what shopgraph asks of its plugins, and what each must return.

Four families: schema, data, order flow (synchronous, inside the request's transaction) and
events (after commit). Plus permissions, settings, jobs, startup and shutdown.
Every hook is called with keyword arguments only; implementations may take any subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.plugin import (
    Adjustment,
    CartView,
    CheckoutProblem,
    Event,
    ShippingQuote,
    hookspec,
)

# --- schema ------------------------------------------------------------------------------


@hookspec
def graphql_types() -> Sequence[type]:
    """Return strawberry types to add to the schema even when no field reaches them
    (e.g. implementations of an interface)."""


@hookspec
def graphql_queries() -> Sequence[type]:
    """Return strawberry types whose fields are merged into ``Query``."""


@hookspec
def graphql_mutations() -> Sequence[type]:
    """Return strawberry types whose fields are merged into ``Mutation``."""


@hookspec
def graphql_subscriptions() -> Sequence[type]:
    """Return strawberry types whose fields are merged into ``Subscription``."""


@hookspec
def graphql_type_extensions() -> dict[str, Sequence[type]]:
    """Return ``{core type name: [strawberry types]}``: their fields are added to that core type
    (e.g. ``{"Product": [ProductRecommendations]}`` adds ``Product.recommendations``).
    Resolvers receive the core object as ``root``."""


# --- data --------------------------------------------------------------------------------


@hookspec
def models() -> Sequence[str]:
    """Return the dotted names of modules that define the plugin's SQLModel tables."""


@hookspec
def migration_locations() -> Sequence[str]:
    """Return folders holding the plugin's alembic versions (its own branch, labelled with the
    plugin's name)."""


# --- order flow --------------------------------------------------------------------------


@hookspec
def price_adjustments(
    session: Any, product: Any, customer: Any | None, quantity: int, at: datetime, base: int
) -> Sequence[Adjustment] | None:
    """Return adjustments to the unit price of ``product`` (minor units per unit; negative is a
    discount) for ``customer`` (None when anonymous) buying ``quantity`` at time ``at``.
    ``base`` is the catalogue unit price. Runs inside the request's transaction."""


@hookspec
def order_adjustments(
    session: Any, cart: CartView, customer: Any | None
) -> Sequence[Adjustment] | None:
    """Return adjustments to the whole order (minor units; negative is a discount), given the
    cart with its final unit prices. Runs inside the request's transaction."""


@hookspec
def shipping_quotes(
    session: Any, cart: CartView, address: dict[str, Any] | None
) -> Sequence[ShippingQuote] | None:
    """Return the ways this cart can be shipped to ``address``, each with its price."""


@hookspec
def validate_checkout(
    session: Any, cart: CartView, customer: Any | None
) -> Sequence[CheckoutProblem] | None:
    """Return problems that block checking out ``cart`` (an empty list when there are none)."""


# --- events (after commit) ---------------------------------------------------------------


@hookspec
def order_placed(event: Event) -> None:
    """Called after an order is committed. ``event.payload`` has ``order_id``, ``customer_id``,
    ``total`` and ``lines``. Raise to have the delivery retried."""


@hookspec
def order_status_changed(event: Event) -> None:
    """Called after an order changes status: payload ``order_id``, ``from_status``,
    ``to_status``."""


@hookspec
def payment_captured(event: Event) -> None:
    """Called after a payment is captured: payload ``order_id``, ``payment_id``, ``amount``."""


@hookspec
def shipment_status_changed(event: Event) -> None:
    """Called after a shipment changes status: payload ``shipment_id``, ``order_id``,
    ``from_status``, ``to_status``."""


@hookspec
def customer_event_recorded(event: Event) -> None:
    """Called after a behaviour event (VIEW, SEARCH, FAVORITE, ADD_TO_CART, PURCHASE) is stored:
    payload ``customer_id``, ``kind``, ``product_id``, ``query``."""


# --- the rest ----------------------------------------------------------------------------


@hookspec
def permissions() -> Sequence[str]:
    """Return the permission names this plugin adds (e.g. ``"complaints.manage"``)."""


@hookspec
def settings() -> type | None:
    """Return a pydantic model of this plugin's settings (read from ``SHOPGRAPH_<NAME>_*``)."""


@hookspec
def jobs() -> Sequence[Any]:
    """Return periodic jobs: objects with ``name``, ``interval_seconds`` and an async ``run``."""


@hookspec
def startup(app: Any) -> None:
    """Called once when the server starts, after the database is reachable."""


@hookspec
def shutdown(app: Any) -> None:
    """Called once when the server stops."""
