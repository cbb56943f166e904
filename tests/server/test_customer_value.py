"""Lifetime value and churn risk of the shop's customers (server/services/customer_value.py),
on SQLite and PostgreSQL: a shop too small to fit the models keeps its figures null with the
reason; a shop of customers simulated with known parameters gets the values the models give on
its purchases (one per customer and day), margin-aware, with the churn signals of hand-made
customers and a forecast measured against baselines; skipping, concurrent runs, erasure."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import (
    ClvModelFit,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerValue,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
)
from server.services import churn, clv, customer_value, insights
from server.services.privacy import erase_customer
from tests.support.accounts import DEFAULT_PASSWORD, make_customer
from tests.support.catalog import make_product
from tests.support.clv import simulate
from tests.support.insights import buy, simulated_shop

SETTINGS = customer_value.ValueSettings(
    horizon_days=364, annual_discount_rate=0.1, default_margin_rate=0.3
)
AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def days_before(days: float, moment: datetime = AS_OF) -> datetime:
    return moment - timedelta(days=days)


async def recompute(
    session: AsyncSession, moment: datetime, *, force: bool = False
) -> customer_value.ClvRebuild:
    await session.commit()
    await mark_write(session)
    done = await customer_value.rebuild(
        session, currency="CNY", settings=SETTINGS, as_of=moment, force=force
    )
    await session.commit()
    return done


async def rows(session: AsyncSession) -> dict[int, CustomerValue]:
    stmt = select(CustomerValue).execution_options(populate_existing=True)
    return {row.customer_id: row for row in (await session.execute(stmt)).scalars()}


async def fits(session: AsyncSession) -> list[ClvModelFit]:
    stmt = select(ClvModelFit).order_by(ClvModelFit.id).execution_options(populate_existing=True)
    return list((await session.execute(stmt)).scalars())


async def browse(session: AsyncSession, customer: Customer, *moments: datetime) -> None:
    session.add_all(
        CustomerEvent(customer_id=customer.id, kind=CustomerEventKind.VIEW, occurred_at=at)
        for at in moments
    )
    await session.commit()


def reasons(row: CustomerValue) -> dict[str, float]:
    return {reason["code"]: reason["value"] for reason in row.churn_reasons}


# --- too little data ----------------------------------------------------------------------------


async def test_a_shop_nobody_bought_twice_from_keeps_null_values_with_the_reason(
    session: AsyncSession, database_url: str
) -> None:
    old = days_before(200)
    ann = await make_customer(session, password=None, created_at=old)
    bob = await make_customer(session, password=None, created_at=old)
    cat = await make_customer(session, password=DEFAULT_PASSWORD, created_at=old)
    erased = await make_customer(session, password=None, is_active=False)
    await buy(session, ann, 12000, days_before(100))
    await buy(session, bob, 8000, days_before(20))
    await buy(session, bob, 3000, days_before(20) + timedelta(hours=1))  # the same day
    await buy(session, cat, 5000, days_before(10))
    # No purchase: cancelled, a guest's, an erased customer's, after AS_OF.
    await buy(session, ann, 9000, days_before(50), status=OrderStatus.CANCELLED)
    await buy(session, None, 9000, days_before(50))
    await buy(session, erased, 9000, days_before(50))
    await buy(session, cat, 9000, AS_OF + timedelta(days=1))
    # Ann browsed 20 times 40 to 120 days ago and not since: 4 expected in the last 30 days
    # at her rate (20 over the 150 days before them), P(0 | 4) = 0.018.
    await browse(session, ann, *(days_before(40 + 4 * k) for k in range(20)))

    done = await recompute(session, AS_OF)
    no_fit = (
        "the purchase model (BG/NBD) cannot be fitted: no customer made a repeat purchase: "
        "BG/NBD cannot tell a purchase rate from dropout on such data"
    )
    assert (done.skipped, done.customers, done.written, done.fitted) == (False, 3, 3, False)
    assert done.reason == no_fit
    assert done.summary() == f"clv: 3 customers, 3 rows written, 0 removed; no values: {no_fit}"
    found = await rows(session)
    assert set(found) == {ann.id, bob.id, cat.id}
    for row in found.values():
        figures = (row.p_alive, row.expected_purchases, row.expected_spend, row.clv_amount)
        assert figures == (None, None, None, None)
        assert (row.churn_probability, row.reason, row.computed_at) == (None, no_fit, AS_OF)
        assert (row.horizon_days, row.margin_rate) == (364, 0.3)
    # The signals are facts even without a model: Ann's browsing dropped.
    assert reasons(found[ann.id or 0]) == {"BROWSING_DROPPED": 0.0}
    assert found[bob.id or 0].churn_reasons == [] == found[cat.id or 0].churn_reasons
    [fit] = await fits(session)
    assert (fit.customers, fit.repeat_customers, fit.converged, fit.reason) == (3, 0, False, no_fit)
    assert (fit.r, fit.alpha, fit.a, fit.b, fit.p, fit.q, fit.v) == (None,) * 7
    assert (fit.calibration_end, fit.unit, fit.horizon_days) == (date(2026, 6, 30), "day", 364)

    # Nothing changed the same day: skipped, and no fit is added. Forced: recomputed, nothing
    # written, one more fit in the history.
    later = AS_OF + timedelta(hours=2)
    skipped = await recompute(session, later)
    assert (skipped.skipped, skipped.customers, skipped.reason, skipped.as_of) == (
        True,
        3,
        no_fit,
        AS_OF,
    )
    forced = await recompute(session, later, force=True)
    assert (forced.skipped, forced.written, forced.removed) == (False, 0, 0)
    assert len(await fits(session)) == 2
    # A browsing event is data the step reads: the next run recomputes.
    await browse(session, bob, later)
    assert not (await recompute(session, later + timedelta(minutes=1))).skipped
    # So does a new day, with nothing else changed.
    assert not (await recompute(session, AS_OF + timedelta(days=1))).skipped

    # Erasing an account forgets its figures; recomputations leave the customer out.
    await mark_write(session)
    await erase_customer(session, Settings(), cat.id or 0, DEFAULT_PASSWORD)
    await session.commit()
    assert set(await rows(session)) == {ann.id, bob.id}
    assert (await recompute(session, AS_OF + timedelta(days=1, hours=1))).customers == 2
    assert set(await rows(session)) == {ann.id, bob.id}


async def test_two_recomputations_at_once_take_turns(database_url: str) -> None:
    """The job on two servers, or the job beside the command: the second waits for the first
    (its own lock on PostgreSQL, the write lock on SQLite) and then finds nothing to do."""
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        async with session_factory(engines[0])() as s:
            for i in range(3):
                buyer = await make_customer(s, password=None)
                await buy(s, buyer, 1000 * (i + 1), days_before(10 + i))
        settings = Settings(database_url=database_url)
        reports = await asyncio.gather(
            *(
                insights.rebuild(session_factory(e), settings, as_of=AS_OF, force=False)
                for e in engines
            )
        )
        assert sorted(r.clv.skipped for r in reports) == [False, True]
        assert sorted(r.clv.written for r in reports) == [0, 3]
        async with session_factory(engines[0])() as s:
            history = await s.scalar(select(func.count()).select_from(ClvModelFit))
            valued = await s.scalar(select(func.count()).select_from(CustomerValue))
        assert (history, valued) == (1, 3)
    finally:
        for engine in engines:
            await engine.dispose()


# --- a shop with enough customers ---------------------------------------------------------------

TRUTH = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}  # weeks
SPEND_TRUTH = {"p": 6.0, "q": 4.0, "v": 15.0}
CALIBRATION_WEEKS = 39.0
HORIZON_WEEKS = 52.0  # 364 days: SETTINGS.horizon_days


async def _hand_made(session: AsyncSession, as_of: datetime) -> dict[str, Any]:
    """Three customers on a 30-day rhythm whose churn signals are known, and the purchases
    (customer, day, amount) they add to the shop's log."""
    created = days_before(200, as_of)
    lapsed = await make_customer(session, password=None, created_at=created)
    overdue = await make_customer(session, password=None, created_at=created)
    fading = await make_customer(session, password=None, created_at=created)
    bought: list[tuple[int, date, int]] = []
    orders: dict[str, list[Order]] = {"lapsed": [], "overdue": [], "fading": []}
    plan = {
        "lapsed": (lapsed, (100, 70, 40)),  # last 40 days ago: not overdue, but silent
        "overdue": (overdue, (160, 130, 100)),  # 100 days > 1.5 x 30
        "fading": (fading, (60, 30)),  # browsing fades
    }
    for name, (customer, ago) in plan.items():
        for days in ago:
            placed = days_before(days, as_of)
            orders[name].append(await buy(session, customer, 10000, placed))
            bought.append((customer.id or 0, placed.date(), 10000))
    # The overdue customer visited 10 days ago: not silent.
    await browse(session, overdue, days_before(10, as_of))
    # The fading customer: 25 views 40-160 days ago, then one: 5 expected, P(<= 1 | 5) = 0.04.
    await browse(
        session,
        fading,
        *(days_before(40 + 5 * k, as_of) for k in range(25)),
        days_before(2, as_of),
    )
    return {
        "lapsed": lapsed,
        "overdue": overdue,
        "fading": fading,
        "bought": bought,
        "orders": orders,
    }


