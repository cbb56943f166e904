"""audiences: saved customer rules, their stored memberships and the joins and leaves

Revision ID: 0011_core
Revises: 0010_core
Create Date: 2027-01-10 10:00:00

- ``audience``: a key, a name, a description and a rule (JSON data: a tree of all/any/not and
  conditions), with the moment its memberships were last computed.
- ``audience_member``: the customers in each audience as of that computation (one row per
  audience and customer), which plugins check.
- ``audience_change``: a row each time a customer joins or leaves an audience.

The tables start empty. Downgrading drops them, and with them every audience.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_core"
down_revision: str | Sequence[str] | None = "0010_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audience",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience")),
        sa.UniqueConstraint("key", name=op.f("uq_audience_key")),
    )
    op.create_table(
        "audience_member",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audience.id"],
            name=op.f("fk_audience_member_audience_id_audience"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_audience_member_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audience_id", "customer_id", name=op.f("pk_audience_member")),
    )
    op.create_index(
        op.f("ix_audience_member_customer_id"), "audience_member", ["customer_id"], unique=False
    )
    op.create_table(
        "audience_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("JOINED", "LEFT", name="audiencechangekind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audience.id"],
            name=op.f("fk_audience_change_audience_id_audience"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_audience_change_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_change")),
    )
    op.create_index(
        "ix_audience_change_audience_at", "audience_change", ["audience_id", "at"], unique=False
    )
    op.create_index(
        op.f("ix_audience_change_customer_id"), "audience_change", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_audience_change_customer_id"), table_name="audience_change")
    op.drop_index("ix_audience_change_audience_at", table_name="audience_change")
    op.drop_table("audience_change")
    op.drop_index(op.f("ix_audience_member_customer_id"), table_name="audience_member")
    op.drop_table("audience_member")
    op.drop_table("audience")
