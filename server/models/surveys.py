"""Satisfaction surveys: a question put to a customer after something happened to them (a
delivery, a return, a service contact) or now and then (the periodic NPS survey), and their
answer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import datetime_field, enum_field

SUBJECT_KEY_MAX = 120
COMMENT_MAX = 1000


class SurveyKind(StrEnum):
    # Customer satisfaction: "how satisfied were you with …", 1 (very unhappy) to 5.
    CSAT = "CSAT"
    # Net Promoter Score: "how likely are you to recommend us", 0 to 10.
    NPS = "NPS"


class SurveyTrigger(StrEnum):
    DELIVERY = "DELIVERY"
    RETURN = "RETURN"
    SERVICE_CONTACT = "SERVICE_CONTACT"
    PERIODIC = "PERIODIC"


class SurveyState(StrEnum):
    SENT = "SENT"
    ANSWERED = "ANSWERED"
    EXPIRED = "EXPIRED"


class Survey(SQLModel, table=True):
    """One survey sent to one customer. ``subject_key`` names what it is about, unique per
    trigger (``order:<id>`` for a delivery or a return, ``nps:<customer>:<day>`` for the
    periodic survey, a plugin's own key such as ``complaints:123`` for a service contact), so
    that a trigger that fires twice leaves one survey."""

    __tablename__ = "survey"
    __table_args__ = (
        UniqueConstraint("trigger", "subject_key", name="survey_subject"),
        # The customer's open surveys, and "had an NPS survey lately" of the periodic job.
        Index("ix_survey_customer_kind_sent", "customer_id", "kind", "sent_at"),
        # The expiry of open surveys.
        Index("ix_survey_state_expires", "state", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    kind: SurveyKind = enum_field(SurveyKind, SurveyKind.CSAT)
    trigger: SurveyTrigger = enum_field(SurveyTrigger, SurveyTrigger.DELIVERY)
    subject_key: str = Field(sa_column=Column(String(SUBJECT_KEY_MAX), nullable=False))
    order_id: int | None = Field(default=None, foreign_key="order.id", index=True)
    shipment_id: int | None = Field(default=None, foreign_key="shipment.id")
    carrier: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    state: SurveyState = enum_field(SurveyState, SurveyState.SENT)
    sent_at: datetime = datetime_field(nullable=False, index=True)
    expires_at: datetime = datetime_field(nullable=False)
    answered_at: datetime | None = datetime_field()
    # CSAT 1-5, NPS 0-10; None until answered.
    score: int | None = None
    comment: str | None = Field(default=None, sa_column=Column(String(COMMENT_MAX), nullable=True))
