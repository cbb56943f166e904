"""Synonym groups: terms that mean the same to a shopper (手机 = mobile phone = cellphone).

A search term in a group matches any term of it (server.services.search reads the groups at
each query: a change counts from the next query on, with nothing to rebuild). Terms are
stored normalised as search reads queries: lower-case, their words (letters and digits, a run
of Chinese characters as one) separated by one space, so "Mobile-Phone" is "mobile phone".

Rules (each a typed error that changes nothing):
- a group has 2 to MAX_GROUP_TERMS different terms (terms equal once normalised count once);
- a term has letters or digits, at most SYNONYM_TERM_MAX characters and
  search.MAX_SYNONYM_WORDS words;
- a term belongs to one group: a term of another group is a Conflict (merge the groups
  instead, so that what a term stands for is never ambiguous).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Synonym, SynonymGroup, utcnow
from server.models.search import SYNONYM_TERM_MAX
from server.services import outbox, search
from server.services.errors import Conflict, NotFound, ValidationFailed

# Committed with every change of a group: searches and suggestions answered before it are stale.
SYNONYMS_CHANGED = "synonyms_changed"
MAX_GROUP_TERMS = 20


@dataclass(frozen=True)
class Group:
    """A synonym group with its terms, in the order given."""

    group: SynonymGroup
    terms: tuple[str, ...]


def normalize_terms(terms: Sequence[str]) -> list[str]:
    """The group's terms normalised, each once, in order; bad input is a ValidationFailed."""
    if len(terms) > MAX_GROUP_TERMS:
        raise ValidationFailed(
            f"a synonym group has at most {MAX_GROUP_TERMS} terms", field="terms"
        )
    found: list[str] = []
    for raw in terms:
        term = search.normalize_term(raw)
        if not term:
            raise ValidationFailed(f"{raw!r} has no letters or digits", field="terms")
        if len(term) > SYNONYM_TERM_MAX:
            raise ValidationFailed(
                f"{term[:20]!r}… is longer than {SYNONYM_TERM_MAX} characters", field="terms"
            )
        if len(term.split()) > search.MAX_SYNONYM_WORDS:
            raise ValidationFailed(
                f"{term!r} has more than {search.MAX_SYNONYM_WORDS} words", field="terms"
            )
        if term not in found:
            found.append(term)
    if len(found) < 2:
        raise ValidationFailed("a synonym group needs at least two different terms", field="terms")
    return found


async def _require_free(session: AsyncSession, terms: Sequence[str], own: int | None) -> None:
    stmt = select(col(Synonym.term)).where(col(Synonym.term).in_(list(terms)))
    if own is not None:
        stmt = stmt.where(col(Synonym.group_id) != own)
    with session.no_autoflush:
        taken = list((await session.execute(stmt.order_by(col(Synonym.term)))).scalars())
    if taken:
        raise Conflict(f"already in another synonym group: {', '.join(taken)}", field="terms")


async def _write_terms(session: AsyncSession, group: SynonymGroup, terms: Sequence[str]) -> None:
    assert group.id is not None
    await session.execute(delete(Synonym).where(col(Synonym.group_id) == group.id))
    session.add_all(
        Synonym(group_id=group.id, term=term, position=i) for i, term in enumerate(terms)
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent writer put one of the terms in another group first.
        raise Conflict("a term is already in another synonym group", field="terms") from exc
    await outbox.emit(session, SYNONYMS_CHANGED, {"group_id": group.id})


async def get_group(session: AsyncSession, group_id: int) -> Group:
    group = await session.get(SynonymGroup, group_id)
    if group is None:
        raise NotFound("SynonymGroup", group_id, field="id")
    return Group(group, tuple(await _terms(session, group_id)))


async def _terms(session: AsyncSession, group_id: int) -> list[str]:
    rows = await session.execute(
        select(col(Synonym.term))
        .where(col(Synonym.group_id) == group_id)
        .order_by(col(Synonym.position), col(Synonym.id))
    )
    return list(rows.scalars())


async def create_group(session: AsyncSession, terms: Sequence[str]) -> Group:
    normal = normalize_terms(terms)
    await _require_free(session, normal, None)
    group = SynonymGroup()
    session.add(group)
    await session.flush()
    await _write_terms(session, group, normal)
    return Group(group, tuple(normal))


async def update_group(session: AsyncSession, group_id: int, terms: Sequence[str]) -> Group:
    """Replace the terms of a group."""
    normal = normalize_terms(terms)
    group = (await get_group(session, group_id)).group
    await _require_free(session, normal, group_id)
    group.updated_at = utcnow()
    await _write_terms(session, group, normal)
    return Group(group, tuple(normal))


async def delete_group(session: AsyncSession, group_id: int) -> Group:
    found = await get_group(session, group_id)
    await session.execute(delete(Synonym).where(col(Synonym.group_id) == group_id))
    await session.delete(found.group)
    await session.flush()
    await outbox.emit(session, SYNONYMS_CHANGED, {"group_id": group_id})
    return found


def groups_query(term: str | None = None) -> Select[SynonymGroup]:
    """Every group, or the group holding ``term`` (normalised first), for a connection."""
    stmt = select(SynonymGroup)
    if term is not None:
        holding = select(col(Synonym.group_id)).where(
            col(Synonym.term) == search.normalize_term(term)
        )
        stmt = stmt.where(col(SynonymGroup.id).in_(holding))
    return stmt
