"""The models a rebuild fits, as pure functions over arrays (numpy, scipy.sparse and
scikit-learn); :func:`fit` runs them all on :class:`TrainingData` and returns the
:class:`Models` that a rebuild writes and the offline evaluation serves from memory.

- :func:`collaborative_neighbours`: item-item collaborative filtering on implicit feedback;
- :func:`content_neighbours`: character n-gram TF-IDF over name, category path, brand, tags
  and attribute values;
- :func:`association_rules`: "bought together" rules mined from orders as baskets;
- :func:`popularity` and :func:`popular_per_category`: time-decayed popularity;
- :func:`repurchase_cycles`: how often a product is bought again, and after how long.

Products are addressed by their position in a :class:`Catalogue` (ids in ascending order),
so every matrix is indexed 0..n-1. The formulas are in docs/plugins/recommendation.md
("Components").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from plugins.recommendation.models import NeighbourSource
from plugins.recommendation.service.data import ProductRow, TrainingData
from plugins.recommendation.service.settings import RecommendationSettings
from plugins.recommendation.service.store import (
    Cycle,
    Models,
    Neighbour,
    Popular,
    ProductFacts,
    Rule,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Note = Callable[[str], None]

DAY = 86_400.0
# Rows of a similarity computed at once: a (rows × products) sparse block, never n × n.
CHUNK_ROWS = 1024
# The shrinkage λ of collaborative filtering's cosine, x_i·x_j / (‖x_i‖‖x_j‖ + λ), in units
# of decayed feedback: pairs seen together by one or two visitors long ago count for less
# than pairs many visitors saw lately, whose similarity it leaves all but unchanged.
CF_SHRINKAGE = 1.0
# How much each field counts in content similarity (each field's TF-IDF vector has unit
# length, then is scaled by its weight): the category and the brand say more about what a
# product is for than the words of its name.
CONTENT_WEIGHTS: Mapping[str, float] = {
    "name": 1.0,
    "category": 1.5,
    "brand": 1.25,
    "tags": 0.75,
    "attributes": 0.75,
}
# Character n-grams within word boundaries: two and three characters are words and parts
# of words in Chinese and English alike.
CONTENT_NGRAMS = (2, 3)
# Two products are content candidates of each other when they share an n-gram that at most
# this many products have; their similarity is then the cosine of their whole vectors. An
# n-gram of many products (a department's name, a common tag) tells little (its IDF is low)
# and would make every pair of them a candidate: the cost of the sparse product grows with
# the square of a feature's document count. Only large catalogues have such n-grams.
CONTENT_CANDIDATE_DF = 1_000
# Candidates rescored per product, as a multiple of the neighbours kept.
CONTENT_POOL = 3
# Popular products kept per category (and for the whole shop).
POPULAR_TOP = 100
# A product bought by fewer customers than this has no repurchase cycle: one or two
# customers' habits are theirs, not the product's (their own purchases still count for them).
MIN_CYCLE_BUYERS = 3
# The steps ``fit`` reports to ``progress``: one per component.
FIT_STEPS = 5


def decay(age_seconds: FloatArray | float, half_life_days: float) -> FloatArray:
    """Exponential time decay 2^(-age / half-life); ages below zero count as zero."""
    age = np.maximum(np.asarray(age_seconds, dtype=np.float64), 0.0)
    return np.asarray(np.exp2(-age / (half_life_days * DAY)), dtype=np.float64)


# --- products by position --------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """The products in ascending id order: ``ids[i]`` is product i."""

    ids: IntArray
    active: BoolArray
    category: IntArray  # category id, -1 for none

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def index(self, product_ids: IntArray) -> IntArray:
        """Each id's position; -1 for ids not in the catalogue."""
        ids = np.asarray(product_ids, dtype=np.int64)
        if self.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, self.size - 1)
        return np.where(self.ids[pos] == ids, pos, -1).astype(np.int64)


def catalogue_of(products: Sequence[ProductRow]) -> Catalogue:
    ordered = sorted(products, key=lambda p: p.id)
    return Catalogue(
        ids=np.array([p.id for p in ordered], dtype=np.int64),
        active=np.array([p.is_active for p in ordered], dtype=np.bool_),
        category=np.array(
            [p.category_id if p.category_id is not None else -1 for p in ordered], dtype=np.int64
        ),
    )


