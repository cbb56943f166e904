"""order gifts, returned units and shipping adjustments

Revision ID: 0017_core
Revises: 0016_core
Create Date: 2027-03-15 10:00:00

- ``order.shipping_list_amount``: the chosen shipping quote's price before the plugins'
  ``shipping_adjustments``; ``order.shipping_adjustments``: those adjustments, as placed
  ([{source, rule, label, amount}]). Orders placed before have no adjustments: their list
  price is what they paid for shipping.
- ``order_line.gift_rule``: set on a free line a plugin added (``cart_gifts``): the rule that
  gave it; null on a bought line.
- ``order_line.returned_quantity``: units of the line given back (``refund_lines``); never
  more than ``quantity``.

Downgrading drops the columns, and with them which lines were gifts and what was returned.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_core"
down_revision: str | Sequence[str] | None = "0016_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_order = sa.table(
    "order",
    sa.column("shipping_amount", sa.Integer()),
    sa.column("shipping_list_amount", sa.Integer()),
)


# Plain ADD/DROP COLUMN (no batch mode): SQLite needs no table rebuild for these.


def upgrade() -> None:
    op.add_column(
        "order",
        sa.Column("shipping_list_amount", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "order",
        sa.Column("shipping_adjustments", sa.JSON(), nullable=False, server_default="[]"),
    )
    op.get_bind().execute(
        sa.update(_order).values(shipping_list_amount=_order.c.shipping_amount)
    )
    op.add_column("order_line", sa.Column("gift_rule", sa.String(length=200), nullable=True))
    op.add_column(
        "order_line",
        sa.Column("returned_quantity", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("order_line", "returned_quantity")
    op.drop_column("order_line", "gift_rule")
    op.drop_column("order", "shipping_adjustments")
    op.drop_column("order", "shipping_list_amount")
