"""Demand forecasts: the promotion calendar against known dates; the model on a synthetic shop
whose weekly, yearly and promotion effects are known (it recovers their shape, beats the
baselines, and its intervals cover about their share of the held-out days); intermittent and
empty histories; the daily aggregate on a small shop counted by hand, on SQLite and PostgreSQL;
the service for plugins; the command."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.models import Order, OrderLine, OrderStatus, Product, ProductVariant
from server.plugin import Forecast, demand_forecast
from server.services import forecasts
from server.services.errors import NotFound, ValidationFailed
from tests.support.catalog import make_category, make_product

# --- the promotion calendar ---------------------------------------------------------------------

# 正月初一 of each year, from the published calendars.
SPRING_FESTIVALS = {
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
}


def test_spring_festival_moves_with_the_lunar_calendar() -> None:
    for year, day in SPRING_FESTIVALS.items():
        assert forecasts.spring_festival(year) == day


def test_the_calendar_marks_the_promotions_and_holidays() -> None:
    start = date(2025, 1, 1)
    names, matrix = forecasts.calendar_regressors(start, 365)

    def on(day: date) -> set[str]:
        row = matrix[(day - start).days]
        return {name for name, value in zip(names, row, strict=True) if value}

    assert on(date(2025, 6, 1)) == on(date(2025, 6, 17)) == {"june18_window"}
    assert on(date(2025, 6, 18)) == {"june18"}
    assert on(date(2025, 11, 10)) == {"double11_window"}
    assert on(date(2025, 11, 11)) == {"double11"}
    assert on(date(2025, 11, 12)) == set()
    assert on(date(2025, 12, 12)) == {"double12"}
    # The Spring Festival of 2025 is on January 29.
    assert on(date(2025, 1, 19)) == {"spring_festival_before"}  # 10 days before
    assert on(date(2025, 1, 18)) == set()
    assert on(date(2025, 1, 28)) == {"spring_festival"}  # New Year's Eve
    assert on(date(2025, 2, 4)) == {"spring_festival"}  # the 6th day
    assert on(date(2025, 2, 12)) == {"spring_festival_after"}  # the 14th day
    assert on(date(2025, 2, 13)) == set()
    assert on(date(2025, 10, 1)) == {"public_holiday"}  # National Day
    assert on(date(2025, 5, 1)) == {"public_holiday"}  # Labour Day
    assert on(date(2025, 3, 3)) == set()
    # Each day is at most one promotion and one holiday; none of them every day.
    assert matrix.sum(axis=1).max() <= 2
    assert 30 < matrix.sum() < 120


# --- a synthetic shop with known effects --------------------------------------------------------

WEEKDAY = np.array([-0.10, -0.12, -0.08, -0.05, 0.0, 0.18, 0.17])  # Monday to Sunday


def _event_effects(day: date) -> float:
    """The log effect of the promotions and the Spring Festival, written from the dates alone
    (not from the service's calendar)."""
    effect = 0.0
    if day.month == 6 and day.day < 18:
        effect += 0.35
    if day.month == 6 and day.day == 18:
        effect += 1.3
    if day.month == 11 and day.day < 11:
        effect += 0.45
    if day.month == 11 and day.day == 11:
        effect += 1.7
    if day.month == 12 and day.day == 12:
        effect += 0.8
    for new_year in SPRING_FESTIVALS.values():
        offset = (day - new_year).days
        if -10 <= offset <= -2:
            effect -= 0.35
        elif -1 <= offset <= 6:
            effect -= 0.9
        elif 7 <= offset <= 14:
            effect -= 0.3
    return effect


@dataclass(frozen=True)
class Synthetic:
    start: date
    units: np.ndarray
    truth: np.ndarray  # the expected units of each day

    def index(self, day: date) -> int:
        return (day - self.start).days


def synthetic_shop(seed: int = 20250101) -> Synthetic:
    """Two years of daily units (2024-2025): about 40 a day, a weekly shape, a yearly wave,
    the promotions, AR(1) noise on the log scale (0.5, 0.08) and negative binomial counts
    (dispersion 20)."""
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1)
    days = [start + timedelta(days=i) for i in range(731)]
    year = 2 * np.pi * np.array([d.timetuple().tm_yday for d in days]) / 365.25
    log_mean = (
        np.log(40.0)
        + WEEKDAY[[d.weekday() for d in days]]
        + 0.25 * np.sin(year - 1.4)
        + 0.1 * np.cos(2 * year)
        + np.array([_event_effects(d) for d in days])
    )
    noise = np.zeros(len(days))
    for i in range(1, len(days)):
        noise[i] = 0.5 * noise[i - 1] + rng.normal(0, 0.08)
    mean = np.exp(log_mean + noise)
    units = rng.negative_binomial(20, 20 / (20 + mean)).astype(np.float64)
    # The expected units given the calendar alone (the AR noise's log-normal mean).
    truth = np.exp(log_mean + 0.08**2 / (2 * (1 - 0.25)))
    return Synthetic(start, units, truth)


