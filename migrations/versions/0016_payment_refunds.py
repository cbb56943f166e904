"""payment refunds: parts of a captured payment given back

Revision ID: 0016_core
Revises: 0015_core
Create Date: 2027-03-01 10:00:00

- ``payment_refund``: one row per part of a captured payment given back
  (``server.services.gateways.refund_amount``, e.g. a price-protection credit): the payment,
  its order, the amount and currency, the gateway's reference and message, the reason and
  when. The parts of a payment never add up to more than its amount.

The table starts empty. Downgrading drops it, and with it the record of every part refund.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_core"
down_revision: str | Sequence[str] | None = "0015_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_refund",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_payment_refund_order_id_order")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payment.id"], name=op.f("fk_payment_refund_payment_id_payment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_refund")),
    )
    op.create_index(
        op.f("ix_payment_refund_order_id"), "payment_refund", ["order_id"], unique=False
    )
    op.create_index(
        op.f("ix_payment_refund_payment_id"), "payment_refund", ["payment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_refund_payment_id"), table_name="payment_refund")
    op.drop_index(op.f("ix_payment_refund_order_id"), table_name="payment_refund")
    op.drop_table("payment_refund")
