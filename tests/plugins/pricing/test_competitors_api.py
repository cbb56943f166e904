"""Competitor monitoring over HTTP, on one served shop per backend: the signed webhook (good
and bad signatures, malformed bodies, concurrent calls, the secret unset), the GraphQL
mutation's typed errors, the staff queries (batched), acknowledging and acting on alerts
(typed errors, audited), and that customers see none of it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from plugins.pricing.models import Competitor, CompetitorPrice, PriceAlert
from server.db import create_engine, session_factory
from server.models import AuditLogEntry, StaffRole
from tests.plugins.pricing.competitor_shop import EAN13, UPC_A, Catalogue, make_catalogue
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.server import LiveServer
from tests.support.statements import counting

SECRET = "feed-secret-测试"
WEBHOOK = "/plugins/pricing/competitor-prices"
SEEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


async def _seed(session: AsyncSession) -> dict[str, Any]:
    catalogue = await make_catalogue(session)
    staff = {
        role: await make_staff(session, role=role)
        for role in (StaffRole.ADMIN, StaffRole.CATALOG, StaffRole.SUPPORT)
    }
    return {"shop": catalogue, "staff": staff, "customer": await make_customer(session)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    stack = contextlib.ExitStack()
    with pytest.MonkeyPatch.context() as env:
        # Read when the app loads its plugins; unset again for the other apps of the module.
        env.setenv("SHOPGRAPH_PRICING_WEBHOOK_SECRET", SECRET)
        built = stack.enter_context(module_shop(request, tmp_path_factory, _seed))
    with stack:
        yield built


@pytest.fixture
async def http(shop: ModuleShop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@pytest.fixture
async def db(shop: ModuleShop) -> AsyncIterator[AsyncSession]:
    engine = create_engine(shop.database_url)
    async with session_factory(engine)() as session:
        yield session
    await engine.dispose()


def catalogue(shop: ModuleShop) -> Catalogue:
    found: Catalogue = shop.seeded["shop"]
    return found


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


def manager(gql: GraphQLClient, shop: ModuleShop) -> GraphQLClient:
    """A CATALOG staff user: the role holds pricing.manage."""
    return as_(gql, shop, shop.seeded["staff"][StaffRole.CATALOG])


def gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def feed(competitor: str, *prices: dict[str, Any]) -> bytes:
    return json.dumps({"competitor": competitor, "prices": list(prices)}).encode()


def price(amount: int, days_ago: float = 1, **ident: str) -> dict[str, Any]:
    at = SEEN - timedelta(days=days_ago)
    return {**ident, "amount": amount, "currency": "CNY", "observedAt": at.isoformat()}


async def post(
    http: httpx.AsyncClient, body: bytes, signature: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Shopgraph-Signature"] = signature
    return await http.post(WEBHOOK, content=body, headers=headers)


async def count(db: AsyncSession, model: type, competitor: str | None = None) -> int:
    await db.commit()  # a fresh snapshot
    query = select(func.count()).select_from(model)
    if competitor is not None and model is not Competitor:
        query = query.join(Competitor, Competitor.id == model.competitor_id).where(  # type: ignore[attr-defined]
            Competitor.name == competitor
        )
    elif competitor is not None:
        query = query.where(Competitor.name == competitor)
    return int(await db.scalar(query) or 0)


# --- the webhook --------------------------------------------------------------------------------


async def test_a_signed_feed_is_recorded_and_answered_with_counts(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = feed(
        "苏宁易购",
        price(9000, gtin=EAN13),  # 10% under our 100.00: an undercut
        price(4900, sku="sku-upc"),
        price(1000, sku="NOBODY"),
    )
    answer = await post(http, body, sign(body))
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert (got["recorded"], got["duplicates"], got["alertsRaised"]) == (2, 0, 1)
    assert [(u["row"], u["reason"]) for u in got["unmatched"]] == [(3, "UNKNOWN_SKU")]
    # The same feed again: nothing new.
    again = (await post(http, body, sign(body))).json()
    assert (again["recorded"], again["duplicates"], again["alertsRaised"]) == (0, 2, 0)
    assert await count(db, CompetitorPrice, "苏宁易购") == 2


async def test_a_bad_signature_is_refused_and_nothing_is_written(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = feed("国美", price(5000, gtin=EAN13))
    tampered = feed("国美", price(1, gtin=EAN13))
    for signature in (sign(body, "wrong secret"), None, sign(tampered), "sha1=" + sign(body)[7:]):
        answer = await post(http, body, signature)
        assert answer.status_code == 401, signature
        assert answer.json()["errors"][0]["extensions"]["code"] == "INVALID_SIGNATURE"
    assert await count(db, Competitor, "国美") == 0


async def test_malformed_bodies_are_typed_400s(http: httpx.AsyncClient, db: AsyncSession) -> None:
    cases = {
        b"{not json": "MALFORMED_JSON",
        b"[1, 2]": "MALFORMED_BODY",
        json.dumps({"competitor": "唯品会", "prices": "many"}).encode(): "MALFORMED_BODY",
        feed("唯品会"): "EMPTY_LIST",
        feed("唯品会", {**price(1, gtin=EAN13), "amount": "12.99"}): "BAD_AMOUNT",
        feed("唯品会", price(0, gtin=EAN13)): "BAD_AMOUNT",
        feed("唯品会", {**price(1, gtin=EAN13), "currency": "元"}): "BAD_CURRENCY",
        feed("唯品会", {**price(1, gtin=EAN13), "observedAt": "yesterday"}): "BAD_OBSERVED_AT",
        feed("唯品会", *[price(1000 + n, gtin=EAN13) for n in range(1001)]): "TOO_MANY_ROWS",
    }
    for body, code in cases.items():
        answer = await post(http, body, sign(body))
        assert answer.status_code == 400, (body[:40], answer.text)
        assert answer.json()["errors"][0]["extensions"]["code"] == code
    assert await count(db, Competitor, "唯品会") == 0


async def test_concurrent_feeds_raise_one_alert(
    http: httpx.AsyncClient, db: AsyncSession, shop: ModuleShop
) -> None:
    # Six feeds at once, each undercutting the UPC product (ours 50.00) at its own moment.
    bodies = [
        feed("拼多多百亿补贴", price(4000 - n, days_ago=n / 24, gtin=UPC_A)) for n in range(6)
    ]
    answers = await asyncio.gather(*(post(http, b, sign(b)) for b in bodies))
    assert [a.status_code for a in answers] == [200] * 6
    assert sum(a.json()["alertsRaised"] for a in answers) == 1
    assert await count(db, PriceAlert, "拼多多百亿补贴") == 1
    assert await count(db, CompetitorPrice, "拼多多百亿补贴") == 6
    assert await count(db, Competitor, "拼多多百亿补贴") == 1


async def test_the_webhook_refuses_everything_while_the_secret_is_unset(
    live_server: LiveServer, session: AsyncSession
) -> None:
    # The default settings: no secret. Even a body "signed" with the empty key is refused.
    body = feed("京东", price(5000, gtin=EAN13))
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
        for signature in (sign(body, ""), None):
            answer = await post(client, body, signature)
            assert answer.status_code == 403
            assert answer.json()["errors"][0]["extensions"]["code"] == "WEBHOOK_DISABLED"
    assert int(await session.scalar(select(func.count()).select_from(Competitor)) or 0) == 0


# --- GraphQL: recording ---------------------------------------------------------------------------

RECORD = """
mutation($input: RecordCompetitorPricesInput!) {
  recordCompetitorPrices(input: $input) {
    __typename
    ... on Error { code field message }
    ... on RecordCompetitorPricesSuccess {
      competitor { id name }
      recorded duplicates
      unmatched { row reason gtin sku message }
      alertsRaised { id kind state ourPrice { amount currency } theirPrice { amount } }
    }
  }
}
"""


def gql_price(amount: int, days_ago: float = 1, **ident: str) -> dict[str, Any]:
    at = SEEN - timedelta(days=days_ago)
    return {**ident, "amount": amount, "currency": "CNY", "observedAt": at.isoformat()}


async def test_the_mutation_records_and_lists_what_it_left_out(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = manager(gql, shop)
    prices = [
        gql_price(9400, gtin=EAN13),
        gql_price(7900, sku="SKU-SINGLE"),
        gql_price(6000, sku="SKU-MULTI"),
        gql_price(6000, gtin="4006381333932"),
        {**gql_price(7000, sku="SKU-SINGLE", days_ago=2), "currency": "USD"},
    ]
    got = (await staff(RECORD, {"input": {"competitor": "当当", "prices": prices}}))[
        "recordCompetitorPrices"
    ]
    assert got["__typename"] == "RecordCompetitorPricesSuccess"
    assert got["competitor"]["name"] == "当当"
    assert (got["recorded"], got["duplicates"]) == (2, 0)
    assert [(u["row"], u["reason"]) for u in got["unmatched"]] == [
        (3, "AMBIGUOUS_SKU"),
        (4, "INVALID_GTIN"),
        (5, "CURRENCY_MISMATCH"),
    ]
    [alert] = got["alertsRaised"]
    assert (alert["kind"], alert["state"]) == ("UNDERCUT", "OPEN")
    assert (alert["ourPrice"], alert["theirPrice"]) == (
        {"amount": "100.00", "currency": "CNY"},
        {"amount": "94.00"},
    )


async def test_the_mutation_answers_bad_input_with_typed_errors_and_writes_nothing(
    gql: GraphQLClient, shop: ModuleShop, db: AsyncSession
) -> None:
    staff = manager(gql, shop)
    cases = [
        ([], "EMPTY_LIST", "prices"),
        ([gql_price(0, gtin=EAN13)], "BAD_AMOUNT", "prices[0].amount"),
        ([gql_price(100, gtin=EAN13), gql_price(-1, gtin=EAN13)], "BAD_AMOUNT", "prices[1].amount"),
        (
            [{**gql_price(100, gtin=EAN13), "currency": "RMB1"}],
            "BAD_CURRENCY",
            "prices[0].currency",
        ),
    ]
    for prices, code, field in cases:
        got = (await staff(RECORD, {"input": {"competitor": "一号店", "prices": prices}}))[
            "recordCompetitorPrices"
        ]
        assert (got["__typename"], got["code"], got["field"]) == ("ValidationError", code, field)
    # More rows than a list argument may hold: refused before anything runs.
    many = [gql_price(100 + n, gtin=EAN13) for n in range(101)]
    body = await staff.execute(RECORD, {"input": {"competitor": "一号店", "prices": many}})
    assert body["errors"][0]["extensions"]["code"] == "LIST_TOO_LONG"
    assert await count(db, Competitor, "一号店") == 0


# --- GraphQL: reading -----------------------------------------------------------------------------

FIELDS = "competitorPrices { price { amount } observedAt source competitor { name } variantId }"
PRODUCT_PRICES = "query($id: ID!) { product(id: $id) { id " + FIELDS + " } }"
PAGE_PRICES = "query($n: Int!) { products(first: $n) { nodes { id " + FIELDS + " } } }"


async def test_staff_read_competitors_prices_and_alerts(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = manager(gql, shop)
    cat = catalogue(shop)
    rows = [gql_price(10100 - n * 10, days_ago=n, gtin=EAN13) for n in range(1, 6)]
    await staff(RECORD, {"input": {"competitor": "考拉海购", "prices": rows}})
    await staff(
        RECORD, {"input": {"competitor": "网易严选", "prices": [gql_price(9990, 0.5, gtin=EAN13)]}}
    )

    names = [
        n["name"]
        for n in (await staff("{ competitors(first: 100) { nodes { name } } }"))["competitors"][
            "nodes"
        ]
    ]
    assert names == sorted(names) and {"考拉海购", "网易严选"} <= set(names)

    competitor = next(
        n["id"]
        for n in (await staff("{ competitors(first: 100) { nodes { id name } } }"))["competitors"][
            "nodes"
        ]
        if n["name"] == "考拉海购"
    )
    query = """query($p: ID!, $c: ID, $after: String) {
      competitorPrices(productId: $p, competitorId: $c, first: 2, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } nodes { price { amount } } } }"""
    variables = {"p": gid("Product", cat.ean), "c": competitor}
    page = (await staff(query, variables))["competitorPrices"]
    assert page["totalCount"] == 5
    assert [n["price"]["amount"] for n in page["nodes"]] == ["100.90", "100.80"]  # newest first
    nxt = await staff(query, {**variables, "after": page["pageInfo"]["endCursor"]})
    assert [n["price"]["amount"] for n in nxt["competitorPrices"]["nodes"]] == ["100.70", "100.60"]
    # An id of another type finds nothing.
    none = await staff(query, {"p": gid("Category", cat.ean), "c": None})
    assert none["competitorPrices"]["totalCount"] == 0

    # Product.competitorPrices: the newest per competitor, cheapest first.
    got = (await staff(PRODUCT_PRICES, {"id": gid("Product", cat.ean)}))["product"]
    mine = {p["competitor"]["name"]: p["price"]["amount"] for p in got["competitorPrices"]}
    assert mine["考拉海购"] == "100.90" and mine["网易严选"] == "99.90"
    amounts = [float(p["price"]["amount"]) for p in got["competitorPrices"]]
    assert amounts == sorted(amounts)

    # 40.00 against our 50.00: an undercut of 20%, past the 5% threshold.
    await staff(
        RECORD, {"input": {"competitor": "唯品会", "prices": [gql_price(4000, 0.25, gtin=UPC_A)]}}
    )
    alerts = """query($state: PriceAlertState, $kind: PriceAlertKind) {
      priceAlerts(first: 100, state: $state, kind: $kind) {
        nodes { kind state competitor { name } product { id } variantId detail } } }"""
    undercuts = (await staff(alerts, {"state": "OPEN", "kind": "UNDERCUT"}))["priceAlerts"]["nodes"]
    assert undercuts and all(a["kind"] == "UNDERCUT" and a["state"] == "OPEN" for a in undercuts)
    acted = (await staff(alerts, {"state": "ACTED"}))["priceAlerts"]["nodes"]
    assert all(a["state"] == "ACTED" for a in acted)


async def test_product_competitor_prices_take_one_statement_for_a_page(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = manager(gql, shop)
    cat = catalogue(shop)
    rows = [
        gql_price(4950, 3, gtin=UPC_A),
        gql_price(7990, 3, sku="SKU-SINGLE"),
        gql_price(5990, 3, sku="SKU-MULTI-B"),
    ]
    for name in ("亚马逊", "小红书商城"):
        await staff(RECORD, {"input": {"competitor": name, "prices": rows}})
    await staff(PAGE_PRICES, {"n": 4})  # warm
    with counting(shop.app) as few:
        await staff(PAGE_PRICES, {"n": 1})
    with counting(shop.app) as many:
        got = await staff(PAGE_PRICES, {"n": 4})
    assert len(many) == len(few)
    seen = {
        int(relay.GlobalID.from_id(node["id"]).node_id): {
            p["competitor"]["name"] for p in node["competitorPrices"]
        }
        for node in got["products"]["nodes"]
    }
    for product_id in (cat.upc, cat.single, cat.multi):
        assert {"亚马逊", "小红书商城"} <= seen[product_id]


# --- GraphQL: acknowledging and acting ---------------------------------------------------------------

ACK = """mutation($input: HandlePriceAlertInput!) { acknowledgePriceAlert(input: $input) {
  __typename ... on Error { code field }
  ... on AcknowledgePriceAlertSuccess { alert { id state handledBy note handledAt } } } }"""
ACT = """mutation($input: HandlePriceAlertInput!) { actOnPriceAlert(input: $input) {
  __typename ... on Error { code field }
  ... on ActOnPriceAlertSuccess { alert { id state handledBy note } } } }"""


async def test_alerts_are_acknowledged_then_acted_on_with_typed_errors(
    gql: GraphQLClient, shop: ModuleShop, db: AsyncSession
) -> None:
    staff = manager(gql, shop)
    recorded = await staff(
        RECORD, {"input": {"competitor": "抖音商城", "prices": [gql_price(1000, gtin=EAN13)]}}
    )
    [alert] = recorded["recordCompetitorPrices"]["alertsRaised"]
    alert_id = alert["id"]

    acked = (await staff(ACK, {"input": {"alertId": alert_id, "note": "在核实"}}))[
        "acknowledgePriceAlert"
    ]
    assert acked["__typename"] == "AcknowledgePriceAlertSuccess"
    assert (acked["alert"]["state"], acked["alert"]["note"]) == ("ACKNOWLEDGED", "在核实")
    assert acked["alert"]["handledBy"].startswith("staff:")
    again = (await staff(ACK, {"input": {"alertId": alert_id}}))["acknowledgePriceAlert"]
    assert (again["__typename"], again["code"]) == ("ConflictError", "ALREADY_HANDLED")
    # A note past its bound changes nothing.
    long = (await staff(ACT, {"input": {"alertId": alert_id, "note": "长" * 501}}))[
        "actOnPriceAlert"
    ]
    assert (long["__typename"], long["field"]) == ("ValidationError", "note")
    acted = (await staff(ACT, {"input": {"alertId": alert_id, "note": "已设会员价跟进"}}))[
        "actOnPriceAlert"
    ]
    assert (acted["alert"]["state"], acted["alert"]["note"]) == ("ACTED", "已设会员价跟进")
    twice = (await staff(ACT, {"input": {"alertId": alert_id}}))["actOnPriceAlert"]
    assert (twice["__typename"], twice["code"]) == ("ConflictError", "ALREADY_HANDLED")
    for doc, field in ((ACK, "acknowledgePriceAlert"), (ACT, "actOnPriceAlert")):
        for missing in (gid("PriceAlert", 987654), gid("Product", 1), "garbage"):
            got = (await staff(doc, {"input": {"alertId": missing}}))[field]
            assert (got["__typename"], got["code"]) == ("NotFoundError", "NOT_FOUND")
    # Every call was audited, the refusals too.
    await db.commit()
    audited = list(
        await db.scalars(
            select(AuditLogEntry.mutation).where(
                AuditLogEntry.mutation.in_(["acknowledgePriceAlert", "actOnPriceAlert"])  # type: ignore[attr-defined]
            )
        )
    )
    assert audited.count("acknowledgePriceAlert") >= 5 and audited.count("actOnPriceAlert") >= 6


# --- permissions ------------------------------------------------------------------------------------


async def test_customers_and_other_staff_see_none_of_it(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    staff = manager(gql, shop)
    recorded = await staff(
        RECORD, {"input": {"competitor": "闲鱼", "prices": [gql_price(100, gtin=EAN13)]}}
    )
    [alert] = recorded["recordCompetitorPrices"]["alertsRaised"]
    cat = catalogue(shop)
    customer = as_(gql, shop, shop.seeded["customer"])
    support = as_(gql, shop, shop.seeded["staff"][StaffRole.SUPPORT])
    admin = as_(gql, shop, shop.seeded["staff"][StaffRole.ADMIN])
    reads = [
        ("{ competitors(first: 5) { nodes { name } } }", {}),
        ("{ priceAlerts(first: 5) { nodes { kind } } }", {}),
        (
            "query($p: ID!) { competitorPrices(productId: $p, first: 5) { nodes { id } } }",
            {"p": gid("Product", cat.ean)},
        ),
    ]
    writes = [
        (RECORD, {"input": {"competitor": "闲鱼", "prices": [gql_price(50, 0.1, gtin=EAN13)]}}),
        (ACK, {"input": {"alertId": alert["id"]}}),
        (ACT, {"input": {"alertId": alert["id"]}}),
    ]
    for client in (gql, customer, support):
        for document, variables in reads + writes:
            body = await client.execute(document, variables)
            assert body["data"] is None, document
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        product = await client.execute(PRODUCT_PRICES, {"id": gid("Product", cat.ean)})
        assert product["data"]["product"]["competitorPrices"] is None
        assert product["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        node = await client("query($id: ID!) { node(id: $id) { id } }", {"id": alert["id"]})
        assert node["node"] is None
    # The shop's admin holds every permission; the alert is as it was.
    state = await admin("query($id: ID!) { node(id: $id) { ... on PriceAlert { state } } }",
                        {"id": alert["id"]})  # fmt: skip
    assert state["node"]["state"] == "OPEN"
