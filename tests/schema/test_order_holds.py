"""A plugin holds an order back from fulfilment (``order_fulfilment_hold``), cancels an order
and creates its shipments as the shop itself (``server.plugin.cancel_order``,
``create_shipment``), on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.db import mark_write
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Payment,
    PaymentStatus,
    Shipment,
)
from server.plugin import ParcelLine, cancel_order, create_shipment
from server.plugins import PluginRuntime
from server.services.errors import InvalidTransition, OrderOnHold, ValidationFailed
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    count,
    gid,
    make_product,
    make_warehouse,
    only_plugins,
    pay,
    place_ok,
    stock_of,
)

UPDATE_STATUS = """
mutation($input: UpdateOrderStatusInput!) { updateOrderStatus(input: $input) {
  __typename
  ... on UpdateOrderStatusSuccess { order { status } }
  ... on OrderOnHold { target reasons }
  ... on Error { code message field }
} }"""
CREATE_SHIPMENT = """
mutation($input: CreateShipmentInput!) { createShipment(input: $input) {
  __typename
  ... on CreateShipmentSuccess { order { status } }
  ... on OrderOnHold { target reasons }
  ... on Error { code message field }
} }"""
HOLDS = "query($id: ID!) { order(id: $id) { status holds { plugin reason } } }"


class Holds:
    """Holds the orders whose ids are in ``held`` (the answer is ``held[id]``, whatever it
    is), and records what ``order_cancelling`` was told."""

    def __init__(self) -> None:
        self.held: dict[int, Any] = {}
        self.cancelled: list[tuple[int, str]] = []

    def plugin(self) -> FakePlugin:
        return FakePlugin(
            "groupbuy",
            order_fulfilment_hold=lambda order: self.held.get(order.id),
            order_cancelling=lambda order, reason: self.cancelled.append((order.id, reason)),
        )


@pytest.fixture
def holds() -> Holds:
    return Holds()


@pytest.fixture
def plugins(settings: Settings, holds: Holds) -> PluginRuntime:
    # A second plugin that never holds: its None is no reason.
    return only_plugins(
        settings, holds.plugin(), FakePlugin("quiet", order_fulfilment_hold=lambda order: None)
    )


async def _paid_order(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> tuple[dict[str, Any], int, Any, GraphQLClient]:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    product = await make_product(session, price=5000, stock=4)
    order = await place_ok(buyer, [(product, 2)])
    assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
    order_id = int(await session.scalar(select(Order.id)) or 0)
    await session.commit()  # no read transaction left open to block the server's writes
    return order, order_id, product, buyer


async def test_hook_order_fulfilment_hold(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, holds: Holds
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    order, order_id, _product, buyer = await _paid_order(gql, session, settings)
    warehouse = await make_warehouse(session)
    holds.held[order_id] = " 拼团还差 2 人 "
    to_fulfilling = {"input": {"orderId": order["id"], "status": "FULFILLING"}}

    refused = (await staff(UPDATE_STATUS, to_fulfilling))["updateOrderStatus"]
    assert refused["__typename"] == "OrderOnHold"
    assert refused["code"] == "ORDER_ON_HOLD"
    assert refused["target"] == "FULFILLING"
    assert refused["reasons"] == ["groupbuy: 拼团还差 2 人"]
    assert "groupbuy: 拼团还差 2 人" in refused["message"]
    shipment = {
        "input": {
            "orderId": order["id"],
            "warehouseId": gid("Warehouse", warehouse.id),
            "carrier": "顺丰",
            "trackingNumber": "SF1001",
        }
    }
    assert (await staff(CREATE_SHIPMENT, shipment))["createShipment"]["__typename"] == (
        "OrderOnHold"
    )
    # Refused: nothing written, the order has not moved.
    assert await count(session, Shipment) == 0
    assert await count(session, OrderStatusChange) == 2  # placed, paid
    listed = (await staff(HOLDS, {"id": order["id"]}))["order"]
    assert listed == {
        "status": "PAID",
        "holds": [{"plugin": "groupbuy", "reason": "拼团还差 2 人"}],
    }

    # Lifted: it moves on; held again while FULFILLING, no shipment may be created.
    del holds.held[order_id]
    assert (await staff(HOLDS, {"id": order["id"]}))["order"]["holds"] == []
    moved = (await staff(UPDATE_STATUS, to_fulfilling))["updateOrderStatus"]
    assert moved == {"__typename": "UpdateOrderStatusSuccess", "order": {"status": "FULFILLING"}}
    holds.held[order_id] = "等待成团"
    held = (await staff(CREATE_SHIPMENT, shipment))["createShipment"]
    assert (held["__typename"], held["target"]) == ("OrderOnHold", "FULFILLING")
    shipped = await staff(UPDATE_STATUS, {"input": {"orderId": order["id"], "status": "SHIPPED"}})
    assert shipped["updateOrderStatus"]["reasons"] == ["groupbuy: 等待成团"]
    # Holds do not stop a cancellation.
    cancelled = await staff(
        UPDATE_STATUS, {"input": {"orderId": order["id"], "status": "CANCELLED"}}
    )
    assert cancelled["updateOrderStatus"]["order"]["status"] == "CANCELLED"

    # A customer may not read the holds (staff data).
    buyer_view = await buyer.execute(HOLDS, {"id": order["id"]})
    assert buyer_view["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_hold_that_is_not_a_reason_fails_naming_the_plugin(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, holds: Holds
) -> None:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    order, order_id, _product, buyer = await _paid_order(gql, session, settings)
    holds.held[order_id] = 42
    body = await staff.execute(
        UPDATE_STATUS, {"input": {"orderId": order["id"], "status": "FULFILLING"}}
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PLUGIN_FAILED"
    assert error["extensions"]["plugin"] == "groupbuy"
    assert error["extensions"]["hook"] == "order_fulfilment_hold"
    await session.commit()  # a fresh snapshot
    assert await session.scalar(select(Order.status)) is OrderStatus.PAID


async def test_cancel_order_as_the_system(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    plugins: PluginRuntime,
    holds: Holds,
) -> None:
    _order, order_id, product, _buyer = await _paid_order(gql, session, settings)
    assert await stock_of(session, product) == [(4, 2)]

    await mark_write(session)
    cancelled = await cancel_order(session, plugins, order_id, reason="拼团失败，自动取消")
    await session.commit()
    assert cancelled.status is OrderStatus.CANCELLED
    # Stock released, the captured payment refunded, the plugins told why.
    assert await stock_of(session, product) == [(4, 0)]
    assert list(await session.scalars(select(Payment.status))) == [PaymentStatus.REFUNDED]
    assert holds.cancelled == [(order_id, "拼团失败，自动取消")]
    last = await session.scalar(
        select(OrderStatusChange).order_by(OrderStatusChange.id.desc()).limit(1)  # type: ignore[union-attr]
    )
    assert last is not None
    assert (last.to_status, last.actor, last.note) == (
        OrderStatus.CANCELLED,
        "system",
        "拼团失败，自动取消",
    )
    await session.commit()

    await mark_write(session)
    with pytest.raises(InvalidTransition):
        await cancel_order(session, plugins, order_id, reason="again", actor="plugin:groupbuy")
    await session.rollback()


async def test_create_shipment_as_the_system(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    plugins: PluginRuntime,
    holds: Holds,
) -> None:
    _order, order_id, _product, _buyer = await _paid_order(gql, session, settings)
    warehouse_id = int(await session.scalar(select(OrderLine.warehouse_id)) or 0)
    line_id = int(await session.scalar(select(OrderLine.id)) or 0)
    await session.commit()

    # Held: nothing is written, the hold says why.
    holds.held[order_id] = "拼团未成"
    await mark_write(session)
    with pytest.raises(OrderOnHold):
        await create_shipment(
            session, plugins, order_id, warehouse_id, "顺丰", "SF900", [ParcelLine(line_id, 1)]
        )
    await session.rollback()
    assert await count(session, Shipment) == 0

    del holds.held[order_id]
    await mark_write(session)
    shipment = await create_shipment(
        session,
        plugins,
        order_id,
        warehouse_id,
        "顺丰",
        "SF901",
        [ParcelLine(line_id, 1)],
        actor="plugin:logistics",
    )
    await session.commit()
    assert (shipment.carrier, shipment.tracking_number) == ("顺丰", "SF901")
    assert await session.scalar(select(Order.status)) is OrderStatus.FULFILLING
    last = await session.scalar(
        select(OrderStatusChange).order_by(OrderStatusChange.id.desc()).limit(1)  # type: ignore[union-attr]
    )
    assert last is not None
    assert (last.to_status, last.actor) == (OrderStatus.FULFILLING, "plugin:logistics")

    # One unit left: two more cannot ship, and nothing is written.
    await mark_write(session)
    with pytest.raises(ValidationFailed):
        await create_shipment(
            session, plugins, order_id, warehouse_id, "顺丰", "SF902", [ParcelLine(line_id, 2)]
        )
    await session.rollback()
    await mark_write(session)
    rest = await create_shipment(session, plugins, order_id, warehouse_id, "顺丰", "SF903")
    await session.commit()
    assert rest.tracking_number == "SF903"
    assert await count(session, Shipment) == 2
