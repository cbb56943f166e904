"""The demo writer: a planned shop written through a session, a few statements per table.

Rows go in as multi-row INSERTs in the session's transaction (the caller commits); each table
written is one progress step. Orders are written as history: lines at catalogue price (no
plugin adjustments), payments, status changes, shipments and tracking timelines, and the
satisfaction surveys that followed. No outbox events are emitted for them, since nothing
about the past is news; plugins that learn from history read the tables (and fill their own
through the ``demo_data`` hook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from server.db import mark_write
from server.demo.places import WAREHOUSES
from server.demo.plan import CUSTOMER_ACTOR, Row, ShopPlan, category_slug
from server.demo.plan_channels import NO_SOURCE
from server.hooktypes import DemoShop
from server.models import (
    Address,
    Cart,
    CartLine,
    CartStatus,
    Category,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    MarketingCost,
    Order,
    OrderLine,
    OrderStatusChange,
    Payment,
    Product,
    ProductOption,
    ProductVariant,
    Shipment,
    ShipmentLine,
    StaffRole,
    StaffUser,
    StockLevel,
    Survey,
    SurveyTrigger,
    TrackingEvent,
    Warehouse,
)
from server.progress import Progress
from server.services import behaviour, search, surveys
from server.services.forecasts import shop_day

DEMO_STAFF_EMAIL = "admin@shopgraph.example"
# One step per table written, and one for the staff user (made or kept).
WRITE_STEPS = 22


@dataclass(frozen=True)
class WrittenShop:
    """What :func:`write_plan` wrote: row counts, the staff login it made (None when the
    database had staff already), and the ids of the rows for plugins to refer to."""

    counts: dict[str, int]
    staff_email: str | None
    shop: DemoShop


async def has_products(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Product)))


async def _insert(session: AsyncSession, model: Any, rows: list[Row], *key: str) -> None:
    """Insert ``rows`` into ``model``'s table in multi-row statements.

    A Core INSERT on the model's table, not an ORM bulk insert: the ORM leaves out columns
    whose value is None, so rows that differ in which columns are None (every behaviour event)
    would be split into tiny batches. With ``key`` (columns that tell the rows apart), the new
    ids are read back by key and written into ``rows``: asking for RETURNING rows in parameter
    order would make SQLite insert one row per statement, and a plain RETURNING promises no
    order.
    """
    if not rows:
        return
    table = model.__table__
    # Columns added to a model later get the model's default rather than failing NOT NULL.
    for name, info in model.model_fields.items():
        if name != "id" and name in table.c and name not in rows[0]:
            default = info.get_default(call_default_factory=True)
            for row in rows:
                row.setdefault(name, default)
    if not key:
        await session.execute(insert(table), rows)
        return
    stmt = insert(table).returning(table.c.id, *(table.c[k] for k in key))
    ids = {tuple(found[1:]): found[0] for found in (await session.execute(stmt, rows)).all()}
    for row in rows:
        row["id"] = ids[tuple(row[k] for k in key)]


class _Writer:
    """Writes one plan, table by table, reporting each table written."""

    def __init__(self, session: AsyncSession, plan: ShopPlan, progress: Progress | None) -> None:
        self.session = session
        self.plan = plan
        self.progress = progress
        self.counts: dict[str, int] = {}
        self.warehouses: dict[str, Row] = {}
        self.cart_ids: tuple[int, ...] = ()
        # Each variant's id, by (product index, variant index).
        self.variant_ids: dict[tuple[int, int], int] = {}

    async def write(self, model: Any, rows: list[Row], *key: str) -> None:
        await _insert(self.session, model, rows, *key)
        self.step(f"wrote {model.__tablename__}")

    def step(self, what: str) -> None:
        if self.progress is not None:
            self.progress.advance(what)

    async def catalogue(self) -> None:
        plan = self.plan
        tops = [top for top, _ in plan.categories]
        await self.write(Category, tops, "slug")
        leaves: dict[str, Row] = {}
        for top, kids in plan.categories:
            for kid in kids:
                kid["parent_id"] = top["id"]
                leaves[kid["slug"]] = kid
        await self.write(Category, list(leaves.values()), "slug")
        for p in plan.products:
            p.row["category_id"] = leaves[category_slug(p)]["id"]
        await self.write(Product, [p.row for p in plan.products], "sku")
        options = [
            {"product_id": p.row["id"], "name": name, "position": position, "values": values}
            for p in plan.products
            for position, (name, values) in enumerate(p.options)
        ]
        await self.write(ProductOption, options)
        variants = [v.row | {"product_id": p.row["id"]} for p in plan.products for v in p.variants]
        await self.write(ProductVariant, variants, "sku")
        self.variant_ids = {
            (p.index, v.index): row["id"]
            for (p, v), row in zip(
                ((p, v) for p in plan.products for v in p.variants), variants, strict=True
            )
        }
        await search.remember_words(
            self.session,
            (
                word
                for p in plan.products
                for word in search.index_words(p.row["search_title"], p.row["search_pinyin"])
            ),
        )

        self.warehouses = warehouses = {
            code: {"code": code, "name": name, "kind": kind, "region": region}
            | {"province": province, "city": city, "is_active": True}
            for code, name, kind, region, province, city in WAREHOUSES
        }
        await self.write(Warehouse, list(warehouses.values()), "code")
        reserved = plan.reserved()
        stock = [
            {
                "warehouse_id": warehouses[code]["id"],
                "product_id": plan.products[index].row["id"],
                "variant_id": self.variant_ids[(index, variant)],
                "on_hand": on_hand,
                "reserved": reserved.get((code, index, variant), 0),
                "safety_stock": safety,
            }
            for (code, index, variant), (on_hand, safety) in plan.stock.items()
        ]
        await self.write(StockLevel, stock)
        self.counts |= {
            "categories": len(tops) + len(leaves),
            "products": len(plan.products),
            "option axes": len(options),
            "variants": len(variants),
            "warehouses": len(warehouses),
            "stock levels": len(stock),
        }

    async def customers(self) -> None:
        plan = self.plan
        await self.write(Customer, [c.row for c in plan.customers], "email")
        for c in plan.customers:
            for address in c.addresses:
                address["customer_id"] = c.row["id"]
        addresses = [a for c in plan.customers for a in c.addresses]
        await self.write(Address, addresses)
        self.counts |= {"customers": len(plan.customers), "addresses": len(addresses)}

    async def orders(self) -> None:
        plan, warehouses = self.plan, self.warehouses
        for o in plan.orders:
            o.row["customer_id"] = o.customer.row["id"]
            # No plugin adjusted a demo order's shipping: its list price is what it cost.
            o.row["shipping_list_amount"] = o.row["shipping_amount"]
        await self.write(Order, [o.row for o in plan.orders], "number")
        lines = []
        for o in plan.orders:
            for line, variant in o.lines:
                line |= {
                    "order_id": o.row["id"],
                    "product_id": variant.product.row["id"],
                    "variant_id": self.variant_ids[(variant.product.index, variant.index)],
                }
                line["warehouse_id"] = warehouses[o.warehouse]["id"]
                lines.append(line)
        # An order holds each variant once: (order, variant) tells its lines apart.
        await self.write(OrderLine, lines, "order_id", "variant_id")
        changes = [
            ch
            | {"order_id": o.row["id"]}
            | (
                {"actor": f"customer:{o.row['customer_id']}"}
                if ch["actor"] == CUSTOMER_ACTOR
                else {}
            )
            for o in plan.orders
            for ch in o.changes
        ]
        await self.write(OrderStatusChange, changes)
        payments = [o.payment | {"order_id": o.row["id"]} for o in plan.orders if o.payment]
        await self.write(Payment, payments)
        self.counts |= {
            "orders": len(plan.orders),
            "order lines": len(lines),
            "order status changes": len(changes),
            "payments": len(payments),
        }

    async def shipments(self) -> None:
        shipped = [o for o in self.plan.orders if o.shipment is not None]
        shipments: list[Row] = []
        for o in shipped:
            assert o.shipment is not None
            o.shipment["order_id"] = o.row["id"]
            o.shipment["warehouse_id"] = self.warehouses[o.warehouse]["id"]
            shipments.append(o.shipment)
        await self.write(Shipment, shipments, "order_id")
        shipment_lines = [
            {"shipment_id": s["id"], "order_line_id": line["id"], "quantity": line["quantity"]}
            for o, s in zip(shipped, shipments, strict=True)
            for line, _ in o.lines
        ]
        await self.write(ShipmentLine, shipment_lines)
        tracking = [
            t | {"shipment_id": s["id"]}
            for o, s in zip(shipped, shipments, strict=True)
            for t in o.tracking
        ]
        await self.write(TrackingEvent, tracking)
        self.counts |= {"shipments": len(shipments), "tracking events": len(tracking)}

    async def behaviour(self) -> None:
        plan = self.plan
        events = [
            {
                "customer_id": e.customer.row["id"],
                "session_id": e.session_id,
                "kind": e.kind,
                "product_id": e.product.row["id"] if e.product else None,
                "order_id": e.order.row["id"] if e.order else None,
                "query": e.query,
                "quantity": e.quantity,
                "data": {} if e.result_count is None else {"result_count": e.result_count},
                "search_key": behaviour.search_key(e.query)
                if e.kind is CustomerEventKind.SEARCH and e.query
                else None,
                "occurred_at": e.at,
            }
            | (e.source or NO_SOURCE)
            for e in sorted(plan.events, key=lambda e: (e.at, e.session_id))
        ]
        await self.write(CustomerEvent, events)
        await _tie_clicks_to_searches(self.session)
        carts = [
            {
                "token": cart.token,
                "customer_id": cart.customer.row["id"],
                "email": cart.customer.row["email"],
                "currency": "CNY",
                "status": CartStatus.ACTIVE,
                "shipping_address": None,
                "created_at": cart.at,
                "updated_at": cart.at,
            }
            for cart in plan.carts
        ]
        await self.write(Cart, carts, "token")
        self.cart_ids = tuple(row["id"] for row in carts)
        cart_lines = [
            {
                "cart_id": row["id"],
                "product_id": v.product.row["id"],
                "variant_id": self.variant_ids[(v.product.index, v.index)],
                "quantity": 1,
            }
            for row, cart in zip(carts, plan.carts, strict=True)
            for v in cart.variants
        ]
        await self.write(CartLine, cart_lines)
        await self.write(MarketingCost, self.plan.marketing_costs)
        self.counts |= {
            "behaviour events": len(events),
            "carts": len(carts),
            "marketing costs": len(self.plan.marketing_costs),
        }

    async def surveys(self) -> None:
        """The surveys, keyed as the triggers key them (the order, or the customer and day,
        or the service contact)."""
        rows = []
        for planned in self.plan.surveys:
            row = planned.row | {"customer_id": planned.customer.row["id"]}
            order = planned.order
            if order is not None:
                row["order_id"] = order.row["id"]
                row["subject_key"] = surveys.order_subject(order.row["id"])
                if row["trigger"] is SurveyTrigger.DELIVERY and order.shipment is not None:
                    row["shipment_id"] = order.shipment["id"]
            elif planned.subject is not None:
                row["order_id"] = None
                row["subject_key"] = planned.subject
            else:
                row["order_id"] = None
                row["subject_key"] = surveys.periodic_subject(
                    row["customer_id"], shop_day(row["sent_at"])
                )
            row.setdefault("shipment_id", None)
            rows.append(row)
        await self.write(Survey, rows)
        self.counts["surveys"] = len(rows)

    async def staff(self) -> str | None:
        """The demo staff login, unless the database has staff already."""
        staff_email: str | None = None
        if not await self.session.scalar(select(func.count()).select_from(StaffUser)):
            staff_email = DEMO_STAFF_EMAIL
            staff: Row = {
                "email": DEMO_STAFF_EMAIL,
                "password_hash": self.plan.password_hash,
                "name": "店长（演示）",
            }
            staff |= {
                "role": StaffRole.ADMIN,
                "is_active": True,
                "created_at": self.plan.history_start,
            }
            await _insert(self.session, StaffUser, [staff])
        self.step("staff user")
        return staff_email

    def shop(self) -> DemoShop:
        plan = self.plan
        demo = plan.demo_customer()
        return DemoShop(
            seed=plan.seed,
            as_of=plan.as_of,
            category_ids=tuple(top["id"] for top, _ in plan.categories)
            + tuple(kid["id"] for _, kids in plan.categories for kid in kids),
            product_ids=tuple(p.row["id"] for p in plan.products),
            warehouse_ids=tuple(row["id"] for row in self.warehouses.values()),
            customer_ids=tuple(c.row["id"] for c in plan.customers),
            order_ids=tuple(o.row["id"] for o in plan.orders),
            cart_ids=self.cart_ids,
            demo_customer_id=demo.row["id"] if demo is not None else None,
        )


async def _tie_clicks_to_searches(session: AsyncSession) -> None:
    """Each planned view and add to cart that follows a search in its visit (a demo session
    lasts well under the click window) is a click on that search, as recordEvent would tie it."""
    search = aliased(CustomerEvent)
    latest = (
        select(col(search.id))
        .where(
            col(search.session_id) == CustomerEvent.session_id,
            col(search.kind) == CustomerEventKind.SEARCH,
            col(search.occurred_at) <= CustomerEvent.occurred_at,
        )
        .order_by(col(search.occurred_at).desc(), col(search.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    await session.execute(
        update(CustomerEvent)
        .where(col(CustomerEvent.kind).in_(behaviour.CLICK_KINDS))
        .values(search_id=latest)
    )


async def write_plan(
    session: AsyncSession, plan: ShopPlan, *, progress: Progress | None = None
) -> WrittenShop:
    """Write ``plan`` in the session's transaction (not committed). ``progress`` hears of each
    of the :data:`WRITE_STEPS` steps: each table written and the staff user."""
    await mark_write(session)
    writer = _Writer(session, plan, progress)
    await writer.catalogue()
    await writer.customers()
    await writer.orders()
    await writer.shipments()
    await writer.behaviour()
    await writer.surveys()
    staff_email = await writer.staff()
    return WrittenShop(counts=writer.counts, staff_email=staff_email, shop=writer.shop())
