"""Price rules and the shop's own price for a customer (the ``list_prices`` hook).

The pipeline (docs/plugins/pricing.md, "The pipeline"): DYNAMIC (an applied dynamic price in
place of the catalogue price, for everyone; it may raise or lower) → GROUP (a price list for
everyone, a member tier, an RFM segment, a customer tag or an audience) → QUANTITY (a break
from ``min_quantity`` units) → SCHEDULED (a price for a window). Each stage starts from the
previous stage's price. Within a stage the lowest resulting price wins; ties go to the most
specific target (variant, then product, then category), then to the lowest rule id. A rule
never raises a price: one that would is left out. Every candidate left out is a NotApplied
with its reason.

Reads for a whole batch: one statement (the rules of the batch's variants, products and
categories together with their dynamic prices), plus, for a signed-in customer and only when
such rules are among them, one for the customer's RFM segment and one for their audiences.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import col

from plugins.pricing.models import DynamicPrice, PricingRule, RuleKind
from server.models import AudienceMember, Customer, CustomerRfm
from server.plugin import Adjustment, NotApplied, PriceItem

DYNAMIC_RULE = "dynamic"
DYNAMIC_LABEL = "动态价格 / dynamic price"
_STAGES = (RuleKind.GROUP, RuleKind.QUANTITY, RuleKind.SCHEDULED)
# Tie order of targets: the most specific first.
_SPECIFICITY = {"variant": 0, "product": 1, "category": 2}


@dataclass(frozen=True)
class Rule:
    """A rule as the pipeline sees it (a row of the batch's one statement)."""

    id: int
    name: str
    kind: RuleKind
    variant_id: int | None
    product_id: int | None
    category_id: int | None
    membership_tier: str | None
    segment: str | None
    tag: str | None
    audience_id: int | None
    min_quantity: int
    amount: int | None
    percent_off_bp: int | None

    @property
    def target(self) -> str:
        if self.variant_id is not None:
            return "variant"
        return "product" if self.product_id is not None else "category"

    @property
    def who(self) -> str:
        """What the candidate is called in a reason: "member price", "segment price"…"""
        if self.kind is RuleKind.QUANTITY:
            return f"quantity break from {self.min_quantity} units"
        if self.kind is RuleKind.SCHEDULED:
            return "scheduled price"
        if self.membership_tier is not None:
            return f"{self.membership_tier.lower()} member price"
        if self.segment is not None:
            return "segment price"
        if self.tag is not None:
            return "tag price"
        if self.audience_id is not None:
            return "audience price"
        return "list price"

    @property
    def rule_key(self) -> str:
        return f"rule-{self.id}"

    def price_from(self, running: int) -> int:
        """The unit price this rule makes of ``running``: its fixed amount, or ``running`` less
        its share, the share rounded half up to whole minor units."""
        if self.amount is not None:
            return self.amount
        return running - percent_of(running, self.percent_off_bp or 0)


def percent_of(amount: int, bp: int) -> int:
    """``bp`` basis points of ``amount`` (non-negative), rounded half up to a minor unit."""
    return (amount * bp + 5000) // 10000


def money_text(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


@dataclass(frozen=True)
class Shopper:
    """What the rules may ask of the customer (None fields: anonymous, or not asked)."""

    tier: str | None = None
    tags: frozenset[str] = frozenset()
    segment: str | None = None
    audiences: frozenset[int] = frozenset()

    def fits(self, rule: Rule) -> bool:
        if rule.membership_tier is not None:
            return rule.membership_tier == self.tier
        if rule.segment is not None:
            return rule.segment == self.segment
        if rule.tag is not None:
            return rule.tag in self.tags
        if rule.audience_id is not None:
            return rule.audience_id in self.audiences
        return True


@functools.cache
def _batch_query(anonymous: bool) -> Any:
    """The rules that may apply to a batch at a moment and the products' dynamic prices, in
    one statement (a UNION ALL; a dynamic price is a row with kind NULL). Built once, with
    expanding parameters ``variant_ids``, ``product_ids``, ``category_ids`` and ``at``: a
    page's pricing builds no SQL."""
    at: BindParameter[datetime] = bindparam("at")
    product_ids: BindParameter[list[int]] = bindparam("product_ids", expanding=True)
    conditions = [
        col(PricingRule.active),
        or_(
            col(PricingRule.variant_id).in_(bindparam("variant_ids", expanding=True)),
            col(PricingRule.product_id).in_(product_ids),
            col(PricingRule.category_id).in_(bindparam("category_ids", expanding=True)),
        ),
        or_(col(PricingRule.starts_at).is_(None), col(PricingRule.starts_at) <= at),
        or_(col(PricingRule.ends_at).is_(None), col(PricingRule.ends_at) > at),
    ]
    if anonymous:
        # An anonymous shopper gets only the rules for everyone.
        conditions += [
            col(PricingRule.membership_tier).is_(None),
            col(PricingRule.segment).is_(None),
            col(PricingRule.tag).is_(None),
            col(PricingRule.audience_id).is_(None),
        ]
    rules = select(
        col(PricingRule.id),
        col(PricingRule.name),
        col(PricingRule.kind),
        col(PricingRule.variant_id),
        col(PricingRule.product_id),
        col(PricingRule.category_id),
        col(PricingRule.membership_tier),
        col(PricingRule.segment),
        col(PricingRule.tag),
        col(PricingRule.audience_id),
        col(PricingRule.min_quantity),
        col(PricingRule.amount),
        col(PricingRule.percent_off_bp),
    ).where(and_(*conditions))
    dynamic = select(
        null().cast(Integer),
        null().cast(String),
        null().cast(String),
        null().cast(Integer),
        col(DynamicPrice.product_id),
        null().cast(Integer),
        null().cast(String),
        null().cast(String),
        null().cast(String),
        null().cast(Integer),
        literal(1),
        col(DynamicPrice.amount),
        null().cast(Integer),
    ).where(col(DynamicPrice.product_id).in_(product_ids))
    return union_all(rules, dynamic)


def batch_targets(items: Mapping[int, Any]) -> dict[str, list[int]]:
    """The variant, product and category ids of a batch, as the statements' parameters."""
    return {
        "variant_ids": sorted({i.variant.id for i in items.values() if i.variant is not None}),
        "product_ids": sorted({i.product.id for i in items.values()}),
        "category_ids": sorted(
            {i.product.category_id for i in items.values() if i.product.category_id}
        ),
    }


async def read_batch(
    session: AsyncSession, items: Mapping[int, PriceItem], at: datetime, anonymous: bool
) -> tuple[list[Rule], dict[int, int]]:
    """The candidate rules (by id) and the dynamic prices (product id -> amount) of a batch."""
    rules: list[Rule] = []
    dynamic: dict[int, int] = {}
    params = {**batch_targets(items), "at": at}
    for row in await session.execute(_batch_query(anonymous), params):
        if row[2] is None:
            dynamic[row[4]] = row[11]
            continue
        rules.append(
            Rule(
                id=row[0],
                name=row[1],
                kind=RuleKind(row[2]),
                variant_id=row[3],
                product_id=row[4],
                category_id=row[5],
                membership_tier=row[6],
                segment=row[7],
                tag=row[8],
                audience_id=row[9],
                min_quantity=row[10],
                amount=row[11],
                percent_off_bp=row[12],
            )
        )
    return rules, dynamic


async def shopper_of(
    session: AsyncSession, customer: Customer | None, rules: Sequence[Rule]
) -> Shopper:
    """The customer's tier and tags (already loaded), and their segment and audiences when a
    rule asks for them (one statement each, at most)."""
    if customer is None or customer.id is None:
        return Shopper()
    segment: str | None = None
    if any(r.segment is not None for r in rules):
        found = await session.scalar(
            select(col(CustomerRfm.segment)).where(col(CustomerRfm.customer_id) == customer.id)
        )
        segment = str(found) if found is not None else None
    audiences: frozenset[int] = frozenset()
    wanted = {r.audience_id for r in rules if r.audience_id is not None}
    if wanted:
        audiences = frozenset(
            await session.scalars(
                select(col(AudienceMember.audience_id)).where(
                    col(AudienceMember.customer_id) == customer.id,
                    col(AudienceMember.audience_id).in_(wanted),
                )
            )
        )
    tier = customer.membership_tier
    return Shopper(
        tier=str(tier) if tier is not None else None,
        tags=frozenset(customer.tags or ()),
        segment=segment,
        audiences=audiences,
    )


def covers(rule: Rule, item: PriceItem) -> bool:
    """Whether ``rule``'s target covers ``item``. A variant rule covers that variant's cart
    and order lines only: a listing's "from" price (no variant) ignores it. A category rule
    covers the products of that category itself, not of its sub-categories."""
    if rule.variant_id is not None:
        return item.variant is not None and item.variant.id == rule.variant_id
    if rule.product_id is not None:
        return item.product.id == rule.product_id
    return rule.category_id is not None and item.product.category_id == rule.category_id


def _order(pair: tuple[Rule, int]) -> tuple[int, int, int]:
    rule, price = pair
    return (price, _SPECIFICITY[rule.target], rule.id)


def _stage(
    kind: RuleKind, candidates: Iterable[Rule], item: PriceItem, running: int
) -> tuple[int, list[Adjustment | NotApplied]]:
    """One stage on ``running``: the winning rule's step (if any) and the candidates left out."""
    steps: list[Adjustment | NotApplied] = []
    lowering: list[tuple[Rule, int]] = []
    for rule in candidates:
        if kind is RuleKind.QUANTITY and item.quantity < rule.min_quantity:
            price = rule.price_from(running)
            steps.append(
                NotApplied(
                    rule.rule_key,
                    rule.name,
                    min(price - running, 0),
                    f"quantity break from {rule.min_quantity} units not reached ({item.quantity})",
                )
            )
            continue
        price = max(rule.price_from(running), 0)
        if price >= running:
            steps.append(
                NotApplied(
                    rule.rule_key,
                    rule.name,
                    price - running,
                    f"{rule.who} {money_text(price)} not below the current price "
                    f"{money_text(running)}",
                )
            )
            continue
        lowering.append((rule, price))
    if not lowering:
        return running, steps
    lowering.sort(key=_order)
    winner, best = lowering[0]
    for rule, price in lowering[1:]:
        reason = f"{rule.who} {money_text(price)} not better than {winner.who} {money_text(best)}"
        steps.append(NotApplied(rule.rule_key, rule.name, price - running, reason))
    steps.insert(0, Adjustment(rule=winner.rule_key, label=winner.name, amount=best - running))
    return best, steps


def price_item(
    item: PriceItem, rules: Sequence[Rule], dynamic: int | None, shopper: Shopper
) -> list[Adjustment | NotApplied]:
    """The steps of one item through the pipeline (no I/O)."""
    steps: list[Adjustment | NotApplied] = []
    running = item.base
    if dynamic is not None:
        # The dynamic price is the product's ("from") price; a variant moves by the same
        # difference, so the spread between sizes is kept (never below zero).
        target = (
            dynamic if item.variant is None else item.base + dynamic - item.product.price_amount
        )
        target = max(target, 0)
        if target != running:
            steps.append(
                Adjustment(rule=DYNAMIC_RULE, label=DYNAMIC_LABEL, amount=target - running)
            )
            running = target
    for kind in _STAGES:
        candidates = [r for r in rules if r.kind is kind and covers(r, item) and shopper.fits(r)]
        if candidates:
            running, found = _stage(kind, candidates, item, running)
            steps.extend(found)
    return steps


async def list_prices(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> dict[int, Sequence[Adjustment | NotApplied]]:
    """Every item's steps from its catalogue price to the price the shop lists for
    ``customer`` at ``at`` (module docstring)."""
    if not items:
        return {}
    rules, dynamic = await read_batch(session, items, at, customer is None)
    if not rules and not dynamic:
        return {}
    shopper = await shopper_of(session, customer, rules)
    answer: dict[int, Sequence[Adjustment | NotApplied]] = {}
    for key, item in items.items():
        steps = price_item(item, rules, dynamic.get(item.product.id or 0), shopper)
        if steps:
            answer[key] = steps
    return answer


async def public_prices(
    session: AsyncSession, items: Mapping[int, PriceItem], at: datetime, config: Any
) -> dict[int, int]:
    """The public unit prices of ``items`` at ``at``: what an anonymous shopper pays before
    promotions (the catalogue price and the rules for everyone), which the price history
    records and competitor prices are compared with."""
    steps = await list_prices(session, items, None, at, config)
    return {
        key: item.base
        + sum(step.amount for step in steps.get(key, ()) if isinstance(step, Adjustment))
        for key, item in items.items()
    }
