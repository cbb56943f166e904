"""The order-flow hooks over HTTP: batched prices and their guardrail, fees, the plugins'
reservations when an order is placed and cancelled, shipment plans, payment gateways and
the shipment events. Tests named ``test_hook_<name>`` are the hook's own test
(tests/server/test_hookspecs.py checks that every hook has one)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OutboxEvent,
    Payment,
    PaymentStatus,
    Warehouse,
)
from server.plugin import (
    Adjustment,
    NotApplied,
    Parcel,
    ParcelLine,
    PaymentGateway,
    PaymentOutcome,
    PaymentResult,
    PaymentUpdate,
    PluginInfo,
    PricedItem,
    PriceItem,
    PriceLimit,
    WebhookReply,
    hookimpl,
)
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin, Recorder
from tests.plugins.seats import SeatsPlugin, create_pool, pool
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    PLACE_ORDER,
    cart_with,
    count,
    gid,
    make_product,
    make_warehouse,
    only_plugins,
    order_input,
    pay,
    place,
    place_ok,
    stock_of,
)
from tests.support.waiting import eventually

ADJUSTMENT = "source rule label kind amount { amount }"
BREAKDOWN = f"""
  basePrice {{ amount }} unitPrice {{ amount }} total {{ amount }}
  adjustments {{ {ADJUSTMENT} }} guardrail {{ {ADJUSTMENT} }}
