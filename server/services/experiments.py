"""A/B experiments: definitions, their life (DRAFT → RUNNING → STOPPED), which variant a
visitor gets, and the record of who was shown one.

Assignment needs no row: a visitor's variant is a function of the experiment's key and the
visitor alone — sha256 of ``"<key>:<visitor>"``, its first 8 bytes read as a number in
[0, 1), placed on the variants' cumulative weights — so it is the same on every call, in every
process, before and after restarts. A visitor is ``"customer:<id>"`` for a signed-in customer
or ``"session:<id>"`` for an anonymous one followed by a client-chosen session id.

An exposure is the first time a visitor was shown a variant of a running experiment: one row
per experiment and visitor (a unique constraint), written with an insert that does nothing
when the row is there, so concurrent first exposures of one visitor leave exactly one row.
Results count from it (server.services.experiment_results).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import (
    Customer,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    utcnow,
)
from server.models.experiments import EXPERIMENT_KEY_MAX, VARIANT_KEY_MAX
from server.services.errors import Conflict, InvalidTransition, NotFound, ValidationFailed

MIN_VARIANTS = 2
MAX_VARIANTS = 5
MAX_WEIGHT = 10_000
NAME_MAX = 200
HYPOTHESIS_MAX = 2000
# The normal approximations behind the results need a few dozen visitors per arm at least.
MIN_SAMPLE_FLOOR = 30
MIN_SAMPLE_CEILING = 10_000_000
SESSION_ID_MAX = 64

_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CUSTOMER_VISITOR = re.compile(r"customer:([1-9][0-9]{0,9})")
MAX_ROW_ID = 2**31 - 1  # ids are INTEGER columns
_SESSION_VISITOR = re.compile(r"session:(\S.{0,63})", re.DOTALL)
# 2**64: the first 8 bytes of the digest, as an integer, over this are uniform in [0, 1).
_SPAN = float(1 << 64)


@dataclass(frozen=True)
class Variant:
    key: str
    weight: int


# ---- assignment ----------------------------------------------------------------------------


def bucket(experiment_key: str, visitor: str) -> float:
    """Where ``visitor`` falls in [0, 1) for ``experiment_key``: uniform over visitors, the
    same for a given pair everywhere and always."""
    digest = hashlib.sha256(f"{experiment_key}:{visitor}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


def assign(experiment_key: str, variants: Sequence[Variant], visitor: str) -> str:
    """The variant of ``visitor``: variant i takes the share weight_i / Σ weights of [0, 1)."""
    point = bucket(experiment_key, visitor) * sum(v.weight for v in variants)
    reached = 0
    for variant in variants:
        reached += variant.weight
        if point < reached:
            return variant.key
    return variants[-1].key  # unreachable: point < Σ weights


def variants_of(experiment: Experiment) -> list[Variant]:
    return [Variant(str(v["key"]), int(v["weight"])) for v in experiment.variants]


def customer_visitor(customer_id: int) -> str:
    return f"customer:{customer_id}"


def session_visitor(session_id: str) -> str:
    """The visitor of an anonymous shopper's session id (trimmed; 1 to 64 characters)."""
    sid = session_id.strip()
    if not sid:
        raise ValidationFailed("an anonymous visitor needs a sessionId", field="sessionId")
    if len(sid) > SESSION_ID_MAX:
        raise ValidationFailed(
            f"sessionId must have at most {SESSION_ID_MAX} characters", field="sessionId"
        )
    return f"session:{sid}"


def parse_visitor(visitor: str) -> int | None:
    """The customer id of a ``customer:<id>`` visitor, None for a ``session:<id>`` one;
    anything else is a ValidationFailed."""
    customer = _CUSTOMER_VISITOR.fullmatch(visitor)
    if customer is not None and int(customer.group(1)) <= MAX_ROW_ID:
        return int(customer.group(1))
    if _SESSION_VISITOR.fullmatch(visitor) is not None:
        return None
    raise ValidationFailed(
        "a visitor is 'customer:<id>' or 'session:<session id of 1 to 64 characters>'",
        field="visitor",
    )


async def variant_for(session: AsyncSession, experiment_key: str, visitor: str) -> str | None:
    """The variant ``visitor`` sees in the experiment ``experiment_key``, and the visitor's
    first exposure recorded in ``session``'s transaction (nothing when it is there already);
    None, recording nothing, when no such experiment is running. A malformed visitor is a
    ValidationFailed, a customer that does not exist a NotFound."""
    customer_id = parse_visitor(visitor)
    experiment = await find_by_key(session, experiment_key)
    if experiment is None or experiment.status is not ExperimentStatus.RUNNING:
        return None
    assert experiment.id is not None
    if customer_id is not None and await session.get(Customer, customer_id) is None:
        raise NotFound("Customer", customer_id, field="visitor")
    variant = assign(experiment.key, variants_of(experiment), visitor)
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    await session.execute(
        insert(ExperimentExposure)
        .values(
            experiment_id=experiment.id,
            visitor=visitor,
            customer_id=customer_id,
            variant=variant,
            exposed_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["experiment_id", "visitor"])
    )
    return variant


