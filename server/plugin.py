"""The public plugin API: everything a plugin author imports from shopgraph.

A plugin is a module or object with functions marked ``@hookimpl`` whose names match the
specifications in :mod:`server.hookspecs`. Every hook is called with keyword arguments; an
implementation takes any subset of the spec's parameters (ordinary parameters, not
keyword-only ones: pluggy matches them by name). A hook's result may be an awaitable: the core
awaits it.

Besides the markers and the values hooks pass, this module exports the GraphQL helpers a
plugin's ``schema.py`` needs (``Info``, ``mutate``, ``connection``, ``Error`` …) and the errors
its services raise, so a plugin has one import surface. docs/plugins.md has a reference
section for every name in ``__all__``.
"""

from __future__ import annotations

from schema.categories import Category, CategoryView
from schema.inventory import Warehouse
from schema.products import Product, ProductView
from server.auth import Viewer
from server.db import run_in_session
from server.graphql.connections import (
    ConnectionsByParentLoader,
    Paged,
    connection,
    nested_connection,
)
from server.graphql.context import Context, Database, Info
from server.graphql.errors import (
    AuthenticationError,
    ConflictError,
    Error,
    NotFoundError,
    ValidationError,
)
from server.graphql.ids import filter_node_id, optional_node_id, parse_node_id, require_node_id
from server.graphql.inputs import input_extras
from server.graphql.list_filters import ListFilter
from server.graphql.loaders import ModelByIdLoader, ModelsByFieldLoader
from server.graphql.money import Money, money
from server.graphql.mutations import mutate, run_mutation, run_write
from server.graphql.node import FromModel, ModelNode
from server.graphql.pagination import Connection, Page, SortDirection, SortKey, paginate
from server.graphql.permissions import HasPermission, IsAuthenticated, IsCustomer, IsStaff
from server.graphql.sockets import follow_node, live_updates
from server.hooktypes import (
    CORE,
    PROJECT,
    Adjustment,
    AdjustmentKind,
    CartLineView,
    CartView,
    CheckoutProblem,
    DemoShop,
    Event,
    GiftLine,
    Job,
    JobContext,
    Kpi,
    KpiBucket,
    KpiUnit,
    NotApplied,
    Parcel,
    ParcelLine,
    PaymentGateway,
    PaymentOutcome,
    PaymentResult,
    PaymentUpdate,
    PluginInfo,
    PricedItem,
    PriceItem,
    PriceLimit,
    ShippingQuote,
    WebhookReply,
    hookimpl,
    hookspec,
)
from server.live import publish as publish_live
from server.migrate import scratch_database
from server.models import SurveyKind, SurveyTrigger
from server.plugin_routes import (
    RouteError,
    request_viewer,
    require_permission,
    require_signature,
    require_staff,
    route_session,
    verify_signature,
)
from server.services.alerts import raise_plugin_alert as raise_alert
from server.services.audiences import audience_members, in_audience
from server.services.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    NotFound,
    OrderOnHold,
    ValidationFailed,
)
from server.services.experiments import variant_for
from server.services.forecasts import Forecast, ForecastInterval, demand_forecast
from server.services.gateways import refund_amount
from server.services.orders import system_cancel as cancel_order
from server.services.outbox import emit as emit_event
from server.services.replacements import create_replacement_order
from server.services.returns import LinesRefund, refund_lines
from server.services.shipments import system_create_shipment as create_shipment
from server.services.shipments import system_record_tracking_event as record_tracking_event
from server.services.surveys import request_survey

__all__ = [
    # markers and metadata
    "CORE",
    "PROJECT",
    "PluginInfo",
    "hookimpl",
    "hookspec",
    # what hooks pass and return
    "Adjustment",
    "AdjustmentKind",
    "CartLineView",
    "CartView",
    "CheckoutProblem",
    "DemoShop",
    "Event",
    "GiftLine",
    "Job",
    "JobContext",
    "Kpi",
    "KpiBucket",
    "KpiUnit",
    "Parcel",
    "ParcelLine",
    "PaymentGateway",
    "PaymentOutcome",
    "PaymentResult",
    "PaymentUpdate",
    "NotApplied",
    "PriceItem",
    "PriceLimit",
    "PricedItem",
    "ShippingQuote",
    "WebhookReply",
    # the request
    "Context",
    "Database",
    "Info",
    "Viewer",
    # events of a plugin's own
    "emit_event",
    # live updates: tell subscribers a topic changed (on commit); follow one in a subscription
    "publish_live",
    "live_updates",
    "follow_node",
    # command lines (the cli_commands hook): one transaction on the shop's database, or a
    # throwaway database migrated like the shop's
    "run_in_session",
    "scratch_database",
    # experiments (A/B tests): the variant a visitor gets
    "variant_for",
    # audiences: saved customer rules to target
    "audience_members",
    "in_audience",
    # money given back: part of an order's captured payments (a credit, a goodwill gesture)
    "refund_amount",
    # the shop cancels an order itself (a failed group buy, a fraud check)
    "cancel_order",
    "create_shipment",
    # units of an order's lines given back, refunded at what the plugins say they are worth
    "refund_lines",
    "LinesRefund",
    # goods sent at no charge in place of others (an exchange, a repair, a lost parcel)
    "create_replacement_order",
    # a carrier's scan recorded as the shop: the shipment (and its order) move
    "record_tracking_event",
    # an alert staff see with the core's (once per key)
    "raise_alert",
    # demand forecasts
    "Forecast",
    "ForecastInterval",
    "demand_forecast",
    # satisfaction surveys: a survey after a service contact
    "SurveyKind",
    "SurveyTrigger",
    "request_survey",
    # HTTP routes (the routes hook)
    "RouteError",
    "request_viewer",
    "require_permission",
    "require_signature",
    "require_staff",
    "route_session",
    "verify_signature",
    # writing the schema
    "Connection",
    "ConnectionsByParentLoader",
    "FromModel",
    "ModelByIdLoader",
    "ModelNode",
    "ModelsByFieldLoader",
    "Money",
    "Page",
    "Paged",
    "SortDirection",
    "SortKey",
    "connection",
    "input_extras",
    "money",
    "mutate",
    "nested_connection",
    "filter_node_id",
    "optional_node_id",
    "paginate",
    "parse_node_id",
    "require_node_id",
    "run_mutation",
    "run_write",
    # who may see a field
    "HasPermission",
    "IsAuthenticated",
    "IsCustomer",
    "IsStaff",
    # the core's types: returned by a plugin's payloads, typed roots of its extension fields
    "Category",
    "CategoryView",
    "ListFilter",
    "Product",
    "ProductView",
    "Warehouse",
    # errors: raised by services, answered as typed GraphQL errors
    "AuthenticationError",
    "Conflict",
    "ConflictError",
    "DomainError",
    "InvalidTransition",
    "OrderOnHold",
    "Error",
    "NotFound",
    "NotFoundError",
    "ValidationError",
    "ValidationFailed",
]
