"""Competitor monitoring: competitors' prices matched to our variants, and the alerts they
raise (docs/plugins/pricing.md, "Competitor monitoring").

Prices come in through the ``recordCompetitorPrices`` mutation, the CSV import command and
the signed webhook; all three call :func:`record_prices`. A row names our variant by GTIN
(``ProductVariant.barcode``) or SKU; a row that names nothing we sell, or names it in another
currency, is reported back with the reason and never guessed.

Written once: a competitor is created on first sight with ``INSERT … ON CONFLICT DO NOTHING``
(two imports at once make one), a sighting is unique per (competitor, variant, observed_at)
and inserted the same way (a file imported twice is one row per sighting), and an alert has
an ``open`` slot unique per (competitor, variant, kind) while it is OPEN, so of two imports
raising the same alert at once one inserts it and the other inserts nothing.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.stats import median_abs_deviation
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.pricing.models import (
    NAME_MAX,
    REASON_MAX,
    Competitor,
    CompetitorPrice,
    ObservationSource,
    PriceAlert,
    PriceAlertKind,
    PriceAlertState,
)
from plugins.pricing.service import rules
from plugins.pricing.service.sql import insert_for
from server.graphql.money import exponent
from server.models import Product, ProductVariant, utcnow
from server.plugin import (
    Conflict,
    DemoShop,
    Kpi,
    KpiBucket,
    KpiUnit,
    NotFound,
    PriceItem,
    ValidationFailed,
    emit_event,
)
from server.services.forecasts import day_start, shop_day

# The outbox event of a new alert (payload: alert_id, kind, competitor_id, competitor,
# product_id, variant_id, our_amount, their_amount, currency).
ALERT_RAISED = "pricing_alert_raised"
# Most rows one call (mutation, webhook) may carry; the CSV command sends its file in chunks
# of this size.
MAX_ROWS = 1000
GTIN_MAX = 32  # as given, blanks included; a GTIN has at most 14 digits
SKU_MAX = 64
NOTE_MAX = REASON_MAX
ACTOR_MAX = 120
# The largest amount an INTEGER column holds.
MAX_AMOUNT = 2**31 - 1
# A sighting may not be dated later than this after the moment it is recorded (clock skew).
FUTURE_TOLERANCE = timedelta(hours=1)
# The consistency constant of the MAD (1/Φ⁻¹(3/4)): robust z = 0.6745·(x − median)/MAD.
MAD_CONSTANT = 0.6745
# When MAD is 0, the mean absolute deviation stands in: z = (x − median)/(1.253314·MeanAD)
# (Iglewicz & Hoaglin; 1.253314 = √(π/2) makes MeanAD consistent for a normal σ).
MEAN_AD_CONSTANT = 1.253314
GTIN_LENGTHS = (8, 12, 13, 14)


class BadPrices(ValidationFailed):
    """A refused input of a whole call: ``code`` says what (EMPTY_LIST, TOO_MANY_ROWS,
    BAD_AMOUNT, BAD_CURRENCY, BAD_OBSERVED_AT, BAD_IDENTIFIER, BAD_COMPETITOR)."""

    def __init__(self, code: str, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
        self.code = code


class AlreadyHandled(Conflict):
    """The alert is no longer in a state the action applies to (someone handled it)."""

    code = "ALREADY_HANDLED"

    def __init__(self, alert: PriceAlert, action: str) -> None:
        super().__init__(
            f"price alert {alert.id} is {alert.state.value}"
            + (f" (by {alert.handled_by})" if alert.handled_by else "")
            + f": it cannot be {action}",
            field="alertId",
        )
        self.alert = alert


class UnmatchedReason(StrEnum):
    """Why a row was not recorded."""

    NO_IDENTIFIER = "NO_IDENTIFIER"  # neither gtin nor sku
    INVALID_GTIN = "INVALID_GTIN"  # not 8–14 digits, or a wrong check digit
    UNKNOWN_GTIN = "UNKNOWN_GTIN"  # no variant has it (and no sku to fall back on)
    UNKNOWN_SKU = "UNKNOWN_SKU"  # no variant nor product has it
    AMBIGUOUS_SKU = "AMBIGUOUS_SKU"  # a product's sku, and the product has several variants
    IDENTIFIERS_DISAGREE = "IDENTIFIERS_DISAGREE"  # gtin and sku name different variants
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # not the currency our product is sold in


@dataclass(frozen=True)
class PriceRow:
    """One competitor price as given: ``amount`` in minor units of ``currency``."""

    amount: int
    currency: str
    observed_at: datetime
    gtin: str | None = None
    sku: str | None = None


@dataclass(frozen=True)
class Unmatched:
    """A row left out: ``row`` is its position in the call (1 for the first)."""

    row: int
    reason: UnmatchedReason
    message: str
    gtin: str | None
    sku: str | None


@dataclass
class Recorded:
    """What a call did."""

    competitor_id: int
    competitor: str
    recorded: int = 0  # new sightings written
    duplicates: int = 0  # sightings we held already (or twice in the call)
    unmatched: list[Unmatched] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)  # alerts raised by this call


@dataclass(frozen=True)
class _Match:
    index: int
    row: PriceRow
    variant: ProductVariant
    product: Product


# --- input ------------------------------------------------------------------------------------


def normalise_gtin(raw: str) -> str | None:
    """The GTIN-14 form of ``raw``: blanks (spaces, tabs) and dashes dropped, then left-padded
    with zeros to 14 digits, so an EAN-13, a UPC-A (GTIN-12), a GTIN-8 and a GTIN-14 of the same
    item compare equal, and a code whose leading zero a spreadsheet ate (an 11-digit UPC-A)
    still matches. None when what is left is not 8 to 14 digits (11 allowed) or its GS1 check
    digit is wrong."""
    digits = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 14:
        return None
    padded = digits.zfill(14)
    body, check = padded[:-1], int(padded[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    if (10 - total % 10) % 10 != check:
        return None
    return padded


def gtin_forms(gtin14: str) -> list[str]:
    """The ways a GTIN-14 may be stored as a barcode (8, 12, 13 or 14 digits): the number
    without its leading zeros, zero-padded to each length it fits."""
    core = gtin14.lstrip("0") or "0"
    return [core.zfill(n) for n in GTIN_LENGTHS if len(core) <= n]


def _check(rows: Sequence[PriceRow], competitor: str, at: datetime) -> str:
    name = " ".join(competitor.split())
    if not name or len(name) > NAME_MAX:
        raise BadPrices(
            "BAD_COMPETITOR",
            f"a competitor's name has 1 to {NAME_MAX} characters",
            field="competitor",
        )
    if not rows:
        raise BadPrices("EMPTY_LIST", "give at least one price", field="prices")
    if len(rows) > MAX_ROWS:
        raise BadPrices(
            "TOO_MANY_ROWS",
            f"at most {MAX_ROWS} prices per call ({len(rows)} given)",
            field="prices",
        )
    for i, row in enumerate(rows):
        where = f"prices[{i}]"
        if not 0 < row.amount <= MAX_AMOUNT:
            raise BadPrices(
                "BAD_AMOUNT",
                f"row {i + 1}: an amount is a positive number of minor units (got {row.amount})",
                field=f"{where}.amount",
            )
        code = row.currency.strip()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise BadPrices(
                "BAD_CURRENCY",
                f"row {i + 1}: a currency is a 3-letter ISO 4217 code (got {row.currency[:10]!r})",
                field=f"{where}.currency",
            )
        if len(row.gtin or "") > GTIN_MAX or len(row.sku or "") > SKU_MAX:
            raise BadPrices(
                "BAD_IDENTIFIER",
                f"row {i + 1}: a gtin has at most {GTIN_MAX} characters, a sku {SKU_MAX}",
                field=f"{where}.gtin" if len(row.gtin or "") > GTIN_MAX else f"{where}.sku",
            )
        if _utc(row.observed_at) > at + FUTURE_TOLERANCE:
            raise BadPrices(
                "BAD_OBSERVED_AT",
                f"row {i + 1}: observed_at {row.observed_at.isoformat()} is in the future",
                field=f"{where}.observedAt",
            )
    return name


def _utc(moment: datetime) -> datetime:
    """A moment in UTC; a naive one is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- matching -----------------------------------------------------------------------------------


