"""Demand forecasts over GraphQL, for staff with insights.read: the daily units a product or a
category is expected to sell, with prediction intervals, next to the units it sold
(``demandForecast``). The model and the SQL are in server/services/forecasts.py."""

from __future__ import annotations

from datetime import date, timedelta
from enum import Enum
from typing import Annotated, Any

import strawberry

from schema.categories import Category
from schema.products import Product
from server.graphql.context import Info
from server.graphql.errors import NotFoundError, ValidationError, validation_error
from server.graphql.ids import require_node_id
from server.graphql.permissions import HasPermission
from server.permissions import INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import forecasts as service
from server.services.errors import NotFound, ValidationFailed

CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)

MAX_DAYS = 90
DEFAULT_DAYS = 28
DEFAULT_HISTORY_DAYS = 56
MAX_HISTORY_DAYS = 365
DEFAULT_LEVELS = (80, 95)


@strawberry.enum(description="The model a forecast was made with.")
class ForecastModel(Enum):
    REGRESSION = "regression"
    SBA = "sba"
    NONE = "none"


@strawberry.input(description="What to forecast: a product or a category (exactly one).")
class DemandForecastInput:
    product_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = strawberry.field(
        default=None, description="The category and every category below it."
    )
    days: int = strawberry.field(
        default=DEFAULT_DAYS, description="Days to forecast, today first (1-90)."
    )
    history_days: int = strawberry.field(
        default=DEFAULT_HISTORY_DAYS,
        description="Days of actual units to return, up to yesterday (1-365). The model is "
        "fitted on the whole history (up to three years) whatever this is.",
    )
    levels: list[int] = strawberry.field(
        default_factory=lambda: list(DEFAULT_LEVELS),
        description="Prediction intervals, in percent (1-99; at most 5).",
    )


@strawberry.type(description="The day's units fall between lower and upper with probability level.")
class ForecastInterval:
    level: int = strawberry.field(description="In percent: 80, 95 …")
    lower: float
    upper: float


@strawberry.type(description="One forecast day.")
class ForecastPoint:
    day: date
    mean: float = strawberry.field(description="The expected units (never negative).")
    intervals: list[ForecastInterval] = strawberry.field(description="The narrowest first.")


@strawberry.type(description="Units sold on a shop day.")
class DailyUnits:
    day: date
    units: int


@strawberry.type(
    description="A daily demand forecast with its intervals, and the actual units of the days "
    "before it, so that a chart can draw one against the other."
)
class DemandForecast:
    model: ForecastModel = strawberry.field(
        description="REGRESSION (weekday, year, promotions, AR(1)), SBA (short or sparse "
        "history) or NONE (nothing ever sold: every figure 0)."
    )
    reason: str = strawberry.field(description="Why the model was chosen.")
    fitted_days: int = strawberry.field(description="The days of history it was fitted on.")
    levels: list[int] = strawberry.field(description="The intervals' levels, in percent.")
    total: float = strawberry.field(description="Units expected over all the forecast days.")
    points: list[ForecastPoint] = strawberry.field(description="From today, one per day.")
    actuals: list[DailyUnits] = strawberry.field(
        description="The last historyDays days up to yesterday (0 before the first sale)."
    )
    _product_pk: strawberry.Private[int | None]
    _category_pk: strawberry.Private[int | None]

    @strawberry.field(description="The product forecast (null for a category's).")
    def product(self, info: Info) -> Product | None:
        # At once when the request holds the row, else batched through the loader.
        return Product.by_id(info, self._product_pk)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it

    @strawberry.field(description="The category forecast (null for a product's).")
    def category(self, info: Info) -> Category | None:
        # At once when the request holds the row, else batched through the loader.
        return Category.by_id(info, self._category_pk)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it


DemandForecastResult = Annotated[
    DemandForecast | ValidationError | NotFoundError, strawberry.union("DemandForecastResult")
]


def _check(given: DemandForecastInput) -> tuple[float, ...]:
    """The input's levels as fractions; a ValidationFailed for a bad input."""
    if (given.product_id is None) == (given.category_id is None):
        raise ValidationFailed("give exactly one of productId and categoryId", field="productId")
    if not 1 <= given.days <= MAX_DAYS:
        raise ValidationFailed(f"days must be between 1 and {MAX_DAYS}", field="days")
    if not 1 <= given.history_days <= MAX_HISTORY_DAYS:
        raise ValidationFailed(
            f"historyDays must be between 1 and {MAX_HISTORY_DAYS}", field="historyDays"
        )
    if not all(1 <= level <= 99 for level in given.levels):
        raise ValidationFailed("a level is a percentage from 1 to 99", field="levels")
    return service.check_levels([level / 100 for level in given.levels])


def _actuals(history: service.DemandHistory, days: int) -> list[DailyUnits]:
    first = history.today - timedelta(days=days)
    shown = []
    for i in range(days):
        day = first + timedelta(days=i)
        index = (day - history.start).days
        sold = history.units[index] if 0 <= index < history.units.size else 0.0
        shown.append(DailyUnits(day=day, units=int(sold)))
    return shown


def _percent(level: float) -> int:
    return round(level * 100)


def _forecast(
    report: service.DemandReport, history_days: int, product: int | None, category: int | None
) -> DemandForecast:
    forecast = report.forecast
    return DemandForecast(
        model=ForecastModel(forecast.model),
        reason=forecast.reason,
        fitted_days=forecast.history_days,
        levels=[_percent(i.level) for i in forecast.intervals],
        total=forecast.total,
        points=[
            ForecastPoint(
                day=day,
                mean=forecast.mean[d],
                intervals=[
                    ForecastInterval(level=_percent(i.level), lower=i.lower[d], upper=i.upper[d])
                    for i in forecast.intervals
                ],
            )
            for d, day in enumerate(forecast.days)
        ],
        actuals=_actuals(report.history, history_days),
        _product_pk=product,
        _category_pk=category,
    )


@strawberry.type
class ForecastQueries:
    @strawberry.field(
        description="The daily demand of a product or a category over the next `days` days, "
        "with prediction intervals, and its actual units of the last `historyDays` days "
        "(insights.read). Fitted once a shop day per product or category, days and levels.",
        permission_classes=[CanRead],
    )
    async def demand_forecast(self, info: Info, input: DemandForecastInput) -> DemandForecastResult:
        try:
            levels = _check(input)
            product = (
                None
                if input.product_id is None
                else require_node_id(input.product_id, "Product", "productId")
            )
            category = (
                None
                if input.category_id is None
                else require_node_id(input.category_id, "Category", "categoryId")
            )
            report = await info.context.db.run(
                service.cached_demand_forecast,
                product_id=product,
                category_id=category,
                days=input.days,
                levels=levels,
            )
        except NotFound as exc:
            return NotFoundError(code=exc.code, message=exc.message, field=exc.field)
        except ValidationFailed as exc:
            return validation_error(exc)
        return _forecast(report, input.history_days, product, category)


QUERIES: list[type[Any]] = [ForecastQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
