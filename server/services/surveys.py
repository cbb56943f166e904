"""Satisfaction surveys (docs/insights.md, "Satisfaction surveys"): sent after a delivery, a
return or a service contact, and now and then to recent buyers (NPS); answered by the
customer; summed up for staff by trigger, carrier and category, and as KPIs.

- **One survey per trigger and subject.** A survey's ``subject_key`` is unique per trigger
  (``order:<id>`` for a delivery or a return, ``nps:<customer>:<day>`` for the periodic
  survey, a plugin's key such as ``complaints:123`` for a service contact): a trigger that
  fires twice, or in two processes at once, leaves one survey (``INSERT … ON CONFLICT DO
  NOTHING``). A customer who opted out (``surveys_opt_out``), or whose account is erased, gets
  none.
- **Triggers.** The core's own hooks: ``shipment_status_changed`` (a shipment DELIVERED sends
  its order's CSAT survey), ``payment_refunded`` (a refund of an order that had been delivered
  is a return: a CSAT survey), and the periodic job ``core.surveys`` (an NPS survey to every
  customer with a paid order in the last 90 days and no NPS survey in 180; it also expires
  unanswered surveys). Plugins ask for service-contact surveys with :func:`request_survey`.
- **Events.** Each survey sent is announced as ``survey_sent``, each answer as
  ``survey_answered`` (payload: the survey's id, customer, kind, trigger, subject, order and,
  for an answer, the score; the comment stays in the table).
- **Figures.** Over the surveys *sent* in a period (the cohort, whenever answered): the
  response rate (answered / sent), the CSAT average (1-5) and satisfied share (4-5 of the
  answered CSAT surveys), and the NPS (% promoters 9-10 minus % detractors 0-6 of the
  answered NPS surveys).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.db import mark_write
from server.hooktypes import Event, Job, JobContext, Kpi, KpiBucket, KpiUnit, hookimpl
from server.models import (
    Category,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    SalesChannel,
    Shipment,
    ShipmentStatus,
    Survey,
    SurveyKind,
    SurveyState,
    SurveyTrigger,
    utcnow,
)
from server.models.surveys import COMMENT_MAX, SUBJECT_KEY_MAX
from server.services import insight_runs, outbox
from server.services.channels import CHANNEL_LABELS
from server.services.errors import (
    NotFound,
    ScoreOutOfRange,
    SurveyAlreadyAnswered,
    SurveyExpired,
    ValidationFailed,
)
from server.services.forecasts import day_start, shop_day, shop_day_sql
from server.services.periods import Moments as Period
from server.services.periods import aware, moments
from server.services.rfm import PURCHASE_STATUSES

SENT_EVENT = "survey_sent"
ANSWERED_EVENT = "survey_answered"
JOB_NAME = "surveys"  # runs as "core.surveys"
JOB_INTERVAL_SECONDS = 3600
# Each survey's scale: (lowest, highest) score.
SCALES: dict[SurveyKind, tuple[int, int]] = {SurveyKind.CSAT: (1, 5), SurveyKind.NPS: (0, 10)}
# A CSAT answer of this or more is "satisfied"; NPS promoters answer 9-10, detractors 0-6.
CSAT_SATISFIED = 4
NPS_PROMOTER = 9
NPS_DETRACTOR = 6
# The orders that may have been delivered: a refund of one of them is a return.
DELIVERED_ORDERS = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
DEFAULT_PERIOD = timedelta(days=30)
MAX_PERIOD = timedelta(days=366)


class SurveySettings(BaseSettings):
    """How surveys are sent and closed (``SHOPGRAPH_SURVEYS_*``). Read where they are needed
    — in event hooks, the plugin API and the job — which the core's ``Settings`` object does
    not reach."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPGRAPH_SURVEYS_",
        env_file=os.environ.get("SHOPGRAPH_CONFIG"),
        extra="ignore",
    )

    # An unanswered survey expires this many days after it was sent.
    expiry_days: int = Field(default=14, ge=1, le=365)
    # The periodic NPS survey goes to customers with a paid order in the last
    # ``nps_recent_days`` who had no NPS survey in the last ``nps_interval_days``, at most
    # ``nps_batch_size`` of them per run of the job.
    nps_recent_days: int = Field(default=90, ge=1, le=3650)
    nps_interval_days: int = Field(default=180, ge=1, le=3650)
    nps_batch_size: int = Field(default=500, ge=1, le=10_000)


