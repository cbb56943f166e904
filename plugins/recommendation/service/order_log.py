"""An external order log (a CSV file) as a shop: read it, and write it into a scratch database
(one migrated like the shop's), so that ``load_training_data`` reads it as it reads a shop and
the evaluation runs on it exactly as on the shop's own orders.

The file has a header row and one row per product bought: the customer, the order, the order's
place in time (the *sequence*) and the product. A sequence is either a number (days from an
arbitrary origin: an order number or a day index) or an ISO date or date-time
(``2024-03-01``, ``2024-03-01 18:30:00``); an order's time is its rows' earliest. Products are
matched to the shop's catalogue by SKU (the product's or a variant's): a match is copied with
its category, brand, tags and text; any other product becomes a placeholder (no name or text,
in the category an optional column names, if any). Customers and orders are created
from their columns.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Category,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProductVariant,
)
from server.plugin import ValidationFailed

# Numbers count days from this origin.
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
SKU_LENGTH = 64
BATCH = 5000


class InvalidOrderLog(ValidationFailed):
    code = "INVALID_ORDER_LOG"


@dataclass
class OrderLog:
    """The file's rows, de-duplicated: per order, its customer, its time and its products
    (with how many rows named each)."""

    customers: list[str] = field(default_factory=list)  # in order of first appearance
    orders: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # -> (customer, at)
    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # order -> product -> rows
    products: dict[str, datetime] = field(default_factory=dict)  # product -> first bought
    categories: dict[str, str] = field(default_factory=dict)  # product -> its category
    rows: int = 0

    @property
    def end(self) -> datetime:
        """The latest order's time."""
        return max(at for _, at in self.orders.values())


def _moment(text: str, numeric: bool) -> datetime:
    if numeric:
        return ORIGIN + timedelta(days=float(text))
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_order_log(
    path: Path,
    *,
    customer: str,
    order: str,
    sequence: str,
    product: str,
    category: str | None = None,
) -> OrderLog:
    """Read ``path`` (``category``: an optional column naming each product's category, given
    to the products the shop does not have). Raises :class:`InvalidOrderLog` naming the file
    and the line at fault: a missing column, a short row, an empty value, a sequence that is
    neither a number nor an ISO date, an order of two customers, a file without rows."""
    log = OrderLog()
    seen_customers: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InvalidOrderLog(f"{path.name} is empty")
        names = [h.strip() for h in header]
        wanted = [customer, order, sequence, product] + ([category] if category else [])
        missing = [w for w in wanted if w not in names]
        if missing:
            raise InvalidOrderLog(
                f"{path.name} has no column {', '.join(map(repr, missing))} "
                f"(its columns: {', '.join(names)})"
            )
        at = [names.index(w) for w in wanted]
        width = max(at) + 1
        numeric: bool | None = None
        for row in reader:
            if not row:
                continue
            if len(row) < width:
                raise InvalidOrderLog(f"{path.name}, line {reader.line_num}: too few columns")
            c, o, s, p = (row[i].strip() for i in at[:4])
            if not (c and o and s and p):
                raise InvalidOrderLog(f"{path.name}, line {reader.line_num}: an empty value")
            if numeric is None:
                numeric = _is_number(s)
            try:
                moment = _moment(s, numeric)
            except (ValueError, OverflowError) as exc:
                kind = "a number" if numeric else "an ISO date (YYYY-MM-DD[ HH:MM[:SS]])"
                raise InvalidOrderLog(
                    f"{path.name}, line {reader.line_num}: sequence {s!r} is not {kind}, as "
                    "the first row's is"
                ) from exc
            log.rows += 1
            if c not in seen_customers:
                seen_customers.add(c)
                log.customers.append(c)
            known = log.orders.get(o)
            if known is None:
                log.orders[o] = (c, moment)
                log.lines[o] = defaultdict(int)
            else:
                if known[0] != c:
                    raise InvalidOrderLog(
                        f"{path.name}, line {reader.line_num}: order {o!r} belongs to "
                        f"customer {known[0]!r}, not {c!r}"
                    )
                if moment < known[1]:
                    log.orders[o] = (c, moment)
            log.lines[o][p] += 1
            if category and p not in log.categories and row[at[4]].strip():
                log.categories[p] = row[at[4]].strip()
            first = log.products.get(p)
            if first is None or moment < first:
                log.products[p] = moment
    if not log.rows:
        raise InvalidOrderLog(f"{path.name} has no rows")
    return log


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Imported:
    customers: int
    orders: int
    lines: int
    products: int  # distinct products
    matched: int  # of them, found in the shop's catalogue


@dataclass(frozen=True)
class ShopProduct:
    """A product of the shop's catalogue, as copied into the scratch database."""

    row: dict[str, Any]
    skus: tuple[str, ...]  # its own SKU and its variants'


@dataclass
class Catalogue:
    categories: list[dict[str, Any]]
    products: list[ShopProduct]


_PRODUCT_COLUMNS = (
    "id",
    "sku",
    "name",
    "description",
    "brand",
    "category_id",
    "tags",
    "attributes",
    "price_amount",
    "currency",
    "is_active",
    "created_at",
)


