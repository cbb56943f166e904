"""The offline evaluation: the hybrid against baselines on held-out orders.

Two splits of one :class:`TrainingData` (the shop's, or an imported order log's):

- **last order** (:func:`split_last_order`): each customer with two or more orders has their
  last order held out. Training keeps, of that customer, only the purchases strictly before
  the held-out order and the behaviour events before the 24 hours that preceded it (and
  before the visit running into those hours: a run of events with no gap longer than the
  settings' ``session_minutes``). That window holds the basket's own views and cart
  additions, which may come hours before the order is placed. Everything after the order is
  dropped too. Other customers (one order, or none) keep everything. So no held-out basket
  and nothing of the visits that put it together reaches training; what other customers did
  later does (the usual leave-last-out setting), which the time split rules out.
- **time** (:func:`split_time`): one cut; training is every purchase and event before it, the
  test is each customer's first order at or after it (customers who bought before the cut).

Each test customer (:class:`Case`) is asked for ten products at the moment of their held-out
order, knowing their training purchases and their last visit before the held-out window (the
session profile).
Every model is scored on the same cases with the same metrics (:func:`score`): recall, NDCG
and hit rate at 10, catalogue coverage, each also for the basket's repeat items (bought by the
customer before) and new items alone.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from plugins.recommendation.models import NeighbourSource, RecommendationContext
from plugins.recommendation.service.data import Behaviour, IntArray, Purchases, TrainingData
from plugins.recommendation.service.hybrid import (
    Ask,
    Purchase,
    Scored,
    Touch,
    Visitor,
    diversify,
    rank,
)
from plugins.recommendation.service.settings import BlendWeights, RecommendationSettings
from plugins.recommendation.service.store import Models, ModelStore

K = 10
DAY = 86400.0
# Behaviour held out with an order: a basket is put together in the cart before it is paid
# for, sometimes hours before (and a visit may end long before the order is placed), so every
# event of the customer's in the day before the order goes with it.
HELD_OUT_HOURS = 24
# The models of a report, in the order it shows them.
HYBRID = "hybrid"
POPULAR = "popular"
TOP_FREQUENCY = "top_frequency"
TOP_FREQUENCY_POPULAR = "top_frequency+popular"
RECENCY_FREQUENCY = "recency_frequency"
ITEM_KNN = "item_knn"
MODELS = (HYBRID, POPULAR, TOP_FREQUENCY, TOP_FREQUENCY_POPULAR, RECENCY_FREQUENCY, ITEM_KNN)
# The metrics of each model, in the order a report shows them.
METRICS = tuple(
    f"{metric}{part}"
    for metric in (f"recall@{K}", f"ndcg@{K}", f"hit@{K}", "coverage")
    for part in ("", "_repeat", "_new")
)


@dataclass(frozen=True)
class Case:
    """One test customer: what they bought in the held-out order (``basket``, distinct
    products), when, and what is known of them then."""

    customer: int
    order: int
    at: float  # epoch seconds
    basket: frozenset[int]
    # Their training purchases (order, product, epoch seconds), oldest first.
    history: tuple[tuple[int, int, float], ...]
    # Their last visit before the held-out one: (product, weight, epoch seconds), newest first.
    touches: tuple[tuple[int, float, float], ...] = ()

    @property
    def bought(self) -> frozenset[int]:
        return frozenset(product for _, product, _ in self.history)


@dataclass
class Split:
    name: str  # "last" or "time"
    train: TrainingData
    cases: list[Case]


# --- the splits ----------------------------------------------------------------------------


def _take_purchases(purchases: Purchases, keep: np.ndarray) -> Purchases:
    return Purchases(
        customer=purchases.customer[keep],
        order=purchases.order[keep],
        product=purchases.product[keep],
        at=purchases.at[keep],
    )


def _take_behaviour(behaviour: Behaviour, keep: np.ndarray) -> Behaviour:
    return Behaviour(
        visitor=behaviour.visitor[keep],
        product=behaviour.product[keep],
        weight=behaviour.weight[keep],
        at=behaviour.at[keep],
    )


def _orders(purchases: Purchases) -> tuple[IntArray, IntArray, np.ndarray]:
    """Every order once: (order ids, customers, times), sorted by customer, time, order."""
    orders, first = np.unique(purchases.order, return_index=True)
    customers = purchases.customer[first]
    at = purchases.at[first]
    by = np.lexsort((orders, at, customers))
    return orders[by], customers[by], at[by]


class _Visits:
    """Each visitor's behaviour events in time order, to find visits (runs of events with no
    gap longer than ``gap`` seconds)."""

    def __init__(self, behaviour: Behaviour, gap: float) -> None:
        self.gap = gap
        self.by = np.lexsort((behaviour.at, behaviour.visitor))
        self.visitor = behaviour.visitor[self.by]
        self.at = behaviour.at[self.by]
        self.product = behaviour.product[self.by]
        self.weight = behaviour.weight[self.by]

    def span(self, visitor: int) -> tuple[int, int]:
        lo = int(np.searchsorted(self.visitor, visitor, side="left"))
        hi = int(np.searchsorted(self.visitor, visitor, side="right"))
        return lo, hi

    def visit_start(self, visitor: int, at: float) -> int:
        """The (sorted) index of the first event held out with an order placed at ``at``:
        every event of the :data:`HELD_OUT_HOURS` before it, and the visit running into
        that window (events before it with no gap longer than the gap). With none, the
        index of the first event after the window's start."""
        lo, hi = self.span(visitor)
        start = at - HELD_OUT_HOURS * 3600.0
        j = lo + int(np.searchsorted(self.at[lo:hi], start, side="left"))
        current = float(self.at[j]) if j < hi and self.at[j] <= at else start
        while j > lo and current - self.at[j - 1] <= self.gap:
            j -= 1
            current = float(self.at[j])
        return j

    def last_visit(self, visitor: int, end: int) -> tuple[tuple[int, float, float], ...]:
        """The visit whose last event is the one just before sorted index ``end``, newest
        first."""
        lo, _ = self.span(visitor)
        if end <= lo:
            return ()
        k = end - 1
        while k > lo and self.at[k] - self.at[k - 1] <= self.gap:
            k -= 1
        return tuple(
            (int(self.product[i]), float(self.weight[i]), float(self.at[i]))
            for i in range(end - 1, k - 1, -1)
        )


