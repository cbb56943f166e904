"""Campaigns: promotions under a budget; the budget job stops a campaign when it is spent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import Campaign
from server.models import utcnow
from server.plugin import Job, JobContext

# Run as `promotions.budgets` (the core prefixes the plugin's name).
BUDGET_JOB = "budgets"


def spent_condition() -> Any:
    """A campaign whose discount spend or uses reached its budget."""
    return or_(
        and_(
            col(Campaign.budget_amount).is_not(None),
            col(Campaign.spent_amount) >= col(Campaign.budget_amount),
        ),
        and_(
            col(Campaign.budget_uses).is_not(None),
            col(Campaign.used_count) >= col(Campaign.budget_uses),
        ),
    )


async def mark_exhausted(session: AsyncSession, now: datetime) -> list[int]:
    """Set ``exhausted_at`` on every spent campaign not yet marked; the ids it marked.

    One conditional UPDATE (``… WHERE exhausted_at IS NULL``): of several processes running
    it at once, each campaign is marked by exactly one, and a mark is never moved."""
    result = await session.execute(
        update(Campaign)
        .where(col(Campaign.exhausted_at).is_(None), spent_condition())
        .values(exhausted_at=now)
        .returning(col(Campaign.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(i) for i in result.scalars() if i is not None)


def jobs(config: Any) -> Sequence[Job]:
    async def run(ctx: JobContext) -> None:
        async with ctx.sessions() as session:
            marked = await mark_exhausted(session, utcnow())
            await session.commit()
        ctx.progress(f"{len(marked)} campaigns' budgets spent")

    return [
        Job(
            name=BUDGET_JOB,
            interval_seconds=config.budget_job_interval_minutes * 60,
            run=run,
            description="Marks the campaigns whose budget (discount spend or uses) is spent, "
            "which stops their promotions.",
        )
    ]
