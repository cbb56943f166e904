"""Late and at-risk shipments: the job ``logistics.delays``, alerts, and compensation through
the ``shipment_delay_compensation`` hook (once per shipment)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.plugin import Job


def jobs(config: Any) -> Sequence[Job]:
    return []
