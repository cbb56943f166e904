"""A/B experiments: their definitions and the visitors exposed to them.

A visitor's variant is never stored to be known (it is a hash of the experiment's key and the
visitor, server.services.experiments); an exposure records the first time a visitor was shown
one, which is what results count from.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field

EXPERIMENT_KEY_MAX = 64
VARIANT_KEY_MAX = 32
# "customer:<id>" or "session:<the client's session id, at most 64 characters>".
VISITOR_MAX = 80


class ExperimentStatus(StrEnum):
    DRAFT = "DRAFT"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class ExperimentMetric(StrEnum):
    # Visitors who placed a paid order, over visitors exposed.
    CONVERSION = "CONVERSION"
    # Paid orders' totals per visitor exposed (non-buyers count as 0).
    GMV_PER_VISITOR = "GMV_PER_VISITOR"
    # Paid orders' totals per paid order.
    AOV = "AOV"


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(EXPERIMENT_KEY_MAX), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    hypothesis: str = Field(default="", sa_column=Column(Text, nullable=False))
    # [{"key": "control", "weight": 50}, {"key": "treatment", "weight": 50}]: the first is the
    # control every other variant is compared with.
    variants: list[dict[str, Any]] = json_field(list)
    primary_metric: ExperimentMetric = enum_field(ExperimentMetric, ExperimentMetric.CONVERSION)
    status: ExperimentStatus = enum_field(ExperimentStatus, ExperimentStatus.DRAFT, index=True)
    # Visitors every arm needs before a result may be conclusive.
    min_sample_size: int = 1000
    created_at: datetime = created_at_field()
    started_at: datetime | None = datetime_field()
    stopped_at: datetime | None = datetime_field()


class ExperimentExposure(SQLModel, table=True):
    """The first time a visitor was shown a variant of an experiment: one row per visitor."""

    __tablename__ = "experiment_exposure"
    __table_args__ = (
        UniqueConstraint("experiment_id", "visitor", name="uq_experiment_exposure_visitor"),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("experiment.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    visitor: str = Field(sa_column=Column(String(VISITOR_MAX), nullable=False))
    # The customer a "customer:<id>" visitor is: their paid orders are the conversions.
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    variant: str = Field(sa_column=Column(String(VARIANT_KEY_MAX), nullable=False))
    exposed_at: datetime = created_at_field()
