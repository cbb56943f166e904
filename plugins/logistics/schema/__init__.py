"""The logistics plugin over GraphQL, one module per concern: the carrier network staff keep
(``schema.network``: carriers, services, rates, transit times, sites, pickup points), what
shoppers see at checkout and on their orders (``schema.quotes``: promises, pickup points),
tracking and delays (``schema.tracking``), returns, exchanges and repairs
(``schema.returns``), replenishment (``schema.replenishment``) and the report
(``schema.report``)."""

from __future__ import annotations

from typing import Any

from plugins.logistics.schema import network, quotes, replenishment, report, returns, tracking

_PARTS = (network, quotes, tracking, returns, replenishment, report)

TYPES: list[type[Any]] = [t for part in _PARTS for t in part.TYPES]
QUERIES: list[type[Any]] = [q for part in _PARTS for q in part.QUERIES]
MUTATIONS: list[type[Any]] = [m for part in _PARTS for m in part.MUTATIONS]
SUBSCRIPTIONS: list[type[Any]] = [s for part in _PARTS for s in part.SUBSCRIPTIONS]
EXTENSIONS: dict[str, list[type[Any]]] = {}
for _part in _PARTS:
    for _type, _extensions in _part.EXTENSIONS.items():
        EXTENSIONS.setdefault(_type, []).extend(_extensions)
