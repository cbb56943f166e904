"""Returns, exchanges and repairs over HTTP, on one served shop per backend: orders placed and
paid by customers, delivered through the core's status moves, then sent back. Hand-computed
refunds (with and without a 满减 in the discount ledger), stock put back for resellable units
only, the zero-price replacement of an exchange and of a repair, the windows, the quantity
limits (two concurrent requests for the last unit: one wins), typed invalid transitions, and
customers seeing only their own requests."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import Carrier
from plugins.promotions.models import Promotion, PromotionClass, PromotionKind, ReturnRule
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.models import (
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    StaffRole,
    StockLevel,
    utcnow,
)
from server.plugins import load_plugins
from server.services import orders
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import (
    VariantSpec,
    cart_with,
    gid,
    make_product,
    make_variant_product,
    pay,
    place,
)
from tests.support.statements import counting, settled

_keys = itertools.count()

RESULT = """
    __typename
    ... on ReturnRequestSuccess { returnRequest {
      id number kind status reason trackingNumber carrierName decidedBy decisionNote
      orderId replacementOrderId refundAmount { amount currency } warehouse { id }
      lines { id orderLineId quantity exchangeVariantId condition }
    } }
    ... on Error { code message field }
"""
REQUEST = f"mutation($input: RequestReturnInput!) {{ requestReturn(input: $input) {{ {RESULT} }} }}"
RESULT += "... on InvalidTransition { code current target }"
CANCEL = f"mutation($input: ReturnIdInput!) {{ cancelReturn(input: $input) {{ {RESULT} }} }}"
SHIP = f"mutation($input: ShipReturnInput!) {{ shipReturn(input: $input) {{ {RESULT} }} }}"
APPROVE = f"mutation($input: ApproveReturnInput!) {{ approveReturn(input: $input) {{ {RESULT} }} }}"
REJECT = f"mutation($input: RejectReturnInput!) {{ rejectReturn(input: $input) {{ {RESULT} }} }}"
SHIPPED = (
    "mutation($input: RecordReturnShippedInput!) "
    f"{{ recordReturnShipped(input: $input) {{ {RESULT} }} }}"
)
RECEIVE = f"mutation($input: ReturnIdInput!) {{ receiveReturn(input: $input) {{ {RESULT} }} }}"
INSPECT = f"mutation($input: InspectReturnInput!) {{ inspectReturn(input: $input) {{ {RESULT} }} }}"
MINE = "{ myReturns(first: 20) { nodes { number status } } }"
ORDER_RETURNS = """
query($id: ID!) { node(id: $id) { ... on Order { returns { number status } } } }"""
STAFF_LIST = """
query($filter: ReturnFilterInput) {
  returns(first: 20, filter: $filter) { nodes { number kind status } }
}"""
REPLACEMENT = """
query($id: ID!) { node(id: $id) { ... on Order {
  status total { amount } lines { sku quantity unitPrice { amount } }
} } }"""


async def _seed(session: AsyncSession) -> dict[str, Any]:
    admin = await make_staff(session, role=StaffRole.ADMIN)
    support = await make_staff(session, role=StaffRole.SUPPORT)
    buyer, other = await make_customer(session), await make_customer(session)
    # Orders of the other tests stay below the 满减's 300.00 threshold.
    big, small = await make_product(session, price=20000), await make_product(session, price=15000)
    cheap = await make_product(session, price=9900, stock=50)
    shirt, (size_m, size_l, size_xl) = await make_variant_product(
        session,
        [
            VariantSpec("TEE-M", {"size": "M"}, price=5900, stock=10),
            VariantSpec("TEE-L", {"size": "L"}, price=5900, stock=10),
            VariantSpec("TEE-XL", {"size": "XL"}, price=5900, stock=10, is_active=False),
        ],
    )
    session.add(
        Promotion(
            name="满300减40",
            label="满300减40",
            kind=PromotionKind.SPEND_SAVE,
            promotion_class=PromotionClass.ORDER,
            rules={"tiers": [{"threshold": 30000, "amount_off": 4000}]},
            on_return=ReturnRule.KEEP,
        )
    )
    session.add(Carrier(code="SF", name="顺丰速运", tracking_prefix="SF"))
    await session.commit()
    return {
        "admin": admin,
        "support": support,
        "buyer": buyer,
        "other": other,
        "big": big,
        "small": small,
        "cheap": cheap,
        "shirt": shirt,
        "m": size_m,
        "l": size_l,
        "xl": size_xl,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, _seed) as served:
        yield served


class Shop:
    """The served shop as its customers and staff reach it, and its database for arranging
    deliveries and checking stock."""

    def __init__(self, shop: ModuleShop, http: httpx.AsyncClient, db: AsyncSession) -> None:
        self.seeded = shop.seeded
        self.app = shop.app
        self.settings = Settings(database_url=shop.database_url, env="test")
        self.plugins = load_plugins(self.settings)
        client = GraphQLClient(http)
        self.buyer = client.as_(token_for(self.settings, shop.seeded["buyer"]))
        self.other = client.as_(token_for(self.settings, shop.seeded["other"]))
        self.staff = client.as_(token_for(self.settings, shop.seeded["admin"]))
        self.support = client.as_(token_for(self.settings, shop.seeded["support"]))
        self.db = db

    async def order(self, lines: list[tuple[Any, int]], *, who: str = "buyer") -> dict[str, Any]:
        """A paid order of ``lines`` by the buyer (or the other customer)."""
        gql = self.buyer if who == "buyer" else self.other
        placed = await place(gql, await cart_with(gql, lines), f"ret-{next(_keys)}")
        assert placed["__typename"] == "PlaceOrderSuccess", placed
        paid = await pay(gql, placed["order"])
        assert paid["__typename"] == "PayOrderSuccess", paid
        return dict(placed["order"])

    async def deliver(self, order: dict[str, Any], *, days_ago: int = 0) -> None:
        """The core's moves to DELIVERED (stock leaves at SHIPPED), dated ``days_ago``."""
        order_id = _pk(order["id"])
        await self.db.commit()
        await mark_write(self.db)
        for target in (OrderStatus.FULFILLING, OrderStatus.SHIPPED, OrderStatus.DELIVERED):
            await orders.transition_order(self.db, self.plugins, order_id, target, actor="test")
        if days_ago:
            await self.db.execute(
                update(OrderStatusChange)
                .where(
                    col(OrderStatusChange.order_id) == order_id,
                    col(OrderStatusChange.to_status) == OrderStatus.DELIVERED,
                )
                .values(at=utcnow() - timedelta(days=days_ago))
            )
        await self.db.commit()

    async def on_hand(self, variant_id: int) -> tuple[int, int]:
        """(on hand, reserved) of a variant over every warehouse, as committed now."""
        await self.db.commit()
        rows = (
            await self.db.execute(
                select(StockLevel.on_hand, StockLevel.reserved).where(
                    col(StockLevel.variant_id) == variant_id
                )
            )
        ).all()
        await self.db.commit()
        return sum(r.on_hand for r in rows), sum(r.reserved for r in rows)


