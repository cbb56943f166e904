"""SQL the plugin's services share: the dialect's INSERT for insert-or-ignore rows, and what
an UPDATE, DELETE or INSERT changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession) -> Any:
    """The session's dialect's INSERT, which has ``on_conflict_do_nothing`` (and
    ``on_conflict_do_update``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def rowcount(result: Any) -> int:
    # An UPDATE's, DELETE's or INSERT's result is a CursorResult, which execute's type omits.
    return int(result.rowcount)
