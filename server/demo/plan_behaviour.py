"""The demo plan's behaviour events: what customers look at, search for, favourite and put in
their carts — on the way to an order, and on visits that buy nothing (which leave abandoned
carts). Driven by each customer's hidden preferences."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from server.demo.catalogue import LEAVES
from server.demo.people import EVENING_HOURS, NO_RESULT_QUERIES
from server.demo.plan import (
    HISTORY_DAYS,
    Draft,
    PlannedCart,
    PlannedCustomer,
    PlannedEvent,
    PlannedOrder,
    PlannedProduct,
    category_slug,
)
from server.models import CustomerEventKind


def pick_product(
    draft: Draft, customer: PlannedCustomer, at: datetime, *, leaf: str | None = None
) -> PlannedProduct:
    """A product this customer would look at: mostly from their favourite categories and
    brands, at the price level they are comfortable with."""
    rng = draft.rng
    prefs = customer.prefs
    if leaf is None:
        leaf = (
            rng.choice(prefs.categories)
            if rng.random() < prefs.strength
            else rng.choice([s for s in LEAVES if draft.by_leaf[s]])
        )
    candidates = draft.by_leaf[leaf]
    pool = [p for p in candidates if p.row["created_at"] <= at and p.row["is_active"]]
    pool = pool or candidates
    if rng.random() < 0.5:
        pool = [p for p in pool if p.row["brand"] in prefs.brands] or pool
    prices = sorted(p.row["price_amount"] for p in pool)
    median = prices[len(prices) // 2]
    exponent = 0.6 - 2.0 * prefs.price_sensitivity
    weights = [(p.row["price_amount"] / median) ** exponent for p in pool]
    return rng.choices(pool, weights=weights)[0]


def moment(draft: Draft, customer: PlannedCustomer, *, recent: bool = False) -> datetime:
    """A time this customer shops at: evenings more than mornings."""
    rng, as_of = draft.rng, draft.plan.as_of
    start, end = customer.start, customer.end
    if recent and end >= as_of - timedelta(days=3):
        start = max(start, as_of - timedelta(days=3))
    day = start + (end - start) * rng.random()
    hour = rng.choices(range(24), weights=EVENING_HOURS)[0]
    at = day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
    return min(max(at, customer.start), customer.end)


def _search_query(rng: random.Random, product: PlannedProduct) -> str:
    row, leaf = product.row, product.leaf
    model = row["name"].removeprefix(f"{row['brand']} ").split(" ")[0]
    return rng.choice((leaf.name, f"{row['brand']}{leaf.name}", f"{row['brand']} {model}"))


def plan_order_session(draft: Draft, order: PlannedOrder) -> None:
    """The shopping path that ended in this order: search, views, favourite, cart, buy."""
    rng = draft.rng
    customer = order.customer
    placed: datetime = order.row["placed_at"]
    sid = draft.next_session_id()
    t = max(customer.row["created_at"], placed - timedelta(minutes=rng.uniform(5, 90)))
    step = (placed - t) / 12
    events = draft.plan.events
    if rng.random() < 0.6:
        query = _search_query(rng, order.lines[0][1])
        events.append(PlannedEvent(customer, CustomerEventKind.SEARCH, t, sid, query=query))
    t += step
    for _, product in order.lines:
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
    for line, product in order.lines:
        events.append(
            PlannedEvent(
                customer,
                CustomerEventKind.PURCHASE,
                placed,
                sid,
                product=product,
                order=order,
                quantity=line["quantity"],
            )
        )


def plan_browsing(draft: Draft, customer: PlannedCustomer) -> None:
    """Visits that bought nothing: browsing, searching, favourites, abandoned carts."""
    rng = draft.rng
    events = draft.plan.events
    base = {"high": 24, "medium": 10, "low": 4}[customer.prefs.activity]
    span_days = max(1.0, (customer.end - customer.start).total_seconds() / 86400)
    sessions = max(1, round(base * min(1.0, span_days / HISTORY_DAYS) * rng.uniform(0.7, 1.3)))
    last_cart: tuple[datetime, list[PlannedProduct]] | None = None
    for at in sorted(moment(draft, customer) for _ in range(sessions)):
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
        draft.plan.carts.append(PlannedCart(customer, last_cart[0], last_cart[1]))