async def _lines(session: AsyncSession, order: Order, *items: tuple[Product, int, int]) -> None:
    """Lines of ``(product, quantity, line total)`` on ``order`` (each product's only variant)."""
    for product, quantity, line_total in items:
        variant_id = await session.scalar(
            select(ProductVariant.id).where(ProductVariant.product_id == product.id)
        )
        session.add(
            OrderLine(
                order_id=order.id or 0,
                product_id=product.id or 0,
                variant_id=variant_id or 0,
                sku=product.sku,
                product_name=product.name,
                quantity=quantity,
                base_unit_price_amount=line_total // quantity,
                unit_price_amount=line_total // quantity,
                line_total_amount=line_total,
            )
        )
    await session.commit()


async def test_a_simulated_shop_gets_the_models_values_margin_aware_and_its_churn_signals(
    session: AsyncSession,
) -> None:
    cohort = simulate(
        400, **TRUTH, **SPEND_TRUTH, horizon=CALIBRATION_WEEKS + HORIZON_WEEKS, seed=31
    )
    shop = await simulated_shop(
        session, cohort, calibration_weeks=CALIBRATION_WEEKS, horizon_weeks=HORIZON_WEEKS
    )
    hand = await _hand_made(session, shop.as_of)
    # Margins: the overdue customer's purchases hold 2 x 100.00 of a product that costs 60.00
    # (margin 40%) and a product without a cost price (left out); their cancelled order's
    # lines are no purchase. Everyone else: the default rate, 30%.
    costly = await make_product(session, price="100.00", cost="60.00")
    unknown = await make_product(session, price="50.00")
    first, second, _ = hand["orders"]["overdue"]
    await _lines(session, first, (costly, 2, 20000), (unknown, 1, 5000))
    await _lines(session, second, (unknown, 3, 15000))
    cancelled = await buy(
        session, hand["overdue"], 90000, days_before(120, shop.as_of), status=OrderStatus.CANCELLED
    )
    await _lines(session, cancelled, (costly, 1, 90000))

    done = await recompute(session, shop.as_of)
    assert (done.fitted, done.reason, done.customers) == (True, None, 403)

    # What the models give on the shop's purchases, one per customer and UTC day.
    customers = shop.customers + [c for c, _, _ in hand["bought"]]
    days = shop.days + [d for _, d, _ in hand["bought"]]
    amounts = shop.amounts + [a for _, _, a in hand["bought"]]
    summary = clv.summarize_transactions(
        customers,
        np.array(days, dtype="datetime64[D]"),
        amounts,
        calibration_end=shop.as_of.date(),
        observation_end=shop.as_of.date(),
        unit="day",
    )
    x, t_x, age = summary.frequency, summary.recency, summary.age
    assert summary.monetary is not None
    bgnbd = clv.fit_bgnbd(x, t_x, age)
    gamma_gamma = clv.fit_gamma_gamma(x, summary.monetary)
    [fit] = await fits(session)
    fitted = {"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b, "p": fit.p, "q": fit.q}
    direct = {
        "r": bgnbd.model.r,
        "alpha": bgnbd.model.alpha,
        "a": bgnbd.model.a,
        "b": bgnbd.model.b,
        "p": gamma_gamma.model.p,
        "q": gamma_gamma.model.q,
    }
    assert fitted == pytest.approx(direct, rel=1e-9)
    assert fit.v == pytest.approx(gamma_gamma.model.v, rel=1e-9)
    assert fit.log_likelihood == pytest.approx(bgnbd.loglik, rel=1e-9)
    assert (fit.customers, fit.converged) == (403, True)
    assert fit.repeat_customers == int((x > 0).sum())
    # The truth is in weeks: per day, alpha is 7 times larger. A few hundred customers pin it
    # down loosely: within 3 standard errors.
    errors = bgnbd.standard_errors
    assert errors is not None
    truth_days = {"r": 0.5, "alpha": 42.0, "a": 0.8, "b": 2.5}
    for name, true in truth_days.items():
        assert abs(direct[name] - true) <= 3 * errors[name], (name, direct[name], errors[name])

    margin = np.full(summary.size, 0.3)
    overdue_at = int(np.flatnonzero(summary.customers == hand["overdue"].id)[0])
    margin[overdue_at] = 1 - 12000 / 20000  # the lines with a cost price only
    value = clv.customer_lifetime_value(
        bgnbd.model,
        gamma_gamma.model,
        summary,
        months=364 / clv.DAYS_PER_MONTH,
        monthly_discount_rate=clv.monthly_rate(0.1),
        margin=margin,
    )
    expected = bgnbd.model.conditional_expected_purchases(364, x, t_x, age)
    p_alive = bgnbd.model.p_alive(x, t_x, age)
    spend = gamma_gamma.model.conditional_expected_spend(x, summary.monetary)
    found = await rows(session)
    assert set(found) == {int(c) for c in summary.customers}
    ordered = [found[int(c)] for c in summary.customers]
    assert [r.p_alive for r in ordered] == pytest.approx(p_alive.tolist(), rel=1e-9)
    assert [r.expected_purchases for r in ordered] == pytest.approx(expected.tolist(), rel=1e-9)
    assert [r.margin_rate for r in ordered] == pytest.approx(margin.tolist())
    assert np.abs(np.array([r.expected_spend for r in ordered]) - spend).max() <= 0.5
    assert np.abs(np.array([r.clv_amount for r in ordered]) - value).max() <= 0.5
    assert all(r.reason is None and r.horizon_days == 364 for r in ordered)

    # Churn: each hand-made customer's signals, and the noisy-OR over their P(alive).
    lapsed, overdue, fading = (found[hand[k].id] for k in ("lapsed", "overdue", "fading"))
    w = churn.WEIGHTS
    assert lapsed.p_alive is not None and overdue.p_alive is not None
    assert reasons(lapsed) == {
        "NO_INTERACTION": 40.0,
        "DROPOUT_MODEL": pytest.approx(1 - lapsed.p_alive, abs=1e-4),
    }
    assert lapsed.churn_probability == pytest.approx(
        1 - (lapsed.p_alive or 0) * (1 - w[churn.ChurnReason.NO_INTERACTION])
    )
    assert set(reasons(overdue)) == {"PURCHASE_OVERDUE", "DROPOUT_MODEL"}
    assert reasons(overdue)["PURCHASE_OVERDUE"] == 100.0
    assert overdue.churn_probability == pytest.approx(
        1 - (overdue.p_alive or 0) * (1 - w[churn.ChurnReason.PURCHASE_OVERDUE])
    )
    [late] = [r for r in overdue.churn_reasons if r["code"] == "PURCHASE_OVERDUE"]
    assert late["message"] == (
        "no purchase for 100 days, over 1.5 times their usual 30 days between purchases"
    )
    # The strongest reason first.
    values = [
        r["value"] if r["code"] == "DROPOUT_MODEL" else churn.WEIGHTS[churn.ChurnReason(r["code"])]
        for r in overdue.churn_reasons
    ]
    assert values == sorted(values, reverse=True)
    assert set(reasons(fading)) == {"BROWSING_DROPPED", "DROPOUT_MODEL"}
    assert reasons(fading)["BROWSING_DROPPED"] == pytest.approx(0.2)

    # Measured: purchases in the 52 weeks after, foreseen per customer, against two baselines.
    simulated = np.array([int(c) in set(shop.customer_ids) for c in summary.customers])
    actual = np.array([shop.later.get(int(c), 0) for c in summary.customers], dtype=float)
    forecasts = {
        "BG/NBD": expected,
        "own past rate": np.divide(x, age, out=np.zeros_like(x), where=age > 0) * 364,
        "cohort average": np.full(x.shape, x.sum() / age.sum() * 364),
    }
    mae = {k: float(np.abs(f - actual)[simulated].mean()) for k, f in forecasts.items()}
    totals = {k: float(f[simulated].sum()) for k, f in forecasts.items()}
    message = (
        f"52 weeks after: actual {actual[simulated].sum():.0f} purchases; forecast "
        + ", ".join(f"{k} {totals[k]:.0f} (MAE {mae[k]:.3f})" for k in forecasts)
    )
    assert mae["BG/NBD"] < min(mae["own past rate"], mae["cohort average"]), message
    assert math.isclose(totals["BG/NBD"], actual[simulated].sum(), rel_tol=0.25), message


def test_without_spend_to_fit_the_purchase_figures_stay_and_the_money_is_null() -> None:
    """Gamma-Gamma needs repeat purchases of positive value: a shop whose repeat purchases were
    all free keeps P(alive) and the expected purchases, and no money figure."""
    cohort = simulate(300, **TRUTH, **SPEND_TRUTH, horizon=CALIBRATION_WEEKS, seed=5)
    # The simulation lists every customer's first purchase first.
    is_first = np.arange(cohort.customer.shape[0]) < 300
    day0 = np.datetime64("2025-01-06", "D")
    purchases = customer_value.Purchases(
        customer=cohort.customer + 1,
        day=day0 + np.floor(cohort.time * 7).astype("timedelta64[D]"),
        amount=np.where(is_first, 5000.0, 0.0),
        created_at={},
    )
    moment = datetime(2025, 10, 6, tzinfo=UTC)
    valued = customer_value.value_customers(purchases, {}, moment, SETTINGS)
    assert valued.bgnbd is not None and valued.bgnbd.converged
    assert valued.gamma_gamma is None
    assert valued.reason == (
        "the spend model (Gamma-Gamma) cannot be fitted: Gamma-Gamma needs at least 2 "
        "customers with a repeat purchase of positive value"
    )
    assert np.isfinite(valued.p_alive).all() and np.isfinite(valued.expected_purchases).all()
    assert np.isnan(valued.expected_spend).all() and np.isnan(valued.value).all()
