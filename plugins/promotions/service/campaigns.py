"""Campaigns: promotions under a budget; the budget job stops a campaign when it is spent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.plugin import Job


def jobs(config: Any) -> Sequence[Job]:
    return []
