"""Group buying over HTTP, on SQLite and PostgreSQL, one served shop per backend: a cart's
choice (openGroupBuy, joinGroupBuy, leaveGroupBuy) with each typed refusal, the public
groupBuy(code) and a customer's myGroupBuys (its statements not growing with the page)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import BuyGroup, CartGroupChoice, GroupStatus, PromotionStatus
from plugins.promotions.service import groups
from server.models import utcnow
from tests.plugins.promotions.groups_support import group_buy, ident, order_of
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import ADD_LINES, gid, line_input, make_product, new_cart, place
from tests.support.statements import counting

CHOICE = """
    __typename
    ... on GroupBuyChoiceSuccess {
      choice { promotionId group { code label size members seatsLeft status expiresAt } }
    }
    ... on Error { code message field }
"""
OPEN = "mutation($input: OpenGroupBuyInput!) { openGroupBuy(input: $input) {" + CHOICE + "} }"
JOIN = "mutation($input: JoinGroupBuyInput!) { joinGroupBuy(input: $input) {" + CHOICE + "} }"
LEAVE = """mutation($input: LeaveGroupBuyInput!) { leaveGroupBuy(input: $input) {
  __typename ... on LeaveGroupBuySuccess { cleared } ... on Error { code message field } } }"""
GROUP = """query($code: String!) { groupBuy(code: $code) {
  code label promotionId size members seatsLeft status expiresAt } }"""
MINE = """query($first: Int) { myGroupBuys(first: $first) {
  totalCount
  nodes { orderId orderNumber orderStatus leader joinedAt group { code status members label } }
} }"""


async def _seed(session: AsyncSession) -> dict[str, Any]:
    target = await make_product(session, price=10000)
    other = await make_product(session, price=5000)
    promotion = await group_buy(session, [target], size=3)
    paused = await group_buy(session, [target], status=PromotionStatus.PAUSED)
    later = await group_buy(session, [target], starts_at=utcnow() + timedelta(days=1))
    leader, friend, third, loner = [await make_customer(session) for _ in range(4)]
    now = utcnow()
    # An open group led by `leader`, two more of theirs (one full, one expired) for the list.
    opened = await groups.open_group(
        session,
        ident(promotion),
        ident(leader),
        ident(await order_of(session, leader, target)),
        now,
    )
    full = await groups.open_group(
        session,
        ident(promotion),
        ident(friend),
        ident(await order_of(session, friend, target)),
        now,
    )
    for member in (leader, third):
        problem = await groups.join_group(
            session,
            ident(full),
            ident(promotion),
            ident(member),
            ident(await order_of(session, member, target)),
            now,
        )
        assert problem is None
    # A group only the checkout test changes under a cart's feet.
    changing = await groups.open_group(
        session,
        ident(promotion),
        ident(third),
        ident(await order_of(session, third, target)),
        now,
    )
    expired = await groups.open_group(
        session,
        ident(promotion),
        ident(leader),
        ident(await order_of(session, leader, target)),
        now,
    )
    await session.execute(
        update(BuyGroup)
        .where(col(BuyGroup.id) == ident(expired))
        .values(status=GroupStatus.EXPIRED, expires_at=now - timedelta(minutes=1))
    )
    await session.commit()
    return {
        "target": target,
        "other": other,
        "promotion": ident(promotion),
        "paused": ident(paused),
        "later": ident(later),
        "leader": leader,
        "friend": friend,
        "third": third,
        "loner": loner,
        "open": opened.code,
        "full": full.code,
        "expired": expired.code,
        "changing": ident(changing),
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


def _as(gql: GraphQLClient, shop: ModuleShop, who: str) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded[who]))


async def _cart(client: GraphQLClient, shop: ModuleShop, product: str = "target") -> str:
    token = await new_cart(client)
    data = await client(
        ADD_LINES,
        {"input": {"cartToken": token, "lines": [line_input(shop.seeded[product], 1)]}},
    )
    assert data["cartAddLines"]["__typename"] == "CartAddLinesSuccess", data
    return token


def _promotion(shop: ModuleShop, name: str = "promotion") -> str:
    return gid("Promotion", shop.seeded[name])


async def _choice_rows(shop: ModuleShop) -> list[tuple[int, int | None]]:
    from server.db import create_engine, session_factory

    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(col(CartGroupChoice.promotion_id), col(CartGroupChoice.group_id))
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        await engine.dispose()


async def test_open_and_its_refusals(gql: GraphQLClient, shop: ModuleShop) -> None:
    friend = _as(gql, shop, "friend")
    token = await _cart(friend, shop)
    data = await friend(OPEN, {"input": {"cartToken": token, "promotionId": _promotion(shop)}})
    result = data["openGroupBuy"]
    assert result["__typename"] == "GroupBuyChoiceSuccess", result
    assert result["choice"] == {"promotionId": _promotion(shop), "group": None}

    async def refused(client: GraphQLClient, cart: str, promotion: str) -> tuple[str, str]:
        data = await client(OPEN, {"input": {"cartToken": cart, "promotionId": promotion}})
        result = data["openGroupBuy"]
        return result["__typename"], result["code"]

    refusal = "GroupBuyRefused"
    assert await refused(friend, token, _promotion(shop, "paused")) == (refusal, "PAUSED")
    assert await refused(friend, token, _promotion(shop, "later")) == (refusal, "NOT_STARTED")
    assert await refused(friend, token, gid("Promotion", 999999)) == (refusal, "NOT_GROUP_BUY")
    assert await refused(friend, token, "not-an-id") == (refusal, "NOT_GROUP_BUY")
    off_target = await _cart(friend, shop, "other")
    assert await refused(friend, off_target, _promotion(shop)) == (refusal, "NO_ELIGIBLE_ITEMS")
    guest_cart = await _cart(gql, shop)
    assert await refused(gql, guest_cart, _promotion(shop)) == (refusal, "SIGN_IN_REQUIRED")
    # Another customer's cart is answered as a missing one.
    third = _as(gql, shop, "third")
    assert await refused(third, token, _promotion(shop)) == ("NotFoundError", "NOT_FOUND")
    # The refusals wrote nothing: the cart's first choice stands.
    assert (ident_of(shop, "promotion"), None) in await _choice_rows(shop)


def ident_of(shop: ModuleShop, name: str) -> int:
    return int(shop.seeded[name])


async def test_join_replace_and_leave(gql: GraphQLClient, shop: ModuleShop) -> None:
    third = _as(gql, shop, "third")
    token = await _cart(third, shop)
    code = shop.seeded["open"]
    before = len(await _choice_rows(shop))
    data = await third(JOIN, {"input": {"cartToken": token, "code": f" {code.lower()} "}})
    result = data["joinGroupBuy"]
    assert result["__typename"] == "GroupBuyChoiceSuccess", result
    group = result["choice"]["group"]
    assert {k: group[k] for k in ("code", "label", "size", "members", "seatsLeft", "status")} == {
        "code": code,
        "label": "三人团 8 折",
        "size": 3,
        "members": 1,
        "seatsLeft": 2,
        "status": "OPEN",
    }
    assert len(await _choice_rows(shop)) == before + 1

    # Opening instead replaces the cart's choice (still one row for the cart).
    data = await third(OPEN, {"input": {"cartToken": token, "promotionId": _promotion(shop)}})
    assert data["openGroupBuy"]["choice"]["group"] is None
    assert len(await _choice_rows(shop)) == before + 1

    data = await third(LEAVE, {"input": {"cartToken": token}})
    assert data["leaveGroupBuy"] == {"__typename": "LeaveGroupBuySuccess", "cleared": True}
    data = await third(LEAVE, {"input": {"cartToken": token}})
    assert data["leaveGroupBuy"] == {"__typename": "LeaveGroupBuySuccess", "cleared": False}
    assert len(await _choice_rows(shop)) == before


@pytest.mark.parametrize(
    ("who", "code", "expected"),
    [
        ("leader", "open", "ALREADY_IN_GROUP"),
        ("loner", "full", "GROUP_FULL"),
        ("loner", "expired", "GROUP_EXPIRED"),
        ("loner", None, "GROUP_NOT_FOUND"),
    ],
)
async def test_join_refusals(
    gql: GraphQLClient, shop: ModuleShop, who: str, code: str | None, expected: str
) -> None:
    client = _as(gql, shop, who)
    token = await _cart(client, shop)
    given = shop.seeded[code] if code is not None else "NOSUCHCODE"
    data = await client(JOIN, {"input": {"cartToken": token, "code": given}})
    result = data["joinGroupBuy"]
    assert (result["__typename"], result["code"], result["field"]) == (
        "GroupBuyRefused",
        expected,
        "code",
    )


async def test_join_needs_a_signed_in_customer(gql: GraphQLClient, shop: ModuleShop) -> None:
    token = await _cart(gql, shop)
    data = await gql(JOIN, {"input": {"cartToken": token, "code": shop.seeded["open"]}})
    assert data["joinGroupBuy"]["code"] == "SIGN_IN_REQUIRED"


async def test_group_buy_by_code_is_public_and_names_nobody(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    data = await gql(GROUP, {"code": shop.seeded["full"].lower()})
    group = data["groupBuy"]
    assert {k: v for k, v in group.items() if k != "expiresAt"} == {
        "code": shop.seeded["full"],
        "label": "三人团 8 折",
        "promotionId": _promotion(shop),
        "size": 3,
        "members": 3,
        "seatsLeft": 0,
        "status": "SUCCEEDED",
    }
    data = await gql(GROUP, {"code": shop.seeded["expired"]})
    assert (data["groupBuy"]["status"], data["groupBuy"]["seatsLeft"]) == ("EXPIRED", 0)
    assert (await gql(GROUP, {"code": "NOSUCHCODE"}))["groupBuy"] is None
    assert (await gql(GROUP, {"code": "X" * 33}))["groupBuy"] is None
    # The type has nothing that names a member.
    fields = await gql('{ __type(name: "GroupBuy") { fields { name } } }')
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert names == {
        "code",
        "label",
        "promotionId",
        "size",
        "members",
        "seatsLeft",
        "status",
        "expiresAt",
    }


async def test_my_group_buys(gql: GraphQLClient, shop: ModuleShop) -> None:
    leader = _as(gql, shop, "leader")
    data = await leader(MINE, {"first": 10})
    mine = data["myGroupBuys"]
    assert mine["totalCount"] == 3
    seen = [(n["group"]["code"], n["leader"], n["orderStatus"]) for n in mine["nodes"]]
    # Newest first: the expired group (opened last), the full one (joined), the open one.
    assert seen == [
        (shop.seeded["expired"], True, "PENDING_PAYMENT"),
        (shop.seeded["full"], False, "PENDING_PAYMENT"),
        (shop.seeded["open"], True, "PENDING_PAYMENT"),
    ]
    assert all(n["orderNumber"].startswith("SG-GB-") for n in mine["nodes"])
    assert all(n["orderId"].startswith("T3JkZXI6") for n in mine["nodes"])  # "Order:"

    body = await gql.execute(MINE, {"first": 10})
    assert body["data"] is None or body["data"].get("myGroupBuys") is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # One page of 1 and one of 3 read alike: the groups, promotions and orders in a batch each.
    counts = []
    for first in (1, 3):
        with counting(shop.app) as statements:
            await leader(MINE, {"first": first})
        counts.append(len(statements))
    assert counts[0] == counts[1]


CART = "query($token: String!) { cart(token: $token) { subtotal { amount } discount { amount } } }"


async def test_the_cart_has_the_group_price_while_it_chose_a_group(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    loner = _as(gql, shop, "loner")
    token = await _cart(loner, shop)

    async def priced() -> tuple[str, str]:
        cart = (await loner(CART, {"token": token}))["cart"]
        return cart["subtotal"]["amount"], cart["discount"]["amount"]

    # No choice, no group price: a group buy is not an automatic discount.
    assert await priced() == ("100.00", "0.00")
    data = await loner(OPEN, {"input": {"cartToken": token, "promotionId": _promotion(shop)}})
    assert data["openGroupBuy"]["__typename"] == "GroupBuyChoiceSuccess"
    # 20% off the one unit of ¥100.00.
    assert await priced() == ("100.00", "20.00")
    data = await loner(JOIN, {"input": {"cartToken": token, "code": shop.seeded["open"]}})
    assert data["joinGroupBuy"]["__typename"] == "GroupBuyChoiceSuccess"
    assert await priced() == ("100.00", "20.00")
    await loner(LEAVE, {"input": {"cartToken": token}})
    assert await priced() == ("100.00", "0.00")


async def _set_group(shop: ModuleShop, **values: Any) -> None:
    from server.db import create_engine, session_factory

    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            await session.execute(
                update(BuyGroup).where(col(BuyGroup.id) == shop.seeded["changing"]).values(**values)
            )
            await session.commit()
    finally:
        await engine.dispose()


async def test_a_choice_that_no_longer_holds_blocks_the_checkout(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    loner = _as(gql, shop, "loner")
    token = await _cart(loner, shop)
    code = await _group_code(shop)
    data = await loner(JOIN, {"input": {"cartToken": token, "code": code}})
    assert data["joinGroupBuy"]["__typename"] == "GroupBuyChoiceSuccess"

    # The group filled meanwhile: the order is refused, not placed at the price without it.
    await _set_group(shop, members=3, status=GroupStatus.SUCCEEDED)
    refused = await place(loner, token)
    assert refused["__typename"] == "CheckoutProblems", refused
    assert [(p["plugin"], p["code"]) for p in refused["problems"]] == [("promotions", "GROUP_FULL")]
    await _set_group(shop, members=1, status=GroupStatus.OPEN, expires_at=utcnow())
    refused = await place(loner, token)
    assert [p["code"] for p in refused["problems"]] == ["GROUP_EXPIRED"]

    # Leaving the group buy, the cart checks out at the price without it.
    await loner(LEAVE, {"input": {"cartToken": token}})
    placed = await place(loner, token)
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    assert (placed["order"]["subtotal"]["amount"], placed["order"]["discount"]["amount"]) == (
        "100.00",
        "0.00",
    )


async def _group_code(shop: ModuleShop) -> str:
    from server.db import create_engine, session_factory

    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            group = await session.get(BuyGroup, shop.seeded["changing"])
            assert group is not None
            return group.code
    finally:
        await engine.dispose()
