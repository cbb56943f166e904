"""Lifetime value and churn risk of every customer of the shop: the recomputation step ``clv``
(docs/insights.md, "Lifetime value of the shop's customers" and "Churn risk").

A recomputation

1. reads the shop's purchases (the rule of :func:`server.services.rfm.purchase_conditions`)
   with one aggregate statement, one row per customer and UTC day: the day's spend;
2. summarises them (:func:`server.services.clv.summarize_transactions`, time in **days**,
   calibration end = the "as of" day) and fits BG/NBD and Gamma-Gamma;
3. gives every buyer P(alive), the expected purchases and the discounted value over the
   horizon (the shop's settings), with the customer's **realised margin rate** from the cost
   prices of what they bought where known, the default margin rate otherwise;
4. reads each buyer's browsing (one aggregate statement over ``customer_event``) and assesses
   their churn risk (:mod:`server.services.churn`);
5. writes the ``customer_value`` rows that changed, deletes those of customers left without a
   purchase, and adds the fit to ``clv_model_fit`` (the history of fits).

When the data cannot fit a model (:class:`server.services.clv.CannotFit`, or a fit that does
not converge) the figures that need it stay null, with the reason, on every customer and on
the fit: never a guessed number. Like RFM it runs in one write transaction under its own lock
and skips when nothing it reads changed since its last run the same day.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, ColumnElement, case, cast, delete, func, insert, literal_column
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from server.config import Settings
from server.models import (
    ClvModelFit,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerRfm,
    CustomerSegment,
    CustomerValue,
    Order,
    OrderLine,
    ProductVariant,
    utcnow,
)
from server.services import churn, clv, insight_runs, rfm
from server.services.insight_runs import chunks, utc

STEP = "clv"
# Rates per day: the horizon, the churn signals and RFM's recency are all in days.
UNIT: clv.Unit = "day"
# The shopping path's events that count as browsing (purchases come from the orders).
BROWSING_KINDS = (
    CustomerEventKind.VIEW,
    CustomerEventKind.SEARCH,
    CustomerEventKind.FAVORITE,
    CustomerEventKind.ADD_TO_CART,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ValueSettings:
    """What the values are computed with (``Settings.clv_*``)."""

    horizon_days: int
    annual_discount_rate: float
    default_margin_rate: float

    @classmethod
    def of(cls, settings: Settings) -> ValueSettings:
        return cls(
            horizon_days=settings.clv_horizon_days,
            annual_discount_rate=settings.clv_annual_discount_rate,
            default_margin_rate=settings.clv_default_margin_rate,
        )


# --- reading ------------------------------------------------------------------------------------


def _utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a timestamp column (SQLite keeps naive UTC text)."""
    if dialect == "postgresql":
        return func.date(func.timezone(literal_column("'UTC'"), column))
    return func.date(column)


# Rows read per round trip where a statement gives one row per customer and day.
PARTITION = 50_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _days(values: Sequence[Any]) -> npt.NDArray[np.datetime64]:
    """Days as the database gives them — ISO text (SQLite) or dates (PostgreSQL) — as an
    array. numpy parses the text itself; a date goes through its ordinal (numpy converts date
    objects one by one, 15 times slower)."""
    if values and isinstance(values[0], date):
        ordinals = np.fromiter((d.toordinal() for d in values), np.int64, len(values))
        return (ordinals - _EPOCH_ORDINAL).astype("datetime64[D]")
    return np.array(values, dtype="datetime64[D]")


@dataclass(frozen=True)
class Purchases:
    """One row per customer and UTC day with a purchase: the day's spend (minor units); and
    each buyer's account creation, by customer id."""

    customer: IntArray
    day: npt.NDArray[np.datetime64]
    amount: FloatArray
    created_at: dict[int, datetime]

    @property
    def empty(self) -> bool:
        return self.customer.shape[0] == 0


