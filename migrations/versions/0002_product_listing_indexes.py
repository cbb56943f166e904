"""product listing indexes: what is on sale, in each sort order

Revision ID: 0002_core
Revises: 0001_core
Create Date: 2026-11-22 06:20:00

The shop lists active products sorted by newest, price or name. With only an index on
``is_active`` (true for nearly every row) SQLite chose it and sorted every active product for
each page. (is_active, sort column, id) lets a page be read in index order and stop after it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_core"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_product_active_created_id": ["is_active", "created_at", "id"],
    "ix_product_active_price_id": ["is_active", "price_amount", "id"],
    "ix_product_active_name_id": ["is_active", "name", "id"],
}


# Plain CREATE/DROP INDEX (no batch mode): SQLite needs no table rebuild for these, and a
# rebuild would drop the full-text triggers on product.


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "product", columns, unique=False)
    op.drop_index("ix_product_is_active", table_name="product")


def downgrade() -> None:
    op.create_index("ix_product_is_active", "product", ["is_active"], unique=False)
    for name in reversed(list(_INDEXES)):
        op.drop_index(name, table_name="product")
