"""Search facets (`productFacets`) and the filters that click them (`priceBands`), over HTTP on
SQLite and PostgreSQL, against hand counts on a small catalogue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.models import ProductOption, ProductVariant, StaffRole
from tests.support.accounts import make_staff, token_for
from tests.support.catalog import make_category, make_product
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.statements import counting

FACETS = """
query($filter: ProductFilter, $facets: [String!]) {
  productFacets(filter: $filter, facets: $facets) {
    __typename
    ... on ProductFacets {
      brands { value count selected }
      categories { category { slug name } count selected }
      priceBands { key minPrice { amount } maxPrice { amount } count selected }
      options { name values { value count selected } }
    }
    ... on Error { code message field }
  }
  products(first: 50, filter: $filter) { totalCount edges { node { sku } } }
}
"""


def _category_id(pk: int | None) -> str:
    return str(relay.GlobalID("Category", str(pk)))


async def _seed(session: AsyncSession) -> dict[str, Any]:
    """The catalogue the hand counts below are made on.

    | sku | matches 蓝牙 | brand  | category       | price   | band      |
    | A   | yes          | Sony   | 数码 > 耳机    | 199.00  | 100-200   |
    | B   | yes          | Sony   | 数码 > 耳机    | 50.00   | 50-100    |
    | C   | yes          | 漫步者 | 数码 > 耳机    | 49.99   | 0-50      |
    | D   | yes          | Sony   | 数码 > 音箱    | 100.00  | 100-200   |
    | E   | yes          | JBL    | 数码 > 音箱    | 5000.00 | 5000-     |
    | F   | yes          | 小米   | 家居           | 4999.99 | 2000-5000 |
    | I   | yes          | —      | —              | 0.00    | 0-50      |
    | G   | archived     | Sony   | 数码 > 耳机    | 199.00  |           |
    | H   | no           | Sony   | 数码 > 耳机    | 300.00  | 200-500   |
    """
    digital = await make_category(session, "数码", slug="digital")
    earphones = await make_category(session, "耳机", slug="earphones", parent=digital)
    speakers = await make_category(session, "音箱", slug="speakers", parent=digital)
    home = await make_category(session, "家居", slug="home")
    rows = [
        ("A", "蓝牙耳机 Pro", "Sony", earphones, "199.00", True),
        ("B", "蓝牙耳机 Lite", "Sony", earphones, "50.00", True),
        ("C", "蓝牙耳机 入门", "漫步者", earphones, "49.99", True),
        ("D", "蓝牙音箱 小", "Sony", speakers, "100.00", True),
        ("E", "蓝牙音箱 大", "JBL", speakers, "5000.00", True),
        ("F", "蓝牙台灯", "小米", home, "4999.99", True),
        ("I", "蓝牙鼠标", None, None, "0.00", True),
        ("G", "蓝牙耳机 旧款", "Sony", earphones, "199.00", False),
        ("H", "有线耳机", "Sony", earphones, "300.00", True),
    ]
    products = {}
    for sku, name, brand, category, price, active in rows:
        products[sku] = await make_product(
            session,
            name,
            sku=sku,
            brand=brand,
            category=category,
            price=price,
            is_active=active,
            commit=False,
        )
    # Variants' options (besides each product's default variant, which has none):
    # A: red M, red L, blue M; B: blue S (and a green M no longer on sale); D: red S; E: black;
    # H (no match for 蓝牙): red M; G (archived): red.
    variants = {
        "A": [({"colour": "red", "size": "M"}, True), ({"colour": "red", "size": "L"}, True)]
        + [({"colour": "blue", "size": "M"}, True)],
        "B": [({"colour": "blue", "size": "S"}, True), ({"colour": "green", "size": "M"}, False)],
        "D": [({"colour": "red", "size": "S"}, True)],
        "E": [({"colour": "black"}, True)],
        "H": [({"colour": "red", "size": "M"}, True)],
        "G": [({"colour": "red"}, True)],
    }
    for sku, choices in variants.items():
        product = products[sku]
        for i, (values, active) in enumerate(choices):
            session.add(
                ProductVariant(
                    product_id=product.id,
                    sku=f"{sku}-{i}",
                    options=values,
                    option_key="|".join(f"{k}={v}" for k, v in sorted(values.items())),
                    price_amount=product.price_amount,
                    is_active=active,
                )
            )
        for position, axis in enumerate(sorted({a for values, _ in choices for a in values})):
            axis_values = sorted({values[axis] for values, _ in choices if axis in values})
            session.add(
                ProductOption(
                    product_id=product.id, name=axis, position=position, values=axis_values
                )
            )
    staff = await make_staff(session, role=StaffRole.CATALOG)
    await session.commit()
    return {
        "categories": {c.slug: c.id for c in (digital, earphones, speakers, home)},
        "products": {sku: p.id for sku, p in products.items()},
        "staff": staff,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


async def facets(gql: GraphQLClient, flt: dict[str, Any], names: list[str] | None = None) -> Any:
    data = await gql(FACETS, {"filter": flt, "facets": names})
    return data["productFacets"], data["products"]


def brands(found: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(b["value"], b["count"], b["selected"]) for b in found["brands"]]


def categories(found: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(c["category"]["slug"], c["count"], c["selected"]) for c in found["categories"]]


def bands(found: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(b["key"], b["count"], b["selected"]) for b in found["priceBands"]]


def options(found: dict[str, Any]) -> dict[str, list[tuple[str, int, bool]]]:
    return {
        axis["name"]: [(v["value"], v["count"], v["selected"]) for v in axis["values"]]
        for axis in found["options"]
    }


async def test_counts_of_a_search_match_a_hand_count(gql: GraphQLClient) -> None:
    found, listed = await facets(gql, {"search": "蓝牙"})
    assert listed["totalCount"] == 7  # A B C D E F I: not the archived G, not H
    assert found["__typename"] == "ProductFacets"
    assert brands(found) == [
        ("Sony", 3, False),
        ("JBL", 1, False),
        ("小米", 1, False),
        ("漫步者", 1, False),
    ]
    # Rolled up the tree: 数码 counts the products of 耳机 and 音箱, each once.
    assert categories(found) == [
        ("digital", 5, False),
        ("earphones", 3, False),
        ("speakers", 2, False),
        ("home", 1, False),
    ]
    assert bands(found) == [
        ("0-50", 2, False),
        ("50-100", 1, False),
        ("100-200", 2, False),
        ("2000-5000", 1, False),
        ("5000-", 1, False),
    ]
    # A has two red variants and two size M variants: it counts once for each value. B's green
    # variant is not on sale; H does not match; G is archived.
    assert options(found) == {
        "colour": [("blue", 2, False), ("red", 2, False), ("black", 1, False)],
        "size": [("S", 2, False), ("L", 1, False), ("M", 1, False)],
    }
    assert [axis["name"] for axis in found["options"]] == ["colour", "size"]
    fifty = found["priceBands"][1]
    assert (fifty["minPrice"]["amount"], fifty["maxPrice"]["amount"]) == ("50.00", "100.00")
    assert found["priceBands"][-1]["maxPrice"] is None


async def test_selecting_a_brand_keeps_the_other_brands_counts(gql: GraphQLClient) -> None:
    found, listed = await facets(gql, {"search": "蓝牙", "brands": ["Sony"]})
    assert sorted(e["node"]["sku"] for e in listed["edges"]) == ["A", "B", "D"]
    # The brand facet ignores the brand selection; the others count Sony's products only.
    assert brands(found) == [
        ("Sony", 3, True),
        ("JBL", 1, False),
        ("小米", 1, False),
        ("漫步者", 1, False),
    ]
    assert categories(found) == [
        ("digital", 3, False),
        ("earphones", 2, False),
        ("speakers", 1, False),
    ]
    assert bands(found) == [("50-100", 1, False), ("100-200", 2, False)]


async def test_price_band_and_brands_together(gql: GraphQLClient) -> None:
    flt = {"search": "蓝牙", "brands": ["Sony", "JBL"], "priceBands": ["100-200"]}
    found, listed = await facets(gql, flt)
    assert sorted(e["node"]["sku"] for e in listed["edges"]) == ["A", "D"]
    # JBL has no product in 100-200, but it is selected: it shows, with 0.
    assert brands(found) == [("Sony", 2, True), ("JBL", 0, True)]
    assert bands(found) == [("50-100", 1, False), ("100-200", 2, True), ("5000-", 1, False)]
    assert categories(found) == [
        ("digital", 2, False),
        ("earphones", 1, False),
        ("speakers", 1, False),
    ]


async def test_category_listing_without_search(gql: GraphQLClient, shop: ModuleShop) -> None:
    earphones = _category_id(shop.seeded["categories"]["earphones"])
    found, listed = await facets(gql, {"category": earphones})
    assert sorted(e["node"]["sku"] for e in listed["edges"]) == ["A", "B", "C", "H"]
    assert brands(found) == [("Sony", 3, False), ("漫步者", 1, False)]
    # The category facet ignores the category selection (siblings and parents keep counts).
    assert categories(found) == [
        ("digital", 6, False),
        ("earphones", 4, True),
        ("speakers", 2, False),
        ("home", 1, False),
    ]
    assert bands(found) == [
        ("0-50", 1, False),
        ("50-100", 1, False),
        ("100-200", 1, False),
        ("200-500", 1, False),
    ]


async def test_price_bands_place_boundary_prices(gql: GraphQLClient) -> None:
    async def skus(*keys: str) -> list[str]:
        _, listed = await facets(gql, {"search": "蓝牙", "priceBands": list(keys)}, [])
        return sorted(e["node"]["sku"] for e in listed["edges"])

    assert await skus("0-50") == ["C", "I"]  # 49.99 and 0.00
    assert await skus("50-100") == ["B"]  # 50.00 is the lower end of its band
    assert await skus("100-200") == ["A", "D"]  # 100.00 belongs to the higher band
    assert await skus("2000-5000") == ["F"]  # 4999.99
    assert await skus("5000-") == ["E"]  # 5000.00: the open band
    assert await skus("0-50", "5000-") == ["C", "E", "I"]  # bands are alternatives
    # The price facet ignores priceMin/priceMax too: they are price selections.
    found, listed = await facets(gql, {"search": "蓝牙", "priceMin": "100"}, ["price"])
    assert listed["totalCount"] == 4
    assert [key for key, _, _ in bands(found)] == [
        "0-50",
        "50-100",
        "100-200",
        "2000-5000",
        "5000-",
    ]


async def test_option_values_select_and_count_per_variant(gql: GraphQLClient) -> None:
    red = {"search": "蓝牙", "options": [{"name": "colour", "values": ["red"]}]}
    found, listed = await facets(gql, red)
    assert sorted(e["node"]["sku"] for e in listed["edges"]) == ["A", "D"]
    # Colour ignores its own selection; sizes are those of the red variants (B's S is blue).
    assert options(found) == {
        "colour": [("blue", 2, False), ("red", 2, True), ("black", 1, False)],
        "size": [("L", 1, False), ("M", 1, False), ("S", 1, False)],
    }
    assert brands(found) == [("Sony", 2, False)]

    # Red and S on one variant: D has a red S; A has red and has no S in red.
    red_s = {
        "search": "蓝牙",
        "options": [{"name": "colour", "values": ["red"]}, {"name": "size", "values": ["S"]}],
    }
    found, listed = await facets(gql, red_s)
    assert [e["node"]["sku"] for e in listed["edges"]] == ["D"]
    assert options(found) == {
        "colour": [("blue", 1, False), ("red", 1, True)],
        "size": [("L", 1, False), ("M", 1, False), ("S", 1, True)],
    }
    # Values of an axis are alternatives; a variant no longer on sale selects nothing.
    _, listed = await facets(
        gql, {"search": "蓝牙", "options": [{"name": "size", "values": ["L", "M"]}]}, []
    )
    assert [e["node"]["sku"] for e in listed["edges"]] == ["A"]
    found, listed = await facets(
        gql, {"search": "蓝牙", "options": [{"name": "colour", "values": ["green"]}]}, ["options"]
    )
    assert listed["totalCount"] == 0
    assert options(found)["colour"][-1] == ("green", 0, True)


async def test_only_the_facets_asked_for(gql: GraphQLClient) -> None:
    found, _ = await facets(gql, {"search": "蓝牙"}, ["price"])
    assert found["brands"] is None and found["categories"] is None
    assert len(found["priceBands"]) == 5


async def test_bad_input_is_a_typed_error(gql: GraphQLClient) -> None:
    found, _ = await facets(gql, {"search": "蓝牙"}, ["brand", "colour"])
    assert (found["__typename"], found["code"], found["field"]) == (
        "ValidationError",
        "VALIDATION_FAILED",
        "facets",
    )
    assert "colour" in found["message"]
    body = await gql.execute(
        """query($f: ProductFilter) { productFacets(filter: $f) {
             __typename ... on Error { code field message } } }""",
        {"f": {"priceBands": ["100-150"]}},
    )
    assert body["data"]["productFacets"]["field"] == "priceBands"
    body = await gql.execute(
        '{ productFacets(filter: {priceMin: "1.001"}) { ... on Error { field } } }'
    )
    assert body["data"]["productFacets"] == {"field": "priceMin"}
    body = await gql.execute(
        """query($f: ProductFilter) { productFacets(filter: $f) { ... on Error { field } } }""",
        {"f": {"options": [{"name": 'a"b', "values": ["x"]}]}},
    )
    assert body["data"]["productFacets"] == {"field": "options"}
    # The product list refuses an unknown band as it refuses any malformed filter.
    body = await gql.execute('{ products(filter: {priceBands: ["1-2"]}) { totalCount } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_one_grouped_statement_per_facet(gql: GraphQLClient, shop: ModuleShop) -> None:
    query = """query($f: ProductFilter) { productFacets(filter: $f) { ... on ProductFacets {
        brands { value } categories { count category { name parent { name } } }
        priceBands { key } options { name values { value count } } } } }"""
    # Authenticated: never answered from the response cache.
    staff = gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded["staff"]))
    await staff(query, {"f": {"search": "蓝牙"}})  # warm up: the first request loads plugins' data
    with counting(shop.app) as statements:
        flt = {"search": "蓝牙", "brands": ["Sony"], "priceBands": ["0-50"]}
        chosen = [{"name": "colour", "values": ["red"]}, {"name": "size", "values": ["M"]}]
        await staff(query, {"f": flt | {"options": chosen}})
    facet_statements = [s for s in statements if "GROUP BY" in s.upper()]
    assert len(facet_statements) == 4, statements
    # Nothing else reads products (category names come with their counts); the rest is the
    # token check, the search text's synonyms and corrections, and the parents' batch.
    others = [s for s in statements if s not in facet_statements]
    assert not [s for s in others if re.search(r"FROM product\b", s)], others
    assert len(others) <= 4, others


async def test_facets_are_served_from_the_response_cache(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    query = '{ productFacets(filter: {search: "耳机"}) { ... on ProductFacets { brands { value count } } } }'
    first = await gql.http.get("/graphql", params={"query": query})
    second = await gql.http.get("/graphql", params={"query": query})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.json()["data"] == second.json()["data"]
    # A product change drops the answer: the next one is computed again.
    staff = gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded["staff"]))
    changed = await staff(
        """mutation($id: ID!) { updateProduct(input: {id: $id, description: "有线 入耳式"}) {
             __typename } }""",
        {"id": str(relay.GlobalID("Product", str(shop.seeded["products"]["H"])))},
    )
    assert changed["updateProduct"]["__typename"] == "UpdateProductSuccess"
    third = await gql.http.get("/graphql", params={"query": query})
    assert third.headers["x-cache"] == "MISS"
    assert third.json()["data"] == first.json()["data"]
