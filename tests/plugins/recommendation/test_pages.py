"""The lists product and customer pages show, over HTTP on the hand-made shop
(tests/plugins/recommendation/shop.py): ``Product.similarProducts``,
``Product.frequentlyBoughtTogether`` and ``Customer.buyAgain``, batched whatever the page's
length; and a shop with the plugin disabled has none of the plugin's schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from schema.core import build_schema
from server.config import Settings
from server.graphql.structure import graphql_structure
from server.models import StaffRole
from server.plugins import load_plugins
from server.services.kpi_registry import registered_kpis
from tests.plugins.recommendation.shop import seed
from tests.support.accounts import token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

PRODUCT = """query($id: ID!, $first: Int! = 10) { node(id: $id) { ... on Product {
  similarProducts(first: $first) { product { name } score source }
  frequentlyBoughtTogether(first: $first) { product { name } support confidence lift orders }
} } }"""
LISTING = """query($first: Int!) { products(first: $first) { edges { node {
  name similarProducts(first: 3) { product { name } score source }
  frequentlyBoughtTogether(first: 3) { product { name } lift } } } } }"""
BUY_AGAIN = (
    """{ me { buyAgain { product { name } lastBoughtAt timesBought intervalDays dueAt } } }"""
)
CUSTOMER = """query($id: ID!) { node(id: $id) { ... on Customer {
  recommendationsPersonalised buyAgain(first: 1) { product { name } } } } }"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


async def page(gql: GraphQLClient, shop: ModuleShop, key: str, first: int = 10) -> Any:
    product = gid("Product", shop.seeded["products"][key])
    return (await gql(PRODUCT, {"id": product, "first": first}))["node"]


async def test_similar_products_merge_both_sources_on_sale(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    lamp = await page(gql, shop, "lamp")
    assert lamp["similarProducts"] == [
        {"product": {"name": "花瓶"}, "score": 0.9, "source": "CF"},
        {"product": {"name": "地毯"}, "score": 0.6, "source": "CONTENT"},
    ]
    assert (await page(gql, shop, "lamp", first=1))["similarProducts"] == lamp["similarProducts"][
        :1
    ]
    # 牛奶's nearest, 售罄, has no stock: left out.
    milk = await page(gql, shop, "milk")
    assert milk["similarProducts"] == [
        {"product": {"name": "茶"}, "score": 0.5, "source": "CONTENT"}
    ]
    assert (await page(gql, shop, "rug"))["similarProducts"] == []


async def test_bought_together_carries_the_rules_figures(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    phone = await page(gql, shop, "phone")
    assert phone["frequentlyBoughtTogether"] == [
        {
            "product": {"name": "充电器"},
            "support": 0.04,
            "confidence": 0.4,
            "lift": 3.0,
            "orders": 4,
        }
    ]
    assert (await page(gql, shop, "lamp"))["frequentlyBoughtTogether"] == []


async def test_a_listing_of_products_costs_the_same_statements_at_any_length(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    counts = []
    # Newest first: the first 7 hold 台灯 and 耳机 (with neighbours and a rule), 15 every product.
    for first in (7, 15):
        with counting(shop.app) as statements:
            edges = (await gql(LISTING, {"first": first}))["products"]["edges"]
        assert len(edges) == first
        counts.append(len(statements))
    # The listing, the neighbours and the rules (with the products they name).
    assert counts[0] == counts[1] == 3, counts


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_buy_again_lists_what_is_due_never_a_durable_good(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    people = shop.seeded["customers"]
    now = shop.seeded["now"]
    # ann: 牛奶 twice (every 7 days, last 10 days ago); 耳机 is durable.
    [milk] = (await as_(gql, shop, people["ann"])(BUY_AGAIN))["me"]["buyAgain"]
    assert (milk["product"]["name"], milk["timesBought"], milk["intervalDays"]) == ("牛奶", 2, 7.0)
    last = _at(milk["lastBoughtAt"])
    assert abs((now - last) - timedelta(days=10)) < timedelta(seconds=1)
    assert _at(milk["dueAt"]) - last == timedelta(days=7)
    # eve: 薯片 has no cycle but she bought it 20 and 6 days ago: every 14 days.
    [chips] = (await as_(gql, shop, people["eve"])(BUY_AGAIN))["me"]["buyAgain"]
    assert (chips["product"]["name"], chips["timesBought"]) == ("薯片", 2)
    assert chips["intervalDays"] == pytest.approx(14.0)
    assert _at(chips["dueAt"]) - _at(chips["lastBoughtAt"]) == timedelta(days=14)
    # dan bought nothing.
    assert (await as_(gql, shop, people["dan"])(BUY_AGAIN))["me"]["buyAgain"] == []


async def test_a_customers_lists_are_theirs_and_staffs(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    people = shop.seeded["customers"]
    ann = gid("Customer", people["ann"].id)
    admin = as_(gql, shop, shop.seeded["staff"][StaffRole.ADMIN])
    seen = (await admin(CUSTOMER, {"id": ann}))["node"]
    assert seen == {
        "recommendationsPersonalised": True,
        "buyAgain": [{"product": {"name": "牛奶"}}],
    }
    assert (await as_(gql, shop, people["bob"])(CUSTOMER, {"id": ann}))["node"] is None
    assert (await gql(CUSTOMER, {"id": ann}))["node"] is None


PLUGIN_FIELDS = {
    "Query": {"recommendations", "recommendationMerchandising", "recommendationPerformance"},
    "Mutation": {
        "pinRecommendation",
        "excludeFromRecommendations",
        "removeRecommendationRule",
        "setRecommendationPersonalisation",
        "recordRecommendationClick",
        "recordRecommendationConversion",
    },
    "Product": {"similarProducts", "frequentlyBoughtTogether"},
    "Customer": {"buyAgain", "recommendationsPersonalised"},
}


def test_a_disabled_plugin_leaves_nothing_in_the_schema() -> None:
    def schema(**settings: Any) -> Any:
        chosen = Settings(plugin_entry_points=False, **settings)
        return graphql_structure(build_schema(load_plugins(chosen), chosen))

    enabled = schema()
    for type_name, fields in PLUGIN_FIELDS.items():
        assert fields <= set(enabled.type_map[type_name].fields)
    disabled = schema(disabled_plugins="recommendation")
    for type_name, fields in PLUGIN_FIELDS.items():
        assert not fields & set(disabled.type_map[type_name].fields)
    names = set(disabled.type_map)
    assert not {n for n in names if "Recommend" in n or n.startswith("Merchandising")}
    assert "SimilarProduct" not in names and "BuyAgainItem" not in names
    off = load_plugins(Settings(plugin_entry_points=False, disabled_plugins="recommendation"))
    assert not [k for k in registered_kpis(off) if k.startswith("recommendation.")]
    on = load_plugins(Settings(plugin_entry_points=False))
    assert {k for k in registered_kpis(on) if k.startswith("recommendation.")} == {
        "recommendation.click_through",
        "recommendation.conversion",
    }
