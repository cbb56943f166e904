"""The core's own hook implementations, registered like a plugin named ``core``.

Core features use the same hooks as third parties: the default shipment plan (one parcel per
warehouse), the built-in payment gateways (``test``, ``manual``) and the periodic jobs that
recompute customer insights (``core.insights``) and raise alerts (``core.alerts``). A plugin
replaces the plan by answering ``plan_shipments`` first (the core's answer comes last), and adds
gateways and jobs next to the core's.
"""

from __future__ import annotations

from server.hooktypes import Job, hookimpl
from server.services import alerts, insights
from server.services.builtin_gateways import (
    authorise_payment,
    capture_payment,
    payment_gateways,
    payment_webhook,
    refund_payment,
)
from server.services.fulfilment import plan_shipments

__all__ = [
    "authorise_payment",
    "capture_payment",
    "jobs",
    "payment_gateways",
    "payment_webhook",
    "plan_shipments",
    "refund_payment",
]


@hookimpl
def jobs() -> list[Job]:
    """The core's periodic jobs: ``core.insights`` and ``core.alerts``."""
    return [*insights.jobs(), *alerts.jobs()]
