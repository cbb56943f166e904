"""The core's own hook implementations, registered like a plugin named ``core``.

Core features use the same hooks as third parties: the default shipment plan (one parcel per
warehouse), the built-in payment gateways (``test``, ``manual``), the periodic jobs that
recompute customer insights (``core.insights``) and refresh the KPI aggregates
(``core.kpis``), and the core's KPIs (GMV, orders, conversion …). A plugin replaces the plan by
answering ``plan_shipments`` first (the core's answer comes last), and adds gateways, jobs and
KPIs next to the core's.
"""

from __future__ import annotations

from server.hooktypes import Job, Kpi, hookimpl
from server.services import insights, kpi_aggregates
from server.services.builtin_gateways import (
    authorise_payment,
    capture_payment,
    payment_gateways,
    payment_webhook,
    refund_payment,
)
from server.services.fulfilment import plan_shipments
from server.services.kpis import core_kpis

__all__ = [
    "authorise_payment",
    "capture_payment",
    "jobs",
    "kpis",
    "payment_gateways",
    "payment_webhook",
    "plan_shipments",
    "refund_payment",
]


@hookimpl
def jobs() -> list[Job]:
    return [*insights.jobs(), *kpi_aggregates.jobs()]


@hookimpl
def kpis() -> list[Kpi]:
    return core_kpis()
