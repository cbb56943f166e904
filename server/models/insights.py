"""Customer insights: each customer's current RFM figures and segment, the history of segment
changes, each customer's lifetime value and churn risk with the history of the fitted models,
and the state of the last recomputation of each insight."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Float, Index, String, Text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from server.models.base import datetime_field, enum_field, json_field


class Granularity(StrEnum):
    """How a period of shop days is cut: days, weeks from Monday to Sunday, calendar months
    (KPI series, segment movements, alert rules)."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class CustomerSegment(StrEnum):
    """The eight RFM segments: R, F and M each high or low against the shop's average score.
    Their operators' names are in :data:`server.services.rfm.SEGMENT_LABELS`."""

    IMPORTANT_VALUE = "IMPORTANT_VALUE"  # 重要价值: R high, F high, M high
    IMPORTANT_DEVELOP = "IMPORTANT_DEVELOP"  # 重要发展: R high, F low, M high
    IMPORTANT_KEEP = "IMPORTANT_KEEP"  # 重要保持: R low, F high, M high
    IMPORTANT_WIN_BACK = "IMPORTANT_WIN_BACK"  # 重要挽留: R low, F low, M high
    GENERAL_VALUE = "GENERAL_VALUE"  # 一般价值: R high, F high, M low
    GENERAL_DEVELOP = "GENERAL_DEVELOP"  # 一般发展: R high, F low, M low
    GENERAL_KEEP = "GENERAL_KEEP"  # 一般保持: R low, F high, M low
    GENERAL_WIN_BACK = "GENERAL_WIN_BACK"  # 一般挽留: R low, F low, M low


def _segment_column(*, nullable: bool, index: bool = False) -> Column[CustomerSegment]:
    return Column(
        SAEnum(CustomerSegment, native_enum=False, length=32, validate_strings=True),
        nullable=nullable,
        index=index,
    )


class CustomerRfm(SQLModel, table=True):
    """A customer's RFM figures as of the last recomputation that changed them; only
    customers with at least one purchase have a row."""

    __tablename__ = "customer_rfm"

    customer_id: int = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    # Whole days from the last purchase's day to the day of ``computed_at`` (UTC days).
    recency_days: int
    frequency: int
    # Total spend in minor units of the shop's currency (a sum of orders: 64 bits).
    monetary: int = Field(sa_column=Column(BigInteger(), nullable=False))
    last_purchase_at: datetime = datetime_field(nullable=False)
    r_score: int
    f_score: int
    m_score: int
    segment: CustomerSegment = enum_field(CustomerSegment, index=True)
    # The moment the figures are computed for ("as of"): recency counts days up to its day.
    computed_at: datetime = datetime_field(nullable=False)


class CustomerSegmentChange(SQLModel, table=True):
    """A customer moved between segments: written only when the segment changes. ``from``
    is None for a customer's first purchase, ``to`` None when no purchase is left."""

    __tablename__ = "customer_segment_change"
    __table_args__ = (Index("ix_customer_segment_change_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    from_segment: CustomerSegment | None = Field(
        default=None, sa_column=_segment_column(nullable=True)
    )
    to_segment: CustomerSegment | None = Field(
        default=None, sa_column=_segment_column(nullable=True)
    )
    at: datetime = datetime_field(nullable=False)


class InsightRun(SQLModel, table=True):
    """The last recomputation of one insight (``step``: ``rfm``, ``clv``): what it saw, so that a run
    finding the same data on the same day can skip."""

    __tablename__ = "insight_run"

    step: str = Field(sa_column=Column(String(32), primary_key=True))
    # A hash of what the data looked like (orders per status, erased customers, the currency).
    fingerprint: str = Field(sa_column=Column(String(200), nullable=False))
    as_of: datetime = datetime_field(nullable=False)
    finished_at: datetime = datetime_field(nullable=False)
    customers: int = 0


def _float(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(Float(), nullable=nullable))


def _money(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(BigInteger(), nullable=nullable))


class CustomerValue(SQLModel, table=True):
    """A customer's lifetime value and churn risk as of the last recomputation that changed
    them; only customers with at least one purchase have a row. The figures are null when the
    shop's data could not fit the models (``reason`` says why), never guessed."""

    __tablename__ = "customer_value"

    customer_id: int = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    # P(alive) at computed_at's day (BG/NBD).
    p_alive: float | None = _float()
    # Expected purchases (distinct purchase days) over the horizon (BG/NBD).
    expected_purchases: float | None = _float()
    # The horizon of expected_purchases and clv_amount, in days.
    horizon_days: int
    # Expected spend per purchase, minor units (Gamma-Gamma).
    expected_spend: int | None = _money()
    # The margin rate the value is computed with: realised from cost prices, or the default.
    margin_rate: float | None = _float()
    # Discounted margin over the horizon, minor units of the shop's currency (64 bits).
    clv_amount: int | None = _money()
    # 1 - P(alive) combined with the shopping path's signals; null without P(alive).
    churn_probability: float | None = _float()
    # Each signal that contributed: [{code, value, message}].
    churn_reasons: list[dict[str, Any]] = json_field(list)
    # Why figures are null (the models could not be fitted): None when every figure is known.
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    computed_at: datetime = datetime_field(nullable=False)


class ClvModelFit(SQLModel, table=True):
    """One fit of the lifetime value models on the shop's purchases (every recomputation adds
    one: the history of fits). Parameters are null when the data could not fit them (``reason``
    says why)."""

    __tablename__ = "clv_model_fit"
    __table_args__ = (Index("ix_clv_model_fit_fitted_at", "fitted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # The moment of the recomputation; calibration_end is its UTC day.
    fitted_at: datetime = datetime_field(nullable=False)
    calibration_end: date = Field(sa_column=Column(Date(), nullable=False))
    # The unit of time of the rates (alpha is per that unit): "day".
    unit: str = Field(sa_column=Column(String(8), nullable=False))
    # Customers summarised, and those with a repeat purchase.
    customers: int = 0
    repeat_customers: int = 0
    # BG/NBD: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b).
    r: float | None = _float()
    alpha: float | None = _float()
    a: float | None = _float()
    b: float | None = _float()
    log_likelihood: float | None = _float()
    # Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v) (v in minor units).
    p: float | None = _float()
    q: float | None = _float()
    v: float | None = _float()
    spend_log_likelihood: float | None = _float()
    # Both fits converged (neither stopped early nor ran a parameter to its bound).
    converged: bool = False
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The settings the customers' values were computed with.
    horizon_days: int
    annual_discount_rate: float = Field(sa_column=Column(Float(), nullable=False))
    default_margin_rate: float = Field(sa_column=Column(Float(), nullable=False))
