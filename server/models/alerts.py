"""Alerts on the shop's KPIs: the rules staff set (a KPI above or below a threshold, or rising or
falling by a share against the period before) and the alerts raised by the rules, by the anomaly
detector and by the stock-out check (server.services.alerts, server.services.anomalies).

An alert is raised once per breach: its ``key`` names the breach (the rule and its period, the
anomaly's KPI and day, the stock-out's variant and day) and is unique, and alerts are inserted
with ``ON CONFLICT DO NOTHING``, so two processes evaluating at once raise it once.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field
from server.models.insights import Granularity
from server.models.products import variant_key

ALERT_RULE_NAME_MAX = 200
KPI_KEY_MAX = 100
ALERT_KEY_MAX = 200
# ``staff:<id>``, ``apikey:<id>``, ``cli:<user>``: who made a rule or acknowledged an alert.
ACTOR_MAX = 64


class AlertCondition(StrEnum):
    """ABOVE / BELOW: the period's value is above (below) the threshold. RISES_BY / FALLS_BY:
    it changed by at least the threshold (a share: 0.3 is 30%) against the period before."""

    ABOVE = "ABOVE"
    BELOW = "BELOW"
    RISES_BY = "RISES_BY"
    FALLS_BY = "FALLS_BY"


class AlertKind(StrEnum):
    THRESHOLD = "THRESHOLD"
    ANOMALY = "ANOMALY"
    STOCK_OUT = "STOCK_OUT"
    # Raised by a plugin (``raise_alert``): a late parcel, a failed feed.
    PLUGIN = "PLUGIN"


class AlertState(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"


class AlertDirection(StrEnum):
    """Which way the figure moved: UP (above, risen, a spike) or DOWN (below, fallen, a drop,
    stock run out)."""

    UP = "UP"
    DOWN = "DOWN"


class AlertRule(SQLModel, table=True):
    __tablename__ = "alert_rule"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(ALERT_RULE_NAME_MAX), nullable=False))
    # A key of the KPI registry (server.services.kpi_registry): "gmv", "logistics.on_time_rate".
    kpi_key: str = Field(sa_column=Column(String(KPI_KEY_MAX), nullable=False, index=True))
    granularity: Granularity = enum_field(Granularity)
    condition: AlertCondition = enum_field(AlertCondition)
    # ABOVE/BELOW: in the KPI's unit (MONEY in minor units, RATIO 0-1); RISES_BY/FALLS_BY: a
    # share of the period before's value (0.3 = 30%).
    threshold: float = Field(sa_column=Column(Float, nullable=False))
    enabled: bool = True
    created_by: str = Field(sa_column=Column(String(ACTOR_MAX), nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        variant_key("alert"),
        # The list staff read: newest first.
        Index("ix_alert_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The breach, once: "rule:<id>:<granularity>:<period start>", "anomaly:<kpi>:<day>",
    # "stock_out:<variant id>:<day>".
    key: str = Field(sa_column=Column(String(ALERT_KEY_MAX), nullable=False, unique=True))
    kind: AlertKind = enum_field(AlertKind)
    # The rule that raised it (THRESHOLD); kept as null when the rule is deleted.
    rule_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("alert_rule.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    kpi_key: str | None = Field(default=None, sa_column=Column(String(KPI_KEY_MAX)))
    product_id: int | None = Field(default=None, foreign_key="product.id", index=True)
    variant_id: int | None = None
    # The period the alert is about: shop days, end exclusive.
    bucket_start: date = Field(sa_column=Column(Date, nullable=False))
    bucket_end: date = Field(sa_column=Column(Date, nullable=False))
    # The KPI's value (a stock-out: the units available).
    value: float | None = Field(default=None, sa_column=Column(Float))
    # What was expected: the anomaly detector's forecast of the day, the period before's value
    # (RISES_BY/FALLS_BY), the units sold in the last 7 days (a stock-out).
    expected: float | None = Field(default=None, sa_column=Column(Float))
    # The rule's threshold when raised, or the anomaly detector's z-score threshold.
    threshold: float | None = Field(default=None, sa_column=Column(Float))
    # The anomaly's robust z-score, or a change rule's relative change.
    score: float | None = Field(default=None, sa_column=Column(Float))
    direction: AlertDirection = enum_field(AlertDirection)
    # Whether the move is bad for the shop (by the KPI's ``higher_is_better``).
    bad_news: bool = True
    message: str = Field(sa_column=Column(Text, nullable=False))
    state: AlertState = enum_field(AlertState, AlertState.OPEN)
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String(ACTOR_MAX)))
    acknowledged_at: datetime | None = datetime_field()
    created_at: datetime = created_at_field()