@pytest.fixture(scope="module")
def shop() -> Synthetic:
    return synthetic_shop()


@pytest.fixture(scope="module")
def synthetic_backtest(shop: Synthetic) -> forecasts.Backtest:
    # 8 origins of 28 days: May 22 to December 31, 2025 (618, Double 11 and 12 held out).
    return forecasts.backtest(shop.units, shop.start, horizon=28, origins=8, label="synthetic")


def test_the_model_beats_the_baselines_on_the_synthetic_shop(
    synthetic_backtest: forecasts.Backtest,
) -> None:
    result = synthetic_backtest
    assert result.origins[0] == date(2025, 5, 22)
    assert result.chosen == ("regression",) * 8
    regression = result.score("regression")
    naive = result.score("seasonal_naive")
    average = result.score("moving_average")
    assert regression.mase < 0.8 * naive.mase
    assert regression.mase < 0.8 * average.mase
    assert regression.smape < min(naive.smape, average.smape)
    assert abs(regression.bias) < 0.1  # the expected units add up
    assert result.winner == "regression"
    assert result.beats_seasonal_naive
    assert (result.score("forecast").mase, result.score("forecast").smape) == (
        regression.mase,
        regression.smape,
    )


def test_intervals_cover_about_their_share_of_the_held_out_days(
    synthetic_backtest: forecasts.Backtest,
) -> None:
    # 224 held-out days: a binomial share's standard error is 2.7 points at 80% and 1.5 at 95%
    # (more with autocorrelated errors); the bounds allow about 3 of them.
    coverage = synthetic_backtest.score("regression").coverage
    assert coverage is not None
    assert 0.70 <= coverage[0.8] <= 0.90
    assert 0.90 <= coverage[0.95] <= 0.99


def test_the_forecast_follows_the_known_shape(shop: Synthetic) -> None:
    # From October 20, 2025: four weeks with Double 11 in them.
    cut = shop.index(date(2025, 10, 21))
    result = forecasts.forecast_units(shop.units[:cut], shop.start, 28)
    assert result.model == "regression"
    assert result.days[0] == date(2025, 10, 21) and len(result.days) == 28
    truth = shop.truth[cut : cut + 28]
    mean = np.array(result.mean)
    # The peak's effect is learnt from the one Double 11 of the history, whose draw (100 units)
    # fell well below its expectation (162): the forecast's peak is lower than the truth's, and
    # the correlation is that of a shape, not of a perfect fit (without the calendar it is
    # about 0.1).
    assert np.corrcoef(mean, truth)[0, 1] > 0.8
    assert result.days[int(np.argmax(mean))] == date(2025, 11, 11)
    window = slice(11, 21)  # November 1-10: the run-up, learnt from ten days
    assert np.corrcoef(mean[window], truth[window])[0, 1] > 0.8
    assert abs(mean[window].sum() / truth[window].sum() - 1) < 0.15
    assert abs(result.total / truth.sum() - 1) < 0.1
    for interval in result.intervals:
        bounds = zip(interval.lower, mean, interval.upper, strict=True)
        assert all(lo <= m <= hi for lo, m, hi in bounds)
    wide, narrow = result.interval(0.95), result.interval(0.8)
    assert all(w <= n for w, n in zip(wide.lower, narrow.lower, strict=True))
    assert all(w >= n for w, n in zip(wide.upper, narrow.upper, strict=True))

    # Three quiet weeks of August: only the weekly shape (and the year's slow wave) to follow.
    cut = shop.index(date(2025, 8, 4))
    quiet = forecasts.forecast_units(shop.units[:cut], shop.start, 21)
    assert np.corrcoef(np.array(quiet.mean), shop.truth[cut : cut + 21])[0, 1] > 0.8


