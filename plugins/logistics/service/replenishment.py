"""Replenishment per product and warehouse: reorder point, safety stock, order quantity,
days of cover, inventory classes; stock-out alerts (a job) and the CSV export (a route).

The maths (docs/plugins/logistics.md, "Replenishment"), per product p at warehouse w:

- ``d``: the daily demand forecast at w — the core's forecast of p's units
  (:func:`server.services.forecasts.forecast_units`, the model behind ``demand_forecast``)
  averaged over the next ``ceil(L + R)`` days, times w's share of p's units over the history
  window (``replenishment_history_days``; evenly across the warehouses stocking p when none
  was sold from any);
- ``σ_d``: the standard deviation (population) of w's daily units of p over that window, days
  without a sale counted 0; ``b`` the window's mean (the baseline level);
- ``SS = z · sqrt(L · σ_d² + d² · σ_L²)`` with ``z = Φ⁻¹(service level)``;
- ``ROP = d · L + SS``;
- inventory position = on hand − reserved (no purchase orders are kept): when it is at or
  below ROP, order ``max(MOQ, ceil(d · (L + R) + SS − position))``, else 0;
- days of cover = available / d (none when d = 0);
- classes: SAFETY = SS, REGULAR = d · R, SEASONAL = max(0, forecast over the next
  ``ceil(L + R)`` days − b · ceil(L + R)).

A page of rows is computed in a fixed number of statements (policies, stock, one daily
history of every product on the page) and one worker-thread call fitting their forecasts.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from plugins.logistics import MANAGE, READ
from plugins.logistics.models import ReplenishmentPolicy, StockoutAlert
from server.db import mark_write
from server.models import Order, OrderLine, Product, StockLevel, Warehouse, utcnow
from server.plugin import (
    Job,
    JobContext,
    NotFound,
    RouteError,
    ValidationFailed,
    filter_node_id,
    raise_alert,
    require_permission,
    route_session,
)
from server.services.forecasts import (
    MAX_FIT_DAYS,
    Forecast,
    day_start,
    forecast_units,
    shop_day,
    shop_day_sql,
)
from server.services.insight_runs import dialect_of
from server.services.rfm import PURCHASE_STATUSES

# The most (product, warehouse) rows the belowReorderPoint filter examines: it needs every
# row's figures before the page can be cut.
MAX_SCAN = 500
# The CSV export computes this many rows per batch of statements.
CSV_BATCH = 200
_EPSILON = 1e-9
ID_MAX = 200


# --- the maths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A product's replenishment at one warehouse: its row, or the settings' defaults."""

    lead_time_days: float
    lead_time_sd_days: float
    service_level: float
    review_days: int
    min_order_quantity: int
    explicit: bool = False


def default_policy(config: Any) -> Policy:
    return Policy(
        lead_time_days=config.lead_time_days,
        lead_time_sd_days=config.lead_time_sd_days,
        service_level=config.service_level,
        review_days=config.review_days,
        min_order_quantity=config.min_order_quantity,
    )


def policy_of(row: ReplenishmentPolicy) -> Policy:
    return Policy(
        lead_time_days=row.lead_time_days,
        lead_time_sd_days=row.lead_time_sd_days,
        service_level=row.service_level,
        review_days=row.review_days,
        min_order_quantity=row.min_order_quantity,
        explicit=True,
    )


def horizon_days(policy: Policy) -> int:
    """The days the forecast is averaged over: the lead time and the review period."""
    return max(1, math.ceil(policy.lead_time_days + policy.review_days - _EPSILON))


def z_score(service_level: float) -> float:
    """The standard normal quantile of the service level (0.95 → 1.645)."""
    return NormalDist().inv_cdf(service_level)


def safety_stock(z: float, lead: float, lead_sd: float, daily: float, daily_sd: float) -> float:
    """``z · sqrt(L·σ_d² + d²·σ_L²)``: demand and lead-time variability together."""
    return max(0.0, z * math.sqrt(lead * daily_sd**2 + daily**2 * lead_sd**2))


@dataclass(frozen=True)
class Figures:
    """One row's figures (units; days for the cover)."""

    daily_demand: float
    demand_sd: float
    baseline: float
    safety_stock: float
    reorder_point: float
    on_hand: int
    reserved: int
    order_quantity: int
    days_of_cover: float | None
    regular: float
    seasonal: float

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def below_reorder_point(self) -> bool:
        return self.available <= self.reorder_point + _EPSILON


