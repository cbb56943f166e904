"""Plugins on the catalogue: the typed roots their fields on Product and Category receive (the
same on listing and detail pages), the core types they may return, and the filters they add
to the product list (the ``list_filters`` hook). SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import strawberry
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

import server.plugin
from schema.core import build_schema
from schema.products import ProductFilter
from server.config import Settings
from server.graphql.assembly import SchemaAssemblyError
from server.models import Product
from server.plugin import CategoryView, ListFilter, ProductView
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin, gid
from tests.support.catalog import make_category, make_product
from tests.support.graphql import GraphQLClient
from tests.support.orders import only_plugins

PRODUCT_VIEW = sorted(n for n, v in vars(ProductView).items() if isinstance(v, property))
CATEGORY_VIEW = sorted(n for n, v in vars(CategoryView).items() if isinstance(v, property))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@strawberry.type
class ProductFacts:
    @strawberry.field
    def facts(self, root: ProductView) -> JSON:
        return {name: _plain(getattr(root, name)) for name in PRODUCT_VIEW}


@strawberry.type
class CategoryFacts:
    @strawberry.field
    def facts(self, root: CategoryView) -> JSON:
        return {name: _plain(getattr(root, name)) for name in CATEGORY_VIEW}


FACTS = FakePlugin(
    "facts",
    graphql_type_extensions=lambda: {"Product": [ProductFacts], "Category": [CategoryFacts]},
)


def _by_sku_prefix(stmt: Select[Any], value: str) -> Select[Any]:
    return stmt.where(Product.sku.startswith(value.strip().upper()))


def _by_max_cost(stmt: Select[Any], value: int) -> Select[Any]:
    return stmt.where(Product.cost_amount <= value)


SKUS = FakePlugin(
    "skus",
    list_filters=lambda: {
        "products": [
            ListFilter("sku_prefix", str, _by_sku_prefix, "SKUs starting with this."),
            ListFilter("max_cost_fen", int, _by_max_cost),
        ]
    },
)


def _failing(stmt: Select[Any], value: bool) -> Select[Any]:
    raise RuntimeError("the ratings table is gone")


RATINGS = FakePlugin(
    "ratings", list_filters=lambda: {"products": [ListFilter("well_rated", bool, _failing)]}
)


@strawberry.type
class Shelf:
    """A plugin's own fields taking the core's filter input: they get the plugins' fields too."""

    @strawberry.field
    def shelf(self, filter: ProductFilter | None = None) -> str:
        given = filter.narrowing() if filter is not None else ()
        return ",".join(f"{a.plugin}:{a.filter.name}={a.value}" for a in given)


SHELF = FakePlugin(
    "shelf", graphql_queries=lambda: [Shelf], graphql_type_extensions=lambda: {"Category": [Shelf]}
)

LISTED = """
query($filter: ProductFilter) {
  products(first: 50, filter: $filter) { totalCount nodes { sku } }
}"""


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings, FACTS, SKUS, RATINGS)


# --- typed roots ---------------------------------------------------------------------------