# --- intermittent and empty histories -----------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "model"),
    [
        (np.random.default_rng(1).poisson(0.05, 400), "sba"),  # a sale every 20 days
        (np.random.default_rng(2).poisson(0.2, 400), "sba"),
        (np.random.default_rng(3).poisson(1.5, 400), "regression"),
        ([3.0] + [0.0] * 30, "sba"),  # one sale, a month ago
        ([1.0, 0.0, 2.0], "sba"),  # three days of history
        ([0.0] * 60, "none"),
        ([], "none"),
    ],
    ids=["every-20-days", "every-5-days", "daily", "one-sale", "three-days", "zeros", "empty"],
)
def test_sparse_and_short_histories_forecast_without_failing(
    history: Sequence[float], model: str
) -> None:
    result = forecasts.forecast_units(history, date(2026, 1, 1), 14)
    assert result.model == model, result.reason
    assert len(result.mean) == 14
    assert all(math.isfinite(x) and x >= 0 for x in result.mean)
    for interval in result.intervals:
        assert all(0 <= lo <= hi for lo, hi in zip(interval.lower, interval.upper, strict=True))
        assert all(math.isfinite(hi) for hi in interval.upper)
    if model == "none":
        assert result.total == 0


def test_sba_is_the_smoothed_size_over_the_smoothed_interval() -> None:
    # A sale of 4 units every 5th day: sizes 4, gaps 5 (the first counted from the day
    # before the history), so the rate is (1 - 0.1/2) * 4 / 5.
    history = np.zeros(100)
    history[4::5] = 4
    assert forecasts.sba_rate(history) == pytest.approx(0.95 * 4 / 5)
    result = forecasts.forecast_units(history, date(2026, 1, 1), 7, model="sba")
    assert result.mean == pytest.approx([0.76] * 7)


def test_the_regression_refuses_a_short_history() -> None:
    with pytest.raises(forecasts.CannotFit):
        forecasts.forecast_units(np.ones(30), date(2026, 1, 1), 7, model="regression")


def test_a_backtest_of_a_sparse_series_runs_and_a_short_one_is_refused() -> None:
    sparse = np.random.default_rng(4).poisson(0.1, 120).astype(np.float64)
    result = forecasts.backtest(sparse, date(2026, 1, 1), horizon=14, origins=2)
    assert result.chosen == ("sba", "sba")
    assert all(not math.isnan(s.smape) for s in result.scores)
    with pytest.raises(ValidationFailed, match="need at least 112"):
        forecasts.backtest(sparse[:100], date(2026, 1, 1), horizon=14, origins=4)


def test_mase_and_smape_on_worked_examples() -> None:
    train = np.array([1.0, 2, 3, 4, 5, 6, 7, 3, 2, 3, 4, 5, 6, 7])  # seasonal errors 2, 0 x6
    actual, predicted = np.array([2.0, 0.0, 4.0]), np.array([1.0, 0.0, 6.0])
    assert forecasts.mase(actual, predicted, train) == pytest.approx((3 / 3) / (2 / 7))
    # 200 * (1/3, 0 (both 0), 2/10) / 3
    assert forecasts.smape(actual, predicted) == pytest.approx(200 * (1 / 3 + 0.2) / 3)
    assert math.isnan(forecasts.mase(actual, predicted, np.ones(14)))


# --- the shop's daily demand ----------------------------------------------------------------------

_numbers = itertools.count(1)


