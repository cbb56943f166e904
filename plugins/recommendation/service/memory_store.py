"""A :class:`ModelStore` over a :class:`Models` fitted in memory (the offline evaluation):
every read is a dictionary lookup."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from plugins.recommendation.models import NeighbourSource
from plugins.recommendation.service.store import (
    Cycle,
    Models,
    Neighbour,
    Popular,
    ProductFacts,
    Rule,
)


class MemoryStore:
    def __init__(self, models: Models) -> None:
        self.models = models
        # Per category, the products of its subtree, newest first (for ``newest``).
        subtree: dict[int, list[ProductFacts]] = defaultdict(list)
        for facts in models.products.values():
            if facts.category_id is None:
                continue
            for cat in (facts.category_id, *models.categories.get(facts.category_id, ())):
                subtree[cat].append(facts)
        for members in subtree.values():
            members.sort(key=lambda f: (f.created_at, f.product_id), reverse=True)
        self._subtree = dict(subtree)

    async def neighbours(
        self, product_ids: Sequence[int], sources: Sequence[NeighbourSource], k: int
    ) -> Mapping[int, list[Neighbour]]:
        out: dict[int, list[Neighbour]] = {}
        for pid in product_ids:
            near = self.models.neighbours.get(pid)
            if not near:
                continue
            merged = [n for source in sources for n in [m for m in near if m.source is source][:k]]
            merged.sort(key=lambda n: -n.score)
            out[pid] = merged
        return out

    async def rules(self, product_ids: Sequence[int], k: int) -> Mapping[int, list[Rule]]:
        return {
            pid: self.models.rules[pid][:k] for pid in product_ids if self.models.rules.get(pid)
        }

    async def popular(
        self, category_ids: Sequence[int | None], k: int
    ) -> Mapping[int | None, list[Popular]]:
        return {
            cat: self.models.popular[cat][:k]
            for cat in category_ids
            if self.models.popular.get(cat)
        }

    async def cycles(self, product_ids: Sequence[int]) -> Mapping[int, Cycle]:
        return {pid: self.models.cycles[pid] for pid in product_ids if pid in self.models.cycles}

    async def products(self, product_ids: Sequence[int]) -> Mapping[int, ProductFacts]:
        return {
            pid: self.models.products[pid] for pid in product_ids if pid in self.models.products
        }

    async def newest(
        self, category_ids: Sequence[int], since: datetime, k: int
    ) -> Mapping[int, list[int]]:
        out: dict[int, list[int]] = {}
        for cat in category_ids:
            fresh = [f.product_id for f in self._subtree.get(cat, ()) if f.created_at >= since]
            if fresh:
                out[cat] = fresh[:k]
        return out
