"""kpi aggregates: per-period counters and sets, first purchase days, visitor ids, watermark

Revision ID: 0013_core
Revises: 0012_core
Create Date: 2027-02-01 10:00:00

- ``kpi_aggregate``: one row per shop day, ISO week and calendar month with the KPIs'
  counters and the sets of customers and visitors their distinct counts count.
- ``kpi_customer_first``: each customer's first purchase day.
- ``kpi_visitor``: the integer standing for an anonymous visitor's session id in the sets.
- ``kpi_watermark``: where the last refresh of the aggregates stopped reading.
- ``payment.updated_at`` (when its status last changed), and the indexes the refresh reads
  by: ``order.placed_at``, ``order.updated_at``, ``payment.created_at``,
  ``payment.updated_at``.

The tables start empty: ``shopgraph insights kpis-rebuild`` (or the first run of the job
``core.kpis``) fills them. Downgrading drops them, the column and the indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_core"
down_revision: str | Sequence[str] | None = "0012_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "placed_orders",
    "paid_orders",
    "purchases",
    "gmv",
    "refunded_orders",
    "returned_orders",
    "new_customers",
    "paying_customers",
    "visits",
    "bounced_visits",
    "searches",
    "zero_result_searches",
    "payment_attempts",
    "payment_successes",
    "visitors",
    "viewers",
    "view_cart",
    "view_cart_order",
    "view_cart_order_paid",
    "carters",
    "cart_order",
    "payers",
)
SETS = (
    "customers_set",
    "new_customers_set",
    "visitors_set",
    "viewers_set",
    "carters_set",
    "orderers_set",
    "payers_set",
)


def upgrade() -> None:
    op.create_table(
        "kpi_aggregate",
        sa.Column(
            "period",
            sa.Enum("DAY", "WEEK", "MONTH", name="kpiperiod", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in SETS),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period", "start", name=op.f("pk_kpi_aggregate")),
    )
    op.create_table(
        "kpi_customer_first",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_kpi_customer_first_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_kpi_customer_first")),
    )
    op.create_index(
        "ix_kpi_customer_first_day", "kpi_customer_first", ["first_day"], unique=False
    )
    op.create_table(
        "kpi_visitor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_visitor")),
        sa.UniqueConstraint("session_id", name=op.f("uq_kpi_visitor_session_id")),
    )
    op.create_table(
        "kpi_watermark",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_order_id", sa.BigInteger(), nullable=False),
        sa.Column("max_payment_id", sa.BigInteger(), nullable=False),
        sa.Column("max_event_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kpi_watermark")),
    )
    with op.batch_alter_table("payment") as batch_op:
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_payment_updated_at"), ["updated_at"], unique=False)
        batch_op.create_index("ix_payment_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("order") as batch_op:
        batch_op.create_index("ix_order_placed_at", ["placed_at"], unique=False)
        batch_op.create_index("ix_order_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order") as batch_op:
        batch_op.drop_index("ix_order_updated_at")
        batch_op.drop_index("ix_order_placed_at")
    with op.batch_alter_table("payment") as batch_op:
        batch_op.drop_index("ix_payment_created_at")
        batch_op.drop_index(batch_op.f("ix_payment_updated_at"))
        batch_op.drop_column("updated_at")
    op.drop_table("kpi_watermark")
    op.drop_table("kpi_visitor")
    op.drop_index("ix_kpi_customer_first_day", table_name="kpi_customer_first")
    op.drop_table("kpi_customer_first")
    op.drop_table("kpi_aggregate")
