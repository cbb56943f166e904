"""The hook specifications: what shopgraph asks of its plugins, and what each must return.

Four families: schema, data, order flow (inside the request's transaction) and events (after
commit). Plus permissions, settings, jobs, HTTP routes, demo data, startup and shutdown.

Hooks are called with keyword arguments only (pluggy refuses positional ones); an
implementation declares, as ordinary parameters, any subset of its spec's parameters. Two
parameters are offered to every runtime hook besides those listed in its spec:
``plugins`` (the :class:`server.plugins.PluginRuntime`, e.g. to call another hook) and
``config`` (this plugin's own settings object, see :func:`settings`). No core spec is
``firstresult``: each asks every plugin and composes the answers.

Hooks are called through pluggy's call loop (:mod:`server.hookcall`), so ``tryfirst``,
``trylast`` and wrappers (``@hookimpl(wrapper=True)``, and old-style ``hookwrapper=True``)
work as pluggy documents them; a result that is awaitable is awaited inside the loop, so a
wrapper receives the awaited results.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from server.hooktypes import (
    Adjustment,
    CartView,
    CheckoutProblem,
    DemoShop,
    Event,
    Job,
    ShippingQuote,
    hookspec,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from server.graphql.list_filters import ListFilter
    from server.models import Customer, Product
    from server.plugins import PluginRuntime

# --- schema ------------------------------------------------------------------------------
# Called once, when the schema is assembled at start-up. A name clash between contributions
# (two root fields, two extension fields, a field already on the core type) is a start-up
# error naming both contributors.


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
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    """Return ``{core type name: [strawberry types]}``: their fields are added to that core type
    (e.g. ``{"Product": [ProductRecommendations]}`` adds ``Product.recommendations``).
    Resolvers receive the core object as ``self`` (or a parameter named ``root``)."""


@hookspec
def list_filters(plugins: PluginRuntime, config: Any) -> Mapping[str, Sequence[ListFilter]]:
    """Return ``{core list name: [ListFilter]}``: each :class:`server.plugin.ListFilter` adds an
    optional field to that list's ``filter`` input, with the function ``(stmt, value) -> stmt``
    that narrows the list's statement when a client gives the field a value (e.g.
    ``{"products": [ListFilter("min_rating", float, by_rating)]}`` adds
    ``products(filter: {minRating: 4.5})``). The lists that take them: ``products``. A field
    the input already has, or that another plugin adds too, is a start-up error."""


@hookspec
def cacheable_fields() -> Mapping[str, Sequence[str]]:
    """Return ``{"Type.field": [event names]}``: the plugin's fields whose answer is public (the
    same for every anonymous viewer, no personal data) and the outbox events whose commit
    changes it (e.g. ``{"Product.badge": ["product_changed", "badge_changed"]}``). A query
    reading only declared fields may be answered from the response cache until one of those
    events commits. An undeclared field is never cached."""


# --- data --------------------------------------------------------------------------------
# Called by ``shopgraph db upgrade`` / ``downgrade`` and by the migration environment.


@hookspec
def models() -> Sequence[str]:
    """Return the dotted names of modules that define the plugin's SQLModel tables."""


@hookspec
def migration_locations() -> Sequence[str]:
    """Return folders holding the plugin's alembic versions (its own branch, labelled with the
    plugin's name, depending on a core revision). Also called for a disabled plugin, by the
    migration commands only: a branch it left in a database must stay readable."""


# --- order flow --------------------------------------------------------------------------
# Called inside the request's transaction: whatever a hook reads or writes through ``session``
# commits or rolls back with the request. A hook that raises fails the request with a GraphQL
# error naming the plugin (code PLUGIN_FAILED), and nothing is written.


