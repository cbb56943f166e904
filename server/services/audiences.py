"""Audiences: saved customer rules that operators and plugins target (docs/insights.md,
"Audiences").

An audience is a key, a name, a description and a rule (server.services.audience_rules). Its
members are the customers (accounts not erased) the rule holds for, read with one statement:
on demand (the members and count staff see, a preview of an unsaved rule), and by the insights
recomputation's step ``audiences``, which stores each audience's memberships so that plugins
check them cheaply (:func:`in_audience`, :func:`audience_members`) and records who joined and
who left. Saving an audience computes its memberships at once, in the same transaction.

Memberships are written as a diff — the customers who joined are inserted, those who left
deleted, each with a row of ``audience_change`` — under a lock (PostgreSQL: a transaction-level
advisory lock; SQLite: the write lock of ``BEGIN IMMEDIATE``), so recomputations from several
processes and saves of audiences run one after the other and none records a change twice.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Audience,
    AudienceChange,
    AudienceChangeKind,
    AudienceMember,
    Customer,
    utcnow,
)
from server.models.audiences import AUDIENCE_KEY_MAX
from server.services.audience_conditions import BuildContext
from server.services.audience_params import MAX_ROW_ID
from server.services.audience_rules import Rule, parse_rule, validate_rule
from server.services.errors import Conflict, NotFound, ValidationFailed

STEP = "audiences"
NAME_MAX = 200
DESCRIPTION_MAX = 2000
PREVIEW_MAX = 100
_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CHUNK = 5000

log = logging.getLogger("shopgraph.audiences")


def _int4(data: bytes) -> int:
    value = zlib.crc32(data)
    return value - (1 << 32) if value >= (1 << 31) else value


# pg_advisory_xact_lock(int4, int4) of a computation of memberships: the insights' lock space.
LOCK_KEYS = (_int4(b"shopgraph.insights"), _int4(STEP.encode()))


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


def context(session: AsyncSession, currency: str, as_of: datetime | None = None) -> BuildContext:
    """What building rules' SQL in ``session`` needs, evaluated at ``as_of`` (now)."""
    moment = as_of or utcnow()
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return BuildContext(as_of=moment, currency=currency, dialect=dialect_of(session))


# --- definitions ------------------------------------------------------------------------------


def check_key(value: str) -> str:
    key = value.strip().lower()
    if not key or len(key) > AUDIENCE_KEY_MAX or not _KEY.fullmatch(key):
        raise ValidationFailed(
            f"key {value!r} must be 1 to {AUDIENCE_KEY_MAX} lower-case letters, digits and "
            "single hyphens between them (e.g. 'lapsed-vip')",
            field="key",
        )
    return key


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > NAME_MAX:
        raise ValidationFailed(f"a name has 1 to {NAME_MAX} characters", field="name")
    return name


def _description(value: str) -> str:
    text = value.strip()
    if len(text) > DESCRIPTION_MAX:
        raise ValidationFailed(
            f"a description has at most {DESCRIPTION_MAX} characters", field="description"
        )
    return text


async def find_by_key(session: AsyncSession, key: str) -> Audience | None:
    return (
        await session.execute(select(Audience).where(col(Audience.key) == key.strip().lower()))
    ).scalar_one_or_none()


async def get_by_key(session: AsyncSession, key: str) -> Audience:
    audience = await find_by_key(session, key)
    if audience is None:
        raise NotFound("Audience", key, field="key")
    return audience


def audiences_query() -> Select[Any]:
    """Every audience, for a connection."""
    return select(Audience)