async def _variant(session: AsyncSession, product: Product) -> int:
    found = await session.scalar(
        select(ProductVariant.id).where(ProductVariant.product_id == product.id)
    )
    assert found is not None
    return found


async def _orders(
    session: AsyncSession,
    orders: Sequence[tuple[datetime, OrderStatus, Sequence[tuple[Product, int]]]],
) -> None:
    """Orders with lines, written in two statements (guests' orders: demand has no customer)."""
    variants = {}
    rows, lines = [], []
    for placed, status, items in orders:
        number = f"SG-FC-{next(_numbers):06d}"
        rows.append(
            {
                "number": number,
                "status": status,
                "currency": "CNY",
                "placed_at": placed,
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
            }
        )
        for product, quantity in items:
            if product.id not in variants:
                variants[product.id] = await _variant(session, product)
            lines.append((number, product, quantity))
    await session.execute(insert(Order), rows)
    ids = {number: id_ for number, id_ in await session.execute(select(Order.number, Order.id))}
    await session.execute(
        insert(OrderLine),
        [
            {
                "order_id": ids[number],
                "product_id": product.id,
                "variant_id": variants[product.id],
                "sku": product.sku,
                "product_name": product.name,
                "options": {},
                "quantity": quantity,
                "base_unit_price_amount": 100,
                "unit_price_amount": 100,
                "line_total_amount": 100 * quantity,
                "adjustments": [],
            }
            for number, product, quantity in lines
        ],
    )
    await session.commit()


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


# Shop days are UTC+8: 16:00 UTC is midnight in Beijing. As of June 6, 10:00 UTC (18:00 in
# Beijing) the history ends on June 5.
AS_OF = utc(6, 10)


async def test_daily_demand_of_a_small_shop_is_counted_by_hand(session: AsyncSession) -> None:
    food = await make_category(session, "食品", slug="food")
    snacks = await make_category(session, "零食", slug="snacks", parent=food)
    other = await make_category(session, "数码", slug="digital")
    chips = await make_product(session, "薯片", sku="CHIPS", category=snacks)
    rice = await make_product(session, "大米", sku="RICE", category=food)
    phone = await make_product(session, "手机", sku="PHONE", category=other)
    P, C = OrderStatus.PAID, OrderStatus.COMPLETED
    await _orders(
        session,
        [
            (utc(1, 15, 59), P, [(chips, 2)]),  # June 1, 23:59 in Beijing
            (utc(1, 16, 0), C, [(chips, 1), (rice, 3)]),  # June 2, 00:00 in Beijing
            (utc(2, 3), OrderStatus.SHIPPED, [(phone, 1)]),  # June 2
            (utc(2, 4), OrderStatus.CANCELLED, [(chips, 50)]),  # not a purchase
            (utc(3, 4), OrderStatus.PENDING_PAYMENT, [(rice, 50)]),  # not paid
            (utc(4, 1), OrderStatus.DELIVERED, [(rice, 1)]),  # June 4
            (utc(4, 2), OrderStatus.FULFILLING, [(chips, 4), (phone, 2)]),  # June 4
            (utc(5, 15, 59), P, [(chips, 1)]),  # June 5, 23:59
            (utc(5, 16, 0), P, [(chips, 100), (rice, 100)]),  # June 6: today, not history
        ],
    )

    async def series(**which: int | None) -> tuple[date, list[float]]:
        history = await forecasts.daily_demand(session, as_of=AS_OF, **which)
        assert history.today == date(2026, 6, 6) and history.end == date(2026, 6, 5)
        return history.start, history.units.tolist()

    #                                     June 1  2  3  4  5
    assert await series(product_id=chips.id) == (date(2026, 6, 1), [2, 1, 0, 4, 1])
    assert await series(product_id=rice.id) == (date(2026, 6, 2), [3, 0, 1, 0])
    assert await series(category_id=snacks.id) == (date(2026, 6, 1), [2, 1, 0, 4, 1])
    # A category counts the categories below it.
    assert await series(category_id=food.id) == (date(2026, 6, 1), [2, 4, 0, 5, 1])
    assert await series() == (date(2026, 6, 1), [2, 5, 0, 7, 1])
    empty = await make_product(session, "没人买", sku="NOBODY", category=other)
    assert await series(product_id=empty.id) == (date(2026, 6, 6), [])

    # The service: the regression needs eight weeks, so a few days give SBA; days from today.
    forecast = await demand_forecast(session, category_id=food.id, days=3, as_of=AS_OF)
    assert isinstance(forecast, Forecast)
    assert forecast.days == (date(2026, 6, 6), date(2026, 6, 7), date(2026, 6, 8))
    assert forecast.model == "sba" and forecast.history_days == 5
    assert (await demand_forecast(session, product_id=empty.id, as_of=AS_OF)).model == "none"
    with pytest.raises(NotFound):
        await demand_forecast(session, product_id=10**6)
    with pytest.raises(ValidationFailed):
        await demand_forecast(session, product_id=chips.id, category_id=food.id)
    with pytest.raises(ValidationFailed):
        await demand_forecast(session, days=0)

    top = await forecasts.top_products(session, 2, as_of=AS_OF)
    assert [(p.sku, p.units) for p in top] == [("CHIPS", 8), ("RICE", 4)]


