"""PRODUCT promotions on unit prices (flash sales, member deals): the ``price_adjustments``
hook, for listings and carts alike.

For each item, every running AUTOMATIC PRODUCT promotion that targets it is an offer (its
per-unit discount times the quantity) or a miss (why not); ``engine.choose`` keeps the best
valid combination (a joint group may stack), and the rest are ``NotApplied`` with the reason.
A share off is taken off the price this customer would otherwise pay (``item.price``),
the discount rounded half up to a minor unit; a fixed price never raises a price. Stacked
promotions each take their share of that price, and together never more than all of it.

A cart's choice per variant is kept for the transaction (``picks``): the order promotions
need to know which PRODUCT promotions discounted a line, and ``order_placing`` reserves
their units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.promotions.models import PromotionClass, Trigger
from plugins.promotions.service import context
from plugins.promotions.service.context import Promo, Shopper
from plugins.promotions.service.engine import Miss, MissCode, Offer, PromotionRef, choose, rule_of
from plugins.promotions.service.kinds import PriceEffect
from server.models import Customer
from server.plugin import Adjustment, NotApplied, PriceItem


def percent_of(amount: int, bp: int) -> int:
    """``bp`` basis points of ``amount`` (non-negative), rounded half up to a minor unit."""
    return (amount * bp + 5000) // 10000


def unit_discount(effect: PriceEffect, price: int) -> int:
    """What ``effect`` takes off a unit priced ``price`` (never negative: a fixed price
    above the price gives nothing)."""
    if price <= 0:
        return 0
    if effect.percent_off_bp is not None:
        return min(price, percent_of(price, effect.percent_off_bp))
    assert effect.fixed_price is not None
    return max(0, price - effect.fixed_price)


@dataclass(frozen=True)
class Pick:
    """What the PRODUCT promotions did to one cart item: the per-unit discounts applied
    (promotion, amount), and the misses."""

    quantity: int
    price: int
    applied: tuple[tuple[PromotionRef, int], ...] = ()
    missed: tuple[Miss, ...] = ()


def _pick_key(variant_id: int) -> tuple[str, int]:
    return ("product-pick", variant_id)


def pick_for(session: AsyncSession, variant_id: int, quantity: int) -> Pick | None:
    """The PRODUCT promotions' choice for a cart's variant at ``quantity`` units, when this
    transaction priced it."""
    found: Pick | None = context.memo(session).get(_pick_key(variant_id))
    if found is None or found.quantity != quantity:
        return None
    return found


def product_promos(promos: Sequence[Promo]) -> list[Promo]:
    return [
        p
        for p in promos
        if p.promotion_class is PromotionClass.PRODUCT and p.trigger is Trigger.AUTOMATIC
    ]


def consider(
    promo: Promo, shopper: Shopper, price: int, quantity: int, at: datetime, claimed: int = 0
) -> Offer | Miss:
    """``promo`` on one item of ``quantity`` units at ``price``: its offer (per-unit
    discount times the units, in ``amount``) or why not. ``claimed``: units of the same cart
    that already took this promotion (its unit limits count them)."""
    discount = unit_discount(promo.rules, price)
    stopped = promo.not_running(at)
    if stopped is not None:
        return Miss(promo.ref, stopped[0], stopped[1])
    refused = shopper.eligible(promo)
    if refused is not None:
        return Miss(promo.ref, MissCode.NOT_ELIGIBLE, refused)
    uses, units = shopper.used(promo.id)
    if promo.per_customer_limit is not None and uses >= promo.per_customer_limit:
        return Miss(promo.ref, MissCode.LIMIT_REACHED, f"you have used {promo.label} already")
    if (
        promo.per_customer_unit_limit is not None
        and units + claimed + quantity > promo.per_customer_unit_limit
    ):
        yours = max(0, promo.per_customer_unit_limit - units - claimed)
        return Miss(
            promo.ref,
            MissCode.LIMIT_REACHED,
            f"{promo.label}: at most {promo.per_customer_unit_limit} units per customer"
            + (f" ({yours} left for you)" if yours else ""),
        )
    left = None if promo.units_left is None else max(0, promo.units_left - claimed)
    if left is not None and left < quantity:
        return Miss(promo.ref, MissCode.LIMIT_REACHED, f"{promo.label}: only {left} left")
    if discount <= 0:
        return Miss(promo.ref, MissCode.NOT_ELIGIBLE, f"{promo.label} is not below the price")
    return Offer(promotion=promo.ref, amount=discount * quantity, label=promo.label)


def best(
    offers: Sequence[Offer], price: int, quantity: int
) -> tuple[list[tuple[Offer, int]], tuple[Miss, ...]]:
    """The best valid combination of an item's offers, each with its per-unit discount
    (together at most ``price``), and the offers left out."""
    applied, missed = choose(offers)
    ordered = sorted(applied, key=lambda o: (-o.promotion.priority, o.promotion.id))
    room = price
    result: list[tuple[Offer, int]] = []
    for offer in ordered:
        per_unit = min(room, offer.amount // max(1, quantity))
        if per_unit > 0:
            result.append((offer, per_unit))
            room -= per_unit
    return result, missed


async def price_adjustments(
    session: AsyncSession,
    items: Mapping[int, PriceItem],
    customer: Customer | None,
    at: datetime,
    config: Any,
) -> Mapping[int, Sequence[Adjustment | NotApplied]]:
    promos = product_promos(await context.running(session, at))
    if not promos or not items:
        return {}
    by_id = {p.id: p for p in promos}
    index = await context.running_index(session, at)
    kept = context.memo(session)
    # Each item's targeting promotions, in id order (most items of a page have none).
    targeting: dict[int, list[Promo]] = {}
    for key, item in items.items():
        variant_id = item.variant.id if item.variant is not None else None
        ids = index.ids_for(int(item.product.id or 0), item.product.category_id, variant_id)
        matched = sorted((by_id[i] for i in ids if i in by_id), key=lambda p: p.id)
        if matched:
            targeting[key] = matched
        elif variant_id is not None:
            kept.pop(_pick_key(variant_id), None)
    if not targeting:
        return {}
    shopper = await context.shopper(session, customer, promos)
    answer: dict[int, list[Adjustment | NotApplied]] = {}
    # A cart's lines share a promotion's units left: the lower variant ids take them first.
    # (A listing's items are separate "from" prices, each for one unit: none claims any.)
    claimed: dict[int, int] = {}
    for key in sorted(targeting):
        targeted = targeting[key]
        item = items[key]
        variant_id = item.variant.id if item.variant is not None else None
        price, quantity = item.price, max(1, item.quantity)
        offers: list[Offer] = []
        misses: list[Miss] = []
        for promo in targeted:
            found = consider(promo, shopper, price, quantity, at, claimed.get(promo.id, 0))
            if isinstance(found, Offer):
                offers.append(found)
            else:
                misses.append(found)
        chosen, left_out = best(offers, price, quantity)
        misses.extend(left_out)
        if variant_id is not None:
            for offer, _ in chosen:
                claimed[offer.promotion.id] = claimed.get(offer.promotion.id, 0) + quantity
        steps: list[Adjustment | NotApplied] = [
            Adjustment(rule=offer.rule, label=offer.label, amount=-per_unit)
            for offer, per_unit in chosen
        ]
        for miss in sorted(misses, key=lambda m: m.promotion.id):
            promo = next(p for p in targeted if p.id == miss.promotion.id)
            steps.append(
                NotApplied(
                    rule=rule_of(miss.promotion.id),
                    label=miss.promotion.label,
                    amount=-unit_discount(promo.rules, price),
                    reason=miss.message,
                )
            )
        answer[key] = steps
        if variant_id is not None:
            kept[_pick_key(variant_id)] = Pick(
                quantity=quantity,
                price=price,
                applied=tuple((offer.promotion, per_unit) for offer, per_unit in chosen),
                missed=tuple(misses),
            )
    return answer
