"""The pricing plugin over GraphQL, one module per concern: rules and limits
(``schema.rules``), history, prior price and price protection (``schema.history``), elasticity
and dynamic pricing (``schema.dynamic``), competitors and alerts (``schema.competitors``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugins.pricing.schema import competitors, dynamic, history, rules

_PARTS = (rules, history, dynamic, competitors)

QUERIES: list[type[Any]] = [q for part in _PARTS for q in part.QUERIES]
MUTATIONS: list[type[Any]] = [m for part in _PARTS for m in part.MUTATIONS]
EXTENSIONS: dict[str, list[type[Any]]] = {}
for _part in _PARTS:
    for _type, _extensions in _part.EXTENSIONS.items():
        EXTENSIONS.setdefault(_type, []).extend(_extensions)
CACHEABLE: dict[str, Sequence[str]] = {}
for _part in _PARTS:
    CACHEABLE.update(_part.CACHEABLE)
