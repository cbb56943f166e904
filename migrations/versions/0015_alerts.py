"""alerts: rules on the shop's KPIs and the alerts raised by them, the anomaly detector and
the stock-out check

Revision ID: 0015_core
Revises: 0014_core
Create Date: 2027-02-01 10:00:00

- ``alert_rule``: a name, a KPI's key, a granularity (DAY, WEEK, MONTH), a condition (ABOVE,
  BELOW, RISES_BY, FALLS_BY) and its threshold, whether it is enabled, who made it and when.
- ``alert``: one row per breach — its ``key`` (rule and period, anomaly's KPI and day,
  stock-out's variant and day) is unique, so a breach is raised once whoever evaluates it —
  with its kind, rule (set null when the rule is deleted), KPI or product and variant, period,
  value, expectation, threshold, score, direction, message and state (OPEN, ACKNOWLEDGED: by
  whom, when).

The tables start empty. Downgrading drops them, and with them every rule and alert.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_core"
down_revision: str | Sequence[str] | None = "0014_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kpi_key", sa.String(length=100), nullable=False),
        sa.Column(
            "granularity", _enum("alertgranularity", "DAY", "WEEK", "MONTH"), nullable=False
        ),
        sa.Column(
            "condition",
            _enum("alertcondition", "ABOVE", "BELOW", "RISES_BY", "FALLS_BY"),
            nullable=False,
        ),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rule")),
    )
    op.create_index(op.f("ix_alert_rule_kpi_key"), "alert_rule", ["kpi_key"], unique=False)
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column(
            "kind", _enum("alertkind", "THRESHOLD", "ANOMALY", "STOCK_OUT"), nullable=False
        ),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("kpi_key", sa.String(length=100), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("variant_id", sa.Integer(), nullable=True),
        sa.Column("bucket_start", sa.Date(), nullable=False),
        sa.Column("bucket_end", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("direction", _enum("alertdirection", "UP", "DOWN"), nullable=False),
        sa.Column("bad_news", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", _enum("alertstate", "OPEN", "ACKNOWLEDGED"), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rule.id"],
            name=op.f("fk_alert_rule_id_alert_rule"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_alert_product_id_product")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id", "product_id"],
            ["product_variant.id", "product_variant.product_id"],
            name="fk_alert_variant_product",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_key")),
    )
    op.create_index("ix_alert_created_at", "alert", ["created_at"], unique=False)
    op.create_index(op.f("ix_alert_product_id"), "alert", ["product_id"], unique=False)
    op.create_index(op.f("ix_alert_rule_id"), "alert", ["rule_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_rule_id"), table_name="alert")
    op.drop_index(op.f("ix_alert_product_id"), table_name="alert")
    op.drop_index("ix_alert_created_at", table_name="alert")
    op.drop_table("alert")
    op.drop_index(op.f("ix_alert_rule_kpi_key"), table_name="alert_rule")
    op.drop_table("alert_rule")
