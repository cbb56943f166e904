"""Group buying end to end over HTTP: open with a cart, place the order (the group is
opened), join with two more carts (the last seat makes it SUCCEEDED), three buyers racing for
the last seat, the hold lifted."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from tests.plugins.promotions.groups_support import group_buy, ident
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import ADD_LINES, gid, line_input, make_product, new_cart, pay, place

OPEN = """mutation($input: OpenGroupBuyInput!) { openGroupBuy(input: $input) {
  __typename ... on Error { code message } } }"""
JOIN = """mutation($input: JoinGroupBuyInput!) { joinGroupBuy(input: $input) {
  __typename ... on Error { code message } } }"""
MINE = "{ myGroupBuys(first: 5) { nodes { leader orderNumber group { code members status } } } }"
GROUP = "query($code: String!) { groupBuy(code: $code) { members seatsLeft status } }"
UPDATE_STATUS = """
mutation($input: UpdateOrderStatusInput!) { updateOrderStatus(input: $input) {
  __typename ... on OrderOnHold { reasons } ... on Error { code message } } }"""


async def _buyer(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, product: Any
) -> tuple[GraphQLClient, str]:
    client = gql.as_(token_for(settings, await make_customer(session)))
    token = await new_cart(client)
    data = await client(
        ADD_LINES, {"input": {"cartToken": token, "lines": [line_input(product, 1)]}}
    )
    assert data["cartAddLines"]["__typename"] == "CartAddLinesSuccess"
    return client, token


async def test_group_buy_end_to_end(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=10000, stock=10)
    promotion = gid("Promotion", ident(await group_buy(session, [product], size=3)))
    staff = gql.as_(token_for(settings, await make_staff(session)))

    leader, cart = await _buyer(gql, session, settings, product)
    assert (await leader(OPEN, {"input": {"cartToken": cart, "promotionId": promotion}}))[
        "openGroupBuy"
    ]["__typename"] == "GroupBuyChoiceSuccess"
    placed = await place(leader, cart)
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    assert (placed["order"]["discount"]["amount"], placed["order"]["subtotal"]["amount"]) == (
        "20.00",
        "100.00",
    )
    assert (await pay(leader, placed["order"]))["__typename"] == "PayOrderSuccess"
    [mine] = (await leader(MINE))["myGroupBuys"]["nodes"]
    assert mine["leader"] and mine["orderNumber"] == placed["order"]["number"]
    code = mine["group"]["code"]
    assert mine["group"]["members"] == 1

    held = (
        await staff(
            UPDATE_STATUS, {"input": {"orderId": placed["order"]["id"], "status": "FULFILLING"}}
        )
    )["updateOrderStatus"]
    assert held["__typename"] == "OrderOnHold", held

    friend, cart2 = await _buyer(gql, session, settings, product)
    assert (await friend(JOIN, {"input": {"cartToken": cart2, "code": code}}))["joinGroupBuy"][
        "__typename"
    ] == "GroupBuyChoiceSuccess"
    placed2 = await place(friend, cart2)
    assert placed2["__typename"] == "PlaceOrderSuccess", placed2
    assert placed2["order"]["discount"]["amount"] == "20.00"
    assert (await gql(GROUP, {"code": code}))["groupBuy"] == {
        "members": 2,
        "seatsLeft": 1,
        "status": "OPEN",
    }

    # Three buyers race for the last seat: one gets it.
    racers = [await _buyer(gql, session, settings, product) for _ in range(3)]
    for client, token in racers:
        r = (await client(JOIN, {"input": {"cartToken": token, "code": code}}))["joinGroupBuy"]
        assert r["__typename"] == "GroupBuyChoiceSuccess", r
    await session.commit()
    results = await asyncio.gather(*(place(client, token) for client, token in racers))
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["CheckoutProblems", "CheckoutProblems", "PlaceOrderSuccess"], results
    codes = [
        p["code"] for r in results if r["__typename"] == "CheckoutProblems" for p in r["problems"]
    ]
    assert codes == ["GROUP_FULL", "GROUP_FULL"]
    assert (await gql(GROUP, {"code": code}))["groupBuy"] == {
        "members": 3,
        "seatsLeft": 0,
        "status": "SUCCEEDED",
    }

    moved = (
        await staff(
            UPDATE_STATUS, {"input": {"orderId": placed["order"]["id"], "status": "FULFILLING"}}
        )
    )["updateOrderStatus"]
    assert moved["__typename"] == "UpdateOrderStatusSuccess", moved
