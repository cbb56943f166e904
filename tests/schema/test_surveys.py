"""Satisfaction surveys over HTTP: the triggers firing through real events (a delivery, a
refund after delivery), the customer's open surveys and their answer with its checks, the
opt-out, the staff's figures, and the customer's data export and erasure."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.models import (
    Customer,
    DeliveryStatus,
    Order,
    OutboxDelivery,
    OutboxEvent,
    Payment,
    SalesChannel,
    StaffRole,
    Survey,
    SurveyKind,
    SurveyState,
    SurveyTrigger,
    utcnow,
)
from server.plugin import CORE
from server.plugins import PluginRuntime
from server.services.channels import CHANNEL_LABELS
from tests.support.accounts import DEFAULT_PASSWORD, make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    cart_with,
    gid,
    make_product,
    make_warehouse,
    only_plugins,
    pay,
    place,
    place_ok,
)
from tests.support.waiting import eventually

_serial = itertools.count(1)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


MY_SURVEYS = """
{ mySurveys(first: 10) {
    totalCount
    nodes { id kind trigger state carrier orderNumber question minScore maxScore
            sentAt expiresAt order { number } }
} }"""

ANSWER = """
mutation($input: AnswerSurveyInput!) {
  answerSurvey(input: $input) {
    __typename
    ... on AnswerSurveySuccess { survey { state score comment answeredAt } }
    ... on Error { code field }
  }
}"""

CREATE_SHIPMENT = """
mutation($input: CreateShipmentInput!) {
  createShipment(input: $input) {
    __typename
    ... on CreateShipmentSuccess { shipment { id } }
    ... on Error { code message field }
  }
}"""

TRACK = """
mutation($input: RecordTrackingEventInput!) {
  recordTrackingEvent(input: $input) {
    __typename
    ... on Error { code message field }
  }
}"""

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    __typename
    ... on UpdateProfileSuccess { customer { surveysOptOut } }
    ... on Error { code field }
  }
}"""

SATISFACTION = """
query($input: SatisfactionInput) {
  satisfaction(input: $input) {
    __typename
    ... on SatisfactionReport {
      by
      total { key sent responses responseRate csatAverage csatSatisfiedShare nps }
      groups {
        key label sent responses responseRate csatResponses csatAverage csatSatisfiedShare
        npsResponses promoters passives detractors nps category { name }
      }
    }
    ... on Error { code field }
  }
}"""


class Shop:
    """A staff client, a buyer, and what it takes to deliver the buyer's orders."""

    def __init__(self, gql: GraphQLClient, session: AsyncSession, settings: Settings) -> None:
        self.gql, self.session, self.settings = gql, session, settings

    async def setup(self) -> Shop:
        self.customer = await make_customer(self.session)
        self.buyer = self.gql.as_(token_for(self.settings, self.customer))
        self.staff = self.gql.as_(token_for(self.settings, await make_staff(self.session)))
        self.warehouse = await make_warehouse(self.session)
        return self

    async def paid_order(self, products: int = 1) -> dict[str, Any]:
        items = [
            (await make_product(self.session, price=5000, stock=5), 1) for _ in range(products)
        ]
        order = await place_ok(self.buyer, items)
        assert (await pay(self.buyer, order))["__typename"] == "PayOrderSuccess"
        return order

    async def ship(self, order: dict[str, Any], carrier: str, line: int | None = None) -> str:
        fields: dict[str, Any] = {
            "orderId": order["id"],
            "warehouseId": gid("Warehouse", self.warehouse.id),
            "carrier": carrier,
            "trackingNumber": f"T{next(_serial):010d}",
        }
        if line is not None:
            fields["lines"] = [{"orderLineId": order["lines"][line]["id"], "quantity": 1}]
        created = (await self.staff(CREATE_SHIPMENT, {"input": fields}))["createShipment"]
        assert created["__typename"] == "CreateShipmentSuccess", created
        return str(created["shipment"]["id"])

    async def deliver(self, shipment_id: str) -> None:
        for status in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"):
            done = (
                await self.staff(TRACK, {"input": {"shipmentId": shipment_id, "status": status}})
            )["recordTrackingEvent"]
            assert done["__typename"] == "RecordTrackingEventSuccess", done

    async def my_surveys(self, client: GraphQLClient | None = None) -> list[dict[str, Any]]:
        return list((await (client or self.buyer)(MY_SURVEYS))["mySurveys"]["nodes"])

    async def answer(self, survey_id: str, score: int, comment: str | None = None) -> Any:
        variables = {"input": {"surveyId": survey_id, "score": score, "comment": comment}}
        return (await self.buyer(ANSWER, variables))["answerSurvey"]


