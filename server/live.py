"""Live updates for GraphQL subscriptions: a commit tells every server process's subscribers
of a topic (e.g. ``order:12``, ``shipment:7``) that it changed.

``publish`` is called inside the transaction that makes the change; subscribers hear of it
only if, and once, it commits: on PostgreSQL through ``NOTIFY`` (every process listening), on
SQLite within the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def publish(
    session: AsyncSession, topic: str, payload: Mapping[str, Any] | None = None
) -> None:
    """Tell the subscribers of ``topic`` that it changed, when ``session``'s transaction
    commits. ``payload``: a small JSON object (what changed, ids), not the object itself;
    subscribers read the fresh state."""
