"""The vocabulary of the hooks: the pluggy markers, and the values hooks pass and return
(adjustments, price limits, carts as hooks see them, parcels, payments, events, jobs, a
plugin's metadata).

Plugins import these from :mod:`server.plugin`; the core imports them from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from server.config import Settings
    from server.models import Product, ProductVariant
    from server.plugins import PluginRuntime

PROJECT = "shopgraph"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# The plugin a value came from. Hooks never set it: the core stamps every Adjustment,
# PriceLimit, ShippingQuote, CheckoutProblem, Parcel and PaymentGateway a plugin returns with
# that plugin's name (``"core"`` for the core's own), replacing whatever was there.
CORE = "core"


class AdjustmentKind(StrEnum):
    """What an adjustment does to what the shopper pays: a negative amount is a DISCOUNT, a
    positive one a FEE (a surcharge, a handling or packaging charge)."""

    DISCOUNT = "DISCOUNT"
    FEE = "FEE"


@dataclass(frozen=True)
class Adjustment:
    """A change to a price, explained: which rule of which plugin, why (label), how much.

    ``amount`` is in minor units of the currency: negative for a discount, positive for a fee.
    ``source`` is stamped by the core with the name of the plugin that returned it.
    """

    rule: str
    label: str
    amount: int
    source: str = field(default="", kw_only=True)

    @property
    def kind(self) -> AdjustmentKind:
        return AdjustmentKind.FEE if self.amount > 0 else AdjustmentKind.DISCOUNT

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rule": self.rule,
            "label": self.label,
            "amount": self.amount,
        }


@dataclass(frozen=True)
class NotApplied:
    """A price step a plugin considered and left out, with why (``reason``): shown in the
    price breakdown so a shopper or an operator sees what did not apply, e.g. a segment price
    not better than the member price. ``amount`` is what it would have changed the unit price
    by (minor units). A ``list_prices`` or ``price_adjustments`` answer may carry these among
    its adjustments; they never change the price."""

    rule: str
    label: str
    amount: int
    reason: str
    source: str = field(default="", kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rule": self.rule,
            "label": self.label,
            "amount": self.amount,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PriceItem:
    """One thing to price (the ``list_prices`` and ``price_adjustments`` hooks): the product's
    row (a ``server.models.Product`` entity, or a listing's read-only record with the same
    columns: read it, never write to it), the variant when a particular SKU is priced (a cart line;
    None for a product's "from" price in a listing), how many units are bought, and the
    catalogue unit price (``base``, minor units).

    ``adjustments`` are the steps already applied: none for ``list_prices``; the shop's own
    price steps (``list_prices``) for ``price_adjustments``, so that a promotion's percentage
    is taken off ``price``, what this customer would pay before promotions."""

    product: Product
    quantity: int
    base: int
    variant: ProductVariant | None = None
    adjustments: tuple[Adjustment, ...] = ()

    @property
    def price(self) -> int:
        return self.base + sum(a.amount for a in self.adjustments)


@dataclass(frozen=True)
class PricedItem:
    """One item as the ``price_guardrails`` hook sees it: every plugin's adjustments to its
    unit price applied (``price``, which may be negative: the guardrails decide)."""

    product: Product
    quantity: int
    base: int
    adjustments: tuple[Adjustment, ...]
    variant: ProductVariant | None = None

    @property
    def price(self) -> int:
        return self.base + sum(a.amount for a in self.adjustments)


@dataclass(frozen=True)
class PriceLimit:
    """Bounds on a unit price (the ``price_guardrails`` hook), in minor units: the final price
    is raised to ``floor`` and lowered to ``ceiling`` (None: no bound). The clamp is shown as a
    step of its own in the price breakdown, labelled with ``rule`` and ``label``."""

    rule: str
    label: str
    floor: int | None = None
    ceiling: int | None = None
    source: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class ShippingQuote:
    """A way to ship a cart: carrier + service, price in minor units, promised delivery.

    ``promised_from``/``promised_by`` are the promised delivery window (dates, both included).
    ``list_amount`` and ``adjustments`` are the core's to set: the price the quoting plugin
    asked, and the other plugins' ``shipping_adjustments`` to it; ``amount`` is then the list
    price plus the adjustments, never below zero."""

    code: str
    carrier: str
    label: str
    amount: int
    promised_days: int | None = None
    source: str = field(default="", kw_only=True)
    # The delivery promise, as dates in the shop's time zone: it arrives between these two
    # days (both included). The core freezes the chosen quote's on the order.
    promised_from: date | None = field(default=None, kw_only=True)
    promised_by: date | None = field(default=None, kw_only=True)
    list_amount: int | None = field(default=None, kw_only=True)
    adjustments: tuple[Adjustment, ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class GiftLine:
    """A free item a plugin adds to a cart (``cart_gifts``): ``quantity`` units of variant
    ``variant_id`` at a zero price, explained by ``rule`` and ``label`` (e.g. a spend-and-gift
    promotion's gift)."""

    variant_id: int
    quantity: int
    rule: str
    label: str
    source: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class CheckoutProblem:
    """A reason a cart may not be checked out (``validate_checkout``) or an order may not be
    placed (``order_placing``): shown to the shopper, it blocks ``placeOrder``. ``code`` is the
    plugin's own (e.g. ``COUPON_USED_UP``); ``field`` names the input it is about, if any."""

    code: str
    message: str
    field: str | None = None
    # ``field`` above shadows dataclasses.field inside this class body.
    source: str = dataclasses.field(default="", kw_only=True)


@dataclass(frozen=True)
class ParcelLine:
    """Units of one order line in a planned parcel."""

    order_line_id: int
    quantity: int


@dataclass(frozen=True)
class Parcel:
    """One parcel of a shipment plan (``plan_shipments``): the warehouse it leaves from, the
    units it carries, and optionally the carrier the planner chose and a note for the packers.
    """

    warehouse_id: int
    lines: tuple[ParcelLine, ...]
    carrier: str | None = None
    note: str = ""
    source: str = field(default="", kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "warehouse_id": self.warehouse_id,
            "carrier": self.carrier,
            "note": self.note,
            "lines": [
                {"order_line_id": ln.order_line_id, "quantity": ln.quantity} for ln in self.lines
            ],
        }


class PaymentOutcome(StrEnum):
    """What a gateway says of a payment.

    AUTHORISED: the money is held (the core then captures it); CAPTURED: the money is taken;
    PENDING: the shopper has still to act (scan a QR code, confirm in an app) and a webhook
    will tell; DECLINED: refused; REFUNDED: given back.
    """

    AUTHORISED = "AUTHORISED"
    CAPTURED = "CAPTURED"
    PENDING = "PENDING"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"


@dataclass(frozen=True)
class PaymentGateway:
    """A payment gateway a plugin offers (``payment_gateways``). ``code`` is what
    ``payOrder(input: {gateway})`` names; a ``staff_only`` gateway (money received offline)
    is for holders of ``orders.manage`` only."""

    code: str
    label: str
    staff_only: bool = False
    source: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class PaymentResult:
    """A gateway's answer to authorise, capture or refund. ``reference`` is the gateway's id of
    the payment (webhooks name payments by it); ``next_action`` tells a PENDING payment's
    shopper what to do (a URL to open, a QR code's content)."""

    status: PaymentOutcome
    reference: str
    message: str = ""
    next_action: str | None = None


@dataclass(frozen=True)
class PaymentUpdate:
    """What a webhook reports of one payment, named by its gateway ``reference``."""

    reference: str
    status: PaymentOutcome
    message: str = ""


@dataclass(frozen=True)
class WebhookReply:
    """A gateway's webhook handled: the payment updates it carried, and what to answer the
    gateway (most want a fixed body, e.g. ``success``)."""

    updates: tuple[PaymentUpdate, ...] = ()
    body: str = "ok"
    media_type: str = "text/plain"
    status_code: int = 200


@dataclass(frozen=True)
class CartLineView:
    """A cart line as order-flow hooks see it: product and variant (its SKU), quantity and
    unit price so far."""

    product_id: int
    variant_id: int
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


def _unheard(what: str) -> None:
    """A job's progress when nobody shows it (the jobs of a serving process)."""


@dataclass(frozen=True)
class JobContext:
    """What a periodic job gets: a session factory (one transaction per ``async with``),
    the core settings, the plugin set, the job's own plugin's settings, and ``progress``:
    call ``progress("…")`` to say what a long job is doing (``shopgraph jobs run`` shows it
    on its progress bar, or as a line where stderr is no terminal)."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    plugins: PluginRuntime
    config: Any = None
    progress: Callable[[str], None] = _unheard


@dataclass(frozen=True)
class Job:
    """Periodic work a plugin asks for (the ``jobs`` hook): run every ``interval_seconds``
    by ``shopgraph jobs run``; at most one process runs a given job at a time."""

    name: str
    interval_seconds: float
    run: Callable[[JobContext], Awaitable[None]]
    description: str = ""


class KpiUnit(StrEnum):
    """How a KPI's values read: a count, money in minor units of the shop's currency, a
    ratio between 0 and 1, or a score (CSAT 1–5, NPS −100…100)."""

    COUNT = "COUNT"
    MONEY = "MONEY"
    RATIO = "RATIO"
    SCORE = "SCORE"


@dataclass(frozen=True)
class KpiBucket:
    """One period of a KPI series: the shop-local days ``start`` (inclusive) to ``end``
    (exclusive). A day is a day of the shop's time zone (UTC+8, see
    :func:`server.services.forecasts.shop_day`)."""

    start: date
    end: date


@dataclass(frozen=True)
class Kpi:
    """A figure of the shop the ``kpis`` hook offers to the KPI query, alerts and the dashboard.

    ``compute(session, buckets)`` returns one value per bucket, in the buckets' order (None
    where the figure has no value, e.g. a ratio of nothing). It is called with every bucket of
    a query at once, so compute them in one or a few statements, from aggregates where the
    period is long. ``key`` is unique across the shop (a plugin's keys start with its name and
    a dot, e.g. ``"logistics.on_time_rate"``); ``higher_is_better`` tells the dashboard and
    the anomaly detector which direction is good news."""

    key: str
    label: str
    unit: KpiUnit
    compute: Callable[[AsyncSession, Sequence[KpiBucket]], Awaitable[Sequence[float | None]]]
    description: str = ""
    higher_is_better: bool = True


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