def _pk(global_id: str) -> int:
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


@pytest.fixture
async def s(shop: ModuleShop) -> AsyncIterator[Shop]:
    engine = create_engine(shop.database_url)
    async with (
        httpx.AsyncClient(base_url=shop.url, timeout=60) as http,
        session_factory(engine)() as db,
    ):
        yield Shop(shop, http, db)
    await engine.dispose()


def _ask(
    order: dict[str, Any], lines: list[tuple[int, int]], kind: str = "RETURN", **extra: Any
) -> dict[str, Any]:
    return {
        "input": {
            "orderId": order["id"],
            "kind": kind,
            "reason": extra.pop("reason", "NO_LONGER_NEEDED"),
            "lines": [
                {"orderLineId": order["lines"][i]["id"], "quantity": q, **extra} for i, q in lines
            ],
        }
    }


async def _request(gql: GraphQLClient, variables: dict[str, Any]) -> dict[str, Any]:
    return dict((await gql(REQUEST, variables))["requestReturn"])


async def _ok(gql: GraphQLClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    data = await gql(query, variables)
    (result,) = data.values()
    assert result["__typename"] == "ReturnRequestSuccess", result
    return dict(result["returnRequest"])


async def _back_at_warehouse(s: Shop, rid: str, **approve: Any) -> dict[str, Any]:
    """Approved (with ``approve``), shipped by the customer, received."""
    await _ok(s.staff, APPROVE, {"input": {"id": rid, **approve}})
    await _ok(s.buyer, SHIP, {"input": {"id": rid, "trackingNumber": "YT1234567890"}})
    return await _ok(s.staff, RECEIVE, {"input": {"id": rid}})


async def test_a_return_is_refunded_its_price_less_its_share_of_the_spend_and_save(
    s: Shop,
) -> None:
    big, small = s.seeded["big"], s.seeded["small"]
    order = await s.order([(big, 1), (small, 1)])
    # 200.00 + 150.00 = 350.00 reaches 满300减40.
    assert (order["subtotal"]["amount"], order["discount"]["amount"]) == ("350.00", "40.00")
    await s.deliver(order)
    small_variant = order["lines"][1]
    before = await s.on_hand(await _variant(s, order, 1))

    asked = await _ok(s.buyer, REQUEST, _ask(order, [(1, 1)], reason="DEFECTIVE"))
    assert (asked["status"], asked["kind"], asked["reason"]) == ("REQUESTED", "RETURN", "DEFECTIVE")
    assert asked["lines"][0]["orderLineId"] == small_variant["id"]
    approved = await _ok(s.staff, APPROVE, {"input": {"id": asked["id"], "carrierCode": "SF"}})
    # The carrier's prefix and the request's number; it comes back to the line's warehouse.
    assert approved["trackingNumber"] == f"SF{asked['number']}"
    assert (approved["carrierName"], approved["status"]) == ("顺丰速运", "APPROVED")
    assert approved["warehouse"] is not None
    shipped = await _ok(s.buyer, SHIP, {"input": {"id": asked["id"], "trackingNumber": "SF999"}})
    assert (shipped["status"], shipped["trackingNumber"]) == ("IN_TRANSIT", "SF999")
    await _ok(s.staff, RECEIVE, {"input": {"id": asked["id"]}})
    line_id = asked["lines"][0]["id"]
    done = await _ok(
        s.staff,
        INSPECT,
        {
            "input": {
                "id": asked["id"],
                "lines": [{"returnLineId": line_id, "condition": "DEFECTIVE"}],
            }
        },
    )
    # The coupon's 40.00 over 200.00 and 150.00: 22.857 and 17.143 → 22.86 + 17.14. KEEP: the
    # 200.00 line keeps its share; the 150.00 line is refunded 150.00 − 17.14 = 132.86.
    assert done["refundAmount"] == {"amount": "132.86", "currency": "CNY"}
    assert (done["status"], done["lines"][0]["condition"]) == ("COMPLETED", "DEFECTIVE")
    # A defective unit is written off: nothing comes back on hand.
    assert await s.on_hand(await _variant(s, order, 1)) == before

    # Its customer follows it on the order and in their list; staff filter by order; others
    # see nothing of it.
    mine = await s.buyer(MINE)
    assert {"number": asked["number"], "status": "COMPLETED"} in mine["myReturns"]["nodes"]
    on_order = await s.buyer(ORDER_RETURNS, {"id": order["id"]})
    assert on_order["node"]["returns"] == [{"number": asked["number"], "status": "COMPLETED"}]
    listed = await s.staff(STAFF_LIST, {"filter": {"orderId": order["id"], "kind": "RETURN"}})
    assert listed["returns"]["nodes"] == [
        {"number": asked["number"], "kind": "RETURN", "status": "COMPLETED"}
    ]
    theirs = await s.other(MINE)
    assert asked["number"] not in {n["number"] for n in theirs["myReturns"]["nodes"]}
    assert (await s.other(ORDER_RETURNS, {"id": order["id"]}))["node"] is None
    # Someone else's order answers like a missing one.
    refused = await _request(s.other, _ask(order, [(0, 1)]))
    assert (refused["__typename"], refused["code"]) == ("NotFoundError", "NOT_FOUND")
    # Staff without logistics permissions do not list returns.
    body = await s.support.execute(STAFF_LIST, {})
    assert body.get("errors") and body.get("data") is None


async def test_resellable_units_go_back_on_hand_and_are_refunded_at_their_price(
    s: Shop,
) -> None:
    cheap = s.seeded["cheap"]
    order = await s.order([(cheap, 2)])
    await s.deliver(order)
    variant = await _variant(s, order, 0)
    before = await s.on_hand(variant)
    asked = await _ok(s.buyer, REQUEST, _ask(order, [(0, 2)]))
    await _back_at_warehouse(s, asked["id"])
    done = await _ok(
        s.staff,
        INSPECT,
        {
            "input": {
                "id": asked["id"],
                "lines": [{"returnLineId": asked["lines"][0]["id"], "condition": "RESELLABLE"}],
            }
        },
    )
    # No promotion: the unit price times the units.
    assert done["refundAmount"]["amount"] == "198.00"
    assert await s.on_hand(variant) == (before[0] + 2, before[1])
    # Completed is final.
    again = (await s.staff(RECEIVE, {"input": {"id": asked["id"]}}))["receiveReturn"]
    assert (again["__typename"], again["code"], again["current"], again["target"]) == (
        "InvalidTransition",
        "INVALID_TRANSITION",
        "COMPLETED",
        "RECEIVED",
    )


async def _variant(s: Shop, order: dict[str, Any], index: int) -> int:
    line = await s.db.get(OrderLine, _pk(order["lines"][index]["id"]))
    assert line is not None
    variant_id = line.variant_id
    await s.db.commit()
    return variant_id


async def test_every_move_out_of_order_is_a_typed_invalid_transition(s: Shop) -> None:
    order = await s.order([(s.seeded["cheap"], 1)])
    await s.deliver(order)
    asked = await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)]))
    rid = asked["id"]

    async def refused(gql: GraphQLClient, query: str, variables: dict[str, Any]) -> Any:
        (result,) = (await gql(query, variables)).values()
        return (result["__typename"], result.get("current"), result.get("target"))

    assert await refused(s.staff, RECEIVE, {"input": {"id": rid}}) == (
        "InvalidTransition",
        "REQUESTED",
        "RECEIVED",
    )
    inspect = {"input": {"id": rid, "lines": []}}
    assert await refused(s.staff, INSPECT, inspect) == (
        "InvalidTransition",
        "REQUESTED",
        "COMPLETED",
    )
    # Without a tracking number from approval or now, IN_TRANSIT is refused, nothing written.
    await _ok(s.staff, APPROVE, {"input": {"id": rid}})
    no_tracking = (await s.staff(SHIPPED, {"input": {"id": rid}}))["recordReturnShipped"]
    assert (no_tracking["__typename"], no_tracking["field"]) == (
        "ValidationError",
        "trackingNumber",
    )
    assert await refused(s.buyer, CANCEL, {"input": {"id": rid}}) == (
        "InvalidTransition",
        "APPROVED",
        "CANCELLED",
    )
    assert await refused(s.staff, REJECT, {"input": {"id": rid, "note": "晚了"}}) == (
        "InvalidTransition",
        "APPROVED",
        "REJECTED",
    )
    shipped = await _ok(s.staff, SHIPPED, {"input": {"id": rid, "trackingNumber": "JD0001"}})
    assert shipped["status"] == "IN_TRANSIT"
    # Someone else's request answers like a missing one.
    (theirs,) = (await s.other(CANCEL, {"input": {"id": rid}})).values()
    assert theirs["code"] == "NOT_FOUND"

    # A rejection needs a note, and is final.
    second = await s.order([(s.seeded["cheap"], 1)])
    await s.deliver(second)
    other = await _ok(s.buyer, REQUEST, _ask(second, [(0, 1)]))
    (blank,) = (await s.staff(REJECT, {"input": {"id": other["id"], "note": " "}})).values()
    assert (blank["code"], blank["field"]) == ("VALIDATION_FAILED", "note")
    rejected = await _ok(s.staff, REJECT, {"input": {"id": other["id"], "note": "已拆封"}})
    assert (rejected["status"], rejected["decisionNote"]) == ("REJECTED", "已拆封")
    assert rejected["decidedBy"] == f"staff:{s.seeded['admin'].id}"
    assert await refused(s.staff, APPROVE, {"input": {"id": other["id"]}}) == (
        "InvalidTransition",
        "REJECTED",
        "APPROVED",
    )
    # The customer sees the decision but not who made it.
    mine = await s.buyer(
        "query($id: ID!) { node(id: $id) { ... on ReturnRequest { decidedBy decisionNote } } }",
        {"id": other["id"]},
    )
    assert mine["node"] == {"decidedBy": None, "decisionNote": "已拆封"}


