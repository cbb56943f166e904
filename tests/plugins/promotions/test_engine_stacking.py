"""Stacking: which offers may go together, and the best valid combination (pure)."""

from __future__ import annotations

from plugins.promotions.models import PromotionClass, PromotionKind
from plugins.promotions.service.engine import MissCode, Offer, PromotionRef, choose, combinable


def ref(
    pid: int,
    cls: PromotionClass = PromotionClass.ORDER,
    *,
    priority: int = 0,
    combinable_with: tuple[PromotionClass, ...] = (),
    exclusive: str | None = None,
    joint: str | None = None,
) -> PromotionRef:
    return PromotionRef(
        id=pid,
        kind=PromotionKind.SPEND_SAVE,
        promotion_class=cls,
        label=f"promo {pid}",
        priority=priority,
        combinable_with=frozenset(combinable_with),
        exclusive_group=exclusive,
        joint_group=joint,
    )


def offer(r: PromotionRef, amount: int) -> Offer:
    return Offer(promotion=r, amount=amount, label=r.label)


def ids(offers: tuple[Offer, ...]) -> list[int]:
    return sorted(o.promotion.id for o in offers)


def test_the_best_combination_beats_the_largest_offer_alone() -> None:
    # Greedy would take the 50.00 offer, which stacks with nothing; the two 30.00 offers of
    # one joint group together save 60.00.
    big = offer(ref(1), 5000)
    a, b = offer(ref(2, joint="j"), 3000), offer(ref(3, joint="j"), 3000)
    applied, missed = choose([big, a, b])
    assert ids(applied) == [2, 3]
    assert [(m.promotion.id, m.code, m.message) for m in missed] == [
        (1, MissCode.NOT_COMBINABLE, "not combinable with promo 2")
    ]


def test_an_exclusive_group_keeps_one() -> None:
    a = offer(ref(1, joint="j", exclusive="e"), 3000)
    b = offer(ref(2, joint="j", exclusive="e"), 2500)
    c = offer(ref(3, joint="j"), 1000)
    applied, missed = choose([a, b, c])
    assert ids(applied) == [1, 3]
    assert [m.promotion.id for m in missed] == [2]


def test_classes_stack_only_when_each_names_the_other() -> None:
    order = ref(1, combinable_with=(PromotionClass.SHIPPING,))
    shipping = ref(2, PromotionClass.SHIPPING, combinable_with=(PromotionClass.ORDER,))
    one_way = ref(3, PromotionClass.SHIPPING)
    assert combinable(order, shipping) and combinable(shipping, order)
    assert not combinable(order, one_way)
    applied, _ = choose([offer(order, 2000), offer(shipping, 1000)])
    assert ids(applied) == [1, 2]
    applied, missed = choose([offer(order, 2000), offer(one_way, 1000)])
    assert ids(applied) == [1] and [m.promotion.id for m in missed] == [3]


def test_ties_go_to_priority_then_to_the_lower_id_whatever_the_order_given() -> None:
    low, high = offer(ref(5), 1000), offer(ref(9, priority=2), 1000)
    for given in ([low, high], [high, low]):
        applied, _ = choose(given)
        assert ids(applied) == [9]
    first, second = offer(ref(4), 1000), offer(ref(7), 1000)
    for given in ([first, second], [second, first]):
        applied, missed = choose(given)
        assert ids(applied) == [4] and [m.promotion.id for m in missed] == [7]


def test_many_offers_stay_exact_and_bounded() -> None:
    # Twelve offers in three joint groups: the best is the richest group as a whole.
    offers = [offer(ref(i, joint=f"g{i % 3}"), 100 + i) for i in range(1, 13)]
    applied, missed = choose(offers)
    # Group g0: 3, 6, 9, 12 -> 103 + 106 + 109 + 112 = 430, the most.
    assert ids(applied) == [3, 6, 9, 12]
    assert sum(o.amount for o in applied) == 430
    assert len(missed) == 8