async def create_audience(
    session: AsyncSession,
    *,
    key: str,
    name: str,
    rule: Any,
    currency: str,
    description: str = "",
) -> Audience:
    """A new audience, its memberships computed at once. Bad input is a ValidationFailed (an
    InvalidRule for the rule) and writes nothing; a key in use is a Conflict."""
    checked_key = check_key(key)
    title = _name(name)
    text = _description(description)
    checked = await validate_rule(session, rule, currency=currency)
    await lock(session)
    taken = await session.scalar(select(col(Audience.id)).where(col(Audience.key) == checked_key))
    if taken is not None:
        raise Conflict(f"an audience with key {checked_key!r} exists", field="key")
    audience = Audience(key=checked_key, name=title, description=text, rule=checked.data)
    session.add(audience)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"an audience with key {checked_key!r} exists", field="key") from exc
    await refresh(session, audience, checked, context(session, currency))
    return audience


async def update_audience(
    session: AsyncSession,
    key: str,
    *,
    currency: str,
    name: str | None = None,
    description: str | None = None,
    rule: Any = None,
) -> Audience:
    """Change what is given; a new rule recomputes the memberships at once."""
    title = _name(name) if name is not None else None
    text = _description(description) if description is not None else None
    checked = await validate_rule(session, rule, currency=currency) if rule is not None else None
    await lock(session)
    audience = await get_by_key(session, key)
    if title is not None:
        audience.name = title
    if text is not None:
        audience.description = text
    if checked is not None:
        audience.rule = checked.data
    audience.updated_at = utcnow()
    await session.flush()
    if checked is not None:
        await refresh(session, audience, checked, context(session, currency))
    return audience


async def delete_audience(session: AsyncSession, key: str) -> Audience:
    """Delete the audience, its memberships and their history."""
    await lock(session)
    audience = await get_by_key(session, key)
    await session.delete(audience)
    await session.flush()
    return audience


# --- members, on demand -------------------------------------------------------------------------


def rule_of(audience: Audience, currency: str) -> Rule:
    """A saved audience's rule (checked when it was saved)."""
    return parse_rule(audience.rule, currency=currency)


def members_condition(rule: Rule, ctx: BuildContext) -> ColumnElement[bool]:
    """The rule over ``customer``, erased accounts left out."""
    return col(Customer.is_active) & rule.where(ctx)


def members_query(rule: Rule, ctx: BuildContext) -> Select[Any]:
    """The customers the rule holds for, for a connection (one statement a page)."""
    return select(Customer).where(members_condition(rule, ctx))


def count_query(rules: Sequence[Rule], ctx: BuildContext) -> Select[Any]:
    """One row: the number of members of each rule (one statement for any number of rules)."""
    return select(
        *(
            select(func.count(col(Customer.id)))
            .where(members_condition(rule, ctx))
            .scalar_subquery()
            .label(f"count_{i}")
            for i, rule in enumerate(rules)
        )
    )


async def count_members(
    session: AsyncSession, rules: Sequence[Rule], ctx: BuildContext
) -> list[int]:
    if not rules:
        return []
    row = (await session.execute(count_query(rules, ctx))).one()
    return [int(n) for n in row]


def member_pages_query(
    rules: Sequence[tuple[int, Rule]],
    ctx: BuildContext,
    *,
    after: int | None,
    before: int | None,
    limit: int,
    backwards: bool,
) -> Select[Any]:
    """A page of members of each audience — ``limit`` customers in id order, after the id
    ``after`` and before ``before``, from the end when ``backwards`` — as rows (customer,
    audience id): one statement for any number of audiences (a UNION ALL of their pages)."""
    order = col(Customer.id).desc() if backwards else col(Customer.id).asc()
    pages = []
    for audience_id, rule in rules:
        tests = [members_condition(rule, ctx)]
        if after is not None:
            tests.append(col(Customer.id) > after)
        if before is not None:
            tests.append(col(Customer.id) < before)
        page: Select[Any, Any] = (
            select(
                col(Customer.id).label("customer_id"),
                literal(audience_id).label("audience_id"),
            )
            .where(*tests)
            .order_by(order)
            .limit(limit)
        )
        pages.append(select(page.subquery()))
    found = (pages[0] if len(pages) == 1 else union_all(*pages)).subquery("pages")
    return select(Customer, found.c.audience_id).join(found, found.c.customer_id == Customer.id)