async def test_an_exchange_sends_the_other_variant_at_no_charge(s: Shop) -> None:
    m, l_size, xl = s.seeded["m"], s.seeded["l"], s.seeded["xl"]
    order = await s.order([(m, 1), (s.seeded["cheap"], 1)])
    await s.deliver(order)

    def exchange(variant: Any, index: int = 0) -> dict[str, Any]:
        return _ask(
            order, [(index, 1)], "EXCHANGE", exchangeVariantId=gid("ProductVariant", variant.id)
        )

    for bad in (m, xl):  # the same size, an inactive one
        refused = await _request(s.buyer, exchange(bad))
        assert (refused["code"], refused["field"]) == (
            "EXCHANGE_VARIANT_INVALID",
            "lines.0.exchangeVariantId",
        )
    # Another product's variant.
    refused = await _request(s.buyer, exchange(l_size, index=1))
    assert refused["code"] == "EXCHANGE_VARIANT_INVALID"
    # An exchange names what it wants.
    refused = await _request(s.buyer, _ask(order, [(0, 1)], "EXCHANGE"))
    assert refused["code"] == "EXCHANGE_VARIANT_INVALID"

    m_before, l_before = await s.on_hand(m.id), await s.on_hand(l_size.id)
    asked = await _ok(s.buyer, REQUEST, exchange(l_size))
    assert asked["lines"][0]["exchangeVariantId"] == gid("ProductVariant", l_size.id)
    await _back_at_warehouse(s, asked["id"])
    done = await _ok(
        s.staff,
        INSPECT,
        {
            "input": {
                "id": asked["id"],
                "lines": [{"returnLineId": asked["lines"][0]["id"], "condition": "RESELLABLE"}],
            }
        },
    )
    assert done["refundAmount"] is None and done["replacementOrderId"] is not None
    replacement = (await s.buyer(REPLACEMENT, {"id": done["replacementOrderId"]}))["node"]
    assert replacement == {
        "status": "PAID",
        "total": {"amount": "0.00"},
        "lines": [{"sku": "TEE-L", "quantity": 1, "unitPrice": {"amount": "0.00"}}],
    }
    # The M came back on hand; one L is reserved for the replacement.
    assert await s.on_hand(m.id) == (m_before[0] + 1, m_before[1])
    assert await s.on_hand(l_size.id) == (l_before[0], l_before[1] + 1)
    # Exchanged units are gone for good: the line has nothing left to send back.
    again = await _request(s.buyer, _ask(order, [(0, 1)]))
    assert again["code"] == "QUANTITY_EXCEEDED"


