"""The hybrid: candidates from every component, each component's scores normalised to 0..1,
blended with the settings' weights; then the diversity re-rank. Serving and the offline
evaluation both call :func:`rank`, so what is evaluated is what is served."""

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


# Experiment knobs (temporary).
KNOBS: dict[str, float] = {
    "norm_sum": 0.0,  # 1: components as distributions (sum 1), repeat × ρ, explore × (1 − ρ)
    "rho_prior": 0.5,
    "rho_strength": 2.0,
    "floor": 0.0,  # added to each repeat product's recency-weighted frequency
    "viewed": 0.0,  # touched products themselves as SIMILAR candidates, with this self-score
    "own_habit": 0.0,  # 1: bought in two orders or more by the customer: repeatable whatever the cycle
    "overdue_slow": 0.0,
    "cf_only": 0.0,
    "touch_half_life": 1.0,
    "touch_scale": 1.0,
}


def repeat_share(purchases: Sequence[Purchase], prior: float, strength: float) -> float:
    """ρ: the share of the products of the customer's orders after their first that they had
    bought before, smoothed towards ``prior`` with ``strength`` pseudo-products."""
    seen: set[int] = set()
    repeats = total = 0
    by_order: dict[int, set[int]] = {}
    order_ids: list[int] = []
    for p in purchases:
        if p.order_id not in by_order:
            by_order[p.order_id] = set()
            order_ids.append(p.order_id)
        by_order[p.order_id].add(p.product_id)
    for i, oid in enumerate(order_ids):
        items = by_order[oid]
        if i > 0:
            total += len(items)
            repeats += len(items & seen)
        seen |= items
    return (repeats + strength * prior) / (total + strength)


async def rank(
    store: ModelStore,
    visitor: Visitor,
    ask: Ask,
    blend: BlendWeights,
    settings: RecommendationSettings,
) -> list[Scored]:
    """The best ``ask.pool`` candidates for ``visitor``, best first, before business rules.

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
        anchor(
            touch.product_id,
            KNOBS["touch_scale"]
            * TOUCH_WEIGHTS.get(touch.kind, 1.0)
            * _decay(age, KNOBS["touch_half_life"]),
            "TOUCH",
        )
    last_order = purchases[-1].order_id if purchases else None
    for p in purchases[-30:]:
        age = (now - p.at).total_seconds()
        weight = _decay(age, settings.half_life_days) * (1.5 if p.order_id == last_order else 1.0)
        anchor(p.product_id, weight, "BOUGHT")

    # repeat: recency-weighted personal frequency, sharpened by the product's cycle.
    if purchases:
        freq: dict[int, float] = defaultdict(float)
        last_at: dict[int, datetime] = {}
        orders_of: dict[int, set[int]] = defaultdict(set)
        for p in purchases:
            freq[p.product_id] += _decay((now - p.at).total_seconds(), settings.half_life_days)
            last_at[p.product_id] = max(last_at.get(p.product_id, p.at), p.at)
            orders_of[p.product_id].add(p.order_id)
        cycles = await store.cycles(list(freq))
        for pid, f in freq.items():
            cycle = cycles.get(pid)
            interval = cycle.interval_days if cycle else None
            habit = KNOBS["own_habit"] and len(orders_of[pid]) >= 2
            if cycle is not None and not cycle.consumable and not habit:
                continue  # a durable good is not bought again
            due = 1.0
            if interval:
                since = (now - last_at[pid]).total_seconds() / DAY
                ratio = since / interval
                if KNOBS["overdue_slow"] and ratio > 1:
                    due = 0.25 + 0.75 * math.exp(-(ratio - 1.0) / KNOBS["overdue_slow"])
                else:
                    # Highest when the cycle comes round, lower just after a purchase.
                    due = 0.25 + 0.75 * math.exp(-((ratio - 1.0) ** 2) / 0.5)
            cand.add(
                Component.REPEAT,
                pid,
                (f + KNOBS["floor"]) * due,
                Reason(Component.REPEAT, interval_days=interval),
            )

    if KNOBS["viewed"]:
        for touch in touches:
            w = anchors.get(touch.product_id, (0.0, ""))[0]
            cand.add(
                Component.SIMILAR,
                touch.product_id,
                w * KNOBS["viewed"],
                Reason(Component.SIMILAR, product_id=touch.product_id),
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
        sources = (
            (NeighbourSource.CF,)
            if KNOBS["cf_only"]
            else (NeighbourSource.CF, NeighbourSource.CONTENT)
        )
        near = await store.neighbours(ids, sources, k)
        for pid, pid_near in near.items():
            w = anchors[pid][0]
            for n in pid_near:
                cand.add(
                    Component.SIMILAR,
                    n.product_id,
                    w * n.score,
                    Reason(Component.SIMILAR, product_id=pid),
                )

    # The categories the visitor likes (or the page's), for popular and new.
    facts = await store.products(list(anchors))
    liked: dict[int, float] = defaultdict(
        float
    )  # category -> how much the visitor's anchors weigh there
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
    excluded = set(ask.cart_product_ids)
    if ask.product_id is not None:
        excluded.add(ask.product_id)
    rho = repeat_share(purchases, KNOBS["rho_prior"], KNOBS["rho_strength"]) if purchases else 0.0
    blended: dict[int, Scored] = {}
    for component, scored in cand.raw.items():
        if KNOBS["norm_sum"]:
            top = sum(s for s, _ in scored.values())
            top /= rho if component is Component.REPEAT else (1.0 - rho) if purchases else 1.0
        else:
            top = max((s for s, _ in scored.values()), default=0.0)
        if top <= 0 or weights[component] <= 0:
            continue
        for pid, (score, reason) in scored.items():
            if pid in excluded:
                continue
            part = weights[component] * score / top
            entry = blended.setdefault(pid, Scored(pid, 0.0, reason))
            entry.contributions[component] = part
            entry.score += part
            if part >= max(entry.contributions.values()):
                entry.reason = reason
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
