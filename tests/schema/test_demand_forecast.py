"""demandForecast over HTTP, on SQLite and PostgreSQL: a product's and a category's forecast on a
synthetic history with a strong weekly shape (the forecast follows it; its intervals hold the
mean, the 95% one wider than the 80% one), the actual units next to it, the fit kept for the
day, refused input, and who may read it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.models import Category, OrderStatus, Product, ProductVariant, StaffRole
from server.services.forecasts import shop_day
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.product_health import Sale, Seeded, shop_time, write_orders
from tests.support.statements import counting

FORECAST = """query($input: DemandForecastInput!) { demandForecast(input: $input) {
  __typename
  ... on DemandForecast {
    model reason fittedDays levels total
    points { day mean intervals { level lower upper } }
    actuals { day units }
    product { sku } category { slug }
  }
  ... on Error { code field message }
} }"""

WEEKS = 16
# Units a day by weekday (Monday first): the crisps sell at the weekend, the rice steadily.
CRISPS = (3, 2, 2, 3, 5, 9, 11)
RICE = (2, 2, 2, 2, 2, 4, 4)


def _history(today: date) -> dict[str, dict[date, int]]:
    """WEEKS weeks up to yesterday: each day's units, the weekday's plus 0 or 1 at random."""
    rng = random.Random(7)
    days = [today - timedelta(days=d) for d in range(WEEKS * 7, 0, -1)]
    return {
        sku: {day: shape[day.weekday()] + rng.randint(0, 1) for day in days}
        for sku, shape in (("CRISPS", CRISPS), ("RICE", RICE))
    }


async def _seed(session: AsyncSession) -> dict[str, Any]:
    seeded = Seeded()
    food = Category(name="食品", slug="food")
    session.add(food)
    await session.flush()
    snacks = Category(name="零食", slug="snacks", parent_id=food.id)
    session.add(snacks)
    await session.flush()
    for sku, category in (("CRISPS", snacks), ("RICE", food)):
        product = Product(sku=sku, name=sku, price_amount=1000, category_id=category.id)
        session.add(product)
        await session.flush()
        assert product.id is not None
        variant = ProductVariant(product_id=product.id, sku=sku, price_amount=1000)
        session.add(variant)
        await session.flush()
        assert variant.id is not None
        seeded.products[sku], seeded.variants[sku] = product.id, variant.id
    assert food.id is not None and snacks.id is not None
    seeded.categories = {"food": food.id, "snacks": snacks.id}
    today = shop_day(datetime.now(UTC))
    history = _history(today)
    await write_orders(
        session,
        seeded,
        [
            Sale(shop_time(day), sku, units, OrderStatus.COMPLETED)
            for sku, days in history.items()
            for day, units in days.items()
        ],
    )
    staff = {role: await make_staff(session, role=role) for role in StaffRole}
    return {
        "shop": seeded,
        "today": today,
        "history": history,
        "staff": staff,
        "customer": await make_customer(session),
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


def analyst(gql: GraphQLClient, shop: ModuleShop) -> GraphQLClient:
    return as_(gql, shop, shop.seeded["staff"][StaffRole.ANALYST])


def _gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def _product(shop: ModuleShop, sku: str) -> str:
    return _gid("Product", shop.seeded["shop"].products[sku])


def _category(shop: ModuleShop, slug: str) -> str:
    return _gid("Category", shop.seeded["shop"].categories[slug])


def _check_intervals(forecast: dict[str, Any], levels: list[int]) -> None:
    """Every day: the intervals nest around the mean, each wider than the one below it."""
    assert forecast["levels"] == levels
    for point in forecast["points"]:
        bands = point["intervals"]
        assert [b["level"] for b in bands] == levels
        for band in bands:
            assert band["lower"] <= point["mean"] <= band["upper"]
        for narrow, wide in zip(bands, bands[1:], strict=False):
            assert wide["lower"] <= narrow["lower"] and narrow["upper"] <= wide["upper"]
            assert wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"]


def _weekday_means(days: list[str], values: list[float]) -> np.ndarray:
    sums, counts = np.zeros(7), np.zeros(7)
    for day, value in zip(days, values, strict=True):
        weekday = date.fromisoformat(day).weekday()
        sums[weekday] += value
        counts[weekday] += 1
    return sums / counts


def _check_follows(forecast: dict[str, Any], shape: tuple[int, ...]) -> None:
    """The forecast's weekly profile is the history's: highly correlated, the same busiest
    day (Sunday), and its quietest day one of the history's quietest."""
    points = forecast["points"]
    means = _weekday_means([p["day"] for p in points], [p["mean"] for p in points])
    expected = np.asarray(shape, dtype=np.float64) + 0.5
    assert np.corrcoef(means, expected)[0, 1] > 0.95
    assert int(np.argmax(means)) == 6
    assert expected[int(np.argmin(means))] == expected.min()
    # And its level: the mean over a week is within 15% of the history's.
    assert means.mean() == pytest.approx(expected.mean(), rel=0.15)


