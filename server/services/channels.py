"""Sales channels: what a client may say about where a visitor or an order came from, and the
visitor's latest touch that checkout falls back on.

A **touch** is a behaviour event that carries a channel (``recordEvent`` with ``channel``;
clients report it on the event of the visitor's arrival, and may repeat it). An order gets the
channel and UTM tags checkout is given; when it is given none of them, those of the visitor's
latest touch within the attribution lookback (:func:`latest_touch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.models import CustomerEvent, SalesChannel
from server.models.channels import UTM_MAX
from server.services.errors import ValidationFailed

# The shop's private domain (私域): channels whose customers it reaches without paying a
# platform each time.
PRIVATE_DOMAIN: frozenset[SalesChannel] = frozenset(
    {SalesChannel.MINI_PROGRAM, SalesChannel.COMMUNITY_GROUP}
)

CHANNEL_LABELS: dict[SalesChannel, str] = {
    SalesChannel.APP: "App",
    SalesChannel.WEB: "网站 Web",
    SalesChannel.MINI_PROGRAM: "小程序 Mini program",
    SalesChannel.COMMUNITY_GROUP: "社群 Community group",
    SalesChannel.LIVE_STREAM: "直播 Live stream",
    SalesChannel.PAID: "付费广告 Paid ads",
    SalesChannel.ORGANIC: "自然流量 Organic",
}

# How far back a touch may be and still be credited with an order (the default of the
# setting ``attribution_lookback_days``).
DEFAULT_LOOKBACK = timedelta(days=30)


def lookback_of(settings: Settings) -> timedelta:
    """The shop's attribution lookback (``attribution_lookback_days``)."""
    return timedelta(days=settings.attribution_lookback_days)


@dataclass(frozen=True)
class TrafficSource:
    """Where a visit or an order came from; every part may be missing."""

    channel: SalesChannel | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.channel is None
            and self.utm_source is None
            and self.utm_medium is None
            and self.utm_campaign is None
        )

    def columns(self) -> dict[str, Any]:
        """The values of the columns of the same names on ``customer_event`` and ``order``."""
        return {
            "channel": self.channel,
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
        }


def parse_channel(value: str | None, *, field: str = "channel") -> SalesChannel | None:
    """A channel as a client writes it: its name, in any case, around spaces ("mini_program"
    is MINI_PROGRAM); empty is none. Anything else is refused, naming the channels."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return SalesChannel(text.upper())
    except ValueError:
        known = ", ".join(c.value for c in SalesChannel)
        raise ValidationFailed(
            f"unknown channel {text[:40]!r}: use one of {known}", field=field
        ) from None


def clean_utm(value: str | None, field: str) -> str | None:
    """A UTM tag trimmed (empty is none), at most :data:`UTM_MAX` characters."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > UTM_MAX:
        raise ValidationFailed(f"{field} must have at most {UTM_MAX} characters", field=field)
    return text


def traffic_source(
    channel: str | None = None,
    utm_source: str | None = None,
    utm_medium: str | None = None,
    utm_campaign: str | None = None,
) -> TrafficSource:
    """Check what a client said about where a visit or an order came from (fields named as
    in GraphQL: ``channel``, ``utmSource`` …)."""
    return TrafficSource(
        channel=parse_channel(channel),
        utm_source=clean_utm(utm_source, "utmSource"),
        utm_medium=clean_utm(utm_medium, "utmMedium"),
        utm_campaign=clean_utm(utm_campaign, "utmCampaign"),
    )


def visitor_condition(
    customer_id: int | None, session_id: str | None
) -> ColumnElement[bool] | None:
    """The events of a visitor: the customer's, else the anonymous session's (None: nobody)."""
    if customer_id is not None:
        return col(CustomerEvent.customer_id) == customer_id
    if session_id:
        return (col(CustomerEvent.session_id) == session_id) & col(CustomerEvent.customer_id).is_(
            None
        )
    return None


async def latest_touch(
    session: AsyncSession,
    *,
    customer_id: int | None,
    session_id: str | None,
    at: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> TrafficSource:
    """The channel and UTM tags of the visitor's latest touch (event carrying a channel) in
    ``[at - lookback, at]``; empty when there is none. One statement on a partial index."""
    visitor = visitor_condition(customer_id, session_id)
    if visitor is None:
        return TrafficSource()
    stmt = (
        select(
            col(CustomerEvent.channel),
            col(CustomerEvent.utm_source),
            col(CustomerEvent.utm_medium),
            col(CustomerEvent.utm_campaign),
        )
        .where(
            visitor,
            col(CustomerEvent.channel).is_not(None),
            col(CustomerEvent.occurred_at) >= at - lookback,
            col(CustomerEvent.occurred_at) <= at,
        )
        .order_by(col(CustomerEvent.occurred_at).desc(), col(CustomerEvent.id).desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return TrafficSource()
    return TrafficSource(
        channel=row.channel,
        utm_source=row.utm_source,
        utm_medium=row.utm_medium,
        utm_campaign=row.utm_campaign,
    )
