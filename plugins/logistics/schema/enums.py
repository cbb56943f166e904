"""The plugin's enums shared by several schema parts, registered with strawberry once (a
Python enum has one GraphQL name)."""

from __future__ import annotations

import strawberry

from plugins.logistics.models import CarrierKind, PickupKind, ServiceLevel

__all__ = ["CarrierKind", "PickupKind", "ServiceLevel"]

strawberry.enum(
    CarrierKind,
    name="CarrierKind",
    description="OWN_FLEET: the shop's own vans (自营); THIRD_PARTY: an express company (快递); "
    "ALLIANCE: a partner network the shop shares (联盟).",
)
strawberry.enum(
    ServiceLevel,
    name="ShippingServiceLevel",
    description="STANDARD, EXPRESS, SAME_DAY (within hours from a forward warehouse, 前置仓) "
    "or PICKUP (collected at a store or locker, 自提).",
)
strawberry.enum(PickupKind, name="PickupPointKind", description="A STORE or a LOCKER.")
