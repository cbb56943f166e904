"""pricing: how far the history and protection jobs got

Revision ID: 0002_pricing_job_mark
Revises: 0001_pricing

- ``pricing_job_mark``: one row per job (``name``): the moment up to which the history job
  wrote the scheduled prices' boundaries (``mark_at``), the history row up to which the
  protection job credited price drops (``mark_id``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0002_pricing_job_mark"
down_revision: str | Sequence[str] | None = "0001_pricing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pricing_job_mark",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("mark_at", server.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("mark_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pricing_job_mark")),
    )


def downgrade() -> None:
    op.drop_table("pricing_job_mark")
