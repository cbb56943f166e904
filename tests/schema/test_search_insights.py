"""Search analytics for staff, from shopper traffic driven through the public API (search, then
record the search and the clicks the way a storefront does), checked against a hand count, on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server import migrate
from server.models import CustomerEvent, CustomerEventKind, StaffRole
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop

SEARCH = """query($q: String!) { products(first: 20, filter: {search: $q}) { totalCount } }"""
RECORD = """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
  __typename ... on RecordEventSuccess { event { id searchId } } ... on Error { code field } } }"""
REPORT_FIELDS = """
  __typename
  ... on SearchTermReport { from to hasMore terms {
      query searches searchers averageResultCount zeroResultSearches clicks clickedSearches
      clickThroughRate lastSearchedAt } }
  ... on Error { code field message }
"""
NO_RESULTS = f"""query($period: SearchPeriod, $first: Int! = 20) {{
  searchesWithoutResults(period: $period, first: $first) {{ {REPORT_FIELDS} }} }}"""
LOW_CTR = f"""query($period: SearchPeriod, $first: Int! = 20, $min: Int! = 5, $max: Float! = 0.1) {{
  searchesWithLowClickThrough(period: $period, first: $first, minSearches: $min,
                              maxClickThroughRate: $max) {{ {REPORT_FIELDS} }} }}"""


async def _seed(session: AsyncSession) -> dict[str, Any]:
    earphones = await make_product(session, "蓝牙耳机", sku="BT-EAR", commit=False)
    speaker = await make_product(session, "蓝牙音箱", sku="BT-SPK", commit=False)
    # A search of eight days ago: outside the default period (the last 7 days).
    session.add(
        CustomerEvent(
            kind=CustomerEventKind.SEARCH,
            session_id="web-old",
            query="龙井",
            search_key="龙井",
            data={"result_count": 0},
            occurred_at=datetime.now(UTC) - timedelta(days=8),
        )
    )
    await session.commit()
    return {
        "products": {"ear": earphones.id, "speaker": speaker.id},
        "customers": [await make_customer(session), await make_customer(session)],
        "staff": {
            role: await make_staff(session, role=role)
            for role in (StaffRole.SUPPORT, StaffRole.CATALOG, StaffRole.ADMIN)
        },
    }


def _gid(type_name: str, pk: Any) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


class Shopper:
    """A storefront's client: searches, then records the search and the clicks."""

    def __init__(self, gql: GraphQLClient, session_id: str | None = None) -> None:
        self.gql = gql
        self.session_id = session_id

    async def search(self, text: str) -> str:
        found = (await self.gql(SEARCH, {"q": text}))["products"]["totalCount"]
        event = await self.record(kind="SEARCH", query=text, resultCount=found)
        return str(event["id"])

    async def record(self, **values: Any) -> dict[str, Any]:
        if self.session_id is not None:
            values["sessionId"] = self.session_id
        answer = (await self.gql(RECORD, {"input": values}))["recordEvent"]
        assert answer["__typename"] == "RecordEventSuccess", answer
        return dict(answer["event"])


