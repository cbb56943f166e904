"""Full-text search and suggestions over HTTP, on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.services.search import matches_prefix, query_terms
from tests.support.catalog import make_category, make_product
from tests.support.graphql import GraphQLClient

SEARCH = """
query($q: String!, $first: Int = 20, $filter: ProductFilter) {
  products(first: $first, filter: {search: $q}) { totalCount edges { node { id name } } }
  filtered: products(first: $first, filter: $filter) { edges { node { name } } }
}
"""

SUGGEST = """
query($prefix: String!, $first: Int! = 10) {
  searchSuggestions(prefix: $prefix, first: $first) {
    text kind product { sku } category { slug }
  }
}
"""


def gid(pk: int | None) -> str:
    return str(relay.GlobalID("Product", str(pk)))


async def names(gql: GraphQLClient, q: str, **extra: Any) -> list[str]:
    data = await gql(SEARCH, {"q": q, **extra})
    edges = data["products"]["edges"]
    assert data["products"]["totalCount"] == len(edges)
    return [e["node"]["name"] for e in edges]


async def _noise(session: AsyncSession, n: int = 6) -> None:
    # Unrelated products, so that term statistics resemble a real catalogue.
    for i in range(n):
        await make_product(session, f"收纳盒 {i}", description="家居 日用 整理", commit=False)
    await session.commit()


async def test_name_match_outranks_description_match(gql: GraphQLClient, session: AsyncSession):
    await _noise(session)
    in_body = await make_product(
        session, "头戴式耳麦", description="兼容各种蓝牙设备的有线耳麦", sku="BODY-1"
    )
    in_title = await make_product(session, "蓝牙音箱", description="户外便携", sku="TITLE-1")
    # Created last and matching only in the body: insertion order cannot explain the ranking.
    in_body_2 = await make_product(
        session, "充电线", description="蓝牙 蓝牙 蓝牙 适配器说明", sku="BODY-2"
    )
    data = await gql(SEARCH, {"q": "蓝牙"})
    ids = [e["node"]["id"] for e in data["products"]["edges"]]
    assert ids[0] == gid(in_title.id)
    assert set(ids) == {gid(in_title.id), gid(in_body.id), gid(in_body_2.id)}


async def test_a_sku_is_found_by_each_of_its_parts(gql: GraphQLClient, session: AsyncSession):
    await _noise(session, 3)
    await make_product(session, "无线鼠标", sku="ZX-9031")
    await make_product(session, "无线键盘", sku="ZX-7700")
    for query in ("9031", "zx-9031", "ZX 9031"):
        assert await names(gql, query) == ["无线鼠标"], query
    assert sorted(await names(gql, "zx")) == ["无线键盘", "无线鼠标"]


async def test_cjk_substrings_phrases_and_and(gql: GraphQLClient, session: AsyncSession):
    await _noise(session, 3)
    await make_product(session, "蓝牙耳机", brand="漫步者")
    await make_product(session, "机耳饰品")
    await make_product(session, "Sony WH-1000XM5 无线降噪耳机", brand="Sony")

    assert sorted(await names(gql, "耳机")) == sorted(["蓝牙耳机", "Sony WH-1000XM5 无线降噪耳机"])
    assert await names(gql, "牙耳") == ["蓝牙耳机"]
    # A CJK run is a phrase: its characters in order, next to each other.
    assert await names(gql, "耳蓝") == []
    assert await names(gql, "机耳") == ["机耳饰品"]
    # Terms are ANDed, in any order, across name and brand.
    assert await names(gql, "耳机 漫步者") == ["蓝牙耳机"]
    assert await names(gql, "sony 耳机") == ["Sony WH-1000XM5 无线降噪耳机"]
    assert await names(gql, "SONY 蓝牙") == []
    assert await names(gql, "wh-1000xm5") == ["Sony WH-1000XM5 无线降噪耳机"]
    assert await names(gql, "sony耳机") == ["Sony WH-1000XM5 无线降噪耳机"]
    assert await names(gql, "  ") != []  # blank search is no search: everything


async def test_fts_syntax_in_input_is_harmless(gql: GraphQLClient, session: AsyncSession):
    await make_product(session, "蓝牙耳机", description="NEAR 降噪 OR 通话")
    await make_product(session, "智能手机")
    for text in ['"', "*", "OR", "NEAR(", '"蓝牙', "蓝牙*", "-", "'", ":*", "\\", "^", "(", ")"]:
        body = await gql.execute(SEARCH, {"q": text})
        assert "errors" not in body, (text, body)
    for text in ['"', "*", "-", "'", ":*", "\\", "(", "))", "!!!", "&|<->"]:
        assert await names(gql, text) == [], text
    # Operators are plain words: "OR" must itself occur, it does not widen the query.
    assert await names(gql, "手机 OR 耳机") == []
    assert await names(gql, "耳机 OR") == ["蓝牙耳机"]
    assert await names(gql, 'NEAR(蓝牙 "降噪")') == ["蓝牙耳机"]
    assert await names(gql, "蓝牙* 'x' & !") == []
    assert await names(gql, '"蓝牙" AND') == []


async def test_search_combines_with_filters(gql: GraphQLClient, session: AsyncSession):
    audio = await make_category(session, "影音")
    await make_product(session, "蓝牙耳机", price="199.00", category=audio)
    await make_product(session, "蓝牙音箱", price="599.00", category=audio)
    await make_product(session, "蓝牙鼠标", price="99.00")
    data = await gql(
        """query($category: ID!) {
             products(first: 10, filter: {search: "蓝牙", category: $category, priceMax: "300"}) {
               edges { node { name } } } }""",
        {"category": str(relay.GlobalID("Category", str(audio.id)))},
    )
    assert [e["node"]["name"] for e in data["products"]["edges"]] == ["蓝牙耳机"]
    assert sorted(await names(gql, "蓝牙")) == sorted(["蓝牙耳机", "蓝牙音箱", "蓝牙鼠标"])
    data = await gql(
        """{ products(first: 10, filter: {search: "蓝牙"}, sort: {field: PRICE}) {
               edges { node { name } } } }"""
    )
    assert [e["node"]["name"] for e in data["products"]["edges"]] == [
        "蓝牙鼠标",
        "蓝牙耳机",
        "蓝牙音箱",
    ]


async def test_search_suggestions(gql: GraphQLClient, session: AsyncSession):
    await make_category(session, "Sound 音响", slug="sound")
    await make_category(session, "蓝牙配件", slug="bt-accessories")
    await make_product(session, "Sony WH-1000XM5 降噪耳机", sku="SONY-1", brand="Sony")
    await make_product(session, "Sony SRS-XB13 蓝牙音箱", sku="SONY-2", brand="Sony")
    await make_product(session, "Sonos Era 100", sku="SONOS-1", brand="Sonos")
    await make_product(session, "Sonos Roam 旧款", sku="SONOS-OLD", brand="Sonos", is_active=False)
    await make_product(session, "普通耳机", sku="PLAIN-1", description="sony 兼容")
    await make_product(session, "蓝牙耳机", sku="BT-1", brand="漫步者")

    data = await gql(SUGGEST, {"prefix": "so"})
    got = [(s["text"], s["kind"]) for s in data["searchSuggestions"]]
    # Each text once; archived products and description-only matches are not suggested.
    assert len({t.casefold() for t, _ in got}) == len(got)
    assert set(got) == {
        ("Sound 音响", "CATEGORY"),
        ("Sony", "BRAND"),
        ("Sonos", "BRAND"),
        ("Sony WH-1000XM5 降噪耳机", "PRODUCT"),
        ("Sony SRS-XB13 蓝牙音箱", "PRODUCT"),
        ("Sonos Era 100", "PRODUCT"),
    }
    # Broad completions (category, brands) first; Sony has more matching products than Sonos.
    assert got[:3] == [("Sound 音响", "CATEGORY"), ("Sony", "BRAND"), ("Sonos", "BRAND")]
    products = {s["text"]: s["product"] for s in data["searchSuggestions"] if s["product"]}
    assert products["Sonos Era 100"] == {"sku": "SONOS-1"}

    data = await gql(SUGGEST, {"prefix": "sony wh", "first": 5})
    assert [(s["text"], s["kind"]) for s in data["searchSuggestions"]] == [
        ("Sony WH-1000XM5 降噪耳机", "PRODUCT")
    ]
    data = await gql(SUGGEST, {"prefix": "蓝牙"})
    got = [(s["text"], s["kind"]) for s in data["searchSuggestions"]]
    # Exact prefixes before names that only contain the words later on.
    assert got[:2] == [("蓝牙配件", "CATEGORY"), ("蓝牙耳机", "PRODUCT")]
    assert set(got[2:]) == {("Sony SRS-XB13 蓝牙音箱", "PRODUCT")}
    assert data["searchSuggestions"][0]["category"] == {"slug": "bt-accessories"}

    data = await gql(SUGGEST, {"prefix": "so", "first": 2})
    assert len(data["searchSuggestions"]) == 2
    for prefix in ('"', "*", "NEAR(", "%", "_", "   "):
        data = await gql(SUGGEST, {"prefix": prefix})
        assert data["searchSuggestions"] == [], prefix
    for first in (0, 51):
        body = await gql.execute(SUGGEST, {"prefix": "so", "first": first})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_query_terms_and_prefix_matching() -> None:
    # Pure helpers behind search and suggestions (no database).
    assert query_terms('蓝牙耳机 "OR" NEAR(降噪*') == ["蓝牙耳机", "or", "near", "降噪"]
    assert query_terms("Sony耳机WH1000") == ["sony", "耳机", "wh1000"]
    assert query_terms("!!! -- **") == []
    assert matches_prefix("Sony WH-1000XM5 降噪耳机", "sony wh")
    assert matches_prefix("Sony WH-1000XM5 降噪耳机", "耳机")
    assert not matches_prefix("Sony WH-1000XM5 降噪耳机", "ony")
    assert not matches_prefix("Sony WH-1000XM5 降噪耳机", "wh sonyx")