async def test_a_repair_within_its_window_comes_back_as_the_same_variant(s: Shop) -> None:
    m = s.seeded["m"]
    order = await s.order([(m, 1)])
    # Thirty days after delivery: past the 7-day return window, well within a repair's 365.
    await s.deliver(order, days_ago=30)
    late = await _request(s.buyer, _ask(order, [(0, 1)]))
    assert (late["__typename"], late["code"]) == ("ConflictError", "OUTSIDE_WINDOW")
    asked = await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)], "REPAIR", reason="DEFECTIVE"))
    before = await s.on_hand(m.id)
    await _back_at_warehouse(s, asked["id"], trackingNumber="ZTO42")
    done = await _ok(
        s.staff,
        INSPECT,
        {
            "input": {
                "id": asked["id"],
                "lines": [{"returnLineId": asked["lines"][0]["id"], "condition": "DEFECTIVE"}],
            }
        },
    )
    assert done["refundAmount"] is None
    replacement = (await s.staff(REPLACEMENT, {"id": done["replacementOrderId"]}))["node"]
    assert replacement["lines"] == [
        {"sku": "TEE-M", "quantity": 1, "unitPrice": {"amount": "0.00"}}
    ]
    assert replacement["total"] == {"amount": "0.00"}
    # Beyond repair: written off, and the replacement reserves another M.
    assert await s.on_hand(m.id) == (before[0], before[1] + 1)


