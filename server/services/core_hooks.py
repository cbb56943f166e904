"""The core's own hook implementations, registered like a plugin named ``core``.

Core features use the same hooks as third parties: the default shipment plan (one parcel per
warehouse), the built-in payment gateways (``test``, ``manual``), the periodic jobs that
recompute customer insights (``core.insights``), refresh the KPI aggregates (``core.kpis``),
send and expire satisfaction surveys (``core.surveys``) and raise alerts (``core.alerts``), the
satisfaction surveys sent after a delivery and after a return (``shipment_status_changed``,
``payment_refunded``), and the core's KPIs (GMV, orders, conversion …). A plugin replaces the
plan by answering ``plan_shipments`` first (the core's answer comes last), and adds gateways,
jobs and KPIs next to the core's.
"""

from __future__ import annotations

from server.hooktypes import Job, Kpi, hookimpl
from server.services import alerts, insights, kpi_aggregates
from server.services.attribution import channel_kpis
from server.services.builtin_gateways import (
    authorise_payment,
    capture_payment,
    payment_gateways,
    payment_webhook,
    refund_payment,
    refund_payment_part,
)
from server.services.fulfilment import plan_shipments
from server.services.kpis import core_kpis
from server.services.product_health import product_health_kpis
from server.services.returns import refund_for_lines
from server.services.surveys import (
    payment_refunded,
    shipment_status_changed,
    survey_jobs,
    survey_kpis,
)

__all__ = [
    "authorise_payment",
    "capture_payment",
    "jobs",
    "kpis",
    "payment_gateways",
    "payment_refunded",
    "payment_webhook",
    "plan_shipments",
    "refund_for_lines",
    "refund_payment",
    "refund_payment_part",
    "shipment_status_changed",
]


@hookimpl
def jobs() -> list[Job]:
    """The core's periodic jobs: insights, KPI aggregates, surveys and alerts."""
    return [*insights.jobs(), *kpi_aggregates.jobs(), *survey_jobs(), *alerts.jobs()]


@hookimpl
def kpis() -> list[Kpi]:
    """The core's own KPIs (bare keys)."""
    return [*core_kpis(), *product_health_kpis(), *channel_kpis(), *survey_kpis()]