# ---- definitions ---------------------------------------------------------------------------


def _slug(value: str, what: str, field: str, longest: int) -> str:
    key = value.strip().lower()
    if not key or len(key) > longest or not _KEY.fullmatch(key):
        raise ValidationFailed(
            f"{what} {value!r} must be 1 to {longest} lower-case letters, digits and single "
            "hyphens between them (e.g. 'checkout-button')",
            field=field,
        )
    return key


def check_variants(variants: Sequence[Variant]) -> list[Variant]:
    """2 to 5 variants with different keys and weights from 1 to 10,000; the first is the
    control. Bad ones are a ValidationFailed on ``variants``."""
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise ValidationFailed(
            f"an experiment has {MIN_VARIANTS} to {MAX_VARIANTS} variants, not {len(variants)}",
            field="variants",
        )
    checked: list[Variant] = []
    for variant in variants:
        key = _slug(variant.key, "variant key", "variants", VARIANT_KEY_MAX)
        if any(v.key == key for v in checked):
            raise ValidationFailed(f"variant {key!r} is given twice", field="variants")
        if not 1 <= variant.weight <= MAX_WEIGHT:
            raise ValidationFailed(
                f"variant {key!r} has weight {variant.weight}; a weight is a whole number "
                f"from 1 to {MAX_WEIGHT}",
                field="variants",
            )
        checked.append(Variant(key, variant.weight))
    return checked


async def create_experiment(
    session: AsyncSession,
    *,
    key: str,
    name: str,
    hypothesis: str,
    variants: Sequence[Variant],
    primary_metric: ExperimentMetric,
    min_sample_size: int,
) -> Experiment:
    """A DRAFT experiment. Bad input is a ValidationFailed naming its field; a key another
    experiment has is a Conflict."""
    key = _slug(key, "key", "key", EXPERIMENT_KEY_MAX)
    title = name.strip()
    if not title or len(title) > NAME_MAX:
        raise ValidationFailed(f"a name has 1 to {NAME_MAX} characters", field="name")
    text = hypothesis.strip()
    if len(text) > HYPOTHESIS_MAX:
        raise ValidationFailed(
            f"a hypothesis has at most {HYPOTHESIS_MAX} characters", field="hypothesis"
        )
    checked = check_variants(variants)
    if not MIN_SAMPLE_FLOOR <= min_sample_size <= MIN_SAMPLE_CEILING:
        raise ValidationFailed(
            f"minSampleSize is {MIN_SAMPLE_FLOOR} to {MIN_SAMPLE_CEILING:,} visitors per arm",
            field="minSampleSize",
        )
    taken = await session.scalar(select(col(Experiment.id)).where(col(Experiment.key) == key))
    if taken is not None:
        raise Conflict(f"an experiment with key {key!r} exists", field="key")
    experiment = Experiment(
        key=key,
        name=title,
        hypothesis=text,
        variants=[{"key": v.key, "weight": v.weight} for v in checked],
        primary_metric=primary_metric,
        min_sample_size=min_sample_size,
    )
    session.add(experiment)
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent request took the key first.
        raise Conflict(f"an experiment with key {key!r} exists", field="key") from exc
    return experiment


async def find_by_key(session: AsyncSession, key: str) -> Experiment | None:
    return (
        await session.execute(select(Experiment).where(col(Experiment.key) == key.strip()))
    ).scalar_one_or_none()


async def get_by_key(session: AsyncSession, key: str) -> Experiment:
    experiment = await find_by_key(session, key)
    if experiment is None:
        raise NotFound("Experiment", key, field="key")
    return experiment


async def _move(
    session: AsyncSession, key: str, source: ExperimentStatus, target: ExperimentStatus
) -> Experiment:
    """``source`` → ``target`` with one conditional UPDATE, so that of two concurrent moves
    one wins and the other is an InvalidTransition."""
    experiment = await get_by_key(session, key)
    now = utcnow()
    stamp = {"started_at": now} if target is ExperimentStatus.RUNNING else {"stopped_at": now}
    moved = await session.execute(
        update(Experiment)
        .where(col(Experiment.id) == experiment.id, col(Experiment.status) == source)
        .values(status=target, **stamp)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(experiment)
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        raise InvalidTransition("Experiment", experiment.status.value, target.value)
    return experiment


async def start_experiment(session: AsyncSession, key: str) -> Experiment:
    """DRAFT → RUNNING: from now on visitors get variants and exposures count."""
    return await _move(session, key, ExperimentStatus.DRAFT, ExperimentStatus.RUNNING)


async def stop_experiment(session: AsyncSession, key: str) -> Experiment:
    """RUNNING → STOPPED (final): no more variants; orders after it no longer count."""
    return await _move(session, key, ExperimentStatus.RUNNING, ExperimentStatus.STOPPED)


def experiments_query(status: ExperimentStatus | None = None) -> Select[Experiment]:
    """Every experiment, or those with ``status``, for a connection."""
    stmt = select(Experiment)
    if status is not None:
        stmt = stmt.where(col(Experiment.status) == status)
    return stmt