def _histories(purchases: Purchases) -> dict[int, list[tuple[int, int, float]]]:
    by = np.lexsort((purchases.order, purchases.at, purchases.customer))
    out: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for c, o, p, t in zip(
        purchases.customer[by].tolist(),
        purchases.order[by].tolist(),
        purchases.product[by].tolist(),
        purchases.at[by].tolist(),
        strict=True,
    ):
        out[c].append((o, p, t))
    return out


def _baskets(purchases: Purchases, orders: Iterable[int]) -> dict[int, frozenset[int]]:
    wanted = np.fromiter(orders, dtype=np.int64)
    rows = np.isin(purchases.order, wanted)
    found: dict[int, set[int]] = defaultdict(set)
    for o, p in zip(purchases.order[rows].tolist(), purchases.product[rows].tolist(), strict=True):
        found[o].add(p)
    return {o: frozenset(ps) for o, ps in found.items()}


def _trained(data: TrainingData, purchases: Purchases, behaviour: Behaviour) -> TrainingData:
    latest = max(
        float(purchases.at.max()) if purchases.at.size else 0.0,
        float(behaviour.at.max()) if behaviour.at.size else 0.0,
    )
    now = datetime.fromtimestamp(latest, UTC) if latest else data.now
    stats = dict(data.stats) | {
        "purchases": int(purchases.at.size),
        "events": int(behaviour.at.size),
    }
    return replace(data, purchases=purchases, behaviour=behaviour, now=now, stats=stats)