async def test_the_return_window_counts_shop_days_from_delivery(s: Shop) -> None:
    cheap = s.seeded["cheap"]
    inside, past, undelivered = [await s.order([(cheap, 1)]) for _ in range(3)]
    await s.deliver(inside, days_ago=7)
    await s.deliver(past, days_ago=8)
    ok = await _request(s.buyer, _ask(inside, [(0, 1)]))
    assert ok["__typename"] == "ReturnRequestSuccess", ok
    late = await _request(s.buyer, _ask(past, [(0, 1)]))
    assert (late["code"], late["field"]) == ("OUTSIDE_WINDOW", "orderId")
    early = await _request(s.buyer, _ask(undelivered, [(0, 1)]))
    assert early["code"] == "NOT_DELIVERED"


async def test_units_asked_for_never_exceed_what_is_left(s: Shop) -> None:
    cheap = s.seeded["cheap"]
    order = await s.order([(cheap, 2)])
    await s.deliver(order)
    too_many = await _request(s.buyer, _ask(order, [(0, 3)]))
    assert (too_many["code"], too_many["field"]) == ("QUANTITY_EXCEEDED", "lines.0.quantity")
    first = await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)]))
    held = await _request(s.buyer, _ask(order, [(0, 2)]))
    assert held["code"] == "ALREADY_REQUESTED"
    await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)]))
    assert (await _request(s.buyer, _ask(order, [(0, 1)])))["code"] == "ALREADY_REQUESTED"
    # Withdrawn, its unit may be asked for again.
    assert (await _ok(s.buyer, CANCEL, {"input": {"id": first["id"]}}))["status"] == "CANCELLED"
    await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)]))


