"""Concurrent checkouts over HTTP against the real server: no oversell, no duplicate orders."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import IdempotencyKey, Order, OrderLine, OutboxEvent
from server.plugins import PluginRuntime
from tests.plugins.seats import SeatsPlugin, create_pool, pool
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    PLACE_ORDER,
    VariantSpec,
    cart_with,
    count,
    gid,
    make_product,
    make_variant_product,
    make_warehouse,
    only_plugins,
    order_input,
    stock_of,
    unthrottled,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return unthrottled(settings)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


async def _fire(gql: GraphQLClient, variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every placeOrder at once; each must come back as data (typed result), not an error."""
    bodies = await asyncio.gather(*(gql.execute(PLACE_ORDER, v) for v in variables))
    for body in bodies:
        assert not body.get("errors"), body["errors"]
    return [body["data"]["placeOrder"] for body in bodies]


async def test_forty_buyers_ten_units_no_oversell(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, stock=10)
    tokens = [await cart_with(gql, [(product, 1)]) for _ in range(40)]

    results = await _fire(gql, [order_input(t, f"buy-{i}") for i, t in enumerate(tokens)])

    kinds = [r["__typename"] for r in results]
    assert kinds.count("PlaceOrderSuccess") == 10, kinds
    assert kinds.count("OutOfStock") == 30, kinds
    for r in results:
        if r["__typename"] == "OutOfStock":
            assert r["requested"] == 1
            assert r["available"] == 0
    assert len({r["order"]["id"] for r in results if "order" in r}) == 10
    assert await stock_of(session, product) == [(10, 10)]
    assert await count(session, Order) == 10
    assert await count(session, OrderLine) == 10
    assert await count(session, OutboxEvent, OutboxEvent.name == "order_placed") == 10