def split_last_order(data: TrainingData, settings: RecommendationSettings) -> Split:
    """Hold out each customer's last order (customers with two orders or more); see the
    module's docstring for exactly what training keeps."""
    purchases, behaviour = data.purchases, data.behaviour
    orders, customers, at = _orders(purchases)
    last = np.r_[customers[1:] != customers[:-1], True] if orders.size else np.zeros(0, bool)
    first = np.r_[True, customers[1:] != customers[:-1]] if orders.size else np.zeros(0, bool)
    tested = last & ~first  # the last order of a customer who has an earlier one
    held_orders = orders[tested]
    held_customers = customers[tested]
    held_at = at[tested]

    visits = _Visits(behaviour, settings.session_minutes * 60.0)
    # Per tested customer: the held-out order's time, and where its visit starts.
    cut_purchase = dict(zip(held_customers.tolist(), held_at.tolist(), strict=True))
    cut_event: dict[int, float] = {}
    touches: dict[int, tuple[tuple[int, float, float], ...]] = {}
    for c, t in cut_purchase.items():
        start = visits.visit_start(c, t)
        _, hi = visits.span(c)
        cut_event[c] = float(visits.at[start]) if start < hi else math.inf
        touches[c] = visits.last_visit(c, start)

    keep_p = purchases.at < _lookup(purchases.customer, cut_purchase)
    keep_b = behaviour.at < _lookup(behaviour.visitor, cut_event)
    train_p = _take_purchases(purchases, keep_p)
    train_b = _take_behaviour(behaviour, keep_b)
    histories = _histories(train_p)
    baskets = _baskets(purchases, held_orders.tolist())
    cases = [
        Case(
            customer=c,
            order=o,
            at=t,
            basket=baskets[o],
            history=tuple(histories.get(c, ())),
            touches=touches[c],
        )
        for c, o, t in zip(
            held_customers.tolist(), held_orders.tolist(), held_at.tolist(), strict=True
        )
        if histories.get(c)
    ]
    return Split("last", _trained(data, train_p, train_b), cases)


def default_cut(data: TrainingData, share: float = 0.9) -> float:
    """The moment before which ``share`` of the orders were placed (epoch seconds)."""
    _, _, at = _orders(data.purchases)
    if not at.size:
        return data.now.timestamp()
    return float(np.sort(at)[min(at.size - 1, int(share * at.size))])


def split_time(
    data: TrainingData, settings: RecommendationSettings, cut: float | None = None
) -> Split:
    """Train on everything before ``cut`` (epoch seconds; default :func:`default_cut`); test
    each customer who bought before it on their first order at or after it. A test order
    placed soon after the cut has its held-out window (as in :func:`split_last_order`)
    taken out of training too."""
    cut = default_cut(data) if cut is None else cut
    purchases, behaviour = data.purchases, data.behaviour
    train_p = _take_purchases(purchases, purchases.at < cut)
    histories = _histories(train_p)
    orders, customers, at = _orders(purchases)
    after = at >= cut
    firsts: dict[int, tuple[int, float]] = {}
    for o, c, t in zip(
        orders[after].tolist(), customers[after].tolist(), at[after].tolist(), strict=True
    ):
        if c in histories and c not in firsts:
            firsts[c] = (o, t)
    visits = _Visits(behaviour, settings.session_minutes * 60.0)
    cut_event: dict[int, float] = {}
    touches: dict[int, tuple[tuple[int, float, float], ...]] = {}
    for c, (_, t) in firsts.items():
        start = visits.visit_start(c, t)
        lo, hi = visits.span(c)
        # What the customer did before the cut, and before the order's held-out window.
        end = min(start, lo + int(np.searchsorted(visits.at[lo:hi], cut, side="left")))
        cut_event[c] = float(visits.at[end]) if end < hi else math.inf
        touches[c] = visits.last_visit(c, end)
    keep_b = (behaviour.at < cut) & (behaviour.at < _lookup(behaviour.visitor, cut_event))
    train_b = _take_behaviour(behaviour, keep_b)
    baskets = _baskets(purchases, (o for o, _ in firsts.values()))
    cases = [
        Case(c, o, t, baskets[o], tuple(histories[c]), touches[c]) for c, (o, t) in firsts.items()
    ]
    return Split("time", _trained(data, train_p, train_b), cases)


def _lookup(keys: IntArray, values: Mapping[int, float]) -> np.ndarray:
    """``values[k]`` for each of ``keys``, +inf where there is none."""
    out = np.full(keys.shape, np.inf)
    if not values:
        return out
    ks = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    vs = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    by = np.argsort(ks)
    ks, vs = ks[by], vs[by]
    pos = np.clip(np.searchsorted(ks, keys), 0, ks.size - 1)
    hit = ks[pos] == keys
    out[hit] = vs[pos[hit]]
    return out


# --- the metrics ---------------------------------------------------------------------------


def recall_at(ranked: Sequence[int], basket: Iterable[int], k: int = K) -> float:
    """|top k ∩ basket| / |basket|."""
    wanted = set(basket)
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def ndcg_at(ranked: Sequence[int], basket: Iterable[int], k: int = K) -> float:
    """DCG / ideal DCG with binary relevance: DCG = Σ_{i ≤ k, item i in the basket}
    1 / log2(i + 1); the ideal puts min(k, |basket|) relevant items first."""
    wanted = set(basket)
    if not wanted:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in wanted)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(wanted))))
    return dcg / ideal


