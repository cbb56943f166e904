"""Late and at-risk shipments: the job ``logistics.delays``, alerts, and compensation through
the ``shipment_delay_compensation`` hook (once per shipment).

Safe from several processes: a shipment's delay is inserted or ignored (one row per shipment),
AT_RISK becomes LATE by a conditional UPDATE, and compensation is claimed by a conditional
UPDATE of ``compensated_at`` before the hook is asked, so of two runs at once one asks. A claim
is final: when no plugin answers (promotions disabled) ``compensation_ref`` stays null and the
shipment is not asked about again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.logistics.models import Delay, DelayKind, Promise, TrackedShipment
from plugins.logistics.service.tracking import insert_for
from server.models import Order, Shipment, ShipmentStatus, utcnow
from server.plugin import Job, JobContext, emit_event, publish_live, raise_alert

log = logging.getLogger("shopgraph.logistics")

JOB_NAME = "delays"  # runs as "logistics.delays"
HOOK = "shipment_delay_compensation"
EVENT = "logistics_shipment_delayed"
OPEN = (
    ShipmentStatus.CREATED,
    ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.OUT_FOR_DELIVERY,
    ShipmentStatus.EXCEPTION,
)
DONE = (ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED)


@dataclass
class DelayReport:
    late: list[int] = field(default_factory=list)  # shipment ids newly LATE
    at_risk: list[int] = field(default_factory=list)  # shipment ids newly AT_RISK
    compensated: dict[int, str | None] = field(default_factory=dict)  # shipment → ref
    resolved: int = 0


@dataclass(frozen=True)
class Candidate:
    shipment_id: int
    order_id: int
    latest: date
    late_probability: float | None


def today_in(tz: str, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(ZoneInfo(tz)).date()


def kind_of(candidate: Candidate, today: date, threshold: float) -> DelayKind | None:
    """LATE past the promise's last day (shop time), AT_RISK when the revised probability of
    missing it reaches the threshold, else nothing."""
    if today > candidate.latest:
        return DelayKind.LATE
    p = candidate.late_probability
    if p is not None and p >= threshold:
        return DelayKind.AT_RISK
    return None


async def candidates(session: AsyncSession) -> list[Candidate]:
    """Tracked shipments still on their way whose order has a promise (one statement)."""
    rows = await session.execute(
        select(
            col(TrackedShipment.shipment_id),
            col(TrackedShipment.order_id),
            col(Promise.latest),
            col(Order.promised_by),
            col(TrackedShipment.late_probability),
        )
        .join(Shipment, col(Shipment.id) == TrackedShipment.shipment_id)
        .join(Order, col(Order.id) == TrackedShipment.order_id)
        .outerjoin(Promise, col(Promise.order_id) == TrackedShipment.order_id)
        .where(col(Shipment.status).in_(OPEN))
        .order_by(col(TrackedShipment.shipment_id))
    )
    out: list[Candidate] = []
    for sid, oid, latest, promised_by, p in rows:
        day = latest or promised_by
        if day is not None:
            out.append(Candidate(sid, oid, day, p))
    return out


async def record(session: AsyncSession, c: Candidate, kind: DelayKind) -> tuple[Delay | None, bool]:
    """Insert the shipment's delay or worsen it to LATE; (the delay, whether it is new or
    newly LATE)."""
    now = utcnow()
    new_id = await session.scalar(
        insert_for(session)(Delay)
        .values(
            shipment_id=c.shipment_id,
            order_id=c.order_id,
            kind=kind,
            promised_by=c.latest,
            late_probability=c.late_probability,
            detected_at=now,
            became_late_at=now if kind is DelayKind.LATE else None,
        )
        .on_conflict_do_nothing(index_elements=["shipment_id"])
        .returning(col(Delay.id))
    )
    news = new_id is not None
    if not news and kind is DelayKind.LATE:
        worsened = await session.execute(
            update(Delay)
            .where(col(Delay.shipment_id) == c.shipment_id, col(Delay.kind) == DelayKind.AT_RISK)
            .values(kind=DelayKind.LATE, became_late_at=now, late_probability=c.late_probability)
            .execution_options(synchronize_session=False)
        )
        news = worsened.rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's CursorResult
    delay = await session.scalar(
        select(Delay)
        .where(col(Delay.shipment_id) == c.shipment_id)
        .execution_options(populate_existing=True)
    )
    return delay, news


async def compensate(
    session: AsyncSession, plugins: Any, config: Any, delay: Delay
) -> tuple[bool, str | None]:
    """Claim the delay's compensation (a conditional UPDATE: once, whoever runs) and ask the
    hook; (whether this call claimed it, the reference answered)."""
    claimed = await session.execute(
        update(Delay)
        .where(col(Delay.id) == delay.id, col(Delay.compensated_at).is_(None))
        .values(compensated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        return False, None
    order = await session.get(Order, delay.order_id)
    assert order is not None
    answers = await plugins.call(
        HOOK,
        session=session,
        shipment_id=delay.shipment_id,
        order_id=delay.order_id,
        customer_id=order.customer_id,
        amount=config.compensation_amount,
        currency=order.currency,
    )
    ref = next((str(a)[:64] for _, a in answers if a), None)
    if ref is not None:
        await session.execute(
            update(Delay)
            .where(col(Delay.id) == delay.id, col(Delay.compensation_ref).is_(None))
            .values(compensation_ref=ref)
            .execution_options(synchronize_session=False)
        )
    return True, ref


async def resolve_delivered(session: AsyncSession) -> int:
    """Close the delays of shipments that arrived or came back."""
    done = select(col(Shipment.id)).where(col(Shipment.status).in_(DONE))
    result = await session.execute(
        update(Delay)
        .where(col(Delay.resolved_at).is_(None), col(Delay.shipment_id).in_(done))
        .values(resolved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's CursorResult


async def find_delays(
    sessions: Any, plugins: Any, config: Any, *, now: datetime | None = None
) -> DelayReport:
    """One run of the job: each shipment in a short transaction of its own."""
    from server.db import mark_write

    report = DelayReport()
    today = today_in(config.timezone, now)
    async with sessions() as session:
        found = await candidates(session)
        await session.commit()
    for c in found:
        kind = kind_of(c, today, config.late_risk_threshold)
        if kind is None:
            continue
        async with sessions() as session:
            await mark_write(session)
            delay, news = await record(session, c, kind)
            assert delay is not None
            if news:
                (report.late if delay.kind is DelayKind.LATE else report.at_risk).append(
                    c.shipment_id
                )
                await emit_event(
                    session,
                    EVENT,
                    {
                        "shipment_id": c.shipment_id,
                        "order_id": c.order_id,
                        "kind": delay.kind.value,
                        "promised_by": c.latest.isoformat(),
                        "late_probability": c.late_probability,
                    },
                )
                await publish_live(session, f"order:{c.order_id}", {"shipment_id": c.shipment_id})
                await raise_alert(
                    session,
                    plugin="logistics",
                    key=f"delay:{c.shipment_id}:{delay.kind.value}",
                    message=_message(c, delay.kind),
                    day=today,
                    value=c.late_probability,
                )
            if (
                config.auto_compensation
                and delay.kind is DelayKind.LATE
                and delay.compensated_at is None
            ):
                claimed, ref = await compensate(session, plugins, config, delay)
                if claimed:
                    report.compensated[c.shipment_id] = ref
            await session.commit()
    async with sessions() as session:
        await mark_write(session)
        report.resolved = await resolve_delivered(session)
        await session.commit()
    return report


def _message(c: Candidate, kind: DelayKind) -> str:
    if kind is DelayKind.LATE:
        return f"Shipment {c.shipment_id} of order {c.order_id} is past its promise ({c.latest})."
    p = c.late_probability or 0.0
    return (
        f"Shipment {c.shipment_id} of order {c.order_id} may miss its promise ({c.latest}): "
        f"{p:.0%} likely late."
    )


def jobs(config: Any) -> Sequence[Job]:
    async def run(ctx: JobContext) -> None:
        report = await find_delays(ctx.sessions, ctx.plugins, ctx.config)
        ctx.progress(
            f"{len(report.late)} late, {len(report.at_risk)} at risk, "
            f"{len(report.compensated)} compensated, {report.resolved} resolved"
        )

    return [
        Job(
            name=JOB_NAME,
            interval_seconds=config.delay_job_interval_minutes * 60,
            run=run,
            description="Find shipments past or likely to miss their promise; compensate "
            "late ones (超时赔付) once.",
        )
    ]
