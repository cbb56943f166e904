"""The fitted models as serving reads them, whatever holds them.

``SqlStore`` reads the current build's rows (serving, any number of processes);
``MemoryStore`` reads a :class:`Models` fitted in memory (offline evaluation). The hybrid
(``hybrid.rank``) only ever talks to a :class:`ModelStore`, so what is evaluated is what is
served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from plugins.recommendation.models import NeighbourSource


@dataclass(frozen=True)
class Neighbour:
    product_id: int
    score: float  # cosine similarity, 0..1
    source: NeighbourSource


@dataclass(frozen=True)
class Rule:
    antecedent_id: int
    consequent_id: int
    orders: int
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True)
class Cycle:
    product_id: int
    buyers: int
    repeat_buyers: int
    interval_days: float | None
    consumable: bool


@dataclass(frozen=True)
class Popular:
    product_id: int
    score: float


@dataclass(frozen=True)
class ProductFacts:
    """What the hybrid and the business rules need to know of a product."""

    product_id: int
    category_id: int | None
    created_at: datetime


@dataclass
class Models:
    """Everything one rebuild fits; ``rebuild`` writes it, ``MemoryStore`` serves it.

    Lists are ordered best first. ``popular`` is keyed by category id (its subtree), None
    for the whole shop. ``categories`` maps a category to its ancestors (nearest first).
    """

    neighbours: dict[int, list[Neighbour]] = field(default_factory=dict)
    rules: dict[int, list[Rule]] = field(default_factory=dict)
    popular: dict[int | None, list[Popular]] = field(default_factory=dict)
    cycles: dict[int, Cycle] = field(default_factory=dict)
    products: dict[int, ProductFacts] = field(default_factory=dict)
    categories: dict[int, list[int]] = field(default_factory=dict)


class ModelStore(Protocol):
    """Read access to one build. Every method takes many keys and answers in one go (serving
    spends a fixed number of statements per request, whatever the history's length)."""

    async def neighbours(
        self, product_ids: Sequence[int], sources: Sequence[NeighbourSource], k: int
    ) -> Mapping[int, list[Neighbour]]:
        """Per product, its best ``k`` neighbours of each of ``sources``, merged, best first."""
        ...

    async def rules(self, product_ids: Sequence[int], k: int) -> Mapping[int, list[Rule]]:
        """Per antecedent, its best ``k`` rules (lift, then confidence)."""
        ...

    async def popular(
        self, category_ids: Sequence[int | None], k: int
    ) -> Mapping[int | None, list[Popular]]:
        """Per category (None: the whole shop), its ``k`` most popular products."""
        ...

    async def cycles(self, product_ids: Sequence[int]) -> Mapping[int, Cycle]:
        """The repurchase cycles of those of ``product_ids`` that have one."""
        ...

    async def products(self, product_ids: Sequence[int]) -> Mapping[int, ProductFacts]:
        """Facts of the given products (unknown ids are left out)."""
        ...

    async def newest(
        self, category_ids: Sequence[int], since: datetime, k: int
    ) -> Mapping[int, list[int]]:
        """Per category (its subtree), its ``k`` newest products created since ``since``."""
        ...
