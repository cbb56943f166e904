"""What each ORDER or SHIPPING promotion would do for a cart: an ``Offer`` or a ``Miss``.

Every kind reads the cart's lines at their final unit prices (PRODUCT promotions already
taken off). A promotion's base is its targeted lines, less those a PRODUCT promotion
discounted that it is not combinable with (engine docstring). Discounts round half up to a
minor unit; an order discount is split over its lines by largest remainder (shares sum
exactly; ties to the lower variant id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from plugins.promotions.models import GroupStatus, PromotionClass, PromotionKind
from plugins.promotions.service.context import (
    CodeOnCart,
    GroupChoice,
    Promo,
    Shopper,
    aware,
)
from plugins.promotions.service.engine import Gift, Miss, MissCode, Offer, PromotionRef, combinable
from plugins.promotions.service.kinds import (
    BundleRules,
    BuyXGetYRules,
    CouponRules,
    FreeShippingRules,
    GroupBuyRules,
    SpendGiftRules,
    SpendSaveRules,
)
from plugins.promotions.service.pricing import percent_of, unit_discount
from server.plugin import ShippingQuote

_SYMBOLS = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$"}


def money_text(minor: int, currency: str = "CNY") -> str:
    """An amount as shoppers read it: the currency's symbol and two decimals (¥12.00)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    symbol = _SYMBOLS.get(currency.upper())
    text = f"{whole}.{cents:02d}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


@dataclass(frozen=True)
class Line:
    """A cart line as the order promotions see it: its final unit price, and the PRODUCT
    promotions that discounted it."""

    variant_id: int
    product_id: int
    category_id: int | None
    quantity: int
    unit_price: int
    product_promotions: tuple[PromotionRef, ...] = ()

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class CartFacts:
    """What the offers read of a cart."""

    lines: tuple[Line, ...]
    currency: str
    shopper: Shopper
    at: datetime
    # Units one warehouse can still give, of the variants gifts are made of.
    stock: Mapping[int, int] = field(default_factory=dict)
    quotes: tuple[ShippingQuote, ...] = ()
    group: GroupChoice | None = None


def allocate(amount: int, weights: Mapping[int, int]) -> dict[int, int]:
    """``amount`` split over keys in proportion to ``weights`` by largest remainder: the
    shares sum to ``amount`` exactly; equal remainders go to the lower key first."""
    total = sum(w for w in weights.values() if w > 0)
    if amount <= 0 or total <= 0:
        return {}
    shares: dict[int, int] = {}
    remainders: list[tuple[int, int]] = []
    for key in sorted(weights):
        weight = max(0, weights[key])
        share, rest = divmod(amount * weight, total)
        shares[key] = share
        remainders.append((rest, key))
    left = amount - sum(shares.values())
    for _, key in sorted(remainders, key=lambda r: (-r[0], r[1]))[:left]:
        shares[key] += 1
    return {k: v for k, v in shares.items() if v}


def base_lines(promo: Promo, lines: Sequence[Line]) -> list[Line]:
    """The lines ``promo`` counts: targeted, and not discounted by a PRODUCT promotion it
    cannot be combined with."""
    return [
        line
        for line in lines
        if promo.targets(line.product_id, line.category_id, line.variant_id)
        and all(combinable(promo.ref, other) for other in line.product_promotions)
    ]


def _weights(lines: Sequence[Line]) -> dict[int, int]:
    weights: dict[int, int] = {}
    for line in lines:
        weights[line.variant_id] = weights.get(line.variant_id, 0) + line.total
    return weights


def _shortfall(
    promo: Promo, need: int, have: int, what: str, currency: str, code_id: int | None = None
) -> Miss:
    short = need - have
    return Miss(
        promo.ref,
        MissCode.MINIMUM_NOT_MET,
        f"spend {money_text(short, currency)} more to {what}",
        code_id=code_id,
        shortfall=short,
    )


