"""The discount ledger: each promotion's discount on each order line, frozen when the order is
placed, and read back (batched) for ``Order.promotionLedger`` and for refunds.

What each promotion class leaves in the ledger:
- PRODUCT (and a gift's zero price): its unit-price adjustment on the line × the quantity —
  already inside the unit price the shopper paid;
- ORDER: the order adjustment split over the lines it counted (``Offer.line_shares``), by
  largest remainder, so the entries sum exactly to the adjustment on the order;
- SHIPPING: one entry without a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import LedgerEntry, Promotion, PromotionClass
from plugins.promotions.service.engine import Decision, parse_rule
from server.models import Order, OrderLine


def allocate(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """``total`` split over ``weights``' keys in proportion, by largest remainder: the shares
    sum exactly to ``total``. Ties of remainder go to the larger weight, then the lower key,
    so the split is deterministic. No positive weight: all of it to the lowest key."""
    keys = sorted(weights)
    if not keys:
        return {}
    whole = sum(max(0, w) for w in weights.values())
    if whole <= 0:
        return {k: (total if i == 0 else 0) for i, k in enumerate(keys)}
    shares = {k: total * max(0, weights[k]) // whole for k in keys}
    left = total - sum(shares.values())
    by_remainder = sorted(
        keys, key=lambda k: (-((total * max(0, weights[k])) % whole), -weights[k], k)
    )
    for k in by_remainder[:left]:
        shares[k] += 1
    return shares


def half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up (away from zero for halves), exactly."""
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def plugin_rules(adjustments: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """{promotion id: discount (positive)} of this plugin's adjustments among ``adjustments``
    (stored dicts with ``rule`` and ``amount``)."""
    found: dict[int, int] = {}
    for adjustment in adjustments:
        parsed = parse_rule(str(adjustment.get("rule", "")))
        if parsed is not None:
            found[parsed[0]] = found.get(parsed[0], 0) - int(adjustment.get("amount", 0))
    return found


@dataclass(frozen=True)
class Frozen:
    """What an order's ledger holds, by promotion: the entries (line id or None, class,
    amount) and the units counted."""

    entries: dict[int, list[tuple[int | None, PromotionClass, int]]]
    units: dict[int, int]

    def amount_of(self, promotion_id: int) -> int:
        return sum(amount for _, _, amount in self.entries.get(promotion_id, []))


def freeze(
    order: Order,
    lines: Sequence[OrderLine],
    decision: Decision,
    shipping: Mapping[int, int] | None = None,
) -> Frozen:
    """The ledger of ``order`` as placed with ``decision`` (nothing written yet).

    PRODUCT entries come from the lines' stored adjustments (the truth of what was paid);
    ORDER entries split the order's stored adjustment of each offer over the offer's line
    shares (mapped variant → order line), so they sum exactly to what the order took off;
    a SHIPPING offer is one entry of ``shipping[promotion id]`` (what the chosen quote's
    adjustment took off) or, when the order does not say, the offer's amount."""
    entries: dict[int, list[tuple[int | None, PromotionClass, int]]] = {}
    units: dict[int, int] = {}
    for line in lines:
        assert line.id is not None
        for promotion_id, per_unit in plugin_rules(line.adjustments).items():
            entries.setdefault(promotion_id, []).append(
                (line.id, PromotionClass.PRODUCT, per_unit * line.quantity)
            )
            units[promotion_id] = units.get(promotion_id, 0) + line.quantity
    on_order = plugin_rules(order.adjustments)
    line_of_variant: dict[int, OrderLine] = {}
    for line in sorted(lines, key=lambda ln: ln.id or 0):
        # A gift of a variant also bought: the share goes to the bought (priced) line.
        if line.variant_id not in line_of_variant or line.unit_price_amount > 0:
            line_of_variant.setdefault(line.variant_id, line)
    for offer in decision.applied:
        pid = offer.promotion.id
        cls = offer.promotion.promotion_class
        if cls is PromotionClass.ORDER:
            weights = {
                line_of_variant[v].id or 0: share
                for v, share in offer.line_shares.items()
                if v in line_of_variant
            }
            split = allocate(on_order.get(pid, 0), weights)
            entries.setdefault(pid, []).extend(
                (line_id, cls, amount) for line_id, amount in sorted(split.items()) if amount
            )
            # The units the offer counts; an offer that names none (an amount off the
            # order) counts the units of the lines it was shared over.
            counted = offer.units or {
                v: line_of_variant[v].quantity for v in offer.line_shares if v in line_of_variant
            }
            units[pid] = units.get(pid, 0) + sum(counted.values())
        elif cls is PromotionClass.SHIPPING:
            amount = (shipping or {}).get(pid, offer.amount)
            if amount:
                entries.setdefault(pid, []).append((None, cls, amount))
        elif pid not in units:
            # A PRODUCT offer with no line carrying it: nothing was taken off at this price.
            units[pid] = 0
    return Frozen(entries=_merged(entries), units=units)


def _merged(
    entries: Mapping[int, list[tuple[int | None, PromotionClass, int]]],
) -> dict[int, list[tuple[int | None, PromotionClass, int]]]:
    # One entry per (line, promotion): an ORDER share on a line that also carries the
    # promotion's unit-price adjustment (a named free item) adds to it.
    merged: dict[int, list[tuple[int | None, PromotionClass, int]]] = {}
    for pid, rows in entries.items():
        by_line: dict[int | None, tuple[PromotionClass, int]] = {}
        for line_id, cls, amount in rows:
            if line_id in by_line:
                first, total = by_line[line_id]
                by_line[line_id] = (first, total + amount)
            else:
                by_line[line_id] = (cls, amount)
        merged[pid] = [(line_id, cls, amount) for line_id, (cls, amount) in by_line.items()]
    return merged


def ledger_rows(order_id: int, frozen: Frozen) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            order_id=order_id,
            order_line_id=line_id,
            promotion_id=pid,
            promotion_class=cls,
            amount=amount,
        )
        for pid in sorted(frozen.entries)
        for line_id, cls, amount in frozen.entries[pid]
    ]


