"""The demo plan's channels: where each visit and order came from, and what the paid channels
cost each day.

Drawn once the rest of the plan is complete, from a random stream of its own (the seed's), so
that every other row of a demo shop is the same with or without them.

- **Visits.** The first event of each visit (a browsing visit, a look around before an order,
  the visit that ends in the order) carries its channel, as a storefront reports it where
  the visitor arrives; a paid, live-stream, community or organic visit also its UTM tags. A
  few visits (4%) report none. Most
  visits come through the customer's own platform (app, mini program, web: their
  ``Preferences.channel``). Paid ads and live streams peak in the 618 and Double 11 sales (a
  live stream on the peak days above all), and bring first orders more than repeat ones;
  members of the shop's community groups (mostly loyal and regular buyers) come back through
  the group for repeat orders.
- **Orders** take the channel and tags of the visit they were placed in.
- **Costs**, per shop day: paid ads every day (a budget raised through the sales and more on
  the peak days), live streams on their days (two a week, every day of a sale), the community
  groups' running cost every day; scaled to the revenue each channel brings in the plan, at
  rates that give each its own ROI (paid ads about break even, live streams about 1.5, the
  community groups about 8).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from server.demo.plan import PlannedCustomer, PlannedEvent, Row, ShopPlan
from server.demo.seasons import is_peak_day, promotion_weight
from server.models import CustomerEventKind, SalesChannel
from server.services.forecasts import shop_day

C = SalesChannel
HOME = {"app": C.APP, "mini_program": C.MINI_PROGRAM, "web": C.WEB}
# The share of each archetype's customers in the shop's community groups.
MEMBERS = {"loyal": 0.55, "regular": 0.3, "churner": 0.2, "new": 0.1}
# Cost per unit of revenue brought (last touch) by each channel: ROI = 1/rate - 1.
COST_RATE = {C.PAID: 1.0, C.LIVE_STREAM: 0.4, C.COMMUNITY_GROUP: 0.11}
LIVE_WEEKDAYS = (1, 4)  # Tuesday and Friday evenings, outside the sales
UNREPORTED = 0.04  # the visits whose client reports no channel
# The source columns of an event that says nothing of where the visitor came from.
NO_SOURCE: Row = dict.fromkeys(("channel", "utm_source", "utm_medium", "utm_campaign"))


@dataclass(frozen=True)
class Source:
    channel: SalesChannel
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None


def sale_campaign(day: date) -> str | None:
    """The sale a shop day belongs to (``618-2026``, ``double11-2026``), if any."""
    if promotion_weight(day) < 2.5:
        return None
    return f"618-{day.year}" if day.month == 6 else f"double11-{day.year}"


def campaign(channel: SalesChannel, day: date) -> str | None:
    """The campaign a channel runs on a shop day: the sale's, else its everyday one."""
    sale = sale_campaign(day)
    if channel is C.PAID:
        return sale or "always-on"
    if channel is C.LIVE_STREAM:
        return f"{sale}-live" if sale else "weekly-live"
    if channel is C.COMMUNITY_GROUP:
        return sale or "member-weekly"
    return None


def _source(rng: random.Random, channel: SalesChannel, day: date) -> Source:
    tag = campaign(channel, day)
    if channel is C.PAID:
        source = rng.choices(("baidu", "douyin", "wechat"), weights=(3, 4, 3))[0]
        return Source(channel, source, "cpc", tag)
    if channel is C.LIVE_STREAM:
        source = rng.choices(("douyin", "taobao_live", "kuaishou"), weights=(5, 3, 2))[0]
        return Source(channel, source, "live", tag)
    if channel is C.COMMUNITY_GROUP:
        return Source(channel, "wechat_group", "community", tag)
    if channel is C.ORGANIC:
        source = rng.choices(("baidu", "xiaohongshu", "weibo"), weights=(4, 4, 2))[0]
        return Source(channel, source, "organic", None)
    return Source(channel)  # the shop's own platforms: no tags


def _live_day(day: date) -> bool:
    return sale_campaign(day) is not None or day.weekday() in LIVE_WEEKDAYS


