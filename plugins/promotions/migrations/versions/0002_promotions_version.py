"""promotions: a version row the promotions' and campaigns' triggers raise on every change

Revision ID: 0002_promotions_version
Revises: 0001_promotions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_promotions_version"
down_revision: str | Sequence[str] | None = "0001_promotions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A new value is never one seen before, even after a rolled-back change (a value read inside
# that transaction must not name other contents later): a sequence on PostgreSQL (never
# rolled back), a random 64-bit integer on SQLite.
PG_NEXT = "nextval('promotions_version_seq')"
SQLITE_NEXT = "random()"


def _bump(next_value: str) -> str:
    return f"UPDATE promotions_version SET value = {next_value} WHERE id = 1"
# The counters checkouts and cancels move (the engine reads them fresh): an UPDATE that
# changes nothing else leaves the version as it is; any other change renews it.
COUNTERS = {
    "promotions_promotion": ("used_count", "units_sold"),
    "promotions_campaign": ("spent_amount", "used_count", "exhausted_at"),
}


def _changed_beyond_counters(table: str, postgresql: bool) -> str:
    counters = COUNTERS[table]
    if postgresql:
        dropped = "ARRAY[" + ", ".join(f"'{c}'" for c in counters) + "]::text[]"
        return f"(to_jsonb(OLD) - {dropped}) IS DISTINCT FROM (to_jsonb(NEW) - {dropped})"
    # SQLite has no row-to-JSON: the columns as they are now (a revision adding a column
    # recreates this trigger).
    columns = [c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)]
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns if c not in counters)


def upgrade() -> None:
    op.create_table(
        "promotions_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions_version")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("CREATE SEQUENCE promotions_version_seq")
    first = PG_NEXT if postgresql else SQLITE_NEXT
    op.execute(f"INSERT INTO promotions_version (id, value) VALUES (1, {first})")
    if postgresql:
        op.execute(
            "CREATE FUNCTION promotions_bump_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_bump(PG_NEXT)}; RETURN NULL; END $$"
        )
        for table in COUNTERS:
            op.execute(
                f"CREATE TRIGGER {table}_version_change AFTER INSERT OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION promotions_bump_version()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} FOR EACH ROW "
                f"WHEN ({_changed_beyond_counters(table, True)}) "
                "EXECUTE FUNCTION promotions_bump_version()"
            )
        return
    for table in COUNTERS:
        for event in ("INSERT", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {_bump(SQLITE_NEXT)}; END"
            )
        op.execute(
            f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} "
            f"WHEN {_changed_beyond_counters(table, False)} BEGIN {_bump(SQLITE_NEXT)}; END"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in COUNTERS:
        if postgresql:
            for name in ("change", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_version_{name} ON {table}")
        else:
            for name in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_version_{name}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS promotions_bump_version()")
        op.execute("DROP SEQUENCE IF EXISTS promotions_version_seq")
    op.drop_table("promotions_version")
