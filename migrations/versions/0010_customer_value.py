"""customer value: each customer's lifetime value and churn risk, and the fits of the models

Revision ID: 0010_core
Revises: 0009_core
Create Date: 2027-01-10 10:00:00

- ``customer_value``: a customer's P(alive), expected purchases and spend, margin rate, lifetime
  value (minor units, 64 bits), churn probability with its reasons, and why figures are null
  when the models could not be fitted (one row per customer with a purchase), kept current by
  the insights job.
- ``clv_model_fit``: every fit of BG/NBD and Gamma-Gamma on the shop's purchases (parameters,
  log-likelihoods, customers, calibration end, convergence, the settings used): the history.

The tables start empty: the insights job (or ``shopgraph insights rebuild``) fills them.
Downgrading drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_core"
down_revision: str | Sequence[str] | None = "0009_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_value",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("expected_purchases", sa.Float(), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("expected_spend", sa.BigInteger(), nullable=True),
        sa.Column("margin_rate", sa.Float(), nullable=True),
        sa.Column("clv_amount", sa.BigInteger(), nullable=True),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("churn_reasons", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_value_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_value")),
    )
    op.create_table(
        "clv_model_fit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calibration_end", sa.Date(), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("repeat_customers", sa.Integer(), nullable=False),
        sa.Column("r", sa.Float(), nullable=True),
        sa.Column("alpha", sa.Float(), nullable=True),
        sa.Column("a", sa.Float(), nullable=True),
        sa.Column("b", sa.Float(), nullable=True),
        sa.Column("log_likelihood", sa.Float(), nullable=True),
        sa.Column("p", sa.Float(), nullable=True),
        sa.Column("q", sa.Float(), nullable=True),
        sa.Column("v", sa.Float(), nullable=True),
        sa.Column("spend_log_likelihood", sa.Float(), nullable=True),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("annual_discount_rate", sa.Float(), nullable=False),
        sa.Column("default_margin_rate", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clv_model_fit")),
    )
    op.create_index("ix_clv_model_fit_fitted_at", "clv_model_fit", ["fitted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_clv_model_fit_fitted_at", table_name="clv_model_fit")
    op.drop_table("clv_model_fit")
    op.drop_table("customer_value")