async def read_purchases(
    session: AsyncSession, as_of: datetime, currency: str, dialect: str
) -> Purchases:
    """Every purchase day of every buyer up to ``as_of``, from one aggregate statement, and
    the buyers' account creation.

    The statement gives a row per customer and day (about as many as orders): they are read in
    partitions of :data:`PARTITION` rows, each turned into arrays at once, so that no Python
    object per row outlives its partition. The account creation, one per buyer, is read by id
    afterwards rather than with every day's row."""
    day = _utc_day(col(Order.placed_at), dialect)
    stmt = (
        sa_select(col(Order.customer_id), day, func.sum(col(Order.total_amount)))
        .join(Customer, col(Customer.id) == col(Order.customer_id))
        .where(*rfm.purchase_conditions(as_of, currency))
        .group_by(col(Order.customer_id), day)
        .order_by(col(Order.customer_id), day)
    )
    customers: list[IntArray] = []
    days: list[npt.NDArray[np.datetime64]] = []
    amounts: list[FloatArray] = []
    result = await (await session.connection()).stream(stmt)
    async for rows in result.partitions(PARTITION):
        ids, on, spent = zip(*rows, strict=True)
        customers.append(np.array(ids, dtype=np.int64))
        days.append(_days(on))
        amounts.append(np.array(spent, dtype=np.float64))
    customer = np.concatenate(customers) if customers else np.zeros(0, dtype=np.int64)
    return Purchases(
        customer=customer,
        day=np.concatenate(days) if days else np.zeros(0, dtype="datetime64[D]"),
        amount=np.concatenate(amounts) if amounts else np.zeros(0),
        created_at=await _accounts_created(session, np.unique(customer).tolist()),
    )


async def _accounts_created(session: AsyncSession, ids: Sequence[int]) -> dict[int, datetime]:
    """When each of the customers ``ids`` opened their account."""
    created: dict[int, datetime] = {}
    for chunk in chunks(ids):
        stmt = sa_select(col(Customer.id), col(Customer.created_at)).where(
            col(Customer.id).in_(chunk)
        )
        for customer_id, at in (await session.execute(stmt)).all():
            assert customer_id is not None  # a primary key
            created[customer_id] = utc(at)
    return created


async def realised_margins(
    session: AsyncSession, as_of: datetime, currency: str
) -> dict[int, float]:
    """Each buyer's realised margin rate, 1 − Σ cost / Σ revenue over the lines of their
    purchases whose variant has a cost price (its current one), where that revenue is positive.
    Buyers without such lines are left out (the default margin rate applies to them)."""
    cost = cast(col(OrderLine.quantity), BigInteger()) * col(ProductVariant.cost_amount)
    stmt = (
        sa_select(
            col(Order.customer_id),
            func.sum(col(OrderLine.line_total_amount)),
            func.sum(cost),
        )
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .join(Customer, col(Customer.id) == col(Order.customer_id))
        .join(ProductVariant, col(ProductVariant.id) == col(OrderLine.variant_id))
        .where(*rfm.purchase_conditions(as_of, currency))
        .where(col(ProductVariant.cost_amount).is_not(None))
        .group_by(col(Order.customer_id))
    )
    margins: dict[int, float] = {}
    for customer_id, revenue, costs in (await session.execute(stmt)).all():
        if customer_id is not None and revenue is not None and int(revenue) > 0:
            margins[customer_id] = 1.0 - int(costs or 0) / int(revenue)
    return margins


@dataclass(frozen=True)
class Browsing:
    """A buyer's browsing events: in the last 30 days, in the 150 days before those, and the
    first and last (None without any)."""

    recent: int
    baseline: int
    first: datetime | None
    last: datetime | None