def _order_offer(
    promo: Promo, amount: int, lines: Sequence[Line], code_id: int | None = None
) -> Offer:
    amount = min(amount, sum(line.total for line in lines))
    return Offer(
        promotion=promo.ref,
        amount=amount,
        label=promo.label,
        line_shares=allocate(amount, _weights(lines)),
        code_id=code_id,
    )


def _limits(promo: Promo, facts: CartFacts, code_id: int | None = None) -> Miss | None:
    """The checks every kind shares: running now, who, the customer's uses."""
    stopped = promo.not_running(facts.at)
    if stopped is not None:
        return Miss(promo.ref, stopped[0], stopped[1], code_id=code_id)
    refused = facts.shopper.eligible(promo)
    if refused is not None:
        return Miss(promo.ref, MissCode.NOT_ELIGIBLE, refused, code_id=code_id)
    uses, _ = facts.shopper.used(promo.id)
    if promo.per_customer_limit is not None and uses >= promo.per_customer_limit:
        return Miss(
            promo.ref,
            MissCode.LIMIT_REACHED,
            f"you have used {promo.label} {uses} time{'s' if uses != 1 else ''} already",
            code_id=code_id,
        )
    return None


def _no_items(promo: Promo, code_id: int | None = None) -> Miss:
    return Miss(
        promo.ref,
        MissCode.NO_ELIGIBLE_ITEMS,
        f"nothing in the cart counts towards {promo.label}",
        code_id=code_id,
    )


def offer_for(promo: Promo, facts: CartFacts) -> Offer | Miss | None:
    """An AUTOMATIC ORDER or SHIPPING promotion on the cart: its offer, why not, or None
    when it has nothing to say (it targets nothing in the cart)."""
    lines = base_lines(promo, facts.lines)
    targeted = [
        ln for ln in facts.lines if promo.targets(ln.product_id, ln.category_id, ln.variant_id)
    ]
    if not targeted:
        return None
    blocked = _limits(promo, facts)
    if blocked is not None:
        return blocked
    if not lines:
        clash = next(
            o for ln in targeted for o in ln.product_promotions if not combinable(promo.ref, o)
        )
        return Miss(promo.ref, MissCode.NOT_COMBINABLE, f"not combinable with {clash.label}")
    rules = promo.rules
    subtotal = sum(line.total for line in lines)
    currency = facts.currency
    if isinstance(rules, SpendSaveRules):
        return _spend_save(promo, rules, lines, subtotal, currency)
    if isinstance(rules, SpendGiftRules):
        return _spend_gift(promo, rules, subtotal, facts)
    if isinstance(rules, BuyXGetYRules):
        return _buy_x_get_y(promo, rules, lines, facts)
    if isinstance(rules, BundleRules):
        return _bundle(promo, rules, lines, currency)
    if isinstance(rules, GroupBuyRules):
        return _group_buy(promo, rules, lines, facts)
    if isinstance(rules, FreeShippingRules):
        if subtotal < rules.min_spend:
            return _shortfall(promo, rules.min_spend, subtotal, "get free shipping", currency)
        return _shipping_offer(promo, facts.quotes, rules.max_discount, rules.quote_codes)
    return None


def _spend_save(
    promo: Promo, rules: SpendSaveRules, lines: Sequence[Line], subtotal: int, currency: str
) -> Offer | Miss:
    if rules.per_every is not None:
        every = rules.per_every
        times = subtotal // every.every
        if every.max_times is not None:
            times = min(times, every.max_times)
        if times == 0:
            return _shortfall(
                promo,
                every.every,
                subtotal,
                f"save {money_text(every.amount_off, currency)}",
                currency,
            )
        return _order_offer(promo, times * every.amount_off, lines)
    reached = [t for t in rules.tiers if t.threshold <= subtotal]
    if not reached:
        first = rules.tiers[0]
        saves = (
            money_text(first.amount_off, currency)
            if first.amount_off is not None
            else f"{(first.percent_off_bp or 0) / 100:g}%"
        )
        return _shortfall(promo, first.threshold, subtotal, f"save {saves}", currency)
    tier = reached[-1]
    amount = (
        tier.amount_off
        if tier.amount_off is not None
        else percent_of(subtotal, tier.percent_off_bp or 0)
    )
    return _order_offer(promo, amount, lines)


