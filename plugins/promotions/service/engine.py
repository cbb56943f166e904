"""What the promotion engine decides for a cart, and how it chooses.

Each running promotion that could apply to a cart answers an ``Offer`` (what it takes off,
line by line) or a ``Miss`` (why not, typed). ``choose`` then picks the best valid combination
of offers for the shopper, deterministically; the rest become NOT_COMBINABLE misses. The
decision for a cart is remembered on the session (``remember``/``decision_for``) so that
``order_placing`` reserves exactly what the quote priced.

Combinable (docs/plugins/promotions.md, "Stacking"): two offers may both apply when
- they are not in the same ``exclusive_group``; and
- of the same class, they share a ``joint_group``; of different classes, each names the
  other's class in ``combinable_with``.
A line discounted by a PRODUCT promotion counts towards an ORDER offer (its base, its
threshold) only when the two are combinable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import PromotionClass, PromotionKind


class MissCode(StrEnum):
    """Why a promotion did not apply: the typed reasons shoppers and the API see."""

    NOT_STARTED = "NOT_STARTED"
    EXPIRED = "EXPIRED"
    PAUSED = "PAUSED"
    LIMIT_REACHED = "LIMIT_REACHED"
    BUDGET_SPENT = "BUDGET_SPENT"
    MINIMUM_NOT_MET = "MINIMUM_NOT_MET"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    NOT_COMBINABLE = "NOT_COMBINABLE"
    NO_ELIGIBLE_ITEMS = "NO_ELIGIBLE_ITEMS"
    OUT_OF_STOCK = "OUT_OF_STOCK"


@dataclass(frozen=True)
class PromotionRef:
    """What stacking needs to know of a promotion (a snapshot of its row)."""

    id: int
    kind: PromotionKind
    promotion_class: PromotionClass
    label: str
    priority: int = 0
    combinable_with: frozenset[PromotionClass] = frozenset()
    exclusive_group: str | None = None
    joint_group: str | None = None
    campaign_id: int | None = None


@dataclass(frozen=True)
class Gift:
    """A free item an offer adds to the cart (SPEND_GIFT, BUY_X_GET_Y with a named item)."""

    variant_id: int
    quantity: int


@dataclass(frozen=True)
class Offer:
    """What one promotion would take off this cart.

    ``amount``: the whole discount (positive, minor units). ``line_shares``: its split over
    the cart's lines by variant id (sums to ``amount`` for PRODUCT and ORDER offers; empty for
    SHIPPING ones, whose amount comes off the shipping). ``units``: the units counted against
    unit limits, by variant id. ``gifts``: items added at zero price. ``code_id``: the coupon
    code it came by. ``group_id``: the group buy joined (None with a GROUP_BUY offer: a new
    group is opened)."""

    promotion: PromotionRef
    amount: int
    label: str
    line_shares: Mapping[int, int] = field(default_factory=dict)
    units: Mapping[int, int] = field(default_factory=dict)
    gifts: tuple[Gift, ...] = ()
    code_id: int | None = None
    group_id: int | None = None

    @property
    def rule(self) -> str:
        """The ``Adjustment.rule`` of this offer: ``promotion:<id>`` (``/code:<id>`` added
        when it came by a code)."""
        return rule_of(self.promotion.id, self.code_id)


@dataclass(frozen=True)
class Miss:
    """A promotion that did not apply, and why (``message`` is for the shopper, e.g. "spend
    ¥12.00 more to save ¥20.00"). ``shortfall``: how much more to spend, when that is why."""

    promotion: PromotionRef
    code: MissCode
    message: str
    code_id: int | None = None
    shortfall: int | None = None


@dataclass(frozen=True)
class Decision:
    """The engine's answer for a cart: the offers applied (in the order chosen) and the
    promotions that did not apply, with why."""

    applied: tuple[Offer, ...] = ()
    missed: tuple[Miss, ...] = ()

    def of_class(self, promotion_class: PromotionClass) -> tuple[Offer, ...]:
        return tuple(o for o in self.applied if o.promotion.promotion_class is promotion_class)


def rule_of(promotion_id: int, code_id: int | None = None) -> str:
    return f"promotion:{promotion_id}" + (f"/code:{code_id}" if code_id is not None else "")


def parse_rule(rule: str) -> tuple[int, int | None] | None:
    """(promotion id, code id) of an adjustment this plugin wrote; None for anyone else's."""
    head, _, code = rule.partition("/code:")
    if not head.startswith("promotion:"):
        return None
    try:
        return int(head.removeprefix("promotion:")), (int(code) if code else None)
    except ValueError:
        return None


_DECISIONS = "promotions.decisions"


def remember(session: AsyncSession, cart_id: int, decision: Decision) -> None:
    """Keep the decision for this cart on the session (its ``info``, SQLAlchemy's place for
    the application's own data): ``order_placing`` in the same transaction reads it back."""
    session.info.setdefault(_DECISIONS, {})[cart_id] = decision


def decision_for(session: AsyncSession, cart_id: int) -> Decision | None:
    decisions: dict[int, Decision] = session.info.get(_DECISIONS, {})
    return decisions.get(cart_id)


def combinable(a: PromotionRef, b: PromotionRef) -> bool:
    """Whether ``a`` and ``b`` may both apply (the rule in this module's docstring)."""
    if a.exclusive_group is not None and a.exclusive_group == b.exclusive_group:
        return False
    if a.promotion_class is b.promotion_class:
        return a.joint_group is not None and a.joint_group == b.joint_group
    return b.promotion_class in a.combinable_with and a.promotion_class in b.combinable_with


def choose(offers: Sequence[Offer]) -> tuple[tuple[Offer, ...], tuple[Miss, ...]]:
    """The best valid combination of ``offers`` for the shopper: the greatest total discount;
    ties go to the higher total priority, then to the lower promotion ids. Returns it and a
    NOT_COMBINABLE miss for each offer left out (naming one chosen promotion it clashes
    with).

    A depth-first search over include/leave-out, largest offers first, pruned when even every
    remaining offer could not catch up with the best found; ``MAX_SEARCHED`` offers at most
    (the largest), the others left out as NOT_COMBINABLE."""
    ranked = sorted(offers, key=lambda o: (-o.amount, -o.promotion.priority, o.promotion.id))
    searched = ranked[:MAX_SEARCHED]
    remaining = [0] * (len(searched) + 1)
    for i in range(len(searched) - 1, -1, -1):
        remaining[i] = remaining[i + 1] + max(0, searched[i].amount)
    best: list[tuple[tuple[int, int, tuple[int, ...]], tuple[Offer, ...]]] = [((-1, 0, ()), ())]

    def score(chosen: Sequence[Offer]) -> tuple[int, int, tuple[int, ...]]:
        ids = sorted(o.promotion.id for o in chosen)
        return (
            sum(o.amount for o in chosen),
            sum(o.promotion.priority for o in chosen),
            tuple(-i for i in ids),
        )

    def walk(i: int, chosen: list[Offer], total: int) -> None:
        if total + remaining[i] < best[0][0][0]:
            return
        if i == len(searched):
            candidate = score(chosen)
            if candidate > best[0][0]:
                best[0] = (candidate, tuple(chosen))
            return
        offer = searched[i]
        if all(combinable(offer.promotion, other.promotion) for other in chosen):
            chosen.append(offer)
            walk(i + 1, chosen, total + offer.amount)
            chosen.pop()
        walk(i + 1, chosen, total)

    walk(0, [], 0)
    applied = best[0][1]
    missed = tuple(
        Miss(
            promotion=o.promotion,
            code=MissCode.NOT_COMBINABLE,
            message=_clash_message(o, applied),
            code_id=o.code_id,
        )
        for o in ranked
        if all(o is not a for a in applied)
    )
    return applied, missed


# Offers searched for one cart; a cart rarely has more than a handful that apply at once.
MAX_SEARCHED = 20


def _clash_message(offer: Offer, applied: Sequence[Offer]) -> str:
    for other in applied:
        if not combinable(offer.promotion, other.promotion):
            return f"not combinable with {other.promotion.label}"
    return "a better combination of promotions applies"
