"""The discount ledger over GraphQL, on an order placed over HTTP with a flash sale (PRODUCT)
and a coupon (ORDER): ``Order.promotionLedger`` and ``OrderLine.promotionDiscounts``, hand-
computed, for the order's customer and staff with orders.read only, in one statement for
every order of a page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.applications import Starlette

from plugins.promotions.models import CartCode, CouponCode, Promotion, PromotionClass, Trigger
from plugins.promotions.models import PromotionKind as K
from server.app import create_app
from server.config import Settings
from server.models import Cart, CartLine, Customer, ProductVariant, StaffRole
from server.plugins import load_plugins
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import PLACE_ORDER, make_product, order_input, pay, unthrottled
from tests.support.server import LiveServer
from tests.support.statements import counting

LEDGER = """
fragment Ledger on PromotionLedgerEntry {
  orderLineId promotionLabel promotionClass amount { amount currency } refunded { amount }
}
query($id: ID!) {
  node(id: $id) {
    ... on Order {
      promotionLedger { ...Ledger }
      lines { id sku promotionDiscounts { ...Ledger } }
    }
  }
}"""

REFUND = """
mutation($input: RefundOrderLinesInput!) { refundOrderLines(input: $input) {
  __typename ... on RefundOrderLinesSuccess { amount { amount } } ... on Error { code message }
} }"""

PAGE = """
query($first: Int!) {
  orders(first: $first) {
    nodes { number promotionLedger { promotionLabel amount { amount } } }
  }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return unthrottled(settings).model_copy(update={"plugins": "promotions"})


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings, load_plugins(settings))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[GraphQLClient]:
    server = LiveServer(app).start()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield GraphQLClient(http)
    server.stop()


async def _order(
    session: AsyncSession, client: GraphQLClient, settings: Settings, buyer: Customer, code: str
) -> dict[str, Any]:
    """A customer's order: 2 × 99.00 at the flash price (half off) and 1 × 150.00, with the
    coupon ``code`` on the cart."""
    cart = Cart(token=f"ledger-{code}-{buyer.id}", customer_id=buyer.id)
    session.add(cart)
    await session.flush()
    for product_id, quantity in ((session.info["flash_product"], 2), (session.info["plain"], 1)):
        variant = await session.scalar(
            select(col(ProductVariant.id)).where(col(ProductVariant.product_id) == product_id)
        )
        session.add(
            CartLine(cart_id=cart.id, product_id=product_id, variant_id=variant, quantity=quantity)
        )
    coupon = await session.scalar(select(CouponCode).where(col(CouponCode.code) == code))
    assert coupon is not None
    session.add(CartCode(cart_id=cart.id, code_id=coupon.id))
    await session.commit()
    me = client.as_(token_for(settings, buyer))
    placed = (await me(PLACE_ORDER, order_input(cart.token, f"k-{cart.token}")))["placeOrder"]
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    return dict(placed["order"])


async def test_the_ledger_for_the_owner_and_order_readers(
    session: AsyncSession, client: GraphQLClient, settings: Settings, app: Starlette
) -> None:
    flash_product = await make_product(session, price=9900)
    plain = await make_product(session, price=15000)
    session.info.update(flash_product=flash_product.id, plain=plain.id)
    flash = Promotion(
        name="flash",
        label="限时特惠 5 折",
        kind=K.FLASH_SALE,
        promotion_class=PromotionClass.PRODUCT,
        rules={"percent_off_bp": 5000},
        product_ids=[flash_product.id],
        combinable_with=["ORDER"],
    )
    coupon = Promotion(
        name="coupon",
        label="满减券 30 元",
        kind=K.COUPON,
        trigger=Trigger.CODE,
        rules={"amount_off": 3000},
        combinable_with=["PRODUCT"],
    )
    session.add_all([flash, coupon])
    await session.flush()
    session.add_all(
        [
            CouponCode(promotion_id=coupon.id, code="LEDGER1"),
            CouponCode(promotion_id=coupon.id, code="LEDGER2"),
        ]
    )
    await session.commit()
    buyer, stranger = await make_customer(session), await make_customer(session)
    order = await _order(session, client, settings, buyer, "LEDGER1")
    # 2 × 49.50 + 150.00 = 249.00, less the coupon's 30.00.
    assert (order["subtotal"]["amount"], order["discount"]["amount"]) == ("249.00", "30.00")
    line_a, line_b = (ln["id"] for ln in order["lines"])

    data = await client.as_(token_for(settings, buyer))(LEDGER, {"id": order["id"]})
    ledger = [
        (e["orderLineId"], e["promotionLabel"], e["promotionClass"], e["amount"]["amount"])
        for e in data["node"]["promotionLedger"]
    ]
    # The coupon's 30.00 over 99.00 and 150.00: 11.9277 and 18.0723 → 11.92 + 18.07, the cent
    # left to the larger remainder (0.77): 11.93 + 18.07 = 30.00.
    assert sorted(ledger) == sorted(
        [
            (line_a, "限时特惠 5 折", "PRODUCT", "99.00"),
            (line_a, "满减券 30 元", "ORDER", "11.93"),
            (line_b, "满减券 30 元", "ORDER", "18.07"),
        ]
    )
    assert {e["refunded"]["amount"] for e in data["node"]["promotionLedger"]} == {"0.00"}
    per_line = {
        ln["id"]: sorted(
            (e["promotionClass"], e["amount"]["amount"]) for e in ln["promotionDiscounts"]
        )
        for ln in data["node"]["lines"]
    }
    assert per_line == {
        line_a: [("ORDER", "11.93"), ("PRODUCT", "99.00")],
        line_b: [("ORDER", "18.07")],
    }

    # Someone else's order is no one's business: it answers like a missing one.
    theirs = await client.as_(token_for(settings, stranger))(LEDGER, {"id": order["id"]})
    assert theirs["node"] is None
    reader = await make_staff(session, role=StaffRole.SUPPORT)
    staff = client.as_(token_for(settings, reader))
    assert len((await staff(LEDGER, {"id": order["id"]}))["node"]["promotionLedger"]) == 3

    # A page of orders reads every order's ledger at once.
    await _order(session, client, settings, buyer, "LEDGER2")
    with counting(app) as one:
        small = await staff(PAGE, {"first": 1})
    with counting(app) as two:
        large = await staff(PAGE, {"first": 2})
    assert [len(n["promotionLedger"]) for n in small["orders"]["nodes"]] == [3]
    assert [len(n["promotionLedger"]) for n in large["orders"]["nodes"]] == [3, 3]
    assert len([s for s in two if "promotions_ledger" in s]) == 1
    assert len(two) == len(one)

    # The 150.00 line comes back (refundOrderLines, through the core's refund_for_lines): its
    # price less its 18.07 share of the coupon, which has no minimum to claw back.
    paid = await pay(client.as_(token_for(settings, buyer)), order)
    assert paid["__typename"] == "PayOrderSuccess", paid
    returned = {"orderId": order["id"], "lines": [{"orderLineId": line_b, "quantity": 1}]}
    refund = (await staff(REFUND, {"input": {**returned, "reason": "退货"}}))["refundOrderLines"]
    assert refund == {"__typename": "RefundOrderLinesSuccess", "amount": {"amount": "131.93"}}
    after = (await staff(LEDGER, {"id": order["id"]}))["node"]["promotionLedger"]
    assert sorted(
        (e["orderLineId"], e["promotionClass"], e["refunded"]["amount"]) for e in after
    ) == sorted(
        [(line_a, "PRODUCT", "0.00"), (line_a, "ORDER", "0.00"), (line_b, "ORDER", "18.07")]
    )
