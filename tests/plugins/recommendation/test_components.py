"""The recommendation components on small data whose right answers are worked out by hand
(the working is in each test)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from plugins.recommendation.models import NeighbourSource
from plugins.recommendation.service import components as c
from plugins.recommendation.service.data import Behaviour, ProductRow, Purchases, TrainingData
from plugins.recommendation.service.settings import RecommendationSettings

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
T = NOW.timestamp()
DAY = 86_400.0


def product(
    pid: int,
    name: str = "",
    *,
    category: int | None = None,
    brand: str | None = None,
    tags: tuple[str, ...] = (),
    attributes: dict[str, object] | None = None,
    active: bool = True,
) -> ProductRow:
    return ProductRow(
        id=pid,
        name=name or f"p{pid}",
        description="",
        category_id=category,
        brand=brand,
        tags=tags,
        attributes=attributes or {},
        created_at=NOW - timedelta(days=100),
        is_active=active,
    )


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def floats(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def training(
    products: list[ProductRow],
    *,
    purchases: tuple[list[int], list[int], list[int], list[float]] = ([], [], [], []),
    behaviour: tuple[list[int], list[int], list[float], list[float]] = ([], [], [], []),
    parents: dict[int, int | None] | None = None,
    names: dict[int, str] | None = None,
) -> TrainingData:
    pc, po, pp, pa = purchases
    bv, bp, bw, ba = behaviour
    return TrainingData(
        products=products,
        parents=parents or {},
        category_names=names or {},
        purchases=Purchases(ints(*pc), ints(*po), ints(*pp), floats(*pa)),
        behaviour=Behaviour(ints(*bv), ints(*bp), floats(*bw), floats(*ba)),
        now=NOW,
    )


def pairs(top: c.TopK) -> dict[int, list[tuple[int, float]]]:
    found: dict[int, list[tuple[int, float]]] = {}
    for r, col, s in zip(top.row.tolist(), top.col.tolist(), top.score.tolist(), strict=True):
        found.setdefault(r, []).append((col, s))
    return found


def test_decay_halves_every_half_life_and_never_grows():
    assert c.decay(30 * DAY, 30.0) == pytest.approx(0.5)
    assert c.decay(60 * DAY, 30.0) == pytest.approx(0.25)
    assert c.decay(-5 * DAY, 30.0) == pytest.approx(1.0)  # a clock ahead is "now"


def test_the_feedback_matrix_sums_decayed_weights_per_visitor_and_product():
    # Visitor 5 viewed product 0 just now (1) and carted it 30 days ago (3 · ½ = 1.5);
    # an anonymous session (-1) favourited product 1 (4). Rows by visitor id: -1, then 5.
    m = c.feedback_matrix(
        ints(5, 5, -1, 7),
        ints(0, 0, 1, -1),  # the last is a product the catalogue does not know: left out
        floats(1, 3, 4, 9),
        floats(T, T - 30 * DAY, T, T),
        now=T,
        half_life_days=30.0,
        products=2,
    ).toarray()
    assert m.tolist() == [[0.0, 4.0], [2.5, 0.0]]


# Items × features. cos(A, B) = 1 / (√2 · 1) = 0.70711; cos(A, C) = 1 / (√2 · √2) = 0.5;
# cos(B, C) = 0; D has no feature.
ABCD = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=np.float64))


@pytest.mark.parametrize("chunk_rows", [1, 3, 1024])
def test_top_k_cosine_finds_each_rows_nearest_rows_chunk_by_chunk(chunk_rows: int):
    found = pairs(c.top_k_cosine(ABCD, 2, chunk_rows=chunk_rows))
    assert found.keys() == {0, 1, 2}  # D is nobody's neighbour and has none
    assert [j for j, _ in found[0]] == [1, 2]
    assert [s for _, s in found[0]] == pytest.approx([1 / math.sqrt(2), 0.5])
    assert found[1] == [(0, pytest.approx(1 / math.sqrt(2)))]  # C shares nothing with B
    assert found[2] == [(0, pytest.approx(0.5))]


def test_top_k_cosine_keeps_k_shrinks_and_skips_what_is_not_allowed():
    top1 = pairs(c.top_k_cosine(ABCD, 1))
    assert top1[0] == [(1, pytest.approx(0.70711, abs=1e-5))]
    # λ = 1: A·B / (‖A‖‖B‖ + 1) = 1 / (√2 + 1) = 0.41421; A·C / (2 + 1) = 0.33333.
    shrunk = pairs(c.top_k_cosine(ABCD, 2, shrinkage=1.0))
    assert [s for _, s in shrunk[0]] == pytest.approx([0.41421, 0.33333], abs=1e-5)
    # B may not be a neighbour: A's nearest is C; B still has its own (A).
    allowed = np.array([True, False, True, True])
    limited = pairs(c.top_k_cosine(ABCD, 1, allowed=allowed))
    assert limited[0] == [(2, pytest.approx(0.5))]
    assert limited[1] == [(0, pytest.approx(1 / math.sqrt(2)))]


def test_top_k_cosine_breaks_ties_by_the_lower_row():
    same = sp.csr_matrix(np.ones((4, 1)))
    found = pairs(c.top_k_cosine(same, 2))
    assert [j for j, _ in found[3]] == [0, 1]
    assert [j for j, _ in found[0]] == [1, 2]


def test_common_features_make_no_candidates_but_count_in_the_cosine():
    # f0 is in every row (more than candidate_df = 2 rows): it makes no pair candidates, but
    # counts in the cosine of the pairs that share a rarer feature. Features f0..f3:
    # A = (1, 1, 0, 1), B = (1, 1, 0, 0), C = (1, 0, 1, 1), D = (1, 0, 1, 0).
    # Candidates: A–B (f1), A–C (f3), C–D (f2). cos(A, B) = 2 / √6 = 0.81650,
    # cos(A, C) = 2 / 3, cos(C, D) = 2 / √6. B–D (cos ½) share only f0: not candidates.
    m = sp.csr_matrix(
        np.array([[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 1], [1, 0, 1, 0]], dtype=np.float64)
    )
    found = pairs(c.top_k_cosine_among_candidates(m, 3, candidate_df=2, chunk_rows=1))
    assert found == {
        0: [(1, pytest.approx(2 / math.sqrt(6))), (2, pytest.approx(2 / 3))],
        1: [(0, pytest.approx(2 / math.sqrt(6)))],
        2: [(3, pytest.approx(2 / math.sqrt(6))), (0, pytest.approx(2 / 3))],
        3: [(2, pytest.approx(2 / math.sqrt(6)))],
    }
    # Every feature rare enough: every pair that shares one, as top_k_cosine finds them.
    everything = c.top_k_cosine_among_candidates(m, 3, candidate_df=4)
    assert pairs(everything) == pairs(c.top_k_cosine(m, 3))
    assert [j for j, _ in pairs(everything)[1]] == [0, 3, 2]  # B–D (½) and B–C (1/√6)
    # The pool: A's single best candidate over the rare features alone is B (1/√2 > ½).
    pooled = pairs(c.top_k_cosine_among_candidates(m, 1, candidate_df=2, pool=1))
    assert pooled[0] == [(1, pytest.approx(2 / math.sqrt(6)))]


def test_collaborative_filtering_on_weighted_decayed_feedback():
    # Views (weight 1): visitor 1 saw P10 and P20 now; visitor 2 saw P10 now and P20 30 days
    # ago (½); an anonymous session saw P20 and P30 now. Columns: P10 = (1, 1, 0),
    # P20 = (1, ½, 1), P30 = (0, 0, 1) over visitors (1, 2, session).
    # cos(P10, P20) = 1.5 / (√2 · 1.5) = 0.70711; cos(P20, P30) = 1 / 1.5 = 0.66667.
    # With λ = 1: 1.5 / (√2 · 1.5 + 1) = 0.48056 and 1 / (1.5 + 1) = 0.4.
    # P40 (archived) was seen with P10 by visitor 1: it is nobody's neighbour.
    data = training(
        [product(10), product(20), product(30), product(40, active=False)],
        behaviour=(
            [1, 1, 2, 2, -1, -1, 1],
            [10, 20, 10, 20, 20, 30, 40],
            [1, 1, 1, 1, 1, 1, 1],
            [T, T, T, T - 30 * DAY, T, T, T],
        ),
    )
    settings = RecommendationSettings(half_life_days=30, neighbours=5)
    catalogue = c.catalogue_of(data.products)
    plain = pairs(c.collaborative_neighbours(data, catalogue, settings, shrinkage=0.0))
    assert plain[0] == [(1, pytest.approx(0.70711, abs=1e-5))]
    assert plain[1] == [(0, pytest.approx(0.70711, abs=1e-5)), (2, pytest.approx(2 / 3))]
    assert plain[2] == [(1, pytest.approx(2 / 3))]
    assert 3 in plain and all(j != 3 for near in plain.values() for j, _ in near)
    shrunk = pairs(c.collaborative_neighbours(data, catalogue, settings, shrinkage=1.0))
    assert shrunk[1] == [(0, pytest.approx(0.48056, abs=1e-5)), (2, pytest.approx(0.4))]


def test_purchases_are_feedback_with_the_purchase_weight():
    # Customer 1 viewed P1 and bought P2 (weight 6); customer 2 viewed P2 (1) and P3 (1).
    # P1 = (1, 0), P2 = (6, 1), P3 = (0, 1): cos(P1, P2) = 6 / √37 = 0.98639,
    # cos(P2, P3) = 1 / √37 = 0.16440.
    data = training(
        [product(1), product(2), product(3)],
        purchases=([1], [100], [2], [T]),
        behaviour=([1, 2, 2], [1, 2, 3], [1, 1, 1], [T, T, T]),
    )
    settings = RecommendationSettings(purchase_weight=6.0)
    found = pairs(
        c.collaborative_neighbours(data, c.catalogue_of(data.products), settings, shrinkage=0)
    )
    assert found[1] == [
        (0, pytest.approx(6 / math.sqrt(37))),
        (2, pytest.approx(1 / math.sqrt(37))),
    ]


def test_content_documents_read_every_field():
    rows = [
        product(
            1,
            "有机绿茶 250g",
            category=3,
            brand="西湖",
            tags=("春茶", "礼盒"),
            attributes={"产地": "杭州", "规格": ["250g", 2], "空": None},
        ),
        product(2, "Espresso beans"),
    ]
    docs = c.content_documents(rows, {1: "食品", 2: "饮品", 3: "茶叶"}, {3: [2, 1]})
    assert docs == {
        "name": ["有机绿茶 250g", "Espresso beans"],
        "category": ["食品 饮品 茶叶", ""],  # root first
        "brand": ["西湖", ""],
        "tags": ["春茶 礼盒", ""],
        "attributes": ["杭州 250g 2", ""],
    }


def test_content_similarity_weighs_category_and_brand_up():
    # Fields with unit-length TF-IDF vectors scaled by weight: name 1, category 1.5, brand
    # 1.25 (no product has tags or attributes), so ‖x‖² = 1 + 2.25 + 1.5625 = 4.8125 for a
    # product with all three. A and B share category and brand, not one n-gram of their
    # names: cos = (2.25 + 1.5625) / 4.8125 = 0.79221. A and C share only their name:
    # cos = 1 / 4.8125 = 0.20779.
    rows = [
        product(1, "apple", category=1, brand="Acme"),
        product(2, "xyz", category=1, brand="Acme"),
        product(3, "apple", category=2, brand="Other"),
    ]
    found = pairs(c.content_neighbours(rows, {1: "Fruit", 2: "Tools"}, {1: [], 2: []}, 5))
    assert found[0] == [(1, pytest.approx(3.8125 / 4.8125)), (2, pytest.approx(1 / 4.8125))]
    assert found[1] == [(0, pytest.approx(3.8125 / 4.8125))]  # B and C share nothing


def test_content_similarity_reads_chinese_and_english_without_a_tokenizer():
    rows = [
        product(1, "有机绿茶 礼盒装"),
        product(2, "西湖龙井绿茶"),
        product(3, "意式咖啡豆"),
        product(4, "Green tea gift box"),
        product(5, "Green tea bags"),
        product(6, "Espresso coffee beans"),
    ]
    found = pairs(c.content_neighbours(rows, {}, {}, 1))
    assert found[0][0][0] == 1  # 有机绿茶 → 龙井绿茶 (the word 绿茶), not coffee
    assert found[3][0][0] == 4  # green tea → green tea


def test_content_neighbours_of_one_product_match_the_full_computation():
    rows = [
        product(1, "apple", category=1, brand="Acme"),
        product(2, "xyz", category=1, brand="Acme"),
        product(3, "apple", category=2, brand="Other"),
        product(4, "apple", category=1, brand="Acme", active=False),
    ]
    names, ancestors = {1: "Fruit", 2: "Tools"}, {1: [], 2: []}
    found = c.content_neighbours_of(rows[0], rows, names, ancestors, 5)
    # Itself and the archived product are left out; the others as above.
    assert found == [(2, pytest.approx(3.8125 / 4.8125)), (3, pytest.approx(1 / 4.8125))]
    assert c.content_neighbours_of(rows[0], rows[:1], names, ancestors, 5) == []


def test_association_rules_by_hand():
    # Orders: {A, B} (A on two lines: counts once), {A, B}, {A, C}, {B}, {A, B, C}.
    # N = 5; n_A = 4, n_B = 4, n_C = 2; n_AB = 3, n_AC = 2, n_BC = 1 (below 2: no rule).
    # A → B: support 3/5, confidence 3/4, lift 0.75 / 0.8 = 0.9375 (and B → A alike);
    # A → C: support 2/5, confidence 2/4, lift 0.5 / 0.4 = 1.25; C → A: confidence 1,
    # lift 1 / 0.8 = 1.25.
    A, B, C = 0, 1, 2
    order = ints(1, 1, 1, 2, 2, 3, 3, 4, 5, 5, 5)
    prod = ints(A, A, B, A, B, A, C, B, A, B, C)
    rules = c.association_rules(order, prod, 3, min_pair_orders=2, k=10)
    got = {
        (a, b): (n, s, conf, lift)
        for a, b, n, s, conf, lift in zip(
            rules.antecedent.tolist(),
            rules.consequent.tolist(),
            rules.orders.tolist(),
            rules.support.tolist(),
            rules.confidence.tolist(),
            rules.lift.tolist(),
            strict=True,
        )
    }
    assert got == {
        (A, C): (2, pytest.approx(0.4), pytest.approx(0.5), pytest.approx(1.25)),
        (A, B): (3, pytest.approx(0.6), pytest.approx(0.75), pytest.approx(0.9375)),
        (B, A): (3, pytest.approx(0.6), pytest.approx(0.75), pytest.approx(0.9375)),
        (C, A): (2, pytest.approx(0.4), pytest.approx(1.0), pytest.approx(1.25)),
    }
    # By lift within the antecedent: A → C before A → B; k = 1 keeps A → C.
    assert rules.antecedent.tolist() == [A, A, B, C]
    assert rules.consequent.tolist()[:2] == [C, B]
    top1 = c.association_rules(order, prod, 3, min_pair_orders=2, k=1, chunk_rows=1)
    assert list(zip(top1.antecedent.tolist(), top1.consequent.tolist(), strict=True)) == [
        (A, C),
        (B, A),
        (C, A),
    ]
    # B → C (one order) appears once the threshold is 1; C may not be a consequent here.
    allowed = np.array([True, True, False])
    low = c.association_rules(order, prod, 3, min_pair_orders=1, k=10, allowed=allowed)
    assert (B, C) not in set(zip(low.antecedent.tolist(), low.consequent.tolist(), strict=True))
    assert (C, B) in set(zip(low.antecedent.tolist(), low.consequent.tolist(), strict=True))


def test_rules_of_equal_lift_rank_by_confidence():
    # N = 8; X in 5 orders, Y in 2 (both with X), Z in 4 (all with X).
    # lift X → Y = (2/5) / (2/8) = 1.6 = lift X → Z = (4/5) / (4/8); confidence 0.4 < 0.8.
    X, Y, Z, W = 0, 1, 2, 3
    baskets = [[X, Y, Z], [X, Y, Z], [X, Z], [X, Z], [X], [W], [W], [W]]
    order = ints(*[i for i, b in enumerate(baskets) for _ in b])
    prod = ints(*[p for b in baskets for p in b])
    rules = c.association_rules(order, prod, 4, min_pair_orders=2, k=10)
    x = rules.antecedent == X
    assert rules.consequent[x].tolist() == [Z, Y]
    assert rules.lift[x].tolist() == pytest.approx([1.6, 1.6])
    assert rules.confidence[x].tolist() == pytest.approx([0.8, 0.4])


def test_popularity_decays_and_ranks_per_category_subtree():
    # Tree: 1 (root) → 2, 3. P1 in 2: bought now (6) and viewed 7 days ago (1 · ½) = 6.5;
    # P2 in 3: viewed now = 1; P3 in 1: an event of weight 4 seven days ago, 4 · ½ = 2;
    # P4 in 2 is archived (6 + 4 = 10: never popular); P5 in 2 has nothing.
    data = training(
        [
            product(1, category=2),
            product(2, category=3),
            product(3, category=1),
            product(4, category=2, active=False),
            product(5, category=2),
        ],
        purchases=([9, 9], [1, 2], [1, 4], [T, T]),
        behaviour=([9, 9, 9, 9], [1, 2, 3, 4], [1, 1, 4, 4], [T - 7 * DAY, T, T - 7 * DAY, T]),
        parents={1: None, 2: 1, 3: 1},
    )
    settings = RecommendationSettings(purchase_weight=6, popularity_half_life_days=7)
    catalogue = c.catalogue_of(data.products)
    scores = c.popularity(data, catalogue, settings)
    assert scores.tolist() == pytest.approx([6.5, 1.0, 2.0, 10.0, 0.0])
    ranked = c.popular_per_category(scores, catalogue, c.category_ancestors(data.parents))
    as_lists = {k: v[0].tolist() for k, v in ranked.items()}
    assert as_lists == {None: [0, 2, 1], 1: [0, 2, 1], 2: [0], 3: [1]}
    assert ranked[1][1].tolist() == pytest.approx([6.5, 2.0, 1.0])
    top2 = c.popular_per_category(scores, catalogue, c.category_ancestors(data.parents), top=2)
    assert top2[None][0].tolist() == [0, 2]


def test_repurchase_cycles_by_hand():
    # Product X (0): customer 1 orders it on days 0, 10 and 30 (gaps 10, 20), customer 2 on
    # days 0 and 14 (gap 14), customer 5 on days 3 and 19 (gap 16), customer 3 once,
    # customer 4 twice in one order (one order). Buyers 5, repeat buyers 3, gaps
    # 10, 14, 16, 20: median 15; 3/5 ≥ 0.5 → consumable.
    # Product Y (1): three customers once each: a cycle of no interval, not consumable.
    # Product Z (2): two buyers (one twice): too few buyers for a cycle.
    rows = [
        (1, 1, 0, 0),
        (1, 2, 0, 10),
        (1, 3, 0, 30),
        (2, 4, 0, 0),
        (2, 5, 0, 14),
        (5, 6, 0, 3),
        (5, 7, 0, 19),
        (3, 8, 0, 5),
        (4, 9, 0, 6),
        (4, 9, 0, 6),
        (1, 1, 1, 0),
        (2, 4, 1, 0),
        (3, 8, 1, 5),
        (6, 10, 2, 1),
        (6, 11, 2, 9),
        (7, 12, 2, 2),
    ]
    cust, order, prod, day = (list(col) for col in zip(*rows, strict=True))
    cycles = c.repurchase_cycles(
        ints(*cust), ints(*order), ints(*prod), floats(*[d * DAY for d in day]), repeat_share=0.5
    )
    assert cycles.product.tolist() == [0, 1]
    assert cycles.buyers.tolist() == [5, 3]
    assert cycles.repeat_buyers.tolist() == [3, 0]
    assert cycles.interval_days[0] == pytest.approx(15.0)
    assert math.isnan(cycles.interval_days[1])
    assert cycles.consumable.tolist() == [True, False]
    # An odd count of gaps: the middle one (customer 5 left out: 10, 14, 20 → 14).
    keep = [i for i, r in enumerate(rows) if r[0] != 5]
    odd = c.repurchase_cycles(
        ints(*[cust[i] for i in keep]),
        ints(*[order[i] for i in keep]),
        ints(*[prod[i] for i in keep]),
        floats(*[day[i] * DAY for i in keep]),
        repeat_share=0.5,
    )
    assert odd.interval_days[0] == pytest.approx(14.0)
    assert odd.consumable.tolist() == [True, False]  # 2/4 ≥ 0.5
    # Two buyers are enough when the minimum says so: Z's gap is 8 days.
    two = c.repurchase_cycles(
        ints(*cust),
        ints(*order),
        ints(*prod),
        floats(*[d * DAY for d in day]),
        min_buyers=2,
        repeat_share=0.5,
    )
    assert two.product.tolist() == [0, 1, 2]
    assert two.interval_days[2] == pytest.approx(8.0)


def test_fit_runs_every_component_under_product_ids():
    # Non-contiguous ids: every result is reported under product ids, not positions.
    products = [
        product(101, "有机绿茶", category=7, brand="西湖"),
        product(205, "龙井绿茶", category=7, brand="西湖"),
        product(309, "咖啡豆", category=8, brand="云南"),
    ]
    # Three customers each buy green tea and longjing together (2 orders each over 20
    # days): rules both ways, CF both ways, cycles of 20 days for both.
    purchases: tuple[list[int], list[int], list[int], list[float]] = ([], [], [], [])
    order_id = 0
    for cust in (1, 2, 3):
        for day in (0, 20):
            order_id += 1
            for pid in (101, 205):
                purchases[0].append(cust)
                purchases[1].append(order_id)
                purchases[2].append(pid)
                purchases[3].append(T - (40 - day) * DAY)
    data = training(
        products,
        purchases=purchases,
        behaviour=([-1], [309], [1.0], [T]),
        parents={6: None, 7: 6, 8: 6},
        names={6: "食品", 7: "茶叶", 8: "咖啡"},
    )
    notes: list[str] = []
    timings: dict[str, float] = {}
    models = c.fit(data, RecommendationSettings(), notes.append, timings=timings)
    assert len(notes) == c.FIT_STEPS
    assert set(timings) == {"cf", "content", "rules", "popularity", "cycles"}
    tea = models.neighbours[101]
    assert {(n.product_id, n.source) for n in tea} >= {
        (205, NeighbourSource.CF),
        (205, NeighbourSource.CONTENT),
    }
    assert [n.score for n in tea] == sorted((n.score for n in tea), reverse=True)
    assert [(r.consequent_id, r.orders) for r in models.rules[101]] == [(205, 6)]
    assert models.rules[101][0].confidence == pytest.approx(1.0)
    assert models.cycles[101].interval_days == pytest.approx(20.0)
    assert models.cycles[101].consumable and models.cycles[101].repeat_buyers == 3
    assert 309 not in models.cycles
    assert [p.product_id for p in models.popular[None]][:2] == [101, 205]
    assert {p.product_id for p in models.popular[6]} == {101, 205, 309}
    assert [p.product_id for p in models.popular[8]] == [309]
    assert models.products[309].category_id == 8
    assert models.categories == {6: [], 7: [6], 8: [6]}


def test_fit_on_an_empty_shop_fits_nothing():
    models = c.fit(training([]), RecommendationSettings())
    assert models.neighbours == {} and models.rules == {} and models.cycles == {}
    assert models.popular == {None: []}
