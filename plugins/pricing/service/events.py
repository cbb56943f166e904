"""The plugin's own outbox event: some public prices changed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing import PRICES_CHANGED
from server.plugin import emit_event


async def prices_changed(session: AsyncSession, product_ids: Iterable[int], reason: str) -> None:
    """Announce, with the change's transaction, that the prices of ``product_ids`` (empty:
    possibly any product's, e.g. a category rule) changed: the response cache drops the
    answers that read prices, and other processes hear of it."""
    await emit_event(
        session, PRICES_CHANGED, {"product_ids": sorted(set(product_ids)), "reason": reason}
    )
