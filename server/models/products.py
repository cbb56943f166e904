"""The catalogue: a category tree, products (SPUs), their option axes and variants (SKUs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
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
    # Money is stored as integer minor units (fen for CNY). The product's price is the lowest
    # price of its active variants (the "from" price listings sort and filter by), kept in step
    # by server.services.variants; its cost is that variant's.
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


class ProductOption(SQLModel, table=True):
    """An option axis of a product (colour, size, capacity…) and its values in display order."""

    __tablename__ = "product_option"
    __table_args__ = (UniqueConstraint("product_id", "name", name="uq_product_option_name"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True, ondelete="CASCADE")
    name: str = Field(sa_column=Column(String(40), nullable=False))
    position: int = 0
    values: list[str] = json_field(list)


class ProductVariant(SQLModel, table=True):
    """A sellable unit (SKU) of a product: one value on each of the product's option axes.

    Stock, cart lines and order lines refer to a variant and, through the composite key
    (id, product_id), to its product as well, so the two can never disagree.
    """

    __tablename__ = "product_variant"
    __table_args__ = (
        UniqueConstraint("id", "product_id", name="uq_product_variant_id_product"),
        # One variant per combination of option values: ``option_key`` is that combination
        # in a canonical form ("" for a product without options).
        UniqueConstraint("product_id", "option_key", name="uq_product_variant_options"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="product.id", index=True)
    sku: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    # GTIN/EAN/UPC as printed on the barcode, when the variant has one.
    barcode: str | None = Field(default=None, sa_column=Column(String(14), unique=True))
    options: dict[str, str] = json_field(dict)
    option_key: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    price_amount: int
    cost_amount: int | None = None
    weight_grams: int | None = None
    position: int = 0
    is_active: bool = True
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


def variant_key(table: str) -> ForeignKeyConstraint:
    """The (variant_id, product_id) foreign key of a row that refers to a variant."""
    return ForeignKeyConstraint(
        ["variant_id", "product_id"],
        ["product_variant.id", "product_variant.product_id"],
        name=f"fk_{table}_variant_product",
    )
