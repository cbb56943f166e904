"""Units of an order's lines come back and are refunded (``refundOrderLines``,
``server.plugin.refund_lines``) at what the plugins say they are worth (``refund_for_lines``,
firstresult; the core's answer, last, is the unit price paid), exactly once under
concurrency, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Order, OrderLine, PaymentRefund
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import count, gid, make_product, only_plugins, pay, place_ok

REFUND = """
mutation($input: RefundOrderLinesInput!) { refundOrderLines(input: $input) {
  __typename
  ... on RefundOrderLinesSuccess {
    amount { amount } reference order { lines { sku returnedQuantity } }
  }
  ... on ReturnExceedsQuantity { orderLineId requested returnable }
  ... on Error { code message field }
} }"""


class Ledger:
    """Answers ``refund_for_lines`` with ``answer`` (None: leaves it to the core) and records
    what it was asked."""

    def __init__(self) -> None:
        self.answer: Any = None
        self.asked: list[tuple[int, dict[int, int], dict[str, int]]] = []

    def refund_for_lines(
        self, order: Order, lines: Sequence[OrderLine], returned: Mapping[int, int]
    ) -> Any:
        before = {line.sku: line.returned_quantity for line in lines}
        self.asked.append((order.id or 0, dict(returned), before))
        return self.answer


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def plugins(settings: Settings, ledger: Ledger) -> PluginRuntime:
    return only_plugins(settings, FakePlugin("ledger", refund_for_lines=ledger.refund_for_lines))


async def _shop(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> tuple[GraphQLClient, GraphQLClient, Any, Any]:
    staff = gql.as_(token_for(settings, await make_staff(session)))
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    a = await make_product(session, price=5000, stock=10)
    b = await make_product(session, price=2000, stock=10)
    return staff, buyer, a, b


async def _paid(buyer: GraphQLClient, lines: list[tuple[Any, int]]) -> dict[str, Any]:
    order = await place_ok(buyer, lines)
    assert (await pay(buyer, order))["__typename"] == "PayOrderSuccess"
    return order


def _refund(
    order: Mapping[str, Any], lines: list[tuple[str, int]], reason: str = "质量问题"
) -> dict[str, Any]:
    return {
        "input": {
            "orderId": order["id"],
            "lines": [{"orderLineId": lid, "quantity": n} for lid, n in lines],
            "reason": reason,
        }
    }


async def _refunded(session: AsyncSession) -> list[int]:
    await session.commit()
    amounts = list(await session.scalars(select(PaymentRefund.amount).order_by(PaymentRefund.id)))
    await session.commit()
    return amounts


async def test_hook_refund_for_lines(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, ledger: Ledger
) -> None:
    staff, buyer, a, b = await _shop(gql, session, settings)
    order = await _paid(buyer, [(a, 3), (b, 1)])
    line_a, line_b = (line["id"] for line in order["lines"])
    await session.commit()

    # The plugin leaves it to the core: 1 × 50.00.
    first = (await staff(REFUND, _refund(order, [(line_a, 1)])))["refundOrderLines"]
    assert first["__typename"] == "RefundOrderLinesSuccess", first
    assert first["amount"] == {"amount": "50.00"}
    assert first["reference"]
    assert [ln["returnedQuantity"] for ln in first["order"]["lines"]] == [1, 0]
    # It was asked with the lines as they were before this return.
    [(order_id, returned, before)] = ledger.asked
    assert returned == {int(_pk(line_a)): 1}
    assert before == {a.sku: 0, b.sku: 0}

    # The plugin answers: its amount is refunded; the same line named twice adds up.
    ledger.answer = 1234
    second = (await staff(REFUND, _refund(order, [(line_a, 1), (line_a, 1), (line_b, 1)])))[
        "refundOrderLines"
    ]
    assert second["amount"] == {"amount": "12.34"}, second
    assert ledger.asked[-1][1:] == (
        {int(_pk(line_a)): 2, int(_pk(line_b)): 1},
        {a.sku: 1, b.sku: 0},
    )
    assert [ln["returnedQuantity"] for ln in second["order"]["lines"]] == [3, 1]
    assert await _refunded(session) == [5000, 1234]

    # Nothing left to return: typed, nothing written.
    again = (await staff(REFUND, _refund(order, [(line_b, 1)])))["refundOrderLines"]
    assert again == {
        "__typename": "ReturnExceedsQuantity",
        "orderLineId": line_b,
        "requested": 1,
        "returnable": 0,
        "code": "RETURN_EXCEEDS_QUANTITY",
        "message": again["message"],
        "field": "lines",
    }
    assert await _refunded(session) == [5000, 1234]

    # A plugin's answer that is not an amount fails, naming it.
    other = await _paid(buyer, [(a, 1)])
    ledger.answer = -5
    body = await staff.execute(REFUND, _refund(other, [(other["lines"][0]["id"], 1)]))
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PLUGIN_FAILED"
    assert (error["extensions"]["plugin"], error["extensions"]["hook"]) == (
        "ledger",
        "refund_for_lines",
    )
    # More than captured is capped at what is left: the whole 50.00, not 999.99.
    ledger.answer = 99999
    capped = (await staff(REFUND, _refund(other, [(other["lines"][0]["id"], 1)])))[
        "refundOrderLines"
    ]
    assert capped["amount"] == {"amount": "50.00"}, capped


async def test_bad_returns_are_typed_and_change_nothing(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff, buyer, a, _b = await _shop(gql, session, settings)
    paid = await _paid(buyer, [(a, 2)])
    unpaid = await place_ok(buyer, [(a, 1)])
    line = paid["lines"][0]["id"]

    async def answer(
        variables: dict[str, Any], client: GraphQLClient = staff
    ) -> tuple[str, str | None, str | None]:
        result = (await client(REFUND, variables))["refundOrderLines"]
        return result["__typename"], result.get("code"), result.get("field")

    # Another order's line, an order line id of the wrong type, a quantity of 0, no reason.
    assert await answer(_refund(paid, [(unpaid["lines"][0]["id"], 1)])) == (
        "NotFoundError",
        "NOT_FOUND",
        "lines.0.orderLineId",
    )
    assert (await answer(_refund(paid, [(gid("Order", 1), 1)])))[0] == "NotFoundError"
    assert await answer(_refund(paid, [(line, 0)])) == (
        "ValidationError",
        "VALIDATION_FAILED",
        "lines.0.quantity",
    )
    assert await answer(_refund(paid, [(line, 1)], reason="  ")) == (
        "ValidationError",
        "VALIDATION_FAILED",
        "reason",
    )
    assert await answer(_refund(paid, [(line, 3)])) == (
        "ReturnExceedsQuantity",
        "RETURN_EXCEEDS_QUANTITY",
        "lines",
    )
    # Nothing captured yet; and a customer may not refund even their own order.
    assert await answer(_refund(unpaid, [(unpaid["lines"][0]["id"], 1)])) == (
        "NothingCaptured",
        "NOTHING_CAPTURED",
        "orderId",
    )
    assert (await answer(_refund(paid, [(line, 1)]), buyer))[0] == "NotFoundError"
    await session.commit()
    assert await count(session, PaymentRefund) == 0
    assert list(await session.scalars(select(OrderLine.returned_quantity))) == [0, 0]
    await session.commit()


async def test_two_concurrent_returns_of_the_last_unit_refund_it_once(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff, buyer, a, b = await _shop(gql, session, settings)
    # b's money stays captured: the losers are refused for the units, not for the money.
    order = await _paid(buyer, [(a, 2), (b, 1)])
    line = order["lines"][0]["id"]
    assert (await staff(REFUND, _refund(order, [(line, 1)])))["refundOrderLines"][
        "__typename"
    ] == "RefundOrderLinesSuccess"

    results = await asyncio.gather(
        *(staff(REFUND, _refund(order, [(line, 1)], reason=f"退货 {i}")) for i in range(4))
    )
    kinds = sorted(r["refundOrderLines"]["__typename"] for r in results)
    assert kinds == ["RefundOrderLinesSuccess"] + ["ReturnExceedsQuantity"] * 3
    assert await _refunded(session) == [5000, 5000]
    assert list(
        await session.scalars(select(OrderLine.returned_quantity).order_by(OrderLine.id))
    ) == [2, 0]
    await session.commit()


def _pk(global_id: str) -> str:
    import base64

    return base64.b64decode(global_id).decode().split(":", 1)[1]
