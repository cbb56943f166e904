"""Factories for catalogue data: categories, products (with their search text), warehouses, stock.

Each factory adds its rows through the given session and commits, so that a live server sees them
at once; pass ``commit=False`` to batch several rows into one transaction (then commit yourself).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.graphql.money import to_minor
from server.models import Category, Product, StockLevel, Warehouse, WarehouseKind
from server.services import catalog, variants

_seq = itertools.count(1)

StockSpec = Mapping[str, int] | Iterable[tuple[Warehouse | str, int]]


async def _finish(session: AsyncSession, commit: bool) -> None:
    if commit:
        await session.commit()
    else:
        await session.flush()


async def make_category(
    session: AsyncSession,
    name: str = "数码",
    *,
    slug: str | None = None,
    parent: Category | None = None,
    description: str = "",
    position: int = 0,
    commit: bool = True,
) -> Category:
    category = Category(
        name=name,
        slug=slug or f"category-{next(_seq)}",
        parent_id=parent.id if parent is not None else None,
        description=description,
        position=position,
    )
    session.add(category)
    await _finish(session, commit)
    return category


async def make_warehouse(
    session: AsyncSession,
    code: str | None = None,
    *,
    name: str = "上海华东仓",
    kind: WarehouseKind = WarehouseKind.REGIONAL,
    region: str = "华东",
    province: str = "上海",
    city: str = "上海",
    is_active: bool = True,
    commit: bool = True,
) -> Warehouse:
    warehouse = Warehouse(
        code=code or f"WH-{next(_seq)}",
        name=name,
        kind=kind,
        region=region,
        province=province,
        city=city,
        is_active=is_active,
    )
    session.add(warehouse)
    await _finish(session, commit)
    return warehouse


async def _warehouse(session: AsyncSession, ref: Warehouse | str) -> Warehouse:
    """A Warehouse given itself or its code; an unknown code creates the warehouse."""
    if isinstance(ref, Warehouse):
        return ref
    found = (await session.execute(select(Warehouse).where(Warehouse.code == ref))).scalar()
    return found or await make_warehouse(session, ref, name=f"{ref} 仓", commit=False)


async def make_product(
    session: AsyncSession,
    name: str = "蓝牙耳机",
    *,
    sku: str | None = None,
    price: str | Decimal = "199.00",
    cost: str | Decimal | None = None,
    currency: str = "CNY",
    brand: str | None = None,
    category: Category | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    attributes: dict[str, Any] | None = None,
    stock: StockSpec | None = None,
    reserved: Mapping[str, int] | None = None,
    is_active: bool = True,
    created_at: datetime | None = None,
    commit: bool = True,
) -> Product:
    """A product indexed for search like the catalogue service does it.

    ``stock`` maps warehouses (or warehouse codes; unknown codes are created) to units on hand;
    ``reserved`` maps warehouse codes to units of that stock already reserved.
    """
    product = Product(
        sku=sku or f"SKU-{next(_seq):05d}",
        name=name,
        price_amount=to_minor(Decimal(price), currency),
        cost_amount=to_minor(Decimal(cost), currency) if cost is not None else None,
        currency=currency,
        brand=brand,
        category_id=category.id if category is not None else None,
        description=description,
        tags=list(tags),
        attributes=attributes or {},
        is_active=is_active,
    )
    if created_at is not None:
        product.created_at = created_at
    await catalog.refresh_search_text(session, [product])
    session.add(product)
    await session.flush()
    variant = variants.default_variant(product)
    session.add(variant)
    await session.flush()
    items = stock.items() if isinstance(stock, Mapping) else (stock or ())
    for ref, on_hand in items:
        warehouse = await _warehouse(session, ref)
        session.add(
            StockLevel(
                warehouse_id=warehouse.id,
                product_id=product.id,
                variant_id=variant.id,
                on_hand=on_hand,
                reserved=(reserved or {}).get(warehouse.code, 0),
            )
        )
    await _finish(session, commit)
    return product
