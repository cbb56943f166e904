"""The operator's say (pins and exclusions per context) and the customer's (turning
personalised recommendations off)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    MerchandisingKind,
    RecommendationContext,
    RecommendationMerchandising,
    RecommendationOptOut,
)
from server.models import Product, utcnow
from server.plugin import Conflict, NotFound, ValidationFailed

MAX_POSITION = 100  # a pin's slot lies on a page of at most 100
NOTE_MAX = 500


def _same_context(context: RecommendationContext | None) -> Any:
    c = col(RecommendationMerchandising.context)
    return c.is_(None) if context is None else c == context.value


async def _rule(
    session: AsyncSession,
    product_id: int,
    context: RecommendationContext | None,
    kind: MerchandisingKind,
) -> RecommendationMerchandising | None:
    t = RecommendationMerchandising
    found: RecommendationMerchandising | None = await session.scalar(
        select(t).where(
            col(t.product_id) == product_id, _same_context(context), col(t.kind) == kind
        )
    )
    return found


async def _check(session: AsyncSession, product_id: int, note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ValidationFailed(f"a note has at most {NOTE_MAX} characters", field="note")
    if await session.get(Product, product_id) is None:
        raise NotFound("Product", product_id, field="productId")
    return note


async def pin(
    session: AsyncSession,
    product_id: int,
    context: RecommendationContext | None,
    position: int,
    note: str = "",
) -> RecommendationMerchandising:
    """Show ``product_id`` at ``position`` (1-based) in ``context``'s answers (None: every
    context). Pinning it again moves it. A product excluded from the same context is a
    Conflict: remove the exclusion first."""
    if not 1 <= position <= MAX_POSITION:
        raise ValidationFailed(f"position must be between 1 and {MAX_POSITION}", field="position")
    note = await _check(session, product_id, note)
    if await _rule(session, product_id, context, MerchandisingKind.EXCLUDE) is not None:
        raise Conflict("the product is excluded from these recommendations: remove that first")
    row = await _rule(session, product_id, context, MerchandisingKind.PIN)
    if row is None:
        row = RecommendationMerchandising(
            context=context, product_id=product_id, kind=MerchandisingKind.PIN
        )
        session.add(row)
    row.position = position
    row.note = note
    await session.flush()
    return row


async def exclude(
    session: AsyncSession,
    product_id: int,
    context: RecommendationContext | None,
    note: str = "",
) -> RecommendationMerchandising:
    """Never show ``product_id`` in ``context``'s answers (None: in any). Excluding it again
    changes only the note. A product pinned in the same context is a Conflict."""
    note = await _check(session, product_id, note)
    if await _rule(session, product_id, context, MerchandisingKind.PIN) is not None:
        raise Conflict("the product is pinned in these recommendations: remove the pin first")
    row = await _rule(session, product_id, context, MerchandisingKind.EXCLUDE)
    if row is None:
        row = RecommendationMerchandising(
            context=context, product_id=product_id, kind=MerchandisingKind.EXCLUDE
        )
        session.add(row)
    row.note = note
    await session.flush()
    return row


async def remove_rule(session: AsyncSession, rule_id: int) -> int:
    """Remove a pin or exclusion; one that is not there is NotFound."""
    t = RecommendationMerchandising
    result = await session.execute(delete(t).where(col(t.id) == rule_id).returning(col(t.id)))
    if result.first() is None:
        raise NotFound("MerchandisingRule", rule_id, field="id")
    return rule_id


def rules_query(
    context: RecommendationContext | None = None, kind: MerchandisingKind | None = None
) -> Select[Any]:
    """The operator's rules, narrowed to one context (its own rules and those of every
    context) and one kind."""
    t = RecommendationMerchandising
    stmt = select(t)
    if context is not None:
        stmt = stmt.where(_same_context(context) | col(t.context).is_(None))
    if kind is not None:
        stmt = stmt.where(col(t.kind) == kind)
    return stmt


async def set_personalisation(session: AsyncSession, customer_id: int, enabled: bool) -> bool:
    """Turn the customer's personalised recommendations on or off; returns ``enabled``.
    Off, they get the shop's non-personal answers (popular, new, the page's own)."""
    t = RecommendationOptOut
    if enabled:
        await session.execute(delete(t).where(col(t.customer_id) == customer_id))
        return True
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    await session.execute(
        insert(t)
        .values(customer_id=customer_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )
    return False


async def opted_out_among(session: AsyncSession, customer_ids: list[int]) -> set[int]:
    """Those of ``customer_ids`` who turned personalised recommendations off."""
    t = RecommendationOptOut
    rows = await session.scalars(
        select(col(t.customer_id)).where(col(t.customer_id).in_(sorted(set(customer_ids))))
    )
    return set(rows)