def hit_at(ranked: Sequence[int], basket: Iterable[int], k: int = K) -> float:
    """1 when one of the top k is in the basket, else 0."""
    wanted = set(basket)
    return 1.0 if wanted.intersection(ranked[:k]) else 0.0


def score(
    rankings: Mapping[int, Sequence[int]],
    cases: Sequence[Case],
    active_products: int,
    k: int = K,
) -> dict[str, float]:
    """Every metric of one model's ``rankings`` (customer -> products, best first) over
    ``cases``. Recall, NDCG and hit rate are averaged over the cases; their ``_repeat`` and
    ``_new`` parts score only the basket's repeat (bought before) or new items, averaged
    over the cases whose basket has some. Coverage is the share of the ``active_products``
    recommended to anyone; its parts count the recommendations of products the customer had
    bought before, and of those they had not."""
    sums: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    shown: dict[str, set[int]] = {"": set(), "_repeat": set(), "_new": set()}
    for case in cases:
        ranked = list(rankings.get(case.customer, ()))[:k]
        bought = case.bought
        parts = {
            "": case.basket,
            "_repeat": case.basket & bought,
            "_new": case.basket - bought,
        }
        for part, basket in parts.items():
            if not basket:
                continue
            counts[part] += 1
            sums[f"recall@{k}{part}"] += recall_at(ranked, basket, k)
            sums[f"ndcg@{k}{part}"] += ndcg_at(ranked, basket, k)
            sums[f"hit@{k}{part}"] += hit_at(ranked, basket, k)
        shown[""].update(ranked)
        shown["_repeat"].update(p for p in ranked if p in bought)
        shown["_new"].update(p for p in ranked if p not in bought)
    out: dict[str, float] = {}
    for metric in (f"recall@{k}", f"ndcg@{k}", f"hit@{k}", "coverage"):
        for part in ("", "_repeat", "_new"):
            name = f"{metric}{part}"
            if metric == "coverage":
                out[name] = len(shown[part]) / active_products if active_products else 0.0
            else:
                out[name] = sums[name] / counts[part] if counts[part] else 0.0
    return out


# --- the baselines -------------------------------------------------------------------------


def _decay(age_seconds: float, half_life_days: float) -> float:
    return 2.0 ** (-max(age_seconds, 0.0) / (half_life_days * DAY))


def _best(scores: Mapping[int, float], k: int) -> list[int]:
    return sorted(scores, key=lambda p: (-scores[p], p))[:k]


def popularity(purchases: Purchases) -> list[int]:
    """Every product bought in training, by the number of orders it was in (then id)."""
    pairs = np.unique(np.stack([purchases.order, purchases.product]), axis=1)
    products, counts = np.unique(pairs[1], return_counts=True)
    by = np.lexsort((products, -counts))
    return [int(p) for p in products[by]]


def _filled(ranked: list[int], popular: Sequence[int], k: int) -> list[int]:
    seen = set(ranked)
    out = list(ranked)
    for p in popular:
        if len(out) >= k:
            break
        if p not in seen:
            out.append(p)
            seen.add(p)
    return out


def top_frequency(case: Case, k: int = K) -> list[int]:
    """The customer's products by the number of their orders they were in; ties: the most
    recently bought first."""
    orders: dict[int, set[int]] = defaultdict(set)
    last: dict[int, float] = {}
    for o, p, t in case.history:
        orders[p].add(o)
        last[p] = max(last.get(p, t), t)
    return sorted(orders, key=lambda p: (-len(orders[p]), -last[p], p))[:k]


def recency_frequency(case: Case, half_life_days: float, k: int = K) -> list[int]:
    """The customer's products by Σ over their purchases of 2^(−age / half-life), age at the
    moment of the held-out order."""
    scores: dict[int, float] = defaultdict(float)
    for _, p, t in case.history:
        scores[p] += _decay(case.at - t, half_life_days)
    return _best(scores, k)


def item_knn(case: Case, models: Models, half_life_days: float, k: int = K) -> list[int]:
    """Item-based k nearest neighbours: each product scored Σ over the customer's products i
    of w_i · cos(i, product), w_i their recency-weighted frequency of i, over the fitted
    collaborative-filtering neighbours."""
    weights: dict[int, float] = defaultdict(float)
    for _, p, t in case.history:
        weights[p] += _decay(case.at - t, half_life_days)
    scores: dict[int, float] = defaultdict(float)
    for p, w in weights.items():
        for n in models.neighbours.get(p, ()):
            if n.source is NeighbourSource.CF:
                scores[n.product_id] += w * n.score
    return _best(scores, k)


