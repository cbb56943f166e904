"""The report per promotion and campaign, and the plugin's KPIs for the dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from server.plugin import Kpi


def kpis() -> Sequence[Kpi]:
    return []
