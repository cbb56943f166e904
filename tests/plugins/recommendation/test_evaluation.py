"""The offline evaluation's parts on tiny data where every answer is computed by hand: the
metrics, the two splits (what training keeps, what is held out, which visit is the session
profile) and the baselines."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from plugins.recommendation.models import NeighbourSource
from plugins.recommendation.service.data import (
    Behaviour,
    ProductRow,
    Purchases,
    TrainingData,
)
from plugins.recommendation.service.evaluation import (
    ITEM_KNN,
    POPULAR,
    RECENCY_FREQUENCY,
    TOP_FREQUENCY,
    TOP_FREQUENCY_POPULAR,
    Case,
    Split,
    baselines,
    default_cut,
    hit_at,
    item_knn,
    ndcg_at,
    popularity,
    recall_at,
    recency_frequency,
    score,
    split_last_order,
    split_time,
    top_frequency,
    touch_kind,
)
from plugins.recommendation.service.settings import RecommendationSettings
from plugins.recommendation.service.store import Models, Neighbour

DAY = 86400.0
MINUTE = 60.0
HOUR = 3600.0
SETTINGS = RecommendationSettings()  # session_minutes 30, half_life_days 30


def lg(i: int) -> float:
    """The discount of rank i (1-based): 1 / log2(i + 1)."""
    return 1 / math.log2(i + 1)


# --- metrics -------------------------------------------------------------------------------


def test_recall_is_the_share_of_the_basket_in_the_top_ten() -> None:
    ranked = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20]
    assert recall_at(ranked, {2, 20}) == 0.5  # 20 is eleventh: not in the top ten
    assert recall_at(ranked, {1, 2, 3, 4}) == 1.0
    assert recall_at([], {1}) == 0.0


def test_ndcg_discounts_by_rank_against_the_ideal_order() -> None:
    # Hits at ranks 2 and 3 of a basket of three: DCG = 1/log2(3) + 1/log2(4); the ideal
    # puts three hits first: 1 + 1/log2(3) + 1/log2(4).
    assert ndcg_at([5, 2, 7], {2, 7, 9}) == pytest.approx((lg(2) + lg(3)) / (lg(1) + lg(2) + lg(3)))
    assert ndcg_at([2, 5], {2}) == 1.0
    assert ndcg_at([5, 2], {2}) == pytest.approx(lg(2))  # 0.6309
    # A basket of twelve: the ideal DCG counts ten relevant items, not twelve.
    basket = set(range(100, 112))
    assert ndcg_at(list(range(100, 110)), basket) == 1.0
    assert ndcg_at([1, 100], basket) == pytest.approx(lg(2) / sum(lg(i) for i in range(1, 11)))


def test_hit_rate_is_one_when_anything_in_the_top_ten_was_bought() -> None:
    assert hit_at([1, 2, 3], {3, 4}) == 1.0
    assert hit_at([1, 2, 3], {4}) == 0.0
    assert hit_at(list(range(1, 12)), {11}) == 0.0


def test_score_averages_over_cases_and_splits_repeat_from_new_items() -> None:
    # Customer 1 bought 1 and 2 before; basket {1, 3}: 1 is a repeat item, 3 a new one.
    # Customer 2 bought 5 before; basket {6}: new only.
    one = Case(1, 10, 100.0, frozenset({1, 3}), ((1, 1, 0.0), (1, 2, 0.0)))
    two = Case(2, 20, 100.0, frozenset({6}), ((2, 5, 0.0),))
    rankings = {1: [3, 2, 1], 2: [7, 5]}
    got = score(rankings, [one, two], active_products=8)
    # recall: customer 1 finds both (1.0), customer 2 none (0.0).
    assert got["recall@10"] == 0.5
    assert got["hit@10"] == 0.5
    # NDCG of customer 1: hits at ranks 1 and 3, ideal two hits first.
    ndcg1 = (lg(1) + lg(3)) / (lg(1) + lg(2))
    assert got["ndcg@10"] == pytest.approx(ndcg1 / 2)
    # Repeat items: only customer 1 has one (item 1, at rank 3).
    assert got["recall@10_repeat"] == 1.0
    assert got["ndcg@10_repeat"] == pytest.approx(lg(3))
    assert got["hit@10_repeat"] == 1.0
    # New items: customer 1's 3 at rank 1, customer 2's 6 not found.
    assert got["recall@10_new"] == 0.5
    assert got["ndcg@10_new"] == pytest.approx(0.5)
    # Coverage: 3, 2, 1, 7, 5 recommended of 8 products; 2, 1 and 5 to someone who bought
    # them (repeat), 3 and 7 to someone who had not.
    assert got["coverage"] == 5 / 8
    assert got["coverage_repeat"] == 3 / 8
    assert got["coverage_new"] == 2 / 8


# --- data ----------------------------------------------------------------------------------


def product(pid: int, category: int | None = 1, active: bool = True) -> ProductRow:
    return ProductRow(
        id=pid,
        name=f"p{pid}",
        description="",
        category_id=category,
        brand=None,
        tags=(),
        attributes={},
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        is_active=active,
    )


def data_of(
    lines: list[tuple[int, int, int, float]], events: list[tuple[int, int, float, float]]
) -> TrainingData:
    """``lines``: (customer, order, product, day); ``events``: (visitor, product, weight,
    seconds)."""
    lines = sorted(lines, key=lambda row: row[3])
    return TrainingData(
        products=[product(p) for p in range(1, 11)] + [product(11, active=False)],
        parents={1: None},
        category_names={1: "c"},
        purchases=Purchases(
            customer=np.array([c for c, _, _, _ in lines], dtype=np.int64),
            order=np.array([o for _, o, _, _ in lines], dtype=np.int64),
            product=np.array([p for _, _, p, _ in lines], dtype=np.int64),
            at=np.array([d * DAY for _, _, _, d in lines], dtype=np.float64),
        ),
        behaviour=Behaviour(
            visitor=np.array([v for v, _, _, _ in events], dtype=np.int64),
            product=np.array([p for _, p, _, _ in events], dtype=np.int64),
            weight=np.array([w for _, _, w, _ in events], dtype=np.float64),
            at=np.array([t for _, _, _, t in events], dtype=np.float64),
        ),
        now=datetime.fromtimestamp(30 * DAY, UTC),
    )


# Customer 1: orders 11 (day 1: products 1, 2), 12 (day 5: 1, 3), 13 (day 9: 1, 4).
# Customer 2: one order, 21 (day 6: 2, 5). Customer 3: orders 31 (day 2: 6), 32 (day 8: 6, 7).
LINES = [
    (1, 11, 1, 1.0),
    (1, 11, 2, 1.0),
    (1, 12, 1, 5.0),
    (1, 12, 3, 5.0),
    (1, 13, 1, 9.0),
    (1, 13, 4, 9.0),
    (2, 21, 2, 6.0),
    (2, 21, 5, 6.0),
    (3, 31, 6, 2.0),
    (3, 32, 6, 8.0),
    (3, 32, 7, 8.0),
]
NINE = 9 * DAY
EVENTS = [
    # Customer 1, day 7: a visit of two views (10 minutes apart) and a cart addition.
    (1, 8, 1.0, 7 * DAY),
    (1, 9, 1.0, 7 * DAY + 10 * MINUTE),
    (1, 8, 4.0, 7 * DAY + 20 * MINUTE),
    # Customer 1 before order 13: a view 30 hours before it (a visit of its own); a view 24
    # hours and 20 minutes before, 25 minutes before a view inside the day before the order
    # (the visit runs into the held-out window); the cart addition of 4, three hours before.
    (1, 10, 1.0, NINE - 30 * HOUR),
    (1, 3, 1.0, NINE - 24 * HOUR - 20 * MINUTE),
    (1, 4, 1.0, NINE - 24 * HOUR + 5 * MINUTE),
    (1, 4, 4.0, NINE - 3 * HOUR),
    # After the held-out order.
    (1, 5, 1.0, NINE + DAY),
    # Customer 2 (never tested): everything is kept; an anonymous visitor too.
    (2, 3, 1.0, 20 * DAY),
    (-7, 2, 1.0, 15 * DAY),
]


def test_last_order_split_holds_out_each_last_order_and_the_day_before_it() -> None:
    split = split_last_order(data_of(LINES, EVENTS), SETTINGS)
    assert split.name == "last"
    assert [(c.customer, c.order, c.basket) for c in split.cases] == [
        (1, 13, frozenset({1, 4})),
        (3, 32, frozenset({6, 7})),
    ]
    one = split.cases[0]
    assert one.at == NINE
    assert one.history == ((11, 1, 1 * DAY), (11, 2, 1 * DAY), (12, 1, 5 * DAY), (12, 3, 5 * DAY))
    assert one.bought == {1, 2, 3}
    # Held out with the order: the day before it and the visit running into that day. The
    # session profile is the visit before: the view 30 hours before.
    assert one.touches == ((10, 1.0, NINE - 30 * HOUR),)
    train = split.train
    kept = sorted(
        zip(train.purchases.order.tolist(), train.purchases.product.tolist(), strict=True)
    )
    # Orders 13 and 32 are gone; customer 2's only order stays.
    assert kept == [(11, 1), (11, 2), (12, 1), (12, 3), (21, 2), (21, 5), (31, 6)]
    events = sorted(zip(train.behaviour.visitor.tolist(), train.behaviour.at.tolist(), strict=True))
    # Customer 1 keeps the visits before the one that placed the order (which is gone, as
    # is what came after); customer 2 and the anonymous visitor keep theirs.
    assert events == [
        (-7, 15 * DAY),
        (1, 7 * DAY),
        (1, 7 * DAY + 10 * MINUTE),
        (1, 7 * DAY + 20 * MINUTE),
        (1, NINE - 30 * HOUR),
        (2, 20 * DAY),
    ]
    # Training ends with its latest row (customer 2's visit on day 20).
    assert train.now == datetime.fromtimestamp(20 * DAY, UTC)


def test_the_held_out_basket_never_reaches_training() -> None:
    data = data_of(LINES, EVENTS)
    split = split_last_order(data, SETTINGS)
    held = {c.order for c in split.cases}
    assert not held & set(split.train.purchases.order.tolist())
    for case in split.cases:
        rows = split.train.behaviour.visitor == case.customer
        assert (split.train.behaviour.at[rows] < case.at - 24 * HOUR).all()


def test_time_split_tests_each_customers_first_order_after_the_cut() -> None:
    data = data_of(LINES, EVENTS)
    split = split_time(data, SETTINGS, cut=5.5 * DAY)
    # Training: orders before day 5.5 (11, 12, 31) and events before it (none).
    assert sorted(set(split.train.purchases.order.tolist())) == [11, 12, 31]
    assert split.train.behaviour.at.size == 0
    # Customer 1's first order after the cut is 13, customer 3's is 32; customer 2 had no
    # purchase before the cut: not a test customer.
    assert [(c.customer, c.order) for c in split.cases] == [(1, 13), (3, 32)]
    assert split.cases[0].history[-1] == (12, 3, 5 * DAY)
    assert split.cases[0].touches == ()  # no visit before the cut


def test_default_cut_is_where_nine_tenths_of_the_orders_were_placed() -> None:
    data = data_of(LINES, EVENTS)
    # Six orders at days 1, 2, 5, 6, 8, 9: the sixth (index int(0.9·6) = 5) is day 9.
    assert default_cut(data) == NINE
    assert default_cut(data, 0.5) == 6 * DAY


def test_behaviour_weights_map_back_to_their_kinds() -> None:
    assert touch_kind(SETTINGS.cart_weight, SETTINGS) == "ADD_TO_CART"
    assert touch_kind(SETTINGS.favorite_weight, SETTINGS) == "FAVORITE"
    assert touch_kind(SETTINGS.view_weight, SETTINGS) == "VIEW"


# --- baselines -----------------------------------------------------------------------------


def case_of(history: list[tuple[int, int, float]], at: float = 10 * DAY) -> Case:
    return Case(1, 99, at, frozenset({1}), tuple((o, p, d * DAY) for o, p, d in history))


def test_popularity_counts_the_orders_a_product_was_in() -> None:
    data = data_of(LINES, [])
    # 1: three orders; 2 and 6: two; then 3, 4, 5, 7 once each (ties by id).
    assert popularity(data.purchases) == [1, 2, 6, 3, 4, 5, 7]


def test_top_frequency_counts_orders_and_breaks_ties_by_recency() -> None:
    case = case_of([(1, 5, 1.0), (2, 5, 2.0), (2, 6, 2.0), (3, 7, 3.0), (3, 8, 3.0)])
    # 5 in two orders; 6, 7, 8 in one: the more recent first (7 and 8 tie: by id).
    assert top_frequency(case) == [5, 7, 8, 6]


def test_recency_frequency_halves_a_purchase_each_half_life() -> None:
    # At day 40 with a 30-day half-life: 5 was bought on day 10 (weight 1/2) and day 40
    # (weight 1): 1.5; 6 on day 25 and 25: 2 · 2^(-15/30) = 1.414; 7 on day 39: 0.977.
    case = case_of([(1, 5, 10.0), (2, 6, 25.0), (2, 6, 25.0), (3, 7, 39.0), (4, 5, 40.0)], 40 * DAY)
    assert recency_frequency(case, 30.0) == [5, 6, 7]
    assert recency_frequency(case, 30.0, k=1) == [5]
    # With a 1-day half-life, only the last days count: 5 (day 40: 1) before 7 (day 39: 1/2).
    assert recency_frequency(case, 1.0) == [5, 7, 6]


def test_item_knn_sums_the_cf_neighbours_of_the_history() -> None:
    cf, content = NeighbourSource.CF, NeighbourSource.CONTENT
    models = Models(
        neighbours={
            1: [Neighbour(3, 0.5, cf), Neighbour(4, 0.4, cf), Neighbour(9, 0.9, content)],
            2: [Neighbour(4, 0.3, cf), Neighbour(5, 0.2, cf)],
        }
    )
    # Bought 1 once and 2 once, the same day as asked (weights 1): 3 → 0.5, 4 → 0.4 + 0.3,
    # 5 → 0.2; the content neighbour 9 is not item-kNN's.
    case = case_of([(1, 1, 10.0), (1, 2, 10.0)])
    assert item_knn(case, models, 30.0) == [4, 3, 5]


def test_baselines_fill_with_popular_products_where_the_history_is_short() -> None:
    data = data_of(LINES, [])
    split = Split("last", data, [case_of([(1, 7, 9.0), (2, 7, 9.5), (2, 3, 9.5)])])
    got = baselines(split, Models(), SETTINGS)
    assert got[POPULAR][1] == [1, 2, 6, 3, 4, 5, 7]
    assert got[TOP_FREQUENCY][1] == [7, 3]
    # Filled with the popular products it does not have, in their order.
    assert got[TOP_FREQUENCY_POPULAR][1] == [7, 3, 1, 2, 6, 4, 5]
    assert got[RECENCY_FREQUENCY][1] == [7, 3, 1, 2, 6, 4, 5]
    assert got[ITEM_KNN][1] == []


def test_time_split_holds_out_the_day_before_a_test_order_placed_soon_after_the_cut() -> None:
    data = data_of(LINES, EVENTS)
    split = split_time(data, SETTINGS, cut=NINE - 2 * HOUR)
    assert [(c.customer, c.order) for c in split.cases] == [(1, 13)]
    # Customer 1's cart addition 3 hours before order 13 is before the cut, but in the day
    # before the order: held out, with the visit running into that day.
    events = sorted(
        zip(split.train.behaviour.visitor.tolist(), split.train.behaviour.at.tolist(), strict=True)
    )
    assert events == [
        (1, 7 * DAY),
        (1, 7 * DAY + 10 * MINUTE),
        (1, 7 * DAY + 20 * MINUTE),
        (1, NINE - 30 * HOUR),
    ]
    assert split.cases[0].touches == ((10, 1.0, NINE - 30 * HOUR),)
