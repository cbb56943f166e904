"""Builds written straight into the plugin's tables, so that a test knows every neighbour,
rule, popularity and cycle an answer is made of."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import (
    BuildStatus,
    RecommendationBuild,
    RecommendationCycle,
    RecommendationNeighbour,
    RecommendationPopularity,
    RecommendationRule,
)
from plugins.recommendation.service.store import Models
from server.models import utcnow


async def write_build(
    session: AsyncSession, models: Models, status: BuildStatus = BuildStatus.READY
) -> int:
    """``models`` as one build's rows (ranks from the lists' order, per product and source),
    committed."""
    build = RecommendationBuild(status=status, finished_at=utcnow())
    session.add(build)
    await session.flush()
    assert build.id is not None
    for pid, near in models.neighbours.items():
        per_source: dict[str, int] = {}
        for n in near:
            per_source[n.source.value] = per_source.get(n.source.value, 0) + 1
            session.add(
                RecommendationNeighbour(
                    build_id=build.id,
                    product_id=pid,
                    neighbour_id=n.product_id,
                    source=n.source,
                    score=n.score,
                    rank=per_source[n.source.value],
                )
            )
    for pid, rules in models.rules.items():
        for rank, r in enumerate(rules, 1):
            session.add(
                RecommendationRule(
                    build_id=build.id,
                    antecedent_id=pid,
                    consequent_id=r.consequent_id,
                    orders=r.orders,
                    support=r.support,
                    confidence=r.confidence,
                    lift=r.lift,
                    rank=rank,
                )
            )
    for cat, popular in models.popular.items():
        for rank, p in enumerate(popular, 1):
            session.add(
                RecommendationPopularity(
                    build_id=build.id,
                    category_id=cat,
                    product_id=p.product_id,
                    score=p.score,
                    rank=rank,
                )
            )
    for cycle in models.cycles.values():
        session.add(
            RecommendationCycle(
                build_id=build.id,
                product_id=cycle.product_id,
                buyers=cycle.buyers,
                repeat_buyers=cycle.repeat_buyers,
                interval_days=cycle.interval_days,
                consumable=cycle.consumable,
            )
        )
    await session.commit()
    return build.id