async def read_browsing(
    session: AsyncSession, as_of: datetime, buyers: Collection[int]
) -> dict[int, Browsing]:
    """The browsing of each of ``buyers`` up to ``as_of``, from one aggregate statement.

    The statement counts every signed-in customer's events; those of customers who are not
    buyers are dropped as the rows come. Asking for the buyers in SQL would read the orders a
    second time (on PostgreSQL, one look-up of a customer's orders per event)."""
    at = col(CustomerEvent.occurred_at)
    recent_from = as_of - timedelta(days=churn.RECENT_DAYS)
    baseline_from = recent_from - timedelta(days=churn.BASELINE_DAYS)
    recent: ColumnElement[int] = case((at > recent_from, 1), else_=0)
    baseline: ColumnElement[int] = case(((at > baseline_from) & (at <= recent_from), 1), else_=0)
    stmt = (
        sa_select(
            col(CustomerEvent.customer_id),
            func.sum(recent),
            func.sum(baseline),
            func.min(at),
            func.max(at),
        )
        .where(
            col(CustomerEvent.customer_id).is_not(None),
            col(CustomerEvent.kind).in_(BROWSING_KINDS),
            at <= as_of,
        )
        .group_by(col(CustomerEvent.customer_id))
    )
    found: dict[int, Browsing] = {}
    for customer_id, n_recent, n_baseline, first, last in (await session.execute(stmt)).all():
        if customer_id is None or customer_id not in buyers:
            continue
        found[customer_id] = Browsing(
            recent=int(n_recent or 0),
            baseline=int(n_baseline or 0),
            first=utc(first) if first is not None else None,
            last=utc(last) if last is not None else None,
        )
    return found


def behaviour(
    customer_ids: Sequence[int],
    purchases: Purchases,
    browsing: dict[int, Browsing],
    as_of: datetime,
) -> churn.Behaviour:
    """The churn signals' inputs of ``customer_ids`` (sorted, every one a buyer) as of
    ``as_of``: whole UTC days since the last purchase and the last interaction, the usual
    interval between purchase days, and the browsing windows."""
    n = len(customer_ids)
    index = np.searchsorted(np.asarray(customer_ids, dtype=np.int64), purchases.customer)
    ordinal = purchases.day.astype(np.int64)
    last, usual = churn.purchase_rhythm(index, ordinal, n)
    first_purchase = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_purchase, index, ordinal)
    today = np.datetime64(as_of.date(), "D").astype(np.int64)
    recent_from = as_of - timedelta(days=churn.RECENT_DAYS)
    baseline_from = recent_from - timedelta(days=churn.BASELINE_DAYS)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    recent = np.zeros(n)
    baseline = np.zeros(n)
    baseline_days = np.zeros(n)
    last_touch = last.copy()
    for i, customer_id in enumerate(customer_ids):
        seen = browsing.get(customer_id)
        first_seen = min(
            purchases.created_at[customer_id],
            epoch + timedelta(days=int(first_purchase[i])),
        )
        if seen is not None:
            recent[i], baseline[i] = seen.recent, seen.baseline
            if seen.first is not None:
                first_seen = min(first_seen, seen.first)
            if seen.last is not None:
                last_touch[i] = max(last_touch[i], (seen.last.date() - epoch.date()).days)
        known = recent_from - max(baseline_from, first_seen)
        baseline_days[i] = min(max(known.total_seconds() / 86400, 0.0), churn.BASELINE_DAYS)
    return churn.Behaviour(
        days_since_purchase=(today - last).astype(np.float64),
        usual_gap=usual,
        recent_events=recent,
        baseline_events=baseline,
        baseline_days=baseline_days,
        days_since_interaction=(today - last_touch).astype(np.float64),
    )


# --- the models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Valuation:
    """The fitted models (None where they could not be fitted) and every buyer's figures,
    NaN where unknown, in the order of ``customer_ids``."""

    customer_ids: list[int]
    summary: clv.CustomerSummary | None
    bgnbd: clv.Fit[clv.BgNbd] | None
    gamma_gamma: clv.Fit[clv.GammaGamma] | None
    p_alive: FloatArray
    expected_purchases: FloatArray
    expected_spend: FloatArray
    margin_rate: FloatArray
    value: FloatArray
    reason: str | None


