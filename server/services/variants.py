"""Product variants (SKUs): the sellable unit that stock, carts and orders refer to.

A product without option axes has one *default* variant (no options) that mirrors the
product's SKU, price and cost. A product's price is the lowest price of its active variants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Product, ProductVariant, utcnow
from server.services.errors import NotFound, ValidationFailed


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


async def sole_variant(session: AsyncSession, product_id: int, *, field: str) -> ProductVariant:
    """The variant meant when a client names only the product: its one active variant.

    NotFound when the product does not exist; ValidationFailed when it has several active
    variants (the client must say which) or none."""
    if await session.get(Product, product_id) is None:
        raise NotFound("product", product_id, field=field)
    active = await variants_of(session, product_id, active_only=True)
    if len(active) != 1:
        raise ValidationFailed(
            f"product {product_id} has {len(active)} variants on sale: give the variant's id",
            field=field,
        )
    return active[0]


async def named(
    session: AsyncSession, *, product_id: int | None, variant_id: int | None, field: str
) -> ProductVariant:
    """The variant a client names: by its id (which must belong to ``product_id`` when that is
    given too), or by a product with a single variant on sale."""
    if variant_id is not None:
        variant = await session.get(ProductVariant, variant_id)
        if variant is None or (product_id is not None and variant.product_id != product_id):
            raise NotFound("variant", variant_id, field=field)
        return variant
    if product_id is not None:
        return await sole_variant(session, product_id, field=field)
    raise ValidationFailed("give a variantId or a productId", field=field)


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


async def price_range(
    session: AsyncSession, product_ids: Iterable[int]
) -> dict[int, tuple[int, int]]:
    """(lowest, highest) price of each product's active variants."""
    ids = list(set(product_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(
            col(ProductVariant.product_id),
            func.min(ProductVariant.price_amount),
            func.max(ProductVariant.price_amount),
        )
        .where(col(ProductVariant.product_id).in_(ids), col(ProductVariant.is_active))
        .group_by(col(ProductVariant.product_id))
    )
    return {pid: (low, high) for pid, low, high in rows}
