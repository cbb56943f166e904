"""The hybrid: candidates from every component, each component's scores made a distribution
(0..1, summing to 1) and weighed by how much the customer repeats (repeat) or explores (the
others), blended with the settings' weights; then the diversity re-rank. Serving and the
offline evaluation both call :func:`rank`, so what is evaluated is what is served."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plugins.recommendation.models import Component, NeighbourSource, RecommendationContext
from plugins.recommendation.service.settings import BlendWeights, RecommendationSettings
from plugins.recommendation.service.store import ModelStore

DAY = 86400.0
# How much one recent behaviour says about what a visitor wants now, by kind.
TOUCH_WEIGHTS = {"VIEW": 1.0, "SEARCH": 1.0, "FAVORITE": 2.0, "ADD_TO_CART": 3.0}


@dataclass(frozen=True)
class Purchase:
    order_id: int
    product_id: int
    at: datetime


@dataclass(frozen=True)
class Touch:
    """One recent behaviour of the visitor (the session profile): a product they viewed,
    favourited or put in the cart, or one a search of theirs found."""

    product_id: int
    kind: str
    at: datetime


@dataclass
class Visitor:
    """Who is asking: their purchases (oldest first) and their session profile (newest
    first). ``personalised`` is False for a customer who turned personalisation off."""

    customer_id: int | None = None
    session_id: str | None = None
    purchases: list[Purchase] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    personalised: bool = True


@dataclass(frozen=True)
class Ask:
    context: RecommendationContext
    now: datetime
    product_id: int | None = None
    category_id: int | None = None
    cart_product_ids: tuple[int, ...] = ()
    pool: int = 50  # how many candidates to return (the business rules remove some)


@dataclass(frozen=True)
class Reason:
    """Why a product is recommended: its component and what it came from."""

    component: Component
    product_id: int | None = None  # "often bought with X", "similar to Y you viewed"
    category_id: int | None = None  # "popular in Z", "new in a category you like"
    interval_days: float | None = None  # "you buy this about every N days"


@dataclass
class Scored:
    product_id: int
    score: float
    reason: Reason
    contributions: dict[Component, float] = field(default_factory=dict)


@dataclass
class _Candidates:
    """Per component, per product: the raw score and the best reason."""

    raw: dict[Component, dict[int, tuple[float, Reason]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def add(self, component: Component, product_id: int, score: float, reason: Reason) -> None:
        if score <= 0:
            return
        seen = self.raw[component].get(product_id)
        if seen is None:
            self.raw[component][product_id] = (score, reason)
        else:  # evidence adds up; the reason is the strongest piece of it
            best = reason if score > seen[0] else seen[1]
            self.raw[component][product_id] = (seen[0] + score, best)


def weights_of(blend: BlendWeights) -> dict[Component, float]:
    return {
        Component.REPEAT: blend.repeat,
        Component.BOUGHT_WITH: blend.bought_with,
        Component.SIMILAR: blend.similar,
        Component.POPULAR: blend.popular,
        Component.NEW: blend.new,
    }


def _decay(age_seconds: float, half_life_days: float) -> float:
    return math.exp(-math.log(2) * max(age_seconds, 0.0) / (half_life_days * DAY))


# The repeat component's long memory: each purchase counts LONG_MEMORY + (1 − LONG_MEMORY) ·
# 2^(−age / half-life), so what a customer bought often long ago is not forgotten (on real
# grocery logs plain frequency beats a month's half-life) while recent purchases count more.
LONG_MEMORY = 0.3
# A consumable bought longer ago than its cycle is still due, less so each cycle that passes
# without it (a customer who switched away): the "due" factor falls by e every this many
# cycles past the first.
OVERDUE_CYCLES = 3.0
# The customer's repeat share ρ is smoothed towards REPEAT_PRIOR as if REPEAT_PRIOR_ITEMS
# products of their orders had been counted already (a new customer gets the prior).
REPEAT_PRIOR = 0.5
REPEAT_PRIOR_ITEMS = 2.0
# How fast a touch fades (days): the session profile is the visitor's intent now.
TOUCH_HALF_LIFE_DAYS = 1.0
EXPLORE = (Component.BOUGHT_WITH, Component.SIMILAR, Component.POPULAR, Component.NEW)


def repeat_share(purchases: Sequence[Purchase]) -> float:
    """ρ, how much of what the customer buys they bought before: of the distinct products of
    each of their orders after the first, the share bought in an earlier order, smoothed:
    ρ = (repeats + REPEAT_PRIOR_ITEMS · REPEAT_PRIOR) / (products + REPEAT_PRIOR_ITEMS)."""
    by_order: dict[int, set[int]] = {}
    for p in purchases:
        by_order.setdefault(p.order_id, set()).add(p.product_id)
    seen: set[int] = set()
    repeats = total = 0
    for i, items in enumerate(by_order.values()):
        if i > 0:
            total += len(items)
            repeats += len(items & seen)
        seen |= items
    return (repeats + REPEAT_PRIOR_ITEMS * REPEAT_PRIOR) / (total + REPEAT_PRIOR_ITEMS)


def due(since_days: float, interval_days: float | None) -> float:
    """How due a consumable bought ``since_days`` ago is, by its cycle: 1 when the cycle
    comes round, 0.25 + 0.75·exp(−(r − 1)² / 0.5) before it (r = since / interval: low just
    after a purchase), 0.25 + 0.75·exp(−(r − 1) / OVERDUE_CYCLES) after it. 1 without a
    cycle."""
    if not interval_days:
        return 1.0
    r = since_days / interval_days
    if r <= 1.0:
        return 0.25 + 0.75 * math.exp(-((r - 1.0) ** 2) / 0.5)
    return 0.25 + 0.75 * math.exp(-(r - 1.0) / OVERDUE_CYCLES)


async def rank(
    store: ModelStore,
    visitor: Visitor,
    ask: Ask,
    blend: BlendWeights,
    settings: RecommendationSettings,
) -> list[Scored]:
    """The best ``ask.pool`` candidates for ``visitor``, best first, before business rules.

    Each component's raw scores become a distribution over its candidates (they sum to 1):
    the repeat component's is weighed by the customer's repeat share ρ
    (:func:`repeat_share`), each explore component's by 1 − ρ (by 1 for a visitor without
    purchases); a candidate's score is the sum over components of the blend's weight times
    that. So a customer who keeps buying the same things gets their staples first, one who
    keeps trying new ones gets discoveries, and a long list of staples shares its weight.

    Never includes the product of a PRODUCT page nor what is in the cart."""
    now = ask.now
    cand = _Candidates()
    personal = visitor.personalised
    purchases = visitor.purchases if personal else []
    touches = visitor.touches if personal else []
    k = settings.neighbours

    # The anchors the explore components start from, with how much each counts.
    anchors: dict[int, tuple[float, str]] = {}

    def anchor(pid: int, weight: float, why: str) -> None:
        if weight > anchors.get(pid, (0.0, ""))[0]:
            anchors[pid] = (weight, why)

    if ask.product_id is not None:
        anchor(ask.product_id, 4.0, "PAGE")
    for pid in ask.cart_product_ids:
        anchor(pid, 3.0, "CART")
    for touch in touches:
        age = (now - touch.at).total_seconds()
        weight = TOUCH_WEIGHTS.get(touch.kind, 1.0) * _decay(age, TOUCH_HALF_LIFE_DAYS)
        anchor(touch.product_id, weight, "TOUCH")
    last_order = purchases[-1].order_id if purchases else None
    for p in purchases[-30:]:
        age = (now - p.at).total_seconds()
        weight = _decay(age, settings.half_life_days) * (1.5 if p.order_id == last_order else 1.0)
        anchor(p.product_id, weight, "BOUGHT")

    # repeat: long-memory, recency-weighted personal frequency, times how due the product's
    # cycle says it is. A durable good is not bought again, unless the customer has already
    # bought it in two orders or more (it is a habit of theirs, whatever others do).
    if purchases:
        freq: dict[int, float] = defaultdict(float)
        last_at: dict[int, datetime] = {}
        orders_of: dict[int, set[int]] = defaultdict(set)
        for p in purchases:
            recency = _decay((now - p.at).total_seconds(), settings.half_life_days)
            freq[p.product_id] += LONG_MEMORY + (1.0 - LONG_MEMORY) * recency
            last_at[p.product_id] = max(last_at.get(p.product_id, p.at), p.at)
            orders_of[p.product_id].add(p.order_id)
        cycles = await store.cycles(list(freq))
        for pid, f in freq.items():
            cycle = cycles.get(pid)
            interval = cycle.interval_days if cycle else None
            habit = len(orders_of[pid]) >= 2
            if cycle is not None and not cycle.consumable and not habit:
                continue
            since = (now - last_at[pid]).total_seconds() / DAY
            cand.add(
                Component.REPEAT,
                pid,
                f * due(since, interval),
                Reason(Component.REPEAT, interval_days=interval),
            )

    if anchors:
        ids = list(anchors)
        rules = await store.rules(ids, k)
        for pid, pid_rules in rules.items():
            w = anchors[pid][0]
            for r in pid_rules:
                cand.add(
                    Component.BOUGHT_WITH,
                    r.consequent_id,
                    w * r.confidence,
                    Reason(Component.BOUGHT_WITH, product_id=pid),
                )
        near = await store.neighbours(ids, (NeighbourSource.CF, NeighbourSource.CONTENT), k)
        for pid, pid_near in near.items():
            w = anchors[pid][0]
            for n in pid_near:
                cand.add(
                    Component.SIMILAR,
                    n.product_id,
                    w * n.score,
                    Reason(Component.SIMILAR, product_id=pid),
                )

    # The categories the visitor likes (or the page's), for popular and new: how much the
    # visitor's anchors weigh in each.
    facts = await store.products(list(anchors))
    liked: dict[int, float] = defaultdict(float)
    for pid, (w, _) in anchors.items():
        fact = facts.get(pid)
        if fact is not None and fact.category_id is not None:
            liked[fact.category_id] += w
    if ask.category_id is not None:
        liked[ask.category_id] += 10.0
    top_categories = sorted(liked, key=lambda c: (-liked[c], c))[:3]
    popular = await store.popular([*top_categories, None], k)
    for cat in [*top_categories, None]:
        share = 1.0 if cat is None else 1.0 + liked[cat] / (sum(liked.values()) or 1.0)
        for rank_, item in enumerate(popular.get(cat, [])):
            cand.add(
                Component.POPULAR,
                item.product_id,
                share * item.score / (1 + 0.02 * rank_),
                Reason(Component.POPULAR, category_id=cat),
            )
    if top_categories:
        newest = await store.newest(top_categories, now - timedelta(days=settings.new_days), k)
        for cat, pids in newest.items():
            for i, pid in enumerate(pids):
                cand.add(Component.NEW, pid, 1.0 / (1 + i), Reason(Component.NEW, category_id=cat))

    weights = weights_of(blend)
    rho = repeat_share(purchases) if purchases else 0.0
    mass = {c: (1.0 - rho) for c in EXPLORE} | {Component.REPEAT: rho}
    excluded = set(ask.cart_product_ids)
    if ask.product_id is not None:
        excluded.add(ask.product_id)
    blended: dict[int, Scored] = {}
    for component, scored in cand.raw.items():
        total = sum(s for s, _ in scored.values())
        if total <= 0 or weights[component] <= 0:
            continue
        scale = weights[component] * mass[component] / total
        for pid, (score, reason) in scored.items():
            if pid in excluded:
                continue
            part = scale * score
            entry = blended.setdefault(pid, Scored(pid, 0.0, reason))
            entry.contributions[component] = part
            entry.score += part
            if part >= max(entry.contributions.values()):
                entry.reason = reason
    if ask.context in (RecommendationContext.CART, RecommendationContext.PRODUCT):
        # Next to a cart or a product, "often bought with it" is the reason to give whenever
        # it is one, however much similarity adds.
        for entry in blended.values():
            bought_with = cand.raw[Component.BOUGHT_WITH].get(entry.product_id)
            if bought_with is not None and Component.BOUGHT_WITH in entry.contributions:
                entry.reason = bought_with[1]
    ranked = sorted(blended.values(), key=lambda s: (-s.score, s.product_id))
    return ranked[: ask.pool]


def diversify(
    items: Sequence[Scored],
    category_of: Mapping[int, int | None],
    first: int,
    max_share: float,
) -> list[Scored]:
    """The best ``first`` of ``items`` with at most ``max_share`` of them from one category;
    when too few others fit, the rest are filled in score order."""
    cap = max(1, math.floor(first * max_share))
    taken: list[Scored] = []
    held: list[Scored] = []
    per: Counter[int | None] = Counter()
    for item in items:
        if len(taken) == first:
            break
        cat = category_of.get(item.product_id)
        if cat is not None and per[cat] >= cap:
            held.append(item)
            continue
        per[cat] += 1
        taken.append(item)
    for item in held:
        if len(taken) == first:
            break
        taken.append(item)
    return taken