def baselines(
    split: Split, models: Models, settings: RecommendationSettings, k: int = K
) -> dict[str, dict[int, list[int]]]:
    """Every baseline's ten products for each case. ``recency_frequency`` is filled with
    popular products like ``top_frequency+popular``, so the two differ only in how they weigh
    the customer's purchases."""
    popular = popularity(split.train.purchases)
    out: dict[str, dict[int, list[int]]] = {
        POPULAR: {},
        TOP_FREQUENCY: {},
        TOP_FREQUENCY_POPULAR: {},
        RECENCY_FREQUENCY: {},
        ITEM_KNN: {},
    }
    half_life = settings.half_life_days
    for case in split.cases:
        c = case.customer
        out[POPULAR][c] = popular[:k]
        top = top_frequency(case, k)
        out[TOP_FREQUENCY][c] = top
        out[TOP_FREQUENCY_POPULAR][c] = _filled(top, popular, k)
        out[RECENCY_FREQUENCY][c] = _filled(recency_frequency(case, half_life, k), popular, k)
        out[ITEM_KNN][c] = item_knn(case, models, half_life, k)
    return out


# --- the hybrid ----------------------------------------------------------------------------


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def touch_kind(weight: float, settings: RecommendationSettings) -> str:
    """The behaviour whose weight (in the settings) ``weight`` is."""
    kinds = {
        "ADD_TO_CART": settings.cart_weight,
        "FAVORITE": settings.favorite_weight,
        "VIEW": settings.view_weight,
    }
    return min(kinds, key=lambda kind: abs(kinds[kind] - weight))


def visitor_of(case: Case, settings: RecommendationSettings) -> Visitor:
    """The customer as serving would see them when the held-out order is placed."""
    return Visitor(
        customer_id=case.customer,
        purchases=[Purchase(o, p, _when(t)) for o, p, t in case.history],
        touches=[Touch(p, touch_kind(w, settings), _when(t)) for p, w, t in case.touches],
    )


async def hybrid_candidates(
    store: ModelStore,
    case: Case,
    blend: BlendWeights,
    settings: RecommendationSettings,
    pool: int = 50,
) -> list[Scored]:
    """What the home page would offer the customer when placing the held-out order."""
    ask = Ask(context=RecommendationContext.HOME, now=_when(case.at), pool=pool)
    return await rank(store, visitor_of(case, settings), ask, blend, settings)


def category_map(models: Models) -> dict[int, int | None]:
    return {pid: facts.category_id for pid, facts in models.products.items()}


async def hybrid_rankings(
    store: ModelStore,
    models: Models,
    cases: Sequence[Case],
    blend: BlendWeights,
    settings: RecommendationSettings,
    k: int = K,
    on_case: Callable[[int], None] | None = None,
) -> dict[int, list[int]]:
    """The hybrid's ``k`` products for each case: :func:`hybrid.rank`, then the diversity
    re-rank, as served (the business rules of stock and merchandising aside)."""
    categories = category_map(models)
    out: dict[int, list[int]] = {}
    for i, case in enumerate(cases):
        ranked = await hybrid_candidates(store, case, blend, settings)
        top = diversify(ranked, categories, k, settings.max_category_share)
        out[case.customer] = [s.product_id for s in top]
        if on_case is not None:
            on_case(i)
    return out


# --- the report ----------------------------------------------------------------------------


@dataclass
class Report:
    split: str
    customers: int  # test cases
    with_repeat: int  # cases whose basket holds a product the customer bought before
    with_new: int
    products: int  # active products (coverage's denominator)
    models: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {name: dict(metrics) for name, metrics in self.models.items()}

    def describe(self) -> str:
        """A table: one row per model, one column per metric (``_repeat`` → ``rep``,
        ``_new`` → ``new``)."""
        header = ["model"] + [m.replace("_repeat", " rep").replace("_new", " new") for m in METRICS]
        rows = [
            [name] + [f"{metrics.get(m, 0.0):.4f}" for m in METRICS]
            for name, metrics in self.models.items()
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            f"split {self.split}: {self.customers} test customers ({self.with_repeat} with "
            f"repeat items, {self.with_new} with new items), {self.products} active products",
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines)


