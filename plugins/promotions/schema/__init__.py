"""The promotions plugin over GraphQL, one module per concern: what shoppers see and do
(``schema.storefront``: promotions on products and carts, coupons, bundles), staff
administration (``schema.admin``: promotions, campaigns, coupon codes, referrals), group
buying (``schema.groups``), the discount ledger and refunds of returned lines
(``schema.ledger``) and the reports (``schema.report``)."""

from __future__ import annotations

from typing import Any

from plugins.promotions.schema import admin, groups, ledger, report, storefront

_PARTS = (storefront, admin, groups, ledger, report)

TYPES: list[type[Any]] = [t for part in _PARTS for t in part.TYPES]
QUERIES: list[type[Any]] = [q for part in _PARTS for q in part.QUERIES]
MUTATIONS: list[type[Any]] = [m for part in _PARTS for m in part.MUTATIONS]
EXTENSIONS: dict[str, list[type[Any]]] = {}
for _part in _PARTS:
    for _type, _extensions in _part.EXTENSIONS.items():
        EXTENSIONS.setdefault(_type, []).extend(_extensions)
