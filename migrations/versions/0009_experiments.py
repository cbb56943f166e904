"""experiments: A/B tests' definitions and their visitors' first exposures

Revision ID: 0009_core
Revises: 0008_core
Create Date: 2026-12-20 10:00:00

- ``experiment``: an A/B test: its key, variants (with weights), primary metric, status and the
  sample every arm needs.
- ``experiment_exposure``: the first time a visitor was shown a variant of an experiment, one
  row per experiment and visitor (a unique constraint: concurrent first exposures insert one).

Downgrading drops both tables, and with them every experiment's history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_core"
down_revision: str | Sequence[str] | None = "0008_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column(
            "primary_metric",
            sa.Enum(
                "CONVERSION",
                "GMV_PER_VISITOR",
                "AOV",
                name="experimentmetric",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "DRAFT", "RUNNING", "STOPPED", name="experimentstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("min_sample_size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment")),
        sa.UniqueConstraint("key", name=op.f("uq_experiment_key")),
    )
    op.create_index(op.f("ix_experiment_status"), "experiment", ["status"], unique=False)
    op.create_table(
        "experiment_exposure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("exposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_experiment_exposure_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_experiment_exposure_customer_id_customer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_exposure")),
        sa.UniqueConstraint(
            "experiment_id", "visitor", name=op.f("uq_experiment_exposure_visitor")
        ),
    )
    op.create_index(
        op.f("ix_experiment_exposure_experiment_id"),
        "experiment_exposure",
        ["experiment_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_experiment_exposure_customer_id"),
        "experiment_exposure",
        ["customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_experiment_exposure_customer_id"), table_name="experiment_exposure")
    op.drop_index(op.f("ix_experiment_exposure_experiment_id"), table_name="experiment_exposure")
    op.drop_table("experiment_exposure")
    op.drop_index(op.f("ix_experiment_status"), table_name="experiment")
    op.drop_table("experiment")