@dataclass(frozen=True)
class Preview:
    """An unsaved rule's members now: how many, and the first few (by customer id)."""

    rule: Rule
    count: int
    members: list[Customer]


async def preview(
    session: AsyncSession,
    rule: Any,
    *,
    currency: str,
    first: int,
    as_of: datetime | None = None,
) -> Preview:
    """Check ``rule`` and count its members as of ``as_of`` (now), with the first ``first`` (0
    to 100); nothing is written."""
    if not 0 <= first <= PREVIEW_MAX:
        raise ValidationFailed(f"first must be between 0 and {PREVIEW_MAX}", field="first")
    checked = await validate_rule(session, rule, currency=currency)
    ctx = context(session, currency, as_of)
    [count] = await count_members(session, [checked], ctx)
    members: list[Customer] = []
    if first:
        stmt = members_query(checked, ctx).order_by(col(Customer.id)).limit(first)
        members = list((await session.execute(stmt)).scalars())
    return Preview(rule=checked, count=count, members=members)


# --- stored memberships: the recomputation ------------------------------------------------------


@dataclass(frozen=True)
class Refresh:
    """One audience's memberships recomputed: its members now, who joined, who left."""

    members: int
    joined: int
    left: int


@dataclass(frozen=True)
class AudiencesRebuild:
    """What the step ``audiences`` did."""

    as_of: datetime
    audiences: int
    members: int
    joined: int
    left: int

    def summary(self) -> str:
        return (
            f"audiences: {self.audiences} audiences, {self.members} memberships, "
            f"{self.joined} joined, {self.left} left"
        )


