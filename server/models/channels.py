"""Sales channels and marketing costs: where a visit or an order came from (the channel and
its UTM tags, on ``customer_event`` and ``order``), and what the shop spent on each channel
per day (``marketing_cost``), which attribution sets against the revenue it credits."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Date, String, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, enum_field

UTM_MAX = 100
CAMPAIGN_MAX = UTM_MAX


class SalesChannel(StrEnum):
    """Where a shopper came from. MINI_PROGRAM and COMMUNITY_GROUP are the shop's private
    domain (:data:`server.services.channels.PRIVATE_DOMAIN`)."""

    APP = "APP"
    WEB = "WEB"
    MINI_PROGRAM = "MINI_PROGRAM"  # 小程序
    COMMUNITY_GROUP = "COMMUNITY_GROUP"  # 社群: WeChat groups run by the shop
    LIVE_STREAM = "LIVE_STREAM"  # 直播
    PAID = "PAID"  # paid ads
    ORGANIC = "ORGANIC"  # unpaid search and social


def channel_column() -> Any:
    """A nullable channel column, stored as VARCHAR like every enum of the core."""
    return Field(
        default=None,
        sa_column=Column(
            SAEnum(SalesChannel, native_enum=False, length=32, validate_strings=True),
            nullable=True,
        ),
    )


def utm_column() -> Any:
    return Field(default=None, sa_column=Column(String(UTM_MAX), nullable=True))


class MarketingCost(SQLModel, table=True):
    """What the shop spent on one channel (and campaign) on one shop day, imported by staff
    (``importMarketingCosts``, ``shopgraph insights import-costs``). Importing the same day,
    channel and campaign again replaces the amount."""

    __tablename__ = "marketing_cost"
    __table_args__ = (UniqueConstraint("day", "channel", "campaign", name="day_channel_campaign"),)

    id: int | None = Field(default=None, primary_key=True)
    # A day of the shop's time zone (UTC+8, server.services.forecasts.shop_day).
    day: date = Field(sa_column=Column(Date(), nullable=False))
    channel: SalesChannel = enum_field(SalesChannel)
    # '' when the cost belongs to no campaign (a unique key cannot hold NULLs as equal).
    campaign: str = Field(default="", sa_column=Column(String(CAMPAIGN_MAX), nullable=False))
    # Minor units of ``currency``; a year of a large channel may pass 32 bits.
    amount: int = Field(sa_column=Column(BigInteger(), nullable=False))
    currency: str = Field(default="CNY", sa_column=Column(String(3), nullable=False))
    updated_at: datetime = created_at_field()
