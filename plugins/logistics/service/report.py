"""The logistics KPIs for the dashboard: on-time rate against the frozen promise, transit
times per carrier and region, delivery-complaint rate, stock-outs, inventory turnover."""

from __future__ import annotations

from collections.abc import Sequence

from server.plugin import Kpi


def kpis() -> Sequence[Kpi]:
    return []