def value_customers(
    purchases: Purchases,
    margins: dict[int, float],
    as_of: datetime,
    settings: ValueSettings,
) -> Valuation:
    """Fit BG/NBD and Gamma-Gamma on the purchases (calibration end: ``as_of``'s day) and
    value every buyer over the horizon."""
    if purchases.empty:
        nothing = np.zeros(0)
        return Valuation(
            customer_ids=[],
            summary=None,
            bgnbd=None,
            gamma_gamma=None,
            p_alive=nothing,
            expected_purchases=nothing,
            expected_spend=nothing,
            margin_rate=nothing,
            value=nothing,
            reason="no purchases yet",
        )
    end = as_of.date()
    summary = clv.summarize_transactions(
        purchases.customer,
        purchases.day,
        purchases.amount,
        calibration_end=end,
        observation_end=end,
        unit=UNIT,
    )
    ids = [int(c) for c in summary.customers]
    n = len(ids)
    unknown = np.full(n, np.nan)
    p_alive, expected, spend, value = unknown, unknown, unknown, unknown
    margin_rate = np.array([margins.get(c, settings.default_margin_rate) for c in ids])
    x, t_x, age = summary.frequency, summary.recency, summary.age
    bgnbd: clv.Fit[clv.BgNbd] | None = None
    gamma_gamma: clv.Fit[clv.GammaGamma] | None = None
    reason: str | None = None
    try:
        bgnbd = clv.fit_bgnbd(x, t_x, age)
    except clv.CannotFit as exc:
        reason = f"the purchase model (BG/NBD) cannot be fitted: {exc.message}"
    if bgnbd is not None and not bgnbd.converged:
        reason = f"the purchase model (BG/NBD) did not converge: {bgnbd.message}"
    elif bgnbd is not None:
        p_alive = bgnbd.model.p_alive(x, t_x, age)
        expected = bgnbd.model.conditional_expected_purchases(settings.horizon_days, x, t_x, age)
        assert summary.monetary is not None  # the purchases have amounts
        try:
            gamma_gamma = clv.fit_gamma_gamma(x, summary.monetary)
            if not gamma_gamma.converged:
                reason = f"the spend model (Gamma-Gamma) did not converge: {gamma_gamma.message}"
            else:
                spend = gamma_gamma.model.conditional_expected_spend(x, summary.monetary)
                value = clv.customer_lifetime_value(
                    bgnbd.model,
                    gamma_gamma.model,
                    summary,
                    months=settings.horizon_days / clv.DAYS_PER_MONTH,
                    monthly_discount_rate=clv.monthly_rate(settings.annual_discount_rate),
                    margin=margin_rate,
                )
        except clv.CannotFit as exc:
            reason = f"the spend model (Gamma-Gamma) cannot be fitted: {exc.message}"
    return Valuation(
        customer_ids=ids,
        summary=summary,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        p_alive=np.asarray(p_alive, dtype=np.float64),
        expected_purchases=np.asarray(expected, dtype=np.float64),
        expected_spend=np.asarray(spend, dtype=np.float64),
        margin_rate=margin_rate,
        value=np.asarray(value, dtype=np.float64),
        reason=reason,
    )


# --- the recomputation --------------------------------------------------------------------------


