"""A connection on every node of a list (``Customer.orders`` on a page of customers) is one
statement for all the parents, plus one grouped COUNT for their totalCount: the number of
statements does not grow with the page. Each parent's pages continue by their cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from strawberry import relay

from server.config import Settings
from server.models import Customer, Order, OrderStatus
from server.permissions import CUSTOMERS_READ, RoleMap
from server.plugins import PluginRuntime
from server.services import apikeys
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import only_plugins, unthrottled
from tests.support.statements import counting

CUSTOMERS_WITH_ORDERS = """
query($first: Int!) {
  customers(first: $first, sort: {field: EMAIL, direction: ASC}) {
    nodes { email orders(first: 3) { totalCount nodes { id number } } }
  }
}"""

ORDERS_OF = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  node(id: $id) {
    ... on Customer {
      orders(first: $first, after: $after, last: $last, before: $before) {
        totalCount
        edges { cursor node { number } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }
}"""

EVERY_CUSTOMER_AFTER = """
query($after: String!) {
  customers(first: 100, sort: {field: EMAIL, direction: ASC}) {
    nodes { email orders(first: 2, after: $after) { nodes { number } pageInfo { hasNextPage } } }
  }
}"""

_BASE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Statements are counted on the cold path: no answer may come from the response cache.
    return unthrottled(settings).model_copy(update={"response_cache": False})


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


async def _customers_with_orders(
    session: AsyncSession, count: int, orders_each: int, *, start: int = 0
) -> list[tuple[Customer, list[Order]]]:
    """``count`` customers (e-mails sorting in creation order) with ``orders_each`` orders each,
    placed in an order their ids do not follow, some at the same time (the id decides)."""
    made = []
    for c in range(start, start + count):
        customer = await make_customer(session, email=f"buyer{c:03d}@example.cn")
        orders = [
            Order(
                number=f"SG-N-{c:03d}-{i:02d}",
                customer_id=customer.id,
                status=OrderStatus.PAID,
                subtotal_amount=1000,
                total_amount=1000,
                placed_at=_BASE + timedelta(minutes=(i * 7) % max(orders_each - 1, 1)),
            )
            for i in range(orders_each)
        ]
        session.add_all(orders)
        made.append((customer, orders))
    await session.commit()
    return made


def _key(order: Order) -> tuple[datetime, int]:
    assert order.id is not None
    return order.placed_at, order.id


def _newest_first(orders: list[Order]) -> list[str]:
    """The order numbers as ``Customer.orders`` lists them: placing time, then id, descending."""
    return [o.number for o in sorted(orders, key=_key, reverse=True)]


def _gid(customer: Customer) -> str:
    return str(relay.GlobalID("Customer", str(customer.id)))