@hookspec
def price_adjustments(
    session: AsyncSession,
    product: Product,
    customer: Customer | None,
    quantity: int,
    at: datetime,
    base: int,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[Adjustment] | None:
    """Return adjustments to the unit price of ``product`` (minor units per unit; negative is a
    discount) for ``customer`` (None when anonymous) buying ``quantity`` at time ``at``.
    ``base`` is the catalogue unit price. Return an empty list (or None) to leave it alone."""


@hookspec
def order_adjustments(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[Adjustment] | None:
    """Return adjustments to the whole order (minor units; negative is a discount), given the
    cart with its final unit prices and subtotal."""


@hookspec
def shipping_quotes(
    session: AsyncSession,
    cart: CartView,
    address: dict[str, Any] | None,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[ShippingQuote] | None:
    """Return the ways this cart can be shipped to ``address``, each with its price. When no
    plugin quotes, shipping is free."""


@hookspec
def validate_checkout(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[CheckoutProblem] | None:
    """Return problems that block checking out ``cart`` (an empty list when there are none)."""


# --- events (after commit) ---------------------------------------------------------------
# Each event is delivered to each implementing plugin separately, at least once: in its own
# transaction (``session``), which commits together with the delivery's DELIVERED mark. Raise
# to have the delivery retried with backoff; after the last attempt it is dead-lettered.


@hookspec
def order_placed(event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any) -> None:
    """Called after an order is committed. ``event.payload`` has ``order_id``, ``customer_id``,
    ``total`` (minor units), ``currency`` and ``lines``."""


@hookspec
def order_status_changed(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after an order changes status: payload ``order_id``, ``from_status``,
    ``to_status``."""


@hookspec
def payment_captured(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a payment is captured: payload ``order_id``, ``payment_id``, ``amount``."""


@hookspec
def shipment_status_changed(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a shipment changes status: payload ``shipment_id``, ``order_id``,
    ``from_status``, ``to_status``."""


@hookspec
def customer_event_recorded(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a behaviour event (VIEW, SEARCH, FAVORITE, ADD_TO_CART, PURCHASE) is stored:
    payload ``customer_id``, ``kind``, ``product_id``, ``query``."""


@hookspec
def customer_registration_requested(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a registration for an address without an account is stored: payload
    ``email``, ``token`` and ``expires_at`` (ISO 8601). Send the address a link carrying the
    token; the frontend behind the link calls ``confirmRegistration(input: {token})``, which
    creates the account. The token is a secret: put it in the e-mail, nowhere else."""


@hookspec
def customer_registration_attempted(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after someone asked to register an address that already has an account: payload
    ``customer_id`` and ``email``. Tell the owner (someone tried to sign up with their
    address; if it was them, they can sign in or reset their password). The caller of
    ``registerCustomer`` got the same answer as for a new address."""


@hookspec
def product_changed(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a product is created, updated (its price included) or archived: payload
    ``product_id`` and ``change`` (``created``, ``updated`` or ``archived``)."""


@hookspec
def category_changed(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a category is created or updated: payload ``category_id`` and ``change``
    (``created`` or ``updated``)."""


@hookspec
def stock_level_set(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after staff set a stock level: payload ``warehouse_id``, ``product_id``,
    ``on_hand``, ``safety_stock`` and ``staff_id``."""


@hookspec
def stock_adjusted(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after units on hand are adjusted: payload ``warehouse_id``, ``product_id``,
    ``delta``, ``reason``, ``on_hand`` and ``staff_id``."""


# --- the rest ----------------------------------------------------------------------------


@hookspec
def permissions() -> Sequence[str]:
    """Return the permission names this plugin adds (e.g. ``"complaints.manage"``)."""


@hookspec
def settings() -> type | None:
    """Return a pydantic model of this plugin's settings. Each field ``x`` is read from
    ``SHOPGRAPH_<PLUGIN>_<X>`` (environment, then the config file); the validated object is
    passed to this plugin's hooks as ``config``. Invalid values are a start-up error."""


@hookspec
def jobs(plugins: PluginRuntime, config: Any) -> Sequence[Job]:
    """Return periodic jobs (:class:`server.plugin.Job`): ``shopgraph jobs run`` runs each
    when its interval has passed, in one process at a time."""


@hookspec
def demo_data(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    plugins: PluginRuntime,
    config: Any,
) -> Mapping[str, int] | None:
    """Fill this plugin's tables with demo data during ``shopgraph demo-data``, after the core's
    demo shop is written: ``shop`` holds its seed, the moment its history ends and the ids of
    its rows (customers, products, orders …). Write through ``session``, the core's transaction:
    flush if you need ids, never commit. Draw every random choice from ``rng`` (seeded from the
    demo seed and this plugin's name) and date rows from ``shop.as_of``, so that the same seed
    gives the same rows. ``progress("…")`` shows what is under way. Return ``{what: how many}``
    of the rows written (shown in the command's summary), or None. Raising fails the command,
    naming the plugin, and nothing is written, the core's demo data included."""


@hookspec
def routes(plugins: PluginRuntime, config: Any) -> Sequence[BaseRoute]:
    """Return starlette routes (``Route``, ``WebSocketRoute``, ``Mount``) to serve under
    ``/plugins/<plugin name>``: ``Route("/webhook", receive, methods=["POST"])`` of plugin
    ``sf_express`` answers ``POST /plugins/sf_express/webhook``. Called once, when the app is
    built. The routes get the core's body limit, request ids and metrics; authenticate callers
    with ``request_viewer``/``require_permission``/``require_signature`` (server.plugin)."""


@hookspec
def startup(app: Starlette, plugins: PluginRuntime, config: Any) -> None:
    """Called once when the server starts, after the database is reachable."""


@hookspec
def shutdown(app: Starlette, plugins: PluginRuntime, config: Any) -> None:
    """Called once when the server stops: close what ``startup`` opened. Return nothing."""
