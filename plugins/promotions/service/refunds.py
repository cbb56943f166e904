"""What a return gives back, from the discount ledger: each returned line's price less its
share of every discount, less what a threshold no longer met takes back.

For returned units of a line (quantity q, unit price paid p):

    refund = Σ units × p                                   (PRODUCT discounts are inside p)
           − Σ its ORDER shares taken back                 (cumulative, rounded half up)
           − Σ threshold claw-backs                        (CLAW_BACK promotions only)

The share taken back from a line's ledger entry of amount a, once r of its q units have come
back in all, is ``round_half_up(a × r / q)`` less what earlier returns took: returning every
unit takes back exactly a. A CLAW_BACK promotion whose threshold (a SPEND_SAVE tier or "per
every" step, a COUPON's minimum spend, a SPEND_GIFT tier) the kept units no longer reach is
computed again on the kept units with its own rules (a lower tier may still apply); what the
kept lines still hold beyond that is taken from the refund, never making it negative. A KEEP
promotion leaves the kept lines their discount.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    LedgerEntry,
    LineRefund,
    Promotion,
    PromotionClass,
    PromotionKind,
    ReturnRule,
)
from plugins.promotions.service import kinds
from plugins.promotions.service.ledger import allocate, half_up
from server.models import Order, OrderLine, Product
from server.plugin import ValidationFailed


@dataclass(frozen=True)
class RefundPlan:
    """A refund as the ledger computes it (what ``LineRefund`` records)."""

    gross: int
    taken_back: int
    clawback: int

    @property
    def amount(self) -> int:
        return self.gross - self.taken_back - self.clawback


async def refund_for_lines(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine], returned: Mapping[int, int]
) -> int | None:
    """The refund of the units ``returned`` ({order line id: units}) of ``order``, recorded
    (a ``LineRefund``, the ledger's ``refunded_amount``); None for an order this plugin did
    not discount (the core's default answers)."""
    assert order.id is not None
    entries = list(
        await session.scalars(
            select(LedgerEntry)
            .where(col(LedgerEntry.order_id) == order.id)
            .order_by(col(LedgerEntry.id))
            .with_for_update()
        )
    )
    if not entries:
        return None
    by_id = {line.id: line for line in lines if line.id is not None}
    before = await returned_before(session, order.id)
    after = dict(before)
    for line_id, units in returned.items():
        line = by_id.get(line_id)
        if line is None:
            raise ValidationFailed(
                f"order line {line_id} is not a line of this order", field="lines"
            )
        if units < 1 or before.get(line_id, 0) + units > line.quantity:
            raise ValidationFailed(
                f"{line.sku}: {units} units cannot come back "
                f"({line.quantity - before.get(line_id, 0)} not yet returned)",
                field="lines",
            )
        after[line_id] = before.get(line_id, 0) + units
    plan = await _plan(session, order, by_id, entries, returned, after)
    session.add(
        LineRefund(
            order_id=order.id,
            lines={str(k): v for k, v in sorted(returned.items())},
            gross_amount=plan.gross,
            discount_taken_back=plan.taken_back,
            clawback_amount=plan.clawback,
            amount=plan.amount,
        )
    )
    await session.flush()
    return plan.amount


async def returned_before(session: AsyncSession, order_id: int) -> dict[int, int]:
    """{order line id: units} already returned through this plugin's refunds of the order."""
    out: dict[int, int] = {}
    for lines in await session.scalars(
        select(col(LineRefund.lines)).where(col(LineRefund.order_id) == order_id)
    ):
        for key, units in lines.items():
            out[int(key)] = out.get(int(key), 0) + int(units)
    return out


async def _plan(
    session: AsyncSession,
    order: Order,
    lines: Mapping[int, OrderLine],
    entries: Sequence[LedgerEntry],
    returned: Mapping[int, int],
    after: Mapping[int, int],
) -> RefundPlan:
    gross = sum(units * lines[line_id].unit_price_amount for line_id, units in returned.items())
    taken = 0
    for entry in entries:
        line = lines.get(entry.order_line_id or 0)
        if entry.promotion_class is not PromotionClass.ORDER or line is None:
            continue
        if line.id not in returned:
            continue
        target = half_up(entry.amount * after[line.id or 0], line.quantity)
        take = max(0, min(entry.amount, target) - entry.refunded_amount)
        entry.refunded_amount += take
        taken += take
    taken = min(taken, gross)
    available = gross - taken
    clawback = 0
    by_promotion: dict[int, list[LedgerEntry]] = {}
    for entry in entries:
        by_promotion.setdefault(entry.promotion_id, []).append(entry)
    promotions = {
        p.id or 0: p
        for p in await session.scalars(
            select(Promotion).where(
                col(Promotion.id).in_(sorted(by_promotion)),
                col(Promotion.on_return) == ReturnRule.CLAW_BACK,
            )
        )
    }
    if not promotions:
        return RefundPlan(gross, taken, 0)
    gifts = any(p.kind is PromotionKind.SPEND_GIFT for p in promotions.values())
    categories = await _categories(session, lines.values()) if gifts else {}
    for pid in sorted(promotions):
        if available - clawback <= 0:
            break
        wanted = _clawback(promotions[pid], by_promotion[pid], lines, after, categories)
        amount = min(wanted, available - clawback)
        if amount > 0:
            _spread(amount, by_promotion[pid], lines, after)
            clawback += amount
    return RefundPlan(gross, taken, clawback)


def _kept(line: OrderLine, after: Mapping[int, int]) -> int:
    return line.quantity - after.get(line.id or 0, 0)


def _kept_line(
    entry: LedgerEntry, lines: Mapping[int, OrderLine], after: Mapping[int, int]
) -> OrderLine | None:
    """The entry's line when some of its units are kept (not returned)."""
    line = lines.get(entry.order_line_id or 0)
    return line if line is not None and _kept(line, after) > 0 else None


def _held(entry: LedgerEntry) -> int:
    return entry.amount - entry.refunded_amount


def _spread(
    amount: int,
    entries: Sequence[LedgerEntry],
    lines: Mapping[int, OrderLine],
    after: Mapping[int, int],
) -> None:
    """Mark ``amount`` of claw-back on the kept lines' entries, in proportion to what each
    still holds (largest remainder)."""
    holding = {
        e.id or 0: _held(e)
        for e in entries
        if _kept_line(e, lines, after) is not None and _held(e) > 0
    }
    split = allocate(amount, holding)
    for e in entries:
        e.refunded_amount += split.get(e.id or 0, 0)


def _clawback(
    promotion: Promotion,
    entries: Sequence[LedgerEntry],
    lines: Mapping[int, OrderLine],
    after: Mapping[int, int],
    categories: Mapping[int, int | None],
) -> int:
    """What the kept lines hold of ``promotion``'s discount beyond what they still earn, when
    its threshold is no longer reached; 0 when it still is, or it has no threshold."""
    kept_holding = sum(_held(e) for e in entries if _kept_line(e, lines, after) is not None)
    if kept_holding <= 0:
        return 0
    rules = kinds.parse_rules(promotion.kind, promotion.rules)
    if promotion.kind is PromotionKind.SPEND_GIFT:
        return _gift_clawback(promotion, rules, entries, lines, after, categories)
    counted = [
        line
        for e in entries
        if e.promotion_class is PromotionClass.ORDER
        and (line := lines.get(e.order_line_id or 0)) is not None
    ]
    placed = sum(line.quantity * line.unit_price_amount for line in counted)
    kept = sum(_kept(line, after) * line.unit_price_amount for line in counted)
    if isinstance(rules, kinds.SpendSaveRules):
        if _spend_level(rules, kept) >= _spend_level(rules, placed):
            return 0
        earned = _spend_earned(rules, kept)
    elif isinstance(rules, kinds.CouponRules) and not rules.free_shipping:
        if kept >= rules.min_spend or placed < rules.min_spend:
            return 0
        # Under its minimum spend a coupon earns nothing, whatever its value.
        earned = 0
    else:
        return 0
    return max(0, kept_holding - earned)


def _spend_level(rules: kinds.SpendSaveRules, subtotal: int) -> int:
    """Which step ``subtotal`` reaches: the highest tier's index + 1, or the "per every"
    count (0: none)."""
    if rules.per_every is not None:
        times = subtotal // rules.per_every.every
        cap = rules.per_every.max_times
        return min(times, cap) if cap is not None else times
    return sum(1 for tier in rules.tiers if subtotal >= tier.threshold)


def _spend_earned(rules: kinds.SpendSaveRules, subtotal: int) -> int:
    """SPEND_SAVE's discount on ``subtotal`` (a share rounded half up), never more than it."""
    level = _spend_level(rules, subtotal)
    if level == 0:
        return 0
    if rules.per_every is not None:
        return min(subtotal, level * rules.per_every.amount_off)
    tier = rules.tiers[level - 1]
    if tier.amount_off is not None:
        return min(subtotal, tier.amount_off)
    return half_up(subtotal * (tier.percent_off_bp or 0), 10000)


def _gift_clawback(
    promotion: Promotion,
    rules: Any,
    entries: Sequence[LedgerEntry],
    lines: Mapping[int, OrderLine],
    after: Mapping[int, int],
    categories: Mapping[int, int | None],
) -> int:
    """SPEND_GIFT: the value still held by kept gift units whose tier the kept (targeted,
    non-gift) lines no longer reach."""
    gift_lines = {e.order_line_id for e in entries if e.order_line_id is not None}
    kept = sum(
        _kept(line, after) * line.unit_price_amount
        for line in lines.values()
        if line.id not in gift_lines and _targeted(promotion, line, categories)
    )
    placed = sum(
        line.quantity * line.unit_price_amount
        for line in lines.values()
        if line.id not in gift_lines and _targeted(promotion, line, categories)
    )
    reached = [t for t in rules.tiers if kept >= t.threshold]
    if len(reached) >= len([t for t in rules.tiers if placed >= t.threshold]):
        return 0
    earned = {t.variant_id for t in (reached if rules.cumulative else reached[-1:])}
    return sum(
        _held(e)
        for e in entries
        if (line := _kept_line(e, lines, after)) is not None and line.variant_id not in earned
    )


def _targeted(promotion: Promotion, line: OrderLine, categories: Mapping[int, int | None]) -> bool:
    if not (promotion.product_ids or promotion.category_ids or promotion.variant_ids):
        return True
    return (
        line.product_id in promotion.product_ids
        or line.variant_id in promotion.variant_ids
        or categories.get(line.product_id) in promotion.category_ids
    )


async def _categories(session: AsyncSession, lines: Any) -> dict[int, int | None]:
    product_ids = sorted({line.product_id for line in lines})
    rows = await session.execute(
        select(col(Product.id), col(Product.category_id)).where(col(Product.id).in_(product_ids))
    )
    return {pid: category for pid, category in rows.all() if pid is not None}