async def match_rows(
    session: AsyncSession, rows: Sequence[PriceRow]
) -> tuple[list[_Match], list[Unmatched]]:
    """Each row's variant, in three statements whatever the number of rows: by GTIN first
    (every stored form of it), else by the variant's SKU, else by a product's SKU when that
    product has exactly one variant. SKUs compare as the catalogue stores them (upper case,
    blanks around dropped)."""
    gtins: dict[int, str] = {}
    unmatched: list[Unmatched] = []
    invalid: set[int] = set()
    for i, row in enumerate(rows):
        if row.gtin and row.gtin.strip():
            normal = normalise_gtin(row.gtin)
            if normal is None:
                invalid.add(i)
            else:
                gtins[i] = normal
    skus = {i: row.sku.strip().upper() for i, row in enumerate(rows) if row.sku and row.sku.strip()}

    by_gtin: dict[str, tuple[ProductVariant, Product]] = {}
    forms = {form: g for g in set(gtins.values()) for form in gtin_forms(g)}
    if forms:
        found = await session.execute(
            select(ProductVariant, Product)
            .join(Product, col(Product.id) == col(ProductVariant.product_id))
            .where(col(ProductVariant.barcode).in_(list(forms)))
        )
        for variant, product in found:
            by_gtin[forms[variant.barcode or ""]] = (variant, product)

    by_sku: dict[str, tuple[ProductVariant, Product] | int] = {}
    if skus:
        wanted = sorted(set(skus.values()))
        found = await session.execute(
            select(ProductVariant, Product)
            .join(Product, col(Product.id) == col(ProductVariant.product_id))
            .where(col(ProductVariant.sku).in_(wanted))
        )
        for variant, product in found:
            by_sku[variant.sku] = (variant, product)
        # A product's own SKU names its variant when it has only one.
        rest = [s for s in wanted if s not in by_sku]
        if rest:
            found = await session.execute(
                select(ProductVariant, Product)
                .join(Product, col(Product.id) == col(ProductVariant.product_id))
                .where(col(Product.sku).in_(rest))
            )
            per_product: dict[str, list[tuple[ProductVariant, Product]]] = defaultdict(list)
            for variant, product in found:
                per_product[product.sku].append((variant, product))
            for sku, pairs in per_product.items():
                by_sku[sku] = pairs[0] if len(pairs) == 1 else len(pairs)

    matches: list[_Match] = []
    for i, row in enumerate(rows):

        def miss(reason: UnmatchedReason, message: str, i: int = i, row: PriceRow = row) -> None:
            unmatched.append(Unmatched(i + 1, reason, message, row.gtin, row.sku))

        from_gtin = by_gtin.get(gtins[i]) if i in gtins else None
        from_sku = by_sku.get(skus[i]) if i in skus else None
        if i not in gtins and i not in skus:
            if i in invalid:
                miss(UnmatchedReason.INVALID_GTIN, f"{row.gtin!r} is not a valid GTIN")
            else:
                miss(UnmatchedReason.NO_IDENTIFIER, "give a gtin or a sku")
            continue
        if isinstance(from_sku, int):
            if from_gtin is None:
                miss(
                    UnmatchedReason.AMBIGUOUS_SKU,
                    f"{row.sku!r} is a product with {from_sku} variants: give the variant's "
                    "sku or its gtin",
                )
                continue
            from_sku = None
        if from_gtin is not None and from_sku is not None and from_gtin[0].id != from_sku[0].id:
            miss(
                UnmatchedReason.IDENTIFIERS_DISAGREE,
                f"gtin {row.gtin!r} is {from_gtin[0].sku}, sku {row.sku!r} another variant",
            )
            continue
        pair = from_gtin or from_sku
        if pair is None:
            if i in invalid and i not in skus:
                miss(UnmatchedReason.INVALID_GTIN, f"{row.gtin!r} is not a valid GTIN")
            elif i in skus:
                miss(UnmatchedReason.UNKNOWN_SKU, f"no variant or product has sku {row.sku!r}")
            else:
                miss(UnmatchedReason.UNKNOWN_GTIN, f"no variant has gtin {row.gtin!r}")
            continue
        variant, product = pair
        if row.currency.strip().upper() != product.currency.upper():
            miss(
                UnmatchedReason.CURRENCY_MISMATCH,
                f"{variant.sku} is sold in {product.currency}, the price is in "
                f"{row.currency.strip().upper()}",
            )
            continue
        matches.append(_Match(i, row, variant, product))
    unmatched.sort(key=lambda u: u.row)
    return matches, unmatched


