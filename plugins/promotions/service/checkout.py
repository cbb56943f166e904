"""A cart's ORDER and SHIPPING promotions and gifts: the engine's decision for the cart
(``engine.remember``), answered through ``order_adjustments``, ``shipping_adjustments`` and
``cart_gifts``; ``validate_checkout`` refuses a cart whose coupon no longer applies.

The decision is made once per cart and transaction (memoised by the cart as the hooks see
it): the core calls ``order_adjustments``, then ``shipping_adjustments`` and ``cart_gifts``
with the same cart. It holds the PRODUCT promotions' offers too (from the cart's pricing in
the same transaction), so ``order_placing`` can reserve every limited thing the quote used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import PromotionClass, PromotionKind, Trigger
from plugins.promotions.service import context, offers, pricing
from plugins.promotions.service.context import CodeOnCart, Promo
from plugins.promotions.service.engine import (
    Decision,
    Miss,
    MissCode,
    Offer,
    choose,
    remember,
)
from server.models import Customer, utcnow
from server.plugin import Adjustment, CartView, CheckoutProblem, GiftLine, ShippingQuote

COUPONS_FIELD = "coupons"


@dataclass(frozen=True)
class CartDecision:
    """The decision and the promotions it names (by id), for answering each hook."""

    decision: Decision
    promos: Mapping[int, Promo]
    codes: tuple[CodeOnCart, ...] = ()

    def code_outcome(self, code_id: int) -> Offer | Miss | None:
        for offer in self.decision.applied:
            if offer.code_id == code_id:
                return offer
        for miss in self.decision.missed:
            if miss.code_id == code_id:
                return miss
        return None


def _key(cart: CartView, customer: Customer | None, extra: str | None) -> Any:
    address = cart.shipping_address or {}
    return (
        "decision",
        cart.cart_id,
        cart.customer_id,
        customer.id if customer is not None else None,
        cart.currency,
        cart.lines,
        cart.subtotal,
        repr(sorted((str(k), str(v)) for k, v in address.items())),
        extra,
    )


async def _quotes(session: AsyncSession, cart: CartView, plugins: Any) -> tuple[ShippingQuote, ...]:
    """The cart's shipping quotes, as the core will ask for them (what a shipping offer is
    worth depends on them); memoised with the cart."""
    if plugins is None:
        return ()
    kept = context.memo(session)
    key = ("quotes", cart.cart_id, cart.lines, repr(cart.shipping_address))
    if key in kept:
        found: tuple[ShippingQuote, ...] = kept[key]
        return found
    answers = await plugins.call(
        "shipping_quotes", session=session, cart=cart, address=cart.shipping_address
    )
    quotes = tuple(
        q for _, answer in answers for q in (answer or ()) if isinstance(q, ShippingQuote)
    )
    context.memo(session)[key] = quotes
    return quotes


def _lines(session: AsyncSession, cart: CartView) -> tuple[offers.Line, ...]:
    lines = []
    for line in cart.lines:
        pick = pricing.pick_for(session, line.variant_id, line.quantity)
        lines.append(
            offers.Line(
                variant_id=line.variant_id,
                product_id=line.product_id,
                category_id=line.category_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                product_promotions=tuple(ref for ref, _ in pick.applied) if pick else (),
            )
        )
    return tuple(lines)


def _product_part(session: AsyncSession, cart: CartView) -> tuple[list[Offer], list[Miss]]:
    """The PRODUCT promotions' offers on the cart (one per promotion, summed over its lines)
    and their misses (one per promotion), from the cart's pricing."""
    by_promotion: dict[int, dict[str, Any]] = {}
    missed: dict[int, Miss] = {}
    for line in sorted(cart.lines, key=lambda ln: ln.variant_id):
        pick = pricing.pick_for(session, line.variant_id, line.quantity)
        if pick is None:
            continue
        for ref, per_unit in pick.applied:
            entry = by_promotion.setdefault(ref.id, {"ref": ref, "shares": {}, "units": {}})
            entry["shares"][line.variant_id] = per_unit * line.quantity
            entry["units"][line.variant_id] = line.quantity
        for miss in pick.missed:
            missed.setdefault(miss.promotion.id, miss)
    applied = [
        Offer(
            promotion=e["ref"],
            amount=sum(e["shares"].values()),
            label=e["ref"].label,
            line_shares=dict(e["shares"]),
            units=dict(e["units"]),
        )
        for _, e in sorted(by_promotion.items())
    ]
    return applied, [m for pid, m in sorted(missed.items()) if pid not in by_promotion]


