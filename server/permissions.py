"""Staff roles mapped to permissions; the permissions plugins add; API-key scopes.

A permission is a dotted name (``catalog.manage``). Staff users get the permissions of their
role; API keys get exactly their scopes. ADMIN holds every permission, the plugins' included.
The built-in mapping can be extended per role by ``Settings.role_permissions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.config import Settings
from server.models import StaffRole

CATALOG_READ = "catalog.read"
CATALOG_MANAGE = "catalog.manage"
PRICING_MANAGE = "pricing.manage"
CUSTOMERS_READ = "customers.read"
CUSTOMERS_MANAGE = "customers.manage"
ORDERS_READ = "orders.read"
ORDERS_MANAGE = "orders.manage"
SHIPMENTS_READ = "shipments.read"
SHIPMENTS_MANAGE = "shipments.manage"
STOCK_READ = "stock.read"
STOCK_MANAGE = "stock.manage"
STAFF_MANAGE = "staff.manage"
AUDIT_READ = "audit.read"
APIKEYS_MANAGE = "apikeys.manage"
PLUGINS_READ = "plugins.read"
EVENTS_MANAGE = "events.manage"
INSIGHTS_READ = "insights.read"
INSIGHTS_MANAGE = "insights.manage"
ALERTS_MANAGE = "alerts.manage"

CORE_PERMISSIONS: dict[str, str] = {
    CATALOG_READ: "See the whole catalogue, archived products included.",
    CATALOG_MANAGE: "Create and change categories and products (and see costs and margins).",
    PRICING_MANAGE: "Change prices; see cost prices and margins.",
    CUSTOMERS_READ: "See customers' personal data and behaviour.",
    CUSTOMERS_MANAGE: "Change customers' membership tiers and tags.",
    ORDERS_READ: "See every customer's orders.",
    ORDERS_MANAGE: "Change, cancel and advance orders.",
    SHIPMENTS_READ: "See every shipment.",
    SHIPMENTS_MANAGE: "Create shipments and record tracking events.",
    STOCK_READ: "See stock levels.",
    STOCK_MANAGE: "Change stock levels and warehouses.",
    STAFF_MANAGE: "Manage staff users.",
    AUDIT_READ: "Read the audit log.",
    APIKEYS_MANAGE: "Create, list and revoke API keys.",
    PLUGINS_READ: "See the installed plugins.",
    EVENTS_MANAGE: "See event deliveries to plugins (payloads included) and retry failed ones.",
    INSIGHTS_READ: "See the shop's insights: customers' RFM figures and segments, lifetime "
    "value and churn risk, audiences, experiments and their results, channel and promotion "
    "attribution.",
    INSIGHTS_MANAGE: "Recompute customer insights; define audiences; define, start and stop "
    "experiments (A/B tests); import marketing costs.",
    ALERTS_MANAGE: "Define alert rules on the shop's KPIs and acknowledge alerts (and read "
    "them, as insights.read does).",
}

# What each role needs for its job; ADMIN is not listed: it holds everything (events.manage,
# operating the plugins' event deliveries, is deliberately ADMIN's alone, and so are
# insights.manage, recomputing the insights, and alerts.manage, which a shop grants to whoever
# watches its alerts). ANALYST reads the shop's figures and its customers to act on segments,
# and changes nothing; SUPPORT serves every customer alike and does not see their value
# segments.
BUILTIN_ROLES: dict[StaffRole, frozenset[str]] = {
    StaffRole.CATALOG: frozenset(
        {CATALOG_READ, CATALOG_MANAGE, PRICING_MANAGE, STOCK_READ, PLUGINS_READ}
    ),
    StaffRole.SUPPORT: frozenset(
        {
            CATALOG_READ,
            CUSTOMERS_READ,
            CUSTOMERS_MANAGE,
            ORDERS_READ,
            ORDERS_MANAGE,
            SHIPMENTS_READ,
        }
    ),
    StaffRole.LOGISTICS: frozenset(
        {
            CATALOG_READ,
            ORDERS_READ,
            SHIPMENTS_READ,
            SHIPMENTS_MANAGE,
            STOCK_READ,
            STOCK_MANAGE,
        }
    ),
    StaffRole.ANALYST: frozenset(
        {
            CATALOG_READ,
            CUSTOMERS_READ,
            ORDERS_READ,
            SHIPMENTS_READ,
            STOCK_READ,
            INSIGHTS_READ,
        }
    ),
}


class UnknownPermission(ValueError):
    """A permission or scope that neither the core nor an enabled plugin defines."""


@dataclass(frozen=True)
class RoleMap:
    """Every known permission and what each role holds. Built once per app."""

    known: frozenset[str]
    roles: Mapping[str, frozenset[str]]

    @classmethod
    def build(
        cls, settings: Settings | None = None, plugin_permissions: Iterable[str] = ()
    ) -> RoleMap:
        known = frozenset(CORE_PERMISSIONS) | frozenset(plugin_permissions)
        roles: dict[str, frozenset[str]] = {StaffRole.ADMIN.value: known}
        for builtin, granted in BUILTIN_ROLES.items():
            roles[builtin.value] = granted
        extra = settings.role_permissions if settings is not None else {}
        for role_name, names in extra.items():
            role = role_name.strip().upper()
            if role not in roles:
                choices = ", ".join(r.value for r in StaffRole)
                raise UnknownPermission(
                    f"role_permissions names role {role_name!r}; one of {choices}"
                )
            unknown = sorted(set(names) - known)
            if unknown:
                raise UnknownPermission(
                    f"role_permissions gives {role} unknown permissions: {', '.join(unknown)}"
                )
            roles[role] = roles[role] | frozenset(names)
        return cls(known=known, roles=roles)

    def for_role(self, role: str | None) -> frozenset[str]:
        return self.roles.get(role or "", frozenset())

    def check_scopes(self, scopes: Iterable[str]) -> list[str]:
        """``scopes`` cleaned and de-duplicated; raises UnknownPermission for a name nobody
        defines (a typo would otherwise silently grant nothing)."""
        cleaned = sorted({s.strip() for s in scopes if s.strip()})
        if not cleaned:
            raise UnknownPermission("an API key needs at least one scope")
        unknown = [s for s in cleaned if s not in self.known]
        if unknown:
            raise UnknownPermission(f"unknown scopes: {', '.join(unknown)}")
        return cleaned
