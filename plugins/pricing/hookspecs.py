"""The hooks the pricing plugin offers other plugins (``HOOKSPECS`` in the plugin module)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import ProtectionClaim
from server.plugin import hookspec


@hookspec(firstresult=True)
def pricing_protection_coupon(
    session: AsyncSession, claim: ProtectionClaim, plugins: Any, config: Any
) -> str | None:
    """firstresult: issue a coupon worth ``claim.amount`` (minor units of ``claim.currency``)
    to ``claim.customer_id``, in ``session``'s transaction, and return its code; None when
    this plugin issues no coupons. Called when the shop credits price protection as coupons
    (``SHOPGRAPH_PRICING_PROTECTION_METHOD=COUPON``); when no plugin answers, the claim is
    refused (COUPON_UNAVAILABLE) and nothing is written."""
