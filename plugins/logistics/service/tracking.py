"""Carriers' tracking events: the signed webhook, normalisation, de-duplication, ordering by
event time, the revised ETA; the core shipment moves with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from server.plugin import Event


async def shipment_created(session: AsyncSession, event: Event, plugins: Any, config: Any) -> None:
    return None


def routes(plugins: Any, config: Any) -> Sequence[BaseRoute]:
    return []