def category_ancestors(parents: Mapping[int, int | None]) -> dict[int, list[int]]:
    """Each category's ancestors, nearest first (a cycle in the tree is cut where it closes)."""
    found: dict[int, list[int]] = {}
    for cid in parents:
        chain: list[int] = []
        seen = {cid}
        parent = parents.get(cid)
        while parent is not None and parent not in seen:
            chain.append(parent)
            seen.add(parent)
            parent = parents.get(parent)
        found[cid] = chain
    return found


# --- nearest neighbours by cosine --------------------------------------------------------------


@dataclass(frozen=True)
class TopK:
    """Per row, its best columns: flat arrays grouped by row (ascending), best first."""

    row: IntArray
    col: IntArray
    score: FloatArray

    @property
    def size(self) -> int:
        return int(self.row.shape[0])


def _empty_top_k() -> TopK:
    return TopK(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _best(cols: IntArray, scores: FloatArray, k: int) -> IntArray:
    """Positions of the ``k`` best of one row: highest score first, ties by lower column.
    argpartition finds the k-th score; only what reaches it is sorted."""
    if scores.shape[0] > k:
        part = np.argpartition(-scores, k - 1)[:k]
        cut = scores[part].min()
        reach = np.flatnonzero(scores >= cut)  # ties at the cut: all of them, then by column
    else:
        reach = np.arange(scores.shape[0])
    order = np.lexsort((cols[reach], -scores[reach]))[:k]
    return reach[order]


def top_k_cosine(
    matrix: Any,
    k: int,
    *,
    shrinkage: float = 0.0,
    allowed: BoolArray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> TopK:
    """Each row's ``k`` most similar other rows of ``matrix`` (items × features, sparse), by
    cosine with shrinkage λ: sim(i, j) = x_i·x_j / (‖x_i‖‖x_j‖ + λ). Only rows ``allowed``
    may be neighbours; similarities of zero are left out.

    Computed ``chunk_rows`` rows at a time as a sparse product (chunk × allowed items),
    whose entries are the pairs that share a feature; each row's best by argpartition."""
    x = sp.csr_matrix(matrix, dtype=np.float64)
    n = x.shape[0]
    if n == 0 or k <= 0:
        return _empty_top_k()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel())
    candidates = np.arange(n) if allowed is None else np.flatnonzero(allowed)
    if candidates.shape[0] == 0:
        return _empty_top_k()
    others = sp.csr_matrix(x[candidates].T)  # features × candidates
    out_rows: list[IntArray] = []
    out_cols: list[IntArray] = []
    out_scores: list[FloatArray] = []
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        block = sp.csr_matrix(x[start:stop] @ others)
        counts = np.diff(block.indptr)
        local = np.repeat(np.arange(stop - start), counts)
        rows = local + start
        cols = candidates[block.indices]
        scores = block.data / (norms[rows] * norms[cols] + shrinkage)
        keep = (cols != rows) & (scores > 0)
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(local[keep], minlength=stop - start))))
        for r in range(stop - start):
            a, b = int(bounds[r]), int(bounds[r + 1])
            if a == b:
                continue
            best = _best(cols[a:b], scores[a:b], k) + a
            out_rows.append(rows[best])
            out_cols.append(cols[best])
            out_scores.append(scores[best])
    if not out_rows:
        return _empty_top_k()
    return TopK(
        row=np.concatenate(out_rows).astype(np.int64),
        col=np.concatenate(out_cols).astype(np.int64),
        score=np.concatenate(out_scores).astype(np.float64),
    )


# --- collaborative filtering -------------------------------------------------------------------


def feedback_matrix(
    visitor: IntArray,
    product: IntArray,
    weight: FloatArray,
    at: FloatArray,
    *,
    now: float,
    half_life_days: float,
    products: int,
) -> Any:
    """The visitors × products matrix of implicit feedback: r_vp = Σ w_e · 2^(-age_e / h)
    over visitor v's events e on product p (weight w_e by kind, age from ``now``, epoch
    seconds). ``product`` holds catalogue positions; -1 rows are left out. Visitors are
    numbered in ascending order of their ids."""
    keep = product >= 0
    visitors, rows = np.unique(visitor[keep], return_inverse=True)
    values = weight[keep] * decay(now - at[keep], half_life_days)
    # COO → CSR sums the duplicates: a visitor's events on one product add up.
    return sp.csr_matrix(
        (values, (rows.ravel(), product[keep])),
        shape=(visitors.shape[0], products),
        dtype=np.float64,
    )


