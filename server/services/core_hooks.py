"""The core's own hook implementations, registered like a plugin named ``core``.

Core features use the same hooks as third parties: the default shipment plan (one parcel per
warehouse), the built-in payment gateways (``test``, ``manual``), the periodic job that
recomputes customer insights (``core.insights``) and the core's KPIs (``kpis``). A plugin
replaces the plan by answering ``plan_shipments`` first (the core's answer comes last), and
adds gateways, jobs and KPIs next to the core's.
"""

from __future__ import annotations

from server.hooktypes import Kpi, hookimpl
from server.services.attribution import channel_kpis
from server.services.builtin_gateways import (
    authorise_payment,
    capture_payment,
    payment_gateways,
    payment_webhook,
    refund_payment,
)
from server.services.fulfilment import plan_shipments
from server.services.insights import jobs
from server.services.product_health import product_health_kpis

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
def kpis() -> list[Kpi]:
    """The core's own KPIs (bare keys)."""
    return [*product_health_kpis(), *channel_kpis()]
