"""Delivery addresses as carts and orders hold them: snapshots, apart from a customer's address
book (schema/customers.py)."""

from __future__ import annotations

from typing import Any

import strawberry

from server.services import carts


@strawberry.type(
    description="Where an order goes (a snapshot: editing the address book later "
    "does not change it)."
)
class ShippingAddress:
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    street: str
    postal_code: str

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ShippingAddress | None:
        if not data:
            return None
        return cls(**{name: str(data.get(name) or "") for name in carts.ADDRESS_FIELDS})


@strawberry.input(description="A delivery address, e.g. 浙江省 杭州市 西湖区 文三路 90 号.")
class ShippingAddressInput:
    recipient_name: str
    phone: str
    province: str
    city: str
    street: str
    district: str = ""
    postal_code: str = ""

    def as_dict(self) -> dict[str, str]:
        return carts.clean_address(
            {name: getattr(self, name) for name in carts.ADDRESS_FIELDS}, "shippingAddress"
        )
