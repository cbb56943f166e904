"""surveys: satisfaction surveys (CSAT, NPS) and the customers' opt-out

Revision ID: 0014_core
Revises: 0013_core
Create Date: 2027-02-01 10:00:00

- ``survey``: one survey sent to a customer — its kind (CSAT, NPS), its trigger (DELIVERY,
  RETURN, SERVICE_CONTACT, PERIODIC) and subject (``subject_key``, unique per trigger, with
  the order, shipment and carrier it is about), its state (SENT, ANSWERED, EXPIRED), and the
  answer (score and comment).
- ``customer.surveys_opt_out``: the customer asked for no surveys (false for everyone at
  first).

The table starts empty. Downgrading drops it and the column, and with them every survey.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_core"
down_revision: str | Sequence[str] | None = "0013_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.add_column(
        "customer",
        sa.Column("surveys_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "survey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("surveykind", "CSAT", "NPS"), nullable=False),
        sa.Column(
            "trigger",
            _enum("surveytrigger", "DELIVERY", "RETURN", "SERVICE_CONTACT", "PERIODIC"),
            nullable=False,
        ),
        sa.Column("subject_key", sa.String(length=120), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("carrier", sa.String(length=120), nullable=True),
        sa.Column("state", _enum("surveystate", "SENT", "ANSWERED", "EXPIRED"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_survey_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["order.id"], name=op.f("fk_survey_order_id_order")),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipment.id"], name=op.f("fk_survey_shipment_id_shipment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey")),
        sa.UniqueConstraint("trigger", "subject_key", name="survey_subject"),
    )
    op.create_index(
        "ix_survey_customer_kind_sent", "survey", ["customer_id", "kind", "sent_at"], unique=False
    )
    op.create_index("ix_survey_state_expires", "survey", ["state", "expires_at"], unique=False)
    op.create_index(op.f("ix_survey_order_id"), "survey", ["order_id"], unique=False)
    op.create_index(op.f("ix_survey_sent_at"), "survey", ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_survey_sent_at"), table_name="survey")
    op.drop_index(op.f("ix_survey_order_id"), table_name="survey")
    op.drop_index("ix_survey_state_expires", table_name="survey")
    op.drop_index("ix_survey_customer_kind_sent", table_name="survey")
    op.drop_table("survey")
    op.drop_column("customer", "surveys_opt_out")
