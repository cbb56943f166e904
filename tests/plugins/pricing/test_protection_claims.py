"""Claiming price protection over HTTP: the credit (paid − now) × quantity refunded in part,
the eligibility matrix answered with typed errors and nothing written, concurrent claims of
one line credited once, and who sees the claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import create_engine, session_factory
from server.models import Customer, OrderLine, OrderStatus, StaffRole, utcnow
from tests.plugins.pricing.protection_support import claims_and_refunds, cut_price, paid_line
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid, make_product

CLAIM = """mutation($input: ClaimPriceProtectionInput!) { claimPriceProtection(input: $input) {
  __typename
  ... on ClaimPriceProtectionSuccess { claim { orderLineId amount { amount }
    paidUnitPrice { amount } currentUnitPrice { amount } quantity method reference automatic } }
  ... on PriceProtectionRefused { code message field } } }"""
MINE = """{ myPriceProtectionClaims(first: 10) { nodes { orderLineId amount { amount } } } }"""
ALL = """{ priceProtectionClaims(first: 100) { nodes { orderLineId amount { amount } } } }"""


async def seed(session: AsyncSession) -> dict[str, Any]:
    return {
        "support": await make_staff(session, role=StaffRole.SUPPORT),
        "catalog": await make_staff(session, role=StaffRole.CATALOG),
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, seed) as built:
        yield built


@pytest.fixture
async def sessions(shop: ModuleShop) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(shop.database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def as_(gql: GraphQLClient, shop: ModuleShop, who: Any) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, who))


async def claim(client: GraphQLClient, line: OrderLine | str) -> dict[str, Any]:
    line_id = line if isinstance(line, str) else gid("OrderLine", line.id)
    return dict((await client(CLAIM, {"input": {"orderLineId": line_id}}))["claimPriceProtection"])


async def test_a_claim_refunds_the_difference_times_the_quantity(
    gql: GraphQLClient, shop: ModuleShop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        other = await make_customer(session)
        product = await make_product(session, price=10000)
        line = await paid_line(session, customer.id or 0, product, quantity=3)
        await cut_price(session, product, 8050)
    buyer = as_(gql, shop, customer)
    result = await claim(buyer, line)
    assert result["__typename"] == "ClaimPriceProtectionSuccess", result
    # (100.00 − 80.50) × 3 = 58.50
    assert result["claim"] | {"reference": ""} == {
        "orderLineId": gid("OrderLine", line.id),
        "amount": {"amount": "58.50"},
        "paidUnitPrice": {"amount": "100.00"},
        "currentUnitPrice": {"amount": "80.50"},
        "quantity": 3,
        "method": "REFUND",
        "reference": "",
        "automatic": False,
    }
    assert result["claim"]["reference"].startswith("refund_")
    async with sessions() as session:
        assert await claims_and_refunds(session, line.order_id) == (1, 5850)

    # The customer sees their claims; another customer sees none of them; staff who read
    # orders see every claim; staff who do not, do not.
    mine = (await buyer(MINE))["myPriceProtectionClaims"]["nodes"]
    assert mine == [{"orderLineId": gid("OrderLine", line.id), "amount": {"amount": "58.50"}}]
    assert (await as_(gql, shop, other)(MINE))["myPriceProtectionClaims"]["nodes"] == []
    every = (await as_(gql, shop, shop.seeded["support"])(ALL))["priceProtectionClaims"]["nodes"]
    assert mine[0] in every
    for client in (as_(gql, shop, shop.seeded["catalog"]), buyer, gql):
        body = await client.execute(ALL)
        assert body["data"] is None and body["errors"]
    body = await gql.execute(CLAIM, {"input": {"orderLineId": gid("OrderLine", line.id)}})
    assert body["data"] is None and body["errors"]  # customers only


async def test_ineligible_claims_are_typed_errors_and_write_nothing(
    gql: GraphQLClient, shop: ModuleShop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        customer = await make_customer(session)
        stranger = await make_customer(session)
        product = await make_product(session, price=5000)
        cid = customer.id or 0
        fresh = await paid_line(session, cid, product, quantity=2)
        unpaid = await paid_line(session, cid, product, status=OrderStatus.PENDING_PAYMENT)
        cancelled = await paid_line(session, cid, product, status=OrderStatus.CANCELLED)
        old = await paid_line(
            session, cid, product, placed_at=utcnow() - timedelta(days=7, minutes=5)
        )
        in_time = await paid_line(
            session, cid, product, placed_at=utcnow() - timedelta(days=6, hours=23)
        )
        theirs = await paid_line(session, stranger.id or 0, product)
    buyer = as_(gql, shop, customer)

    # Before any price change: the price is not lower.
    assert (await claim(buyer, fresh))["code"] == "PRICE_NOT_LOWER"
    async with sessions() as session:
        await cut_price(session, product, 5100)  # dearer: still not lower
    assert (await claim(buyer, fresh))["code"] == "PRICE_NOT_LOWER"
    async with sessions() as session:
        await cut_price(session, product, 4000)

    # Not yours, unpaid, cancelled, missing, malformed: one answer, which says nothing of
    # whether the line exists.
    missing = gid("OrderLine", 987654)
    answers = {
        "theirs": await claim(buyer, theirs),
        "unpaid": await claim(buyer, unpaid),
        "cancelled": await claim(buyer, cancelled),
        "missing": await claim(buyer, missing),
        "malformed": await claim(buyer, "not-an-id"),
    }
    for name, answer in answers.items():
        assert answer["__typename"] == "PriceProtectionRefused", name
        assert answer["code"] == "NOT_ELIGIBLE", name
        assert answer["field"] == "orderLineId", name
    texts = {
        a["message"].replace(str(i), "<id>")
        for a, i in [
            (answers["theirs"], theirs.id),
            (answers["unpaid"], unpaid.id),
            (answers["missing"], 987654),
        ]
    }
    assert len(texts) == 1

    # Bought more than protection_days (7) ago: outside the window; just inside: credited.
    assert (await claim(buyer, old))["code"] == "OUTSIDE_WINDOW"
    assert (await claim(buyer, in_time))["__typename"] == "ClaimPriceProtectionSuccess"

    # Once per line.
    assert (await claim(buyer, fresh))["claim"]["amount"] == {"amount": "20.00"}
    again = await claim(buyer, fresh)
    assert again["code"] == "ALREADY_CLAIMED"

    async with sessions() as session:
        for line in (unpaid, cancelled, old, theirs):
            assert await claims_and_refunds(session, line.order_id) == (0, 0)
        assert await claims_and_refunds(session, fresh.order_id) == (1, 2000)
        assert await claims_and_refunds(session, in_time.order_id) == (1, 1000)


async def test_concurrent_claims_of_one_line_credit_it_once(
    gql: GraphQLClient, shop: ModuleShop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        customer: Customer = await make_customer(session)
        product = await make_product(session, price=3000)
        line = await paid_line(session, customer.id or 0, product, quantity=2)
        await cut_price(session, product, 2500)
    buyer = as_(gql, shop, customer)
    answers = await asyncio.gather(*(claim(buyer, line) for _ in range(4)))
    kinds = sorted(a["__typename"] + ":" + a.get("code", "") for a in answers)
    assert kinds == [
        "ClaimPriceProtectionSuccess:",
        "PriceProtectionRefused:ALREADY_CLAIMED",
        "PriceProtectionRefused:ALREADY_CLAIMED",
        "PriceProtectionRefused:ALREADY_CLAIMED",
    ]
    async with sessions() as session:
        assert await claims_and_refunds(session, line.order_id) == (1, 1000)