async def test_two_concurrent_requests_for_the_last_unit_one_wins(s: Shop) -> None:
    order = await s.order([(s.seeded["cheap"], 1)])
    await s.deliver(order)
    results = await asyncio.gather(*(_request(s.buyer, _ask(order, [(0, 1)])) for _ in range(2)))
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["ConflictError", "ReturnRequestSuccess"], results
    assert {r.get("code") for r in results} == {None, "ALREADY_REQUESTED"}


async def test_a_free_gift_goes_back_only_with_a_bought_line(s: Shop) -> None:
    order = await s.order([(s.seeded["cheap"], 1), (s.seeded["m"], 1)])
    await s.deliver(order)
    # The second line stands for a 满赠 gift.
    await s.db.commit()
    await mark_write(s.db)
    await s.db.execute(
        update(OrderLine)
        .where(col(OrderLine.id) == _pk(order["lines"][1]["id"]))
        .values(gift_rule="promotions:满赠")
    )
    await s.db.commit()
    alone = await _request(s.buyer, _ask(order, [(1, 1)]))
    assert (alone["code"], alone["field"]) == ("GIFT_LINE", "lines")
    both = await _request(s.buyer, _ask(order, [(0, 1), (1, 1)]))
    assert both["__typename"] == "ReturnRequestSuccess", both


async def test_the_order_is_only_a_customers_own(s: Shop) -> None:
    theirs = await s.order([(s.seeded["cheap"], 1)], who="other")
    await s.deliver(theirs)
    refused = await _request(s.buyer, _ask(theirs, [(0, 1)]))
    assert refused["code"] == "NOT_FOUND"
    assert (
        await s.db.scalar(select(Order.id).where(col(Order.id) == _pk(theirs["id"])))
    ) is not None
    await s.db.commit()


PAGE = """
query($first: Int!) {
  returns(first: $first) {
    nodes { number carrierName warehouse { id } lines { quantity condition } }
  }
}"""
ORDERS_PAGE = """
query($first: Int!) { orders(first: $first) { nodes { number returns { number lines { id } } } } }"""


async def test_a_page_of_returns_reads_in_as_many_statements_as_one(s: Shop) -> None:
    for _ in range(3):
        order = await s.order([(s.seeded["cheap"], 1)])
        await s.deliver(order)
        asked = await _ok(s.buyer, REQUEST, _ask(order, [(0, 1)]))
        await _ok(s.staff, APPROVE, {"input": {"id": asked["id"], "carrierCode": "SF"}})
    await settled(s.db)
    for query, name in ((PAGE, "returns"), (ORDERS_PAGE, "orders")):
        with counting(s.app) as one:
            small = await s.staff(query, {"first": 1})
        with counting(s.app) as three:
            large = await s.staff(query, {"first": 3})
        assert (len(small[name]["nodes"]), len(large[name]["nodes"])) == (1, 3)
        assert len(three) == len(one), (name, three)
