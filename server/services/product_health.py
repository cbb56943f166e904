"""Product health for staff: how much of the range sells (sell rate, 动销率), how new products
sell through, which SKUs sit on stock (slow movers) and which sold out (stock-outs); and the
two KPIs the ``kpis`` hook offers from them (docs/insights.md, "Product health").

- **A period** is shop days (UTC+8, :func:`server.services.forecasts.shop_day`), ``start``
  inclusive and ``end`` exclusive; sales are the order lines of purchases
  (:data:`server.services.rfm.PURCHASE_STATUSES`: paid, not cancelled) placed in it.
- **A SKU on sale** is a variant that is active, of an active product, and was created before
  the period's end (the catalogue keeps no history of when an item was taken off sale: what
  is on sale now stands for what was on sale then).
- **Stock** is now: the units on hand and available (on hand less reserved) summed over the
  active warehouses.

Every figure is answered by one aggregate statement (the lists with their counts, through a
window function), whatever the catalogue's size. The KPIs compute every bucket of a query at
once: the days of the buckets are a ``VALUES`` list that each order finds its bucket in by its
shop day (one pass over the orders), and the SKUs on sale are counted per day of creation.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    Date,
    Float,
    Integer,
    Subquery,
    case,
    cast,
    column,
    distinct,
    func,
    select,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.hooktypes import Kpi, KpiBucket, KpiUnit
from server.models import (
    Category,
    Order,
    OrderLine,
    Product,
    ProductVariant,
    StockLevel,
    Warehouse,
    utcnow,
)
from server.models.base import UTCDateTime
from server.services.errors import ValidationFailed
from server.services.forecasts import day_start, shop_day, shop_day_sql
from server.services.rfm import PURCHASE_STATUSES

DEFAULT_DAYS = 30
MAX_DAYS = 366
DEFAULT_NEW_WITHIN_DAYS = 30
MAX_NEW_WITHIN_DAYS = 366
# The days a period may name: far from the ends of the calendar, so that the days before a
# period (the one it is compared with, the new products' window) exist too.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Days of buckets per KPI statement: VALUES lists stay far below the drivers' parameter limits.
_DAYS_PER_STATEMENT = 2000


# --- periods of shop days ---------------------------------------------------------------------


@dataclass(frozen=True)
class ShopPeriod:
    """The shop days ``start`` (inclusive) to ``end`` (exclusive); ``today`` is the shop's day
    when it was asked for."""

    start: date
    end: date
    today: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def elapsed_days(self) -> int:
        """The days of the period up to today included (a period reaching into the future
        has had only those to sell); at least 1."""
        return max(1, (min(self.end, self.today + timedelta(days=1)) - self.start).days)

    @property
    def utc_start(self) -> datetime:
        return day_start(self.start)

    @property
    def utc_end(self) -> datetime:
        return day_start(self.end)

    @property
    def last(self) -> date:
        """The period's last day (what the GraphQL API calls ``to``)."""
        return self.end - timedelta(days=1)

    def previous(self) -> ShopPeriod:
        """The period of the same length just before this one."""
        return ShopPeriod(self.start - timedelta(days=self.days), self.start, self.today)


def shop_period(
    start: date | None,
    end: date | None,
    *,
    now: datetime | None = None,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> ShopPeriod:
    """The period ``[start, end)`` of shop days: ``end`` defaults to tomorrow (the period
    includes today), ``start`` to ``default_days`` before ``end``. An empty, reversed or
    over-long period, or one outside :data:`FIRST_DAY` to :data:`LAST_DAY`, is refused."""
    for given, name in ((start, "from"), (end, "to")):
        if given is not None and not FIRST_DAY <= given <= LAST_DAY:
            raise ValidationFailed(f"{name} must be from {FIRST_DAY} to {LAST_DAY}", field=name)
    today = shop_day(now or utcnow())
    end = end if end is not None else today + timedelta(days=1)
    start = start if start is not None else end - timedelta(days=default_days)
    if start >= end:
        raise ValidationFailed("from must be before to", field="from")
    if (end - start).days > max_days:
        raise ValidationFailed(f"a period spans at most {max_days} days", field="from")
    return ShopPeriod(start, end, today)


def days_period(
    first: date | None,
    last: date | None,
    *,
    now: datetime | None = None,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> ShopPeriod:
    """:func:`shop_period` of the days ``first`` to ``last``, both included: how the GraphQL
    API's ``from``/``to`` dates read ("1 to 30 November"), as in every period input."""
    if last is not None and not FIRST_DAY <= last <= LAST_DAY:
        raise ValidationFailed(f"to must be from {FIRST_DAY} to {LAST_DAY}", field="to")
    end = last + timedelta(days=1) if last is not None else None
    return shop_period(first, end, now=now, default_days=default_days, max_days=max_days)


def check_new_within_days(days: int) -> int:
    if not 1 <= days <= MAX_NEW_WITHIN_DAYS:
        raise ValidationFailed(
            f"newWithinDays must be between 1 and {MAX_NEW_WITHIN_DAYS}", field="newWithinDays"
        )
    return days


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


# --- the building blocks ------------------------------------------------------------------------


def _sold(period: ShopPeriod, by: Any, name: str, *only: Any) -> Subquery:
    """Units of purchases placed in the period, and the last time one was placed, per ``by``
    (an order line's variant or product id), of the lines matching ``only``."""
    return (
        select(
            by.label("key"),
            func.sum(col(OrderLine.quantity)).label("units"),
            func.max(col(Order.placed_at)).label("last_sold_at"),
        )
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.placed_at) >= period.utc_start,
            col(Order.placed_at) < period.utc_end,
            *only,
        )
        .group_by(by)
        .subquery(name)
    )