async def _traffic(url: str, shop: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The hand-counted traffic (text as typed: searches, searchers, results, clicks):

    | 耳机     | c2 ×2, s3 ×2, c1     | 5 searches, 3 searchers, 1 result each, no click     |
    | 蓝牙     | c1, c2, s1, s6       | 4, 4, 2 results each; c1 (searchId), s1 (implicit)    |
    |          |                      |   clicked: 2 clicks, CTR 0.5                          |
    | 龙井     | c1, s2, s5 (+ 1 old) | 3 in the period, 0 results; c1's view after it is no  |
    |          |                      |   click (a search that found nothing is not clicked)  |
    | longjing | s2 "LONGJING", c2    | 2, 0 results                                          |
    | 音箱     | s4                   | 1, 1 result; an ADD_TO_CART with its searchId         |
    """
    ear = _gid("Product", shop["products"]["ear"])
    speaker = _gid("Product", shop["products"]["speaker"])
    views: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        anonymous = GraphQLClient(http)
        c1, c2 = (Shopper(anonymous.as_(token_for(settings, c))) for c in shop["customers"])
        s1, s2, s3, s4, s5, s6 = (Shopper(anonymous, f"web-{i}") for i in range(1, 7))

        bluetooth = await c1.search("  蓝牙 ")
        views["explicit"] = await c1.record(kind="VIEW", productId=ear, searchId=bluetooth)
        await c2.search("蓝牙")
        s1_search = await s1.search("蓝牙")
        views["implicit"] = await s1.record(kind="VIEW", productId=speaker)
        views["implicit_search"] = s1_search
        await s6.search("蓝牙")
        for shopper in (c2, c2, s3, s3, c1):
            await shopper.search("耳机 ")
        await c1.search("龙井")
        views["after_nothing"] = await c1.record(kind="VIEW", productId=ear)
        await s2.search("龙井")
        await s5.search(" 龙井")
        await s2.search("LONGJING")
        await c2.search("Longjing")
        speakers = await s4.search("音箱")
        await s4.record(kind="ADD_TO_CART", productId=speaker, searchId=speakers)
    return views


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as built:
        settings = built.app.state.shopgraph.settings
        built.seeded["views"] = migrate.run_async(
            lambda: _traffic(built.url, built.seeded, settings)
        )
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def staff(
    gql: GraphQLClient, shop: ModuleShop, role: StaffRole = StaffRole.SUPPORT
) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded["staff"][role]))


def table(report: dict[str, Any], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(t[f] for f in ("query", *fields)) for t in report["terms"]]


async def test_searches_without_results_match_the_hand_count(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    report = (await staff(gql, shop)(NO_RESULTS))["searchesWithoutResults"]
    assert report["__typename"] == "SearchTermReport"
    assert table(report, "searches", "searchers", "averageResultCount", "clicks") == [
        ("龙井", 3, 3, 0.0, 0),
        ("longjing", 2, 2, 0.0, 0),
    ]
    assert report["hasMore"] is False
    # The default period is the last 7 days, ending now.
    start, end = (datetime.fromisoformat(report[k]) for k in ("from", "to"))
    assert end - start == timedelta(days=7)
    assert abs(datetime.now(UTC) - end) < timedelta(minutes=5)


async def test_low_click_through_match_the_hand_count(gql: GraphQLClient, shop: ModuleShop) -> None:
    client = staff(gql, shop)
    report = (await client(LOW_CTR, {"min": 2, "max": 0.51}))["searchesWithLowClickThrough"]
    assert table(
        report,
        "searches",
        "searchers",
        "averageResultCount",
        "zeroResultSearches",
        "clicks",
        "clickedSearches",
        "clickThroughRate",
    ) == [
        ("耳机", 5, 3, 1.0, 0, 0, 0, 0.0),
        ("蓝牙", 4, 4, 2.0, 0, 2, 2, 0.5),
        ("龙井", 3, 3, 0.0, 3, 0, 0, 0.0),
        ("longjing", 2, 2, 0.0, 2, 0, 0, 0.0),
    ]
    # "Below" the threshold is strict: 蓝牙's 0.5 is not below 0.5.
    report = (await client(LOW_CTR, {"min": 2, "max": 0.5}))["searchesWithLowClickThrough"]
    assert [t["query"] for t in report["terms"]] == ["耳机", "龙井", "longjing"]
    # At least minSearches: 音箱 (searched once, clicked) and the others drop out.
    report = (await client(LOW_CTR, {"min": 4, "max": 1.0}))["searchesWithLowClickThrough"]
    assert [t["query"] for t in report["terms"]] == ["耳机", "蓝牙"]
    # A bounded page: the first texts, and whether there are more.
    report = (await client(LOW_CTR, {"min": 1, "max": 1.0, "first": 2}))[
        "searchesWithLowClickThrough"
    ]
    assert ([t["query"] for t in report["terms"]], report["hasMore"]) == (["耳机", "蓝牙"], True)


async def test_clicks_are_tied_to_their_search(shop: ModuleShop) -> None:
    views = shop.seeded["views"]
    # Explicitly (searchId), implicitly (the visitor's latest search within the window), and
    # not at all after a search that found nothing.
    assert views["explicit"]["searchId"] is not None
    assert views["implicit"]["searchId"] == views["implicit_search"]
    assert views["after_nothing"]["searchId"] is None


async def test_period(gql: GraphQLClient, shop: ModuleShop) -> None:
    client = staff(gql, shop)
    now = datetime.now(UTC)

    async def longjing_searches(start: datetime, end: datetime) -> list[tuple[Any, ...]]:
        period = {"from": start.isoformat(), "to": end.isoformat()}
        report = (await client(NO_RESULTS, {"period": period}))["searchesWithoutResults"]
        return table(report, "searches")

    # The search of eight days ago counts in a period that covers it.
    assert await longjing_searches(now - timedelta(days=9), now + timedelta(hours=1)) == [
        ("龙井", 4),
        ("longjing", 2),
    ]
    assert await longjing_searches(now - timedelta(days=9), now - timedelta(days=7)) == [
        ("龙井", 1)
    ]
    # `to` is exclusive, `from` inclusive: a period ending before the traffic holds none of it.
    assert await longjing_searches(now + timedelta(hours=1), now + timedelta(hours=2)) == []


async def test_only_staff_who_read_customers_see_the_reports(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    settings = shop.app.state.shopgraph.settings
    customer = gql.as_(token_for(settings, shop.seeded["customers"][0]))
    for client in (gql, customer, staff(gql, shop, StaffRole.CATALOG)):
        for query in (NO_RESULTS, LOW_CTR):
            body = await client.execute(query)
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    admin = staff(gql, shop, StaffRole.ADMIN)
    report = (await admin(NO_RESULTS))["searchesWithoutResults"]
    assert report["__typename"] == "SearchTermReport"


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        (
            NO_RESULTS,
            {"period": {"from": "2026-06-02T00:00:00Z", "to": "2026-06-01T00:00:00Z"}},
            "from",
        ),
        (
            NO_RESULTS,
            {"period": {"from": "2026-06-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}},
            "from",
        ),
        (
            NO_RESULTS,
            {"period": {"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}},
            "from",
        ),
        (NO_RESULTS, {"first": 0}, "first"),
        (LOW_CTR, {"first": 101}, "first"),
        (LOW_CTR, {"min": -1}, "minSearches"),
        (LOW_CTR, {"max": -0.1}, "maxClickThroughRate"),
        (LOW_CTR, {"max": 1.5}, "maxClickThroughRate"),
    ],
)
async def test_bad_input_is_a_typed_error(
    gql: GraphQLClient, shop: ModuleShop, query: str, variables: dict[str, Any], field: str
) -> None:
    (answer,) = (await staff(gql, shop)(query, variables)).values()
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "ValidationError",
        "VALIDATION_FAILED",
        field,
    )


async def test_a_bad_search_id_is_refused_and_changes_nothing(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    client = staff(gql, shop)
    everything = {"min": 1, "max": 1.0, "first": 100}
    before = (await client(LOW_CTR, everything))["searchesWithLowClickThrough"]["terms"]
    events_before = await client("{ customerEvents { totalCount } }")
    # Another visitor's search answers like one that does not exist.
    someone_elses = shop.seeded["views"]["implicit_search"]
    ear = _gid("Product", shop.seeded["products"]["ear"])
    attempts = [
        (
            {"kind": "VIEW", "productId": ear, "searchId": someone_elses, "sessionId": "web-9"},
            "NotFoundError",
        ),
        (
            {
                "kind": "VIEW",
                "productId": ear,
                "searchId": _gid("CustomerEvent", 10**9),
                "sessionId": "web-1",
            },
            "NotFoundError",
        ),
        (
            {"kind": "VIEW", "productId": ear, "searchId": views_id(shop), "sessionId": "web-1"},
            "NotFoundError",
        ),
        (
            {"kind": "SEARCH", "query": "x", "searchId": someone_elses, "sessionId": "web-1"},
            "ValidationError",
        ),
    ]
    for values, error in attempts:
        answer = (await gql(RECORD, {"input": values}))["recordEvent"]
        assert (answer["__typename"], answer["field"]) == (error, "searchId"), values
    after = (await client(LOW_CTR, everything))["searchesWithLowClickThrough"]["terms"]
    assert after == before
    assert await client("{ customerEvents { totalCount } }") == events_before


def views_id(shop: ModuleShop) -> str:
    """A VIEW event's id: an event, but no search."""
    return str(shop.seeded["views"]["implicit"]["id"])