# What each survey asks, as the customer's app shows it.
QUESTIONS: dict[tuple[SurveyKind, SurveyTrigger], str] = {
    (SurveyKind.CSAT, SurveyTrigger.DELIVERY): "您对本次配送满意吗？",
    (SurveyKind.CSAT, SurveyTrigger.RETURN): "您对本次退货退款的处理满意吗？",
    (SurveyKind.CSAT, SurveyTrigger.SERVICE_CONTACT): "您对本次客服服务满意吗？",
    (SurveyKind.CSAT, SurveyTrigger.PERIODIC): "您对我们的整体服务满意吗？",
}
NPS_QUESTION = "您有多大可能向朋友或同事推荐我们？"


def question(kind: SurveyKind, trigger: SurveyTrigger) -> str:
    return NPS_QUESTION if kind is SurveyKind.NPS else QUESTIONS[(kind, trigger)]


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a survey is about: its key (unique per trigger) and the order, shipment and
    carrier it concerns, where it has them."""

    key: str
    order_id: int | None = None
    shipment_id: int | None = None
    carrier: str | None = None


def order_subject(order_id: int) -> str:
    return f"order:{order_id}"


def periodic_subject(customer_id: int, day: date) -> str:
    # Per customer and day: two runs of the job on one day leave one survey.
    return f"nps:{customer_id}:{day.isoformat()}"


async def _surveyable(session: AsyncSession, customer_id: int) -> bool:
    """Whether the customer may be sent a survey: an active account that did not opt out."""
    row = (
        await session.execute(
            select(col(Customer.is_active), col(Customer.surveys_opt_out)).where(
                col(Customer.id) == customer_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("Customer", customer_id, field="customerId")
    return bool(row[0]) and not bool(row[1])


def _sent_payload(survey: Survey) -> dict[str, Any]:
    return {
        "survey_id": survey.id,
        "customer_id": survey.customer_id,
        "kind": survey.kind.value,
        "trigger": survey.trigger.value,
        "subject_key": survey.subject_key,
        "order_id": survey.order_id,
        "expires_at": aware(survey.expires_at).isoformat(),
    }


async def send_survey(
    session: AsyncSession,
    *,
    customer_id: int,
    kind: SurveyKind,
    trigger: SurveyTrigger,
    subject: Subject,
    now: datetime | None = None,
    settings: SurveySettings | None = None,
) -> Survey | None:
    """Send a survey (in the session's transaction): the new survey, announced as
    ``survey_sent``; None when the customer opted out or is erased, or when the trigger
    already sent a survey about this subject (its row stays as it is)."""
    if not await _surveyable(session, customer_id):
        return None
    sent_at = now or utcnow()
    expiry = (settings or SurveySettings()).expiry_days
    insert = _insert(session)
    stmt = (
        insert(Survey)
        .values(
            customer_id=customer_id,
            kind=kind,
            trigger=trigger,
            subject_key=subject.key,
            order_id=subject.order_id,
            shipment_id=subject.shipment_id,
            carrier=subject.carrier,
            state=SurveyState.SENT,
            sent_at=sent_at,
            expires_at=sent_at + timedelta(days=expiry),
        )
        .on_conflict_do_nothing(index_elements=["trigger", "subject_key"])
        .returning(col(Survey.id))
    )
    survey_id = (await session.execute(stmt)).scalar_one_or_none()
    if survey_id is None:
        return None
    survey = await session.get(Survey, survey_id)
    assert survey is not None
    await outbox.emit(session, SENT_EVENT, _sent_payload(survey))
    return survey


def _subject_key(value: str) -> str:
    key = value.strip()
    if not key or len(key) > SUBJECT_KEY_MAX:
        raise ValidationFailed(
            f"a survey's subject_key is 1 to {SUBJECT_KEY_MAX} characters", field="subjectKey"
        )
    return key


async def request_survey(
    session: AsyncSession,
    *,
    customer_id: int,
    trigger: SurveyTrigger,
    subject_key: str,
    kind: SurveyKind = SurveyKind.CSAT,
    order_id: int | None = None,
) -> Survey | None:
    """The plugin API's survey (a service contact handled, a complaint resolved): send
    ``customer_id`` a survey of ``kind`` about ``subject_key`` — a key of the plugin's own,
    e.g. ``"complaints:123"`` — in the session's transaction, announced as ``survey_sent``.
    ``order_id`` ties it to one of the customer's orders (its categories then count it).

    Returns the survey, or None when the customer opted out of surveys or is erased, or when
    a survey of ``trigger`` about ``subject_key`` was sent already (calling twice is safe). A
    customer that does not exist is a NotFound; a blank or over-long key, or an order of
    another customer, a ValidationFailed."""
    key = _subject_key(subject_key)
    if order_id is not None:
        owner = await session.scalar(
            select(col(Order.customer_id)).where(col(Order.id) == order_id)
        )
        if owner != customer_id:
            raise ValidationFailed(
                f"order {order_id} is not an order of customer {customer_id}", field="orderId"
            )
    return await send_survey(
        session,
        customer_id=customer_id,
        kind=SurveyKind(kind),
        trigger=SurveyTrigger(trigger),
        subject=Subject(key, order_id=order_id),
    )


async def send_delivery_survey(session: AsyncSession, shipment_id: int) -> Survey | None:
    """The CSAT survey of a delivered shipment's order: one per order, however many parcels
    it came in (the first delivered names the carrier). None for a guest's order, a shipment
    that is not delivered, and whatever :func:`send_survey` sends none for."""
    row = (
        await session.execute(
            select(Shipment, col(Order.customer_id))
            .join(Order, col(Order.id) == col(Shipment.order_id))
            .where(col(Shipment.id) == shipment_id)
        )
    ).one_or_none()
    if row is None:
        return None
    shipment, customer_id = row
    if customer_id is None or shipment.status is not ShipmentStatus.DELIVERED:
        return None
    subject = Subject(
        order_subject(shipment.order_id),
        order_id=shipment.order_id,
        shipment_id=shipment.id,
        carrier=shipment.carrier,
    )
    return await send_survey(
        session,
        customer_id=customer_id,
        kind=SurveyKind.CSAT,
        trigger=SurveyTrigger.DELIVERY,
        subject=subject,
    )


async def send_return_survey(session: AsyncSession, order_id: int) -> Survey | None:
    """The CSAT survey of a return: a refund of an order that had been delivered (the order
    DELIVERED or COMPLETED, or one of its shipments delivered). One per order."""
    order = await session.scalar(
        select(Order).where(col(Order.id) == order_id).execution_options(populate_existing=True)
    )
    if order is None or order.customer_id is None:
        return None
    if order.status not in DELIVERED_ORDERS:
        delivered = await session.scalar(
            select(func.count())
            .select_from(Shipment)
            .where(
                col(Shipment.order_id) == order_id,
                col(Shipment.status) == ShipmentStatus.DELIVERED,
            )
        )
        if not delivered:
            return None  # a cancellation's refund: nothing came back
    return await send_survey(
        session,
        customer_id=order.customer_id,
        kind=SurveyKind.CSAT,
        trigger=SurveyTrigger.RETURN,
        subject=Subject(order_subject(order_id), order_id=order_id),
    )


@hookimpl
async def shipment_status_changed(event: Event, session: AsyncSession) -> None:
    """A shipment delivered: its order's CSAT survey."""
    if event.payload.get("to_status") == ShipmentStatus.DELIVERED.value:
        await send_delivery_survey(session, int(event.payload["shipment_id"]))


@hookimpl
async def payment_refunded(event: Event, session: AsyncSession) -> None:
    """A refund after delivery is a return: its CSAT survey."""
    await send_return_survey(session, int(event.payload["order_id"]))


# --- the periodic job -----------------------------------------------------------------------


async def expire_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Close every unanswered survey whose time is up; returns how many."""
    result = await session.execute(
        update(Survey)
        .where(col(Survey.state) == SurveyState.SENT, col(Survey.expires_at) <= (now or utcnow()))
        .values(state=SurveyState.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say


def nps_candidates(now: datetime, settings: SurveySettings) -> Select[Any]:
    """The customers due a periodic NPS survey, lowest id first, one batch: active, not opted
    out, with a paid order (not cancelled) in the last ``nps_recent_days`` and no NPS survey
    in the last ``nps_interval_days``."""
    recent = now - timedelta(days=settings.nps_recent_days)
    lately = now - timedelta(days=settings.nps_interval_days)
    buyers = select(col(Order.customer_id)).where(
        col(Order.status).in_(PURCHASE_STATUSES),
        col(Order.paid_at) >= recent,
        col(Order.customer_id).is_not(None),
    )
    surveyed = exists().where(
        col(Survey.customer_id) == col(Customer.id),
        col(Survey.kind) == SurveyKind.NPS,
        col(Survey.sent_at) >= lately,
    )
    return (
        select(col(Customer.id))
        .where(
            col(Customer.is_active),
            ~col(Customer.surveys_opt_out),
            col(Customer.id).in_(buyers),
            ~surveyed,
        )
        .order_by(col(Customer.id))
        .limit(settings.nps_batch_size)
    )


async def send_periodic_nps(
    session: AsyncSession, *, now: datetime | None = None, settings: SurveySettings | None = None
) -> int:
    """Send one batch of periodic NPS surveys; returns how many were sent. Call inside a
    write transaction that holds the surveys' lock (:func:`run`): the candidates are read and
    their surveys written with no other run in between."""
    now = now or utcnow()
    settings = settings or SurveySettings()
    due = list(await session.scalars(nps_candidates(now, settings)))
    if not due:
        return 0
    day = shop_day(now)
    expires = now + timedelta(days=settings.expiry_days)
    rows = [
        {
            "customer_id": customer_id,
            "kind": SurveyKind.NPS,
            "trigger": SurveyTrigger.PERIODIC,
            "subject_key": periodic_subject(customer_id, day),
            "state": SurveyState.SENT,
            "sent_at": now,
            "expires_at": expires,
        }
        for customer_id in due
    ]
    insert = _insert(session)
    stmt = (
        insert(Survey)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["trigger", "subject_key"])
        .returning(col(Survey.id))
    )
    ids = list((await session.execute(stmt)).scalars())
    surveys = await session.scalars(select(Survey).where(col(Survey.id).in_(ids)))
    for survey in sorted(surveys, key=lambda s: s.id or 0):
        await outbox.emit(session, SENT_EVENT, _sent_payload(survey))
    return len(ids)


@dataclass(frozen=True)
class SurveyRun:
    expired: int
    sent: int

    def summary(self) -> str:
        return f"surveys: {self.expired} expired, {self.sent} NPS surveys sent"


async def run(
    session: AsyncSession, *, now: datetime | None = None, settings: SurveySettings | None = None
) -> SurveyRun:
    """One run of the job in the session's write transaction (the caller commits): expire
    what is due, then send a batch of periodic NPS surveys. It starts by taking a lock
    (PostgreSQL: a transaction-level advisory lock; SQLite: the write lock), so runs from
    several processes follow one another and the second sees what the first sent."""
    await mark_write(session)
    await insight_runs.lock(session, JOB_NAME)
    now = now or utcnow()
    expired = await expire_due(session, now)
    sent = await send_periodic_nps(session, now=now, settings=settings)
    return SurveyRun(expired=expired, sent=sent)


async def run_job(ctx: JobContext) -> None:
    async with ctx.sessions() as session:
        await run(session)
        await session.commit()


def survey_jobs() -> list[Job]:
    """The core's job ``core.surveys`` (registered with the core's ``jobs`` hook)."""
    return [
        Job(
            JOB_NAME,
            JOB_INTERVAL_SECONDS,
            run_job,
            description="Expire unanswered satisfaction surveys; send the periodic NPS survey "
            "to recent buyers not asked lately.",
        )
    ]


# --- answering ------------------------------------------------------------------------------


def my_surveys_query(customer_id: int, now: datetime | None = None) -> Select[Any]:
    """The customer's open surveys (sent, not answered, not expired), unordered."""
    return select(Survey).where(
        col(Survey.customer_id) == customer_id,
        col(Survey.state) == SurveyState.SENT,
        col(Survey.expires_at) > (now or utcnow()),
    )


