"""search analytics: searches grouped by their normalised text, clicks tied to their search

Revision ID: 0007_core
Revises: 0006_core
Create Date: 2026-11-30 03:00:00

``customer_event`` gets ``search_key`` (a SEARCH event's query trimmed, case-folded and with
its whitespace collapsed; filled in for the searches already recorded) and ``search_id`` (the
SEARCH event a VIEW or ADD_TO_CART is a click on), and the indexes the analytics read by: the
events of a kind in a period, a visitor's latest events, a search's clicks.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_core"
down_revision: str | Sequence[str] | None = "0006_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_event = sa.table(
    "customer_event",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("query", sa.Text()),
    sa.column("search_key", sa.Text()),
)


def _normalised(query: str) -> str:
    # As server.services.behaviour.search_key was when this revision was written.
    return " ".join(query.split()).casefold()


def upgrade() -> None:
    # Batch mode: SQLite adds a column with a foreign key by rebuilding the table.
    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_key", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("search_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_customer_event_search_id_customer_event"),
            "customer_event",
            ["search_id"],
            ["id"],
        )
        batch_op.create_index("ix_customer_event_kind_time", ["kind", "occurred_at"])
        batch_op.create_index("ix_customer_event_session_time", ["session_id", "occurred_at"])
        batch_op.create_index("ix_customer_event_search_id", ["search_id"])
    bind = op.get_bind()
    searches = bind.execute(
        sa.select(_event.c.id, _event.c.query).where(
            _event.c.kind == "SEARCH", _event.c.query.is_not(None)
        )
    ).all()
    for event_id, query in searches:
        key = _normalised(query)
        if key:
            bind.execute(
                sa.update(_event).where(_event.c.id == event_id).values(search_key=key)
            )


def downgrade() -> None:
    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_event_search_id")
        batch_op.drop_index("ix_customer_event_session_time")
        batch_op.drop_index("ix_customer_event_kind_time")
        batch_op.drop_constraint(
            batch_op.f("fk_customer_event_search_id_customer_event"), type_="foreignkey"
        )
        batch_op.drop_column("search_id")
        batch_op.drop_column("search_key")