async def shop_catalogue(session: AsyncSession, skus: Sequence[str]) -> Catalogue:
    """The shop's categories, and those of its products whose SKU (or a variant's) is one of
    ``skus``."""
    result = await session.execute(select(Category).order_by(col(Category.id)))
    by_id = {c.id: c for c in result.scalars()}
    categories: list[dict[str, Any]] = []
    placed: set[int | None] = {None}

    def place(c: Category) -> None:  # parents first, for the foreign key
        if c.id in placed:
            return
        if c.parent_id in by_id:
            place(by_id[c.parent_id])
        placed.add(c.id)
        categories.append({"id": c.id, "parent_id": c.parent_id, "name": c.name, "slug": c.slug})

    for c in by_id.values():
        place(c)
    found: dict[int, set[str]] = defaultdict(set)
    for start in range(0, len(skus), 500):
        chunk = list(skus[start : start + 500])
        wanted = set(chunk)
        pairs = await session.execute(
            select(col(Product.id), col(Product.sku), col(ProductVariant.sku))
            .outerjoin(ProductVariant, col(ProductVariant.product_id) == col(Product.id))
            .where(or_(col(Product.sku).in_(chunk), col(ProductVariant.sku).in_(chunk)))
        )
        for pid, psku, vsku in pairs:
            found[pid or 0].update(s for s in (psku, vsku) if s in wanted)
    products: list[ShopProduct] = []
    ids = sorted(found)
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(Product).where(col(Product.id).in_(ids[start : start + 500]))
        )
        for p in rows.scalars():
            row = {name: getattr(p, name) for name in _PRODUCT_COLUMNS}
            products.append(ShopProduct(row, tuple(sorted(found[int(row["id"])]))))
    return Catalogue(categories, products)


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` of ``model``'s table, :data:`BATCH` at a time, each column not given
    taking the model's default (a bulk insert does not apply them)."""
    if not rows:
        return
    sample = model(**rows[0])
    names = [column.name for column in model.__table__.columns]
    defaults = {
        name: getattr(sample, name)
        for name in names
        if name not in rows[0] and getattr(sample, name, None) is not None
    }
    for start in range(0, len(rows), BATCH):
        # The table's insert (not the model's): executemany without the ORM's bookkeeping.
        await session.execute(
            insert(model.__table__), [defaults | row for row in rows[start : start + BATCH]]
        )


async def write_order_log(
    session: AsyncSession,
    log: OrderLog,
    catalogue: Catalogue,
    progress: Callable[[str], None] | None = None,
) -> Imported:
    """Write ``log`` into ``session``'s (empty, scratch) database: the catalogue's categories
    and matched products, a placeholder for every other product, a customer per customer, a
    completed order per order. Not committed."""
    categories = list(catalogue.categories)
    category_of: dict[str, int] = {}
    next_category = max((c["id"] for c in categories), default=0) + 1
    for name in sorted(set(log.categories.values())):
        category_of[name] = next_category
        categories.append(
            {"id": next_category, "parent_id": None, "name": name, "slug": f"log-{next_category}"}
        )
        next_category += 1
    if categories:
        await _insert(session, Category, categories)
    product_of: dict[str, int] = {}
    next_id = 1
    shop_rows = []
    for shop in catalogue.products:
        row = dict(shop.row)
        row |= {"search_title": row["name"], "search_body": row["description"]}
        shop_rows.append(row)
        for sku in shop.skus:
            product_of[sku] = row["id"]
        next_id = max(next_id, row["id"] + 1)
    matched = len({product_of[p] for p in log.products if p in product_of})
    placeholders = []
    for name, first in log.products.items():
        if name in product_of:
            continue
        product_of[name] = next_id
        placeholders.append(
            {
                "id": next_id,
                "sku": f"log-{next_id}" if len(name) > SKU_LENGTH else name,
                # An id says nothing of the product: no text for content similarity.
                "name": "",
                "description": "",
                "brand": None,
                "category_id": category_of.get(log.categories.get(name, "")),
                "tags": [],
                "attributes": {},
                "price_amount": 0,
                "currency": "CNY",
                "is_active": True,
                "created_at": first,
                "search_title": "",
                "search_body": "",
            }
        )
        next_id += 1
    products = shop_rows + placeholders
    await _insert(session, Product, products)
    variants = [
        {
            "id": row["id"],
            "product_id": row["id"],
            "sku": row["sku"],
            "options": {},
            "price_amount": row["price_amount"],
            "created_at": row["created_at"],
        }
        for row in products
    ]
    await _insert(session, ProductVariant, variants)
    if progress is not None:
        progress(f"{len(products)} products ({matched} from the shop's catalogue)")

    customer_of: dict[str, int] = {}
    people = []
    since = min(at for _, at in log.orders.values())
    for i, name in enumerate(log.customers, start=1):
        customer_of[name] = i
        people.append(
            {
                "id": i,
                "email": f"customer-{i}@order-log.invalid",
                "first_name": name[:100],
                "tags": [],
                "interests": [],
                "created_at": since,
            }
        )
    await _insert(session, Customer, people)

    orders = []
    lines = []
    by_time = sorted(log.orders.items(), key=lambda item: (item[1][1], item[0]))
    for i, (name, (customer, at)) in enumerate(by_time, start=1):
        orders.append(
            {
                "id": i,
                "number": f"LOG{i:012d}",
                "customer_id": customer_of[customer],
                "email": f"customer-{customer_of[customer]}@order-log.invalid",
                "status": OrderStatus.COMPLETED,
                "adjustments": [],
                "shipping_address": {},
                "shipment_plan": [],
                "placed_at": at,
                "updated_at": at,
                "paid_at": at,
            }
        )
        for product, quantity in log.lines[name].items():
            pid = product_of[product]
            lines.append(
                {
                    "order_id": i,
                    "product_id": pid,
                    "variant_id": pid,
                    "sku": product[:SKU_LENGTH],
                    "product_name": product,
                    "options": {},
                    "adjustments": [],
                    "quantity": quantity,
                    "base_unit_price_amount": 0,
                    "unit_price_amount": 0,
                    "line_total_amount": 0,
                }
            )
    await _insert(session, Order, orders)
    await _insert(session, OrderLine, lines)
    return Imported(
        customers=len(people),
        orders=len(orders),
        lines=len(lines),
        products=len(log.products),
        matched=matched,
    )