def _stock(by: Any, name: str, *only: Any) -> Subquery:
    """Units on hand and available now, over the active warehouses, per ``by`` (a stock
    level's variant or product id), of the stock levels matching ``only``."""
    return (
        select(
            by.label("key"),
            func.sum(col(StockLevel.on_hand)).label("on_hand"),
            func.sum(col(StockLevel.on_hand) - col(StockLevel.reserved)).label("available"),
        )
        .select_from(StockLevel)
        .join(Warehouse, col(Warehouse.id) == col(StockLevel.warehouse_id))
        .where(col(Warehouse.is_active), *only)
        .group_by(by)
        .subquery(name)
    )


def _on_sale(before: Any) -> list[Any]:
    """The conditions of a SKU on sale in a period ending at ``before`` (a UTC moment)."""
    return [
        col(ProductVariant.is_active),
        col(Product.is_active),
        col(ProductVariant.created_at) < before,
    ]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# --- sell rate (动销率) --------------------------------------------------------------------------


@dataclass(frozen=True)
class CategorySellRate:
    """The sell rate of the SKUs of the products directly in a category (``category_id`` None:
    products without a category)."""

    category_id: int | None
    name: str | None
    skus: int
    selling_skus: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.selling_skus, self.skus)


@dataclass(frozen=True)
class SellRate:
    """SKUs on sale in the period, those that sold at least one unit, and the same per
    category (the lowest rate first; at most ``limit``)."""

    skus: int
    selling_skus: int
    categories: tuple[CategorySellRate, ...]
    category_count: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.selling_skus, self.skus)


async def sell_rate(session: AsyncSession, period: ShopPeriod, limit: int) -> SellRate:
    """The share of SKUs on sale in the period that sold at least one unit of a purchase
    placed in it, overall and per category: one statement ``GROUP BY`` category."""
    sold = _sold(period, col(OrderLine.variant_id), "sold")
    skus = func.count(col(ProductVariant.id))
    selling = func.count(sold.c.key)
    stmt = (
        select(col(Product.category_id), col(Category.name), skus, selling)
        .select_from(ProductVariant)
        .join(Product, col(Product.id) == col(ProductVariant.product_id))
        .outerjoin(Category, col(Category.id) == col(Product.category_id))
        .outerjoin(sold, sold.c.key == col(ProductVariant.id))
        .where(*_on_sale(period.utc_end))
        .group_by(col(Product.category_id), col(Category.name))
    )
    rows = [
        CategorySellRate(category_id, name, int(n), int(k))
        for category_id, name, n, k in (await session.execute(stmt)).all()
    ]
    # Worst first: the lowest rate, then the most SKUs (the most to act on).
    rows.sort(key=lambda r: (r.selling_skus / r.skus, -r.skus, r.category_id or 0))
    return SellRate(
        skus=sum(r.skus for r in rows),
        selling_skus=sum(r.selling_skus for r in rows),
        categories=tuple(rows[:limit]),
        category_count=len(rows),
    )


# --- sell-through of new products ---------------------------------------------------------------


@dataclass(frozen=True)
class NewProduct:
    product_id: int
    sku: str
    name: str
    created_at: datetime
    units_sold: int
    on_hand: int

    @property
    def sell_through(self) -> float | None:
        """Units sold / (units sold + units on hand); None when both are 0."""
        return _ratio(self.units_sold, self.units_sold + self.on_hand)