# --- the command ------------------------------------------------------------------------------


async def test_the_backtest_command_prints_its_table(
    session: AsyncSession, database_url: str
) -> None:
    # Ten weeks up to yesterday of a product that sells 2 a day on weekdays and 6 on weekends,
    # and one more every third day.
    snacks = await make_category(session, "零食", slug="snacks")
    chips = await make_product(session, "薯片", sku="CHIPS-1", category=snacks)
    today = forecasts.shop_day(datetime.now(UTC))
    days = [today - timedelta(days=d) for d in range(70, 0, -1)]
    await _orders(
        session,
        [
            (
                datetime(day.year, day.month, day.day, 4, tzinfo=UTC),
                OrderStatus.COMPLETED,
                [(chips, (6 if day.weekday() >= 5 else 2) + (i % 3 == 0))],
            )
            for i, day in enumerate(days)
        ],
    )
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    args = ["insights", "backtest", "--product", "chips-1", "--horizon", "7", "--origins", "2"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"product CHIPS-1 薯片: 70 days, {days[0]} to {days[-1]}; 2 origins from "
        f"{days[-14]}, horizon 7 days"
    )
    assert lines[1].split() == ["model", "MASE", "sMAPE", "bias", "cover", "80%", "cover", "95%"]
    rows = lines[2:7]
    labels = [forecasts.MODEL_LABELS[m] for m in forecasts.MODELS]
    assert [row.strip()[: len(label)] for row, label in zip(rows, labels, strict=True)] == labels
    assert result.stderr.splitlines()[-1] == (
        f"backtest: product CHIPS-1 薯片: origin {days[-7]} (2/2)"
    )

    # The JSON has the same figures as the table.
    report = json.loads(CliRunner().invoke(cli, [*args, "--json"], env=env).stdout)
    (only,) = report["series"]
    assert set(only["models"]) == set(forecasts.MODELS)
    for row, model in zip(rows, forecasts.MODELS, strict=True):
        figures = only["models"][model]
        shown = row.strip()[len(forecasts.MODEL_LABELS[model]) :].split()
        assert shown[:2] == [f"{figures['mase']:.3f}", f"{figures['smape']:.1f}%"]
        assert (figures["coverage"] is None) == (model in ("seasonal_naive", "moving_average"))
    assert f"winner (lowest MASE, *): {only['winner']}" in result.stdout
    verdict = "beats" if only["beats_seasonal_naive"] else "does NOT beat"
    assert lines[-1] == f"  demand_forecast {verdict} the seasonal naive forecast"

    missing = CliRunner().invoke(cli, ["insights", "backtest", "--product", "NOPE"], env=env)
    assert missing.exit_code == 1 and "NOPE was not found" in missing.output
    short = CliRunner().invoke(cli, ["insights", "backtest", "--category", "snacks"], env=env)
    assert short.exit_code == 1
    assert "70 days of history; 4 origins of 28 days need at least 168" in short.output