@pytest.fixture
async def shop(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> Shop:
    return await Shop(gql, session, settings).setup()


async def _surveys(session: AsyncSession, *where: Any) -> list[Survey]:
    await session.commit()  # a fresh snapshot
    found = list(
        (await session.execute(select(Survey).where(*where).order_by(Survey.id))).scalars()
    )
    await session.commit()
    return found


async def _core_delivered(session: AsyncSession, event: str, count: int) -> bool:
    """Whether the core has handled ``count`` events named ``event``."""
    await session.commit()
    done = await session.scalar(
        select(func.count())
        .select_from(OutboxDelivery)
        .join(OutboxEvent, OutboxEvent.id == OutboxDelivery.event_id)
        .where(
            OutboxEvent.name == event,
            OutboxDelivery.plugin == CORE,
            OutboxDelivery.status == DeliveryStatus.DELIVERED,
        )
    )
    await session.commit()
    return (done or 0) >= count


async def test_a_delivery_sends_its_order_one_survey_which_the_customer_answers(
    shop: Shop, session: AsyncSession
) -> None:
    order = await shop.paid_order(products=2)
    first = await shop.ship(order, "顺丰速运", line=0)
    second = await shop.ship(order, "中通快递", line=1)
    await shop.deliver(first)
    # Two parcels created, one delivered: five status changes.
    await eventually(lambda: _core_delivered(session, "shipment_status_changed", 5))
    [survey] = await shop.my_surveys()
    assert {k: survey[k] for k in ("kind", "trigger", "state", "carrier", "orderNumber")} == {
        "kind": "CSAT",
        "trigger": "DELIVERY",
        "state": "SENT",
        "carrier": "顺丰速运",
        "orderNumber": order["number"],
    }
    assert (survey["minScore"], survey["maxScore"]) == (1, 5)
    assert survey["question"] == "您对本次配送满意吗？"
    assert survey["order"] == {"number": order["number"]}
    # The order's second parcel arrives: still one survey for the order.
    await shop.deliver(second)
    await eventually(lambda: _core_delivered(session, "shipment_status_changed", 8))
    assert len(await _surveys(session)) == 1

    for score in (0, 6):
        refused = await shop.answer(survey["id"], score)
        assert refused == {
            "__typename": "ValidationError",
            "code": "SCORE_OUT_OF_RANGE",
            "field": "score",
        }
    too_long = await shop.answer(survey["id"], 5, "好" * 1001)
    assert (too_long["__typename"], too_long["field"]) == ("ValidationError", "comment")
    [unchanged] = await _surveys(session)
    assert (unchanged.state, unchanged.score) == (SurveyState.SENT, None)

    done = await shop.answer(survey["id"], 4, "  快递很快，包装完好  ")
    assert done["__typename"] == "AnswerSurveySuccess"
    assert {k: done["survey"][k] for k in ("state", "score", "comment")} == {
        "state": "ANSWERED",
        "score": 4,
        "comment": "快递很快，包装完好",
    }
    assert await shop.my_surveys() == []
    again = await shop.answer(survey["id"], 5)
    assert again == {"__typename": "ConflictError", "code": "ALREADY_ANSWERED", "field": "surveyId"}
    await session.commit()
    events = (
        await session.execute(
            select(OutboxEvent.name, OutboxEvent.payload)
            .where(OutboxEvent.name.in_(["survey_sent", "survey_answered"]))
            .order_by(OutboxEvent.id)
        )
    ).all()
    assert [name for name, _ in events] == ["survey_sent", "survey_answered"]
    payloads = [payload for _, payload in events]
    [answered] = await _surveys(session)
    assert payloads[0]["survey_id"] == answered.id and payloads[0]["kind"] == "CSAT"
    assert payloads[1] == {
        "survey_id": answered.id,
        "customer_id": shop.customer.id,
        "kind": "CSAT",
        "trigger": "DELIVERY",
        "subject_key": f"order:{answered.order_id}",
        "order_id": answered.order_id,
        "score": 4,
    }


async def test_a_refund_after_delivery_sends_a_return_survey_and_a_cancellation_none(
    shop: Shop, session: AsyncSession, gql: GraphQLClient
) -> None:
    delivered = await shop.paid_order()
    await shop.deliver(await shop.ship(delivered, "京东物流"))
    cancelled = await shop.paid_order()
    done = await shop.staff(CANCEL_ORDER, {"input": {"orderId": cancelled["id"]}})
    assert done["cancelOrder"]["order"]["status"] == "CANCELLED"
    await eventually(lambda: _core_delivered(session, "shipment_status_changed", 4))
    await eventually(lambda: _core_delivered(session, "payment_refunded", 1))
    assert [s.trigger for s in await _surveys(session)] == [SurveyTrigger.DELIVERY]

    # The delivered order's money is given back in the gateway's dashboard: its webhook says so.
    await session.commit()
    reference = await session.scalar(
        select(Payment.reference)
        .join(Order, Order.id == Payment.order_id)
        .where(Order.number == delivered["number"])
    )
    await session.commit()
    response = await gql.http.post(
        "/payments/test/webhook", content=json.dumps({"reference": reference, "status": "REFUNDED"})
    )
    assert response.status_code == 200
    await eventually(lambda: _core_delivered(session, "payment_refunded", 2))
    surveys = await _surveys(session)
    assert [(s.trigger, s.kind, s.carrier) for s in surveys] == [
        (SurveyTrigger.DELIVERY, SurveyKind.CSAT, "京东物流"),
        (SurveyTrigger.RETURN, SurveyKind.CSAT, None),
    ]
    assert surveys[0].order_id == surveys[1].order_id
    questions = [s["question"] for s in await shop.my_surveys()]
    assert sorted(questions) == ["您对本次退货退款的处理满意吗？", "您对本次配送满意吗？"]


async def _sent(
    session: AsyncSession,
    customer: Customer,
    kind: SurveyKind = SurveyKind.CSAT,
    *,
    sent_at: datetime | None = None,
    state: SurveyState = SurveyState.SENT,
    score: int | None = None,
    comment: str | None = None,
    carrier: str | None = None,
    order_id: int | None = None,
) -> int:
    sent = sent_at or utcnow() - timedelta(hours=1)
    survey = Survey(
        customer_id=customer.id,  # type: ignore[arg-type]  # a stored row has its id
        kind=kind,
        trigger=SurveyTrigger.PERIODIC if kind is SurveyKind.NPS else SurveyTrigger.DELIVERY,
        subject_key=f"test:{next(_serial)}",
        state=state,
        sent_at=sent,
        expires_at=sent + timedelta(days=14),
        answered_at=sent + timedelta(hours=1) if score is not None else None,
        score=score,
        comment=comment,
        carrier=carrier,
        order_id=order_id,
    )
    session.add(survey)
    await session.commit()
    assert survey.id is not None
    return survey.id


async def test_answers_are_checked_and_another_customers_survey_is_like_a_missing_one(
    shop: Shop, session: AsyncSession, gql: GraphQLClient, settings: Settings
) -> None:
    alice = shop.customer
    nps = gid("Survey", await _sent(session, alice, SurveyKind.NPS))
    overdue = gid("Survey", await _sent(session, alice, sent_at=utcnow() - timedelta(days=15)))
    expired = gid("Survey", await _sent(session, alice, state=SurveyState.EXPIRED))
    bob = gql.as_(token_for(settings, await make_customer(session)))

    def answer(client: GraphQLClient, survey_id: str, score: int) -> Any:
        return client.execute(ANSWER, {"input": {"surveyId": survey_id, "score": score}})

    theirs = await answer(bob, nps, 9)
    missing = await answer(bob, gid("Survey", 987654), 9)
    theirs.pop("extensions", None)
    missing.pop("extensions", None)
    assert theirs == missing
    assert theirs["data"]["answerSurvey"] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "field": "surveyId",
    }
    node = "query($id: ID!) { node(id: $id) { ... on Survey { state } } }"
    assert (await bob(node, {"id": nps}))["node"] is None
    assert (await shop.buyer(node, {"id": nps}))["node"] == {"state": "SENT"}
    assert (await shop.answer(gid("Order", 1), 9))["__typename"] == "NotFoundError"

    # The open surveys: the NPS one (the overdue one's time is up, even before the job ran).
    assert [s["kind"] for s in await shop.my_surveys()] == ["NPS"]
    for survey_id in (overdue, expired):
        closed = await shop.answer(survey_id, 5)
        assert closed == {
            "__typename": "ConflictError",
            "code": "SURVEY_EXPIRED",
            "field": "surveyId",
        }
    for score in (-1, 11):
        assert (await shop.answer(nps, score))["__typename"] == "ValidationError"
    assert (await shop.answer(nps, 0))["survey"]["score"] == 0
    assert {s.state for s in await _surveys(session)} == {
        SurveyState.ANSWERED,
        SurveyState.SENT,
        SurveyState.EXPIRED,
    }

    staff = await shop.staff.execute(MY_SURVEYS)
    assert staff["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_opted_out_customer_is_asked_nothing(shop: Shop, session: AsyncSession) -> None:
    await _sent(session, shop.customer)
    assert len(await shop.my_surveys()) == 1
    bad = (await shop.buyer(UPDATE_PROFILE, {"input": {"surveysOptOut": None}}))["updateProfile"]
    assert bad == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "surveysOptOut",
    }
    out = (await shop.buyer(UPDATE_PROFILE, {"input": {"surveysOptOut": True}}))["updateProfile"]
    assert out == {"__typename": "UpdateProfileSuccess", "customer": {"surveysOptOut": True}}
    # Their open survey is withdrawn, and a delivery sends none.
    assert await shop.my_surveys() == []
    order = await shop.paid_order()
    await shop.deliver(await shop.ship(order, "圆通速递"))
    await eventually(lambda: _core_delivered(session, "shipment_status_changed", 4))
    assert [s.state for s in await _surveys(session)] == [SurveyState.EXPIRED]
    back = (await shop.buyer(UPDATE_PROFILE, {"input": {"surveysOptOut": False}}))["updateProfile"]
    assert back["customer"] == {"surveysOptOut": False}
    me = await shop.buyer("{ me { surveysOptOut } }")
    assert me == {"me": {"surveysOptOut": False}}