def _draw(
    rng: random.Random,
    customer: PlannedCustomer,
    member: bool,
    day: date,
    *,
    order: int | None,
) -> SalesChannel | None:
    """The channel of a visit of ``customer`` on ``day``; ``order`` is the order's number
    among the customer's (0: the first) for the visit that placed it. None: the client said
    nothing (an old app version, a link without tags)."""
    if rng.random() < UNREPORTED:
        return None
    home = HOME.get(customer.prefs.channel, C.APP)
    weights = {c: 4.0 for c in (C.APP, C.MINI_PROGRAM, C.WEB)}
    weights[home] = 62.0
    weights |= {C.ORGANIC: 9.0, C.PAID: 6.0, C.LIVE_STREAM: 3.0 if _live_day(day) else 0.3}
    weights[C.COMMUNITY_GROUP] = 14.0 if member else 0.0
    if sale_campaign(day) is not None:
        weights[C.PAID] *= 3
        weights[C.LIVE_STREAM] *= 12 if is_peak_day(day) else 6
        if customer.prefs.archetype == "seasonal":
            weights[C.LIVE_STREAM] *= 2
            weights[C.PAID] *= 1.5
    if order == 0:
        # Newcomers are found by ads, live streams and search.
        for channel in (C.PAID, C.LIVE_STREAM, C.ORGANIC):
            weights[channel] *= 2.5
    elif order is not None and member:
        weights[C.COMMUNITY_GROUP] *= 3
    channels = list(weights)
    return rng.choices(channels, weights=[weights[c] for c in channels])[0]


def _columns(source: Source) -> Row:
    return {
        "channel": source.channel,
        "utm_source": source.utm_source,
        "utm_medium": source.utm_medium,
        "utm_campaign": source.utm_campaign,
    }


def plan_channels(plan: ShopPlan) -> None:
    """Give every visit, and so every order, its channel, and plan the daily marketing costs
    (``plan.marketing_costs``)."""
    rng = random.Random(f"channels-{plan.seed}")
    members = {id(c) for c in plan.customers if rng.random() < MEMBERS.get(c.prefs.archetype, 0.03)}
    number: dict[int, int] = {}
    seen: dict[int, int] = defaultdict(int)
    for order in sorted(plan.orders, key=lambda o: o.row["placed_at"]):
        number[id(order)] = seen[id(order.customer)]
        seen[id(order.customer)] += 1
    visits: dict[str, list[PlannedEvent]] = defaultdict(list)
    for event in plan.events:
        visits[event.session_id].append(event)
    # Visits in the order they were planned (dict order), so the draws follow the seed.
    for events in visits.values():
        arrival = min(events, key=lambda e: (e.kind is CustomerEventKind.PURCHASE, e.at))
        placed = next((e.order for e in events if e.order is not None), None)
        day = shop_day(arrival.at)
        channel = _draw(
            rng,
            arrival.customer,
            id(arrival.customer) in members,
            day,
            order=number[id(placed)] if placed is not None else None,
        )
        if channel is None:
            continue
        source = _source(rng, channel, day)
        if arrival.kind is not CustomerEventKind.PURCHASE:
            arrival.source = _columns(source)
        if placed is not None:
            placed.row |= _columns(source)
    for order in plan.orders:
        for key, nothing in NO_SOURCE.items():
            order.row.setdefault(key, nothing)
    plan.marketing_costs = _costs(rng, plan)


def _costs(rng: random.Random, plan: ShopPlan) -> list[Row]:
    """Each paid channel's cost per shop day of the history, scaled to what it brought."""
    revenue: dict[SalesChannel, float] = defaultdict(float)
    for order in plan.orders:
        channel = order.row.get("channel")
        if channel in COST_RATE:
            revenue[channel] += order.row["total_amount"]
    first = shop_day(plan.history_start)
    days = [first + timedelta(days=d) for d in range((shop_day(plan.as_of) - first).days)]
    shape: dict[SalesChannel, list[float]] = {
        C.PAID: [(4.0 if is_peak_day(d) else 2.5) if sale_campaign(d) else 1.0 for d in days],
        C.LIVE_STREAM: [
            (6.0 if is_peak_day(d) else 2.0) if sale_campaign(d) else (1.0 if _live_day(d) else 0.0)
            for d in days
        ],
        C.COMMUNITY_GROUP: [1.5 if sale_campaign(d) else 1.0 for d in days],
    }
    rows: list[Row] = []
    for channel, weights in shape.items():
        budget = COST_RATE[channel] * revenue[channel]
        scale = budget / sum(weights) if sum(weights) else 0.0
        for day, weight in zip(days, weights, strict=True):
            if weight <= 0 or scale <= 0:
                continue
            # To the yuan, with the day's own noise.
            amount = round(scale * weight * rng.uniform(0.85, 1.15) / 100) * 100
            rows.append(
                {
                    "day": day,
                    "channel": channel,
                    "campaign": campaign(channel, day) or "",
                    "amount": amount,
                    "currency": "CNY",
                    "updated_at": plan.as_of,
                }
            )
    return rows
