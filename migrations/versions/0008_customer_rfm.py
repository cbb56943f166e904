"""customer RFM: each customer's figures and segment, segment changes, insight runs

Revision ID: 0008_core
Revises: 0007_core
Create Date: 2026-12-20 10:00:00

- ``customer_rfm``: a customer's recency, frequency and monetary figures, their 1-5 scores
  and segment (one row per customer with a purchase), kept current by the insights job.
- ``customer_segment_change``: a row each time a customer's segment changes, for "movement
  between segments since a date".
- ``insight_run``: the last recomputation of each insight and the data it saw.

The tables start empty: the insights job (or ``shopgraph insights rebuild``) fills them.
Downgrading drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_core"
down_revision: str | Sequence[str] | None = "0007_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_rfm",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.BigInteger(), nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("r_score", sa.Integer(), nullable=False),
        sa.Column("f_score", sa.Integer(), nullable=False),
        sa.Column("m_score", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_rfm_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_rfm")),
    )
    op.create_index(op.f("ix_customer_rfm_segment"), "customer_rfm", ["segment"], unique=False)
    op.create_table(
        "customer_segment_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("from_segment", sa.String(length=32), nullable=True),
        sa.Column("to_segment", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_segment_change_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_segment_change")),
    )
    op.create_index(
        op.f("ix_customer_segment_change_customer_id"),
        "customer_segment_change",
        ["customer_id"],
        unique=False,
    )
    op.create_index(
        "ix_customer_segment_change_at", "customer_segment_change", ["at"], unique=False
    )
    op.create_table(
        "insight_run",
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("step", name=op.f("pk_insight_run")),
    )


def downgrade() -> None:
    op.drop_table("insight_run")
    op.drop_index("ix_customer_segment_change_at", table_name="customer_segment_change")
    op.drop_index(
        op.f("ix_customer_segment_change_customer_id"), table_name="customer_segment_change"
    )
    op.drop_table("customer_segment_change")
    op.drop_index(op.f("ix_customer_rfm_segment"), table_name="customer_rfm")
    op.drop_table("customer_rfm")
