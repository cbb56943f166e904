"""The audit log: every mutation run by staff or by an API key, and the command line's exports
of personal data.

Rows are written by the GraphQL layer's mutation runner in the same transaction as the change,
so a change without its audit row (or the reverse) cannot be committed.
"""

from __future__ import annotations

import getpass
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer
from server.models import AuditLogEntry

REDACTED = "[REDACTED]"
# Who runs the current mutation ("staff:3", "apikey:7"; None: a customer, a guest, a job):
# set by the mutation runner, read by services that name the actor in their events.
ACTOR: ContextVar[str | None] = ContextVar("shopgraph_actor", default=None)
# Input keys whose values never reach the log (matched case-insensitively, camel or snake).
_SECRET = re.compile(r"password|secret|token|api_?key|credential|card|cvv", re.IGNORECASE)
_MAX_STRING = 500
_MAX_ITEMS = 50
_MAX_DEPTH = 6
MAX_RESULT = 120


def is_audited(viewer: Viewer) -> bool:
    return viewer.is_staff or viewer.is_app


def summarize(value: Any, *, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of a mutation's input with secrets replaced."""
    if depth > _MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"{len(value) - _MAX_ITEMS} more"
                break
            out[str(key)] = (
                REDACTED if _SECRET.search(str(key)) else summarize(item, depth=depth + 1)
            )
        return out
    if isinstance(value, list | tuple):
        items = [summarize(v, depth=depth + 1) for v in list(value)[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"… {len(value) - _MAX_ITEMS} more")
        return items
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= _MAX_STRING else text[:_MAX_STRING] + "…"


def entry(viewer: Viewer, mutation: str, input: dict[str, Any], result: str) -> AuditLogEntry:
    return AuditLogEntry(
        actor=viewer.subject,
        staff_id=viewer.staff_id,
        api_key_id=viewer.api_key_id,
        mutation=mutation,
        input=summarize(input),
        result=result[:MAX_RESULT],
    )


async def record(
    session: AsyncSession, viewer: Viewer, mutation: str, input: dict[str, Any], result: str
) -> AuditLogEntry:
    row = entry(viewer, mutation, input, result)
    session.add(row)
    await session.flush()
    return row


def command_actor() -> str:
    """How the log names whoever ran a command line (``cli:<operating-system user>``): the
    command acts with the database's credentials, under no staff account."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


async def record_command(
    session: AsyncSession, command: str, input: dict[str, Any], result: str
) -> AuditLogEntry:
    """Record an audited action of the command line (an export of personal data): its row
    names the command as the mutation that does the same over GraphQL."""
    row = AuditLogEntry(
        actor=command_actor(),
        mutation=command,
        input=summarize(input),
        result=result[:MAX_RESULT],
    )
    session.add(row)
    await session.flush()
    return row


async def set_result(session: AsyncSession, entry_id: int, result: str) -> None:
    """Correct the result of a row written before the call's outcome was known."""
    await session.execute(
        update(AuditLogEntry)
        .where(col(AuditLogEntry.id) == entry_id)
        .values(result=result[:MAX_RESULT])
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    mutation: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    result: str | None = None


def actor_label(kind: str, pk: int) -> str:
    """How the log names an actor: ``staff:<id>`` or ``apikey:<id>`` (see ``Viewer.subject``)."""
    return f"{kind}:{pk}"


# An actor no row has: what a filter on an id that names no actor compares with.
NO_ACTOR = "none"


def entries_query(flt: AuditFilter) -> Select[Any]:
    """The audit log's rows ``flt`` selects, unordered (the page orders)."""
    return select(AuditLogEntry).where(*conditions(flt))


def conditions(flt: AuditFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if flt.actor is not None:
        out.append(col(AuditLogEntry.actor) == flt.actor)
    if flt.mutation is not None:
        out.append(col(AuditLogEntry.mutation) == flt.mutation)
    if flt.since is not None:
        out.append(col(AuditLogEntry.at) >= flt.since)
    if flt.until is not None:
        out.append(col(AuditLogEntry.at) < flt.until)
    if flt.result is not None:
        # "NotFoundError" finds "NotFoundError:NOT_FOUND" too: a typed error's code is extra.
        out.append(
            or_(
                col(AuditLogEntry.result) == flt.result,
                col(AuditLogEntry.result).startswith(f"{flt.result}:", autoescape=True),
            )
        )
    return out
