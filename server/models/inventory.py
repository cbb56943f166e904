"""Warehouses and per-warehouse stock levels."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import enum_field
from server.models.products import variant_key


class WarehouseKind(StrEnum):
    REGIONAL = "REGIONAL"
    FORWARD = "FORWARD"


class Warehouse(SQLModel, table=True):
    __tablename__ = "warehouse"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    name: str
    kind: WarehouseKind = enum_field(WarehouseKind, WarehouseKind.REGIONAL)
    region: str = ""
    province: str = ""
    city: str = ""
    is_active: bool = True


class StockLevel(SQLModel, table=True):
    __tablename__ = "stock_level"
    __table_args__ = (
        UniqueConstraint("warehouse_id", "variant_id", name="uq_stock_level_warehouse_variant"),
        variant_key("stock_level"),
        CheckConstraint("reserved >= 0", name="reserved_nonneg"),
        CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
        CheckConstraint("reserved <= on_hand", name="reserved_le_on_hand"),
    )

    id: int | None = Field(default=None, primary_key=True)
    warehouse_id: int = Field(foreign_key="warehouse.id", index=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    variant_id: int = Field(index=True)
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0

    @property
    def available(self) -> int:
        """What can still be sold: on hand minus reserved."""
        return self.on_hand - self.reserved