"""
PRODUCT_PRICE = f"""
query($id: ID!) {{ node(id: $id) {{ ... on Product {{
  price {{ amount }} priceBreakdown {{ {BREAKDOWN} }}
}} }} }}"""
CART = f"""
query($t: String!) {{ cart(token: $t) {{
  subtotal {{ amount }} discount {{ amount }} feeTotal {{ amount }} total {{ amount }}
  orderAdjustments {{ {ADJUSTMENT} }} fees {{ {ADJUSTMENT} }}
  lines {{ unitPrice {{ amount }} priceBreakdown {{ {BREAKDOWN} }} }}
}} }}"""
ORDER = f"""
query($id: ID!) {{ order(id: $id) {{
  status subtotal {{ amount }} discount {{ amount }} feeTotal {{ amount }}
  shipping {{ amount }} total {{ amount }}
  adjustments {{ {ADJUSTMENT} }} fees {{ {ADJUSTMENT} }}
  lines {{ id sku unitPrice {{ amount }} priceBreakdown {{ {BREAKDOWN} }} }}
  payments {{ gateway status reference message amount {{ amount }} }}
  shipmentPlan {{
    source carrier note warehouse {{ code }} lines {{ quantity orderLine {{ sku }} }}
  }}
}} }}"""
PAY = """
mutation($input: PayOrderInput!) { payOrder(input: $input) {
  __typename
  ... on PayOrderSuccess {
    nextAction order { status } payment { gateway status reference message }
  }
  ... on Error { code message field }
} }"""
GATEWAYS = "{ paymentGateways { code label staffOnly source } }"


def ten_percent_off(items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
    return {
        pid: [Adjustment(rule="ten", label="九折", amount=-(item.base // 10))]
        for pid, item in items.items()
    }


async def pay_with(
    client: GraphQLClient, order: Mapping[str, Any], gateway: str, token: str | None = None
) -> dict[str, Any]:
    data = await client(
        PAY,
        {
            "input": {
                "orderId": order["id"],
                "gateway": gateway,
                "token": token,
                "amount": {"amount": order["total"]["amount"]},
            }
        },
    )
    return dict(data["payOrder"])


@pytest.fixture
async def buyer(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> GraphQLClient:
    """A signed-in customer's client (a guest's orders are not readable by id)."""
    return gql.as_(token_for(settings, await make_customer(session)))


async def order_of(client: GraphQLClient, order: Mapping[str, Any]) -> dict[str, Any]:
    return dict((await client(ORDER, {"id": order["id"]}))["order"])


# --- prices: one batch, stamped, clamped -----------------------------------------------


class BatchPricing:
    PLUGIN_INFO = PluginInfo(name="batch-pricing", version="1.0")

    def __init__(self) -> None:
        self.batches: list[dict[int, PriceItem]] = []
        self.answer: Any = None

    @hookimpl
    def price_adjustments(self, items: Mapping[int, PriceItem], customer: Any, at: Any) -> Any:
        self.batches.append(dict(items))
        if self.answer is not None:
            return self.answer
        return ten_percent_off(items)


class TestBatchedPrices:
    @pytest.fixture
    def pricing(self) -> BatchPricing:
        return BatchPricing()

    @pytest.fixture
    def plugins(self, settings: Settings, pricing: BatchPricing) -> PluginRuntime:
        return only_plugins(settings, pricing)

    async def test_a_page_and_a_cart_are_each_priced_in_one_call_stamped_with_the_plugin(
        self, gql: GraphQLClient, session: AsyncSession, pricing: BatchPricing
    ) -> None:
        products = [await make_product(session, price=1000 * (i + 1)) for i in range(5)]
        data = await gql(
            "{ products(first: 10) { nodes { price { amount } "
            f"priceBreakdown {{ {BREAKDOWN} }} }} }} }}"
        )
        nodes = data["products"]["nodes"]
        assert len(nodes) == 5
        # price and priceBreakdown(quantity: 1) of five products: one call for all of them.
        assert len(pricing.batches) == 1
        assert set(pricing.batches[0]) == {p.id for p in products}
        assert {item.quantity for item in pricing.batches[0].values()} == {1}
        for node in nodes:
            [adjustment] = node["priceBreakdown"]["adjustments"]
            assert adjustment["source"] == "batch-pricing"  # stamped by the core
            assert adjustment["kind"] == "DISCOUNT"
            assert node["priceBreakdown"]["guardrail"] is None

        pricing.batches.clear()
        token = await cart_with(gql, [(p, i + 1) for i, p in enumerate(products[:3])])
        pricing.batches.clear()
        cart = (await gql(CART, {"t": token}))["cart"]
        assert len(pricing.batches) == 1
        assert {pid: item.quantity for pid, item in pricing.batches[0].items()} == {
            products[0].id: 1,
            products[1].id: 2,
            products[2].id: 3,
        }
        assert [line["unitPrice"]["amount"] for line in cart["lines"]] == [
            "9.00",
            "18.00",
            "27.00",
        ]

    @pytest.mark.parametrize(
        "answer", ["a string", "another product", "a dict, not an Adjustment", "a float amount"]
    )
    async def test_an_answer_that_is_not_adjustments_fails_naming_the_plugin(
        self, gql: GraphQLClient, session: AsyncSession, pricing: BatchPricing, answer: str
    ) -> None:
        product = await make_product(session, price=1000)
        pricing.answer = {
            "a string": "oops",
            "another product": {0: [Adjustment(rule="r", label="l", amount=-1)]},
            "a dict, not an Adjustment": {product.id: [{"rule": "r", "label": "l", "amount": -1}]},
            "a float amount": {product.id: [Adjustment(rule="r", label="l", amount=-1.5)]},  # type: ignore[arg-type]
        }[answer]
        body = await gql.execute(
            "query($id: ID!) { node(id: $id) { ... on Product { price { amount } } } }",
            {"id": gid("Product", product.id)},
        )
        [error] = body["errors"]
        assert error["extensions"]["code"] == "PLUGIN_FAILED"
        assert error["extensions"]["plugin"] == "batch-pricing"
        assert error["extensions"]["hook"] == "price_adjustments"


class ListThenPromote:
    """A shop price list (list_prices) and a promotion (price_adjustments) that takes 10% off
    whatever the list says for this shopper."""

    PLUGIN_INFO = PluginInfo(name="price-list", version="1.0")

    def __init__(self) -> None:
        self.promoted: list[dict[int, PriceItem]] = []

    @hookimpl
    def list_prices(self, items: Mapping[int, PriceItem]) -> dict[int, list[Any]]:
        answer: dict[int, list[Any]] = {}
        for key, item in items.items():
            assert item.adjustments == () and item.price == item.base
            answer[key] = [
                Adjustment(rule="list-8000", label="价目表价", amount=8000 - item.base),
                NotApplied(
                    rule="segment-8500",
                    label="分群价",
                    amount=8500 - item.base,
                    reason="segment price not better than the list price",
                ),
            ]
        return answer

    @hookimpl
    def price_adjustments(self, items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
        self.promoted.append(dict(items))
        return {
            key: [Adjustment(rule="ten", label="九折", amount=-(item.price // 10))]
            for key, item in items.items()
        }


class TestListPrices:
    @pytest.fixture
    def shop(self) -> ListThenPromote:
        return ListThenPromote()

    @pytest.fixture
    def plugins(self, settings: Settings, shop: ListThenPromote) -> PluginRuntime:
        return only_plugins(settings, shop)

    async def test_hook_list_prices(
        self, gql: GraphQLClient, buyer: GraphQLClient, session: AsyncSession, shop: ListThenPromote
    ) -> None:
        product = await make_product(session, price=10000, stock=10)
        data = await gql(
            "query($id: ID!) { node(id: $id) { ... on Product { price { amount } "
            f"priceBreakdown {{ {BREAKDOWN} notApplied {{ source rule label reason "
            "amount { amount } } } } } }",
            {"id": gid("Product", product.id)},
        )
        breakdown = data["node"]["priceBreakdown"]
        # 100.00 listed at 80.00, then 10% off the listed price (not off the base): 72.00.
        assert [(a["rule"], a["amount"]["amount"]) for a in breakdown["adjustments"]] == [
            ("list-8000", "-20.00"),
            ("ten", "-8.00"),
        ]
        assert data["node"]["price"]["amount"] == breakdown["unitPrice"]["amount"] == "72.00"
        [promoted] = shop.promoted[-1].values()
        assert promoted.price == 8000 and promoted.adjustments[0].source == "price-list"
        assert breakdown["notApplied"] == [
            {
                "source": "price-list",
                "rule": "segment-8500",
                "label": "分群价",
                "reason": "segment price not better than the list price",
                "amount": {"amount": "-15.00"},
            }
        ]
        # A placed line keeps the steps that applied, in order.
        order = await place_ok(buyer, [(product, 2)])
        [line] = (await order_of(buyer, order))["lines"]
        assert [a["rule"] for a in line["priceBreakdown"]["adjustments"]] == ["list-8000", "ten"]
        assert line["priceBreakdown"]["total"]["amount"] == "144.00"


class Guardrails:
    """Half price for everything; the shop's floor is 80% of the base, its ceiling 500.00."""

    PLUGIN_INFO = PluginInfo(name="guard", version="1.0")

    def __init__(self) -> None:
        self.seen: list[dict[int, PricedItem]] = []

    @hookimpl
    def price_guardrails(self, items: Mapping[int, PricedItem]) -> dict[int, PriceLimit]:
        self.seen.append(dict(items))
        return {
            pid: PriceLimit(
                rule="floor-80", label="不低于八折", floor=item.base * 8 // 10, ceiling=50000
            )
            for pid, item in items.items()
        }