def collaborative_neighbours(
    data: TrainingData,
    catalogue: Catalogue,
    settings: RecommendationSettings,
    *,
    shrinkage: float = CF_SHRINKAGE,
) -> TopK:
    """Item-item collaborative filtering: each product's ``settings.neighbours`` nearest
    active products by the cosine (with shrinkage) of their columns of the feedback matrix,
    built from behaviour (its weights by kind) and purchases (``settings.purchase_weight``
    each), decayed with ``settings.half_life_days``."""
    b, p = data.behaviour, data.purchases
    visitor = np.concatenate([b.visitor, p.customer])
    product = catalogue.index(np.concatenate([b.product, p.product]))
    weight = np.concatenate([b.weight, np.full(p.product.shape[0], settings.purchase_weight)])
    at = np.concatenate([b.at, p.at])
    matrix = feedback_matrix(
        visitor,
        product,
        weight,
        at,
        now=data.now.timestamp(),
        half_life_days=settings.half_life_days,
        products=catalogue.size,
    )
    return top_k_cosine(
        matrix.T, settings.neighbours, shrinkage=shrinkage, allowed=catalogue.active
    )


# --- content similarity ------------------------------------------------------------------------


def _values(value: Any) -> list[str]:
    """An attribute's value as text: lists and mappings flattened, None left out."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _values(v)]
    if isinstance(value, list | tuple | set):
        return [t for v in value for t in _values(v)]
    return [str(value)]


def content_documents(
    products: Sequence[ProductRow],
    category_names: Mapping[int, str],
    ancestors: Mapping[int, Sequence[int]],
) -> dict[str, list[str]]:
    """Each field's text per product (in the order given): the name, the category path's
    names (root first), the brand, the tags and the attribute values."""
    docs: dict[str, list[str]] = {field: [] for field in CONTENT_WEIGHTS}
    for p in products:
        path: list[str] = []
        if p.category_id is not None:
            chain = [*reversed(ancestors.get(p.category_id, ())), p.category_id]
            path = [category_names[c] for c in chain if c in category_names]
        docs["name"].append(p.name)
        docs["category"].append(" ".join(path))
        docs["brand"].append(p.brand or "")
        docs["tags"].append(" ".join(p.tags))
        docs["attributes"].append(" ".join(_values(p.attributes)))
    return docs


def content_matrix(
    documents: Mapping[str, Sequence[str]], weights: Mapping[str, float] = CONTENT_WEIGHTS
) -> Any:
    """Products × features: per field, the TF-IDF of its character n-grams (``char_wb``,
    :data:`CONTENT_NGRAMS`, sublinear tf, each row of unit length) times the field's weight,
    side by side. A field no product has text for adds nothing."""
    sizes = {len(docs) for docs in documents.values()}
    n = sizes.pop() if sizes else 0
    blocks: list[Any] = []
    for field, weight in weights.items():
        docs = documents.get(field)
        if docs is None or weight <= 0 or not any(d.strip() for d in docs):
            continue
        vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=CONTENT_NGRAMS,
            sublinear_tf=True,
            dtype=np.float64,
        )
        blocks.append(vectorizer.fit_transform(docs) * weight)
    if not blocks:
        return sp.csr_matrix((n, 0), dtype=np.float64)
    return sp.csr_matrix(sp.hstack(blocks, format="csr"))


def content_neighbours(
    products: Sequence[ProductRow],
    category_names: Mapping[int, str],
    ancestors: Mapping[int, Sequence[int]],
    k: int,
    *,
    allowed: BoolArray | None = None,
) -> TopK:
    """Each product's ``k`` nearest ``allowed`` products (rows in the order given) by the
    cosine of their :func:`content_matrix` rows."""
    docs = content_documents(products, category_names, ancestors)
    return top_k_cosine_among_candidates(content_matrix(docs), k, allowed=allowed)


def top_k_cosine_among_candidates(
    matrix: Any,
    k: int,
    *,
    allowed: BoolArray | None = None,
    candidate_df: int = CONTENT_CANDIDATE_DF,
    pool: int = CONTENT_POOL,
    chunk_rows: int = CHUNK_ROWS,
) -> TopK:
    """Each row's ``k`` most similar ``allowed`` rows by the cosine of their whole vectors,
    among the candidates that share with it a feature of at most ``candidate_df`` rows: the
    ``pool × k`` nearest by the cosine over those features alone, rescored. Where no feature
    has more rows than that (any catalogue below that size), this is :func:`top_k_cosine`."""
    x = sp.csr_matrix(matrix, dtype=np.float64)
    df = np.bincount(x.indices, minlength=x.shape[1])
    rare = df <= candidate_df
    if rare.all():
        return top_k_cosine(x, k, allowed=allowed, chunk_rows=chunk_rows)
    candidates = top_k_cosine(
        x[:, np.flatnonzero(rare)], pool * k, allowed=allowed, chunk_rows=chunk_rows
    )
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel())
    out_rows: list[IntArray] = []
    out_cols: list[IntArray] = []
    out_scores: list[FloatArray] = []
    step = chunk_rows * pool * k  # candidate pairs rescored at once
    for start in range(0, candidates.size, step):
        rows = candidates.row[start : start + step]
        cols = candidates.col[start : start + step]
        dots = np.asarray(x[rows].multiply(x[cols]).sum(axis=1), dtype=np.float64).ravel()
        out_rows.append(rows)
        out_cols.append(cols)
        out_scores.append(dots / (norms[rows] * norms[cols]))
    if not out_rows:
        return _empty_top_k()
    rows = np.concatenate(out_rows)
    cols = np.concatenate(out_cols)
    scores = np.concatenate(out_scores)
    # Best first within each row (rows stay in ascending order), k kept.
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    first = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(rows.shape[0]) - first) < k
    return TopK(rows[keep], cols[keep], scores[keep])


def content_neighbours_of(
    target: ProductRow,
    candidates: Sequence[ProductRow],
    category_names: Mapping[int, str],
    ancestors: Mapping[int, Sequence[int]],
    k: int,
) -> list[tuple[int, float]]:
    """One product's ``k`` nearest of ``candidates`` (active ones, itself left out) by
    content, featurised as :func:`content_neighbours` does, the IDF taken over the
    candidates and the product: (product id, cosine), best first."""
    others = [c for c in candidates if c.id != target.id]
    if not others:
        return []
    rows = [target, *others]
    allowed = np.array([False] + [c.is_active for c in others], dtype=np.bool_)
    docs = content_documents(rows, category_names, ancestors)
    matrix = sp.csr_matrix(content_matrix(docs))
    # Only the target's row is wanted: its similarities against every other row at once.
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1), dtype=np.float64).ravel())
    if norms[0] == 0:
        return []
    dots = np.asarray((matrix[1:] @ matrix[0].T).toarray(), dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(norms[1:] > 0, dots / (norms[0] * norms[1:]), 0.0)
    positions = np.flatnonzero(allowed[1:] & (scores > 0))
    if positions.shape[0] == 0:
        return []
    ids = np.array([c.id for c in others], dtype=np.int64)
    best = _best(ids[positions], scores[positions], k)
    chosen = positions[best]
    return [(int(ids[i]), float(scores[i])) for i in chosen]


# --- association rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """Association rules antecedent → consequent (catalogue positions), grouped by
    antecedent (ascending), best first: by lift, then confidence, then consequent."""

    antecedent: IntArray
    consequent: IntArray
    orders: IntArray
    support: FloatArray
    confidence: FloatArray
    lift: FloatArray

    @property
    def size(self) -> int:
        return int(self.antecedent.shape[0])


def basket_matrix(order: IntArray, product: IntArray, products: int) -> Any:
    """Orders × products, 1 where the order holds the product (lines of one product in one
    order count once); -1 products are left out."""
    keep = product >= 0
    orders, rows = np.unique(order[keep], return_inverse=True)
    key = np.unique(rows.ravel().astype(np.int64) * products + product[keep])
    return sp.csr_matrix(
        (np.ones(key.shape[0], dtype=np.float64), (key // products, key % products)),
        shape=(orders.shape[0], products),
    )


def association_rules(
    order: IntArray,
    product: IntArray,
    products: int,
    *,
    min_pair_orders: int,
    k: int,
    allowed: BoolArray | None = None,
    chunk_rows: int = 4 * CHUNK_ROWS,
) -> Rules:
    """Rules i → j from orders as baskets (N orders; n_i orders hold i; n_ij hold both):
    support = n_ij / N, confidence = n_ij / n_i, lift = confidence / (n_j / N). Pairs bought
    together in at least ``min_pair_orders`` orders; the ``k`` best per antecedent by lift,
    then confidence; consequents only among ``allowed``.

    Pair counts are Bᵀ B of the basket matrix B, a chunk of antecedents at a time."""
    baskets = basket_matrix(order, product, products)
    total = baskets.shape[0]
    held = np.asarray(baskets.sum(axis=0), dtype=np.float64).ravel()
    by_product = sp.csc_matrix(baskets)
    parts: list[tuple[IntArray, ...]] = []
    for start in range(0, products, chunk_rows):
        stop = min(products, start + chunk_rows)
        if held[start:stop].max(initial=0.0) < min_pair_orders:
            continue
        pairs = sp.csr_matrix(by_product[:, start:stop].T @ baskets)
        local = np.repeat(np.arange(stop - start), np.diff(pairs.indptr))
        ante = local + start
        cons = pairs.indices.astype(np.int64)
        count = np.rint(pairs.data).astype(np.int64)
        keep = (cons != ante) & (count >= min_pair_orders)
        if allowed is not None:
            keep &= allowed[cons]
        parts.append((ante[keep], cons[keep], count[keep]))
    if not parts:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Rules(empty_i, empty_i, empty_i, empty_f, empty_f, empty_f)
    ante = np.concatenate([p[0] for p in parts])
    cons = np.concatenate([p[1] for p in parts])
    count = np.concatenate([p[2] for p in parts])
    support = count / total
    confidence = count / held[ante]
    lift = confidence / (held[cons] / total)
    order_ = np.lexsort((cons, -confidence, -lift, ante))
    ante, cons, count = ante[order_], cons[order_], count[order_]
    support, confidence, lift = support[order_], confidence[order_], lift[order_]
    # Rank within each antecedent: position minus the antecedent's first position.
    first = np.searchsorted(ante, ante, side="left")
    keep = (np.arange(ante.shape[0]) - first) < k
    return Rules(
        antecedent=ante[keep],
        consequent=cons[keep],
        orders=count[keep],
        support=support[keep],
        confidence=confidence[keep],
        lift=lift[keep],
    )


# --- popularity -------------------------------------------------------------------------------


def popularity(
    data: TrainingData, catalogue: Catalogue, settings: RecommendationSettings
) -> FloatArray:
    """Each product's time-decayed popularity: Σ w · 2^(-age / h) over its order lines
    (w = ``settings.purchase_weight``) and its behaviour events (w by kind), h =
    ``settings.popularity_half_life_days``."""
    now = data.now.timestamp()
    h = settings.popularity_half_life_days
    scores = np.zeros(catalogue.size, dtype=np.float64)
    b, p = data.behaviour, data.purchases
    for product, weight, at in (
        (p.product, np.full(p.product.shape[0], settings.purchase_weight), p.at),
        (b.product, b.weight, b.at),
    ):
        pos = catalogue.index(product)
        keep = pos >= 0
        np.add.at(scores, pos[keep], weight[keep] * decay(now - at[keep], h))
    return scores


def popular_per_category(
    scores: FloatArray,
    catalogue: Catalogue,
    ancestors: Mapping[int, Sequence[int]],
    *,
    top: int = POPULAR_TOP,
) -> dict[int | None, tuple[IntArray, FloatArray]]:
    """The ``top`` most popular active products of the whole shop (key None) and of each
    category's subtree (the category and its descendants): (positions, scores), best first,
    ties by lower product id. Products with no popularity are left out."""
    eligible = np.flatnonzero(catalogue.active & (scores > 0))

    def best(members: IntArray) -> tuple[IntArray, FloatArray]:
        order = np.lexsort((members, -scores[members]))[:top]
        chosen = members[order]
        return chosen, scores[chosen]

    ranked: dict[int | None, tuple[IntArray, FloatArray]] = {None: best(eligible)}
    cats = catalogue.category[eligible]
    members: dict[int, list[IntArray]] = {}
    for cat in np.unique(cats[cats >= 0]).tolist():
        here = eligible[cats == cat]
        for key in (cat, *ancestors.get(cat, ())):
            members.setdefault(key, []).append(here)
    for key, groups in members.items():
        ranked[key] = best(np.concatenate(groups))
    return ranked


# --- repurchase cycles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycles:
    """Per product (catalogue position) with enough buyers: its buyers, repeat buyers, the
    median gap in days (NaN when nobody bought it twice) and whether it is consumable."""

    product: IntArray
    buyers: IntArray
    repeat_buyers: IntArray
    interval_days: FloatArray
    consumable: BoolArray

    @property
    def size(self) -> int:
        return int(self.product.shape[0])


def repurchase_cycles(
    customer: IntArray,
    order: IntArray,
    product: IntArray,
    at: FloatArray,
    *,
    min_buyers: int = MIN_CYCLE_BUYERS,
    repeat_share: float,
) -> Cycles:
    """Per product: buyers (distinct customers), repeat buyers (customers with two or more
    distinct orders of it), the median of the gaps in days between one customer's
    consecutive orders of it (all customers' gaps pooled), and consumable = repeat buyers /
    buyers ≥ ``repeat_share``. Products with fewer than ``min_buyers`` buyers have none.
    ``product`` holds catalogue positions; -1 rows are left out."""
    keep = product >= 0
    cust, ords, prod, when = customer[keep], order[keep], product[keep], at[keep]
    # One row per (product, customer, order), in time order within each (product, customer).
    rank = np.lexsort((ords, when, cust, prod))
    cust, ords, prod, when = cust[rank], ords[rank], prod[rank], when[rank]
    if prod.shape[0]:
        fresh = np.ones(prod.shape[0], dtype=np.bool_)
        fresh[1:] = (prod[1:] != prod[:-1]) | (cust[1:] != cust[:-1]) | (ords[1:] != ords[:-1])
        cust, ords, prod, when = cust[fresh], ords[fresh], prod[fresh], when[fresh]
    n = prod.shape[0]
    same = np.zeros(n, dtype=np.bool_)  # row i is the same buyer's next order of it
    if n:
        same[1:] = (prod[1:] == prod[:-1]) & (cust[1:] == cust[:-1])
    # Buyer runs: one per (product, customer).
    starts = np.flatnonzero(~same)
    run_product = prod[starts]
    run_orders = np.diff(np.append(starts, n))
    products = np.unique(run_product)
    buyers = np.bincount(np.searchsorted(products, run_product), minlength=products.shape[0])
    repeaters = np.bincount(
        np.searchsorted(products, run_product[run_orders >= 2]), minlength=products.shape[0]
    )
    # Gaps: each row that follows the same buyer's previous order of the product.
    gap_rows = np.flatnonzero(same)
    gaps = (when[gap_rows] - when[gap_rows - 1]) / DAY
    gap_product = np.searchsorted(products, prod[gap_rows])
    order_ = np.lexsort((gaps, gap_product))
    gaps, gap_product = gaps[order_], gap_product[order_]
    counts = np.bincount(gap_product, minlength=products.shape[0])
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    interval = np.full(products.shape[0], np.nan)
    has = counts > 0
    lo = first[has] + (counts[has] - 1) // 2
    hi = first[has] + counts[has] // 2
    interval[has] = (gaps[lo] + gaps[hi]) / 2.0
    enough = buyers >= min_buyers
    share = repeaters / np.maximum(buyers, 1)
    return Cycles(
        product=products[enough].astype(np.int64),
        buyers=buyers[enough].astype(np.int64),
        repeat_buyers=repeaters[enough].astype(np.int64),
        interval_days=interval[enough],
        consumable=(share >= repeat_share)[enough],
    )


# --- everything -------------------------------------------------------------------------------


def _neighbour_lists(
    found: dict[int, list[Neighbour]], top: TopK, ids: list[int], source: NeighbourSource
) -> None:
    for r, c, s in zip(top.row.tolist(), top.col.tolist(), top.score.tolist(), strict=True):
        found.setdefault(ids[r], []).append(Neighbour(ids[c], s, source))


def fit(
    data: TrainingData,
    settings: RecommendationSettings,
    progress: Note | None = None,
    *,
    timings: dict[str, float] | None = None,
) -> Models:
    """Every component fitted on ``data``: the :class:`Models` a rebuild writes (and the
    offline evaluation serves from memory). ``progress`` hears of each of
    :data:`FIT_STEPS` components as it is done; ``timings`` (when given) gets the seconds
    each took."""
    catalogue = catalogue_of(data.products)
    ids: list[int] = catalogue.ids.tolist()
    ancestors = category_ancestors(data.parents)
    models = Models()
    seconds = timings if timings is not None else {}

    def done(step: str, began: float, what: str) -> None:
        seconds[step] = time.perf_counter() - began
        if progress is not None:
            progress(f"{what} ({seconds[step]:.1f} s)")

    began = time.perf_counter()
    cf = collaborative_neighbours(data, catalogue, settings)
    _neighbour_lists(models.neighbours, cf, ids, NeighbourSource.CF)
    done("cf", began, f"collaborative filtering: {cf.size:,} neighbours")

    began = time.perf_counter()
    ordered = sorted(data.products, key=lambda p: p.id)
    content = content_neighbours(
        ordered, data.category_names, ancestors, settings.neighbours, allowed=catalogue.active
    )
    _neighbour_lists(models.neighbours, content, ids, NeighbourSource.CONTENT)
    for near in models.neighbours.values():
        near.sort(key=lambda n: -n.score)  # stable: each source keeps its own order
    done("content", began, f"content similarity: {content.size:,} neighbours")

    began = time.perf_counter()
    p = data.purchases
    rules = association_rules(
        p.order,
        catalogue.index(p.product),
        catalogue.size,
        min_pair_orders=settings.min_pair_orders,
        k=settings.neighbours,
        allowed=catalogue.active,
    )
    for a, c, n, s, conf, lift in zip(
        rules.antecedent.tolist(),
        rules.consequent.tolist(),
        rules.orders.tolist(),
        rules.support.tolist(),
        rules.confidence.tolist(),
        rules.lift.tolist(),
        strict=True,
    ):
        models.rules.setdefault(ids[a], []).append(Rule(ids[a], ids[c], n, s, conf, lift))
    done("rules", began, f"association rules: {rules.size:,}")

    began = time.perf_counter()
    ranked = popular_per_category(popularity(data, catalogue, settings), catalogue, ancestors)
    for key, (positions, scores) in ranked.items():
        models.popular[key] = [
            Popular(ids[i], s) for i, s in zip(positions.tolist(), scores.tolist(), strict=True)
        ]
    done(
        "popularity",
        began,
        f"popularity: {sum(len(v) for v in models.popular.values()):,} rows, "
        f"{len(models.popular):,} lists",
    )

    began = time.perf_counter()
    cycles = repurchase_cycles(
        p.customer,
        p.order,
        catalogue.index(p.product),
        p.at,
        repeat_share=settings.consumable_repeat_share,
    )
    for i, buyers, repeat, interval, consumable in zip(
        cycles.product.tolist(),
        cycles.buyers.tolist(),
        cycles.repeat_buyers.tolist(),
        cycles.interval_days.tolist(),
        cycles.consumable.tolist(),
        strict=True,
    ):
        models.cycles[ids[i]] = Cycle(
            ids[i], buyers, repeat, None if math.isnan(interval) else interval, consumable
        )
    done(
        "cycles",
        began,
        f"repurchase cycles: {cycles.size:,} products, {int(cycles.consumable.sum()):,} consumable",
    )

    models.products = {
        p_.id: ProductFacts(p_.id, p_.category_id, p_.created_at) for p_ in data.products
    }
    models.categories = ancestors
    return models
