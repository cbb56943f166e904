"""Behaviour events over HTTP: recording, favourites, recently viewed, the staff's event list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.config import Settings
from server.models import CustomerEvent, CustomerEventKind, OutboxEvent, Product
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient

RECORD = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) {
    __typename
    ... on RecordEventSuccess {
      event { kind sessionId query quantity resultCount product { sku } customer { email } }
    }
    ... on Error { code field }
  }
}
"""

ME = """
{ me { favorites { sku } recentlyViewed(first: 3) { sku } } }
"""


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


async def _products(session: AsyncSession, n: int) -> list[Product]:
    products = [
        Product(sku=f"SKU-{i}", name=f"商品{i}", price_amount=990 * (i + 1)) for i in range(n)
    ]
    session.add_all(products)
    await session.commit()
    return products


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"input": {"kind": kind, **fields}}


async def test_customer_and_anonymous_events_are_recorded(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    (tea,) = await _products(session, 1)
    customer = await make_customer(session, email="buyer@example.cn")
    me = gql.as_(token_for(settings, customer))

    viewed = (await me(RECORD, event("VIEW", productId=gid("Product", tea.id))))["recordEvent"]
    assert viewed["event"] == {
        "kind": "VIEW",
        "sessionId": None,
        "query": None,
        "quantity": None,
        "resultCount": None,
        "product": {"sku": "SKU-0"},
        "customer": {"email": "buyer@example.cn"},
    }
    carted = (await me(RECORD, event("ADD_TO_CART", productId=gid("Product", tea.id), quantity=3)))[
        "recordEvent"
    ]
    assert carted["event"]["quantity"] == 3
    searched = (
        await gql(RECORD, event("SEARCH", query=" 龙井 ", resultCount=0, sessionId="visitor-1"))
    )["recordEvent"]
    assert searched["event"]["query"] == "龙井"
    assert searched["event"]["resultCount"] == 0
    assert searched["event"]["sessionId"] == "visitor-1"
    assert searched["event"]["customer"] is None

    rows = (await session.execute(select(CustomerEvent).order_by(CustomerEvent.id))).scalars().all()
    assert [(e.kind, e.customer_id, e.session_id) for e in rows] == [
        (CustomerEventKind.VIEW, customer.id, None),
        (CustomerEventKind.ADD_TO_CART, customer.id, None),
        (CustomerEventKind.SEARCH, None, "visitor-1"),
    ]
    # Each event is announced to plugins through the outbox.
    announced = (
        (
            await session.execute(
                select(OutboxEvent).where(OutboxEvent.name == "customer_event_recorded")
            )
        )
        .scalars()
        .all()
    )
    assert sorted(e.payload["event_id"] for e in announced) == [e.id for e in rows]


async def test_bad_events_are_refused_and_write_nothing(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    (tea,) = await _products(session, 1)
    me = gql.as_(token_for(settings, await make_customer(session)))
    product = gid("Product", tea.id)
    cases = [
        (me, event("PURCHASE", productId=product), "ValidationError", "kind"),
        (gql, event("VIEW", productId=product), "ValidationError", "sessionId"),
        (gql, event("VIEW", productId=product, sessionId="  "), "ValidationError", "sessionId"),
        (me, event("VIEW"), "ValidationError", "productId"),
        (me, event("SEARCH", query="  "), "ValidationError", "query"),
        (me, event("ADD_TO_CART", productId=product, quantity=0), "ValidationError", "quantity"),
        (me, event("VIEW", productId=product, quantity=2), "ValidationError", "quantity"),
        (me, event("SEARCH", query="茶", resultCount=-1), "ValidationError", "resultCount"),
        (me, event("VIEW", productId=gid("Product", 999)), "NotFoundError", "productId"),
        (me, event("FAVORITE", productId=gid("Customer", tea.id)), "NotFoundError", "productId"),
    ]
    for client, variables, typename, field in cases:
        result = (await client(RECORD, variables))["recordEvent"]
        assert (result["__typename"], result["field"]) == (typename, field), variables
    assert (await session.execute(select(CustomerEvent))).scalars().all() == []
    assert (await session.execute(select(OutboxEvent))).scalars().all() == []


async def test_favorites_and_recently_viewed_are_distinct_latest_first(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    products = await _products(session, 5)
    alice = await make_customer(session)
    bob = await make_customer(session)
    as_alice = gql.as_(token_for(settings, alice))
    as_bob = gql.as_(token_for(settings, bob))

    for index in (0, 1, 2, 0, 3):
        await as_alice(RECORD, event("FAVORITE", productId=gid("Product", products[index].id)))
    for index in (4, 3, 4, 2, 1, 1):
        await as_alice(RECORD, event("VIEW", productId=gid("Product", products[index].id)))
    await as_bob(RECORD, event("FAVORITE", productId=gid("Product", products[4].id)))
    # A product taken off sale drops out of the lists.
    products[2].is_active = False
    session.add(products[2])
    await session.commit()

    me = (await as_alice(ME))["me"]
    assert me["favorites"] == [{"sku": "SKU-3"}, {"sku": "SKU-0"}, {"sku": "SKU-1"}]
    assert me["recentlyViewed"] == [{"sku": "SKU-1"}, {"sku": "SKU-4"}, {"sku": "SKU-3"}]
    assert (await as_bob(ME))["me"] == {"favorites": [{"sku": "SKU-4"}], "recentlyViewed": []}

    # Staff see the same lists on each customer of a page (batched by a DataLoader).
    staff = gql.as_(token_for(settings, await make_staff(session)))
    page = await staff(
        "{ customers(first: 10, sort: {field: EMAIL, direction: ASC}) "
        "{ nodes { favorites(first: 2) { sku } } } }"
    )
    favorites = [n["favorites"] for n in page["customers"]["nodes"]]
    assert sorted(favorites, key=len) == [[{"sku": "SKU-4"}], [{"sku": "SKU-3"}, {"sku": "SKU-0"}]]


EVENTS = """
query($filter: CustomerEventFilter, $first: Int, $after: String) {
  customerEvents(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { node { kind query product { sku } customer { email } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_staff_event_list_filters_and_pages(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    tea, cup = await _products(session, 2)
    alice = await make_customer(session, email="alice@example.cn")
    as_alice = gql.as_(token_for(settings, alice))
    await as_alice(RECORD, event("VIEW", productId=gid("Product", tea.id)))
    await as_alice(RECORD, event("SEARCH", query="杯子", resultCount=3))
    await as_alice(RECORD, event("FAVORITE", productId=gid("Product", cup.id)))
    await gql(RECORD, event("VIEW", productId=gid("Product", cup.id), sessionId="anon-7"))
    staff = gql.as_(token_for(settings, await make_staff(session)))

    async def kinds(flt: dict[str, Any]) -> list[str]:
        data = (await staff(EVENTS, {"filter": flt}))["customerEvents"]
        assert data["totalCount"] == len(data["edges"])
        return [e["node"]["kind"] for e in data["edges"]]

    assert await kinds({}) == ["VIEW", "FAVORITE", "SEARCH", "VIEW"]  # newest first
    assert await kinds({"customerId": gid("Customer", alice.id)}) == ["FAVORITE", "SEARCH", "VIEW"]
    assert await kinds({"kind": "VIEW"}) == ["VIEW", "VIEW"]
    assert await kinds({"productId": gid("Product", cup.id)}) == ["VIEW", "FAVORITE"]
    assert await kinds({"customerId": gid("Product", alice.id)}) == []

    rows = (await session.execute(select(CustomerEvent).order_by(CustomerEvent.id))).scalars().all()
    middle = rows[1].occurred_at.isoformat()
    last = rows[3].occurred_at.isoformat()
    assert await kinds({"from": middle, "to": last}) == ["FAVORITE", "SEARCH"]

    # Keyset pages of two.
    first = (await staff(EVENTS, {"first": 2}))["customerEvents"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await staff(EVENTS, {"first": 2, "after": first["pageInfo"]["endCursor"]})
    nodes = [e["node"] for e in first["edges"] + rest["customerEvents"]["edges"]]
    assert [(n["kind"], n["customer"]) for n in nodes] == [
        ("VIEW", None),
        ("FAVORITE", {"email": "alice@example.cn"}),
        ("SEARCH", {"email": "alice@example.cn"}),
        ("VIEW", {"email": "alice@example.cn"}),
    ]
    assert rest["customerEvents"]["pageInfo"]["hasNextPage"] is False