async def test_statement_count_of_nested_connections_does_not_grow_with_the_page(
    app: Starlette, gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    made = dict((c.email, orders) for c, orders in await _customers_with_orders(session, 3, 5))
    await make_customer(session, email="buyer900@example.cn")  # no orders at all

    await staff(CUSTOMERS_WITH_ORDERS, {"first": 100})  # the connection's first statements
    with counting(app) as small:
        few = await staff(CUSTOMERS_WITH_ORDERS, {"first": 100})
    made.update(
        (c.email, orders) for c, orders in await _customers_with_orders(session, 20, 4, start=3)
    )
    with counting(app) as large:
        many = await staff(CUSTOMERS_WITH_ORDERS, {"first": 100})

    assert len(few["customers"]["nodes"]) == 4
    nodes = many["customers"]["nodes"]
    assert len(nodes) == 24
    by_email = {n["email"]: n["orders"] for n in nodes}
    assert by_email["buyer900@example.cn"] == {"totalCount": 0, "nodes": []}
    for email, orders in made.items():
        assert by_email[email]["totalCount"] == len(orders)
        assert [o["number"] for o in by_email[email]["nodes"]] == _newest_first(orders)[:3]
    # The token's revocation check, the customers' page, every customer's orders in one
    # statement and their counts in another: the same for 4 customers as for 24.
    assert len(small) == len(large), (small, large)
    assert len(large) == 4, large


async def test_each_customers_orders_page_on_by_their_cursors(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    for customer, orders in await _customers_with_orders(session, 2, 5):
        expected = _newest_first(orders)
        seen: list[str] = []
        after = None
        for _ in range(3):
            page = (await staff(ORDERS_OF, {"id": _gid(customer), "first": 2, "after": after}))[
                "node"
            ]["orders"]
            assert page["totalCount"] == 5
            seen += [e["node"]["number"] for e in page["edges"]]
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            after = page["pageInfo"]["endCursor"]
        assert seen == expected
        assert page["pageInfo"]["hasNextPage"] is False

        # Backwards from the end, and back again from a cursor.
        tail = (await staff(ORDERS_OF, {"id": _gid(customer), "last": 2}))["node"]["orders"]
        assert [e["node"]["number"] for e in tail["edges"]] == expected[-2:]
        assert tail["pageInfo"]["hasPreviousPage"] is True
        before = tail["pageInfo"]["startCursor"]
        earlier = (await staff(ORDERS_OF, {"id": _gid(customer), "last": 2, "before": before}))[
            "node"
        ]["orders"]
        assert [e["node"]["number"] for e in earlier["edges"]] == expected[1:3]
        assert earlier["pageInfo"]["hasNextPage"] is True


async def test_one_cursor_continues_every_customers_orders_from_its_position(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    """The after cursor is a position in the ordering (placing time, id): on a list of
    customers, each customer's page starts after it, in one statement for all of them."""
    staff = gql.as_(token_for(settings, await make_staff(session)))
    made = await _customers_with_orders(session, 3, 5)
    second, its_orders = made[1]
    first = (await staff(ORDERS_OF, {"id": _gid(second), "first": 2}))["node"]["orders"]
    position = _key(sorted(its_orders, key=_key, reverse=True)[1])
    pages = (await staff(EVERY_CUSTOMER_AFTER, {"after": first["pageInfo"]["endCursor"]}))[
        "customers"
    ]["nodes"]
    got = {p["email"]: p["orders"] for p in pages}
    for customer, orders in made:
        older = [o for o in orders if _key(o) < position]
        page = got[customer.email]
        assert [o["number"] for o in page["nodes"]] == _newest_first(older)[:2]
        assert page["pageInfo"]["hasNextPage"] is (len(older) > 2)
    # Customer 1's second page is the page after its first.
    assert [o["number"] for o in got[second.email]["nodes"]] == _newest_first(its_orders)[2:4]


async def test_only_the_customer_and_readers_of_orders_see_a_customers_orders(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    made = await _customers_with_orders(session, 2, 2)
    customers = [customer for customer, _ in made]
    me = gql.as_(token_for(settings, customers[0]))
    mine = await me("{ me { orders(first: 5) { totalCount nodes { number } } } }")
    assert [o["number"] for o in mine["me"]["orders"]["nodes"]] == _newest_first(made[0][1])

    # An app that may read customers but not orders sees each customer with no orders.
    created = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="crm", scopes=[CUSTOMERS_READ], created_by="test"
    )
    await session.commit()
    crm = gql.as_(created.secret)
    page = (await crm(CUSTOMERS_WITH_ORDERS, {"first": 10}))["customers"]["nodes"]
    assert [p["orders"] for p in page] == [{"totalCount": 0, "nodes": []}] * 2

    # Page arguments are checked like any connection's.
    staff = gql.as_(token_for(settings, await make_staff(session)))
    refused = await staff.execute(ORDERS_OF, {"id": _gid(customers[0]), "first": 101})
    assert "between 0 and 100" in refused["errors"][0]["message"]
    forged = await staff.execute(ORDERS_OF, {"id": _gid(customers[0]), "after": "bm90LWEtY3Vyc29y"})
    assert "cursor" in forged["errors"][0]["message"]
