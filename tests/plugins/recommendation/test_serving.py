"""``recommendations`` over HTTP on a shop whose answers are known by hand
(tests/plugins/recommendation/shop.py), on SQLite and PostgreSQL: the session profile, cold
start, every business rule, pins, opt-out, explain, experiments and a fixed number of
statements per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import (
    BuildStatus,
    RecommendationBuild,
    RecommendationContext,
    RecommendationImpression,
)
from plugins.recommendation.service import serving
from plugins.recommendation.service.hybrid import Ask
from plugins.recommendation.service.settings import RecommendationSettings
from server.db import create_engine, session_factory
from server.models import (
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    StaffRole,
    StockLevel,
    utcnow,
)
from server.services import experiments
from tests.plugins.recommendation.shop import seed
from tests.support.accounts import token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

BLENDS = '{"popular-only": {"repeat": 0, "bought_with": 0, "similar": 0, "popular": 1, "new": 0}}'
RECOMMEND = """query($context: RecommendationContext!, $productId: ID, $categoryId: ID,
                     $sessionId: String, $first: Int! = 10, $explain: Boolean! = false) {
  recommendations(context: $context, productId: $productId, categoryId: $categoryId,
                  sessionId: $sessionId, first: $first, explain: $explain) {
    id context blend personalised
    items { product { id name } score position component
            reason { component text intervalDays product { name } category { name } } }
    filtered { rule product { name } }
  }
}"""
LEAN = """query($sessionId: String, $first: Int!) {
  recommendations(context: HOME, sessionId: $sessionId, first: $first) {
    id items { product { id name } score position component reason { text } } } }"""
VIEW = """mutation($input: RecordEventInput!) { recordEvent(input: $input) { __typename } }"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOPGRAPH_RECOMMENDATION_BLENDS", BLENDS)
        with module_shop(request, tmp_path_factory, seed) as built:
            yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


@asynccontextmanager
async def database(shop: ModuleShop) -> AsyncIterator[AsyncSession]:
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


def customer(gql: GraphQLClient, shop: ModuleShop, name: str) -> GraphQLClient:
    return as_(gql, shop, shop.seeded["customers"][name])


def admin(gql: GraphQLClient, shop: ModuleShop) -> GraphQLClient:
    return as_(gql, shop, shop.seeded["staff"][StaffRole.ADMIN])


def pid(shop: ModuleShop, key: str) -> str:
    return gid("Product", shop.seeded["products"][key])


async def recommend(client: GraphQLClient, **variables: Any) -> dict[str, Any]:
    variables.setdefault("context", "HOME")
    answer: dict[str, Any] = (await client(RECOMMEND, variables))["recommendations"]
    return answer


def names(answer: dict[str, Any]) -> list[str]:
    return [i["product"]["name"] for i in answer["items"]]


def item(answer: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in answer["items"] if i["product"]["name"] == name)


def removed(answer: dict[str, Any]) -> dict[str, str]:
    return {f["product"]["name"]: f["rule"] for f in answer["filtered"] or []}


async def view(client: GraphQLClient, shop: ModuleShop, key: str, session_id: str) -> None:
    data = await client(
        VIEW, {"input": {"kind": "VIEW", "productId": pid(shop, key), "sessionId": session_id}}
    )
    assert data["recordEvent"]["__typename"] == "RecordEventSuccess"


# --- the page of an anonymous visitor ---------------------------------------------------------


