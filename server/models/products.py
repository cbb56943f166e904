"""The catalogue: a category tree and products."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Text
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, json_field


class Category(SQLModel, table=True):
    __tablename__ = "category"

    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="category.id", index=True)
    name: str
    slug: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    description: str = ""
    position: int = 0


class Product(SQLModel, table=True):
    __tablename__ = "product"
    # Keyset pages read an index in order and stop after one page, never sorting the table:
    # (sort column, id) for listings that include archived products (staff), and
    # (is_active, sort column, id) for the shop, which lists what is on sale.
    __table_args__ = (
        Index("ix_product_price_id", "price_amount", "id"),
        Index("ix_product_created_id", "created_at", "id"),
        Index("ix_product_name_id", "name", "id"),
        Index("ix_product_active_price_id", "is_active", "price_amount", "id"),
        Index("ix_product_active_created_id", "is_active", "created_at", "id"),
        Index("ix_product_active_name_id", "is_active", "name", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    brand: str | None = Field(default=None, index=True)
    category_id: int | None = Field(default=None, foreign_key="category.id", index=True)
    tags: list[str] = json_field(list)
    attributes: dict[str, Any] = json_field(dict)
    # Money is stored as integer minor units (fen for CNY).
    price_amount: int
    cost_amount: int | None = None
    currency: str = "CNY"
    is_active: bool = True
    # What the full-text index covers, segmented for CJK by server.services.search: the
    # title (name, brand) ranks above the body (description, tags, category, attributes).
    search_title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    search_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # The pinyin of the title's Chinese words, full and as initials (below both in rank).
    search_pinyin: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()
