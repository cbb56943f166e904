"""The demo plan's behaviour events: what customers look at, search for, favourite and put in
their carts — on the way to an order, in the days before it, and on visits that buy nothing
(which leave abandoned carts). Driven by each customer's hidden preferences and rhythm: people
browse more before the big sales, and less and less in the weeks before they stop for good."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from server.demo.catalogue import LEAVES
from server.demo.people import NO_RESULT_QUERIES
from server.demo.plan import (
    Draft,
    PlannedCart,
    PlannedCustomer,
    PlannedEvent,
    PlannedOrder,
    PlannedProduct,
    category_slug,
    pick_variant,
)
from server.demo.plan_rhythms import ARCHETYPES, FADE_DAYS, at_hour
from server.models import CustomerEventKind

# Visits that buy nothing, a week, by how much a customer browses (their archetype scales it).
BROWSING_PER_WEEK = {"high": 0.7, "medium": 0.3, "low": 0.12}
SPREAD = 0.5  # how far (in log price) from what they mean to spend a customer still looks


def near(prices: Sequence[float], target: float) -> list[float]:
    """How well each price fits ``target``: 1 for the nearest, less the further away (a
    log-normal kernel), so that there is always a best fit however far off they all are."""
    distances = [math.log(max(price, 1) / max(target, 1)) ** 2 for price in prices]
    nearest = min(distances)
    return [math.exp(-(d - nearest) / (2 * SPREAD**2)) for d in distances]


def pick_product(
    draft: Draft,
    customer: PlannedCustomer,
    at: datetime,
    *,
    leaf: str | None = None,
    target: float | None = None,
) -> PlannedProduct:
    """A product this customer would look at: mostly from their favourite categories and
    brands, at the price level they are comfortable with — or, for an order, near ``target``
    (fen), what they mean to spend on it."""
    rng = draft.rng
    prefs = customer.prefs
    if leaf is None:
        leaves = (
            prefs.categories
            if rng.random() < prefs.strength
            else [s for s in LEAVES if draft.by_leaf[s]]
        )
        if target is None:
            leaf = rng.choice(leaves)
        else:  # where what they mean to spend buys something
            leaf = rng.choices(leaves, weights=near([draft.typical(s) for s in leaves], target))[0]
    candidates = draft.by_leaf[leaf]
    pool = [p for p in candidates if p.row["created_at"] <= at and p.row["is_active"]]
    pool = pool or candidates
    if rng.random() < 0.5:
        pool = [p for p in pool if p.row["brand"] in prefs.brands] or pool
    if target is not None:
        return rng.choices(pool, weights=near([p.row["price_amount"] for p in pool], target))[0]
    prices = sorted(p.row["price_amount"] for p in pool)
    median = prices[len(prices) // 2]
    exponent = 0.6 - 2.0 * prefs.price_sensitivity
    weights = [(p.row["price_amount"] / median) ** exponent for p in pool]
    return rng.choices(pool, weights=weights)[0]


def _fading(customer: PlannedCustomer, at: datetime) -> float:
    """How much of their usual browsing a customer still does at ``at``: all of it, except in
    the weeks before they stop for good, when it fades to nothing."""
    if customer.rhythm.lapsed is None:
        return 1.0
    left = (customer.end - at).total_seconds() / 86400
    return min(1.0, max(0.0, left) / FADE_DAYS)


def _search_query(rng: random.Random, product: PlannedProduct) -> str:
    row, leaf = product.row, product.leaf
    model = row["name"].removeprefix(f"{row['brand']} ").split(" ")[0]
    return rng.choice((leaf.name, f"{row['brand']}{leaf.name}", f"{row['brand']} {model}"))


def plan_order_session(draft: Draft, order: PlannedOrder) -> None:
    """The shopping path that ended in this order: search, views, favourite, cart, buy; and,
    the more so the dearer the order, a visit or a few in the days before to look around."""
    rng = draft.rng
    customer = order.customer
    placed: datetime = order.row["placed_at"]
    value = order.row["subtotal_amount"]
    if rng.random() < 0.15 + 0.6 * min(1.0, value / 300_000):
        bought = order.lines[0][1].product
        for _ in range(rng.randint(1, 3) if value >= 100_000 else 1):
            at = placed - timedelta(days=rng.uniform(0.3, 14))
            if at > customer.start and rng.random() < _fading(customer, at):
                _look_around(draft, customer, at, bought)
    sid = draft.next_session_id()
    t = max(customer.row["created_at"], placed - timedelta(minutes=rng.uniform(5, 90)))
    step = (placed - t) / 12
    events = draft.plan.events
    if rng.random() < 0.6:
        query = _search_query(rng, order.lines[0][1].product)
        events.append(PlannedEvent(customer, CustomerEventKind.SEARCH, t, sid, query=query))
    t += step
    for product in (variant.product for _, variant in order.lines):
        # Compared with an alternative or two from the same category before deciding.
        for _ in range(rng.randint(0, 2)):
            alt = pick_product(draft, customer, placed, leaf=category_slug(product))
            events.append(PlannedEvent(customer, CustomerEventKind.VIEW, t, sid, product=alt))
            t += step / 2
        events.append(PlannedEvent(customer, CustomerEventKind.VIEW, t, sid, product=product))
        t += step / 2
        if rng.random() < 0.15:
            events.append(
                PlannedEvent(customer, CustomerEventKind.FAVORITE, t, sid, product=product)
            )
        events.append(
            PlannedEvent(customer, CustomerEventKind.ADD_TO_CART, t, sid, product=product)
        )
        t += step / 2
    for line, variant in order.lines:
        events.append(
            PlannedEvent(
                customer,
                CustomerEventKind.PURCHASE,
                placed,
                sid,
                product=variant.product,
                order=order,
                quantity=line["quantity"],
            )
        )


def _look_around(
    draft: Draft, customer: PlannedCustomer, at: datetime, product: PlannedProduct
) -> None:
    """A visit before buying ``product``: its category's products compared, it among them."""
    rng = draft.rng
    sid = draft.next_session_id()
    events = draft.plan.events
    others = [
        pick_product(draft, customer, at, leaf=category_slug(product))
        for _ in range(rng.randint(1, 3))
    ]
    for viewed in rng.sample([product, *others], k=len(others) + 1):
        events.append(PlannedEvent(customer, CustomerEventKind.VIEW, at, sid, product=viewed))
        at += timedelta(seconds=rng.randint(20, 240))
    if rng.random() < 0.25:
        events.append(PlannedEvent(customer, CustomerEventKind.FAVORITE, at, sid, product=product))


