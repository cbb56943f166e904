"""the chosen shipping quote and its delivery promise on the order

Revision ID: 0018_core
Revises: 0017_core

- ``order.shipping_method`` / ``shipping_carrier`` / ``shipping_source``: the quote the
  shopper chose (its code, carrier and the plugin that offered it), as placed.
- ``order.promised_from`` / ``promised_by``: that quote's delivery promise, dates in the
  shop's time zone, both included. Orders placed before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_core"
down_revision: str | Sequence[str] | None = "0017_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order", sa.Column("shipping_method", sa.String(length=64), nullable=True))
    op.add_column("order", sa.Column("shipping_carrier", sa.String(length=120), nullable=True))
    op.add_column("order", sa.Column("shipping_source", sa.String(length=64), nullable=True))
    op.add_column("order", sa.Column("promised_from", sa.Date(), nullable=True))
    op.add_column("order", sa.Column("promised_by", sa.Date(), nullable=True))


def downgrade() -> None:
    for name in ("promised_by", "promised_from", "shipping_source", "shipping_carrier"):
        op.drop_column("order", name)
    op.drop_column("order", "shipping_method")