def _spend_gift(
    promo: Promo, rules: SpendGiftRules, subtotal: int, facts: CartFacts
) -> Offer | Miss:
    reached = [t for t in rules.tiers if t.threshold <= subtotal]
    if not reached:
        return _shortfall(promo, rules.tiers[0].threshold, subtotal, "get a gift", facts.currency)
    tiers = reached if rules.cumulative else reached[-1:]
    gifts: dict[int, int] = {}
    for tier in tiers:
        gifts[tier.variant_id] = gifts.get(tier.variant_id, 0) + tier.quantity
    given = tuple(
        Gift(variant_id=v, quantity=q)
        for v, q in sorted(gifts.items())
        if facts.stock.get(v, 0) >= q
    )
    if not given:
        return Miss(promo.ref, MissCode.OUT_OF_STOCK, f"the gift of {promo.label} is out of stock")
    return Offer(promotion=promo.ref, amount=0, label=promo.label, gifts=given)


def _units(lines: Sequence[Line]) -> list[tuple[int, int]]:
    """Every unit of ``lines`` as (unit price, variant id), cheapest first."""
    return sorted(
        ((line.unit_price, line.variant_id) for line in lines for _ in range(line.quantity)),
        key=lambda u: (u[0], u[1]),
    )


def _buy_x_get_y(
    promo: Promo, rules: BuyXGetYRules, lines: Sequence[Line], facts: CartFacts
) -> Offer | Miss:
    cap = rules.max_applications
    if rules.get_variant_id is None:
        # The free units are among the targeted ones: each buy+get units make one application,
        # and the cheapest units are the ones discounted.
        units = _units(lines)
        group = rules.buy_quantity + rules.get_quantity
        times = len(units) // group
        if cap is not None:
            times = min(times, cap)
        if times == 0:
            more = group - len(units)
            return Miss(
                promo.ref,
                MissCode.MINIMUM_NOT_MET,
                f"add {more} more to get {rules.get_quantity} "
                + ("free" if rules.percent_off_bp == 10000 else "at a discount"),
            )
        shares: dict[int, int] = {}
        counted: dict[int, int] = {}
        for price, variant_id in units[: times * rules.get_quantity]:
            off = percent_of(price, rules.percent_off_bp)
            shares[variant_id] = shares.get(variant_id, 0) + off
            counted[variant_id] = counted.get(variant_id, 0) + 1
        amount = sum(shares.values())
        return Offer(
            promotion=promo.ref,
            amount=amount,
            label=promo.label,
            line_shares={k: v for k, v in shares.items() if v},
            units=counted,
        )
    get_id = rules.get_variant_id
    bought = sum(line.quantity for line in lines if line.variant_id != get_id)
    times = bought // rules.buy_quantity
    if cap is not None:
        times = min(times, cap)
    if times == 0:
        return Miss(
            promo.ref,
            MissCode.MINIMUM_NOT_MET,
            f"add {rules.buy_quantity - bought} more to get {rules.get_quantity} "
            + ("free" if rules.percent_off_bp == 10000 else "at a discount"),
        )
    wanted = times * rules.get_quantity
    in_cart = [line for line in facts.lines if line.variant_id == get_id]
    if in_cart:
        line = in_cart[0]
        n = min(wanted, line.quantity)
        off = percent_of(line.unit_price, rules.percent_off_bp) * n
        if off <= 0:
            return Miss(
                promo.ref, MissCode.NO_ELIGIBLE_ITEMS, f"{promo.label}: nothing to take off"
            )
        return Offer(
            promotion=promo.ref,
            amount=off,
            label=promo.label,
            line_shares={get_id: off},
            units={get_id: n},
        )
    if rules.percent_off_bp != 10000:
        return Miss(
            promo.ref, MissCode.NO_ELIGIBLE_ITEMS, f"add the discounted item to get {promo.label}"
        )
    if facts.stock.get(get_id, 0) < wanted:
        return Miss(
            promo.ref, MissCode.OUT_OF_STOCK, f"the free item of {promo.label} is out of stock"
        )
    return Offer(
        promotion=promo.ref,
        amount=0,
        label=promo.label,
        gifts=(Gift(variant_id=get_id, quantity=wanted),),
    )


