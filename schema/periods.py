"""The GraphQL enum of how a period is cut (KPI series, segment movements, alert rules).

Registered here once, and imported from here by every schema module that uses it, so that it
is registered before any type refers to it.
"""

from __future__ import annotations

import strawberry

from server.models.insights import Granularity

strawberry.enum(
    Granularity,
    name="Granularity",
    description="How a period of shop days is cut: days, weeks (Monday to Sunday) or calendar "
    "months; the first and last are cut to the period.",
)

__all__ = ["Granularity"]