async def lock(session: AsyncSession) -> None:
    """Queue behind any other computation of memberships (and save of an audience) until this
    transaction ends. On SQLite the write transaction holds the database's lock already."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(*LOCK_KEYS)))


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


async def refresh(
    session: AsyncSession, audience: Audience, rule: Rule, ctx: BuildContext
) -> Refresh:
    """Store the audience's members as of ``ctx.as_of``: insert those who joined, delete those
    who left, record each move. The caller holds :func:`lock`."""
    assert audience.id is not None
    audience_id = audience.id
    matching = await session.execute(select(col(Customer.id)).where(members_condition(rule, ctx)))
    now = {customer_id for customer_id in matching.scalars() if customer_id is not None}
    before: set[int] = set(
        (
            await session.execute(
                select(col(AudienceMember.customer_id)).where(
                    col(AudienceMember.audience_id) == audience_id
                )
            )
        ).scalars()
    )
    joined = sorted(now - before)
    left = sorted(before - now)
    connection = await session.connection()
    for chunk in _chunks(joined):
        await connection.execute(
            insert(AudienceMember),
            [{"audience_id": audience_id, "customer_id": c, "since": ctx.as_of} for c in chunk],
        )
    for chunk in _chunks(left):
        await connection.execute(
            delete(AudienceMember).where(
                col(AudienceMember.audience_id) == audience_id,
                col(AudienceMember.customer_id).in_(chunk),
            )
        )
    moves = [(c, AudienceChangeKind.JOINED) for c in joined] + [
        (c, AudienceChangeKind.LEFT) for c in left
    ]
    for chunk in _chunks(moves):
        await connection.execute(
            insert(AudienceChange),
            [
                {"audience_id": audience_id, "customer_id": c, "kind": kind, "at": ctx.as_of}
                for c, kind in chunk
            ],
        )
    audience.computed_at = ctx.as_of
    await session.flush()
    return Refresh(members=len(now), joined=len(joined), left=len(left))


async def rebuild(
    session: AsyncSession, *, currency: str, as_of: datetime | None = None
) -> AudiencesRebuild:
    """Recompute every audience's memberships as of ``as_of`` (now) in the session's write
    transaction (the caller commits). Runs whatever changed: rules read time windows, tags and
    addresses that no cheap fingerprint covers, and an unchanged audience writes nothing."""
    await lock(session)
    ctx = context(session, currency, as_of)
    # Row locks (PostgreSQL): an audience saved or deleted meanwhile waits for this run.
    stmt = select(Audience).order_by(col(Audience.id)).with_for_update()
    audiences = list((await session.execute(stmt)).scalars())
    members = joined = left = 0
    for audience in audiences:
        done = await refresh(session, audience, rule_of(audience, currency), ctx)
        members += done.members
        joined += done.joined
        left += done.left
    return AudiencesRebuild(
        as_of=ctx.as_of, audiences=len(audiences), members=members, joined=joined, left=left
    )


# --- stored memberships: reading ------------------------------------------------------------------

_missing_reported: set[str] = set()


def _report_missing(key: str) -> None:
    if key not in _missing_reported:
        _missing_reported.add(key)
        log.warning("audience %r does not exist: nobody is in it", key)


async def in_audience(session: AsyncSession, audience_key: str, customer_id: int) -> bool:
    """Whether the customer is in the audience, from its stored memberships (one statement).
    An audience that does not exist answers False (and is logged, once per key)."""
    key = audience_key.strip().lower()
    member: ColumnElement[bool] = false()
    if 1 <= customer_id <= MAX_ROW_ID:  # an id no row can have is in no audience
        member = (
            select(col(AudienceMember.customer_id))
            .where(
                col(AudienceMember.audience_id) == col(Audience.id),
                col(AudienceMember.customer_id) == customer_id,
            )
            .exists()
        )
    row = (
        await session.execute(select(col(Audience.id), member).where(col(Audience.key) == key))
    ).first()
    if row is None:
        _report_missing(key)
        return False
    return bool(row[1])


async def audience_members(
    session: AsyncSession, audience_key: str, *, batch: int = 1000
) -> AsyncIterator[int]:
    """The ids of the audience's customers, from its stored memberships, in ascending order,
    read ``batch`` at a time (one statement per batch): as large an audience as you like. An
    audience that does not exist yields nobody (and is logged, once per key)."""
    key = audience_key.strip().lower()
    audience_id = await session.scalar(select(col(Audience.id)).where(col(Audience.key) == key))
    if audience_id is None:
        _report_missing(key)
        return
    after = 0
    while True:
        ids = list(
            (
                await session.execute(
                    select(col(AudienceMember.customer_id))
                    .where(
                        col(AudienceMember.audience_id) == audience_id,
                        col(AudienceMember.customer_id) > after,
                    )
                    .order_by(col(AudienceMember.customer_id))
                    .limit(batch)
                )
            ).scalars()
        )
        for customer_id in ids:
            yield customer_id
        if len(ids) < batch:
            return
        after = ids[-1]


async def membership_counts(session: AsyncSession, audience_ids: Sequence[int]) -> dict[int, int]:
    """The number of stored members of each audience (one grouped COUNT)."""
    stmt = (
        select(col(AudienceMember.audience_id), func.count())
        .where(col(AudienceMember.audience_id).in_(set(audience_ids)))
        .group_by(col(AudienceMember.audience_id))
    )
    return {int(a): int(n) for a, n in (await session.execute(stmt)).all()}


def changes_query(
    audience_id: int, *, since: datetime | None = None, kind: AudienceChangeKind | None = None
) -> Select[Any]:
    """The audience's recorded joins and leaves (at or after ``since``), for a connection."""
    stmt = select(AudienceChange).where(col(AudienceChange.audience_id) == audience_id)
    if since is not None:
        stmt = stmt.where(col(AudienceChange.at) >= since)
    if kind is not None:
        stmt = stmt.where(col(AudienceChange.kind) == kind)
    return stmt


async def erase(session: AsyncSession, customer_id: int) -> None:
    """Forget the customer's memberships and their history (their account is being erased)."""
    await session.execute(
        delete(AudienceMember).where(col(AudienceMember.customer_id) == customer_id)
    )
    await session.execute(
        delete(AudienceChange).where(col(AudienceChange.customer_id) == customer_id)
    )
