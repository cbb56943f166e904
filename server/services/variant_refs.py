"""Which variant a client means: a cart line or a stock change names a variant (SKU) by its
id, or — for a product with a single variant on sale — the product by its id.

Many references are answered together in two statements, whatever their number, and each
failure names the reference it is about (its ``field``):

- a variant id that names no variant: NotFound (``variantId``);
- a variant id with the id of another product beside it: ValidationFailed (``variantId``);
- a product id alone, for a product with several variants on sale (or, for stock, none):
  VariantRequired with the variants on sale (``variantId``);
- for what is to be sold (``on_sale``), a variant or product taken off sale is answered like a
  missing one (NotFound), as a shopper's ``node`` query answers it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Product, ProductVariant
from server.services.errors import NotFound, ValidationFailed, VariantRequired


@dataclass(frozen=True)
class VariantRef:
    """A variant as a client names it. ``path`` is where the reference sits in the input
    (``lines.2``; empty for the input itself): errors name ``<path>.variantId`` and so on."""

    product_id: int | None = None
    variant_id: int | None = None
    path: str = ""

    def field(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name


class Named(NamedTuple):
    """The variant a reference names, with its product."""

    variant: ProductVariant
    product: Product


async def resolve(
    session: AsyncSession, refs: Sequence[VariantRef], *, on_sale: bool
) -> list[Named]:
    """The variant each of ``refs`` names, in their order; the first bad reference raises.

    ``on_sale``: the variants are to be sold (a cart line), so a variant or product taken off
    sale is not found. Without it (stock administration) any variant of any product may be
    named, and a product id alone names its one variant on sale."""
    variant_ids = {ref.variant_id for ref in refs if ref.variant_id is not None}
    product_ids = {ref.product_id for ref in refs if ref.variant_id is None and ref.product_id}
    if not variant_ids and not product_ids:
        return [_named(ref, {}, {}, {}, on_sale=on_sale) for ref in refs]
    rows = list(
        await session.scalars(
            select(ProductVariant)
            .where(
                or_(
                    col(ProductVariant.id).in_(variant_ids),
                    col(ProductVariant.product_id).in_(product_ids),
                )
            )
            .order_by(col(ProductVariant.position), col(ProductVariant.id))
        )
    )
    by_id = {v.id: v for v in rows if v.id is not None}
    of_product: dict[int, list[ProductVariant]] = defaultdict(list)
    for v in rows:
        if v.product_id in product_ids:
            of_product[v.product_id].append(v)
    wanted = product_ids | {v.product_id for v in rows}
    products = {
        p.id: p
        for p in await session.scalars(select(Product).where(col(Product.id).in_(wanted)))
        if p.id is not None
    }
    return [_named(ref, by_id, of_product, products, on_sale=on_sale) for ref in refs]


def _named(
    ref: VariantRef,
    by_id: dict[int, ProductVariant],
    of_product: dict[int, list[ProductVariant]],
    products: dict[int, Product],
    *,
    on_sale: bool,
) -> Named:
    if ref.variant_id is not None:
        variant = by_id.get(ref.variant_id)
        if variant is None:
            raise NotFound("variant", ref.variant_id, field=ref.field("variantId"))
        product = products[variant.product_id]
        if ref.product_id is not None and variant.product_id != ref.product_id:
            raise ValidationFailed(
                f"variant {ref.variant_id} ({variant.sku}) is not a variant of product "
                f"{ref.product_id}",
                field=ref.field("variantId"),
            )
        if on_sale and not (variant.is_active and product.is_active):
            raise NotFound("variant", ref.variant_id, field=ref.field("variantId"))
        return Named(variant, product)
    if ref.product_id is None:
        raise ValidationFailed("give a variantId or a productId", field=ref.field("variantId"))
    found = products.get(ref.product_id)
    if found is None or (on_sale and not found.is_active):
        raise NotFound("product", ref.product_id, field=ref.field("productId"))
    active = [v for v in of_product.get(ref.product_id, []) if v.is_active]
    if len(active) == 1:
        return Named(active[0], found)
    if on_sale and not active:
        # Nothing of it is on sale: to a shopper, as good as a product taken off sale.
        raise NotFound("product", ref.product_id, field=ref.field("productId"))
    raise VariantRequired(
        ref.product_id, [v.id for v in active if v.id is not None], field=ref.field("variantId")
    )
