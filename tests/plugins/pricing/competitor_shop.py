"""A small catalogue for the competitor-monitoring tests: products whose GTINs, SKUs and
prices the tests know."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Product, ProductVariant
from tests.support.catalog import add_variants, make_product

# Valid GTINs (their GS1 check digits hold): an EAN-13 and a UPC-A (GTIN-12).
EAN13 = "4006381333931"
UPC_A = "036000291452"
UNKNOWN_EAN = "5901234123457"


@dataclass(frozen=True)
class Catalogue:
    ean: int  # product id: 100.00 CNY, barcode EAN13
    upc: int  # product id: 50.00 CNY, barcode UPC_A
    single: int  # product id: 80.00 CNY, sku SKU-SINGLE, one variant
    multi: int  # product id: sku SKU-MULTI, two variants SKU-MULTI-R / SKU-MULTI-B
    ean_variant: int
    upc_variant: int
    single_variant: int
    blue_variant: int


async def _default_variant(session: AsyncSession, product: Product) -> ProductVariant:
    found = await session.scalar(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    )
    assert found is not None
    return found


async def make_catalogue(session: AsyncSession) -> Catalogue:
    ean = await make_product(session, "无线鼠标", sku="SKU-EAN", price="100.00")
    upc = await make_product(session, "USB 充电线", sku="SKU-UPC", price="50.00")
    single = await make_product(session, "保温杯", sku="SKU-SINGLE", price="80.00")
    multi = await make_product(session, "运动 T 恤", sku="SKU-MULTI", price="60.00")
    ean_variant = await _default_variant(session, ean)
    ean_variant.barcode = EAN13
    upc_variant = await _default_variant(session, upc)
    upc_variant.barcode = UPC_A
    await session.commit()
    variants = await add_variants(
        session,
        multi,
        {"颜色": ["红", "蓝"]},
        [({"颜色": "蓝"}, "SKU-MULTI-B", "60.00", None)],
    )
    blue = next(v for v in variants if v.sku == "SKU-MULTI-B")
    # The first variant keeps the product's sku when options come; give it its own, so the
    # product's sku names no variant.
    red = next(v for v in variants if v.sku == "SKU-MULTI")
    red.sku = "SKU-MULTI-R"
    await session.commit()
    single_variant = await _default_variant(session, single)
    assert ean.id and upc.id and single.id and multi.id
    assert ean_variant.id and upc_variant.id and single_variant.id and blue.id
    return Catalogue(
        ean=ean.id,
        upc=upc.id,
        single=single.id,
        multi=multi.id,
        ean_variant=ean_variant.id,
        upc_variant=upc_variant.id,
        single_variant=single_variant.id,
        blue_variant=blue.id,
    )