def active_products(data: TrainingData) -> int:
    return sum(1 for p in data.products if p.is_active)


def report_of(
    split: Split,
    rankings: Mapping[str, Mapping[int, Sequence[int]]],
    products: int,
    k: int = K,
) -> Report:
    cases = split.cases
    report = Report(
        split=split.name,
        customers=len(cases),
        with_repeat=sum(1 for c in cases if c.basket & c.bought),
        with_new=sum(1 for c in cases if c.basket - c.bought),
        products=products,
    )
    for name in [*(m for m in MODELS if m in rankings), *(m for m in rankings if m not in MODELS)]:
        report.models[name] = score(rankings[name], cases, products, k)
    return report


# --- tuning the blend ----------------------------------------------------------------------

# The grid: the repeat component's weight is fixed (only ratios matter); each explore
# component's weight takes one of these. None is zero: a component weighed zero is never
# served, and a visitor without history would get nothing from popular and new.
GRID: dict[str, tuple[float, ...]] = {
    "bought_with": (0.05, 0.1, 0.25, 0.5, 1.0),
    "similar": (0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
    "popular": (0.05, 0.1, 0.25, 0.5),
    "new": (0.05, 0.1, 0.3),
}
# Tuning re-blends each customer's best TUNE_POOL candidates under unit weights (a blend's
# top ten come from them but for rare exceptions), for at most TUNE_CUSTOMERS customers.
TUNE_POOL = 300
TUNE_CUSTOMERS = 1000


@dataclass(frozen=True)
class Tried:
    weights: BlendWeights
    recall: float
    ndcg: float


async def component_parts(
    store: ModelStore, models: Models, cases: Sequence[Case], settings: RecommendationSettings
) -> list[list[tuple[int, dict[str, float]]]]:
    """Each case's candidates with each component's share of their score under unit weights:
    the hybrid's score is linear in the weights (a weight times the component's normalised
    score), so any blend's ranking is these parts weighted again."""
    unit = BlendWeights(repeat=1.0, bought_with=1.0, similar=1.0, popular=1.0, new=1.0)
    out = []
    for case in cases:
        ranked = await hybrid_candidates(store, case, unit, settings, pool=TUNE_POOL)
        out.append(
            [(s.product_id, {c.value: v for c, v in s.contributions.items()}) for s in ranked]
        )
    return out


def reblend(
    parts: list[tuple[int, dict[str, float]]], weights: Mapping[str, float]
) -> list[Scored]:
    from plugins.recommendation.models import Component
    from plugins.recommendation.service.hybrid import Reason

    scored = [
        Scored(p, sum(weights[c] * v for c, v in contrib.items()), Reason(Component.POPULAR))
        for p, contrib in parts
    ]
    scored = [s for s in scored if s.score > 0]
    return sorted(scored, key=lambda s: (-s.score, s.product_id))


async def tune(
    split: Split,
    store: ModelStore,
    models: Models,
    settings: RecommendationSettings,
    grid: Mapping[str, Sequence[float]] = GRID,
    k: int = K,
    on_step: Callable[[str], None] | None = None,
) -> list[Tried]:
    """Every blend of ``grid`` (the repeat weight 1) scored on ``split``'s cases (at most
    :data:`TUNE_CUSTOMERS` of them, drawn at random) by recall at ``k`` (then NDCG), best
    first."""
    cases = split.cases
    if len(cases) > TUNE_CUSTOMERS:
        cases = random.Random(0).sample(cases, TUNE_CUSTOMERS)
    split = replace(split, cases=cases)
    parts = await component_parts(store, models, split.cases, settings)
    if on_step is not None:
        on_step(f"candidates of {len(split.cases)} customers")
    categories = category_map(models)
    products = active_products(split.train)
    names = list(grid)
    tried = []
    for values in itertools.product(*(grid[n] for n in names)):
        weights = {"REPEAT": 1.0} | {n.upper(): v for n, v in zip(names, values, strict=True)}
        rankings = {}
        for case, candidates in zip(split.cases, parts, strict=True):
            top = diversify(
                reblend(candidates, weights), categories, k, settings.max_category_share
            )
            rankings[case.customer] = [s.product_id for s in top]
        metrics = score(rankings, split.cases, products, k)
        blend = BlendWeights(repeat=1.0, **dict(zip(names, values, strict=True)))
        tried.append(Tried(blend, metrics[f"recall@{k}"], metrics[f"ndcg@{k}"]))
    tried.sort(key=lambda t: (-t.recall, -t.ndcg))
    return tried


# --- the whole run -------------------------------------------------------------------------

EVALUATE_STEPS = 4
TUNE_STEPS = 5


def fit_in_memory(
    train: TrainingData, settings: RecommendationSettings
) -> tuple[Models, ModelStore]:
    from plugins.recommendation.service.components import fit
    from plugins.recommendation.service.store import MemoryStore

    models = fit(train, settings)
    return models, MemoryStore(models)


def make_split(
    data: TrainingData, settings: RecommendationSettings, kind: str, cut: float | None = None
) -> Split:
    if kind == "time":
        return split_time(data, settings, cut)
    return split_last_order(data, settings)


async def evaluate(
    data: TrainingData,
    settings: RecommendationSettings,
    *,
    kind: str = "last",
    cut: float | None = None,
    blend: BlendWeights | None = None,
    step: Callable[[str], None] | None = None,
) -> Report:
    """Split ``data`` (``kind`` "last" or "time"), fit every component once on the training
    part, and score the hybrid (with ``blend``, default the settings' weights) and every
    baseline on the test customers. ``step`` hears of each of :data:`EVALUATE_STEPS` steps."""

    def done(what: str) -> None:
        if step is not None:
            step(what)

    split = make_split(data, settings, kind, cut)
    done(f"{len(split.cases)} test customers ({split.name} split)")
    models, store = fit_in_memory(split.train, settings)
    done("components fitted on the training part")
    rankings: dict[str, Mapping[int, Sequence[int]]] = dict(baselines(split, models, settings))
    done("baselines ranked")
    rankings[HYBRID] = await hybrid_rankings(
        store, models, split.cases, blend or settings.weights, settings
    )
    done("hybrid ranked")
    return report_of(split, rankings, active_products(data))


def validation_splits(data: TrainingData, settings: RecommendationSettings) -> list[Split]:
    """The splits the blend is tuned on, which leave every test basket out: the last-order
    split of the last-order split's training part (each customer's last-but-one order held
    out), and the time split of the time split's training part (its own default cut)."""
    last = split_last_order(split_last_order(data, settings).train, settings)
    before = split_time(data, settings).train
    time = split_time(before, settings)
    return [last, time]


def pooled(tries: Sequence[Sequence[Tried]], sizes: Sequence[int]) -> list[Tried]:
    """Each blend's recall and NDCG over several splits' customers together (each split's
    figure weighed by its number of customers), best first."""
    total = sum(sizes) or 1
    by_blend: dict[str, list[Tried]] = defaultdict(list)
    for tried in tries:
        for t in tried:
            by_blend[t.weights.model_dump_json()].append(t)
    out = [
        Tried(
            ts[0].weights,
            sum(t.recall * n for t, n in zip(ts, sizes, strict=True)) / total,
            sum(t.ndcg * n for t, n in zip(ts, sizes, strict=True)) / total,
        )
        for ts in by_blend.values()
    ]
    out.sort(key=lambda t: (-t.recall, -t.ndcg))
    return out


async def tune_blend(
    data: TrainingData,
    settings: RecommendationSettings,
    *,
    grid: Mapping[str, Sequence[float]] = GRID,
    step: Callable[[str], None] | None = None,
) -> list[Tried]:
    """The grid search for the blend weights on the :func:`validation_splits` (which leave
    the test baskets out): each fitted on its training part, every blend of ``grid`` scored
    by recall@10 over both splits' customers together. Best first. ``step`` hears of
    :data:`TUNE_STEPS` steps."""

    def done(what: str) -> None:
        if step is not None:
            step(what)

    splits = validation_splits(data, settings)
    done(
        f"{len(splits[0].cases)} + {len(splits[1].cases)} validation customers "
        "(last-but-one orders; first orders after an earlier cut)"
    )
    tries = []
    sizes = []
    for split in splits:
        models, store = fit_in_memory(split.train, settings)
        done(f"components fitted on the {split.name} validation split's training part")
        tried = await tune(split, store, models, settings, grid)
        tries.append(tried)
        sizes.append(min(len(split.cases), TUNE_CUSTOMERS))
        done(f"{len(tried)} blends scored on the {split.name} validation split")
    return pooled(tries, sizes)
