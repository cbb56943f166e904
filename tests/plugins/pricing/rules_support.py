"""Shared arrangements of the rules' and limits' tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import PricingLimit, PricingRule, RuleKind


async def rule(session: AsyncSession, **fields: Any) -> PricingRule:
    """A committed rule (GROUP for everyone unless told)."""
    fields.setdefault("name", f"rule {fields.get('kind', RuleKind.GROUP)}")
    row = PricingRule(**fields)
    session.add(row)
    await session.commit()
    return row


async def limit(session: AsyncSession, **fields: Any) -> PricingLimit:
    row = PricingLimit(**fields)
    session.add(row)
    await session.commit()
    return row


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