# --- recording ----------------------------------------------------------------------------------


async def competitor_id(session: AsyncSession, name: str) -> int:
    """The id of competitor ``name``, created on first sight (one row even when two
    transactions see it first at once: the later waits for the earlier and inserts nothing)."""
    insert = insert_for(session)
    await session.execute(
        insert(Competitor)
        .values(name=name, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    found = await session.scalar(select(col(Competitor.id)).where(col(Competitor.name) == name))
    assert found is not None
    return int(found)


async def record_prices(
    session: AsyncSession,
    config: Any,
    competitor_name: str,
    rows: Sequence[PriceRow],
    source: ObservationSource,
    at: datetime | None = None,
    *,
    emit: bool = True,
) -> Recorded:
    """Record a competitor's prices, in the session's transaction (the caller commits).

    Refuses the whole call (:class:`BadPrices`, nothing written) for an empty or too long list,
    an amount that is not a positive integer of minor units, a currency that is not a 3-letter
    code, an identifier too long, or a sighting dated in the future. Otherwise each row is
    matched (:func:`match_rows`); the unmatched are reported; the matched are inserted unless
    held already; then the newest new sighting per variant may raise alerts
    (:func:`evaluate`)."""
    at = _utc(at or utcnow())
    name = _check(rows, competitor_name, at)
    cid = await competitor_id(session, name)
    result = Recorded(competitor_id=cid, competitor=name)
    matches, result.unmatched = await match_rows(session, rows)
    if not matches:
        return result

    # One value per sighting: the same sighting twice in one call is a duplicate too.
    unique: dict[tuple[int, datetime], _Match] = {}
    for m in matches:
        assert m.variant.id is not None
        unique.setdefault((m.variant.id, _utc(m.row.observed_at)), m)
    result.duplicates = len(matches) - len(unique)
    insert = insert_for(session)
    values = [
        {
            "competitor_id": cid,
            "product_id": m.product.id,
            "variant_id": variant_id,
            "amount": m.row.amount,
            "currency": m.product.currency,
            "observed_at": observed_at,
            "source": source,
            "recorded_at": at,
        }
        # Sorted, so two imports at once take the rows' locks in one order (no deadlock).
        for (variant_id, observed_at), m in sorted(unique.items(), key=lambda kv: kv[0])
    ]
    new: list[tuple[int, int, datetime]] = []  # (sighting id, variant id, observed_at)
    for start in range(0, len(values), 500):
        inserted = await session.execute(
            insert(CompetitorPrice)
            .values(values[start : start + 500])
            .on_conflict_do_nothing(index_elements=["competitor_id", "variant_id", "observed_at"])
            .returning(
                col(CompetitorPrice.id),
                col(CompetitorPrice.variant_id),
                col(CompetitorPrice.observed_at),
            )
        )
        new.extend((int(a), int(b), _utc(c)) for a, b, c in inserted)
    result.recorded = len(new)
    result.duplicates += len(unique) - len(new)
    if new:
        result.alert_ids = await evaluate(session, config, cid, name, new, unique, at, emit=emit)
    return result


# --- alerts -------------------------------------------------------------------------------------


def undercuts(ours: int, theirs: int, threshold_bp: int) -> bool:
    """Whether ``theirs`` is below ``ours`` by more than ``threshold_bp`` basis points of ours:
    (ours − theirs)/ours > bp/10 000, computed in integers ((ours − theirs)·10 000 > bp·ours),
    so a price exactly at the threshold does not fire."""
    return ours > 0 and (ours - theirs) * 10_000 > threshold_bp * ours


def robust_z(value: float, history: Sequence[float]) -> float:
    """How far ``value`` lies from the median of ``history`` in robust standard deviations:
    0.6745·(x − median)/MAD (Iglewicz & Hoaglin's modified z-score). When MAD is 0 (more than
    half the prices equal) the mean absolute deviation stands in, (x − median)/(1.253314·
    MeanAD); when that is 0 too (a price that never moved) any move is infinitely far (±inf)
    and no move is 0."""
    prices = np.asarray(history, dtype=float)
    median = float(np.median(prices))
    mad = float(median_abs_deviation(prices, scale=1.0))
    if mad > 0:
        return MAD_CONSTANT * (value - median) / mad
    mean_ad = float(np.mean(np.abs(prices - median)))
    if mean_ad > 0:
        return (value - median) / (MEAN_AD_CONSTANT * mean_ad)
    if value == median:
        return 0.0
    return math.copysign(math.inf, value - median)


def _money(amount: float, currency: str) -> str:
    digits = exponent(currency)
    return f"{amount / 10**digits:,.{digits}f} {currency}"


async def evaluate(
    session: AsyncSession,
    config: Any,
    cid: int,
    name: str,
    new: Sequence[tuple[int, int, datetime]],
    matched: dict[tuple[int, datetime], _Match],
    at: datetime,
    *,
    emit: bool = True,
) -> list[int]:
    """Raise the alerts of the new sightings ``new`` (id, variant, observed_at) of competitor
    ``cid``: only a variant's newest new sighting counts, and only if no later one of this
    competitor is held (a late, older sighting changes history, not the present)."""
    newest: dict[int, tuple[int, datetime]] = {}
    for sighting_id, variant_id, observed_at in new:
        if variant_id not in newest or observed_at > newest[variant_id][1]:
            newest[variant_id] = (sighting_id, observed_at)
    variant_ids = sorted(newest)
    window = timedelta(days=config.abnormal_window_days)
    since = min(t for _, t in newest.values()) - window
    # Every sighting of this competitor for these variants in the windows (one statement).
    history: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    found = await session.execute(
        select(
            col(CompetitorPrice.variant_id),
            col(CompetitorPrice.observed_at),
            col(CompetitorPrice.amount),
        ).where(
            col(CompetitorPrice.competitor_id) == cid,
            col(CompetitorPrice.variant_id).in_(variant_ids),
            col(CompetitorPrice.observed_at) >= since,
        )
    )
    for variant_id, observed_at, amount in found:
        history[int(variant_id)].append((_utc(observed_at), int(amount)))

    current: dict[int, _Match] = {}
    for variant_id, (_, observed_at) in sorted(newest.items()):
        if any(t > observed_at for t, _ in history[variant_id]):
            continue  # a later sighting is held: this one is history
        current[variant_id] = matched[(variant_id, observed_at)]
    if not current:
        return []
    items = {
        vid: PriceItem(
            product=m.product, variant=m.variant, quantity=1, base=m.variant.price_amount
        )
        for vid, m in current.items()
    }
    ours = await rules.public_prices(session, items, at, config)

    raised: list[int] = []
    insert = insert_for(session)
    for variant_id, m in current.items():
        sighting_id, observed_at = newest[variant_id]
        theirs, currency = m.row.amount, m.product.currency
        our = ours[variant_id]
        kinds: list[tuple[PriceAlertKind, str]] = []
        if undercuts(our, theirs, config.undercut_alert_bp):
            share = (our - theirs) / our
            kinds.append(
                (
                    PriceAlertKind.UNDERCUT,
                    f"{name} sells {m.variant.sku} at {_money(theirs, currency)}, "
                    f"{share:.1%} below our {_money(our, currency)}",
                )
            )
        before = [a for t, a in history[variant_id] if observed_at - window <= t < observed_at]
        if len(before) >= config.abnormal_min_observations:
            z = robust_z(theirs, before)
            if abs(z) > config.abnormal_move_z:
                median = float(np.median(before))
                kinds.append(
                    (
                        PriceAlertKind.ABNORMAL_MOVE,
                        f"{name} moved {m.variant.sku} to {_money(theirs, currency)} from a "
                        f"median of {_money(median, currency)} over {len(before)} prices "
                        f"(robust z {'∞' if math.isinf(z) else f'{z:+.1f}'})",
                    )
                )
        for kind, detail in kinds:
            new_id = await session.scalar(
                insert(PriceAlert)
                .values(
                    kind=kind,
                    competitor_id=cid,
                    product_id=m.product.id,
                    variant_id=variant_id,
                    observation_id=sighting_id,
                    our_amount=our,
                    their_amount=theirs,
                    detail=detail[:REASON_MAX],
                    state=PriceAlertState.OPEN,
                    open=1,
                    created_at=at,
                    handled_by="",
                    note="",
                )
                .on_conflict_do_nothing(
                    index_elements=["competitor_id", "variant_id", "kind", "open"]
                )
                .returning(col(PriceAlert.id))
            )
            if new_id is None:
                continue  # open already: raised before, by this import or another
            raised.append(int(new_id))
            if emit:
                await emit_event(
                    session,
                    ALERT_RAISED,
                    {
                        "alert_id": int(new_id),
                        "kind": kind.value,
                        "competitor_id": cid,
                        "competitor": name,
                        "product_id": m.product.id,
                        "variant_id": variant_id,
                        "our_amount": our,
                        "their_amount": theirs,
                        "currency": currency,
                    },
                )
    return raised


# --- operators ----------------------------------------------------------------------------------


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ValidationFailed(f"a note has at most {NOTE_MAX} characters", field="note")
    return note


async def _move(
    session: AsyncSession,
    alert_id: int,
    *,
    sources: Sequence[PriceAlertState],
    target: PriceAlertState,
    actor: str,
    note: str,
    action: str,
) -> PriceAlert:
    note = _note(note)
    moved = await session.execute(
        update(PriceAlert)
        .where(col(PriceAlert.id) == alert_id, col(PriceAlert.state).in_(sources))
        .values(
            state=target,
            open=None,  # frees the slot: the next sighting may raise a new alert
            handled_by=actor[:ACTOR_MAX],
            handled_at=utcnow(),
            note=note,
        )
        .execution_options(synchronize_session=False)
    )
    alert = await session.get(PriceAlert, alert_id, populate_existing=True)
    if alert is None:
        raise NotFound("price alert", alert_id, field="alertId")
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        raise AlreadyHandled(alert, action)
    return alert


async def acknowledge(
    session: AsyncSession, alert_id: int, actor: str, note: str = ""
) -> PriceAlert:
    """OPEN → ACKNOWLEDGED (seen, being looked at), with one conditional UPDATE: of two
    operators at once, one does it and the other gets ALREADY_HANDLED."""
    return await _move(
        session,
        alert_id,
        sources=[PriceAlertState.OPEN],
        target=PriceAlertState.ACKNOWLEDGED,
        actor=actor,
        note=note,
        action="acknowledged",
    )


async def act(session: AsyncSession, alert_id: int, actor: str, note: str = "") -> PriceAlert:
    """OPEN or ACKNOWLEDGED → ACTED (dealt with: what was done is the note, e.g. "matched the
    price with a rule"; prices themselves change through the rules' mutations)."""
    return await _move(
        session,
        alert_id,
        sources=[PriceAlertState.OPEN, PriceAlertState.ACKNOWLEDGED],
        target=PriceAlertState.ACTED,
        actor=actor,
        note=note,
        action="acted on",
    )


# --- reads --------------------------------------------------------------------------------------


def competitors_query() -> Any:
    return select(Competitor)


def prices_query(product_id: int | None, competitor_id: int | None) -> Any:
    """Competitor sightings, of one product and/or one competitor (None: all)."""
    query = select(CompetitorPrice)
    if product_id is not None:
        query = query.where(col(CompetitorPrice.product_id) == product_id)
    if competitor_id is not None:
        query = query.where(col(CompetitorPrice.competitor_id) == competitor_id)
    return query


def alerts_query(state: PriceAlertState | None, kind: PriceAlertKind | None) -> Any:
    query = select(PriceAlert)
    if state is not None:
        query = query.where(col(PriceAlert.state) == state)
    if kind is not None:
        query = query.where(col(PriceAlert.kind) == kind)
    return query


async def latest_prices(
    session: AsyncSession, product_ids: Sequence[int]
) -> dict[int, list[CompetitorPrice]]:
    """Each product's newest sighting per competitor and variant, in one statement; per
    product ordered by amount (cheapest first), then competitor."""
    if not product_ids:
        return {}
    newest = (
        select(
            col(CompetitorPrice.competitor_id),
            col(CompetitorPrice.variant_id),
            func.max(col(CompetitorPrice.observed_at)).label("observed_at"),
        )
        .where(col(CompetitorPrice.product_id).in_(product_ids))
        .group_by(col(CompetitorPrice.competitor_id), col(CompetitorPrice.variant_id))
        .subquery()
    )
    rows = await session.scalars(
        select(CompetitorPrice)
        .join(
            newest,
            (col(CompetitorPrice.competitor_id) == newest.c.competitor_id)
            & (col(CompetitorPrice.variant_id) == newest.c.variant_id)
            & (col(CompetitorPrice.observed_at) == newest.c.observed_at),
        )
        .order_by(col(CompetitorPrice.amount), col(CompetitorPrice.competitor_id))
    )
    out: dict[int, list[CompetitorPrice]] = defaultdict(list)
    for row in rows:
        out[row.product_id].append(row)
    return out


# --- KPIs ---------------------------------------------------------------------------------------


async def _per_day(
    session: AsyncSession, buckets: Sequence[KpiBucket], query: Any
) -> dict[date, set[int]]:
    start = day_start(min(b.start for b in buckets))
    end = day_start(max(b.end for b in buckets))
    found = await session.execute(query(start, end))
    out: dict[date, set[int]] = defaultdict(set)
    for moment, key in found:
        out[shop_day(_utc(moment))].add(int(key))
    return out


async def undercut_alerts(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """Per bucket: UNDERCUT alerts raised in it."""
    if not buckets:
        return []
    days = await _per_day(
        session,
        buckets,
        lambda start, end: select(col(PriceAlert.created_at), col(PriceAlert.id)).where(
            col(PriceAlert.kind) == PriceAlertKind.UNDERCUT,
            col(PriceAlert.created_at) >= start,
            col(PriceAlert.created_at) < end,
        ),
    )
    return [
        float(sum(len(ids) for day, ids in days.items() if b.start <= day < b.end)) for b in buckets
    ]


async def undercut_share(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    """Per bucket: of the products with a competitor price seen in it, the share that had an
    UNDERCUT alert raised in it (None when no competitor price was seen)."""
    if not buckets:
        return []
    tracked = await _per_day(
        session,
        buckets,
        lambda start, end: select(
            col(CompetitorPrice.observed_at), col(CompetitorPrice.product_id)
        ).where(col(CompetitorPrice.observed_at) >= start, col(CompetitorPrice.observed_at) < end),
    )
    undercut = await _per_day(
        session,
        buckets,
        lambda start, end: select(col(PriceAlert.created_at), col(PriceAlert.product_id)).where(
            col(PriceAlert.kind) == PriceAlertKind.UNDERCUT,
            col(PriceAlert.created_at) >= start,
            col(PriceAlert.created_at) < end,
        ),
    )
    out: list[float | None] = []
    for b in buckets:
        seen = set().union(*(ids for day, ids in tracked.items() if b.start <= day < b.end))
        cut = set().union(*(ids for day, ids in undercut.items() if b.start <= day < b.end))
        out.append(len(cut & seen) / len(seen) if seen else None)
    return out


def kpis() -> list[Kpi]:
    return [
        Kpi(
            "pricing.competitor_undercuts",
            "Competitor undercuts",
            KpiUnit.COUNT,
            undercut_alerts,
            description="UNDERCUT alerts raised: a competitor cheaper than our public price by "
            "more than the set share.",
            higher_is_better=False,
        ),
        Kpi(
            "pricing.undercut_share",
            "Tracked products undercut",
            KpiUnit.RATIO,
            undercut_share,
            description="Of the products with a competitor price seen in the period, the share "
            "with an UNDERCUT alert raised in it.",
            higher_is_better=False,
        ),
    ]


# --- demo ---------------------------------------------------------------------------------------

DEMO_COMPETITORS = ("京东自营", "天猫旗舰店")
DEMO_PRODUCTS = 6
DEMO_DAYS = 21
# The daily wobble of a demo competitor's price around its level, cycling: a full cycle is in
# every window, so the wobble itself is never an abnormal move (|z| ≤ 1.35).
DEMO_WOBBLE = (0.0, 0.01, -0.01, 0.005, -0.005)


async def demo(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """Two competitors with three weeks of daily prices for a few demo products, close to
    ours. The first slides one product's price down to a fifth below ours over the weeks (an
    UNDERCUT alert when it passes the threshold, once: the alert stays open); on the last day
    the second jumps another product's price up by a third (an ABNORMAL_MOVE alert). Both
    emit their ``pricing_alert_raised`` events."""
    if len(shop.product_ids) < 2:
        return {}
    chosen = rng.sample(list(shop.product_ids), min(DEMO_PRODUCTS, len(shop.product_ids)))
    found = await session.execute(
        select(ProductVariant, Product)
        .join(Product, col(Product.id) == col(ProductVariant.product_id))
        .where(col(Product.id).in_(chosen))
        .order_by(col(Product.id), col(ProductVariant.position), col(ProductVariant.id))
    )
    first: dict[int, tuple[ProductVariant, Product]] = {}
    for variant, product in found:
        first.setdefault(product.id or 0, (variant, product))
    pairs = [first[pid] for pid in chosen if pid in first]
    if len(pairs) < 2:
        return {}
    last_day = shop.as_of.replace(hour=2, minute=0, second=0, microsecond=0)
    if last_day > shop.as_of:
        last_day -= timedelta(days=1)
    sliding, jumping = pairs[0][0].id, pairs[1][0].id
    recorded = alerts = 0
    for c, name in enumerate(DEMO_COMPETITORS):
        level = {v.id: v.price_amount * (1.0 + rng.uniform(-0.02, 0.04)) for v, _ in pairs}
        for day in range(DEMO_DAYS, -1, -1):
            at = last_day - timedelta(days=day)
            rows = []
            for v, p in pairs:
                price = level[v.id] * (1 + DEMO_WOBBLE[day % len(DEMO_WOBBLE)])
                if c == 0 and v.id == sliding:
                    price = v.price_amount * (1.0 - 0.2 * (DEMO_DAYS - day) / DEMO_DAYS)
                if c == 1 and v.id == jumping and day == 0:
                    price = level[v.id] * 1.33
                rows.append(
                    PriceRow(
                        amount=max(1, round(price)),
                        currency=p.currency,
                        observed_at=at,
                        sku=v.sku,
                    )
                )
            source = ObservationSource.WEBHOOK if day == 0 else ObservationSource.CSV
            done = await record_prices(session, config, name, rows, source, at)
            recorded += done.recorded
            alerts += len(done.alert_ids)
        progress(f"competitor prices of {name}")
    return {"competitor prices": recorded, "price alerts": alerts}
