"""Access to orders, payments, shipments, carts, staff users and plugin operations follows
permissions (a staff role's or an API key's scopes), never "is a staff member": a role without
the permission is answered like a stranger, an API key holding the scope is let in."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import DeliveryStatus, OutboxDelivery, OutboxEvent, StaffRole
from server.permissions import EVENTS_MANAGE, RoleMap
from server.services import apikeys
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    ADD_LINES,
    CANCEL_ORDER,
    PAY_ORDER,
    UPDATE_STATUS,
    cart_with,
    gid,
    make_product,
    make_warehouse,
    pay,
    place_ok,
)

ORDER = """query($id: ID!) {
  order(id: $id) { number status statusHistory { actor } shipments { trackingNumber } }
  node(id: $id) { id }
}"""
ORDERS = "{ orders(first: 5) { totalCount } }"

CREATE_SHIPMENT = """mutation($input: CreateShipmentInput!) {
  createShipment(input: $input) {
    __typename
    ... on CreateShipmentSuccess { shipment { id status } order { status } }
  }
}"""
TRACK = """mutation($input: RecordTrackingEventInput!) {
  recordTrackingEvent(input: $input) {
    __typename
    ... on RecordTrackingEventSuccess { shipment { status } }
  }
}"""
SHIPMENT = """query($id: ID!) {
  shipment(id: $id) { trackingNumber order { number } lines { quantity orderLine { sku } } }
}"""


async def api_key(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, *scopes: str
) -> GraphQLClient:
    """A client signed in with a new API key holding ``scopes``."""
    created = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="integration", scopes=list(scopes), created_by="test"
    )
    await session.commit()
    return gql.as_(created.secret)


async def staff(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, role: StaffRole
) -> GraphQLClient:
    return gql.as_(token_for(settings, await make_staff(session, role=role)))


async def paid_order(buyer: GraphQLClient, session: AsyncSession) -> dict[str, Any]:
    order = await place_ok(buyer, [(await make_product(session), 1)])
    assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
    return order


def payload(data: dict[str, Any]) -> Any:
    """The one root field's value of a mutation's data."""
    [value] = data.values()
    return value


async def test_seeing_orders_needs_orders_read(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    order = await paid_order(buyer, session)
    variables = {"id": order["id"]}

    # CATALOG has no orders.read: the order is not there, as for a stranger.
    catalog = await staff(gql, session, settings, StaffRole.CATALOG)
    assert await catalog(ORDER, variables) == {"order": None, "node": None}
    assert (await catalog(ORDERS))["orders"]["totalCount"] == 0

    reader = await api_key(gql, session, settings, "orders.read")
    seen = await reader(ORDER, variables)
    assert seen["order"]["number"] == order["number"] and seen["node"] == {"id": order["id"]}
    assert (await reader(ORDERS))["orders"]["totalCount"] == 1
    # Who changed the order is for readers of orders, not for the buyer.
    assert any(h["actor"] for h in seen["order"]["statusHistory"])
    mine = await buyer(ORDER, variables)
    assert mine["order"]["statusHistory"] and not any(
        h["actor"] for h in mine["order"]["statusHistory"]
    )


async def test_changing_orders_needs_orders_manage(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    paid = await paid_order(buyer, session)
    unpaid = await place_ok(buyer, [(await make_product(session), 1)])
    manual = {
        "input": {
            "orderId": unpaid["id"],
            "gateway": "manual",
            "amount": {"amount": unpaid["total"]["amount"]},
        }
    }
    cancel = {"input": {"orderId": paid["id"]}}
    advance = {"input": {"orderId": paid["id"], "status": "FULFILLING"}}

    # LOGISTICS reads orders (orders.read) but may not change them: nothing to act on.
    logistics = await staff(gql, session, settings, StaffRole.LOGISTICS)
    for document, variables in (
        (CANCEL_ORDER, cancel),
        (UPDATE_STATUS, advance),
        (PAY_ORDER, manual),
    ):
        refused = payload(await logistics(document, variables))
        assert refused["__typename"] == "NotFoundError", (document, refused)
    statuses = [
        (await logistics(ORDER, {"id": o["id"]}))["order"]["status"] for o in (paid, unpaid)
    ]
    assert statuses == ["PAID", "PENDING_PAYMENT"]

    manager = await api_key(gql, session, settings, "orders.manage")
    moved = payload(await manager(UPDATE_STATUS, advance))
    assert (
        moved["__typename"] == "UpdateOrderStatusSuccess"
        and moved["order"]["status"] == "FULFILLING"
    )
    # Past what the buyer may cancel (FULFILLING), orders.manage still may.
    cancelled = payload(await manager(CANCEL_ORDER, cancel))
    assert cancelled["__typename"] == "CancelOrderSuccess"
    assert cancelled["order"]["status"] == "CANCELLED"
    recorded = payload(await manager(PAY_ORDER, manual))
    assert recorded["__typename"] == "PayOrderSuccess"
    assert recorded["payment"]["gateway"] == "manual" and recorded["order"]["status"] == "PAID"


async def test_shipping_needs_shipments_manage_and_seeing_shipments_shipments_read(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    order = await paid_order(buyer, session)
    warehouse = await make_warehouse(session)
    create = {
        "input": {
            "orderId": order["id"],
            "warehouseId": gid("Warehouse", warehouse.id),
            "carrier": "顺丰速运",
            "trackingNumber": "SF100",
        }
    }
    catalog = await staff(gql, session, settings, StaffRole.CATALOG)
    support = await staff(gql, session, settings, StaffRole.SUPPORT)  # shipments.read only
    for refused_by in (catalog, support):
        assert payload(await refused_by(CREATE_SHIPMENT, create))["__typename"] == "NotFoundError"

    # A carrier integration: shipments.manage alone ships the order and tracks the parcel.
    shipper = await api_key(gql, session, settings, "shipments.manage")
    created = payload(await shipper(CREATE_SHIPMENT, create))
    assert created["__typename"] == "CreateShipmentSuccess"
    assert created["order"]["status"] == "FULFILLING"
    shipment_id = created["shipment"]["id"]
    moving = {"input": {"shipmentId": shipment_id, "status": "IN_TRANSIT"}}
    assert payload(await support(TRACK, moving))["__typename"] == "NotFoundError"
    tracked = payload(await shipper(TRACK, moving))
    assert tracked == {
        "__typename": "RecordTrackingEventSuccess",
        "shipment": {"status": "IN_TRANSIT"},
    }

    variables = {"id": shipment_id}
    assert await catalog(SHIPMENT, variables) == {"shipment": None}
    sku = order["lines"][0]["sku"]
    assert (await support(SHIPMENT, variables))["shipment"] == {
        "trackingNumber": "SF100",
        "order": {"number": order["number"]},
        "lines": [{"quantity": 1, "orderLine": {"sku": sku}}],
    }
    # shipments.read shows the parcel, not the order; orders.read the order, not its parcels.
    tracker = await api_key(gql, session, settings, "shipments.read")
    assert await tracker(SHIPMENT, variables) == {
        "shipment": {
            "trackingNumber": "SF100",
            "order": None,
            "lines": [{"quantity": 1, "orderLine": None}],
        }
    }
    orders_only = await api_key(gql, session, settings, "orders.read")
    assert await orders_only(SHIPMENT, variables) == {"shipment": None}
    assert (await orders_only(ORDER, {"id": order["id"]}))["order"]["shipments"] == []
    assert (await buyer(ORDER, {"id": order["id"]}))["order"]["shipments"] == [
        {"trackingNumber": "SF100"}
    ]


async def test_a_customers_cart_is_read_with_customers_read_and_never_changed(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    product = await make_product(session)
    token = await cart_with(buyer, [(product, 2)])
    cart = "query($token: String!) { cart(token: $token) { itemCount } }"
    variables = {"token": token}

    catalog = await staff(gql, session, settings, StaffRole.CATALOG)
    assert await catalog(cart, variables) == {"cart": None}
    # A cart is the customer's behaviour and personal data, not an order: orders.read is not it.
    orders_only = await api_key(gql, session, settings, "orders.read")
    assert await orders_only(cart, variables) == {"cart": None}
    helpdesk = await api_key(gql, session, settings, "customers.read")
    assert await helpdesk(cart, variables) == {"cart": {"itemCount": 2}}
    add = {
        "input": {
            "cartToken": token,
            "lines": [{"productId": gid("Product", product.id), "quantity": 1}],
        }
    }
    assert payload(await helpdesk(ADD_LINES, add))["__typename"] == "NotFoundError"
    assert await buyer(cart, variables) == {"cart": {"itemCount": 2}}


async def test_staff_users_and_plugin_operations_follow_permissions(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    catalog_user = await make_staff(session, role=StaffRole.CATALOG)
    support_user = await make_staff(session, role=StaffRole.SUPPORT)
    catalog = gql.as_(token_for(settings, catalog_user))
    support = gql.as_(token_for(settings, support_user))
    node = "query($id: ID!) { node(id: $id) { id } }"

    # Staff users: oneself, staff.manage and audit.read (the log names them anyway).
    colleague = {"id": gid("StaffUser", support_user.id)}
    assert await catalog(node, colleague) == {"node": None}
    me = {"id": gid("StaffUser", catalog_user.id)}
    assert await catalog(node, me) == {"node": me}
    assert await (await api_key(gql, session, settings, "audit.read"))(node, colleague) == {
        "node": colleague
    }

    # The plugins list needs plugins.read: CATALOG has it, SUPPORT does not.
    plugins = "{ plugins { name } }"
    assert (await support.execute(plugins))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert isinstance((await catalog(plugins))["plugins"], list)
    assert isinstance(
        (await (await api_key(gql, session, settings, "plugins.read"))(plugins))["plugins"], list
    )

    # Event deliveries (payloads hold customer data) and their retry need events.manage.
    event = OutboxEvent(name="order_placed", payload={"customer_id": 1})
    session.add(event)
    await session.flush()
    delivery = OutboxDelivery(event_id=event.id, plugin="erp", status=DeliveryStatus.DEAD)
    session.add(delivery)
    await session.commit()
    deliveries = "{ outboxDeliveries(first: 5) { edges { node { id plugin } } } }"
    retry = """mutation($id: ID!) { retryOutboxDelivery(input: {deliveryId: $id}) {
      __typename ... on RetryOutboxDeliverySuccess { delivery { status attempts } } } }"""
    dead = {"id": gid("OutboxDelivery", delivery.id)}
    assert (await catalog.execute(deliveries))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await catalog.execute(retry, dead))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await catalog(node, dead) == {"node": None}
    operator = await api_key(gql, session, settings, EVENTS_MANAGE)
    listed = (await operator(deliveries))["outboxDeliveries"]["edges"]
    assert {"id": dead["id"], "plugin": "erp"} in [e["node"] for e in listed]
    assert await operator(node, dead) == {"node": dead}
    retried = (await operator(retry, dead))["retryOutboxDelivery"]
    assert retried == {
        "__typename": "RetryOutboxDeliverySuccess",
        "delivery": {"status": "PENDING", "attempts": 0},
    }
    # Only ADMIN holds events.manage among the built-in roles.
    roles = RoleMap.build(settings)
    assert [r for r in StaffRole if EVENTS_MANAGE in roles.for_role(r.value)] == [StaffRole.ADMIN]
