"""order fees and shipment plan: fees apart from discounts, the parcels planned at payment

Revision ID: 0004_core
Revises: 0003_core
Create Date: 2026-12-06 10:00:00

Until now an order kept one net ``discount_amount``: a fee (a positive order adjustment)
showed as a negative discount. Fees now have their own column; existing orders are split from
their stored adjustments (negative amounts are discounts, positive ones fees), and joined
again on the way down.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_core"
down_revision: str | Sequence[str] | None = "0003_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_order = sa.table(
    "order",
    sa.column("id", sa.Integer()),
    sa.column("adjustments", sa.JSON()),
    sa.column("discount_amount", sa.Integer()),
    sa.column("fee_amount", sa.Integer()),
)


# Plain ADD/DROP COLUMN (no batch mode): SQLite needs no table rebuild for these.


def upgrade() -> None:
    op.add_column(
        "order", sa.Column("fee_amount", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "order", sa.Column("shipment_plan", sa.JSON(), nullable=False, server_default="[]")
    )
    bind = op.get_bind()
    placed_with_adjustments = bind.execute(
        sa.select(_order.c.id, _order.c.adjustments).where(
            sa.cast(_order.c.adjustments, sa.Text()) != "[]"
        )
    ).all()
    for order_id, adjustments in placed_with_adjustments:
        amounts = [int(adj.get("amount", 0)) for adj in adjustments or ()]
        fees = sum(a for a in amounts if a > 0)
        if fees:
            bind.execute(
                sa.update(_order)
                .where(_order.c.id == order_id)
                .values(discount_amount=-sum(a for a in amounts if a < 0), fee_amount=fees)
            )


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(
        sa.update(_order)
        .where(_order.c.fee_amount != 0)
        .values(discount_amount=_order.c.discount_amount - _order.c.fee_amount)
    )
    op.drop_column("order", "shipment_plan")
    op.drop_column("order", "fee_amount")
