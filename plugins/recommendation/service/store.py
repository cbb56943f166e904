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
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    BuildStatus,
    NeighbourSource,
    RecommendationBuild,
    RecommendationCycle,
    RecommendationNeighbour,
    RecommendationPopularity,
    RecommendationRule,
)
from server.models import Category, Product


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


def _merge(per_source: Sequence[list[Neighbour]]) -> list[Neighbour]:
    """Several sources' neighbour lists as one, best first (ties by product, then source), so
    that every store merges alike."""
    merged = [n for near in per_source for n in near]
    merged.sort(key=lambda n: (-n.score, n.product_id, n.source.value))
    return merged


class MemoryStore:
    """A :class:`ModelStore` over :class:`Models` fitted in memory (the offline evaluation)."""

    def __init__(self, models: Models) -> None:
        self.models = models

    async def neighbours(
        self, product_ids: Sequence[int], sources: Sequence[NeighbourSource], k: int
    ) -> Mapping[int, list[Neighbour]]:
        wanted = set(sources)
        out: dict[int, list[Neighbour]] = {}
        for pid in dict.fromkeys(product_ids):
            near = self.models.neighbours.get(pid, [])
            per_source = [[n for n in near if n.source is s][:k] for s in wanted]
            merged = _merge(per_source)
            if merged:
                out[pid] = merged
        return out

    async def rules(self, product_ids: Sequence[int], k: int) -> Mapping[int, list[Rule]]:
        return {
            pid: self.models.rules[pid][:k]
            for pid in dict.fromkeys(product_ids)
            if self.models.rules.get(pid)
        }

    async def popular(
        self, category_ids: Sequence[int | None], k: int
    ) -> Mapping[int | None, list[Popular]]:
        return {
            cat: self.models.popular[cat][:k]
            for cat in dict.fromkeys(category_ids)
            if self.models.popular.get(cat)
        }

    async def cycles(self, product_ids: Sequence[int]) -> Mapping[int, Cycle]:
        return {pid: self.models.cycles[pid] for pid in product_ids if pid in self.models.cycles}

    async def products(self, product_ids: Sequence[int]) -> Mapping[int, ProductFacts]:
        facts = self.models.products
        return {pid: facts[pid] for pid in product_ids if pid in facts}

    async def newest(
        self, category_ids: Sequence[int], since: datetime, k: int
    ) -> Mapping[int, list[int]]:
        out: dict[int, list[int]] = {}
        fresh = sorted(
            (f for f in self.models.products.values() if f.created_at >= since),
            key=lambda f: (f.created_at, f.product_id),
            reverse=True,
        )
        for cat in dict.fromkeys(category_ids):
            inside = [
                f.product_id
                for f in fresh
                if f.category_id is not None
                and (f.category_id == cat or cat in self.models.categories.get(f.category_id, ()))
            ][:k]
            if inside:
                out[cat] = inside
        return out


def pk(value: int | None) -> int:
    """A primary key read from a row: never None, whatever the column's Python type says."""
    assert value is not None
    return value


def current_build_id() -> Any:
    """The newest READY build's id, as a scalar subquery (NULL when there is none): what a
    statement of a loader filters its build's rows by, without a statement of its own."""
    return (
        select(col(RecommendationBuild.id))
        .where(col(RecommendationBuild.status) == BuildStatus.READY)
        .order_by(col(RecommendationBuild.id).desc())
        .limit(1)
        .scalar_subquery()
    )


_UNREAD = object()