def _visits(draft: Draft, customer: PlannedCustomer) -> list[datetime]:
    """When a customer comes to look without buying: a Poisson process in shopping days (more
    visits before the big sales, fewer over the Spring Festival), fading before they stop."""
    rng, season = draft.rng, draft.shop_season
    per_day = (
        BROWSING_PER_WEEK[customer.prefs.activity]
        * ARCHETYPES[customer.prefs.archetype].browsing
        / 7
    )
    visits: list[datetime] = []
    position, end = season.position(customer.start), season.position(customer.end)
    while True:
        position += rng.expovariate(per_day)
        if position >= end:
            break
        day = season.moment(position).replace(hour=0, minute=0, second=0, microsecond=0)
        at = min(max(at_hour(draft, day), customer.start), customer.end)
        if rng.random() < _fading(customer, at):
            visits.append(at)
    return visits or [customer.start]


def plan_browsing(draft: Draft, customer: PlannedCustomer) -> None:
    """Visits that bought nothing: browsing, searching, favourites, abandoned carts."""
    rng = draft.rng
    events = draft.plan.events
    last_cart: tuple[datetime, list[PlannedProduct]] | None = None
    for at in sorted(_visits(draft, customer)):
        sid = draft.next_session_id()
        t = at
        if rng.random() < 0.05:
            query = rng.choice(NO_RESULT_QUERIES)  # a search that finds nothing
            events.append(
                PlannedEvent(
                    customer, CustomerEventKind.SEARCH, t, sid, query=query, result_count=0
                )
            )
            continue
        product = pick_product(draft, customer, at)
        if rng.random() < 0.4:
            query = _search_query(rng, product)
            events.append(PlannedEvent(customer, CustomerEventKind.SEARCH, t, sid, query=query))
            t += timedelta(seconds=rng.randint(5, 60))
        carted: list[PlannedProduct] = []
        for i in range(rng.randint(1, 5)):
            viewed = (
                product
                if i == 0
                else pick_product(draft, customer, at, leaf=category_slug(product))
            )
            events.append(PlannedEvent(customer, CustomerEventKind.VIEW, t, sid, product=viewed))
            t += timedelta(seconds=rng.randint(20, 300))
            if rng.random() < 0.08:
                events.append(
                    PlannedEvent(customer, CustomerEventKind.FAVORITE, t, sid, product=viewed)
                )
            if rng.random() < 0.12 and viewed not in carted:
                events.append(
                    PlannedEvent(customer, CustomerEventKind.ADD_TO_CART, t, sid, product=viewed)
                )
                carted.append(viewed)
        if carted:
            last_cart = (t, carted)
    if last_cart is not None and rng.random() < 0.6:
        # The size, colour or capacity put in the cart, among those on sale.
        chosen = [pick_variant(rng, product) for product in last_cart[1]]
        draft.plan.carts.append(PlannedCart(customer, last_cart[0], chosen))