def half_price_or_surcharge(items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
    answer = {}
    for pid, item in items.items():
        if item.base >= 50000:  # big items: a bulky-goods surcharge
            answer[pid] = [Adjustment(rule="bulky", label="大件附加费", amount=10000)]
        else:
            answer[pid] = [Adjustment(rule="half", label="五折", amount=-(item.base // 2))]
    return answer


def free_and_more(items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
    return {
        pid: [Adjustment(rule="gift", label="买一送一", amount=-item.base - 500)]
        for pid, item in items.items()
    }


class TestGuardrails:
    @pytest.fixture
    def guard(self) -> Guardrails:
        return Guardrails()

    @pytest.fixture
    def plugins(self, settings: Settings, guard: Guardrails) -> PluginRuntime:
        return only_plugins(
            settings,
            guard,
            FakePlugin("promo", price_adjustments=half_price_or_surcharge),
        )

    async def test_hook_price_guardrails(
        self, gql: GraphQLClient, buyer: GraphQLClient, session: AsyncSession, guard: Guardrails
    ) -> None:
        cheap = await make_product(session, price=10000, stock=10)
        bulky = await make_product(session, price=48000 + 2000, stock=10)  # 500.00
        data = await gql(PRODUCT_PRICE, {"id": gid("Product", cheap.id)})
        breakdown = data["node"]["priceBreakdown"]
        # 100.00 - 50.00 = 50.00, raised to the floor 80.00 by the guard: +30.00.
        assert breakdown["adjustments"] == [
            {
                "source": "promo",
                "rule": "half",
                "label": "五折",
                "kind": "DISCOUNT",
                "amount": {"amount": "-50.00"},
            }
        ]
        assert breakdown["guardrail"] == {
            "source": "guard",
            "rule": "floor-80",
            "label": "不低于八折",
            "kind": "FEE",
            "amount": {"amount": "30.00"},
        }
        assert breakdown["unitPrice"]["amount"] == data["node"]["price"]["amount"] == "80.00"
        # The guardrail saw the adjusted price.
        assert guard.seen[-1][cheap.id].price == 5000

        data = await gql(PRODUCT_PRICE, {"id": gid("Product", bulky.id)})
        # 500.00 + 100.00 surcharge, lowered to the ceiling 500.00.
        assert data["node"]["priceBreakdown"]["guardrail"]["amount"]["amount"] == "-100.00"
        assert data["node"]["price"]["amount"] == "500.00"

        # Cart lines and the placed order's lines keep the step, with its source.
        order = await place_ok(buyer, [(cheap, 2), (bulky, 1)])
        placed = await order_of(buyer, order)
        by_sku = {line["sku"]: line for line in placed["lines"]}
        assert by_sku[cheap.sku]["priceBreakdown"]["guardrail"]["source"] == "guard"
        assert by_sku[cheap.sku]["priceBreakdown"]["total"]["amount"] == "160.00"
        assert by_sku[bulky.sku]["priceBreakdown"]["guardrail"]["amount"]["amount"] == "-100.00"
        assert placed["subtotal"]["amount"] == "660.00"


class TestTheCoreFloor:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return only_plugins(settings, FakePlugin("gifts", price_adjustments=free_and_more))

    async def test_a_price_never_goes_below_zero_and_the_breakdown_says_why(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        product = await make_product(session, price=3000)
        data = await gql(PRODUCT_PRICE, {"id": gid("Product", product.id)})
        breakdown = data["node"]["priceBreakdown"]
        assert breakdown["adjustments"][0]["amount"]["amount"] == "-35.00"
        assert breakdown["guardrail"]["source"] == "core"
        assert breakdown["guardrail"]["rule"] == "non-negative"
        assert breakdown["guardrail"]["amount"]["amount"] == "5.00"
        assert breakdown["unitPrice"]["amount"] == "0.00"


# --- fees -------------------------------------------------------------------------------


def discount_and_fee(cart: Any) -> list[Adjustment]:
    return [
        Adjustment(rule="spend-100", label="满100减10", amount=-1000),
        Adjustment(rule="handling", label="包装费", amount=500),
    ]


class TestFees:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return only_plugins(settings, FakePlugin("shop", order_adjustments=discount_and_fee))

    async def test_a_positive_order_adjustment_is_a_fee_not_a_negative_discount(
        self, buyer: GraphQLClient, session: AsyncSession
    ) -> None:
        product = await make_product(session, price=12000, stock=5)
        token = await cart_with(buyer, [(product, 1)])
        cart = (await buyer(CART, {"t": token}))["cart"]
        assert cart["subtotal"]["amount"] == "120.00"
        assert cart["discount"]["amount"] == "10.00"
        assert cart["feeTotal"]["amount"] == "5.00"
        assert cart["total"]["amount"] == "115.00"
        assert [a["kind"] for a in cart["orderAdjustments"]] == ["DISCOUNT", "FEE"]
        assert cart["fees"] == [
            {
                "source": "shop",
                "rule": "handling",
                "label": "包装费",
                "kind": "FEE",
                "amount": {"amount": "5.00"},
            }
        ]

        placed = await place(buyer, token)
        assert placed["__typename"] == "PlaceOrderSuccess", placed
        order = await order_of(buyer, placed["order"])
        assert order["discount"]["amount"] == "10.00"
        assert order["feeTotal"]["amount"] == "5.00"
        assert order["total"]["amount"] == "115.00"
        assert [a["rule"] for a in order["fees"]] == ["handling"]
        assert [a["source"] for a in order["adjustments"]] == ["shop", "shop"]
        row = await session.scalar(select(Order))
        assert row is not None
        assert (row.discount_amount, row.fee_amount, row.total_amount) == (1000, 500, 11500)


# --- reserving and giving back in the order's transactions ------------------------------


class TestReservations:
    @pytest.fixture
    def seats(self) -> SeatsPlugin:
        return SeatsPlugin()

    @pytest.fixture
    def plugins(self, settings: Settings, seats: SeatsPlugin) -> PluginRuntime:
        return only_plugins(settings, seats)

    async def test_hook_order_placing(
        self, gql: GraphQLClient, session: AsyncSession, seats: SeatsPlugin
    ) -> None:
        await create_pool(session, capacity=3)
        product = await make_product(session, price=1000, stock=10)
        first = await place(gql, await cart_with(gql, [(product, 2)]))
        assert first["__typename"] == "PlaceOrderSuccess", first
        assert await pool(session) == (2, 1)
        # The hook saw the written order (its id) and the cart it came from.
        [(order_id, cart_id)] = seats.placing
        await session.commit()
        placed = await session.scalar(select(Order))
        assert placed is not None
        assert (order_id, cart_id) == (placed.id, placed.cart_id)

        refused = await place(gql, await cart_with(gql, [(product, 2)]))
        assert refused["__typename"] == "CheckoutProblems", refused
        data = await gql(
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { __typename "
            "... on CheckoutProblems { code problems { __typename code message field plugin "
            "... on Error { code } } } } }",
            {
                "input": {
                    "cartToken": await cart_with(gql, [(product, 2)]),
                    "idempotencyKey": "seats-2",
                    "shippingAddress": {
                        "recipientName": "王小明",
                        "phone": "13800138000",
                        "province": "浙江省",
                        "city": "杭州市",
                        "street": "文三路 90 号",
                    },
                    "email": "buyer@example.cn",
                }
            },
        )
        [problem] = data["placeOrder"]["problems"]
        assert problem == {
            "__typename": "CheckoutProblem",
            "code": "SOLD_OUT",
            "message": "拼团名额已满 / no seats left",
            "field": "lines",
            "plugin": "seats",
        }
        # Refused: nothing of those orders was written, their stock is free again.
        assert await pool(session) == (2, 1)
        assert await count(session, Order) == 1
        assert await stock_of(session, product) == [(10, 2)]

    async def test_a_failing_hook_writes_nothing_not_even_its_own_reservation(
        self, gql: GraphQLClient, session: AsyncSession, seats: SeatsPlugin
    ) -> None:
        await create_pool(session, capacity=3)
        product = await make_product(session, price=1000, stock=10)
        seats.fail_after_reserving = True
        body = await gql.execute(
            PLACE_ORDER, order_input(await cart_with(gql, [(product, 1)]), "k")
        )
        [error] = body["errors"]
        assert error["extensions"]["plugin"] == "seats"
        assert error["extensions"]["hook"] == "order_placing"
        assert await pool(session) == (0, 0)
        assert await count(session, Order) == 0
        assert await count(session, OrderLine) == 0
        assert await stock_of(session, product) == [(10, 0)]

    async def test_hook_order_cancelling(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        await create_pool(session, capacity=5)
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        product = await make_product(session, price=1000, stock=10)
        unpaid = await place_ok(buyer, [(product, 2)])
        paid = await place_ok(buyer, [(product, 3)])
        assert (await pay(buyer, paid))["__typename"] == "PayOrderSuccess"
        assert await pool(session) == (5, 2)

        for order in (unpaid, paid):
            data = await buyer(
                CANCEL_ORDER, {"input": {"orderId": order["id"], "reason": "不要了"}}
            )
            assert data["cancelOrder"]["order"]["status"] == "CANCELLED", data
        assert await pool(session) == (0, 0)
        refunded = await order_of(buyer, paid)
        assert [p["status"] for p in refunded["payments"]] == ["REFUNDED"]
        # Seats given back can be taken again.
        assert (await place(buyer, await cart_with(buyer, [(product, 5)])))[
            "__typename"
        ] == "PlaceOrderSuccess"


# --- the shipment plan at payment --------------------------------------------------------


class Planner:
    """Ships everything from the warehouse coded ``FRONT-1`` in parcels of at most two units;
    leaves orders of a single unit to the next planner (the core)."""

    PLUGIN_INFO = PluginInfo(name="planner", version="1.0")

    def __init__(self) -> None:
        self.front: int | None = None
        self.impossible = False

    @hookimpl
    def plan_shipments(self, order: Order, lines: list[OrderLine]) -> list[Parcel] | None:
        assert order.status is OrderStatus.PENDING_PAYMENT
        if sum(line.quantity for line in lines) == 1:
            return None
        assert self.front is not None
        parcels = []
        for line in lines:
            left = line.quantity - (1 if self.impossible else 0)
            while left > 0:
                take = min(2, left)
                parcels.append(
                    Parcel(
                        warehouse_id=self.front,
                        lines=(ParcelLine(order_line_id=line.id, quantity=take),),  # type: ignore[arg-type]
                        carrier="闪送",
                        note="前置仓",
                    )
                )
                left -= take
        return parcels


class TestShipmentPlans:
    @pytest.fixture
    def planner(self) -> Planner:
        return Planner()

    @pytest.fixture
    def plugins(self, settings: Settings, planner: Planner) -> PluginRuntime:
        return only_plugins(settings, planner)

    async def test_hook_plan_shipments(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, planner: Planner
    ) -> None:
        regional = await make_warehouse(session, code="REGION-1")
        front = await make_warehouse(session, code="FRONT-1")
        planner.front = front.id
        product = await make_product(session, price=1000, stock=[(regional, 10), (front, 5)])
        buyer = gql.as_(token_for(settings, await make_customer(session)))

        order = await place_ok(buyer, [(product, 3)])
        # Reserved where most is available (the regional warehouse) ...
        assert await stock_of(session, product) == [(10, 3), (5, 0)]
        assert (await order_of(buyer, order))["shipmentPlan"] == []
        paid = await pay(buyer, order)
        assert paid["__typename"] == "PayOrderSuccess", paid
        # ... and moved to the front warehouse the planner chose, when paid for.
        assert await stock_of(session, product) == [(10, 0), (5, 3)]
        plan = (await order_of(buyer, order))["shipmentPlan"]
        assert plan == [
            {
                "source": "planner",
                "carrier": "闪送",
                "note": "前置仓",
                "warehouse": {"code": "FRONT-1"},
                "lines": [{"quantity": q, "orderLine": {"sku": product.sku}}],
            }
            for q in (2, 1)
        ]
        line = await session.scalar(select(OrderLine).where(OrderLine.quantity == 3))
        assert line is not None and line.warehouse_id == front.id
        await session.commit()  # no read transaction left to block the next write (SQLite)

        # One unit: the planner passes, the core plans one parcel per warehouse.
        single = await place_ok(buyer, [(product, 1)])
        await pay(buyer, single)
        core_plan = (await order_of(buyer, single))["shipmentPlan"]
        assert core_plan == [
            {
                "source": "core",
                "carrier": None,
                "note": "",
                "warehouse": {"code": "REGION-1"},
                "lines": [{"quantity": 1, "orderLine": {"sku": product.sku}}],
            }
        ]
        # Another customer sees no plan (nor the order).
        stranger = gql.as_(token_for(settings, await make_customer(session)))
        assert (await stranger(ORDER, {"id": order["id"]}))["order"] is None

    async def test_an_impossible_plan_fails_the_payment_before_money_moves(
        self, buyer: GraphQLClient, session: AsyncSession, planner: Planner
    ) -> None:
        warehouse = await make_warehouse(session, code="FRONT-2")
        planner.front = warehouse.id
        product = await make_product(session, price=1000, stock=[(warehouse, 5)])
        order = await place_ok(buyer, [(product, 3)])
        planner.impossible = True
        body = await buyer.execute(
            PAY,
            {
                "input": {
                    "orderId": order["id"],
                    "gateway": "test",
                    "amount": {"amount": order["total"]["amount"]},
                }
            },
        )
        [error] = body["errors"]
        assert error["extensions"]["plugin"] == "planner"
        assert error["extensions"]["hook"] == "plan_shipments"
        assert await count(session, Payment) == 0
        assert await stock_of(session, product) == [(5, 3)]
        row = await session.scalar(select(Order))
        assert row is not None and row.status is OrderStatus.PENDING_PAYMENT
        assert row.shipment_plan == []


# --- payment gateways ------------------------------------------------------------------


class Cards:
    """A card gateway: ``tok_ok`` is authorised then captured, ``tok_scan`` waits for the
    shopper (PENDING, settled by the webhook), ``tok_refuse_refund`` cannot be refunded."""

    PLUGIN_INFO = PluginInfo(name="cards", version="1.0")
    SECRET = "whsec-test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refusing_refunds = False

    @hookimpl
    def payment_gateways(self) -> list[PaymentGateway]:
        return [PaymentGateway(code="card", label="银行卡")]

    @hookimpl
    def authorise_payment(
        self, gateway: str, order: Order, amount: int, currency: str, token: str | None
    ) -> PaymentResult:
        self.calls.append(("authorise", (gateway, order.id, amount, currency, token)))
        if token == "tok_scan":
            return PaymentResult(
                PaymentOutcome.PENDING, f"card-{order.id}", next_action="weixin://pay/abc"
            )
        if token == "tok_no":
            return PaymentResult(PaymentOutcome.DECLINED, f"card-{order.id}", "insufficient funds")
        return PaymentResult(PaymentOutcome.AUTHORISED, f"auth-{order.id}")

    @hookimpl
    def capture_payment(self, gateway: str, payment: Payment) -> PaymentResult:
        self.calls.append(("capture", payment.reference))
        return PaymentResult(PaymentOutcome.CAPTURED, payment.reference.replace("auth", "cap"))

    @hookimpl
    async def refund_payment(self, order: Order, payment: Payment, reason: str) -> PaymentResult:
        self.calls.append(("refund", (order.status.value, payment.reference, reason)))
        if self.refusing_refunds:
            raise RuntimeError("the bank refuses refunds today")
        return PaymentResult(PaymentOutcome.REFUNDED, payment.reference, "退款已受理")

    @hookimpl
    def payment_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        if headers.get("x-card-signature") != self.SECRET:
            raise PermissionError("bad signature")
        notice = json.loads(body)
        update = PaymentUpdate(notice["ref"], PaymentOutcome(notice["status"]), "notified")
        return WebhookReply(updates=(update,), body="success")


class TestGateways:
    @pytest.fixture
    def cards(self) -> Cards:
        return Cards()

    @pytest.fixture
    def plugins(self, settings: Settings, cards: Cards) -> PluginRuntime:
        return only_plugins(settings, cards)

    async def webhook(self, gql: GraphQLClient, body: dict[str, Any], gateway: str = "card") -> Any:
        return await gql.http.post(
            f"/payments/{gateway}/webhook",
            content=json.dumps(body),
            headers={"X-Card-Signature": Cards.SECRET},
        )

    async def test_hook_payment_gateways(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        shopper = (await gql(GATEWAYS))["paymentGateways"]
        assert shopper == [
            {"code": "card", "label": "银行卡", "staffOnly": False, "source": "cards"},
            {
                "code": "test",
                "label": 'Test card ("tok_declined" is declined)',
                "staffOnly": False,
                "source": "core",
            },
        ]
        staff = gql.as_(token_for(settings, await make_staff(session)))
        codes = [g["code"] for g in (await staff(GATEWAYS))["paymentGateways"]]
        assert codes == ["card", "manual", "test"]

        order = await place_ok(gql, [(await make_product(session, price=1000), 1)])
        unknown = await pay_with(gql, order, "alipay")
        assert unknown == {
            "__typename": "ValidationError",
            "code": "UNKNOWN_GATEWAY",
            "message": "unknown gateway 'alipay'; use one of: card, test",
            "field": "gateway",
        }

    async def test_hook_authorise_payment(
        self, buyer: GraphQLClient, session: AsyncSession, cards: Cards
    ) -> None:
        order = await place_ok(buyer, [(await make_product(session, price=2500), 2)])
        declined = await pay_with(buyer, order, "card", "tok_no")
        assert declined["__typename"] == "PaymentDeclined"
        assert "insufficient funds" in declined["message"]
        row = await session.scalar(select(Order))
        assert row is not None
        assert cards.calls[0] == ("authorise", ("card", row.id, 5000, "CNY", "tok_no"))
        assert (await order_of(buyer, order))["status"] == "PENDING_PAYMENT"

    async def test_hook_capture_payment(
        self, buyer: GraphQLClient, session: AsyncSession, cards: Cards
    ) -> None:
        order = await place_ok(buyer, [(await make_product(session, price=2500), 1)])
        paid = await pay_with(buyer, order, "card", "tok_ok")
        assert paid["__typename"] == "PayOrderSuccess", paid
        row = await session.scalar(select(Order))
        assert row is not None
        assert paid["payment"] == {
            "gateway": "card",
            "status": "CAPTURED",
            "reference": f"cap-{row.id}",
            "message": "",
        }
        assert paid["order"]["status"] == "PAID"
        assert paid["nextAction"] is None
        assert [c[0] for c in cards.calls] == ["authorise", "capture"]
        captured = await session.scalar(
            select(OutboxEvent.payload).where(OutboxEvent.name == "payment_captured")
        )
        assert captured is not None and captured["gateway"] == "card"

    async def test_hook_refund_payment(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, cards: Cards
    ) -> None:
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        product = await make_product(session, price=2500, stock=5)
        order = await place_ok(buyer, [(product, 1)])
        await pay_with(buyer, order, "card", "tok_ok")

        cards.refusing_refunds = True
        body = await buyer.execute(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
        [error] = body["errors"]
        assert (error["extensions"]["plugin"], error["extensions"]["hook"]) == (
            "cards",
            "refund_payment",
        )
        assert (await order_of(buyer, order))["status"] == "PAID"
        assert await stock_of(session, product) == [(5, 1)]

        cards.refusing_refunds = False
        data = await buyer(CANCEL_ORDER, {"input": {"orderId": order["id"], "reason": "买错了"}})
        assert data["cancelOrder"]["order"]["status"] == "CANCELLED"
        assert cards.calls[-1][0] == "refund"
        assert cards.calls[-1][1][0] == "CANCELLED"
        assert cards.calls[-1][1][2] == "买错了"
        [payment] = (await order_of(buyer, order))["payments"]
        assert (payment["status"], payment["message"]) == ("REFUNDED", "买错了: 退款已受理")
        assert await stock_of(session, product) == [(5, 0)]

    async def test_hook_payment_webhook(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        product = await make_product(session, price=2500, stock=5)
        order = await place_ok(buyer, [(product, 1)])
        pending = await pay_with(buyer, order, "card", "tok_scan")
        assert pending["__typename"] == "PayOrderSuccess", pending
        assert pending["payment"]["status"] == "PENDING"
        assert pending["nextAction"] == "weixin://pay/abc"
        assert pending["order"]["status"] == "PENDING_PAYMENT"
        reference = pending["payment"]["reference"]

        forged = await gql.http.post(
            "/payments/card/webhook", content=json.dumps({"ref": reference, "status": "CAPTURED"})
        )
        assert forged.status_code == 500
        assert (await order_of(buyer, order))["status"] == "PENDING_PAYMENT"
        assert (await gql.http.post("/payments/nope/webhook", content=b"{}")).status_code == 404

        settled = await self.webhook(gql, {"ref": reference, "status": "CAPTURED"})
        assert (settled.status_code, settled.text) == (200, "success")
        again = await self.webhook(gql, {"ref": reference, "status": "CAPTURED"})
        assert again.status_code == 200
        after = await order_of(buyer, order)
        assert after["status"] == "PAID"
        assert [(p["status"], p["message"]) for p in after["payments"]] == [
            ("CAPTURED", "notified")
        ]
        assert await count(session, OutboxEvent, OutboxEvent.name == "payment_captured") == 1

    async def test_a_payment_settled_after_the_order_was_cancelled_is_refunded_at_once(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, cards: Cards
    ) -> None:
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        order = await place_ok(buyer, [(await make_product(session, price=2500), 1)])
        pending = await pay_with(buyer, order, "card", "tok_scan")
        await buyer(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
        settled = await self.webhook(
            gql, {"ref": pending["payment"]["reference"], "status": "CAPTURED"}
        )
        assert settled.status_code == 200
        after = await order_of(buyer, order)
        assert after["status"] == "CANCELLED"
        [payment] = after["payments"]
        assert payment["status"] == "REFUNDED"
        assert "CANCELLED" in payment["message"]
        assert cards.calls[-1][0] == "refund"


class TestGatewayClash:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        copycat = FakePlugin(
            "copycat", payment_gateways=lambda: [PaymentGateway(code="test", label="Copy")]
        )
        return only_plugins(settings, copycat)

    async def test_two_plugins_offering_one_code_is_an_error_naming_them(
        self, gql: GraphQLClient
    ) -> None:
        body = await gql.execute(GATEWAYS)
        [error] = body["errors"]
        assert error["extensions"]["plugin"] == "copycat"  # never the core
        assert "'test'" in error["message"] and "'core'" in error["message"]


class TestTheCoreTestGateway:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return only_plugins(settings)

    async def test_a_pending_test_payment_is_settled_by_its_webhook(
        self, gql: GraphQLClient, buyer: GraphQLClient, session: AsyncSession
    ) -> None:
        order = await place_ok(buyer, [(await make_product(session, price=1000), 1)])
        pending = await pay_with(buyer, order, "test", "tok_pending")
        assert pending["payment"]["status"] == "PENDING"
        assert pending["nextAction"].endswith(pending["payment"]["reference"])
        answer = await gql.http.post(
            "/payments/test/webhook",
            json={"reference": pending["payment"]["reference"], "status": "CAPTURED"},
        )
        assert (answer.status_code, answer.text) == (200, "ok")
        row = await session.scalar(select(Payment))
        assert row is not None and row.status is PaymentStatus.CAPTURED
        assert (await session.scalar(select(Order.status))) is OrderStatus.PAID


# --- shipment events --------------------------------------------------------------------


class TestShipmentEvents:
    @pytest.fixture
    def created(self) -> Recorder:
        return Recorder()

    @pytest.fixture
    def tracked(self) -> Recorder:
        return Recorder()

    @pytest.fixture
    def plugins(self, settings: Settings, created: Recorder, tracked: Recorder) -> PluginRuntime:
        return only_plugins(
            settings,
            FakePlugin("carrier", shipment_created=created, tracking_event_recorded=tracked),
        )

    async def _shipped(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> tuple[GraphQLClient, dict[str, Any], Warehouse]:
        from tests.schema.test_shipments import CREATE

        staff = gql.as_(token_for(settings, await make_staff(session)))
        buyer = gql.as_(token_for(settings, await make_customer(session)))
        warehouse = await make_warehouse(session)
        order = await place_ok(buyer, [(await make_product(session, price=1000), 2)])
        assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
        data = await staff(
            CREATE,
            {
                "input": {
                    "orderId": order["id"],
                    "warehouseId": gid("Warehouse", warehouse.id),
                    "carrier": "顺丰速运",
                    "trackingNumber": "SF000111",
                }
            },
        )
        return staff, data["createShipment"]["shipment"], warehouse

    async def test_hook_shipment_created(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, created: Recorder
    ) -> None:
        _, shipment, warehouse = await self._shipped(gql, session, settings)
        await eventually(lambda: len(created.events) == 1)
        payload = created.events[0].payload
        assert payload["warehouse_id"] == warehouse.id
        assert (payload["carrier"], payload["tracking_number"]) == ("顺丰速运", "SF000111")
        assert [line["quantity"] for line in payload["lines"]] == [2]
        assert gid("Shipment", payload["shipment_id"]) == shipment["id"]

    async def test_hook_tracking_event_recorded(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, tracked: Recorder
    ) -> None:
        from tests.schema.test_shipments import TRACK

        staff, shipment, _ = await self._shipped(gql, session, settings)
        for status, location in (("IN_TRANSIT", "杭州"), ("IN_TRANSIT", "上海转运中心")):
            data = await staff(
                TRACK,
                {"input": {"shipmentId": shipment["id"], "status": status, "location": location}},
            )
            assert data["recordTrackingEvent"]["__typename"] == "RecordTrackingEventSuccess"
        # Every scan is an event, also one that does not change the status.
        await eventually(lambda: len(tracked.events) == 2)
        assert [e.payload["location"] for e in sorted(tracked.events, key=lambda e: e.id)] == [
            "杭州",
            "上海转运中心",
        ]
        assert all(e.payload["status"] == "IN_TRANSIT" for e in tracked.events)