async def test_multi_unit_orders_never_take_more_than_stock(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    # 12 buyers of 3 units each against 20 units: 6 fit (18), then 2 are left, less than 3.
    product = await make_product(session, stock=20)
    tokens = [await cart_with(gql, [(product, 3)]) for _ in range(12)]

    results = await _fire(gql, [order_input(t, f"multi-{i}") for i, t in enumerate(tokens)])

    kinds = [r["__typename"] for r in results]
    assert kinds.count("PlaceOrderSuccess") == 6, kinds
    assert {r["available"] for r in results if r["__typename"] == "OutOfStock"} == {2}
    assert await stock_of(session, product) == [(20, 18)]


async def test_same_key_fired_concurrently_places_one_order(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, stock=50)
    token = await cart_with(gql, [(product, 2)])
    same = order_input(token, "retry-me")

    results = await _fire(gql, [same] * 8)

    assert [r["__typename"] for r in results] == ["PlaceOrderSuccess"] * 8
    assert len({r["order"]["id"] for r in results}) == 1
    assert len({r["order"]["number"] for r in results}) == 1
    assert await count(session, Order) == 1
    assert await count(session, IdempotencyKey) == 1
    # Stock was reserved once, not eight times.
    assert await stock_of(session, product) == [(50, 2)]

    # A later retry, after the fact, still gets the same order.
    again = await _fire(gql, [same])
    assert again[0]["order"]["id"] == results[0]["order"]["id"]


async def test_same_key_with_different_input_is_a_conflict_and_writes_nothing(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, stock=5)
    token = await cart_with(gql, [(product, 1)])
    first = await _fire(gql, [order_input(token, "k-1")])
    assert first[0]["__typename"] == "PlaceOrderSuccess"
    outbox_before = await count(session, OutboxEvent)

    changed = order_input(token, "k-1", email="someone-else@example.cn")
    results = await _fire(gql, [changed] * 3)

    for r in results:
        assert r["__typename"] == "IdempotencyConflict", r
        assert r["code"] == "IDEMPOTENCY_CONFLICT"
        assert r["field"] == "idempotencyKey"
    assert await count(session, Order) == 1
    assert await count(session, IdempotencyKey) == 1
    assert await count(session, OutboxEvent) == outbox_before
    assert await stock_of(session, product) == [(5, 1)]


async def test_one_cart_checked_out_twice_concurrently_with_different_keys(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, stock=10)
    token = await cart_with(gql, [(product, 1)])

    results = await _fire(gql, [order_input(token, f"tab-{i}") for i in range(6)])

    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["ConflictError"] * 5 + ["PlaceOrderSuccess"]
    assert await count(session, Order) == 1
    assert await stock_of(session, product) == [(10, 1)]


class TestPluginReservations:
    """A plugin's limited counter (group-buy seats), reserved in placeOrder's transaction with
    a conditional UPDATE and given back in the cancelling one: never over-reserved."""

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return only_plugins(settings, SeatsPlugin())

    async def test_concurrent_orders_never_take_more_seats_than_there_are(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        await create_pool(session, capacity=5)
        product = await make_product(session, stock=100)
        tokens = [await cart_with(gql, [(product, 1)]) for _ in range(14)]

        results = await _fire(gql, [order_input(t, f"seat-{i}") for i, t in enumerate(tokens)])

        kinds = [r["__typename"] for r in results]
        assert kinds.count("PlaceOrderSuccess") == 5, kinds
        assert kinds.count("CheckoutProblems") == 9, kinds
        for r in results:
            if r["__typename"] == "CheckoutProblems":
                assert [(p["plugin"], p["code"]) for p in r["problems"]] == [("seats", "SOLD_OUT")]
        assert await pool(session) == (5, 5)
        # The refused orders left nothing behind: no order, no stock held.
        assert await count(session, Order) == 5
        assert await stock_of(session, product) == [(100, 5)]

        # Cancelled concurrently, the seats come back exactly once each.
        staff = gql.as_(token_for(settings, await make_staff(session)))
        placed = [r["order"]["id"] for r in results if r["__typename"] == "PlaceOrderSuccess"]
        cancels = await asyncio.gather(
            *(staff(CANCEL_ORDER, {"input": {"orderId": oid}}) for oid in placed[:3] * 2)
        )
        statuses = sorted(c["cancelOrder"]["__typename"] for c in cancels)
        assert statuses == ["CancelOrderSuccess"] * 3 + ["InvalidTransition"] * 3, statuses
        assert await pool(session) == (2, 2)
        assert await stock_of(session, product) == [(100, 2)]

        # And are taken again, by as many buyers as there are seats.
        tokens = [await cart_with(gql, [(product, 1)]) for _ in range(6)]
        again = await _fire(gql, [order_input(t, f"again-{i}") for i, t in enumerate(tokens)])
        assert [r["__typename"] for r in again].count("PlaceOrderSuccess") == 3
        assert await pool(session) == (5, 5)


async def test_buyers_racing_for_one_variant_never_oversell_it_nor_touch_its_sibling(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    # Red and blue share a warehouse: 30 buyers race for 10 red, 4 others buy blue meanwhile.
    tee, (red, blue) = await make_variant_product(
        session,
        [
            VariantSpec("TEE-RED-M", {"颜色": "红色"}, stock=10),
            VariantSpec("TEE-BLUE-M", {"颜色": "蓝色"}, stock=10),
        ],
    )
    reds = [await cart_with(gql, [(red, 1)]) for _ in range(30)]
    blues = [await cart_with(gql, [(blue, 1)]) for _ in range(4)]

    results = await _fire(gql, [order_input(t, f"race-{i}") for i, t in enumerate(reds + blues)])

    red_kinds = [r["__typename"] for r in results[:30]]
    assert red_kinds.count("PlaceOrderSuccess") == 10, red_kinds
    assert red_kinds.count("OutOfStock") == 20, red_kinds
    for r in results[:30]:
        if r["__typename"] == "OutOfStock":
            assert (r["variantId"], r["available"]) == (gid("ProductVariant", red.id), 0)
    assert [r["__typename"] for r in results[30:]] == ["PlaceOrderSuccess"] * 4
    assert await stock_of(session, red) == [(10, 10)]
    assert await stock_of(session, blue) == [(10, 4)]
    assert await count(session, OrderLine, OrderLine.variant_id == red.id) == 10
    assert await count(session, OrderLine, OrderLine.variant_id == blue.id) == 4


async def test_two_variants_in_different_warehouses_are_each_reserved_from_their_own(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    # Every buyer takes one of each: red only in Hangzhou, blue only in Shanghai, 6 of each.
    hz = await make_warehouse(session, code="HZ-V")
    sh = await make_warehouse(session, code="SH-V")
    tee, (red, blue) = await make_variant_product(
        session,
        [
            VariantSpec("TEE-RED-M", {"颜色": "红色"}, stock=[(hz, 6)]),
            VariantSpec("TEE-BLUE-M", {"颜色": "蓝色"}, stock=[(sh, 6)]),
        ],
    )
    tokens = [await cart_with(gql, [(blue, 1), (red, 1)]) for _ in range(10)]

    results = await _fire(gql, [order_input(t, f"pair-{i}") for i, t in enumerate(tokens)])

    kinds = [r["__typename"] for r in results]
    assert kinds.count("PlaceOrderSuccess") == 6, kinds
    assert kinds.count("OutOfStock") == 4, kinds
    assert await stock_of(session, red) == [(6, 6)]
    assert await stock_of(session, blue) == [(6, 6)]
    placed = await count(session, OrderLine)
    assert placed == 12
    assert await count(session, OrderLine, OrderLine.warehouse_id == hz.id) == 6
    assert await count(session, OrderLine, OrderLine.warehouse_id == sh.id) == 6
    assert await stock_of(session, tee) == [(6, 6), (6, 6)]
