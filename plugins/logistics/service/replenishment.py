"""Replenishment per product and warehouse: reorder point, safety stock, order quantity,
days of cover, inventory classes; stock-out alerts (a job) and the CSV export (a route)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute

from server.plugin import Job


def jobs(config: Any) -> Sequence[Job]:
    return []


def routes(plugins: Any, config: Any) -> Sequence[BaseRoute]:
    return []
