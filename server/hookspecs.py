"""The hook specifications: what shopgraph asks of its plugins, and what each must return.

Four families: schema, data, order flow (inside the request's transaction) and events (after
commit). Plus permissions, settings, jobs, HTTP routes, demo data, startup and shutdown.

Hooks are called with keyword arguments only (pluggy refuses positional ones); an
implementation declares, as ordinary parameters, any subset of its spec's parameters. Two
parameters are offered to every runtime hook besides those listed in its spec:
``plugins`` (the :class:`server.plugins.PluginRuntime`, e.g. to call another hook) and
``config`` (this plugin's own settings object, see :func:`settings`). Core specs ask every
plugin and compose the answers, except ``plan_shipments`` (``firstresult``: the first plan
wins, the core's own comes last) and the payment hooks, which are called on the plugin
offering the payment's gateway only.

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
    GiftLine,
    Job,
    Kpi,
    NotApplied,
    Parcel,
    PaymentGateway,
    PaymentResult,
    PricedItem,
    PriceItem,
    PriceLimit,
    ShippingQuote,
    WebhookReply,
    hookspec,
)

if TYPE_CHECKING:
    import click
    from sqlalchemy.ext.asyncio import AsyncSession
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from server.graphql.list_filters import ListFilter
    from server.models import Customer, Order, OrderLine, Payment
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
    """Return strawberry types whose fields are merged into ``Subscription`` (async generators,
    served over WebSocket); feed them with ``publish_live`` and follow with ``follow_node`` or
    ``live_updates`` (docs/plugins.md, "Subscriptions and live updates")."""


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
# error naming the plugin (code PLUGIN_FAILED), and nothing is written. Every value a hook
# returns (Adjustment, PriceLimit, ShippingQuote, CheckoutProblem, Parcel, PaymentGateway) is
# stamped by the core with the plugin's name as its ``source``; a value of another type is a
# PLUGIN_FAILED error naming the plugin.


@hookspec
def list_prices(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    plugins: PluginRuntime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]] | None:
    """Return ``{key: [Adjustment | NotApplied, ...]}``: the shop's own price for ``customer``
    (price lists, member-tier and segment prices, quantity breaks, scheduled prices) as
    changes to the catalogue unit price of the items in ``items``. Called once per page or
    cart, before ``price_adjustments``, which then sees these steps in ``item.adjustments``
    (and ``item.price``): promotions are taken off the price the shop lists for this customer.
    Include ``NotApplied(rule, label, amount, reason)`` for the candidates you left out, so
    the breakdown says why. Same keys and batching rules as ``price_adjustments``."""


@hookspec
def price_adjustments(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    plugins: PluginRuntime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]] | None:
    """Return ``{key: [Adjustment, ...]}``: changes to the unit price (minor units per unit;
    negative is a discount, positive a fee) of the items in ``items`` for ``customer`` (None
    when anonymous) at time ``at``. ``item.price`` is the price after ``list_prices`` (the
    steps are in ``item.adjustments``); a ``NotApplied`` in a list explains a discount left
    out. Called once for all the items of a page or of a cart:
    ``items`` maps a key to each ``PriceItem`` (product, variant, quantity, catalogue unit
    price ``base``), so read what you need for all of them in one statement. A cart's items
    are its variants (keyed by variant id, ``item.variant`` set); a listing's are products'
    "from" prices (keyed by product id, ``item.variant`` None). Answer under the keys you were
    given; leave out the items you do not adjust; return None or ``{}`` to adjust none."""


@hookspec
def price_guardrails(
    session: AsyncSession,
    items: Mapping[int, PricedItem],
    customer: Customer | None,
    at: datetime,
    plugins: PluginRuntime,
    config: Any,
) -> Mapping[int, PriceLimit] | None:
    """Return ``{key: PriceLimit(rule, label, floor, ceiling)}``: bounds on the unit
    prices of ``items`` once every plugin's adjustments are applied (``PricedItem.price``).
    The core keeps the highest floor and the lowest ceiling over all plugins (and its own
    floor, zero), lowers the price to the ceiling, then raises it to the floor (a floor wins
    over a lower ceiling); the clamp is a step of its own in the breakdown. Called once per
    page or cart, after ``price_adjustments``, with the same keys."""


@hookspec
def order_adjustments(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[Adjustment] | None:
    """Return adjustments to the whole order (minor units): negative ones are discounts
    (``discount``), positive ones fees (``fees``, e.g. a handling charge). ``cart`` has the
    lines' final unit prices and the subtotal."""


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
def shipping_adjustments(
    session: AsyncSession,
    cart: CartView,
    quotes: Sequence[ShippingQuote],
    customer: Customer | None,
    plugins: PluginRuntime,
    config: Any,
) -> Mapping[str, Sequence[Adjustment]] | None:
    """Return ``{quote code: [Adjustment, ...]}``: changes to the price of the cart's shipping
    quotes (every plugin's, from ``shipping_quotes``), e.g. free shipping from a threshold
    (a negative amount). The core applies them to each quote (never below zero), shows them on
    the quote (``ShippingQuote.adjustments``) and keeps the chosen quote's on the order. Leave
    out the quotes you do not adjust; return None or ``{}`` to adjust none."""