async def test_a_product_forecast_follows_the_weekly_shape(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    today: date = shop.seeded["today"]
    variables = {"input": {"productId": _product(shop, "CRISPS"), "days": 14, "historyDays": 28}}
    forecast = (await analyst(gql, shop)(FORECAST, variables))["demandForecast"]
    assert forecast["__typename"] == "DemandForecast"
    assert (forecast["model"], forecast["fittedDays"]) == ("REGRESSION", WEEKS * 7)
    assert forecast["product"] == {"sku": "CRISPS"} and forecast["category"] is None
    assert [p["day"] for p in forecast["points"]] == [
        (today + timedelta(days=d)).isoformat() for d in range(14)
    ]
    assert forecast["total"] == pytest.approx(sum(p["mean"] for p in forecast["points"]))
    _check_intervals(forecast, [80, 95])
    _check_follows(forecast, CRISPS)
    # The last 28 days up to yesterday, as sold.
    history = shop.seeded["history"]["CRISPS"]
    assert forecast["actuals"] == [
        {"day": day.isoformat(), "units": history[day]}
        for day in (today - timedelta(days=d) for d in range(28, 0, -1))
    ]


async def test_a_category_forecast_is_fitted_on_the_sum_of_its_products(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    today: date = shop.seeded["today"]
    history = shop.seeded["history"]
    variables = {"input": {"categoryId": _category(shop, "food"), "days": 21}}
    forecast = (await analyst(gql, shop)(FORECAST, variables))["demandForecast"]
    assert forecast["model"] == "REGRESSION"
    assert forecast["category"] == {"slug": "food"} and forecast["product"] is None
    assert len(forecast["points"]) == 21
    _check_intervals(forecast, [80, 95])
    _check_follows(forecast, tuple(a + b for a, b in zip(CRISPS, RICE, strict=True)))
    # The actuals of the default 56 days: the crisps (in 零食, below 食品) and the rice.
    assert forecast["actuals"] == [
        {"day": day.isoformat(), "units": history["CRISPS"][day] + history["RICE"][day]}
        for day in (today - timedelta(days=d) for d in range(56, 0, -1))
    ]
    # The subcategory holds the crisps alone.
    snacks = {"input": {"categoryId": _category(shop, "snacks"), "historyDays": 7}}
    only = (await analyst(gql, shop)(FORECAST, snacks))["demandForecast"]
    assert [a["units"] for a in only["actuals"]] == [
        history["CRISPS"][today - timedelta(days=d)] for d in range(7, 0, -1)
    ]


async def test_other_levels_and_a_long_window_of_actuals(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    today: date = shop.seeded["today"]
    variables = {
        "input": {
            "productId": _product(shop, "RICE"),
            "days": 7,
            "historyDays": 200,
            "levels": [99, 50, 99],
        }
    }
    forecast = (await analyst(gql, shop)(FORECAST, variables))["demandForecast"]
    # In increasing order, once each.
    _check_intervals(forecast, [50, 99])
    # 200 days: nothing was sold before the history's first day.
    actuals = forecast["actuals"]
    assert len(actuals) == 200
    assert actuals[0]["day"] == (today - timedelta(days=200)).isoformat()
    assert actuals[-1]["day"] == (today - timedelta(days=1)).isoformat()
    assert all(a["units"] == 0 for a in actuals[: 200 - WEEKS * 7])
    assert sum(a["units"] for a in actuals) == sum(shop.seeded["history"]["RICE"].values())


async def test_the_fit_is_kept_for_the_day(gql: GraphQLClient, shop: ModuleShop) -> None:
    client = analyst(gql, shop)
    variables = {"input": {"productId": _product(shop, "RICE"), "days": 10, "levels": [90]}}
    with counting(shop.app) as first:
        before = (await client(FORECAST, variables))["demandForecast"]
    with counting(shop.app) as second:
        again = (await client(FORECAST, variables))["demandForecast"]
    assert again == before
    assert [s for s in first if "order_line" in s]
    # The second reads whether the product exists, not the orders.
    assert not [s for s in second if "order_line" in s]
    # Another horizon is another fit.
    with counting(shop.app) as third:
        variables["input"]["days"] = 11
        longer = (await client(FORECAST, variables))["demandForecast"]
    assert [s for s in third if "order_line" in s]
    assert len(longer["points"]) == 11


@pytest.mark.parametrize(
    ("given", "typename", "field"),
    [
        ({}, "ValidationError", "productId"),
        ({"productId": "CRISPS", "categoryId": "food"}, "ValidationError", "productId"),
        ({"productId": "CRISPS", "days": 0}, "ValidationError", "days"),
        ({"productId": "CRISPS", "days": 91}, "ValidationError", "days"),
        ({"productId": "CRISPS", "historyDays": 0}, "ValidationError", "historyDays"),
        ({"productId": "CRISPS", "historyDays": 366}, "ValidationError", "historyDays"),
        ({"productId": "CRISPS", "levels": [0]}, "ValidationError", "levels"),
        ({"productId": "CRISPS", "levels": [100]}, "ValidationError", "levels"),
        ({"productId": "CRISPS", "levels": []}, "ValidationError", "levels"),
        ({"productId": "CRISPS", "levels": [10, 20, 30, 40, 50, 60]}, "ValidationError", "levels"),
        ({"productId": "missing"}, "NotFoundError", "productId"),
        ({"productId": "not an id"}, "NotFoundError", "productId"),
        ({"categoryId": "CRISPS"}, "NotFoundError", "categoryId"),
        ({"categoryId": "missing"}, "NotFoundError", "categoryId"),
    ],
)
async def test_bad_input_is_a_typed_error(
    gql: GraphQLClient, shop: ModuleShop, given: dict[str, Any], typename: str, field: str
) -> None:
    ids = {
        "CRISPS": _product(shop, "CRISPS"),
        "food": _category(shop, "food"),
        "missing": _gid("Product", 999_999) if "productId" in given else _gid("Category", 999_999),
        "not an id": "not an id",
    }
    values = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in given.items()}
    with counting(shop.app) as statements:
        answer = (await analyst(gql, shop)(FORECAST, {"input": values}))["demandForecast"]
    assert (answer["__typename"], answer["field"]) == (typename, field)
    assert not [s for s in statements if "order_line" in s]


async def test_only_insight_readers_see_forecasts(gql: GraphQLClient, shop: ModuleShop) -> None:
    staff = shop.seeded["staff"]
    variables = {"input": {"productId": _product(shop, "CRISPS")}}
    for client in (
        gql,
        as_(gql, shop, shop.seeded["customer"]),
        as_(gql, shop, staff[StaffRole.CATALOG]),
        as_(gql, shop, staff[StaffRole.LOGISTICS]),
    ):
        body = await client.execute(FORECAST, variables)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    admin = as_(gql, shop, staff[StaffRole.ADMIN])
    assert (await admin(FORECAST, variables))["demandForecast"]["__typename"] == "DemandForecast"