class SqlStore:
    """A :class:`ModelStore` over the newest READY build's rows.

    The build is found with one statement, the first time a method needs it, and kept for the
    instance's life (a request's), so one answer reads one build even when a rebuild finishes
    meanwhile. Each method is one statement whatever the number of ids. Without any build the
    build's components answer nothing (no statement) while ``products`` and ``newest``, which
    read the catalogue, still answer. Repurchase cycles read once are kept: the business rules
    ask again for those the hybrid read.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._build: Any = _UNREAD
        self._cycles: dict[int, Cycle | None] = {}

    async def build_id(self) -> int | None:
        if self._build is _UNREAD:
            self._build = await self.session.scalar(
                select(col(RecommendationBuild.id))
                .where(col(RecommendationBuild.status) == BuildStatus.READY)
                .order_by(col(RecommendationBuild.id).desc())
                .limit(1)
            )
        build: int | None = self._build
        return build

    async def neighbours(
        self, product_ids: Sequence[int], sources: Sequence[NeighbourSource], k: int
    ) -> Mapping[int, list[Neighbour]]:
        build = await self.build_id()
        ids = sorted(set(product_ids))
        if build is None or not ids or not sources or k <= 0:
            return {}
        t = RecommendationNeighbour
        rows = await self.session.execute(
            select(col(t.product_id), col(t.neighbour_id), col(t.source), col(t.score)).where(
                col(t.build_id) == build,
                col(t.product_id).in_(ids),
                col(t.source).in_([NeighbourSource(s) for s in dict.fromkeys(sources)]),
                col(t.rank) <= k,
            )
        )
        found: dict[int, list[Neighbour]] = {}
        for pid, neighbour, source, score in rows:
            found.setdefault(pid, []).append(
                Neighbour(int(neighbour), float(score), NeighbourSource(source))
            )
        return {pid: _merge([near]) for pid, near in found.items()}

    async def rules(self, product_ids: Sequence[int], k: int) -> Mapping[int, list[Rule]]:
        build = await self.build_id()
        ids = sorted(set(product_ids))
        if build is None or not ids or k <= 0:
            return {}
        t = RecommendationRule
        rows = await self.session.execute(
            select(
                col(t.antecedent_id),
                col(t.consequent_id),
                col(t.orders),
                col(t.support),
                col(t.confidence),
                col(t.lift),
            )
            .where(col(t.build_id) == build, col(t.antecedent_id).in_(ids), col(t.rank) <= k)
            .order_by(col(t.antecedent_id), col(t.rank))
        )
        out: dict[int, list[Rule]] = {}
        for a, c, orders, support, confidence, lift in rows:
            out.setdefault(int(a), []).append(
                Rule(int(a), int(c), int(orders), float(support), float(confidence), float(lift))
            )
        return out

    async def popular(
        self, category_ids: Sequence[int | None], k: int
    ) -> Mapping[int | None, list[Popular]]:
        build = await self.build_id()
        wanted = list(dict.fromkeys(category_ids))
        if build is None or not wanted or k <= 0:
            return {}
        t = RecommendationPopularity
        named = [c for c in wanted if c is not None]
        where: Any = col(t.category_id).in_(named)
        if None in wanted:
            where = or_(where, col(t.category_id).is_(None))
        rows = await self.session.execute(
            select(col(t.category_id), col(t.product_id), col(t.score))
            .where(col(t.build_id) == build, where, col(t.rank) <= k)
            .order_by(col(t.category_id), col(t.rank))
        )
        out: dict[int | None, list[Popular]] = {}
        for cat, pid, score in rows:
            out.setdefault(cat, []).append(Popular(int(pid), float(score)))
        return out

    async def cycles(self, product_ids: Sequence[int]) -> Mapping[int, Cycle]:
        unread = sorted({pid for pid in product_ids if pid not in self._cycles})
        if unread:
            build = await self.build_id()
            if build is not None:
                t = RecommendationCycle
                rows = await self.session.execute(
                    select(
                        col(t.product_id),
                        col(t.buyers),
                        col(t.repeat_buyers),
                        col(t.interval_days),
                        col(t.consumable),
                    ).where(col(t.build_id) == build, col(t.product_id).in_(unread))
                )
                for pid, buyers, repeat, interval, consumable in rows:
                    self._cycles[int(pid)] = Cycle(
                        int(pid),
                        int(buyers),
                        int(repeat),
                        float(interval) if interval is not None else None,
                        bool(consumable),
                    )
            for pid in unread:
                self._cycles.setdefault(pid, None)
        return {pid: cycle for pid in product_ids if (cycle := self._cycles.get(pid)) is not None}

    async def products(self, product_ids: Sequence[int]) -> Mapping[int, ProductFacts]:
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            select(col(Product.id), col(Product.category_id), col(Product.created_at)).where(
                col(Product.id).in_(ids)
            )
        )
        return {pk(pid): ProductFacts(pk(pid), cat, at) for pid, cat, at in rows}

    async def newest(
        self, category_ids: Sequence[int], since: datetime, k: int
    ) -> Mapping[int, list[int]]:
        """Per category (its subtree), its ``k`` newest products on sale created since
        ``since``: one recursive walk of the category tree from every category at once."""
        wanted = sorted(set(category_ids))
        if not wanted or k <= 0:
            return {}
        tree = (
            select(col(Category.id).label("root"), col(Category.id).label("id"))
            .where(col(Category.id).in_(wanted))
            .cte("recommendation_category_tree", recursive=True)
        )
        tree = tree.union_all(
            select(tree.c.root, col(Category.id)).where(col(Category.parent_id) == tree.c.id)
        )
        order = func.row_number().over(
            partition_by=tree.c.root,
            order_by=(col(Product.created_at).desc(), col(Product.id).desc()),
        )
        ranked = (
            select(tree.c.root, col(Product.id).label("product_id"), order.label("n"))
            .join(Product, col(Product.category_id) == tree.c.id)
            .where(col(Product.created_at) >= since, col(Product.is_active))
            .subquery()
        )
        rows = await self.session.execute(
            select(ranked.c.root, ranked.c.product_id)
            .where(ranked.c.n <= k)
            .order_by(ranked.c.root, ranked.c.n)
        )
        out: dict[int, list[int]] = {}
        for root, pid in rows:
            out.setdefault(int(root), []).append(int(pid))
        return out
