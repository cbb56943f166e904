"""A product page with its variants — their prices (through a pricing plugin that reads the
database), stock, price range and option matrix — runs the same number of SQL statements for
2 variants as for 8: every variant relation is batched per request."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server.config import Settings
from server.models import Product, ProductVariant
from server.plugin import Adjustment, PluginInfo, PriceItem, hookimpl
from server.plugins import PluginRuntime
from server.services import variant_admin
from tests.support.catalog import add_variants, make_product
from tests.support.graphql import GraphQLClient
from tests.support.orders import only_plugins, unthrottled
from tests.support.statements import counting

PAGE = """
query($id: ID!) {
  product(id: $id) {
    name price { amount } availability { inStock quantityAvailable }
    priceRange { min { amount } max { amount } }
    options { name values }
    variants {
      sku options { name value } basePrice { amount } price { amount }
      priceBreakdown(quantity: 2) { adjustments { source amount { amount } } total { amount } }
      availability { inStock quantityAvailable }
    }
    optionMatrix { options { value } variant { sku price { amount } }
                   availability { inStock } }
  }
}"""


class VariantDiscount:
    """Takes 10% off every variant it is asked about, after one SQL read per batch (how many
    variants the batch's products have), so the test sees whether prices are batched."""

    PLUGIN_INFO = PluginInfo(name="variant-discount", version="1.0")

    def __init__(self) -> None:
        self.batches = 0

    @hookimpl
    async def price_adjustments(
        self, session: AsyncSession, items: Mapping[int, PriceItem]
    ) -> dict[int, list[Adjustment]]:
        self.batches += 1
        product_ids = {item.product.id for item in items.values()}
        await session.scalar(
            select(func.count())
            .select_from(ProductVariant)
            .where(ProductVariant.product_id.in_(product_ids))  # type: ignore[attr-defined]  # a SQLModel column is an InstrumentedAttribute at run time
        )
        return {
            key: [Adjustment(rule="ten", label="九折", amount=-(item.base // 10))]
            for key, item in items.items()
        }


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Counted on the cold path: no answer may come from the response cache.
    return unthrottled(settings).model_copy(update={"response_cache": False})


@pytest.fixture
def discount() -> VariantDiscount:
    return VariantDiscount()


@pytest.fixture
def plugins(settings: Settings, discount: VariantDiscount) -> PluginRuntime:
    return only_plugins(settings, discount)


async def _phone(session: AsyncSession, sku: str, storages: list[str]) -> Product:
    """A phone in every (storage, colour) of ``storages`` × 2 colours, stock in two
    warehouses, the dearer the more storage."""
    product = await make_product(session, "手机", sku=sku, price="5000.00", stock={"WH-A": 1})
    combos = [(s, c) for s in storages for c in ("黑色", "白色")][1:]  # the first is the default
    await add_variants(
        session,
        product,
        {"容量": storages, "颜色": ["黑色", "白色"]},
        [
            (
                {"容量": s, "颜色": c},
                f"{sku}-{i}",
                f"{5000 + 1000 * storages.index(s)}.00",
                {"WH-A": i, "WH-B": 1},
            )
            for i, (s, c) in enumerate(combos, start=1)
        ],
    )
    return product


async def test_a_product_page_costs_the_same_statements_for_2_as_for_8_variants(
    app: Starlette, gql: GraphQLClient, session: AsyncSession, discount: VariantDiscount
) -> None:
    await _phone(session, "P2", ["128GB"])
    await _phone(session, "P8", ["128GB", "256GB", "512GB", "1TB"])
    # One of the large one's variants archived: it drops out of the page and its prices.
    dearest = await session.scalar(select(ProductVariant).where(ProductVariant.sku == "P8-7"))
    assert dearest is not None and dearest.id is not None
    await variant_admin.set_variant_active(session, dearest.id, False)
    await session.commit()
    small_id = (await gql('{ productBySku(sku: "P2") { id } }'))["productBySku"]["id"]
    large_id = (await gql('{ productBySku(sku: "P8") { id } }'))["productBySku"]["id"]

    await gql(PAGE, {"id": small_id})  # warm up: a connection's first request may ask more
    discount.batches = 0
    with counting(app) as few:
        page2 = (await gql(PAGE, {"id": small_id}))["product"]
    batches2, discount.batches = discount.batches, 0
    with counting(app) as many:
        page8 = (await gql(PAGE, {"id": large_id}))["product"]

    assert len(page2["variants"]) == 2 and len(page8["variants"]) == 7
    assert len(page8["optionMatrix"]) == 8
    # Prices went through the plugin: 10% off, the range of the variants on sale only.
    assert page8["priceRange"] == {"min": {"amount": "4500.00"}, "max": {"amount": "7200.00"}}
    assert [v["price"]["amount"] for v in page8["variants"]] == [
        "4500.00",
        "4500.00",
        "5400.00",
        "5400.00",
        "6300.00",
        "6300.00",
        "7200.00",
    ]
    assert page8["variants"][1]["priceBreakdown"]["total"] == {"amount": "9000.00"}
    assert page8["variants"][1]["availability"] == {"inStock": True, "quantityAvailable": 2}
    assert page8["availability"]["quantityAvailable"] == sum(range(1, 7)) + 6 + 1  # P8-7 off
    assert page8["optionMatrix"][-1] == {
        "options": [{"value": "1TB"}, {"value": "白色"}],
        "variant": None,
        "availability": {"inStock": False},
    }
    assert len(few) == len(many), (few, many)
    # The product's price and its variants' at quantities 1 and 2: a few batches, as many for
    # 8 variants as for 2.
    assert discount.batches == batches2 <= 5
    assert len(many) < 15