@dataclass(frozen=True)
class NewProducts:
    """Active products created in ``[created_from, period end)``: their count and totals, and
    the ``limit`` that sold through the least."""

    created_from: date
    products: int
    units_sold: int
    on_hand: int
    items: tuple[NewProduct, ...]

    @property
    def sell_through(self) -> float | None:
        return _ratio(self.units_sold, self.units_sold + self.on_hand)


async def new_products(
    session: AsyncSession, period: ShopPeriod, new_within_days: int, limit: int
) -> NewProducts:
    """Sell-through of the products created within ``new_within_days`` before the period's
    end: units sold in the period / (those units + units on hand now), overall (one aggregate
    statement) and per product, the lowest first (one statement, ``limit`` rows)."""
    check_new_within_days(new_within_days)
    created_from = period.end - timedelta(days=new_within_days)
    conditions = [
        col(Product.is_active),
        col(Product.created_at) >= day_start(created_from),
        col(Product.created_at) < period.utc_end,
    ]
    # Only the new products' lines and stock are summed (the ix_product_created_id index).
    new = select(col(Product.id)).where(*conditions)
    sold = _sold(period, col(OrderLine.product_id), "sold", col(OrderLine.product_id).in_(new))
    stock = _stock(col(StockLevel.product_id), "stock", col(StockLevel.product_id).in_(new))
    units = func.coalesce(sold.c.units, 0)
    on_hand = func.coalesce(stock.c.on_hand, 0)

    def joined(stmt: Any) -> Any:
        return (
            stmt.select_from(Product)
            .outerjoin(sold, sold.c.key == col(Product.id))
            .outerjoin(stock, stock.c.key == col(Product.id))
            .where(*conditions)
        )

    total = (
        await session.execute(joined(select(func.count(), func.sum(units), func.sum(on_hand))))
    ).one()
    share = cast(units, Float) / func.nullif(units + on_hand, 0)
    listed = joined(
        select(
            col(Product.id),
            col(Product.sku),
            col(Product.name),
            col(Product.created_at),
            units,
            on_hand,
        )
    ).order_by(
        # Lowest sell-through first; products with nothing sold and nothing in stock last.
        case((share.is_(None), 1), else_=0),
        share,
        on_hand.desc(),
        col(Product.id),
    )
    rows = (await session.execute(listed.limit(limit))).all()
    return NewProducts(
        created_from=created_from,
        products=int(total[0] or 0),
        units_sold=int(total[1] or 0),
        on_hand=int(total[2] or 0),
        items=tuple(
            NewProduct(int(pid), str(sku), str(name), _aware(at), int(u), int(h))
            for pid, sku, name, at, u, h in rows
        ),
    )


# --- slow movers and stock-outs -----------------------------------------------------------------


@dataclass(frozen=True)
class VariantStock:
    """A SKU's sales in the period and its stock now. ``cost_amount``: the variant's cost
    price (minor units; None when unknown)."""

    variant_id: int
    product_id: int
    sku: str
    product_name: str
    units_sold: int
    on_hand: int
    available: int
    cost_amount: int | None
    last_sold_at: datetime | None
    period_days: int

    @property
    def daily_units(self) -> float:
        """The average units sold a day over the period's days up to today."""
        return self.units_sold / self.period_days

    @property
    def days_of_cover(self) -> float | None:
        """How many days the stock on hand lasts at the period's rate of sale (None: nothing
        sold, it lasts for ever)."""
        return self.on_hand / self.daily_units if self.units_sold else None

    @property
    def stock_value(self) -> int | None:
        """Units on hand at cost, in minor units (None when the cost is unknown)."""
        return None if self.cost_amount is None else self.on_hand * self.cost_amount


@dataclass(frozen=True)
class VariantList:
    count: int
    items: tuple[VariantStock, ...]


def _variant_rows(rows: Sequence[Any], period: ShopPeriod) -> VariantList:
    items = tuple(
        VariantStock(
            variant_id=int(row.variant_id),
            product_id=int(row.product_id),
            sku=str(row.sku),
            product_name=str(row.product_name),
            units_sold=int(row.units or 0),
            on_hand=int(row.on_hand or 0),
            available=int(row.available or 0),
            cost_amount=None if row.cost_amount is None else int(row.cost_amount),
            last_sold_at=None if row.last_sold_at is None else _aware(row.last_sold_at),
            period_days=period.elapsed_days,
        )
        for row in rows
    )
    return VariantList(count=int(rows[0].total) if rows else 0, items=items)