def _bundle(promo: Promo, rules: BundleRules, lines: Sequence[Line], currency: str) -> Offer | Miss:
    # Each bundle item takes its units from the matching lines, dearest first (the set that
    # saves the shopper most); a line serves one item only.
    pools: list[list[tuple[int, int]]] = []
    used_variants: set[int] = set()
    for item in rules.items:
        matching = [
            ln
            for ln in lines
            if ln.variant_id not in used_variants
            and (
                ln.variant_id == item.variant_id
                if item.variant_id is not None
                else ln.product_id == item.product_id
            )
        ]
        used_variants.update(ln.variant_id for ln in matching)
        pool = sorted(
            ((ln.unit_price, ln.variant_id) for ln in matching for _ in range(ln.quantity)),
            key=lambda u: (-u[0], u[1]),
        )
        pools.append(pool)
    sets = min(len(pool) // item.quantity for pool, item in zip(pools, rules.items, strict=True))
    if rules.max_applications is not None:
        sets = min(sets, rules.max_applications)
    if sets == 0:
        return Miss(
            promo.ref, MissCode.NO_ELIGIBLE_ITEMS, f"add every item of {promo.label} to the cart"
        )
    value: dict[int, int] = {}
    for pool, item in zip(pools, rules.items, strict=True):
        for price, variant_id in pool[: sets * item.quantity]:
            value[variant_id] = value.get(variant_id, 0) + price
    amount = sum(value.values()) - sets * rules.price
    if amount <= 0:
        return Miss(
            promo.ref,
            MissCode.NOT_ELIGIBLE,
            f"{promo.label} ({money_text(rules.price, currency)}) is not below the items' price",
        )
    units: dict[int, int] = {}
    for pool, item in zip(pools, rules.items, strict=True):
        for _, variant_id in pool[: sets * item.quantity]:
            units[variant_id] = units.get(variant_id, 0) + 1
    return Offer(
        promotion=promo.ref,
        amount=amount,
        label=promo.label,
        line_shares=allocate(amount, value),
        units=units,
    )


def _group_buy(
    promo: Promo, rules: GroupBuyRules, lines: Sequence[Line], facts: CartFacts
) -> Offer | Miss | None:
    choice = facts.group
    if choice is None or choice.promotion_id != promo.id:
        return None  # a group price needs the shopper to open or join a group
    if choice.group_id is not None:
        expires = aware(choice.group_expires_at)
        if choice.group_status is not GroupStatus.OPEN or (
            expires is not None and facts.at >= expires
        ):
            return Miss(promo.ref, MissCode.EXPIRED, "this group is no longer open")
        if choice.group_full:
            return Miss(promo.ref, MissCode.LIMIT_REACHED, "this group is full")
    shares = {
        line.variant_id: unit_discount(rules, line.unit_price) * line.quantity for line in lines
    }
    shares = {k: v for k, v in shares.items() if v > 0}
    if not shares:
        return Miss(promo.ref, MissCode.NOT_ELIGIBLE, f"{promo.label} is not below the price")
    return Offer(
        promotion=promo.ref,
        amount=sum(shares.values()),
        label=promo.label,
        line_shares=shares,
        units={line.variant_id: line.quantity for line in lines if line.variant_id in shares},
        group_id=choice.group_id,
    )


def shipping_discount(
    quote: ShippingQuote, cap: int | None, quote_codes: Sequence[str] = ()
) -> int:
    """What a shipping offer takes off ``quote``: all of it, at most ``cap``; nothing for a
    quote not in ``quote_codes`` (empty: every quote)."""
    if quote_codes and quote.code not in quote_codes:
        return 0
    return max(0, min(quote.amount, cap) if cap is not None else quote.amount)


def shipping_terms(promo: Promo) -> tuple[int | None, tuple[str, ...]]:
    """(cap, quote codes) of a SHIPPING promotion."""
    rules = promo.rules
    if isinstance(rules, FreeShippingRules):
        return rules.max_discount, tuple(rules.quote_codes)
    if isinstance(rules, CouponRules):
        return rules.max_discount, ()
    return None, ()


def _shipping_offer(
    promo: Promo,
    quotes: Sequence[ShippingQuote],
    cap: int | None,
    quote_codes: Sequence[str],
    code_id: int | None = None,
) -> Offer | Miss:
    applicable = [q for q in quotes if not quote_codes or q.code in quote_codes]
    if quotes and not applicable:
        return Miss(
            promo.ref,
            MissCode.NOT_ELIGIBLE,
            f"{promo.label} is not for these shipping methods",
            code_id=code_id,
        )
    cheapest = min(applicable, key=lambda q: (q.amount, q.code)) if applicable else None
    amount = shipping_discount(cheapest, cap, quote_codes) if cheapest is not None else 0
    return Offer(promotion=promo.ref, amount=amount, label=promo.label, code_id=code_id)


def code_problem(code: CodeOnCart, facts: CartFacts) -> Miss | None:
    """Why a code cannot be used by this shopper now, before what it is worth."""
    promo = code.promo
    assert promo is not None
    if code.disabled:
        return Miss(
            promo.ref,
            MissCode.NOT_ELIGIBLE,
            f"code {code.code} is no longer valid",
            code_id=code.code_id,
        )
    if code.customer_id is not None and code.customer_id != facts.shopper.customer_id:
        return Miss(
            promo.ref,
            MissCode.NOT_ELIGIBLE,
            f"code {code.code} belongs to another customer"
            if facts.shopper.customer_id is not None
            else f"sign in to use code {code.code}",
            code_id=code.code_id,
        )
    expires = aware(code.expires_at)
    if expires is not None and facts.at >= expires:
        return Miss(
            promo.ref, MissCode.EXPIRED, f"code {code.code} has expired", code_id=code.code_id
        )
    if code.max_uses is not None and code.used_count >= code.max_uses:
        return Miss(
            promo.ref,
            MissCode.LIMIT_REACHED,
            f"code {code.code} has been used up",
            code_id=code.code_id,
        )
    return _limits(promo, facts, code.code_id)


def coupon_offer(code: CodeOnCart, facts: CartFacts) -> Offer | Miss:
    """A coupon code on the cart: its offer (ORDER, or SHIPPING for free shipping) or why
    not."""
    promo = code.promo
    assert promo is not None
    rules = promo.rules
    if not isinstance(rules, CouponRules):
        return Miss(
            promo.ref,
            MissCode.NOT_ELIGIBLE,
            f"code {code.code} is not a coupon",
            code_id=code.code_id,
        )
    problem = code_problem(code, facts)
    if problem is not None:
        return problem
    lines = base_lines(promo, facts.lines)
    targeted = [
        ln for ln in facts.lines if promo.targets(ln.product_id, ln.category_id, ln.variant_id)
    ]
    if not lines:
        if targeted:
            clash = next(
                o for ln in targeted for o in ln.product_promotions if not combinable(promo.ref, o)
            )
            return Miss(
                promo.ref,
                MissCode.NOT_COMBINABLE,
                f"not combinable with {clash.label}",
                code_id=code.code_id,
            )
        return _no_items(promo, code.code_id)
    subtotal = sum(line.total for line in lines)
    amount_off = code.amount_off if code.amount_off is not None else rules.amount_off
    if subtotal < rules.min_spend:
        what = (
            f"use {promo.label}"
            if amount_off is None
            else f"save {money_text(amount_off, facts.currency)}"
        )
        return _shortfall(promo, rules.min_spend, subtotal, what, facts.currency, code.code_id)
    if rules.free_shipping and code.amount_off is None:
        return _shipping_offer(promo, facts.quotes, rules.max_discount, (), code.code_id)
    if amount_off is not None:
        amount = min(amount_off, subtotal)
    else:
        amount = percent_of(subtotal, rules.percent_off_bp or 0)
        if rules.max_discount is not None:
            amount = min(amount, rules.max_discount)
    return _order_offer(promo, amount, lines, code.code_id)


def is_order_or_shipping(promo: Promo) -> bool:
    return promo.promotion_class in (PromotionClass.ORDER, PromotionClass.SHIPPING)


def gift_variants(promos: Sequence[Promo]) -> list[int]:
    """The variants the promotions may give (their stock is read once for the cart)."""
    found: list[int] = []
    for promo in promos:
        rules = promo.rules
        if isinstance(rules, SpendGiftRules):
            found.extend(t.variant_id for t in rules.tiers)
        elif isinstance(rules, BuyXGetYRules) and rules.get_variant_id is not None:
            found.append(rules.get_variant_id)
    return found


def effect_text(promo: Promo, currency: str) -> str:
    """A promotion's effect in a few words, for a product page ("20% off", "¥99.00",
    "spend ¥300.00 save ¥40.00")."""
    rules = promo.rules
    kind = promo.kind
    percent = getattr(rules, "percent_off_bp", None)
    fixed = getattr(rules, "fixed_price", None)
    if kind in (PromotionKind.FLASH_SALE, PromotionKind.MEMBER_DEAL, PromotionKind.GROUP_BUY):
        text = (
            f"{percent / 100:g}% off"
            if percent is not None
            else f"{money_text(fixed or 0, currency)}"
        )
        if isinstance(rules, GroupBuyRules):
            text += f" when {rules.size} join within {rules.hours} h"
        return text
    if isinstance(rules, SpendSaveRules):
        if rules.per_every is not None:
            e = rules.per_every
            return f"{money_text(e.amount_off, currency)} off every {money_text(e.every, currency)}"
        return ", ".join(
            f"spend {money_text(t.threshold, currency)} save "
            + (
                money_text(t.amount_off, currency)
                if t.amount_off is not None
                else f"{(t.percent_off_bp or 0) / 100:g}%"
            )
            for t in rules.tiers
        )
    if isinstance(rules, SpendGiftRules):
        return ", ".join(
            f"spend {money_text(t.threshold, currency)} get a gift" for t in rules.tiers
        )
    if isinstance(rules, BuyXGetYRules):
        off = "free" if rules.percent_off_bp == 10000 else f"{rules.percent_off_bp / 100:g}% off"
        return f"buy {rules.buy_quantity} get {rules.get_quantity} {off}"
    if isinstance(rules, BundleRules):
        return f"bundle of {len(rules.items)} for {money_text(rules.price, currency)}"
    if isinstance(rules, CouponRules):
        if rules.free_shipping:
            return "free shipping"
        if rules.amount_off is not None:
            return f"{money_text(rules.amount_off, currency)} off"
        return f"{(rules.percent_off_bp or 0) / 100:g}% off"
    if isinstance(rules, FreeShippingRules):
        return (
            f"free shipping from {money_text(rules.min_spend, currency)}"
            if rules.min_spend
            else "free shipping"
        )
    return promo.label
