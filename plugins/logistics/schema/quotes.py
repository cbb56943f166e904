"""The logistics plugin over GraphQL, what shoppers see: the delivery promise frozen on their
order (``Order.deliveryPromise``, one statement for every order of a request) and the pickup
points of a city (``pickupPoints``, public). The quotes themselves are the core's
``Cart.shippingQuotes`` (with ``promisedFrom``/``promisedBy``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from plugins.logistics.models import PickupPoint
from plugins.logistics.schema.enums import PickupKind, ServiceLevel
from plugins.logistics.service import pickup, quotes
from server.plugin import Database, Info

MAX_POINTS = 100


@strawberry.type(description="A pickup point's opening hours on one day of the week.")
class OpeningHours:
    day: str = strawberry.field(description="mon, tue, wed, thu, fri, sat or sun.")
    intervals: list[list[str]] = strawberry.field(
        description='Open between these times ([["09:00", "21:00"]]); empty: closed.'
    )


@strawberry.type(
    description="A store or locker where shoppers collect their orders (自提; logistics plugin)."
)
class PickupLocation:
    code: str
    name: str
    kind: PickupKind
    province: str
    city: str
    address: str
    latitude: float
    longitude: float
    hours: list[OpeningHours] = strawberry.field(description="Monday to Sunday.")
    ready_hours: int = strawberry.field(
        description="Hours after the order it is ready, at the earliest (then the first "
        "opening hour)."
    )


def _location(point: PickupPoint) -> PickupLocation:
    hours: Mapping[str, Any] = point.hours or {}
    return PickupLocation(
        code=point.code,
        name=point.name,
        kind=point.kind,
        province=point.province,
        city=point.city,
        address=point.address,
        latitude=point.latitude,
        longitude=point.longitude,
        hours=[
            OpeningHours(
                day=day,
                intervals=[
                    [start.strftime("%H:%M"), "24:00" if end.second else end.strftime("%H:%M")]
                    for start, end in pickup.intervals(hours, weekday)
                ],
            )
            for weekday, day in enumerate(pickup.WEEKDAYS)
        ],
        ready_hours=point.ready_hours,
    )


@strawberry.type(
    description="The delivery promise made when the order was placed, frozen (logistics "
    "plugin): what on-time is measured against."
)
class DeliveryPromise:
    level: ServiceLevel
    carrier_name: str
    service_label: str
    earliest: date = strawberry.field(description="The first day it may arrive.")
    latest: date = strawberry.field(description="The last day it may arrive (included).")
    deliver_by: datetime | None = strawberry.field(
        description="SAME_DAY: delivered by then; PICKUP: ready to collect from then."
    )
    pickup_point: PickupLocation | None = strawberry.field(
        description="Where the order is collected (PICKUP)."
    )


class PromiseByOrderLoader(DataLoader[int, quotes.PromiseView | None]):
    """Order id → its promise: one statement for every order of the request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[quotes.PromiseView | None]:
        found = await self.db.run(quotes.promises_of, list(keys))
        return [found.get(key) for key in keys]


@strawberry.type
class OrderDeliveryPromise:
    """Fields the logistics plugin adds to the core ``Order`` type."""

    @strawberry.field(
        description="The delivery promise of the order's chosen shipping quote, when the "
        "logistics plugin made it (logistics plugin)."
    )
    async def delivery_promise(self, info: Info, root: Any) -> DeliveryPromise | None:
        view = await info.context.loaders.get(PromiseByOrderLoader).load(int(root.id))
        if view is None:
            return None
        p = view.promise
        return DeliveryPromise(
            level=p.level,
            carrier_name=view.carrier_name,
            service_label=view.service_label,
            earliest=p.earliest,
            latest=p.latest,
            deliver_by=p.deliver_by,
            pickup_point=_location(view.pickup_point) if view.pickup_point else None,
        )


@strawberry.type
class PickupQueries:
    @strawberry.field(
        description="The active pickup points (stores and lockers, 自提) of a city and/or "
        "province, by code, with their opening hours (logistics plugin). At most 100."
    )
    async def pickup_points(
        self,
        info: Info,
        city: str | None = None,
        province: str | None = None,
        first: int = 50,
    ) -> list[PickupLocation]:
        limit = max(0, min(first, MAX_POINTS))
        rows = await info.context.db.run(
            pickup.points_in, city=city, province=province, limit=limit
        )
        return [_location(p) for p in rows]


TYPES: list[type[Any]] = [OpeningHours, PickupLocation, DeliveryPromise]
QUERIES: list[type[Any]] = [PickupQueries]
MUTATIONS: list[type[Any]] = []
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {"Order": [OrderDeliveryPromise]}