async def test_staff_read_the_figures_by_carrier(
    shop: Shop, session: AsyncSession, gql: GraphQLClient, settings: Settings
) -> None:
    c = shop.customer
    now = utcnow()
    for score, carrier in ((5, "顺丰速运"), (4, "顺丰速运"), (1, "EMS"), (None, "EMS")):
        state = SurveyState.ANSWERED if score is not None else SurveyState.SENT
        await _sent(
            session, c, sent_at=now - timedelta(days=2), state=state, score=score, carrier=carrier
        )
    for score in (10, 6):
        await _sent(
            session,
            c,
            SurveyKind.NPS,
            sent_at=now - timedelta(days=3),
            state=SurveyState.ANSWERED,
            score=score,
        )
    await _sent(
        session,
        c,
        sent_at=now - timedelta(days=40),
        state=SurveyState.ANSWERED,
        score=1,
        carrier="EMS",
    )
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    report = (await analyst(SATISFACTION, {"input": {"by": "CARRIER"}}))["satisfaction"]
    # The last 30 days: six sent, five answered; CSAT 5, 4, 1 (mean 10/3, 2 of 3 satisfied);
    # NPS 10 promotes, 6 detracts: 0.
    assert report["total"] == {
        "key": "ALL",
        "sent": 6,
        "responses": 5,
        "responseRate": 5 / 6,
        "csatAverage": 10 / 3,
        "csatSatisfiedShare": 2 / 3,
        "nps": 0.0,
    }
    assert [(g["key"], g["sent"], g["responses"], g["csatAverage"]) for g in report["groups"]] == [
        ("EMS", 2, 1, 1.0),
        ("顺丰速运", 2, 2, 4.5),
    ]
    assert report["groups"][0]["responseRate"] == 0.5
    assert report["groups"][1]["csatSatisfiedShare"] == 1.0
    assert report["groups"][1]["category"] is None

    by_trigger = (await analyst(SATISFACTION))["satisfaction"]
    assert by_trigger["by"] == "TRIGGER"
    periodic = next(g for g in by_trigger["groups"] if g["key"] == "PERIODIC")
    assert (periodic["promoters"], periodic["passives"], periodic["detractors"]) == (1, 0, 1)

    backwards = {"from": "2026-03-02", "to": "2026-03-01"}
    refused = (await analyst(SATISFACTION, {"input": backwards}))["satisfaction"]
    assert refused == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "from",
    }
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    for client in (support, shop.buyer):
        body = await client.execute(SATISFACTION)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_staff_read_the_figures_by_the_orders_channel(
    shop: Shop, session: AsyncSession, gql: GraphQLClient, settings: Settings
) -> None:
    for channel in ("MINI_PROGRAM", "MINI_PROGRAM", None):
        product = await make_product(session, price=5000, stock=5)
        extra = {"channel": channel} if channel else {}
        placed = await place(shop.buyer, await cart_with(shop.buyer, [(product, 1)]), **extra)
        assert placed["__typename"] == "PlaceOrderSuccess", placed
    ids = list(
        (
            await session.scalars(
                select(col(Order.id))
                .where(col(Order.customer_id) == shop.customer.id)
                .order_by(col(Order.id))
            )
        ).all()
    )
    # End the read, so that the writes below do not upgrade a stale snapshot (SQLite).
    await session.commit()
    for order_id, score in zip(ids, (5, 2, 4), strict=True):
        await _sent(
            session, shop.customer, state=SurveyState.ANSWERED, score=score, order_id=order_id
        )
    # A survey about no order (a service contact) has no channel either.
    await _sent(session, shop.customer, state=SurveyState.ANSWERED, score=1)
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    report = (await analyst(SATISFACTION, {"input": {"by": "CHANNEL"}}))["satisfaction"]
    assert report["total"]["sent"] == 4
    # Only the orders placed through a known channel are grouped: 5 and 2, one satisfied.
    assert [
        (g["key"], g["label"], g["sent"], g["csatAverage"], g["csatSatisfiedShare"])
        for g in report["groups"]
    ] == [("MINI_PROGRAM", CHANNEL_LABELS[SalesChannel.MINI_PROGRAM], 2, 3.5, 0.5)]


