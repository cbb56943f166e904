"""Promotions, a built-in plugin: flash sales, spend-and-save, spend-and-gift, buy X get Y,
coupons, member deals, bundles, group buying, referrals and campaigns, with explicit stacking,
exact limits under concurrency and a per-line discount ledger frozen on each order.

The plugin object is this module: ``PLUGIN_INFO`` says what it is, the ``@hookimpl``
functions below what it does. Everything it uses comes from ``server.plugin`` and the core's
public models and services (docs/plugins/promotions.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Customer, Order, OrderLine
from server.plugin import (
    Adjustment,
    CartView,
    CheckoutProblem,
    DemoShop,
    Event,
    GiftLine,
    Job,
    Kpi,
    NotApplied,
    PluginInfo,
    PriceItem,
    ShippingQuote,
    hookimpl,
)

PLUGIN_INFO = PluginInfo(
    name="promotions",
    version="1.0.0",
    description="Promotions: flash sales, spend-and-save, gifts, coupons, member deals, "
    "buy X get Y, bundles, group buying, referrals and campaigns.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"
# Marketing staff: create, schedule, pause and end promotions and campaigns; issue coupons.
MANAGE = "promotions.manage"
# Staff who read promotions, coupons, groups and the reports, and change nothing.
READ = "promotions.read"

__all__ = ["MANAGE", "PLUGIN_INFO", "READ"]

# --- data ----------------------------------------------------------------------------------


# Named apart from the hook: importing the submodule ``models`` sets this package's attribute
# of that name, which would hide a function called ``models`` from the next registration.
@hookimpl(specname="models")
def table_modules() -> Sequence[str]:
    return ["plugins.promotions.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


# --- platform ------------------------------------------------------------------------------


@hookimpl
def settings() -> type:
    from plugins.promotions.service.settings import PromotionsSettings

    return PromotionsSettings


@hookimpl
def permissions() -> Sequence[str]:
    return [MANAGE, READ]


@hookimpl
def jobs(config: Any) -> Sequence[Job]:
    from plugins.promotions.service import campaigns, groups

    return [*groups.jobs(config), *campaigns.jobs(config)]


@hookimpl
def kpis() -> Sequence[Kpi]:
    from plugins.promotions.service import report

    return report.kpis()


@hookimpl
async def demo_data(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    config: Any,
) -> dict[str, int]:
    from plugins.promotions.service import demo

    return await demo.fill(session, shop, rng, config, progress)


# --- the order flow: prices, the order's and the shipping's discounts, gifts ----------------


@hookimpl
async def price_adjustments(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]]:
    from plugins.promotions.service import pricing

    return await pricing.price_adjustments(session, items, customer, at, config)


@hookimpl
async def order_adjustments(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[Adjustment]:
    from plugins.promotions.service import checkout

    return await checkout.order_adjustments(session, cart, customer, plugins, config)


@hookimpl
async def shipping_adjustments(
    session: AsyncSession,
    cart: CartView,
    quotes: Sequence[ShippingQuote],
    customer: Customer | None,
    plugins: Any,
    config: Any,
) -> Mapping[str, Sequence[Adjustment]]:
    from plugins.promotions.service import checkout

    return await checkout.shipping_adjustments(session, cart, quotes, customer, plugins, config)


@hookimpl
async def cart_gifts(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[GiftLine]:
    from plugins.promotions.service import checkout

    return await checkout.cart_gifts(session, cart, customer, plugins, config)


@hookimpl
async def validate_checkout(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    inputs: Mapping[str, Any],
    plugins: Any,
    config: Any,
) -> Sequence[CheckoutProblem]:
    from plugins.promotions.service import checkout, groups

    problems = await checkout.validate_checkout(session, cart, customer, plugins, config)
    return [*problems, *await groups.checkout_problems(session, cart.cart_id, customer)]


@hookimpl
async def order_placing(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    cart: CartView,
    customer: Customer | None,
    config: Any,
) -> Sequence[CheckoutProblem]:
    from plugins.promotions.service import limits

    return await limits.order_placing(session, order, lines, cart, customer, config)


@hookimpl
async def order_cancelling(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], reason: str, config: Any
) -> None:
    from plugins.promotions.service import limits

    await limits.order_cancelling(session, order, lines, reason, config)


@hookimpl
async def refund_for_lines(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], returned: Mapping[int, int]
) -> int | None:
    from plugins.promotions.service import refunds

    return await refunds.refund_for_lines(session, order, lines, returned)


@hookimpl
async def order_fulfilment_hold(session: AsyncSession, order: Order) -> str | None:
    from plugins.promotions.service import groups

    return await groups.fulfilment_hold(session, order)


# --- events --------------------------------------------------------------------------------


@hookimpl
async def payment_captured(event: Event, session: AsyncSession, plugins: Any, config: Any) -> None:
    from plugins.promotions.service import referrals

    await referrals.payment_captured(session, event, plugins, config)


# --- compensation asked by other plugins (implemented only when they are present) ----------


@hookimpl(optionalhook=True)
async def pricing_protection_coupon(session: AsyncSession, claim: Any, config: Any) -> str | None:
    from plugins.promotions.service import coupons

    return await coupons.protection_coupon(session, claim, config)


@hookimpl(optionalhook=True)
async def complaint_resolved(
    session: AsyncSession,
    complaint_id: int,
    customer_id: int | None,
    compensation: int,
    currency: str,
    resolution: str,
    config: Any,
) -> str | None:
    from plugins.promotions.service import coupons

    return await coupons.compensation_coupon(
        session,
        config,
        ref=f"complaint:{complaint_id}",
        customer_id=customer_id,
        amount=compensation,
        currency=currency,
        reason=f"complaint {complaint_id}: {resolution}",
    )


@hookimpl(optionalhook=True)
async def shipment_delay_compensation(
    session: AsyncSession,
    shipment_id: int,
    order_id: int,
    customer_id: int | None,
    amount: int,
    currency: str,
    config: Any,
) -> str | None:
    from plugins.promotions.service import coupons

    return await coupons.compensation_coupon(
        session,
        config,
        ref=f"shipment-delay:{shipment_id}",
        customer_id=customer_id,
        amount=amount,
        currency=currency,
        reason=f"late delivery of order {order_id}",
    )


# --- GraphQL -------------------------------------------------------------------------------


@hookimpl
def graphql_types() -> Sequence[type]:
    from plugins.promotions import schema

    return schema.TYPES


@hookimpl
def graphql_queries() -> Sequence[type]:
    from plugins.promotions import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from plugins.promotions import schema

    return schema.MUTATIONS


@hookimpl
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    from plugins.promotions import schema

    return schema.EXTENSIONS
