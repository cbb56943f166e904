"""productHealth and risingSearchTerms over HTTP, on a shop and a search log counted by hand
(tests/support/product_health.py), on SQLite and PostgreSQL: the figures, who may read them,
refused input, and a bounded number of statements."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.models import StaffRole
from server.services import search_insights
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.product_health import seed_health_shop, shop_time, write_searches
from tests.support.statements import counting

HEALTH = """query($input: ProductHealthInput) { productHealth(input: $input) {
  __typename
  ... on ProductHealth {
    from to days
    sellRate { skus sellingSkus rate categoryCount
               categories { categoryId name skus sellingSkus rate category { slug } } }
    newProducts { createdFrom products unitsSold onHand sellThrough
                  items { sku name unitsSold onHand sellThrough product { sku } } }
    slowMovers { count items { sku productName unitsSold onHand dailyUnits daysOfCover
                               variant { sku } product { sku } } }
    stockOuts { count items { sku unitsSold onHand available lastSoldAt variant { sku } } }
  }
  ... on Error { code field message }
} }"""
STOCK_VALUE = """query($input: ProductHealthInput) { productHealth(input: $input) {
  ... on ProductHealth { slowMovers { items { sku stockValue { amount currency } } } } } }"""
RISING = """query($input: RisingSearchTermsInput) { risingSearchTerms(input: $input) {
  __typename
  ... on RisingSearchTerms { from to previousFrom hasMore
      terms { query searches previousSearches growth score zeroResultSearches
              zeroResultShare unmetDemand } }
  ... on Error { code field message }
} }"""
JUNE = {"from": "2026-06-01", "to": "2026-06-07"}


def _searches() -> list[tuple[Any, str, int | None]]:
    """The search log. The period asked about is June 8-14; the one before, June 1-7.

    | text     | June 1-7                 | June 8-14                        | score     |
    | 露营帐篷 | 1 (June 7, 23:59:59)     | 10 (from June 8, 00:00), 0 found | 0.827280  |
    | 蓝牙耳机 | 10                       | 30 (some typed "蓝牙耳机 ")        | 0.607805  |
    | 手机壳   | 0                        | 3: 0, 0 and no count found       | 0.008386  |
    | 充电器   | 0                        | 2                                | -0.375933 |
    | 口罩     | 4                        | 5                                | -0.613937 |
    | 雨伞     | 20                       | 20                               | -0.400289 |
    Searches on May 31 at 23:59 and June 15 at 00:00 are outside both periods.
    """
    log: list[tuple[Any, str, int | None]] = []

    def day(d: int, hour: int = 12) -> Any:
        return shop_time(date(2026, 6, d), hour)

    log.append((shop_time(date(2026, 6, 7), 23, 59, 59), "露营帐篷", 0))
    log += [(shop_time(date(2026, 6, 8), 0), " 露营帐篷 ", 0)]
    log += [(day(9 + i % 5), "露营帐篷", 0) for i in range(9)]
    log += [(day(1 + i % 7), "蓝牙耳机", 5) for i in range(10)]
    log += [(day(8 + i % 7), "蓝牙耳机" if i % 2 else "蓝牙耳机 ", 5) for i in range(30)]
    log += [(day(10), "手机壳", 0), (day(11), "手机壳", 0), (day(12), "手机壳", None)]
    log += [(day(10), "充电器", 1), (day(11), "充电器", 1)]
    log += [(day(2), "口罩", 3)] * 4 + [(day(9), "口罩", 3)] * 5
    log += [(day(3), "雨伞", 2)] * 20 + [(day(12), "雨伞", 2)] * 20
    log += [(shop_time(date(2026, 5, 31), 23, 59), "露营帐篷", 0)] * 5
    log += [(shop_time(date(2026, 6, 15), 0), "露营帐篷", 0)] * 5
    return log


async def _seed(session: AsyncSession) -> dict[str, Any]:
    seeded = await seed_health_shop(session)
    await write_searches(session, _searches())
    staff = {
        role: await make_staff(session, role=role)
        for role in (StaffRole.ADMIN, StaffRole.ANALYST, StaffRole.CATALOG, StaffRole.SUPPORT)
    }
    return {"shop": seeded, "staff": staff, "customer": await make_customer(session)}


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


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


def analyst(gql: GraphQLClient, shop: ModuleShop) -> GraphQLClient:
    return as_(gql, shop, shop.seeded["staff"][StaffRole.ANALYST])


def _gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


async def test_product_health_matches_the_hand_count(gql: GraphQLClient, shop: ModuleShop) -> None:
    health = (await analyst(gql, shop)(HEALTH, {"input": JUNE}))["productHealth"]
    assert health["__typename"] == "ProductHealth"
    assert (health["from"], health["to"], health["days"]) == ("2026-06-01", "2026-06-07", 7)
    categories = shop.seeded["shop"].categories

    rate = health["sellRate"]
    assert (rate["skus"], rate["sellingSkus"], rate["rate"], rate["categoryCount"]) == (
        9,
        6,
        pytest.approx(6 / 9),
        3,
    )
    assert rate["categories"] == [
        {
            "categoryId": _gid("Category", categories["digital"]),
            "name": "数码",
            "skus": 2,
            "sellingSkus": 1,
            "rate": 0.5,
            "category": {"slug": "digital"},
        },
        {
            "categoryId": _gid("Category", categories["food"]),
            "name": "食品",
            "skus": 5,
            "sellingSkus": 3,
            "rate": 0.6,
            "category": {"slug": "food"},
        },
        {
            "categoryId": None,
            "name": None,
            "skus": 2,
            "sellingSkus": 2,
            "rate": 1.0,
            "category": None,
        },
    ]

    new = health["newProducts"]
    assert (new["createdFrom"], new["products"], new["unitsSold"], new["onHand"]) == (
        "2026-05-09",
        3,
        6,
        10,
    )
    assert new["sellThrough"] == pytest.approx(0.375)
    assert [
        (p["sku"], p["unitsSold"], p["onHand"], p["sellThrough"], p["product"]["sku"])
        for p in new["items"]
    ] == [
        ("NEWBAG", 3, 9, 0.25, "NEWBAG"),
        ("NEWCUP", 3, 1, 0.75, "NEWCUP"),
        ("NEWTEA", 0, 0, None, "NEWTEA"),
    ]

    slow = health["slowMovers"]
    assert slow["count"] == 7
    rows = [
        (v["sku"], v["unitsSold"], v["onHand"], v["daysOfCover"], v["variant"]["sku"])
        for v in slow["items"]
    ]
    assert rows == [
        ("TEA", 0, 7, None, "TEA"),
        ("LASTMONTH", 0, 3, None, "LASTMONTH"),
        ("CHIPS", 1, 50, pytest.approx(350.0), "CHIPS"),
        ("PHONE", 1, 5, pytest.approx(35.0), "PHONE"),
        ("NEWBAG", 3, 9, pytest.approx(21.0), "NEWBAG"),
        ("RICE-5KG", 4, 10, pytest.approx(17.5), "RICE-5KG"),
        ("NEWCUP", 3, 1, pytest.approx(7 / 3), "NEWCUP"),
    ]
    assert slow["items"][5]["dailyUnits"] == pytest.approx(4 / 7)
    assert slow["items"][5]["product"]["sku"] == "RICE"

    out = health["stockOuts"]
    assert out["count"] == 2
    assert [(v["sku"], v["unitsSold"], v["onHand"], v["available"]) for v in out["items"]] == [
        ("RICE-10KG", 2, 0, 0),
        ("PHONE", 1, 5, 0),
    ]
    assert out["items"][0]["lastSoldAt"].startswith("2026-06-03T04:00:00")


async def test_stock_value_needs_the_cost_permission(gql: GraphQLClient, shop: ModuleShop) -> None:
    admin = as_(gql, shop, shop.seeded["staff"][StaffRole.ADMIN])
    values = (await admin(STOCK_VALUE, {"input": JUNE}))["productHealth"]["slowMovers"]["items"]
    # On hand at cost: CHIPS 50 x 5.00, PHONE 5 x 1,000.00, RICE-5KG 10 x 30.00; none known
    # for the others.
    assert {v["sku"]: v["stockValue"] for v in values} == {
        "TEA": None,
        "LASTMONTH": None,
        "CHIPS": {"amount": "250.00", "currency": "CNY"},
        "PHONE": {"amount": "5000.00", "currency": "CNY"},
        "NEWBAG": None,
        "RICE-5KG": {"amount": "300.00", "currency": "CNY"},
        "NEWCUP": None,
    }
    # An analyst reads the figures but not what a unit costs (like costPrice).
    body = await analyst(gql, shop).execute(STOCK_VALUE, {"input": JUNE})
    items = body["data"]["productHealth"]["slowMovers"]["items"]
    assert [v["stockValue"] for v in items] == [None] * 7
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}


async def test_only_insight_readers_see_product_health_and_rising_terms(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = shop.seeded["staff"]
    for client in (
        gql,
        as_(gql, shop, shop.seeded["customer"]),
        as_(gql, shop, staff[StaffRole.CATALOG]),
        as_(gql, shop, staff[StaffRole.SUPPORT]),
    ):
        for query in (HEALTH, RISING):
            body = await client.execute(query)
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"from": "2026-06-08", "to": "2026-06-06"}, "from"),
        ({"from": "2026-06-09", "to": "2026-06-08"}, "from"),
        ({"from": "2025-01-01", "to": "2026-01-03"}, "from"),
        ({**JUNE, "limit": 0}, "limit"),
        ({**JUNE, "limit": 101}, "limit"),
        ({**JUNE, "newWithinDays": 0}, "newWithinDays"),
        ({**JUNE, "newWithinDays": 367}, "newWithinDays"),
    ],
)
async def test_bad_input_is_a_validation_error(
    gql: GraphQLClient, shop: ModuleShop, variables: dict[str, Any], field: str
) -> None:
    with counting(shop.app) as statements:
        answer = (await analyst(gql, shop)(HEALTH, {"input": variables}))["productHealth"]
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "ValidationError",
        "VALIDATION_FAILED",
        field,
    )
    # Refused before anything is read (the viewer's session aside).
    assert not [s for s in statements if "order_line" in s or "stock_level" in s]


async def test_statements_do_not_grow_with_the_lists(gql: GraphQLClient, shop: ModuleShop) -> None:
    client = analyst(gql, shop)
    counts = []
    for limit in (1, 20):
        with counting(shop.app) as statements:
            await client(HEALTH, {"input": {**JUNE, "limit": limit}})
        counts.append(len(statements))
    # Five aggregates, and a batch each of categories, products and variants (and the
    # viewer's session check), whatever the lists' length.
    assert counts[0] == counts[1] <= 9


# --- rising search terms ----------------------------------------------------------------------

SECOND_WEEK = {"from": "2026-06-08", "to": "2026-06-14"}


def test_the_growth_score_on_hand_computed_counts() -> None:
    # ln((c + 0.5) / (p + 0.5)) - 1.2815516 sqrt(1 / (c + 0.5) + 1 / (p + 0.5)):
    # 10 vs 1: ln 7 - 1.2815516 sqrt(1/10.5 + 1/1.5) = 1.945910 - 1.118630.
    for searches, previous, score in (
        (10, 1, 0.827280),
        (30, 10, 0.607805),
        (3, 0, 0.008386),
        (2, 0, -0.375933),
        (5, 4, -0.613937),
        (20, 20, -0.400289),
        (1, 0, -0.994153),
    ):
        assert search_insights.growth_score(searches, previous) == pytest.approx(score, abs=1e-6)
    # Three searches against none is the fewest that rises: the statement's floor.
    assert search_insights.MIN_RISING_SEARCHES == 3
    # Tiny counts are not rewarded: 3 vs 0 (a ratio of 7) scores below 30 vs 10 (about 3).
    assert search_insights.growth_score(3, 0) < search_insights.growth_score(30, 10)


async def test_rising_search_terms_match_the_hand_count(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    report = (await analyst(gql, shop)(RISING, {"input": SECOND_WEEK}))["risingSearchTerms"]
    assert report["__typename"] == "RisingSearchTerms"
    assert (report["from"], report["to"], report["previousFrom"], report["hasMore"]) == (
        "2026-06-08",
        "2026-06-14",
        "2026-06-01",
        False,
    )
    rows = [
        (
            t["query"],
            t["searches"],
            t["previousSearches"],
            round(t["growth"], 6),
            round(t["score"], 6),
            t["zeroResultSearches"],
            t["zeroResultShare"],
            t["unmetDemand"],
        )
        for t in report["terms"]
    ]
    assert rows == [
        ("露营帐篷", 10, 1, round(math.log(7), 6), 0.827280, 10, 1.0, True),
        ("蓝牙耳机", 30, 10, round(math.log(30.5 / 10.5), 6), 0.607805, 0, 0.0, False),
        # Two of the searches that reported a count found nothing: unmet demand.
        ("手机壳", 3, 0, round(math.log(7), 6), 0.008386, 2, 1.0, True),
    ]
    # A bounded list says there is more.
    short = (await analyst(gql, shop)(RISING, {"input": {**SECOND_WEEK, "limit": 2}}))[
        "risingSearchTerms"
    ]
    assert [t["query"] for t in short["terms"]] == ["露营帐篷", "蓝牙耳机"]
    assert short["hasMore"] is True


async def test_rising_terms_of_a_period_with_nothing_before(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    # June 1-7 against May 25-31: 蓝牙耳机 10 vs 0, 雨伞 20 vs 0, 口罩 4 vs 0, 露营帐篷 1 (not
    # enough) — the May 31 23:59 searches fall in the period before.
    report = (await analyst(gql, shop)(RISING, {"input": JUNE}))["risingSearchTerms"]
    rows = [(t["query"], t["searches"], t["previousSearches"]) for t in report["terms"]]
    assert rows == [("雨伞", 20, 0), ("蓝牙耳机", 10, 0), ("口罩", 4, 0)]
    assert report["previousFrom"] == "2026-05-25"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"from": "2026-06-08", "to": "2026-06-06"}, "from"),
        ({"from": "2026-01-01", "to": "2026-07-04"}, "from"),
        ({**SECOND_WEEK, "limit": 0}, "limit"),
    ],
)
async def test_rising_terms_refuse_bad_input(
    gql: GraphQLClient, shop: ModuleShop, variables: dict[str, Any], field: str
) -> None:
    answer = (await analyst(gql, shop)(RISING, {"input": variables}))["risingSearchTerms"]
    assert (answer["__typename"], answer["field"]) == ("ValidationError", field)
