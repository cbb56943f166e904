"""The hooks the logistics plugin offers other plugins (``HOOKSPECS`` in the plugin module)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import hookspec


@hookspec
def shipment_delay_compensation(
    session: AsyncSession,
    shipment_id: int,
    order_id: int,
    customer_id: int | None,
    amount: int,
    currency: str,
    plugins: Any,
    config: Any,
) -> str | None:
    """Compensate the customer of ``order_id`` for the late delivery of ``shipment_id``
    (超时赔付) with ``amount`` minor units of ``currency``, in ``session``'s transaction, and
    return a reference to what was given (e.g. a coupon code); None when this plugin gives
    nothing. Called once per shipment by the job ``logistics.delays`` when automatic
    compensation is on (``SHOPGRAPH_LOGISTICS_AUTO_COMPENSATION``); the first reference
    returned is recorded on the delay. The promotions plugin answers with a coupon."""