def figures(
    policy: Policy,
    *,
    horizon_units: float,
    demand_sd: float,
    baseline: float,
    on_hand: int,
    reserved: int,
) -> Figures:
    """The figures of one row from the forecast units over :func:`horizon_days` (already this
    warehouse's share), the history's deviation and mean, and the stock."""
    days = horizon_days(policy)
    d = horizon_units / days
    lead, review = policy.lead_time_days, policy.review_days
    ss = safety_stock(z_score(policy.service_level), lead, policy.lead_time_sd_days, d, demand_sd)
    rop = d * lead + ss
    available = on_hand - reserved
    quantity = 0
    if available <= rop + _EPSILON:
        need = math.ceil(d * (lead + review) + ss - available - _EPSILON)
        quantity = max(policy.min_order_quantity, need)
    return Figures(
        daily_demand=d,
        demand_sd=demand_sd,
        baseline=baseline,
        safety_stock=ss,
        reorder_point=rop,
        on_hand=on_hand,
        reserved=reserved,
        order_quantity=quantity,
        days_of_cover=available / d if d > _EPSILON else None,
        regular=d * review,
        seasonal=max(0.0, horizon_units - baseline * days),
    )


def split_shares(units_by_warehouse: dict[int, float], stocking: Iterable[int]) -> dict[int, float]:
    """Each warehouse's share of a product's demand: its share of the units sold from the
    warehouses over the window, or an even split across the warehouses stocking it when none
    was sold."""
    total = sum(units_by_warehouse.values())
    if total > 0:
        return {w: u / total for w, u in units_by_warehouse.items()}
    stocked = sorted(set(stocking))
    return {w: 1 / len(stocked) for w in stocked} if stocked else {}


# --- reading a batch of rows -----------------------------------------------------------------


Pair = tuple[int, int]  # (product id, warehouse id)


@dataclass(frozen=True)
class Row:
    product_id: int
    warehouse_id: int
    policy: Policy
    figures: Figures


async def compute(
    session: AsyncSession, config: Any, pairs: Sequence[Pair], *, as_of: datetime | None = None
) -> dict[Pair, Row]:
    """The figures of ``pairs``: three statements and one worker-thread call, however many."""
    if not pairs:
        return {}
    products = sorted({p for p, _ in pairs})
    policies = {
        (row.product_id, row.warehouse_id): policy_of(row)
        for row in await session.scalars(
            select(ReplenishmentPolicy).where(col(ReplenishmentPolicy.product_id).in_(products))
        )
    }
    stock: dict[Pair, tuple[int, int]] = {}
    stocking: dict[int, list[int]] = defaultdict(list)
    for pid, wid, on_hand, reserved in await session.execute(
        select(
            col(StockLevel.product_id),
            col(StockLevel.warehouse_id),
            func.sum(col(StockLevel.on_hand)),
            func.sum(col(StockLevel.reserved)),
        )
        .where(col(StockLevel.product_id).in_(products))
        .group_by(col(StockLevel.product_id), col(StockLevel.warehouse_id))
    ):
        stock[(pid, wid)] = (int(on_hand or 0), int(reserved or 0))
        stocking[pid].append(wid)

    today = shop_day(as_of or utcnow())
    since = today - timedelta(days=MAX_FIT_DAYS)
    window = config.replenishment_history_days
    window_start = today - timedelta(days=window)
    # Units per product, per warehouse (None: not allocated yet) and shop day.
    by_day: dict[int, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    window_units: dict[Pair, np.ndarray[Any, Any]] = {}
    for pid, wid, day_value, units in await session.execute(
        _history(session, products, since, today)
    ):
        day = day_value if isinstance(day_value, date) else date.fromisoformat(str(day_value))
        by_day[pid][day] += float(units or 0)
        if wid is not None and day >= window_start:
            series = window_units.setdefault((pid, wid), np.zeros(window))
            series[(day - window_start).days] += float(units or 0)

    defaults = default_policy(config)
    horizon = {
        pid: max(horizon_days(policies.get((p, w), defaults)) for p, w in pairs if p == pid)
        for pid in products
    }
    forecasts = await asyncio.to_thread(_forecasts, by_day, horizon, today)

    out: dict[Pair, Row] = {}
    for pid, wid in pairs:
        policy = policies.get((pid, wid), defaults)
        shares = split_shares(
            {w: float(s.sum()) for (p, w), s in window_units.items() if p == pid},
            stocking.get(pid, [wid]),
        )
        mean = forecasts[pid]
        series = window_units.get((pid, wid), np.zeros(window))
        on_hand, reserved = stock.get((pid, wid), (0, 0))
        out[(pid, wid)] = Row(
            pid,
            wid,
            policy,
            figures(
                policy,
                horizon_units=float(sum(mean[: horizon_days(policy)])) * shares.get(wid, 0.0),
                demand_sd=float(series.std()),
                baseline=float(series.mean()),
                on_hand=on_hand,
                reserved=reserved,
            ),
        )
    return out


def _history(
    session: AsyncSession, products: Sequence[int], since: date, today: date
) -> Select[Any]:
    """Purchased units per product, warehouse and shop day (as the core's demand counts them:
    purchases, dated by when they were placed)."""
    day = shop_day_sql(col(Order.placed_at), dialect_of(session)).label("day")
    return (
        select(
            col(OrderLine.product_id),
            col(OrderLine.warehouse_id),
            day,
            func.sum(col(OrderLine.quantity)),
        )
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(
            col(OrderLine.product_id).in_(products),
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) >= day_start(since),
            col(Order.placed_at) < day_start(today),
        )
        .group_by(col(OrderLine.product_id), col(OrderLine.warehouse_id), day)
    )