@dataclass(frozen=True)
class LedgerLine:
    """One ledger entry as the API shows it, with its promotion's label and the order's
    currency."""

    entry: LedgerEntry
    label: str
    currency: str


def _ledger_select(where: Any) -> Any:
    return (
        select(LedgerEntry, col(Promotion.name), col(Promotion.label), col(Order.currency))
        .join(Promotion, col(Promotion.id) == LedgerEntry.promotion_id)
        .join(Order, col(Order.id) == LedgerEntry.order_id)
        .where(where)
        .order_by(
            col(LedgerEntry.order_id),
            col(LedgerEntry.order_line_id).is_(None),
            col(LedgerEntry.order_line_id),
            col(LedgerEntry.promotion_id),
        )
    )


async def ledgers_of(
    session: AsyncSession, order_ids: Sequence[int]
) -> dict[int, list[LedgerLine]]:
    """{order id: its ledger entries, by line then promotion} for every order of
    ``order_ids``: one statement whatever their number."""
    out: dict[int, list[LedgerLine]] = {i: [] for i in order_ids}
    if order_ids:
        stmt = _ledger_select(col(LedgerEntry.order_id).in_(list(order_ids)))
        for entry, name, label, currency in (await session.execute(stmt)).all():
            out[entry.order_id].append(
                LedgerLine(entry=entry, label=label or name, currency=currency)
            )
    return out


async def ledgers_of_lines(
    session: AsyncSession, line_ids: Sequence[int]
) -> dict[int, list[LedgerLine]]:
    """{order line id: its ledger entries, by promotion}: one statement."""
    out: dict[int, list[LedgerLine]] = {i: [] for i in line_ids}
    if line_ids:
        stmt = _ledger_select(col(LedgerEntry.order_line_id).in_(list(line_ids)))
        for entry, name, label, currency in (await session.execute(stmt)).all():
            out[entry.order_line_id].append(
                LedgerLine(entry=entry, label=label or name, currency=currency)
            )
    return out
