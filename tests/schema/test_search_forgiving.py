"""Search that forgives: pinyin and initials, typos, synonyms, and the synonym groups' API, on
SQLite and PostgreSQL.

One server per backend serves a small catalogue whose right answers are known: Chinese names
among similar distractors (蓝牙耳机 next to 蓝牙音箱 and 有线耳麦), English names with
near-miss neighbours (Headphones next to a Headphone Stand, Samsung next to Samson). Tests
that change synonyms use terms of their own, so they leave the others' answers alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from server import migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import StaffRole
from server.plugins import load_plugins
from server.services import search, synonyms
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.server import LiveServer

SEARCH = """
query($q: String!, $sort: ProductSort) {
  products(first: 20, filter: {search: $q}, sort: $sort) {
    totalCount edges { node { name } } }
}
"""
SUGGEST = """
query($prefix: String!) { searchSuggestions(prefix: $prefix, first: 10) { text kind } }
"""
GROUP_FIELDS = "id terms createdAt updatedAt"
CREATE = f"""
mutation($terms: [String!]!) {{ createSynonymGroup(input: {{terms: $terms}}) {{
  __typename
  ... on CreateSynonymGroupSuccess {{ synonymGroup {{ {GROUP_FIELDS} }} }}
  ... on Error {{ code message field }} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $terms: [String!]!) {{ updateSynonymGroup(input: {{id: $id, terms: $terms}}) {{
  __typename
  ... on UpdateSynonymGroupSuccess {{ synonymGroup {{ {GROUP_FIELDS} }} }}
  ... on Error {{ code message field }} }} }}
"""
DELETE = """
mutation($id: ID!) { deleteSynonymGroup(input: {id: $id}) {
  __typename
  ... on DeleteSynonymGroupSuccess { deletedId terms }
  ... on Error { code message field } } }
"""
GROUPS = f"""
query($term: String) {{ synonymGroups(first: 50, filter: {{term: $term}}) {{
  totalCount nodes {{ {GROUP_FIELDS} }} }} }}
"""

HEADPHONES = "Sony WH-1000XM5 Wireless Headphones"
STAND = "Headphone Stand Aluminium"
SAMSUNG = "Samsung Galaxy S24 Smartphone"
SAMSON = "Samson Q2U Microphone"
BT_EARPHONES = "漫步者 蓝牙耳机 W820NB"
BT_SPEAKER = "小米 蓝牙音箱"
HEADSET = "有线耳麦 头戴式"
PHONE = "Redmi Note 13 智能手机"
SOFA = "布艺沙发 三人位"
ERJI_CABLE = "AUX Audio Cable"

CATALOGUE: list[dict[str, Any]] = [
    {"name": HEADPHONES, "brand": "Sony", "description": "noise cancelling, 30 h battery"},
    {"name": STAND, "brand": "Satechi", "description": "desk stand"},
    {"name": SAMSUNG, "brand": "Samsung", "description": "6.2 inch, 256 GB"},
    {"name": SAMSON, "brand": "Samson", "description": "USB dynamic microphone"},
    {"name": BT_EARPHONES, "brand": "漫步者", "description": "主动降噪 头戴"},
    {"name": BT_SPEAKER, "brand": "小米", "description": "便携 户外"},
    {"name": HEADSET, "brand": "西伯利亚", "description": "游戏 电竞"},
    {"name": PHONE, "brand": "小米", "description": "5G 全网通"},
    {"name": SOFA, "brand": "林氏", "description": "客厅 家具"},
    # "erji" only in its description: the text matches exactly, in the body.
    {"name": ERJI_CABLE, "brand": "Ugreen", "description": "3.5 mm, for erji and speakers"},
]


@dataclass(frozen=True)
class Shop:
    url: str
    tokens: dict[str, str]


async def _seed(database_url: str, settings: Settings) -> dict[str, str]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        for i, product in enumerate(CATALOGUE):
            await make_product(session, sku=f"FORGIVE-{i}", commit=False, **product)
        await session.commit()
        await synonyms.create_group(session, ["耳机", "headphones", "earphones"])
        await synonyms.create_group(session, ["手机", "Mobile Phone", "cellphone"])
        await session.commit()
        admin = await make_staff(session, role=StaffRole.CATALOG)
        support = await make_staff(session, role=StaffRole.SUPPORT)
        customer = await make_customer(session)
        tokens = {
            "catalog": token_for(settings, admin),
            "support": token_for(settings, support),
            "customer": token_for(settings, customer),
        }
    await engine.dispose()
    return tokens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """One server per backend for the module, over the catalogue above."""
    drop: str | None = None
    admin: str | None = None
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("forgiving") / "shop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database_url = f"sqlite+aiosqlite:///{path}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        if admin is None:
            pytest.skip("no PostgreSQL binaries on this machine")
        template = request.getfixturevalue("postgres_template")
        drop = f"shopgraph_forgiving_{os.getpid()}"
        plain = admin.replace("postgresql+asyncpg://", "postgresql://")

        async def create() -> None:
            conn = await asyncpg.connect(plain)
            await conn.execute(f'DROP DATABASE IF EXISTS "{drop}"')
            await conn.execute(f'CREATE DATABASE "{drop}" TEMPLATE "{template}"')
            await conn.close()

        migrate.run_async(create)
        database_url = f"{admin.rpartition('/')[0]}/{drop}"
    settings = Settings(database_url=database_url, env="test", cost_bucket_size=1_000_000)
    tokens = migrate.run_async(lambda: _seed(database_url, settings))
    server = LiveServer(create_app(settings, load_plugins(settings))).start()
    try:
        yield Shop(server.url, tokens)
    finally:
        server.stop()
        if drop is not None and admin is not None:
            plain = admin.replace("postgresql+asyncpg://", "postgresql://")

            async def remove() -> None:
                conn = await asyncpg.connect(plain)
                await conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
                await conn.close()

            migrate.run_async(remove)


@pytest.fixture
async def gql(shop: Shop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


async def names(gql: GraphQLClient, q: str) -> list[str]:
    data = await gql(SEARCH, {"q": q})
    edges = data["products"]["edges"]
    assert data["products"]["totalCount"] == len(edges)
    return [e["node"]["name"] for e in edges]


# ---- pinyin and initials ---------------------------------------------------------------------


async def test_pinyin_and_initials_find_the_chinese_name(gql: GraphQLClient) -> None:
    # 耳麦 (er mai: em) and 蓝牙音箱 (lanya yinxiang: ly yx) are the near misses.
    assert (await names(gql, "erji"))[-1] == BT_EARPHONES
    assert await names(gql, "ej") == [BT_EARPHONES]
    assert await names(gql, "lanya erji") == [BT_EARPHONES]
    assert await names(gql, "LanYa ErJi") == [BT_EARPHONES]
    assert await names(gql, "ly ej") == [BT_EARPHONES]
    assert await names(gql, "lanyaerji") == [BT_EARPHONES]
    assert sorted(await names(gql, "lanya")) == sorted([BT_EARPHONES, BT_SPEAKER])
    assert await names(gql, "erma") == [HEADSET]
    # Pinyin and the real text together: both terms must match.
    assert await names(gql, "manbuzhe erji") == [BT_EARPHONES]
    assert await names(gql, "xiaomi lanya") == [BT_SPEAKER]
    assert await names(gql, "xiaomi erji") == []


async def test_a_match_of_the_real_text_ranks_above_a_pinyin_match(gql: GraphQLClient) -> None:
    # The cable has "erji" once in a long description; 蓝牙耳机 only in its pinyin.
    assert await names(gql, "erji") == [ERJI_CABLE, BT_EARPHONES]
    for direction in ("ASC", "DESC"):
        data = await gql(
            SEARCH, {"q": "erji", "sort": {"field": "RELEVANCE", "direction": direction}}
        )
        found = [e["node"]["name"] for e in data["products"]["edges"]]
        expected = [ERJI_CABLE, BT_EARPHONES]
        assert found == (expected if direction == "DESC" else expected[::-1])


async def test_suggestions_complete_pinyin(gql: GraphQLClient) -> None:
    data = await gql(SUGGEST, {"prefix": "lany"})
    products = {s["text"] for s in data["searchSuggestions"] if s["kind"] == "PRODUCT"}
    assert products == {BT_EARPHONES, BT_SPEAKER}
    data = await gql(SUGGEST, {"prefix": "lanya er"})
    assert [s["text"] for s in data["searchSuggestions"]] == [BT_EARPHONES]


def test_pinyin_index_text() -> None:
    text = search.pinyin_text("蓝牙耳机", None).split()
    assert {"lanya", "erji", "lanyaerji", "ly", "ej", "lyej", "lan"} <= set(text)
    # Initials of one character are not words of the index: "e" would match too much.
    assert "e" not in text and "l" not in text
    # pypinyin's default reading, with its phrase dictionary for heteronyms.
    assert "yinhang" in search.pinyin_text("银行").split()
    assert "chongqing" in search.pinyin_text("重庆").split()
    assert search.pinyin_text("Sony WH-1000XM5") == ""


# ---- typos ---------------------------------------------------------------------------------------


async def test_typos_find_the_word_they_miss(gql: GraphQLClient) -> None:
    assert (await names(gql, "hedphones"))[0] == HEADPHONES
    assert (await names(gql, "headphnoes"))[0] == HEADPHONES
    # Samson shares as many trigrams with "samsnug"; the letters say Samsung.
    assert await names(gql, "samsnug") == [SAMSUNG]
    assert await names(gql, "samsnug galaxy") == [SAMSUNG]
    assert await names(gql, "Sony wirless") == [HEADPHONES]


async def test_a_word_the_catalogue_uses_is_not_corrected(gql: GraphQLClient) -> None:
    assert await names(gql, "samson") == [SAMSON]
    assert await names(gql, "stand") == [STAND]


async def test_nonsense_finds_nothing(gql: GraphQLClient) -> None:
    for text in ("xqzvkwj", "zzzzzzzz", "qwertyuiop", "bnmvcx lkjhg", "phonez xqzvkwj"):
        assert await names(gql, text) == [], text


def test_similarity_and_corrections() -> None:
    assert search.similarity("samsung", "samsung") == 1.0
    assert search.similarity("samsnug", "samsung") == pytest.approx(4 / 12)
    assert search.best_corrections("samsnug", ["samson", "samsung", "sony"]) == ("samsung",)
    assert search.best_corrections("xqzvkwj", ["samson", "samsung", "sony"]) == ()


# ---- synonyms --------------------------------------------------------------------------------


async def test_synonyms_match_any_term_of_their_group(gql: GraphQLClient) -> None:
    # An exact match first, then the synonym's.
    assert await names(gql, "headphones") == [HEADPHONES, BT_EARPHONES]
    assert await names(gql, "耳机") == [BT_EARPHONES, HEADPHONES]
    assert sorted(await names(gql, "earphones")) == sorted([HEADPHONES, BT_EARPHONES])
    assert await names(gql, "cellphone") == [PHONE]
    assert await names(gql, "mobile phone") == [PHONE]
    assert await names(gql, "Mobile-Phone 5g") == [PHONE]
    # Inside a run of Chinese characters: 蓝牙 + (耳机 or headphones or earphones).
    assert await names(gql, "蓝牙耳机") == [BT_EARPHONES]
    assert await names(gql, "sony 耳机") == [HEADPHONES]


async def test_synonym_changes_count_at_once_and_leave_no_stale_answer(
    gql: GraphQLClient, shop: Shop
) -> None:
    # Anonymous search answers are cached: the second one is a HIT.
    first = await gql.post(SEARCH, {"q": "couch"})
    assert first.json()["data"]["products"]["edges"] == []
    assert (await gql.post(SEARCH, {"q": "couch"})).headers["x-cache"] == "HIT"
    staff = gql.as_(shop.tokens["catalog"])
    made = (await staff(CREATE, {"terms": ["沙发", "couch", "Sofa"]}))["createSynonymGroup"]
    assert made["__typename"] == "CreateSynonymGroupSuccess", made
    group = made["synonymGroup"]
    assert group["terms"] == ["沙发", "couch", "sofa"]
    assert await names(gql, "couch") == [SOFA]

    updated = (await staff(UPDATE, {"id": group["id"], "terms": ["沙发", "settee"]}))[
        "updateSynonymGroup"
    ]
    assert updated["synonymGroup"]["terms"] == ["沙发", "settee"]
    assert updated["synonymGroup"]["updatedAt"] is not None
    assert await names(gql, "couch") == []
    assert await names(gql, "settee") == [SOFA]

    deleted = (await staff(DELETE, {"id": group["id"]}))["deleteSynonymGroup"]
    assert deleted == {
        "__typename": "DeleteSynonymGroupSuccess",
        "deletedId": group["id"],
        "terms": ["沙发", "settee"],
    }
    assert await names(gql, "settee") == []
    again = (await staff(DELETE, {"id": group["id"]}))["deleteSynonymGroup"]
    assert again["__typename"] == "NotFoundError"


async def test_synonym_groups_are_listed_for_catalogue_staff(
    gql: GraphQLClient, shop: Shop
) -> None:
    staff = gql.as_(shop.tokens["catalog"])
    data = await staff(GROUPS, {"term": "Headphones"})
    assert [g["terms"] for g in data["synonymGroups"]["nodes"]] == [
        ["耳机", "headphones", "earphones"]
    ]
    data = await staff(GROUPS, {"term": None})
    terms = [g["terms"] for g in data["synonymGroups"]["nodes"]]
    assert ["耳机", "headphones", "earphones"] in terms
    assert ["手机", "mobile phone", "cellphone"] in terms
    assert data["synonymGroups"]["totalCount"] == len(terms)


@pytest.mark.parametrize("who", [None, "customer", "support"])
async def test_synonyms_need_the_catalogue_permission(
    gql: GraphQLClient, shop: Shop, who: str | None
) -> None:
    client = gql.as_(shop.tokens[who] if who else None)
    listed = await client.execute(GROUPS, {"term": None})
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    made = await client.execute(CREATE, {"terms": ["sneaker", "trainer"]})
    assert made["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Nothing was written: the term is still free.
    staff = gql.as_(shop.tokens["catalog"])
    assert (await staff(GROUPS, {"term": "sneaker"}))["synonymGroups"]["nodes"] == []


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ([], "VALIDATION_FAILED"),
        (["only"], "VALIDATION_FAILED"),
        (["Same", "same", " SAME "], "VALIDATION_FAILED"),
        (["ok", "!!!"], "VALIDATION_FAILED"),
        (["ok", "x" * 65], "VALIDATION_FAILED"),
        (["ok", "one two three four five"], "VALIDATION_FAILED"),
        ([f"term{i}" for i in range(21)], "VALIDATION_FAILED"),
        (["trainers", "Earphones"], "CONFLICT"),
    ],
)
async def test_bad_synonym_groups_are_refused_and_change_nothing(
    gql: GraphQLClient, shop: Shop, terms: list[str], code: str
) -> None:
    staff = gql.as_(shop.tokens["catalog"])
    before = await staff(GROUPS, {"term": None})
    made = (await staff(CREATE, {"terms": terms}))["createSynonymGroup"]
    assert made["code"] == code, made
    assert made["field"] == "terms"
    assert await staff(GROUPS, {"term": None}) == before


async def test_bad_updates_are_refused_and_change_nothing(gql: GraphQLClient, shop: Shop) -> None:
    staff = gql.as_(shop.tokens["catalog"])
    group = (await staff(GROUPS, {"term": "cellphone"}))["synonymGroups"]["nodes"][0]
    taken = (await staff(UPDATE, {"id": group["id"], "terms": ["手机", "耳机"]}))[
        "updateSynonymGroup"
    ]
    assert taken["__typename"] == "ConflictError"
    single = (await staff(UPDATE, {"id": group["id"], "terms": ["手机"]}))["updateSynonymGroup"]
    assert single["__typename"] == "ValidationError"
    missing = (await staff(UPDATE, {"id": "U3lub255bUdyb3VwOjk5OTk5", "terms": ["a1", "b2"]}))[
        "updateSynonymGroup"
    ]
    assert missing["__typename"] == "NotFoundError"
    # Its own terms may stay (and be reordered): only other groups' terms are taken.
    same = (await staff(UPDATE, {"id": group["id"], "terms": group["terms"]}))["updateSynonymGroup"]
    assert same["synonymGroup"]["terms"] == group["terms"]
    assert await names(gql, "cellphone") == [PHONE]


# ---- input stays data --------------------------------------------------------------------------


async def test_query_syntax_stays_text_on_every_path(gql: GraphQLClient) -> None:
    for text in [
        '"erji',
        "erji*",
        "ej:*",
        "NEAR(ej",
        "hedphones'",
        '"samsnug"',
        "耳机 OR",
        "(ly) & ej",
    ]:
        body = await gql.execute(SEARCH, {"q": text})
        assert "errors" not in body, (text, body)
    assert await names(gql, '"erji*') == [ERJI_CABLE, BT_EARPHONES]
    assert await names(gql, "(ly) & ej") == [BT_EARPHONES]
    assert (await names(gql, "hedphones'"))[0] == HEADPHONES
    # OR is a word that must occur, even beside a synonym or a pinyin term.
    assert await names(gql, "erji OR samsung") == []


def test_plan_units_use_the_longest_synonym_term() -> None:
    groups = {"mobile phone": ["手机"], "phone": ["电话"], "耳机": ["headphones"]}
    units = search.plan_units(["mobile", "phone", "case"], groups, {"case": ("cases",)})
    assert units == (
        search.Unit(("mobile", "phone"), (("手机",),)),
        search.Unit(("case",), (), ("cases",)),
    )
    (unit,) = search.plan_units(["蓝牙耳机"], groups, {})
    assert unit.synonyms == (("蓝牙", "headphones"),)