def _forecasts(
    by_day: dict[int, dict[date, float]], horizon: dict[int, int], today: date
) -> dict[int, tuple[float, ...]]:
    """Each product's forecast mean for its horizon, from its first sale to yesterday."""
    out: dict[int, tuple[float, ...]] = {}
    for pid, days in horizon.items():
        sold = by_day.get(pid)
        if not sold:
            out[pid] = (0.0,) * days
            continue
        start = min(sold)
        units = np.zeros((today - start).days)
        for day, n in sold.items():
            units[(day - start).days] += n
        forecast: Forecast = forecast_units(units, start, days)
        out[pid] = forecast.mean
    return out


# --- the rows the query and the export list ----------------------------------------------------


@dataclass(frozen=True)
class RowFilter:
    warehouse_id: int | None = None
    product_id: int | None = None
    below_reorder_point: bool | None = None


def _pair_conditions(flt: RowFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if flt.warehouse_id is not None:
        out.append(col(StockLevel.warehouse_id) == flt.warehouse_id)
    if flt.product_id is not None:
        out.append(col(StockLevel.product_id) == flt.product_id)
    return out


def _representatives(flt: RowFilter) -> Select[Any]:
    """One stock level per (product, warehouse) — the first — standing for the pair's row."""
    return (
        select(func.min(col(StockLevel.id)))
        .where(*_pair_conditions(flt))
        .group_by(col(StockLevel.product_id), col(StockLevel.warehouse_id))
    )


async def rows_query(session: AsyncSession, config: Any, flt: RowFilter) -> Select[Any]:
    """The stock levels standing for the rows of ``flt``, for the connection. With
    ``below_reorder_point`` the first :data:`MAX_SCAN` rows are computed (in one batch) and
    those below (or not below) their reorder point kept."""
    stmt = select(StockLevel).where(col(StockLevel.id).in_(_representatives(flt)))
    if flt.below_reorder_point is None:
        return stmt
    found = list(
        await session.execute(
            select(col(StockLevel.id), col(StockLevel.product_id), col(StockLevel.warehouse_id))
            .where(col(StockLevel.id).in_(_representatives(flt)))
            .order_by(col(StockLevel.product_id), col(StockLevel.id))
            .limit(MAX_SCAN)
        )
    )
    computed = await compute(session, config, [(p, w) for _, p, w in found])
    keep = [
        sid
        for sid, p, w in found
        if computed[(p, w)].figures.below_reorder_point is flt.below_reorder_point
    ]
    return stmt.where(col(StockLevel.id).in_(keep))


async def all_pairs(session: AsyncSession, flt: RowFilter) -> list[Pair]:
    rows = await session.execute(
        select(col(StockLevel.product_id), col(StockLevel.warehouse_id))
        .where(*_pair_conditions(flt))
        .group_by(col(StockLevel.product_id), col(StockLevel.warehouse_id))
        .order_by(col(StockLevel.product_id), col(StockLevel.warehouse_id))
    )
    return [(int(p), int(w)) for p, w in rows]


# --- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInput:
    product_id: int
    warehouse_id: int
    lead_time_days: float
    lead_time_sd_days: float = 0.0
    service_level: float = 0.95
    review_days: int = 7
    min_order_quantity: int = 1


def check_policy(value: PolicyInput) -> None:
    if not 0 < value.lead_time_days <= 365:
        raise ValidationFailed(
            "the lead time is more than 0 and at most 365 days", field="leadTimeDays"
        )
    if not 0 <= value.lead_time_sd_days <= 365:
        raise ValidationFailed("the lead time's deviation is 0 to 365 days", field="leadTimeSdDays")
    if not 0.5 <= value.service_level <= 0.999:
        raise ValidationFailed("the service level is between 0.5 and 0.999", field="serviceLevel")
    if not 0 <= value.review_days <= 365:
        raise ValidationFailed("the review period is 0 to 365 days", field="reviewDays")
    if not 1 <= value.min_order_quantity <= 1_000_000:
        raise ValidationFailed(
            "the minimum order is 1 to 1,000,000 units", field="minOrderQuantity"
        )


async def set_policy(session: AsyncSession, value: PolicyInput) -> ReplenishmentPolicy:
    """Create or replace the policy of a product at a warehouse."""
    check_policy(value)
    if await session.get(Product, value.product_id) is None:
        raise NotFound("Product", value.product_id, field="productId")
    if await session.get(Warehouse, value.warehouse_id) is None:
        raise NotFound("Warehouse", value.warehouse_id, field="warehouseId")
    row = await session.scalar(
        select(ReplenishmentPolicy).where(
            col(ReplenishmentPolicy.product_id) == value.product_id,
            col(ReplenishmentPolicy.warehouse_id) == value.warehouse_id,
        )
    )
    if row is None:
        row = ReplenishmentPolicy(product_id=value.product_id, warehouse_id=value.warehouse_id)
    row.lead_time_days = value.lead_time_days
    row.lead_time_sd_days = value.lead_time_sd_days
    row.service_level = value.service_level
    row.review_days = value.review_days
    row.min_order_quantity = value.min_order_quantity
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    return row


# --- stock-out alerts --------------------------------------------------------------------------


def open_key(product_id: int, warehouse_id: int) -> str:
    return f"p:{product_id}/w:{warehouse_id}"


def stockout(row: Row) -> bool:
    """Out, or projected to run out before a new order could arrive."""
    f = row.figures
    if f.available <= 0:
        return True
    return f.days_of_cover is not None and f.days_of_cover < row.policy.lead_time_days


@dataclass
class AlertCounts:
    raised: int = 0
    cleared: int = 0


async def check_stockouts(
    sessions: Any, config: Any, pairs: Sequence[Pair], *, as_of: datetime | None = None
) -> AlertCounts:
    """Raise an alert for each row out of stock or covering less than its lead time (once per
    episode: insert-or-ignore on the open key), and clear those whose available stock is back
    above the reorder point (a conditional UPDATE): safe with two runs at once. The figures
    are read in one transaction, the alerts written in a short one of their own."""
    async with sessions() as session:
        rows = await compute(session, config, pairs, as_of=as_of)
    async with sessions() as session:
        await mark_write(session)
        counts = await apply_stockouts(session, rows.values(), as_of or utcnow())
        await session.commit()
    return counts


async def apply_stockouts(session: AsyncSession, rows: Iterable[Row], now: datetime) -> AlertCounts:
    counts = AlertCounts()
    insert = _insert_for(session)
    for row in rows:
        key = open_key(row.product_id, row.warehouse_id)
        f = row.figures
        if stockout(row):
            new_id = await session.scalar(
                insert(StockoutAlert)
                .values(
                    product_id=row.product_id,
                    warehouse_id=row.warehouse_id,
                    open_key=key,
                    available=f.available,
                    reorder_point=f.reorder_point,
                    days_of_cover=f.days_of_cover,
                    raised_at=now,
                )
                .on_conflict_do_nothing(index_elements=["open_key"])
                .returning(col(StockoutAlert.id))
            )
            if new_id is not None:
                counts.raised += 1
                # Staff see it with the core's alerts too, once per episode.
                cover = "" if f.days_of_cover is None else f", {f.days_of_cover:.1f} days of cover"
                await raise_alert(
                    session,
                    plugin="logistics",
                    key=f"stockout:{new_id}",
                    message=(
                        f"product {row.product_id} at warehouse {row.warehouse_id}: "
                        f"{f.available} available, reorder point {f.reorder_point:.1f}{cover}"
                    ),
                    value=float(f.available),
                    threshold=f.reorder_point,
                )
        elif f.available > f.reorder_point:
            done = await session.execute(
                update(StockoutAlert)
                .where(col(StockoutAlert.open_key) == key, col(StockoutAlert.cleared_at).is_(None))
                .values(open_key=None, cleared_at=now, available=f.available)
            )
            counts.cleared += int(getattr(done, "rowcount", 0) or 0)
    return counts


def _insert_for(session: AsyncSession) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert


def jobs(config: Any) -> Sequence[Job]:
    async def run(ctx: JobContext) -> None:
        async with ctx.sessions() as session:
            pairs = await all_pairs(session, RowFilter())
        for i in range(0, len(pairs), CSV_BATCH):
            ctx.progress(f"logistics: stock-outs {i}/{len(pairs)}")
            await check_stockouts(ctx.sessions, ctx.config, pairs[i : i + CSV_BATCH])

    return [
        Job(
            "stockouts",
            config.stockout_job_interval_minutes * 60,
            run,
            description="Raise a stock-out alert for each product and warehouse out of stock "
            "or covering less than its lead time; clear it once stock is above the reorder point.",
        )
    ]


# --- the CSV export ----------------------------------------------------------------------------

CSV_COLUMNS = (
    "product_id",
    "sku",
    "product",
    "warehouse_id",
    "warehouse",
    "on_hand",
    "reserved",
    "available",
    "daily_demand",
    "demand_sd",
    "lead_time_days",
    "lead_time_sd_days",
    "service_level",
    "review_days",
    "safety_stock",
    "reorder_point",
    "order_quantity",
    "days_of_cover",
    "regular_stock",
    "seasonal_stock",
    "below_reorder_point",
)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def csv_line(row: Row, sku: str, product: str, warehouse: str) -> list[str]:
    f, p = row.figures, row.policy
    return [
        str(row.product_id),
        sku,
        product,
        str(row.warehouse_id),
        warehouse,
        str(f.on_hand),
        str(f.reserved),
        str(f.available),
        _num(f.daily_demand),
        _num(f.demand_sd),
        _num(p.lead_time_days),
        _num(p.lead_time_sd_days),
        f"{p.service_level:.3f}",
        str(p.review_days),
        _num(f.safety_stock),
        _num(f.reorder_point),
        str(f.order_quantity),
        _num(f.days_of_cover),
        _num(f.regular),
        _num(f.seasonal),
        "true" if f.below_reorder_point else "false",
    ]


def _encode(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


async def csv_rows(sessions: Any, config: Any, flt: RowFilter) -> AsyncIterator[str]:
    """The export, a batch of rows at a time, each batch in its own short transaction."""
    yield _encode(CSV_COLUMNS)
    async with sessions() as session:
        pairs = await all_pairs(session, flt)
    for i in range(0, len(pairs), CSV_BATCH):
        batch = pairs[i : i + CSV_BATCH]
        async with sessions() as session:
            rows = await compute(session, config, batch)
            names = {
                pid: (sku, name)
                for pid, sku, name in await session.execute(
                    select(col(Product.id), col(Product.sku), col(Product.name)).where(
                        col(Product.id).in_({p for p, _ in batch})
                    )
                )
            }
            houses = {
                wid: code
                for wid, code in await session.execute(
                    select(col(Warehouse.id), col(Warehouse.code)).where(
                        col(Warehouse.id).in_({w for _, w in batch})
                    )
                )
            }
        for pair in batch:
            row = rows[pair]
            if (
                flt.below_reorder_point is not None
                and row.figures.below_reorder_point is not flt.below_reorder_point
            ):
                continue
            sku, name = names.get(pair[0], ("", ""))
            yield _encode(csv_line(row, str(sku), str(name), str(houses.get(pair[1], ""))))


def _id_param(request: Request, name: str, type_name: str) -> int | None:
    """A filter's id, as the GraphQL query takes it (a global id); one naming nothing finds
    nothing, like a missing row."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > ID_MAX:
        raise RouteError(400, "BAD_PARAMETER", f"{name} is an id of at most {ID_MAX} characters")
    return filter_node_id(raw, type_name)


def routes(plugins: Any, config: Any) -> Sequence[BaseRoute]:
    async def export(request: Request) -> Response:
        await require_permission(request, READ, MANAGE)
        below = request.query_params.get("belowReorderPoint")
        if below is not None and below not in ("true", "false"):
            raise RouteError(400, "BAD_PARAMETER", "belowReorderPoint is true or false")
        flt = RowFilter(
            warehouse_id=_id_param(request, "warehouseId", "Warehouse"),
            product_id=_id_param(request, "productId", "Product"),
            below_reorder_point=None if below is None else below == "true",
        )
        return StreamingResponse(
            csv_rows(lambda: route_session(request), config, flt),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="replenishment.csv"'},
        )

    return [Route("/replenishment.csv", export, methods=["GET"])]
