"""What the plugin's SQL needs of both dialects."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession) -> Any:
    """The session's dialect's INSERT, which has ``on_conflict_do_nothing`` (insert-or-ignore:
    the plugin's once-only rows under concurrent writers)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
