"""The hybrid's blend on hand-made models where every score is computed by hand: the repeat
share ρ, the repeat component's long-memory frequency and cycle, the distributions each
component becomes and the masses ρ and 1 − ρ they are weighed by."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from plugins.recommendation.models import Component, NeighbourSource, RecommendationContext
from plugins.recommendation.service.hybrid import (
    Ask,
    Purchase,
    Touch,
    Visitor,
    due,
    rank,
    repeat_share,
)
from plugins.recommendation.service.settings import BlendWeights, RecommendationSettings
from plugins.recommendation.service.store import (
    Cycle,
    MemoryStore,
    Models,
    Neighbour,
    ProductFacts,
    Rule,
)

NOW = datetime(2025, 3, 1, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)
SETTINGS = RecommendationSettings()  # half-life 30 days
BLEND = BlendWeights(repeat=1.0, bought_with=0.5, similar=2.0, popular=0.1, new=0.05)


def day(d: float) -> datetime:
    """Day ``d`` of a history that is at day 100 now."""
    return NOW - timedelta(days=100 - d)


def bought(*orders: tuple[int, float, tuple[int, ...]]) -> list[Purchase]:
    return [Purchase(o, p, day(d)) for o, d, products in orders for p in products]


def models() -> Models:
    cf, content = NeighbourSource.CF, NeighbourSource.CONTENT
    return Models(
        # 5 (viewed) → 6 (CF 0.8), 4 (content 0.4).
        neighbours={5: [Neighbour(6, 0.8, cf), Neighbour(4, 0.4, content)]},
        rules={5: [Rule(5, 6, 3, 0.1, 0.5, 2.0)]},
        # 1 comes back every 10 days; 2 is durable; 3 has no cycle.
        cycles={
            1: Cycle(1, 10, 8, 10.0, True),
            2: Cycle(2, 10, 0, None, False),
        },
        products={pid: ProductFacts(pid, 1, LONG_AGO) for pid in range(1, 7)},
        categories={1: []},
    )


def test_repeat_share_counts_the_products_of_later_orders_bought_before() -> None:
    # Orders {1, 2}, then {1, 3} (1 bought before), then {3} (3 bought before): 2 of 3.
    # ρ = (2 + 2 · 0.5) / (3 + 2) = 0.6.
    history = bought((1, 10, (1, 2)), (2, 20, (1, 3)), (3, 30, (3,)))
    assert repeat_share(history) == pytest.approx(0.6)
    # One order says nothing yet: the prior.
    assert repeat_share(bought((1, 10, (1, 2)))) == 0.5


def test_due_rises_to_the_cycle_and_fades_slowly_after_it() -> None:
    assert due(10, 10.0) == 1.0
    # Half-way: 0.25 + 0.75 · exp(−0.25 / 0.5).
    assert due(5, 10.0) == pytest.approx(0.25 + 0.75 * math.exp(-0.5))
    # Three cycles overdue: 0.25 + 0.75 · exp(−(4 − 1) / 3).
    assert due(40, 10.0) == pytest.approx(0.25 + 0.75 * math.exp(-1))
    assert due(3, None) == 1.0


async def test_each_component_is_a_distribution_weighed_by_the_repeat_share() -> None:
    # Orders at day 80 {1, 2} and day 90 {1, 3}: ρ = (1 + 1) / (2 + 2) = 0.5. A view of 5 a
    # day ago (anchor weight 1 · 2^(−1/1) = 0.5).
    visitor = Visitor(
        customer_id=1,
        purchases=bought((1, 80, (1, 2)), (2, 90, (1, 3))),
        touches=[Touch(5, "VIEW", NOW - timedelta(days=1))],
    )
    ranked = await rank(
        MemoryStore(models()),
        visitor,
        Ask(RecommendationContext.HOME, NOW),
        BLEND,
        SETTINGS,
    )
    # Repeat: each purchase counts 0.3 + 0.7 · 2^(−age / 30 days). 1: ages 20 and 10 days,
    # f = 0.6 + 0.7 · (0.629961 + 0.793701) = 1.596563, due 1 (bought 10 days ago, its
    # cycle); 3: f = 0.3 + 0.7 · 0.793701 = 0.855591 (no cycle: due 1); 2 is durable, bought
    # once: left out. Its distribution times ρ · weight 1.
    f1 = 0.6 + 0.7 * (2 ** (-20 / 30) + 2 ** (-10 / 30))
    f3 = 0.3 + 0.7 * 2 ** (-10 / 30)
    # Similar: 6 from 5 (0.5 · 0.8 = 0.4), 4 from 5 (0.5 · 0.4 = 0.2): 2/3 and 1/3, times
    # (1 − ρ) · weight 2. Bought-with: 6 from 5 (0.5 · confidence 0.5): all of it, times
    # (1 − ρ) · weight 0.5.
    expected = {
        6: 2.0 * 0.5 * (2 / 3) + 0.5 * 0.5 * 1.0,
        4: 2.0 * 0.5 * (1 / 3),
        1: 0.5 * f1 / (f1 + f3),
        3: 0.5 * f3 / (f1 + f3),
    }
    assert [s.product_id for s in ranked] == [6, 4, 1, 3]
    assert {s.product_id: s.score for s in ranked} == pytest.approx(expected)
    six = ranked[0]
    assert six.contributions == pytest.approx(
        {Component.SIMILAR: 2 / 3, Component.BOUGHT_WITH: 0.25}
    )
    assert (six.reason.component, six.reason.product_id) == (Component.SIMILAR, 5)
    one = ranked[2]
    assert (one.reason.component, one.reason.interval_days) == (Component.REPEAT, 10.0)


async def test_a_durable_bought_in_two_orders_is_a_habit() -> None:
    visitor = Visitor(customer_id=1, purchases=bought((1, 80, (2,)), (2, 90, (2,))))
    ranked = await rank(
        MemoryStore(models()), visitor, Ask(RecommendationContext.HOME, NOW), BLEND, SETTINGS
    )
    assert [(s.product_id, s.reason.component) for s in ranked] == [(2, Component.REPEAT)]
    # ρ = (1 + 1) / (1 + 2): all of the repeat mass on 2.
    assert ranked[0].score == pytest.approx(2 / 3)


async def test_a_visitor_without_purchases_gets_all_the_explore_mass() -> None:
    visitor = Visitor(session_id="s", touches=[Touch(5, "VIEW", NOW - timedelta(days=1))])
    ranked = await rank(
        MemoryStore(models()), visitor, Ask(RecommendationContext.HOME, NOW), BLEND, SETTINGS
    )
    assert {s.product_id: s.score for s in ranked} == pytest.approx(
        {6: 2.0 * (2 / 3) + 0.5, 4: 2.0 * (1 / 3)}
    )


async def test_next_to_a_cart_bought_with_is_the_reason_whenever_it_is_one() -> None:
    visitor = Visitor(session_id="s")
    ask = Ask(RecommendationContext.CART, NOW, cart_product_ids=(5,))
    ranked = await rank(MemoryStore(models()), visitor, ask, BLEND, SETTINGS)
    # 6 is similar (2 · 2/3) more than bought with (0.5), but the cart asks what goes with it.
    six = next(s for s in ranked if s.product_id == 6)
    assert (six.reason.component, six.reason.product_id) == (Component.BOUGHT_WITH, 5)
    home = await rank(
        MemoryStore(models()),
        Visitor(session_id="s", touches=[Touch(5, "ADD_TO_CART", NOW)]),
        Ask(RecommendationContext.HOME, NOW),
        BLEND,
        SETTINGS,
    )
    assert home[0].reason.component is Component.SIMILAR
    assert 5 not in {s.product_id for s in ranked}  # never what is in the cart