ERASE = """
mutation($input: EraseMyAccountInput!) { eraseMyAccount(input: $input) { __typename } }"""


async def test_a_customers_surveys_are_in_their_export_and_go_with_their_account(
    shop: Shop, session: AsyncSession
) -> None:
    answered = await _sent(
        session,
        shop.customer,
        state=SurveyState.ANSWERED,
        score=2,
        comment="快递员态度差，电话 138…",
    )
    open_ = await _sent(session, shop.customer, SurveyKind.NPS)
    other = await make_customer(session)
    await _sent(session, other, state=SurveyState.ANSWERED, score=5, comment="别人的评价")

    data = (await shop.buyer("{ exportMyData }"))["exportMyData"]
    exported = {s["id"]: s for s in data["surveys"]}
    assert set(exported) == {answered, open_}
    assert (exported[answered]["score"], exported[answered]["comment"]) == (
        2,
        "快递员态度差，电话 138…",
    )
    assert exported[open_]["state"] == "SENT" and "customer_id" not in exported[open_]
    assert data["profile"]["surveys_opt_out"] is False
    assert "别人" not in str(data)

    erased = (await shop.buyer(ERASE, {"input": {"password": DEFAULT_PASSWORD}}))["eraseMyAccount"]
    assert erased["__typename"] == "EraseMyAccountSuccess"
    rows = {s.id: s for s in await _surveys(session, Survey.customer_id == shop.customer.id)}
    # The comment is gone, the open survey closed; the score stays in the shop's figures.
    assert (rows[answered].comment, rows[answered].score) == (None, 2)
    assert rows[open_].state is SurveyState.EXPIRED
    [kept] = await _surveys(session, Survey.customer_id == other.id)
    assert kept.comment == "别人的评价"
