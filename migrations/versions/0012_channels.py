"""channels: where events and orders came from, and what each channel cost

Revision ID: 0012_core
Revises: 0011_core
Create Date: 2027-01-20 10:00:00

- ``customer_event`` and ``order`` get ``channel`` (APP, WEB, MINI_PROGRAM, COMMUNITY_GROUP,
  LIVE_STREAM, PAID, ORGANIC) and ``utm_source``, ``utm_medium``, ``utm_campaign``, all
  nullable (what came before says nothing of its channel); ``order`` also ``session_id``, a
  guest's behaviour session.
- Two partial indexes on ``customer_event`` (a customer's and a session's events that carry a
  channel, by time): the latest touch at checkout and the touches attribution reads.
- ``marketing_cost``: per shop day, channel and campaign ('' for none), an amount in minor
  units of a currency; one row per (day, channel, campaign).

Downgrading drops the table, the indexes and the columns, and with them every channel known.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_core"
down_revision: str | Sequence[str] | None = "0011_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = (
    "APP",
    "WEB",
    "MINI_PROGRAM",
    "COMMUNITY_GROUP",
    "LIVE_STREAM",
    "PAID",
    "ORGANIC",
)
_HAS_CHANNEL = sa.text("channel IS NOT NULL")


def _channel(nullable: bool = True) -> sa.Column[str]:
    return sa.Column(
        "channel",
        sa.Enum(*CHANNELS, name="saleschannel", native_enum=False, length=32),
        nullable=nullable,
    )


def _source_columns() -> list[sa.Column[str]]:
    return [
        _channel(),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        for column in _source_columns():
            batch_op.add_column(column)
    op.create_index(
        "ix_customer_event_customer_channel",
        "customer_event",
        ["customer_id", "occurred_at"],
        unique=False,
        sqlite_where=_HAS_CHANNEL,
        postgresql_where=_HAS_CHANNEL,
    )
    op.create_index(
        "ix_customer_event_session_channel",
        "customer_event",
        ["session_id", "occurred_at"],
        unique=False,
        sqlite_where=_HAS_CHANNEL,
        postgresql_where=_HAS_CHANNEL,
    )
    with op.batch_alter_table("order", schema=None) as batch_op:
        for column in _source_columns():
            batch_op.add_column(column)
        batch_op.add_column(sa.Column("session_id", sa.String(length=64), nullable=True))
    op.create_table(
        "marketing_cost",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _channel(nullable=False),
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketing_cost")),
        sa.UniqueConstraint("day", "channel", "campaign", name="day_channel_campaign"),
    )


def downgrade() -> None:
    op.drop_table("marketing_cost")
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.drop_column("session_id")
        for name in ("utm_campaign", "utm_medium", "utm_source", "channel"):
            batch_op.drop_column(name)
    op.drop_index("ix_customer_event_session_channel", table_name="customer_event")
    op.drop_index("ix_customer_event_customer_channel", table_name="customer_event")
    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        for name in ("utm_campaign", "utm_medium", "utm_source", "channel"):
            batch_op.drop_column(name)
