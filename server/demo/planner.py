"""The demo planner: a whole shop drawn from a seed, in memory, without touching a database.

Everything is drawn from one ``random.Random(seed)`` and dated relative to one ``as_of``
moment, never "now": the same seed and the same ``as_of`` give the same plan. The history is
18 months long. The parts are drawn in a fixed order — catalogue, customers with their buying
rhythms, orders with their behaviour — and then what follows from the whole is derived (a
customer's membership tier follows from the orders they will place; stock covers what open
orders hold). The channels of visits and orders, and the
marketing costs, are drawn next from a random stream of their own; the satisfaction surveys
come last, sent after the deliveries and purchases of the whole history.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from server.demo.catalogue import LEAVES
from server.demo.plan import HISTORY_DAYS, Draft, ShopPlan
from server.demo.plan_catalogue import category_rows, plan_products, plan_stock
from server.demo.plan_channels import plan_channels
from server.demo.plan_customers import demo_password_hash, plan_customers
from server.demo.plan_orders import plan_orders
from server.demo.plan_surveys import plan_surveys
from server.demo.seasons import Season, promotion_weight, shop_weight
from server.models import MembershipTier, OrderStatus

# The parts :func:`plan_shop` reports as planned (one progress step each).
PLAN_STEPS = 3


def plan_shop(
    *,
    seed: int,
    as_of: datetime,
    customers: int,
    products: int,
    orders: int | None = None,
    on_planned: Callable[[str], None] | None = None,
) -> ShopPlan:
    """Plan a demo shop of this size from ``seed``, its history ending at ``as_of``: exactly
    ``orders`` orders, or (None) as many as the customers' rhythms give.

    ``on_planned`` hears of each part planned (:data:`PLAN_STEPS` calls). Raises ``ValueError``
    for sizes no shop can have.
    """
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    if products < 1 or customers < 0 or (orders is not None and orders < 0):
        raise ValueError("need at least one product, and no negative counts")
    if orders and not customers:
        raise ValueError("orders need customers")

    def planned(what: str) -> None:
        if on_planned is not None:
            on_planned(what)

    start = as_of - timedelta(days=HISTORY_DAYS)
    plan = ShopPlan(seed=seed, as_of=as_of, history_start=start)
    draft = Draft(
        plan=plan,
        rng=random.Random(seed),
        by_leaf={slug: [] for slug in LEAVES},
        shop_season=Season(start, HISTORY_DAYS, shop_weight),
        promotion_season=Season(start, HISTORY_DAYS, promotion_weight),
    )
    plan.categories = category_rows()
    plan_products(draft, products)
    plan_stock(draft)
    planned("planned the catalogue")
    plan.password_hash = demo_password_hash(seed)
    plan_customers(draft, customers)
    planned("planned the customers")
    plan_orders(draft, orders)
    _derive(plan)
    for i, cart in enumerate(plan.carts):
        cart.token = f"demo-{seed:x}-{i:05d}-{draft.rng.getrandbits(64):016x}"
    plan_channels(plan)
    # Last: the surveys follow the whole history (and draw nothing the rest depends on).
    plan_surveys(draft)
    planned("planned the orders, behaviour, channels and surveys")
    return plan


def _derive(plan: ShopPlan) -> None:
    """Derive what follows from the plan: membership tiers, value tags, stock on hand."""
    spend: Counter[int] = Counter()
    orders_of: Counter[int] = Counter()
    for order in plan.orders:
        if order.row["status"] is not OrderStatus.CANCELLED:
            spend[id(order.customer)] += order.row["total_amount"]
            orders_of[id(order.customer)] += 1
    for customer in plan.customers:
        total = spend[id(customer)]
        if total >= 2_000_000:
            tier = MembershipTier.PLATINUM
        elif total >= 800_000:
            tier = MembershipTier.GOLD
        elif total >= 200_000:
            tier = MembershipTier.SILVER
        else:
            tier = MembershipTier.STANDARD
        customer.row["membership_tier"] = tier
        if orders_of[id(customer)] >= 4:
            customer.row["tags"].append("复购用户")
        if total >= 2_000_000:
            customer.row["tags"].append("高价值")
        if customer.prefs.price_sensitivity > 0.7:
            customer.row["tags"].append("价格敏感")
    # Open orders hold stock: there is always at least that much on hand.
    for key, quantity in plan.reserved().items():
        level = plan.stock[key]
        level[0] = max(level[0], quantity)
