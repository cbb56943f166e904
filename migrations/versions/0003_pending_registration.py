"""pending registrations: an account is created when its e-mail address is confirmed

Revision ID: 0003_core
Revises: 0002_core
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_core"
down_revision: str | Sequence[str] | None = "0002_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_registration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_registration")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pending_registration_token_hash")),
    )
    op.create_index(
        op.f("ix_pending_registration_email"), "pending_registration", ["email"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_registration_email"), table_name="pending_registration")
    op.drop_table("pending_registration")