def _variant_columns(sold: Subquery, stock: Subquery) -> list[Any]:
    return [
        col(ProductVariant.id).label("variant_id"),
        col(ProductVariant.product_id).label("product_id"),
        col(ProductVariant.sku).label("sku"),
        col(Product.name).label("product_name"),
        func.coalesce(sold.c.units, 0).label("units"),
        func.coalesce(stock.c.on_hand, 0).label("on_hand"),
        func.coalesce(stock.c.available, 0).label("available"),
        col(ProductVariant.cost_amount).label("cost_amount"),
        sold.c.last_sold_at.label("last_sold_at"),
        func.count().over().label("total"),
    ]


async def slow_movers(session: AsyncSession, period: ShopPeriod, limit: int) -> VariantList:
    """SKUs on sale in the period with stock on hand now, the longest days of cover first: those that sold
    nothing in the period first (the most on hand first), then on hand / daily units sold,
    highest first. One statement; ``count`` is every such SKU."""
    sold = _sold(period, col(OrderLine.variant_id), "sold")
    stock = _stock(col(StockLevel.variant_id), "stock")
    cover = cast(stock.c.on_hand, Float) / sold.c.units
    stmt = (
        select(*_variant_columns(sold, stock))
        .select_from(ProductVariant)
        .join(Product, col(Product.id) == col(ProductVariant.product_id))
        .join(stock, stock.c.key == col(ProductVariant.id))
        .outerjoin(sold, sold.c.key == col(ProductVariant.id))
        .where(*_on_sale(period.utc_end), stock.c.on_hand > 0)
        .order_by(
            case((sold.c.units.is_(None), 0), else_=1),
            cover.desc(),
            stock.c.on_hand.desc(),
            col(ProductVariant.id),
        )
        .limit(limit)
    )
    return _variant_rows((await session.execute(stmt)).all(), period)


async def stock_outs(session: AsyncSession, period: ShopPeriod, limit: int) -> VariantList:
    """SKUs on sale in the period that sold in it and have nothing available now (on hand
    less reserved, over the active warehouses), the most units sold first. One statement."""
    sold = _sold(period, col(OrderLine.variant_id), "sold")
    stock = _stock(col(StockLevel.variant_id), "stock")
    stmt = (
        select(*_variant_columns(sold, stock))
        .select_from(ProductVariant)
        .join(Product, col(Product.id) == col(ProductVariant.product_id))
        .join(sold, sold.c.key == col(ProductVariant.id))
        .outerjoin(stock, stock.c.key == col(ProductVariant.id))
        .where(*_on_sale(period.utc_end), func.coalesce(stock.c.available, 0) <= 0)
        .order_by(sold.c.units.desc(), col(ProductVariant.id))
        .limit(limit)
    )
    return _variant_rows((await session.execute(stmt)).all(), period)


# --- everything at once -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductHealth:
    period: ShopPeriod
    sell_rate: SellRate
    new_products: NewProducts
    slow_movers: VariantList
    stock_outs: VariantList


async def product_health(
    session: AsyncSession,
    period: ShopPeriod,
    *,
    new_within_days: int = DEFAULT_NEW_WITHIN_DAYS,
    limit: int = DEFAULT_LIMIT,
) -> ProductHealth:
    """Every figure of product health over a period: five statements (none when the input
    is refused)."""
    limit = check_limit(limit)
    check_new_within_days(new_within_days)
    return ProductHealth(
        period=period,
        sell_rate=await sell_rate(session, period, limit),
        new_products=await new_products(session, period, new_within_days, limit),
        slow_movers=await slow_movers(session, period, limit),
        stock_outs=await stock_outs(session, period, limit),
    )


# --- the KPIs -----------------------------------------------------------------------------------


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _chunks(buckets: Sequence[KpiBucket]) -> list[tuple[int, Sequence[KpiBucket]]]:
    """The buckets in runs of at most :data:`_DAYS_PER_STATEMENT` days (a longer bucket
    alone), each with the index of its first bucket."""
    chunks: list[tuple[int, Sequence[KpiBucket]]] = []
    first, days = 0, 0
    for i, bucket in enumerate(buckets):
        length = max(0, (bucket.end - bucket.start).days)
        if i > first and days + length > _DAYS_PER_STATEMENT:
            chunks.append((first, buckets[first:i]))
            first, days = i, 0
        days += length
    if first < len(buckets):
        chunks.append((first, buckets[first:]))
    return chunks