async def fingerprint(session: AsyncSession, currency: str, settings: ValueSettings) -> str:
    """What the step reads, cheaply: RFM's fingerprint of the orders
    (:func:`server.services.rfm.fingerprint`), the customers' browsing events (their number and
    highest id), the variants' cost prices (how many, their sum, the latest change) and the
    settings. A new day changes every age, so the first run of a day always recomputes."""
    orders = await rfm.fingerprint(session, currency)
    events = (
        await session.execute(
            sa_select(func.count(), func.max(col(CustomerEvent.id))).where(
                col(CustomerEvent.customer_id).is_not(None),
                col(CustomerEvent.kind).in_(BROWSING_KINDS),
            )
        )
    ).one()
    costs = (
        await session.execute(
            sa_select(
                func.count(),
                func.sum(col(ProductVariant.cost_amount)),
                func.max(
                    func.coalesce(col(ProductVariant.updated_at), col(ProductVariant.created_at))
                ),
            ).where(col(ProductVariant.cost_amount).is_not(None))
        )
    ).one()
    text = (
        f"{orders};events={events[0]}:{events[1]};costs={costs[0]}:{costs[1]}:{costs[2]};"
        f"settings={settings.horizon_days}:{settings.annual_discount_rate!r}:"
        f"{settings.default_margin_rate!r}"
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ClvRebuild:
    """What a recomputation did. ``skipped``: nothing changed since the last run on the same
    day (the figures are those of ``as_of``). ``reason``: why figures are null, if they are."""

    as_of: datetime
    skipped: bool
    customers: int
    written: int = 0
    removed: int = 0
    fitted: bool = False
    reason: str | None = None

    def summary(self) -> str:
        if self.skipped:
            return f"clv: unchanged since {self.as_of.isoformat()}, {self.customers} customers"
        done = f"{self.written} rows written, {self.removed} removed"
        if self.reason is not None:
            return f"clv: {self.customers} customers, {done}; no values: {self.reason}"
        return f"clv: {self.customers} customers valued, {done}"


_VALUES = (
    "p_alive",
    "expected_purchases",
    "horizon_days",
    "expected_spend",
    "margin_rate",
    "clv_amount",
    "churn_probability",
    "churn_reasons",
    "reason",
)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _minor(value: float) -> int | None:
    return int(np.rint(value)) if math.isfinite(value) else None


async def _current(session: AsyncSession) -> dict[int, tuple[Any, ...]]:
    stmt = sa_select(
        col(CustomerValue.customer_id), *(getattr(CustomerValue, name) for name in _VALUES)
    )
    return {int(row[0]): tuple(row[1:]) for row in (await session.execute(stmt)).all()}


def _fit_row(valuation: Valuation, moment: datetime, settings: ValueSettings) -> dict[str, Any]:
    bg, gg, summary = valuation.bgnbd, valuation.gamma_gamma, valuation.summary
    return {
        "fitted_at": moment,
        "calibration_end": moment.date(),
        "unit": UNIT,
        "customers": summary.size if summary is not None else 0,
        "repeat_customers": int((summary.frequency > 0).sum()) if summary is not None else 0,
        "r": bg.model.r if bg else None,
        "alpha": bg.model.alpha if bg else None,
        "a": bg.model.a if bg else None,
        "b": bg.model.b if bg else None,
        "log_likelihood": bg.loglik if bg else None,
        "p": gg.model.p if gg else None,
        "q": gg.model.q if gg else None,
        "v": gg.model.v if gg else None,
        "spend_log_likelihood": gg.loglik if gg else None,
        "converged": bool(bg and bg.converged and gg and gg.converged),
        "reason": valuation.reason,
        "horizon_days": settings.horizon_days,
        "annual_discount_rate": settings.annual_discount_rate,
        "default_margin_rate": settings.default_margin_rate,
    }


async def rebuild(
    session: AsyncSession,
    *,
    currency: str,
    settings: ValueSettings,
    as_of: datetime | None = None,
    force: bool = False,
) -> ClvRebuild:
    """Recompute every buyer's lifetime value and churn risk as of ``as_of`` (now) in the
    session's transaction, which the caller has marked a write (``mark_write``) and commits.

    Skips when the last run was on the same day and the :func:`fingerprint` is unchanged,
    unless ``force``. Writes the rows whose figures changed (upserts), removes the rows of
    customers left without a purchase, and records the fit."""
    moment = utc(as_of or utcnow())
    dialect = insight_runs.dialect_of(session)
    await insight_runs.lock(session, STEP)
    seen = await fingerprint(session, currency, settings)
    last = await insight_runs.last_run(session, STEP)
    if not force and last is not None and insight_runs.unchanged(last, seen, moment):
        count = await session.scalar(sa_select(func.count()).select_from(CustomerValue))
        fit = await latest_fit(session)
        return ClvRebuild(
            as_of=last[1],
            skipped=True,
            customers=int(count or 0),
            fitted=fit is not None and fit.reason is None,
            reason=fit.reason if fit is not None else None,
        )

    purchases = await read_purchases(session, moment, currency, dialect)
    margins = await realised_margins(session, moment, currency)
    valuation = value_customers(purchases, margins, moment, settings)
    ids = valuation.customer_ids
    browsing = await read_browsing(session, moment, set(ids))
    shopping = behaviour(ids, purchases, browsing, moment)
    risk = churn.assess(
        shopping, valuation.p_alive, shop_gap=churn.shop_usual_gap(shopping.usual_gap)
    )

    current = await _current(session)
    upserts: list[dict[str, Any]] = []
    for i, customer_id in enumerate(ids):
        values = (
            _number(valuation.p_alive[i]),
            _number(valuation.expected_purchases[i]),
            settings.horizon_days,
            _minor(valuation.expected_spend[i]),
            _number(valuation.margin_rate[i]),
            _minor(valuation.value[i]),
            _number(risk.probability[i]),
            [reason.as_dict() for reason in risk.reasons[i]],
            valuation.reason,
        )
        if current.pop(customer_id, None) == values:
            continue
        upserts.append(
            {"customer_id": customer_id, **dict(zip(_VALUES, values, strict=True))}
            | {"computed_at": moment}
        )
    gone = sorted(current)

    connection = await session.connection()
    upsert = insight_runs.insert(dialect)(CustomerValue)
    upsert = upsert.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={name: upsert.excluded[name] for name in (*_VALUES, "computed_at")},
    )
    for chunk in chunks(upserts):
        await connection.execute(upsert, list(chunk))
    for gone_ids in chunks(gone):
        await connection.execute(
            delete(CustomerValue).where(col(CustomerValue.customer_id).in_(gone_ids))
        )
    await connection.execute(insert(ClvModelFit), [_fit_row(valuation, moment, settings)])
    await insight_runs.record_run(session, STEP, fingerprint=seen, as_of=moment, customers=len(ids))
    return ClvRebuild(
        as_of=moment,
        skipped=False,
        customers=len(ids),
        written=len(upserts),
        removed=len(gone),
        fitted=valuation.reason is None,
        reason=valuation.reason,
    )