@hookspec
def cart_gifts(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[GiftLine] | None:
    """Return free items to add to ``cart`` (``GiftLine(variant_id, quantity, rule, label)``),
    e.g. a spend-and-gift promotion's gift. The core shows each as a line of the cart at a zero
    price (its breakdown: the catalogue price, then the gift taking all of it off) and writes
    it on the order; ``placeOrder`` reserves its stock, and a gift whose stock has run out is
    left out (the order goes through without it). Called after ``order_adjustments``, with the
    same ``cart`` (its own lines only, no gifts)."""


@hookspec
def validate_checkout(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    inputs: Mapping[str, Any],
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[CheckoutProblem] | None:
    """Return problems that block checking out ``cart`` (an empty list when there are none).
    ``inputs`` holds what the shopper sent in the fields plugins added to ``PlaceOrderInput``,
    by plugin name (``inputs.get("coupons")``: that plugin's input object, see input_extras)."""


@hookspec
def order_placing(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    cart: CartView,
    customer: Customer | None,
    inputs: Mapping[str, Any],
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[CheckoutProblem] | None:
    """Called inside ``placeOrder``'s transaction, once the order and its lines are written
    (they have ids) and its stock is reserved, before it commits. Reserve here what is limited
    (coupon uses, group-buy seats, budgets) with a conditional UPDATE, and record it against
    ``order.id``. Return CheckoutProblems to refuse the order (e.g. the last seat went to
    someone else): nothing of the order is written, and the shopper gets them as the typed
    ``CheckoutProblems`` error. Return None or ``[]`` to let it through. ``inputs`` as for
    ``validate_checkout`` (a coupon code the shopper entered, a chosen group to join)."""


@hookspec
def order_cancelling(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    reason: str,
    plugins: PluginRuntime,
    config: Any,
) -> None:
    """Called inside the transaction that cancels ``order`` (its stock is released and its
    captured payments refunded in the same transaction). Give back what ``order_placing``
    reserved for it. Return nothing; raise to refuse the cancellation (nothing is written)."""


@hookspec
def order_fulfilment_hold(
    session: AsyncSession, order: Order, plugins: PluginRuntime, config: Any
) -> str | None:
    """Return why ``order`` must not be fulfilled yet (e.g. "group buy 7 needs 2 more
    members"), or None. While any plugin holds it, the core refuses to move the order to
    FULFILLING or SHIPPED (and so to create its shipments), answering the typed error
    ORDER_ON_HOLD with the reasons; ``Order.holds`` lists them. Called when staff move the
    order on and when its shipments are created; read only, write nothing."""


@hookspec(firstresult=True)
def refund_for_lines(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    returned: Mapping[int, int],
    plugins: PluginRuntime,
    config: Any,
) -> int | None:
    """firstresult: how much to give back (minor units) when the units ``returned`` (order
    line id → units) of ``order`` come back, or None to leave the answer to the next plugin.
    ``lines`` are the order's lines. A plugin that discounted the order answers from what it
    took off each line (and what a return undoes, e.g. a threshold no longer met); the core's
    own answer, called last, is the lines' unit prices times the units."""


@hookspec(firstresult=True)
def plan_shipments(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    plugins: PluginRuntime,
    config: Any,
) -> Sequence[Parcel] | None:
    """firstresult: return the parcels ``order`` ships in (``Parcel(warehouse_id, lines,
    carrier, note)``), or None to leave the plan to the next plugin. Called when the order is
    paid for, before the gateway is asked. Each line is one variant (``variant_id``, ``sku``,
    ``options``). Every unit of every line must be in exactly one parcel, and all parcels of a
    line leave one warehouse: a line planned from another warehouse than the one holding its
    units has its reservation (of that variant) moved there. The core's own implementation,
    called last, ships one parcel per warehouse holding the order's units."""


@hookspec
def payment_gateways(plugins: PluginRuntime, config: Any) -> Sequence[PaymentGateway] | None:
    """Return the payment gateways this plugin offers (``PaymentGateway(code, label,
    staff_only)``). ``payOrder(input: {gateway: code})`` then calls this plugin's
    ``authorise_payment`` (and ``capture_payment``); cancelling a paid order calls its
    ``refund_payment``; ``POST /payments/<code>/webhook`` calls its ``payment_webhook``. A code
    offered by two plugins is an error naming both."""


@hookspec
def authorise_payment(
    session: AsyncSession,
    gateway: str,
    order: Order,
    amount: int,
    currency: str,
    token: str | None,
    plugins: PluginRuntime,
    config: Any,
) -> PaymentResult:
    """Called on the plugin offering ``gateway`` only. Ask the gateway for ``amount`` (minor
    units of ``currency``, the order's total) with the client's ``token``, and return a
    ``PaymentResult``: AUTHORISED (held; the core calls ``capture_payment`` at once), CAPTURED
    (taken in one step), PENDING (the shopper must act: put what they must do in
    ``next_action``; a webhook settles it) or DECLINED (with the reason in ``message``)."""


@hookspec
def capture_payment(
    session: AsyncSession,
    gateway: str,
    order: Order,
    payment: Payment,
    plugins: PluginRuntime,
    config: Any,
) -> PaymentResult:
    """Called on the plugin offering ``gateway`` only, for a payment it AUTHORISED
    (``payment.reference`` is its id). Take the money and return a ``PaymentResult``:
    CAPTURED, PENDING (a webhook settles it) or DECLINED."""


@hookspec
def refund_payment(
    session: AsyncSession,
    gateway: str,
    order: Order,
    payment: Payment,
    reason: str,
    plugins: PluginRuntime,
    config: Any,
) -> PaymentResult:
    """Called on the plugin offering ``gateway`` only, when ``order`` is cancelled, for each of
    its CAPTURED payments. Give ``payment.amount`` back and return a ``PaymentResult`` with
    status REFUNDED (``message`` is kept with the payment). Raise when the gateway refuses:
    the cancellation then fails and nothing is written."""


@hookspec
def refund_payment_part(
    session: AsyncSession,
    gateway: str,
    order: Order,
    payment: Payment,
    amount: int,
    reason: str,
    plugins: PluginRuntime,
    config: Any,
) -> PaymentResult:
    """Called on the plugin offering ``gateway`` only, to give back ``amount`` (minor units of
    ``payment.currency``; more than 0, never more than what of ``payment`` is not refunded
    yet) of a CAPTURED payment: a price-protection credit, a goodwill gesture. Return a
    ``PaymentResult`` with status REFUNDED and the gateway's reference of the refund; raise
    when the gateway refuses (nothing is written). Also called, when a cancelled order's
    payment was partly refunded before, for the rest of it."""


@hookspec
def payment_webhook(
    session: AsyncSession,
    gateway: str,
    headers: Mapping[str, str],
    body: bytes,
    plugins: PluginRuntime,
    config: Any,
) -> WebhookReply:
    """Called on the plugin offering ``gateway`` only, for ``POST /payments/<gateway>/webhook``
    (``headers`` lower-cased). Verify the gateway's signature, then return a ``WebhookReply``:
    the ``PaymentUpdate``s it reports (by reference: CAPTURED, DECLINED, REFUNDED), which the
    core applies in the same transaction (a captured payment pays its order), and the answer
    the gateway expects. Raise to refuse the call (answered 500, nothing written; gateways
    retry)."""


# --- events (after commit) ---------------------------------------------------------------
# Each event is delivered to each implementing plugin separately, at least once: in its own
# transaction (``session``), which commits together with the delivery's DELIVERED mark. Raise
# to have the delivery retried with backoff; after the last attempt it is dead-lettered.


@hookspec
def order_placed(event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any) -> None:
    """Called after an order is committed. ``event.payload`` has ``order_id``, ``customer_id``,
    ``total`` (minor units), ``currency`` and ``lines`` (``order_line_id``, ``product_id``,
    ``variant_id``, ``sku``, ``options``, ``quantity``, ``unit_price``, ``warehouse_id``)."""


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
def payment_refunded(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a payment is refunded: a cancelled order's payments given back, or a
    refund a gateway's webhook reports (after a delivery, that is a return). Payload
    ``order_id``, ``payment_id``, ``amount`` (minor units), ``currency`` and ``gateway``."""


@hookspec
def shipment_created(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a shipment is created: payload ``shipment_id``, ``order_id``,
    ``warehouse_id``, ``carrier``, ``tracking_number`` and ``lines`` (``order_line_id``,
    ``variant_id``, ``sku``, ``quantity``)."""


@hookspec
def shipment_status_changed(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a shipment changes status: payload ``shipment_id``, ``order_id``,
    ``from_status``, ``to_status``."""


@hookspec
def tracking_event_recorded(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a tracking event (a carrier's scan) is added to a shipment's timeline,
    whether or not it changed the shipment's status: payload ``shipment_id``, ``order_id``,
    ``status``, ``description``, ``location`` and ``occurred_at`` (ISO 8601)."""


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
    ``product_id``, ``change`` (``created``, ``updated`` or ``archived``) and, when staff or
    an API key made the change, ``actor`` (``staff:3``, ``apikey:7``, as the audit log names
    them)."""


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


@hookspec
def survey_sent(event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any) -> None:
    """Called after a satisfaction survey is created for a customer: put it in front of them
    (a push message, an SMS or e-mail linking to the app, where ``mySurveys`` lists it).
    Payload ``survey_id``, ``customer_id``, ``kind`` (CSAT or NPS), ``trigger`` (DELIVERY,
    RETURN, SERVICE_CONTACT, PERIODIC), ``subject_key``, ``order_id`` (or None) and
    ``expires_at`` (ISO 8601)."""


@hookspec
def survey_answered(
    event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any
) -> None:
    """Called after a customer answers a satisfaction survey (e.g. follow up an unhappy one).
    Payload ``survey_id``, ``customer_id``, ``kind``, ``trigger``, ``subject_key``,
    ``order_id`` and ``score``; the comment is read from the survey
    (``server.models.Survey``), not carried in the event."""


@hookspec
def alert_raised(event: Event, session: AsyncSession, plugins: PluginRuntime, config: Any) -> None:
    """Called after an alert is raised, once per breach (a KPI rule's, an anomaly, a
    stock-out): payload ``alert_id``, ``kind`` (THRESHOLD, ANOMALY, STOCK_OUT), ``rule_id``,
    ``kpi``, ``product_id``, ``variant_id``, ``bucket_start`` and ``bucket_end`` (ISO dates),
    ``value``, ``expected``, ``threshold``, ``score``, ``direction`` (UP, DOWN), ``bad_news``
    and ``message``. Send it where people will see it (mail, a chat webhook)."""


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
def cli_commands(plugins: PluginRuntime, config: Any) -> Sequence[click.Command]:
    """Return click commands (or groups) to add to the ``shopgraph`` command line, such as
    ``shopgraph recommend evaluate``. A command named like a core command or like another
    plugin's is a start-up error naming both. Commands are asked for only when the command
    line names one that the core does not have."""


@hookspec
def kpis(plugins: PluginRuntime, config: Any) -> Sequence[Kpi]:
    """Return the KPIs this plugin adds (:class:`server.plugin.Kpi`): the staff KPI query,
    alert thresholds, the anomaly detector and the ``/admin`` dashboard offer them next to the
    core's own (GMV, orders, conversion …). Two KPIs with one key are a start-up error naming
    both plugins."""


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
