"""product variants: option axes and SKUs; stock, cart lines and order lines per variant

Revision ID: 0005_core
Revises: 0004_core
Create Date: 2026-11-30 03:30:00

Every existing product becomes a product with one default variant that has the product's id,
SKU, price and cost and no options, so every stock level, cart line and order line refers to
that variant: nothing is lost, and ids stay stable. On the way down, rows of the variants of
one product are merged (stock and cart quantities added up) before the variant columns go.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_core"
down_revision: str | Sequence[str] | None = "0004_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose rows refer to a variant, and the unique key each had per product.
_REFERRING = ("stock_level", "cart_line", "order_line")
_UNIQUE = {
    "stock_level": (
        "uq_stock_level_warehouse_product",
        "uq_stock_level_warehouse_variant",
        "warehouse_id",
    ),
    "cart_line": ("cart_product", "cart_variant", "cart_id"),
}
_QUANTITY = {"stock_level": ("on_hand", "reserved"), "cart_line": ("quantity",)}


def upgrade() -> None:
    op.create_table(
        "product_option",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
            name=op.f("fk_product_option_product_id_product"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_option")),
        sa.UniqueConstraint("product_id", "name", name="uq_product_option_name"),
    )
    op.create_index(
        op.f("ix_product_option_product_id"), "product_option", ["product_id"], unique=False
    )
    op.create_table(
        "product_variant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("barcode", sa.String(length=14), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("option_key", sa.Text(), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("cost_amount", sa.Integer(), nullable=True),
        sa.Column("weight_grams", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_product_variant_product_id_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_variant")),
        sa.UniqueConstraint("barcode", name=op.f("uq_product_variant_barcode")),
        sa.UniqueConstraint("id", "product_id", name="uq_product_variant_id_product"),
        sa.UniqueConstraint("product_id", "option_key", name="uq_product_variant_options"),
        sa.UniqueConstraint("sku", name=op.f("uq_product_variant_sku")),
    )
    op.create_index(
        op.f("ix_product_variant_product_id"), "product_variant", ["product_id"], unique=False
    )
    bind = op.get_bind()
    # One default variant per product, with the product's own id.
    bind.execute(
        sa.text(
            "INSERT INTO product_variant (id, product_id, sku, barcode, options, option_key, "
            "price_amount, cost_amount, weight_grams, position, is_active, created_at, "
            "updated_at) SELECT id, id, sku, NULL, '{}', '', price_amount, cost_amount, NULL, "
            "0, :true, created_at, updated_at FROM product"
        ),
        {"true": True},
    )
    if bind.dialect.name == "postgresql":
        # Rows were inserted with explicit ids: the next generated one must come after them.
        bind.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('product_variant', 'id'), "
                "COALESCE((SELECT MAX(id) FROM product_variant), 0) + 1, false)"
            )
        )
    for table in _REFERRING:
        op.add_column(table, sa.Column("variant_id", sa.Integer(), nullable=True))
        bind.execute(sa.text(f"UPDATE {table} SET variant_id = product_id"))
    op.add_column(
        "order_line", sa.Column("options", sa.JSON(), nullable=False, server_default="{}")
    )
    for table in _REFERRING:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("variant_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(op.f(f"ix_{table}_variant_id"), ["variant_id"], unique=False)
            batch_op.create_foreign_key(
                f"fk_{table}_variant_product",
                "product_variant",
                ["variant_id", "product_id"],
                ["id", "product_id"],
            )
            if table in _UNIQUE:
                old, new, scope = _UNIQUE[table]
                batch_op.drop_constraint(old, type_="unique")
                batch_op.create_unique_constraint(new, [scope, "variant_id"])
    with op.batch_alter_table("order_line") as batch_op:
        batch_op.alter_column("options", existing_type=sa.JSON(), server_default=None)


def _merge_per_product(table: str) -> None:
    """Add up the rows of one product's variants into its lowest-id row, and drop the rest."""
    _, _, scope = _UNIQUE[table]
    bind = op.get_bind()
    quantities = _QUANTITY[table]
    sums = ", ".join(f"SUM({q})" for q in quantities)
    groups = bind.execute(
        sa.text(
            f"SELECT MIN(id), {sums} FROM {table} GROUP BY {scope}, product_id HAVING COUNT(*) > 1"
        )
    ).all()
    for keep_id, *totals in groups:
        keep = bind.execute(
            sa.text(f"SELECT {scope}, product_id FROM {table} WHERE id = :id"), {"id": keep_id}
        ).one()
        bind.execute(
            sa.text(
                f"DELETE FROM {table} WHERE {scope} = :scope AND product_id = :product "
                "AND id <> :id"
            ),
            {"scope": keep[0], "product": keep[1], "id": keep_id},
        )
        assignments = ", ".join(f"{q} = :{q}" for q in quantities)
        bind.execute(
            sa.text(f"UPDATE {table} SET {assignments} WHERE id = :id"),
            {"id": keep_id, **dict(zip(quantities, totals, strict=True))},
        )


def downgrade() -> None:
    for table in _REFERRING:
        if table in _UNIQUE:
            _merge_per_product(table)
        with op.batch_alter_table(table) as batch_op:
            if table in _UNIQUE:
                old, new, scope = _UNIQUE[table]
                batch_op.drop_constraint(new, type_="unique")
                batch_op.create_unique_constraint(old, [scope, "product_id"])
            batch_op.drop_constraint(f"fk_{table}_variant_product", type_="foreignkey")
            batch_op.drop_index(op.f(f"ix_{table}_variant_id"))
            batch_op.drop_column("variant_id")
    op.drop_column("order_line", "options")
    op.drop_index(op.f("ix_product_variant_product_id"), table_name="product_variant")
    op.drop_table("product_variant")
    op.drop_index(op.f("ix_product_option_product_id"), table_name="product_option")
    op.drop_table("product_option")