async def test_extension_fields_read_the_same_typed_root_on_listing_and_detail_pages(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    audio = await make_category(session, "影音", slug="audio")
    earphones = await make_category(session, "耳机", slug="earphones", parent=audio)
    product = await make_product(
        session,
        "降噪耳机",
        sku="EAR-1",
        price="899.00",
        cost="450.00",
        brand="声学",
        category=earphones,
        description="主动降噪",
        tags=["降噪", "蓝牙"],
        attributes={"颜色": "黑", "续航": 30},
    )
    await make_product(session, "无分类", sku="BARE-1", price="9.90")

    listed = await gql("{ products(first: 10) { nodes { id sku facts category { slug facts } } } }")
    nodes = {n["sku"]: n for n in listed["products"]["nodes"]}
    on_listing = nodes["EAR-1"]
    detail = await gql(
        "query($id: ID!) { product(id: $id) { facts category { slug facts } } }",
        {"id": gid("Product", product.id)},
    )
    by_sku = await gql('{ productBySku(sku: "ear-1") { facts } }')
    category = await gql('{ category(slug: "earphones") { facts } }')

    facts = on_listing["facts"]
    assert detail["product"]["facts"] == facts
    assert by_sku["productBySku"]["facts"] == facts
    assert set(facts) == set(PRODUCT_VIEW)
    assert facts["id"] == product.id
    assert facts["price_amount"] == 89900 and facts["currency"] == "CNY"
    assert facts["cost_amount"] == 45000
    assert facts["category_id"] == earphones.id
    assert facts["tags"] == ["降噪", "蓝牙"]
    assert facts["attributes"] == {"颜色": "黑", "续航": 30}
    assert facts["is_active"] is True and facts["updated_at"] is None
    assert facts["created_at"] == product.created_at.isoformat()

    # The category came with the listing (a record); on its own it is an entity: same view.
    assert on_listing["category"]["facts"] == category["category"]["facts"]
    assert detail["product"]["category"]["facts"] == category["category"]["facts"]
    assert category["category"]["facts"] == {
        "id": earphones.id,
        "name": "耳机",
        "slug": "earphones",
        "description": "",
        "position": 0,
        "parent_id": audio.id,
    }
    assert nodes["BARE-1"]["facts"]["category_id"] is None
    assert nodes["BARE-1"]["category"] is None


def test_the_core_catalogue_types_are_exported_for_plugins() -> None:
    from schema.categories import Category
    from schema.inventory import Warehouse
    from schema.products import Product as ProductType

    assert server.plugin.Product is ProductType
    assert server.plugin.Category is Category
    assert server.plugin.Warehouse is Warehouse
    for name in ("Product", "ProductView", "Category", "CategoryView", "ListFilter"):
        assert name in server.plugin.__all__


# --- filters on core lists -----------------------------------------------------------------


async def test_hook_list_filters() -> None:
    sdl = build_schema(only_plugins(Settings(), SKUS)).as_str()
    product_filter = sdl[sdl.index("input ProductFilter {") :].split("}", 1)[0]
    assert '"""SKUs starting with this."""\n  skuPrefix: String = null' in product_filter
    assert "maxCostFen: Int = null" in product_filter
    # Only that schema: the core's input, and a schema without the plugin, are unchanged.
    assert "skuPrefix" not in build_schema(only_plugins(Settings())).as_str()
    names = {f.python_name for f in ProductFilter.__strawberry_definition__.fields}
    assert "sku_prefix" not in names

    schema = build_schema(only_plugins(Settings(), SKUS, SHELF))
    result = await schema.execute('{ shelf(filter: {skuPrefix: "tea", brands: ["x"]}) }')
    assert result.errors is None, result.errors
    assert result.data == {"shelf": "skus:sku_prefix=tea"}
    assert "shelf(filter: ProductFilter = null): String!" in schema.as_str()

    def adds(name: str, *filters: ListFilter, to: str = "products") -> FakePlugin:
        return FakePlugin(name, list_filters=lambda: {to: list(filters)})

    core = adds("thief", ListFilter("brands", str, _by_sku_prefix))
    with pytest.raises(
        SchemaAssemblyError,
        match="ProductFilter.brands is defined by the core and by plugin 'thief'",
    ):
        build_schema(only_plugins(Settings(), core))
    twice = adds("copycat", ListFilter("skuPrefix", str, _by_sku_prefix))
    with pytest.raises(
        SchemaAssemblyError,
        match="ProductFilter.skuPrefix is defined by plugin 'copycat' and by plugin 'skus'",
    ):
        build_schema(only_plugins(Settings(), SKUS, twice))
    lost = adds("lost", ListFilter("x", str, _by_sku_prefix), to="wishlists")
    with pytest.raises(SchemaAssemblyError, match="plugin 'lost' adds filters to list 'wishlists'"):
        build_schema(only_plugins(Settings(), lost))
    bad = adds("bad", ListFilter("not a name", str, _by_sku_prefix))
    with pytest.raises(SchemaAssemblyError, match="plugin 'bad'"):
        build_schema(only_plugins(Settings(), bad))


async def test_plugin_filters_narrow_the_product_list(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    tea = await make_category(session, "茶", slug="tea")
    await make_product(session, "龙井", sku="TEA-1", cost="10.00", brand="西湖", category=tea)
    await make_product(session, "碧螺春", sku="TEA-2", cost="30.00", brand="洞庭", category=tea)
    await make_product(session, "普洱", sku="TEA-3", brand="西湖", category=tea)
    await make_product(session, "咖啡豆", sku="COF-1", cost="5.00", brand="西湖")

    async def skus(flt: dict[str, Any] | None) -> tuple[int, set[str]]:
        data = await gql(LISTED, {"filter": flt})
        found = {n["sku"] for n in data["products"]["nodes"]}
        assert data["products"]["totalCount"] == len(found)
        return len(found), found

    assert await skus({"skuPrefix": "tea-"}) == (3, {"TEA-1", "TEA-2", "TEA-3"})
    # With the core's filters, and the other plugin filter: all must hold.
    assert await skus({"skuPrefix": "tea-", "brands": ["西湖"]}) == (2, {"TEA-1", "TEA-3"})
    assert await skus({"skuPrefix": "TEA", "maxCostFen": 1500}) == (1, {"TEA-1"})
    assert await skus({"maxCostFen": 1500, "search": "咖啡"}) == (1, {"COF-1"})
    assert await skus({"skuPrefix": "tea", "category": gid("Category", tea.id)}) == (
        3,
        {"TEA-1", "TEA-2", "TEA-3"},
    )
    # Not given, or null: not applied.
    assert (await skus({"skuPrefix": None}))[0] == 4
    assert (await skus(None))[0] == 4


async def test_a_failing_plugin_filter_fails_the_request_naming_the_plugin(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    await make_product(session, "龙井", sku="TEA-1")
    body = await gql.execute(LISTED, {"filter": {"wellRated": True}})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "PLUGIN_FAILED"
    assert error["extensions"]["plugin"] == "ratings"
    assert error["extensions"]["hook"] == "list_filters"
    # Not asked for, it is not called.
    assert (await gql(LISTED, {"filter": {"wellRated": None}}))["products"]["totalCount"] == 1
