"""placeOrder, payments, the order state machine and who may see or change an order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Viewer, ViewerKind
from server.config import Settings
from server.models import (
    Cart,
    CustomerEvent,
    CustomerEventKind,
    IdempotencyKey,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    OutboxEvent,
    Payment,
    PaymentStatus,
    StockLevel,
)
from server.plugin import (
    Adjustment,
    CheckoutProblem,
    PluginInfo,
    PriceItem,
    ShippingQuote,
    hookimpl,
)
from server.plugins import PluginRuntime
from server.services import orders as order_service
from server.services.errors import InvalidTransition
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    CONFIRM_RECEIPT,
    PAY_ORDER,
    UPDATE_STATUS,
    cart_with,
    count,
    gid,
    make_product,
    only_plugins,
    outbox_names,
    pay,
    place,
    place_ok,
    stock_of,
)


class ShopRules:
    """A plugin exercising every order-flow hook, switchable per test."""

    PLUGIN_INFO = PluginInfo(name="shop-rules", version="1.0")

    def __init__(self) -> None:
        self.problems: list[CheckoutProblem] = []
        self.fail_in: str | None = None

    def _maybe_fail(self, hook: str) -> None:
        if self.fail_in == hook:
            raise RuntimeError(f"{hook} exploded")

    @hookimpl
    def price_adjustments(self, items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
        self._maybe_fail("price_adjustments")
        # 10 yuan off per unit when buying two or more.
        return {
            pid: [Adjustment("multi-buy", "两件起每件减10元", -1000)]
            for pid, item in items.items()
            if item.quantity >= 2
        }

    @hookimpl
    def order_adjustments(self, cart: Any) -> list[Adjustment]:
        self._maybe_fail("order_adjustments")
        if cart.subtotal >= 30000:
            return [Adjustment("spend-300", "满300减30", -3000)]
        return []

    @hookimpl
    def shipping_quotes(self, cart: Any, address: Any) -> list[ShippingQuote]:
        self._maybe_fail("shipping_quotes")
        return [
            ShippingQuote("sf", "顺丰速运", "次日达", 1500, 1),
            ShippingQuote("zto", "中通快递", "标准", 800, 3),
        ]

    @hookimpl
    def validate_checkout(self, cart: Any) -> list[CheckoutProblem]:
        self._maybe_fail("validate_checkout")
        return list(self.problems)


@pytest.fixture
def rules() -> ShopRules:
    return ShopRules()


@pytest.fixture
def plugins(settings: Settings, rules: ShopRules) -> PluginRuntime:
    return only_plugins(settings, rules)


ORDER_QUERY = """
query($id: ID!) {
  order(id: $id) {
    number status email
    subtotal { amount } discount { amount } shipping { amount } total { amount currency }
    adjustments { source rule label amount { amount } }
    shippingAddress { recipientName city street }
    lines {
      sku productName quantity
      unitPrice { amount } basePrice { amount } lineTotal { amount }
      priceBreakdown {
        quantity basePrice { amount } unitPrice { amount } total { amount }
        adjustments { source rule label amount { amount } }
      }
      product { name }
    }
    statusHistory { fromStatus toStatus note actor }
    payments { gateway status amount { amount } }
    customer { email }
  }
}"""


async def test_place_order_prices_reserves_and_records_everything(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = await make_customer(session)
    me = gql.as_(token_for(settings, buyer))
    earphones = await make_product(session, price=19900, stock=10)
    cable = await make_product(session, price=2900, stock=10)
    token = await cart_with(me, [(earphones, 2), (cable, 1)])

    result = await place(me, token, "order-1", shippingMethod="sf")

    assert result["__typename"] == "PlaceOrderSuccess", result
    order_id = result["order"]["id"]
    data = await me(ORDER_QUERY, {"id": order_id})
    order = data["order"]
    # 2 × (199 - 10) + 29 = 407; 满300减30; 顺丰 15 → 392.
    assert order["subtotal"]["amount"] == "407.00"
    assert order["discount"]["amount"] == "30.00"
    assert order["shipping"]["amount"] == "15.00"
    assert order["total"] == {"amount": "392.00", "currency": "CNY"}
    assert order["status"] == "PENDING_PAYMENT"
    assert order["email"] == "buyer@example.cn"
    assert order["customer"]["email"] == buyer.email
    assert order["adjustments"] == [
        {
            "source": "shop-rules",
            "rule": "spend-300",
            "label": "满300减30",
            "amount": {"amount": "-30.00"},
        }
    ]
    assert order["shippingAddress"]["city"] == "杭州市"
    lines = {line["sku"]: line for line in order["lines"]}
    ear = lines[earphones.sku]
    assert ear["basePrice"]["amount"] == "199.00"
    assert ear["unitPrice"]["amount"] == "189.00"
    assert ear["lineTotal"]["amount"] == "378.00"
    assert ear["priceBreakdown"]["adjustments"][0]["rule"] == "multi-buy"
    assert ear["priceBreakdown"]["total"]["amount"] == "378.00"
    assert lines[cable.sku]["priceBreakdown"]["adjustments"] == []
    assert order["statusHistory"] == [
        {
            "fromStatus": None,
            "toStatus": "PENDING_PAYMENT",
            "note": order["statusHistory"][0]["note"],
            "actor": None,
        }
    ]

    assert await stock_of(session, earphones) == [(10, 2)]
    assert await stock_of(session, cable) == [(10, 1)]
    purchases = list(
        await session.scalars(
            select(CustomerEvent).where(CustomerEvent.kind == CustomerEventKind.PURCHASE)
        )
    )
    assert sorted((e.product_id, e.quantity, e.customer_id) for e in purchases) == sorted(
        [(earphones.id, 2, buyer.id), (cable.id, 1, buyer.id)]
    )
    placed = await session.scalar(select(OutboxEvent).where(OutboxEvent.name == "order_placed"))
    assert placed is not None
    assert placed.payload["customer_id"] == buyer.id
    assert placed.payload["total"] == 39200
    assert placed.payload["currency"] == "CNY"
    assert sorted((ln["product_id"], ln["quantity"]) for ln in placed.payload["lines"]) == sorted(
        [(earphones.id, 2), (cable.id, 1)]
    )
    # The cart is used up: checking it out again (another key) is a conflict.
    again = await place(me, token, "order-2")
    assert again["__typename"] == "ConflictError"
    assert await count(session, Order) == 1


async def test_cheapest_shipping_by_default_and_unknown_method_rejected(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, price=5000, stock=5)
    bad = await place(gql, await cart_with(gql, [(product, 1)]), shippingMethod="ems")
    assert bad["__typename"] == "ValidationError"
    assert bad["field"] == "shippingMethod"
    ok = await place(gql, await cart_with(gql, [(product, 1)]))
    assert ok["order"]["shipping"]["amount"] == "8.00"
    assert ok["order"]["total"]["amount"] == "58.00"
    assert await stock_of(session, product) == [(5, 1)]


async def test_bad_checkouts_are_typed_errors_and_write_nothing(
    gql: GraphQLClient, session: AsyncSession, rules: ShopRules
) -> None:
    product = await make_product(session, stock=3)
    outbox_before = await count(session, OutboxEvent)

    empty = await place(gql, await cart_with(gql, []))
    assert empty["__typename"] == "EmptyCart"

    short = await place(gql, await cart_with(gql, [(product, 4)]))
    assert {k: short[k] for k in ("__typename", "code", "productId", "requested", "available")} == {
        "__typename": "OutOfStock",
        "code": "OUT_OF_STOCK",
        "productId": gid("Product", product.id),
        "requested": 4,
        "available": 3,
    }

    no_address = await place(gql, await cart_with(gql, [(product, 1)]), shippingAddress=None)
    assert no_address["__typename"] == "ValidationError"
    assert no_address["field"] == "shippingAddress"

    missing = await place(gql, "no-such-token")
    assert missing["__typename"] == "NotFoundError"

    blank_key = await place(gql, await cart_with(gql, [(product, 1)]), "  ")
    assert blank_key["__typename"] == "ValidationError"
    assert blank_key["field"] == "idempotencyKey"

    rules.problems = [CheckoutProblem("REGION", "该地区暂不配送", "shippingAddress")]
    blocked = await place(gql, await cart_with(gql, [(product, 1)]))
    assert blocked["__typename"] == "CheckoutProblems"
    assert blocked["problems"] == [
        {
            "source": "shop-rules",
            "plugin": "shop-rules",
            "code": "REGION",
            "message": "该地区暂不配送",
            "field": "shippingAddress",
        }
    ]

    assert await count(session, Order) == 0
    assert await count(session, IdempotencyKey) == 0
    assert await stock_of(session, product) == [(3, 0)]
    assert await count(session, Cart, Cart.status != "ACTIVE") == 0
    # Only the add-to-cart behaviour events were announced; nothing from the failed checkouts.
    assert set(await outbox_names(session)) <= {"customer_event_recorded"}
    assert await count(session, OutboxEvent) >= outbox_before


@pytest.mark.parametrize(
    "hook", ["price_adjustments", "order_adjustments", "shipping_quotes", "validate_checkout"]
)
async def test_a_failing_plugin_fails_the_request_by_name_and_writes_nothing(
    gql: GraphQLClient, session: AsyncSession, rules: ShopRules, hook: str
) -> None:
    product = await make_product(session, stock=3)
    token = await cart_with(gql, [(product, 2)])
    rules.fail_in = hook

    from tests.support.orders import PLACE_ORDER, order_input

    body = await gql.execute(PLACE_ORDER, order_input(token, "k"))

    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert "shop-rules" in message and hook in message
    assert await count(session, Order) == 0
    assert await count(session, OrderLine) == 0
    assert await count(session, IdempotencyKey) == 0
    assert await stock_of(session, product) == [(3, 0)]
    assert "order_placed" not in await outbox_names(session)

    # The same request works once the plugin is healthy again: nothing was left half-done.
    rules.fail_in = None
    ok = await place(gql, token, "k")
    assert ok["__typename"] == "PlaceOrderSuccess"


async def test_guest_order_needs_email_and_pays_with_its_cart_token(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, price=1000, stock=3)
    token = await cart_with(gql, [(product, 1)])
    no_email = await place(gql, token, email=None)
    assert no_email["__typename"] == "ValidationError"
    assert no_email["field"] == "email"

    order = (await place(gql, token, email="guest@example.cn"))["order"]
    # A guest cannot read the order back, and cannot pay without the cart token.
    assert (await gql("query($id: ID!) { order(id: $id) { id } }", {"id": order["id"]}))[
        "order"
    ] is None
    payment = {"orderId": order["id"], "gateway": "test", "amount": {"amount": "18.00"}}
    denied = await gql(PAY_ORDER, {"input": payment})
    assert denied["payOrder"]["__typename"] == "NotFoundError"
    paid = await gql(PAY_ORDER, {"input": {**payment, "cartToken": token}})
    assert paid["payOrder"]["__typename"] == "PayOrderSuccess"
    assert paid["payOrder"]["order"]["status"] == "PAID"


async def test_payment_captured_declined_and_wrong_amount(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = await make_customer(session)
    me = gql.as_(token_for(settings, buyer))
    product = await make_product(session, price=10000, stock=3)
    order = await place_ok(me, [(product, 1)])

    declined = await pay(me, order, token="tok_declined")
    assert declined["__typename"] == "PaymentDeclined"
    wrong = await me(
        PAY_ORDER,
        {"input": {"orderId": order["id"], "gateway": "test", "amount": {"amount": "1.00"}}},
    )
    assert wrong["payOrder"]["__typename"] == "ValidationError"
    assert wrong["payOrder"]["field"] == "amount"
    manual = await me(
        PAY_ORDER,
        {"input": {"orderId": order["id"], "gateway": "manual", "amount": order["total"]}},
    )
    assert manual["payOrder"]["__typename"] == "ValidationError"
    assert manual["payOrder"]["field"] == "gateway"

    data = await me(ORDER_QUERY, {"id": order["id"]})
    assert data["order"]["status"] == "PENDING_PAYMENT"
    assert data["order"]["payments"] == [
        {"gateway": "test", "status": "DECLINED", "amount": {"amount": "108.00"}}
    ]
    assert "payment_captured" not in await outbox_names(session)

    paid = await pay(me, order)
    assert paid["__typename"] == "PayOrderSuccess"
    assert paid["order"]["status"] == "PAID"
    assert paid["order"]["paidAt"] is not None
    assert paid["payment"]["status"] == "CAPTURED"
    await session.commit()  # a fresh snapshot
    captured = await session.scalar(
        select(OutboxEvent).where(OutboxEvent.name == "payment_captured")
    )
    assert captured is not None and captured.payload["amount"] == 10800

    twice = await pay(me, order)
    assert twice["__typename"] == "InvalidTransition"
    assert (twice["current"], twice["target"]) == ("PAID", "PAID")
    assert await count(session, Payment, Payment.status == PaymentStatus.CAPTURED) == 1


async def test_full_lifecycle_by_staff_consumes_stock_on_shipping(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = await make_customer(session)
    me = gql.as_(token_for(settings, buyer))
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, price=10000, stock=5)
    order = await place_ok(me, [(product, 2)])
    assert (await pay(me, order))["order"]["status"] == "PAID"

    async def move(status: str) -> Any:
        data = await staff(UPDATE_STATUS, {"input": {"orderId": order["id"], "status": status}})
        return data["updateOrderStatus"]

    skip = await move("DELIVERED")
    assert skip["__typename"] == "InvalidTransition"
    assert (skip["current"], skip["target"]) == ("PAID", "DELIVERED")
    assert (await move("FULFILLING"))["order"]["status"] == "FULFILLING"
    assert await stock_of(session, product) == [(5, 2)]
    assert (await move("SHIPPED"))["order"]["status"] == "SHIPPED"
    assert await stock_of(session, product) == [(3, 0)]
    late_cancel = await staff(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
    assert late_cancel["cancelOrder"]["__typename"] == "InvalidTransition"
    assert (await move("DELIVERED"))["order"]["status"] == "DELIVERED"

    # Only the buyer confirms receipt; staff get "not found" from confirmReceipt.
    by_staff = await staff(CONFIRM_RECEIPT, {"input": {"orderId": order["id"]}})
    assert by_staff["confirmReceipt"]["__typename"] == "NotFoundError"
    done = await me(CONFIRM_RECEIPT, {"input": {"orderId": order["id"]}})
    assert done["confirmReceipt"]["order"]["status"] == "COMPLETED"
    assert (await move("CANCELLED"))["__typename"] == "InvalidTransition"

    history = (await staff(ORDER_QUERY, {"id": order["id"]}))["order"]["statusHistory"]
    assert [(h["fromStatus"], h["toStatus"]) for h in history] == [
        (None, "PENDING_PAYMENT"),
        ("PENDING_PAYMENT", "PAID"),
        ("PAID", "FULFILLING"),
        ("FULFILLING", "SHIPPED"),
        ("SHIPPED", "DELIVERED"),
        ("DELIVERED", "COMPLETED"),
    ]
    assert history[-1]["actor"] == f"customer:{buyer.id}"
    assert history[2]["actor"].startswith("staff:")
    assert (await outbox_names(session)).count("order_status_changed") == 5
    assert await stock_of(session, product) == [(3, 0)]


async def test_customer_cancels_paid_order_stock_released_payment_refunded(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    buyer = await make_customer(session)
    me = gql.as_(token_for(settings, buyer))
    product = await make_product(session, stock=4)
    order = await place_ok(me, [(product, 3)])
    await pay(me, order)
    assert await stock_of(session, product) == [(4, 3)]

    result = await me(CANCEL_ORDER, {"input": {"orderId": order["id"], "reason": "买错了"}})

    assert result["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert result["cancelOrder"]["order"]["cancelledAt"] is not None
    assert await stock_of(session, product) == [(4, 0)]
    payments = list(await session.scalars(select(Payment.status)))
    assert payments == [PaymentStatus.REFUNDED]
    again = await me(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
    assert again["cancelOrder"]["__typename"] == "InvalidTransition"
    assert await stock_of(session, product) == [(4, 0)]


async def test_customer_cannot_cancel_once_fulfilling_but_staff_can(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    me = gql.as_(token_for(settings, await make_customer(session)))
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, stock=4)
    order = await place_ok(me, [(product, 1)])
    await pay(me, order)
    await staff(UPDATE_STATUS, {"input": {"orderId": order["id"], "status": "FULFILLING"}})

    mine = await me(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
    assert mine["cancelOrder"]["__typename"] == "InvalidTransition"
    assert await stock_of(session, product) == [(4, 1)]
    theirs = await staff(CANCEL_ORDER, {"input": {"orderId": order["id"], "reason": "缺货"}})
    assert theirs["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert await stock_of(session, product) == [(4, 0)]
    # A customer may not use the staff mutation: to them the order is simply not there.
    forbidden = await me(UPDATE_STATUS, {"input": {"orderId": order["id"], "status": "PAID"}})
    assert forbidden["updateOrderStatus"]["__typename"] == "NotFoundError"


async def test_every_transition_of_the_state_machine(
    session: AsyncSession, plugins: PluginRuntime
) -> None:
    """Each (from, to) pair: allowed exactly when the machine says so, with history + event."""
    product = await make_product(session, stock=1000)
    product_id, sku, name = product.id, product.sku, product.name
    allowed = {
        ("PENDING_PAYMENT", "PAID"),
        ("PENDING_PAYMENT", "CANCELLED"),
        ("PAID", "FULFILLING"),
        ("PAID", "CANCELLED"),
        ("FULFILLING", "SHIPPED"),
        ("FULFILLING", "CANCELLED"),
        ("SHIPPED", "DELIVERED"),
        ("DELIVERED", "COMPLETED"),
    }
    holding = {OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.FULFILLING}
    warehouse_id, variant_id = (
        await session.execute(
            select(StockLevel.warehouse_id, StockLevel.variant_id).where(
                StockLevel.product_id == product_id
            )
        )
    ).one()
    for n, (source, target) in enumerate((s, t) for s in OrderStatus for t in OrderStatus):
        order = Order(number=f"SM-{n}", status=source, total_amount=100)
        session.add(order)
        await session.flush()
        order_id = order.id
        session.add(
            OrderLine(
                order_id=order_id,
                product_id=product_id,
                variant_id=variant_id,
                warehouse_id=warehouse_id,
                sku=sku,
                product_name=name,
                quantity=1,
                base_unit_price_amount=100,
                unit_price_amount=100,
                line_total_amount=100,
            )
        )
        if source in holding:
            # Orders not yet shipped or cancelled hold one reserved unit.
            await session.execute(
                update(StockLevel)
                .where(StockLevel.product_id == product_id)
                .values(reserved=StockLevel.reserved + 1)
            )
        await session.commit()
        events_before = await count(session, OutboxEvent)
        try:
            moved = await order_service.transition_order(
                session, plugins, order_id, target, note="t", actor="staff:1"
            )
        except InvalidTransition as exc:
            await session.rollback()
            assert (source.value, target.value) not in allowed, (source, target)
            assert (exc.current, exc.target) == (source.value, target.value)
            assert await count(session, OutboxEvent) == events_before
            continue
        await session.commit()
        assert (source.value, target.value) in allowed, (source, target)
        assert moved.status is target
        change = await session.scalar(
            select(OrderStatusChange).where(OrderStatusChange.order_id == order_id)
        )
        assert change is not None
        assert (change.from_status, change.to_status, change.actor) == (source, target, "staff:1")
        assert await count(session, OutboxEvent) == events_before + 1
    # Cancelling released what an order held and shipping consumed it: what stays reserved is
    # exactly what the orders still holding stock hold.
    still_holding = await count(session, Order, Order.status.in_(list(holding)))
    assert await stock_of(session, product_id) == [(1000 - 1, still_holding)]


async def test_customers_see_only_their_own_orders(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    alice = await make_customer(session)
    bob = await make_customer(session)
    as_alice = gql.as_(token_for(settings, alice))
    as_bob = gql.as_(token_for(settings, bob))
    staff = gql.as_(token_for(settings, await make_staff(session)))
    product = await make_product(session, price=5000, stock=20)
    alice_orders = [await place_ok(as_alice, [(product, q)]) for q in (1, 2, 3)]
    bob_order = await place_ok(as_bob, [(product, 1)])
    await pay(as_alice, alice_orders[1])

    listing = """
    query($first: Int, $after: String, $filter: OrderFilter, $sort: OrderSort) {
      orders(first: $first, after: $after, filter: $filter, sort: $sort) {
        totalCount edges { cursor node { id status total { amount } } }
        pageInfo { hasNextPage endCursor }
      }
    }"""
    mine = (await as_alice(listing, {"first": 10}))["orders"]
    assert mine["totalCount"] == 3
    assert {e["node"]["id"] for e in mine["edges"]} == {o["id"] for o in alice_orders}
    # Newest first by default.
    assert [e["node"]["id"] for e in mine["edges"]] == [o["id"] for o in reversed(alice_orders)]
    assert (await gql(listing, {"first": 10}))["orders"]["totalCount"] == 0
    everyone = (await staff(listing, {"first": 10}))["orders"]
    assert everyone["totalCount"] == 4
    only_bob = await staff(
        listing, {"first": 10, "filter": {"customerId": gid("Customer", bob.id)}}
    )
    assert [e["node"]["id"] for e in only_bob["orders"]["edges"]] == [bob_order["id"]]
    # A customer cannot widen their view with someone else's id.
    peek = await as_alice(listing, {"filter": {"customerId": gid("Customer", bob.id)}})
    assert peek["orders"]["totalCount"] == 0
    paid = await as_alice(listing, {"filter": {"status": "PAID"}})
    assert [e["node"]["id"] for e in paid["orders"]["edges"]] == [alice_orders[1]["id"]]

    # Keyset pages by total, ascending: 2 then 1, no overlap, nothing lost.
    sort = {"field": "TOTAL", "direction": "ASC"}
    page1 = (await as_alice(listing, {"first": 2, "sort": sort}))["orders"]
    assert page1["pageInfo"]["hasNextPage"] is True
    page2 = (
        await as_alice(listing, {"first": 2, "sort": sort, "after": page1["pageInfo"]["endCursor"]})
    )["orders"]
    totals = [e["node"]["total"]["amount"] for e in page1["edges"] + page2["edges"]]
    # 1 × 50, 2 × (50 - 10), 3 × (50 - 10), each + 8 shipping.
    assert totals == ["58.00", "88.00", "128.00"]
    assert page2["pageInfo"]["hasNextPage"] is False

    window = await staff(
        listing,
        {"filter": {"placedFrom": "2000-01-01T00:00:00Z", "placedTo": "2001-01-01T00:00:00Z"}},
    )
    assert window["orders"]["totalCount"] == 0


async def test_another_customers_order_is_answered_like_a_missing_one(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    as_alice = gql.as_(token_for(settings, await make_customer(session)))
    as_bob = gql.as_(token_for(settings, await make_customer(session)))
    product = await make_product(session, stock=5)
    order = await place_ok(as_alice, [(product, 1)])
    missing = gid("Order", 999999)

    for ident in (order["id"], missing):
        data = await as_bob(
            "query($id: ID!) { order(id: $id) { id } node(id: $id) { id } }", {"id": ident}
        )
        assert data == {"order": None, "node": None}
        paid = await as_bob(
            PAY_ORDER,
            {"input": {"orderId": ident, "gateway": "test", "amount": {"amount": "1.00"}}},
        )
        cancelled = await as_bob(CANCEL_ORDER, {"input": {"orderId": ident}})
        confirmed = await as_bob(CONFIRM_RECEIPT, {"input": {"orderId": ident}})
        for result in (
            paid["payOrder"],
            cancelled["cancelOrder"],
            confirmed["confirmReceipt"],
        ):
            assert result["__typename"] == "NotFoundError"
            assert result["field"] == "orderId"
            assert "999999" in result["message"] or ident == order["id"]
    lines = await as_alice(ORDER_QUERY, {"id": order["id"]})
    line_id = await session.scalar(select(OrderLine.id))
    assert (
        await as_bob("query($id: ID!) { node(id: $id) { id } }", {"id": gid("OrderLine", line_id)})
    )["node"] is None
    assert (
        await as_alice(
            "query($id: ID!) { node(id: $id) { id } }", {"id": gid("OrderLine", line_id)}
        )
    )["node"] is not None
    assert lines["order"]["status"] == "PENDING_PAYMENT"
    assert await stock_of(session, product) == [(5, 1)]


def test_viewer_subjects_used_as_actors() -> None:
    assert Viewer(kind=ViewerKind.CUSTOMER, customer_id=7).subject == "customer:7"
    assert order_service.can_view(
        Order(number="x", customer_id=7), Viewer(kind=ViewerKind.CUSTOMER, customer_id=7)
    )
    assert not order_service.can_view(
        Order(number="x", customer_id=7), Viewer(kind=ViewerKind.CUSTOMER, customer_id=8)
    )
    assert not order_service.can_view(Order(number="x", customer_id=None), Viewer())