async def decide(
    session: AsyncSession,
    cart: CartView,
    customer: Customer | None,
    plugins: Any,
    *,
    extra_code: CodeOnCart | None = None,
    at: datetime | None = None,
) -> CartDecision:
    """The engine's decision for ``cart`` (with ``extra_code`` as if it were applied: what
    ``applyCoupon`` checks before it writes). Memoised per transaction and cart; remembered
    for ``order_placing`` (``engine.remember``) unless ``extra_code`` is given."""
    kept = context.memo(session)
    key = _key(cart, customer, extra_code.code if extra_code is not None else None)
    found: CartDecision | None = kept.get(key)
    if found is not None:
        if extra_code is None and cart.cart_id is not None:
            remember(session, cart.cart_id, found.decision)
        return found
    at = at or utcnow()
    running = await context.running(session, at)
    codes = await context.cart_codes(session, cart.cart_id)
    if extra_code is not None and all(c.code_id != extra_code.code_id for c in codes):
        codes = (*codes, extra_code)
    usable_codes = tuple(c for c in codes if c.promo is not None)
    group = await context.group_choice(session, cart.cart_id)
    automatic = [
        p
        for p in running
        if p.trigger is Trigger.AUTOMATIC
        and offers.is_order_or_shipping(p)
        and (p.kind is not PromotionKind.GROUP_BUY or (group and group.promotion_id == p.id))
    ]
    code_promos = [c.promo for c in usable_codes if c.promo is not None]
    everyone = [*pricing.product_promos(running), *automatic, *code_promos]
    shopper = await context.shopper(session, customer, everyone)
    lines = _lines(session, cart)
    stock = await context.available(session, offers.gift_variants([*automatic, *code_promos]))
    wants_shipping = any(p.promotion_class is PromotionClass.SHIPPING for p in automatic) or any(
        p.promotion_class is PromotionClass.SHIPPING for p in code_promos
    )
    quotes = await _quotes(session, cart, plugins) if wants_shipping else ()
    facts = offers.CartFacts(
        lines=lines,
        currency=cart.currency,
        shopper=shopper,
        at=at,
        stock=stock,
        quotes=quotes,
        group=group,
    )
    candidates: list[Offer] = []
    misses: list[Miss] = []
    for promo in automatic:
        outcome = offers.offer_for(promo, facts)
        if isinstance(outcome, Offer):
            candidates.append(outcome)
        elif isinstance(outcome, Miss):
            misses.append(outcome)
    # One code per promotion: the best one counts, any other is left out.
    best_code: dict[int, Offer] = {}
    for code in usable_codes:
        outcome = offers.coupon_offer(code, facts)
        if isinstance(outcome, Miss):
            misses.append(outcome)
            continue
        other = best_code.get(outcome.promotion.id)
        if other is None or outcome.amount > other.amount:
            if other is not None:
                misses.append(_second_code(other))
            best_code[outcome.promotion.id] = outcome
        else:
            misses.append(_second_code(outcome))
    candidates.extend(best_code.values())
    applied, left_out = choose(candidates)
    product_offers, product_misses = _product_part(session, cart)
    decision = Decision(
        applied=(*product_offers, *applied),
        missed=(*product_misses, *misses, *left_out),
    )
    promos = {p.id: p for p in everyone}
    result = CartDecision(decision=decision, promos=promos, codes=codes)
    context.memo(session)[key] = result
    if extra_code is None and cart.cart_id is not None:
        remember(session, cart.cart_id, decision)
    return result


def _second_code(offer: Offer) -> Miss:
    return Miss(
        offer.promotion,
        MissCode.NOT_COMBINABLE,
        f"one code of {offer.promotion.label} per order",
        code_id=offer.code_id,
    )


async def order_adjustments(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[Adjustment]:
    if not cart.lines:
        return []
    decided = await decide(session, cart, customer, plugins)
    return [
        Adjustment(rule=o.rule, label=o.label, amount=-o.amount)
        for o in decided.decision.of_class(PromotionClass.ORDER)
        if o.amount > 0
    ]


async def shipping_adjustments(
    session: AsyncSession,
    cart: CartView,
    quotes: Sequence[ShippingQuote],
    customer: Customer | None,
    plugins: Any,
    config: Any,
) -> Mapping[str, Sequence[Adjustment]]:
    if not cart.lines or not quotes:
        return {}
    decided = await decide(session, cart, customer, plugins)
    answer: dict[str, list[Adjustment]] = {}
    for offer in decided.decision.of_class(PromotionClass.SHIPPING):
        promo = decided.promos.get(offer.promotion.id)
        if promo is None:
            continue
        cap, codes = offers.shipping_terms(promo)
        for quote in quotes:
            off = offers.shipping_discount(quote, cap, codes)
            if off > 0:
                answer.setdefault(quote.code, []).append(
                    Adjustment(rule=offer.rule, label=offer.label, amount=-off)
                )
    return answer


async def cart_gifts(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[GiftLine]:
    if not cart.lines:
        return []
    decided = await decide(session, cart, customer, plugins)
    return [
        GiftLine(variant_id=g.variant_id, quantity=g.quantity, rule=o.rule, label=o.label)
        for o in decided.decision.applied
        for g in o.gifts
    ]


def problem_of(miss: Miss) -> CheckoutProblem:
    return CheckoutProblem(
        code=f"COUPON_{miss.code.value}", message=miss.message, field=COUPONS_FIELD
    )


async def validate_checkout(
    session: AsyncSession, cart: CartView, customer: Customer | None, plugins: Any, config: Any
) -> Sequence[CheckoutProblem]:
    """A code on the cart that does not apply blocks the checkout (the shopper removes it or
    fixes the cart); promotions that simply do not apply never do."""
    if not cart.lines:
        return []
    decided = await decide(session, cart, customer, plugins)
    problems = []
    for code in decided.codes:
        outcome = decided.code_outcome(code.code_id)
        if isinstance(outcome, Miss):
            problems.append(problem_of(outcome))
        elif outcome is None:
            problems.append(
                CheckoutProblem(
                    code="COUPON_NOT_ELIGIBLE",
                    message=f"code {code.code} is no longer valid",
                    field=COUPONS_FIELD,
                )
            )
    return problems
