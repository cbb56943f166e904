"""Product variants (SKUs): the sellable unit that stock, carts and orders refer to.

A product without option axes has one *default* variant (no options) that mirrors the
product's SKU, price and cost. A product's price is the lowest price of its active variants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Product,
    ProductOption,
    ProductVariant,
    StockLevel,
    Warehouse,
    utcnow,
)
from server.services.errors import InvalidBarcode


def option_key(options: Mapping[str, str]) -> str:
    """The canonical form of a combination of option values: one variant per combination."""
    return "\x1f".join(f"{name}\x1e{options[name]}" for name in sorted(options))


def default_variant(product: Product) -> ProductVariant:
    """The one variant of a product without options, mirroring the product."""
    assert product.id is not None  # a stored product
    return ProductVariant(
        product_id=product.id,
        sku=product.sku,
        options={},
        option_key="",
        price_amount=product.price_amount,
        cost_amount=product.cost_amount,
    )


async def variants_of(
    session: AsyncSession, product_id: int, *, active_only: bool = False
) -> list[ProductVariant]:
    stmt = select(ProductVariant).where(col(ProductVariant.product_id) == product_id)
    if active_only:
        stmt = stmt.where(col(ProductVariant.is_active))
    return list(
        await session.scalars(stmt.order_by(col(ProductVariant.position), col(ProductVariant.id)))
    )


async def by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, ProductVariant]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(ProductVariant).where(col(ProductVariant.id).in_(wanted)))
    return {v.id: v for v in rows if v.id is not None}


async def mirror_default(session: AsyncSession, product: Product) -> None:
    """Carry the product's SKU, price and cost over to its default variant (a product without
    options), so that a single-SKU product is edited as one thing."""
    assert product.id is not None  # a stored product
    variants = await variants_of(session, product.id)
    if len(variants) != 1 or variants[0].option_key != "":
        return
    variant = variants[0]
    variant.sku = product.sku
    variant.price_amount = product.price_amount
    variant.cost_amount = product.cost_amount
    variant.updated_at = utcnow()
    session.add(variant)


async def refresh_product_price(session: AsyncSession, product: Product) -> None:
    """Set the product's price and cost to those of its cheapest active variant."""
    cheapest = await session.scalar(
        select(ProductVariant)
        .where(col(ProductVariant.product_id) == product.id, col(ProductVariant.is_active))
        .order_by(col(ProductVariant.price_amount), col(ProductVariant.id))
        .limit(1)
    )
    if cheapest is None:
        return  # nothing on sale: the last price stands
    product.price_amount = cheapest.price_amount
    product.cost_amount = cheapest.cost_amount
    session.add(product)


async def options_of(session: AsyncSession, product_id: int) -> list[ProductOption]:
    """The product's option axes, in display order."""
    return list(
        await session.scalars(
            select(ProductOption)
            .where(col(ProductOption.product_id) == product_id)
            .order_by(col(ProductOption.position), col(ProductOption.id))
        )
    )


def _free_units() -> Any:
    # A level with more reserved than on hand (stock corrected down) counts as none.
    return func.sum(
        case(
            (
                col(StockLevel.on_hand) > StockLevel.reserved,
                StockLevel.on_hand - StockLevel.reserved,
            ),
            else_=0,
        )
    )


async def available_units(session: AsyncSession, variant_ids: Iterable[int]) -> dict[int, int]:
    """Units of each variant that can be sold now: on hand and not reserved, summed over the
    active warehouses. One grouped statement; a variant without stock is absent."""
    ids = list(set(variant_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(col(StockLevel.variant_id), _free_units())
        .join(Warehouse, col(Warehouse.id) == StockLevel.warehouse_id)
        .where(col(StockLevel.variant_id).in_(ids), col(Warehouse.is_active))
        .group_by(col(StockLevel.variant_id))
    )
    return {vid: int(units or 0) for vid, units in rows}


async def available_units_of_products(
    session: AsyncSession, product_ids: Iterable[int]
) -> dict[int, int]:
    """Units of each product that can be sold now: those of its active variants, over the
    active warehouses. One grouped statement; a product without any is absent."""
    ids = list(set(product_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(col(StockLevel.product_id), _free_units())
        .join(Warehouse, col(Warehouse.id) == StockLevel.warehouse_id)
        .join(ProductVariant, col(ProductVariant.id) == StockLevel.variant_id)
        .where(
            col(StockLevel.product_id).in_(ids),
            col(Warehouse.is_active),
            col(ProductVariant.is_active),
        )
        .group_by(col(StockLevel.product_id))
    )
    return {pid: int(units or 0) for pid, units in rows}


async def by_sku(session: AsyncSession, sku: str) -> ProductVariant | None:
    """The variant of ``sku`` (compared case-insensitively, as SKUs are stored upper-case)."""
    return await session.scalar(
        select(ProductVariant).where(col(ProductVariant.sku) == sku.strip().upper())
    )


async def by_barcode(session: AsyncSession, barcode: str) -> ProductVariant | None:
    """The variant whose GTIN is ``barcode`` (digits; surrounding blanks ignored)."""
    return await session.scalar(
        select(ProductVariant).where(col(ProductVariant.barcode) == barcode.strip())
    )


async def sku_in_use(
    session: AsyncSession, sku: str, *, product_id: int | None, variant_id: int | None = None
) -> bool:
    """Whether ``sku`` names something else: another product, or a variant other than
    ``variant_id``. Asked for a product's own SKU (``variant_id`` None), its own variants do not
    count: a product and one of its variants may share a SKU (a default variant does)."""
    other_product = select(col(Product.id)).where(col(Product.sku) == sku)
    if product_id is not None:
        other_product = other_product.where(col(Product.id) != product_id)
    other_variant = select(col(ProductVariant.id)).where(col(ProductVariant.sku) == sku)
    if variant_id is not None:
        other_variant = other_variant.where(col(ProductVariant.id) != variant_id)
    elif product_id is not None:
        other_variant = other_variant.where(col(ProductVariant.product_id) != product_id)
    with session.no_autoflush:
        found = await session.scalar(select(exists(other_product) | exists(other_variant)))
    return bool(found)


# ---------------------------------------------------------------------------------------------
# Barcodes

GTIN_LENGTHS = (8, 12, 13, 14)


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit of a GTIN's digits before it: weights 3 and 1 alternate from the
    right, and the digit brings the weighted sum to a multiple of ten."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def check_barcode(barcode: str | None) -> str | None:
    """A GTIN-8, -12 (UPC-A), -13 (EAN-13) or -14 with a correct check digit; blank is none."""
    if barcode is None or not barcode.strip():
        return None
    barcode = barcode.strip()
    if not barcode.isascii() or not barcode.isdigit() or len(barcode) not in GTIN_LENGTHS:
        raise InvalidBarcode("barcode must be a GTIN of 8, 12, 13 or 14 digits")
    if gtin_check_digit(barcode[:-1]) != int(barcode[-1]):
        raise InvalidBarcode(f"barcode {barcode} has a wrong check digit")
    return barcode


async def has_options(session: AsyncSession, product_id: int) -> bool:
    """Whether the product has option axes (and so is priced per variant)."""
    with session.no_autoflush:
        found = await session.scalar(
            select(exists().where(col(ProductOption.product_id) == product_id))
        )
    return bool(found)