# --- reading the results ----------------------------------------------------------------------


async def latest_fit(session: AsyncSession) -> ClvModelFit | None:
    """The last fit of the lifetime value models (None before the first recomputation)."""
    stmt = (
        select(ClvModelFit)
        .order_by(col(ClvModelFit.fitted_at).desc(), col(ClvModelFit.id).desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


async def average_value_by_segment(session: AsyncSession) -> dict[CustomerSegment, int]:
    """The mean CLV of each RFM segment's customers with a value (rounded half up to a minor
    unit); a segment without any is left out."""
    stmt = (
        sa_select(col(CustomerRfm.segment), func.count(), func.sum(col(CustomerValue.clv_amount)))
        .join(CustomerValue, col(CustomerValue.customer_id) == col(CustomerRfm.customer_id))
        .where(col(CustomerValue.clv_amount).is_not(None))
        .group_by(col(CustomerRfm.segment))
    )
    averages: dict[CustomerSegment, int] = {}
    for segment, count, total in (await session.execute(stmt)).all():
        n, amount = int(count), int(total or 0)
        averages[CustomerSegment(segment)] = (2 * amount + n) // (2 * n)
    return averages


async def erase(session: AsyncSession, customer_id: int) -> None:
    """Forget a customer's value and churn risk (their account is being erased)."""
    await session.execute(
        delete(CustomerValue).where(col(CustomerValue.customer_id) == customer_id)
    )