def _bucket_days(buckets: Sequence[KpiBucket]) -> CTE:
    """Every day of every bucket as a ``VALUES`` list: (shop day, bucket index, the bucket's
    end as a UTC moment). Orders find their bucket by an equality on the day, in one pass."""
    rows = [
        (bucket.start + timedelta(days=k), i, day_start(bucket.end))
        for i, bucket in enumerate(buckets)
        for k in range((bucket.end - bucket.start).days)
    ]
    table = values(
        column("d", Date()), column("i", Integer), column("e", UTCDateTime()), name="b"
    ).data(rows)
    return table.cte("b")


async def _sold_per_bucket(
    session: AsyncSession, buckets: Sequence[KpiBucket], *, out_of_stock: bool
) -> list[int]:
    """Per bucket: the SKUs on sale in it that sold in it (``out_of_stock``: those with
    nothing available now), in one statement per :func:`_chunks` run."""
    counts = [0] * len(buckets)
    dialect = _dialect(session)
    for first, chunk in _chunks(buckets):
        if not any(b.end > b.start for b in chunk):
            continue
        b = _bucket_days(chunk)
        day = shop_day_sql(col(Order.placed_at), dialect)
        stmt = (
            select(b.c.i, func.count(distinct(col(OrderLine.variant_id))))
            .select_from(Order)
            .join(OrderLine, col(OrderLine.order_id) == col(Order.id))
            .join(b, b.c.d == day)
            .join(ProductVariant, col(ProductVariant.id) == col(OrderLine.variant_id))
            .join(Product, col(Product.id) == col(ProductVariant.product_id))
            .where(
                col(Order.status).in_(PURCHASE_STATUSES),
                # The chunk's span: orders outside it are not looked at twice.
                col(Order.placed_at) >= day_start(min(x.start for x in chunk)),
                col(Order.placed_at) < day_start(max(x.end for x in chunk)),
                *_on_sale(b.c.e),
            )
            .group_by(b.c.i)
        )
        if out_of_stock:
            stock = _stock(col(StockLevel.variant_id), "stock")
            stmt = stmt.outerjoin(stock, stock.c.key == col(ProductVariant.id)).where(
                func.coalesce(stock.c.available, 0) <= 0
            )
        for i, n in (await session.execute(stmt)).all():
            counts[first + int(i)] = int(n or 0)
    return counts


async def _on_sale_per_bucket(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[int]:
    """Per bucket: the SKUs on sale in it (active now, created before its end), from one
    statement counting them per shop day of creation."""
    created = shop_day_sql(col(ProductVariant.created_at), _dialect(session)).label("day")
    stmt = (
        select(created, func.count())
        .select_from(ProductVariant)
        .join(Product, col(Product.id) == col(ProductVariant.product_id))
        .where(col(ProductVariant.is_active), col(Product.is_active))
        .group_by(created)
    )
    per_day = sorted(
        (value if isinstance(value, date) else date.fromisoformat(str(value)), int(n))
        for value, n in (await session.execute(stmt)).all()
    )
    days = [d.toordinal() for d, _ in per_day]
    running = list(itertools.accumulate(n for _, n in per_day))
    counts = []
    for bucket in buckets:
        # Created on a day before the bucket's end: created before its first moment.
        k = bisect.bisect_left(days, bucket.end.toordinal())
        counts.append(running[k - 1] if k else 0)
    return counts


async def compute_sku_sell_rate(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """``sku_sell_rate`` per bucket: SKUs on sale that sold / SKUs on sale (None when none
    was on sale)."""
    skus = await _on_sale_per_bucket(session, buckets)
    selling = await _sold_per_bucket(session, buckets, out_of_stock=False)
    return [_ratio(k, n) for k, n in zip(selling, skus, strict=True)]


async def compute_stock_out_skus(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[float | None]:
    """``stock_out_skus`` per bucket: SKUs on sale that sold in it and have nothing available
    now."""
    return [float(n) for n in await _sold_per_bucket(session, buckets, out_of_stock=True)]


def product_health_kpis() -> list[Kpi]:
    """The core's product health KPIs, for the ``kpis`` hook."""
    return [
        Kpi(
            "sku_sell_rate",
            "SKU sell rate (动销率)",
            KpiUnit.RATIO,
            compute_sku_sell_rate,
            description="The share of the SKUs on sale that sold at least one unit in the period.",
        ),
        Kpi(
            "stock_out_skus",
            "Stock-outs",
            KpiUnit.COUNT,
            compute_stock_out_skus,
            description="SKUs on sale that sold in the period and have nothing available now.",
            higher_is_better=False,
        ),
    ]


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