async def test_a_new_visitor_gets_the_shops_popular_page_after_the_rules(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    answer = await recommend(admin(gql, shop), first=4, explain=True)
    # 售罄 has no stock and 下架 is archived; at most half of a page of 4 from 零食.
    assert names(answer) == ["薯片", "饼干", "咖啡", "音箱"]
    assert [i["position"] for i in answer["items"]] == [1, 2, 3, 4]
    assert {i["component"] for i in answer["items"]} == {"POPULAR"}
    assert item(answer, "薯片")["reason"]["text"] == "popular in the shop this week"
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert removed(answer) == {
        "售罄": "OUT_OF_STOCK",
        "下架": "INACTIVE",
        "坚果": "DIVERSITY",
        "巧克力": "DIVERSITY",
    }
    assert answer["context"] == "HOME" and answer["blend"] == "default"
    assert answer["personalised"] is True and len(answer["id"]) == 32
    # Each answer is recorded, with what it showed.
    async with database(shop) as session:
        row = await session.get(RecommendationImpression, answer["id"])
        assert row is not None and row.customer_id is None
        assert [(i["position"], i["component"]) for i in row.items] == [
            (1, "POPULAR"),
            (2, "POPULAR"),
            (3, "POPULAR"),
            (4, "POPULAR"),
        ]


async def test_a_view_changes_the_next_answer_at_once(gql: GraphQLClient, shop: ModuleShop) -> None:
    before = await recommend(gql, sessionId="rec-viewer", first=6)
    assert "花瓶" not in names(before)
    await view(gql, shop, "lamp", "rec-viewer")
    after = await recommend(gql, sessionId="rec-viewer", first=6)
    # 台灯's neighbours come first: 花瓶 (CF 0.9), then 地毯 (content 0.6).
    assert names(after)[:2] == ["花瓶", "地毯"]
    vase = item(after, "花瓶")
    assert vase["component"] == "SIMILAR"
    assert vase["reason"]["text"] == "similar to 台灯 you viewed"
    assert vase["reason"]["product"]["name"] == "台灯"
    # Another session is not this visitor.
    assert "花瓶" not in names(await recommend(gql, sessionId="rec-someone-else", first=6))


async def test_a_search_brings_what_the_core_search_finds(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    search = {"kind": "SEARCH", "query": "台灯", "sessionId": "rec-searcher", "resultCount": 1}
    await gql(VIEW, {"input": search})
    answer = await recommend(gql, sessionId="rec-searcher", first=6)
    vase = item(answer, "花瓶")
    assert (vase["position"], vase["reason"]["text"]) == (1, "similar to 台灯 you searched for")


async def test_new_products_in_a_category_the_visitor_likes(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    assert "新品" not in names(await recommend(gql, sessionId="rec-digital", first=20))
    await view(gql, shop, "charger", "rec-digital")
    fresh = item(await recommend(gql, sessionId="rec-digital", first=20), "新品")
    assert fresh["component"] == "NEW"
    assert fresh["reason"]["text"] == "new in a category you like"
    assert fresh["reason"]["category"]["name"] == "数码"


# --- a customer's history -----------------------------------------------------------------------


async def test_a_consumable_comes_back_on_its_cycle_and_a_durable_good_does_not(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    # ann bought 牛奶 (every 7 days) 10 days ago: due again; 耳机 (durable) 5 days ago.
    ann = await recommend(customer(gql, shop, "ann"), first=10)
    milk = item(ann, "牛奶")
    assert milk["component"] == "REPEAT"
    assert milk["reason"]["text"] == "you buy this about every 7 days"
    assert milk["reason"]["intervalDays"] == 7.0
    assert "耳机" not in names(ann)
    assert item(ann, "咖啡")["reason"]["text"] == "often bought with 牛奶"
    # bob bought 牛奶 yesterday: not due yet.
    bob = await recommend(customer(gql, shop, "bob"), first=10)
    assert "牛奶" not in names(bob) and "咖啡" in names(bob)
    # The rule that removed them, as staff would see it.
    seeded = shop.seeded
    async with database(shop) as session:
        for who, key in (("ann", "phone"), ("bob", "milk")):
            answer = await serving.recommend(
                session,
                customer_id=seeded["customers"][who].id,
                session_id=None,
                ask=Ask(RecommendationContext.HOME, utcnow()),
                first=10,
                settings=RecommendationSettings(),
            )
            rules = {f.product_id: f.rule for f in answer.filtered}
            assert rules[seeded["products"][key]] is serving.FilterRule.RECENTLY_BOUGHT
        await session.rollback()


async def test_the_product_page_and_the_cart(gql: GraphQLClient, shop: ModuleShop) -> None:
    page = await recommend(gql, context="PRODUCT", productId=pid(shop, "lamp"), first=5)
    assert names(page)[:2] == ["花瓶", "地毯"] and "台灯" not in names(page)
    assert item(page, "花瓶")["reason"]["text"] == "similar to 台灯"
    # dan has 耳机 in his cart: what goes with it, never what is in it.
    cart = await recommend(customer(gql, shop, "dan"), context="CART", first=5)
    charger = item(cart, "充电器")
    assert (charger["position"], charger["component"]) == (1, "BOUGHT_WITH")
    assert charger["reason"]["text"] == "often bought with 耳机"
    assert "耳机" not in names(cart)
    # A category page leans to its category: what is popular there.
    category = gid("Category", shop.seeded["categories"]["home"])
    lamp = item(await recommend(gql, context="CATEGORY", categoryId=category), "台灯")
    assert lamp["component"] == "POPULAR"
    assert lamp["reason"]["text"] == "popular in 家居 this week"
    assert lamp["reason"]["category"]["name"] == "家居"


# --- the operator's rules and stock ---------------------------------------------------------------

PIN = """mutation($input: PinRecommendationInput!) { pinRecommendation(input: $input) {
  __typename
  ... on PinRecommendationSuccess { rule { id kind context position note product { name } } }
  ... on Error { code field message } } }"""
EXCLUDE = """mutation($input: ExcludeFromRecommendationsInput!) {
  excludeFromRecommendations(input: $input) {
  __typename
  ... on ExcludeFromRecommendationsSuccess { rule { id kind context product { name } } }
  ... on Error { code field message } } }"""
REMOVE = """mutation($id: ID!) { removeRecommendationRule(input: {id: $id}) {
  __typename ... on RemoveRecommendationRuleSuccess { removedId } ... on Error { code field } } }"""
RULES = """query($context: RecommendationContext) { recommendationMerchandising(context: $context) {
  edges { node { id kind context position product { name } } } } }"""


async def test_pins_take_their_position_and_exclusions_leave(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = admin(gql, shop)
    pinned = (await staff(PIN, {"input": {"productId": pid(shop, "tea"), "position": 2}}))[
        "pinRecommendation"
    ]
    rule = pinned["rule"]
    assert (rule["kind"], rule["context"], rule["position"]) == ("PIN", None, 2)
    excluded = (await staff(EXCLUDE, {"input": {"productId": pid(shop, "s1"), "context": "HOME"}}))[
        "excludeFromRecommendations"
    ]["rule"]
    try:
        answer = await recommend(staff, first=4, explain=True)
        # Three ranked slots (at most one from 零食) around 茶 at 2; 薯片 excluded.
        assert names(answer) == ["饼干", "茶", "咖啡", "音箱"]
        tea = item(answer, "茶")
        assert (tea["position"], tea["component"]) == (2, "PINNED")
        assert tea["reason"]["text"] == "chosen by the shop"
        assert removed(answer)["薯片"] == "EXCLUDED"
        # The exclusion is HOME's: a category page still shows 薯片.
        snacks = gid("Category", shop.seeded["categories"]["snacks"])
        assert "薯片" in names(await recommend(gql, context="CATEGORY", categoryId=snacks, first=4))
        listed = (await staff(RULES, {"context": "HOME"}))["recommendationMerchandising"]
        assert {e["node"]["id"] for e in listed["edges"]} == {rule["id"], excluded["id"]}
        # Typed errors, and nothing changed by them.
        refused = [
            ({"productId": pid(shop, "tea"), "position": 0}, "VALIDATION_FAILED", "position"),
            ({"productId": pid(shop, "tea"), "position": 101}, "VALIDATION_FAILED", "position"),
            ({"productId": gid("Product", 987654), "position": 1}, "NOT_FOUND", "productId"),
            ({"productId": "bogus", "position": 1}, "NOT_FOUND", "productId"),
            ({"productId": pid(shop, "s1"), "position": 1, "context": "HOME"}, "CONFLICT", None),
        ]
        for input_, code, field in refused:
            error = (await staff(PIN, {"input": input_}))["pinRecommendation"]
            assert (error["code"], error["field"]) == (code, field), input_
        assert len((await staff(RULES, {}))["recommendationMerchandising"]["edges"]) == 2
        # Shoppers and staff without recommendation.manage may not.
        catalog = as_(gql, shop, shop.seeded["staff"][StaffRole.CATALOG])
        for client in (gql, customer(gql, shop, "ann"), catalog):
            body = await client.execute(
                PIN, {"input": {"productId": pid(shop, "s2"), "position": 1}}
            )
            assert body["data"] is None and body["errors"]
    finally:
        for rid in (rule["id"], excluded["id"]):
            done = (await staff(REMOVE, {"id": rid}))["removeRecommendationRule"]
            assert done == {"__typename": "RemoveRecommendationRuleSuccess", "removedId": rid}
    gone = (await staff(REMOVE, {"id": rule["id"]}))["removeRecommendationRule"]
    assert (gone["code"], gone["field"]) == ("NOT_FOUND", "id")
    assert names(await recommend(gql, first=4)) == ["薯片", "饼干", "咖啡", "音箱"]


async def test_out_of_stock_leaves_the_next_answer(gql: GraphQLClient, shop: ModuleShop) -> None:
    speaker = shop.seeded["products"]["speaker"]

    async def stock(units: int) -> None:
        async with database(shop) as session:
            await session.execute(
                update(StockLevel).where(StockLevel.product_id == speaker).values(on_hand=units)
            )
            await session.commit()

    await stock(0)
    try:
        answer = await recommend(admin(gql, shop), first=4, explain=True)
        assert names(answer) == ["薯片", "饼干", "咖啡", "耳机"]
        assert removed(answer)["音箱"] == "OUT_OF_STOCK"
    finally:
        await stock(50)
    assert "音箱" in names(await recommend(gql, first=4))


# --- the shopper's choice, and who sees what ----------------------------------------------------

OPT = """mutation($enabled: Boolean!) { setRecommendationPersonalisation(input: {enabled: $enabled}) {
  __typename ... on SetRecommendationPersonalisationSuccess { enabled } } }"""
ME = "{ me { recommendationsPersonalised } }"


async def test_a_customer_who_opts_out_gets_the_shops_answers(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    cai = customer(gql, shop, "cai")
    assert (await cai(ME))["me"]["recommendationsPersonalised"] is True
    assert (await recommend(cai, first=4))["items"][0]["component"] == "REPEAT"
    assert (await cai(OPT, {"enabled": False}))["setRecommendationPersonalisation"][
        "enabled"
    ] is False
    try:
        assert (await cai(ME))["me"]["recommendationsPersonalised"] is False
        answer = await recommend(cai, first=4)
        assert answer["personalised"] is False
        assert names(answer) == ["薯片", "饼干", "咖啡", "音箱"]
        # Twice off is off.
        await cai(OPT, {"enabled": False})
        assert (await cai(ME))["me"]["recommendationsPersonalised"] is False
    finally:
        assert (await cai(OPT, {"enabled": True}))["setRecommendationPersonalisation"]["enabled"]
    assert (await recommend(cai, first=4))["items"][0]["product"]["name"] == "牛奶"
    # Only a signed-in customer has the choice.
    body = await gql.execute(OPT, {"enabled": False})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_only_staff_see_what_the_rules_removed(gql: GraphQLClient, shop: ModuleShop) -> None:
    for client in (gql, customer(gql, shop, "ann")):
        assert (await recommend(client, explain=True))["filtered"] is None
    assert (await recommend(admin(gql, shop)))["filtered"] is None  # not asked
    assert (await recommend(admin(gql, shop), explain=True))["filtered"]


async def test_bad_input_is_refused(gql: GraphQLClient, shop: ModuleShop) -> None:
    for variables, field in (({"first": 101}, "first"), ({"first": -1}, "first")):
        body = await gql.execute(RECOMMEND, {"context": "HOME", **variables})
        assert body["errors"][0]["extensions"]["field"] == field
    body = await gql.execute(RECOMMEND, {"context": "HOME", "sessionId": "x" * 65})
    assert body["errors"][0]["extensions"]["field"] == "sessionId"
    # An id that names no product is answered like no product at all.
    answer = await recommend(gql, context="PRODUCT", productId="nonsense", first=4)
    assert names(answer) == ["薯片", "饼干", "咖啡", "音箱"]


# --- experiments, cold start, statements --------------------------------------------------------


async def test_an_experiment_chooses_the_blend(gql: GraphQLClient, shop: ModuleShop) -> None:
    variants = [experiments.Variant("default", 1), experiments.Variant("popular-only", 1)]
    key = RecommendationSettings().experiment_key
    async with database(shop) as session:
        await experiments.create_experiment(
            session,
            key=key,
            name="Blend",
            hypothesis="popular alone converts as well",
            variants=variants,
            primary_metric=ExperimentMetric.CONVERSION,
            min_sample_size=100,
        )
        await experiments.start_experiment(session, key)
        await session.commit()
    # A session of each variant, as the core assigns them.
    sessions = {
        v: next(
            f"rec-exp-{i}"
            for i in range(1000)
            if experiments.assign(key, variants, f"session:rec-exp-{i}") == v
        )
        for v in ("default", "popular-only")
    }
    try:
        for variant, sid in sessions.items():
            await view(gql, shop, "lamp", sid)
            answer = await recommend(gql, sessionId=sid, first=4)
            assert answer["blend"] == variant
            # Popular alone knows nothing of the view.
            assert ("花瓶" in names(answer)) is (variant == "default")
            async with database(shop) as session:
                exposure = await session.scalar(
                    select(ExperimentExposure)
                    .join(Experiment)
                    .where(Experiment.key == key, ExperimentExposure.visitor == f"session:{sid}")
                )
                assert exposure is not None and exposure.variant == variant
    finally:
        async with database(shop) as session:
            await experiments.stop_experiment(session, key)
            await session.commit()
    assert (await recommend(gql, sessionId=sessions["popular-only"]))["blend"] == "default"


async def test_cold_start_before_the_first_build(gql: GraphQLClient, shop: ModuleShop) -> None:
    async def status(value: BuildStatus) -> None:
        async with database(shop) as session:
            await session.execute(update(RecommendationBuild).values(status=value))
            await session.commit()

    await status(BuildStatus.FAILED)
    try:
        answer = await recommend(gql, sessionId="rec-cold", first=3)
        # The shop's newest products on sale and in stock, newest first, one per category.
        assert names(answer) == ["新品", "地毯", "巧克力"]
        assert {i["reason"]["text"] for i in answer["items"]} == {"new in the shop"}
        await view(gql, shop, "charger", "rec-cold")
        warm = await recommend(gql, sessionId="rec-cold", first=3)
        assert item(warm, "新品")["reason"]["text"] == "new in a category you like"
        # A customer's purchases still count: buy-again needs no build.
        assert "牛奶" in names(await recommend(customer(gql, shop, "cai"), first=3))
    finally:
        await status(BuildStatus.READY)


async def test_statements_do_not_grow_with_first(gql: GraphQLClient, shop: ModuleShop) -> None:
    # eve (two orders) has viewed 台灯 in this session and searched for 茶: every read runs.
    eve = customer(gql, shop, "eve")
    await view(gql, shop, "lamp", "rec-count")
    await eve(VIEW, {"input": {"kind": "SEARCH", "query": "茶", "resultCount": 1}})
    counts = []
    for first in (2, 10):
        with counting(shop.app) as statements:
            answer = (await eve(LEAN, {"sessionId": "rec-count", "first": first}))[
                "recommendations"
            ]
        assert len(answer["items"]) == first
        counts.append(len(statements))
    # The viewer's token, opt-out, orders, events, search, experiment, build, the hybrid's six
    # reads, pins, the candidates' facts and categories' names, the impression, the products.
    assert counts[0] == counts[1] <= 18, counts
