"""loyalty: accounts, ledger, redemptions

Revision ID: 0001_loyalty
Revises:
Depends on: 0001_core (the loyalty branch needs the core's customer, cart and order)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_loyalty"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("loyalty",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    op.create_table(
        "loyalty_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("lifetime_earned", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_loyalty_account_balance_nonneg")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_loyalty_account_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_account")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_loyalty_account_customer_id")),
    )
    op.create_table(
        "loyalty_redemption",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cart_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cart_id"],
            ["cart.id"],
            name=op.f("fk_loyalty_redemption_cart_id_cart"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_loyalty_redemption_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_loyalty_redemption_order_id_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_redemption")),
        sa.UniqueConstraint("cart_id", name=op.f("uq_loyalty_redemption_cart_id")),
    )
    with op.batch_alter_table("loyalty_redemption", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_redemption_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "loyalty_transaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "EARN",
                "REDEEM",
                "RELEASE",
                "REVERSE",
                name="loyaltytransactionkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("cart_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cart_id"], ["cart.id"], name=op.f("fk_loyalty_transaction_cart_id_cart")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_loyalty_transaction_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_loyalty_transaction_order_id_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_transaction")),
        sa.UniqueConstraint("kind", "order_id", name="kind_order"),
    )
    with op.batch_alter_table("loyalty_transaction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_transaction_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("loyalty_transaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_transaction_customer_id"))

    op.drop_table("loyalty_transaction")
    with op.batch_alter_table("loyalty_redemption", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_redemption_customer_id"))

    op.drop_table("loyalty_redemption")
    op.drop_table("loyalty_account")