def _comment(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > COMMENT_MAX:
        raise ValidationFailed(f"a comment is at most {COMMENT_MAX} characters", field="comment")
    return text or None


async def _own_survey(session: AsyncSession, customer_id: int, survey_id: int) -> Survey:
    survey = await session.scalar(
        select(Survey)
        .where(col(Survey.id) == survey_id, col(Survey.customer_id) == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if survey is None:
        # Another customer's survey is answered exactly like one that does not exist.
        raise NotFound("survey", survey_id, field="surveyId")
    return survey


def _check_open(survey: Survey, now: datetime) -> None:
    assert survey.id is not None
    if survey.state is SurveyState.ANSWERED:
        raise SurveyAlreadyAnswered(survey.id)
    if survey.state is SurveyState.EXPIRED or aware(survey.expires_at) <= now:
        raise SurveyExpired(survey.id)


async def answer_survey(
    session: AsyncSession,
    customer_id: int,
    survey_id: int,
    score: int,
    comment: str | None = None,
) -> Survey:
    """The customer answers their open survey: a score on its kind's scale and an optional
    comment (at most 1,000 characters), announced as ``survey_answered``. Another customer's
    survey is a NotFound, like a missing one; an answered one a SurveyAlreadyAnswered; an
    expired one a SurveyExpired; a score off the scale a ScoreOutOfRange. Nothing changes on
    a refusal."""
    now = utcnow()
    survey = await _own_survey(session, customer_id, survey_id)
    _check_open(survey, now)
    low, high = SCALES[survey.kind]
    if not low <= score <= high:
        raise ScoreOutOfRange(survey.kind.value, low, high)
    text = _comment(comment)
    # Conditional: of two answers at once, the second finds the survey answered.
    moved = await session.execute(
        update(Survey)
        .where(
            col(Survey.id) == survey_id,
            col(Survey.state) == SurveyState.SENT,
            col(Survey.expires_at) > now,
        )
        .values(state=SurveyState.ANSWERED, answered_at=now, score=score, comment=text)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
        _check_open(await _own_survey(session, customer_id, survey_id), now)
    answered = await _own_survey(session, customer_id, survey_id)
    await outbox.emit(
        session,
        ANSWERED_EVENT,
        {
            "survey_id": answered.id,
            "customer_id": answered.customer_id,
            "kind": answered.kind.value,
            "trigger": answered.trigger.value,
            "subject_key": answered.subject_key,
            "order_id": answered.order_id,
            "score": answered.score,
        },
    )
    return answered


async def withdraw_open(session: AsyncSession, customer_id: int) -> int:
    """Close the customer's unanswered surveys (they opted out, or their account is erased);
    returns how many."""
    result = await session.execute(
        update(Survey)
        .where(col(Survey.customer_id) == customer_id, col(Survey.state) == SurveyState.SENT)
        .values(state=SurveyState.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say


async def erase(session: AsyncSession, customer_id: int) -> None:
    """The customer's account is erased: their open surveys close and their comments go (a
    comment is free text, which may say anything about them); the scores stay, tied to the
    anonymised account, in the shop's figures."""
    await withdraw_open(session, customer_id)
    await session.execute(
        update(Survey)
        .where(col(Survey.customer_id) == customer_id, col(Survey.comment).is_not(None))
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )


# --- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SatisfactionFigures:
    """The counts the figures of a set of surveys come from."""

    sent: int = 0
    responses: int = 0
    csat_responses: int = 0
    csat_total: int = 0
    csat_satisfied: int = 0
    nps_responses: int = 0
    promoters: int = 0
    detractors: int = 0

    def __add__(self, other: SatisfactionFigures) -> SatisfactionFigures:
        return SatisfactionFigures(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )

    @property
    def passives(self) -> int:
        return self.nps_responses - self.promoters - self.detractors

    @property
    def response_rate(self) -> float | None:
        """Answered / sent (None when none was sent)."""
        return self.responses / self.sent if self.sent else None

    @property
    def csat_average(self) -> float | None:
        """The mean CSAT score, 1-5 (None without a CSAT answer)."""
        return self.csat_total / self.csat_responses if self.csat_responses else None

    @property
    def csat_satisfied_share(self) -> float | None:
        """The share of CSAT answers of 4 or 5, 0-1."""
        return self.csat_satisfied / self.csat_responses if self.csat_responses else None

    @property
    def nps(self) -> float | None:
        """% promoters (9-10) - % detractors (0-6) of the NPS answers, -100 to 100."""
        if not self.nps_responses:
            return None
        return 100 * (self.promoters - self.detractors) / self.nps_responses


def _figure_columns() -> list[ColumnElement[Any]]:
    answered = col(Survey.state) == SurveyState.ANSWERED
    csat = answered & (col(Survey.kind) == SurveyKind.CSAT)
    nps = answered & (col(Survey.kind) == SurveyKind.NPS)
    score = col(Survey.score)

    def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    return [
        func.count().label("sent"),
        count_if(answered).label("responses"),
        count_if(csat).label("csat_responses"),
        func.sum(case((csat, score), else_=0)).label("csat_total"),
        count_if(csat & (score >= CSAT_SATISFIED)).label("csat_satisfied"),
        count_if(nps).label("nps_responses"),
        count_if(nps & (score >= NPS_PROMOTER)).label("promoters"),
        count_if(nps & (score <= NPS_DETRACTOR)).label("detractors"),
    ]


_FIGURES = tuple(SatisfactionFigures.__dataclass_fields__)


def _figures(row: Any) -> SatisfactionFigures:
    return SatisfactionFigures(*(int(getattr(row, name) or 0) for name in _FIGURES))


class Grouping(StrEnum):
    """How the satisfaction report groups surveys."""

    TRIGGER = "TRIGGER"
    CARRIER = "CARRIER"
    CATEGORY = "CATEGORY"
    CHANNEL = "CHANNEL"


TRIGGER_LABELS: dict[SurveyTrigger, str] = {
    SurveyTrigger.DELIVERY: "签收后",
    SurveyTrigger.RETURN: "退货后",
    SurveyTrigger.SERVICE_CONTACT: "服务后",
    SurveyTrigger.PERIODIC: "定期 NPS",
}


def period(start: datetime | None, end: datetime | None, now: datetime) -> Period:
    """:func:`periods.moments`, by default the 30 days before ``end``."""
    return moments(start, end, now, default=DEFAULT_PERIOD, longest=MAX_PERIOD)


@dataclass(frozen=True)
class SatisfactionGroup:
    """The figures of one group: ``key`` is the trigger's name, the carrier, or the
    category's id (as text); ``category_id`` is set when grouped by category."""

    key: str
    label: str
    figures: SatisfactionFigures
    category_id: int | None = None


@dataclass(frozen=True)
class SatisfactionReport:
    period: Period
    by: Grouping
    total: SatisfactionFigures
    groups: list[SatisfactionGroup] = field(default_factory=list)


def _in_period(in_period: Period) -> list[ColumnElement[bool]]:
    return [col(Survey.sent_at) >= in_period.start, col(Survey.sent_at) < in_period.end]


async def _by_trigger(session: AsyncSession, in_period: Period) -> list[SatisfactionGroup]:
    trigger = col(Survey.trigger)
    stmt = select(trigger, *_figure_columns()).where(*_in_period(in_period)).group_by(trigger)
    return [
        SatisfactionGroup(
            key=SurveyTrigger(row[0]).value,
            label=TRIGGER_LABELS[SurveyTrigger(row[0])],
            figures=_figures(row),
        )
        for row in (await session.execute(stmt)).all()
    ]


async def _by_carrier(session: AsyncSession, in_period: Period) -> list[SatisfactionGroup]:
    # Only surveys about a parcel have a carrier (the delivery surveys).
    carrier = col(Survey.carrier)
    stmt = (
        select(carrier, *_figure_columns())
        .where(*_in_period(in_period), carrier.is_not(None))
        .group_by(carrier)
    )
    return [
        SatisfactionGroup(key=row[0], label=row[0], figures=_figures(row))
        for row in (await session.execute(stmt)).all()
    ]


async def _by_category(session: AsyncSession, in_period: Period) -> list[SatisfactionGroup]:
    # Each survey about an order counts once in every category of the order's lines.
    surveyed = select(col(Survey.order_id)).where(
        *_in_period(in_period), col(Survey.order_id).is_not(None)
    )
    categories = (
        select(col(OrderLine.order_id).label("order_id"), col(Product.category_id).label("cid"))
        .join(Product, col(Product.id) == col(OrderLine.product_id))
        .where(col(OrderLine.order_id).in_(surveyed), col(Product.category_id).is_not(None))
        .distinct()
        .subquery("order_category")
    )
    stmt = (
        select(categories.c.cid, col(Category.name), *_figure_columns())
        .select_from(Survey)
        .join(categories, categories.c.order_id == col(Survey.order_id))
        .join(Category, col(Category.id) == categories.c.cid)
        .where(*_in_period(in_period))
        .group_by(categories.c.cid, col(Category.name))
    )
    return [
        SatisfactionGroup(key=str(row[0]), label=row[1], figures=_figures(row), category_id=row[0])
        for row in (await session.execute(stmt)).all()
    ]


async def _by_channel(session: AsyncSession, in_period: Period) -> list[SatisfactionGroup]:
    # The surveys about an order, by the channel it was placed through (unknown: no group).
    channel = col(Order.channel)
    stmt = (
        select(channel, *_figure_columns())
        .select_from(Survey)
        .join(Order, col(Order.id) == col(Survey.order_id))
        .where(*_in_period(in_period), channel.is_not(None))
        .group_by(channel)
    )
    return [
        SatisfactionGroup(
            key=row[0], label=CHANNEL_LABELS[SalesChannel(row[0])], figures=_figures(row)
        )
        for row in (await session.execute(stmt)).all()
    ]


# One grouping, one query.
_GROUPINGS = {
    Grouping.TRIGGER: _by_trigger,
    Grouping.CARRIER: _by_carrier,
    Grouping.CATEGORY: _by_category,
    Grouping.CHANNEL: _by_channel,
}


async def satisfaction(
    session: AsyncSession, in_period: Period, by: Grouping
) -> SatisfactionReport:
    """The figures of the surveys sent in ``in_period``, in all and per group (the most
    surveys sent first); two statements."""
    total = _figures(
        (await session.execute(select(*_figure_columns()).where(*_in_period(in_period)))).one()
    )
    groups = await _GROUPINGS[by](session, in_period)
    groups.sort(key=lambda g: (-g.figures.sent, g.key))
    return SatisfactionReport(period=in_period, by=by, total=total, groups=groups)


# --- KPIs -----------------------------------------------------------------------------------


async def daily_figures(
    session: AsyncSession, start: date, end: date
) -> dict[date, SatisfactionFigures]:
    """The figures of the surveys sent on each shop day from ``start`` to ``end`` (exclusive)
    that had any: one aggregate statement ``GROUP BY`` day."""
    day = shop_day_sql(col(Survey.sent_at), _dialect(session)).label("day")
    stmt = (
        select(day, *_figure_columns())
        .where(
            col(Survey.sent_at) >= day_start(start),
            col(Survey.sent_at) < day_start(end),
        )
        .group_by(day)
    )
    return {
        (row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))): _figures(row)
        for row in (await session.execute(stmt)).all()
    }


async def bucket_figures(
    session: AsyncSession, buckets: Sequence[KpiBucket]
) -> list[SatisfactionFigures]:
    """The figures of each bucket's surveys (by the shop day they were sent), from one
    statement over the days the buckets span."""
    if not buckets:
        return []
    days = await daily_figures(session, min(b.start for b in buckets), max(b.end for b in buckets))
    out = []
    for bucket in buckets:
        total = SatisfactionFigures()
        for day, figures in days.items():
            if bucket.start <= day < bucket.end:
                total += figures
        out.append(total)
    return out


async def _csat(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    return [f.csat_average for f in await bucket_figures(session, buckets)]


async def _nps(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    return [f.nps for f in await bucket_figures(session, buckets)]


async def _response_rate(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    return [f.response_rate for f in await bucket_figures(session, buckets)]


def survey_kpis() -> list[Kpi]:
    """The core's satisfaction KPIs, over the surveys sent in each period."""
    return [
        Kpi(
            "csat",
            "CSAT",
            KpiUnit.SCORE,
            _csat,
            description="The mean score (1-5) of the answered CSAT surveys sent in the period.",
        ),
        Kpi(
            "nps",
            "NPS",
            KpiUnit.SCORE,
            _nps,
            description="% promoters (9-10) minus % detractors (0-6) of the answered NPS "
            "surveys sent in the period, -100 to 100.",
        ),
        Kpi(
            "survey_response_rate",
            "Survey response rate",
            KpiUnit.RATIO,
            _response_rate,
            description="The share of the surveys sent in the period that were answered.",
        ),
    ]
