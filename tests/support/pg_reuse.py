"""Recycling the suite's PostgreSQL databases: ``CREATE DATABASE … TEMPLATE`` costs ~250 ms a
test, emptying the tables a test wrote to costs a few tens. A database goes back to the pool only when
its schema is still the template's (same relations, triggers, functions, types and migration
heads); anything else (a migration test, a dropped trigger) is dropped as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

# What a test may change besides rows; the template's fingerprint must match to reuse.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class
     WHERE relnamespace = 'public'::regnamespace),
  (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
     WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(typname, ',' ORDER BY typname) FROM pg_type
     WHERE typnamespace = 'public'::regnamespace),
  (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace),
  (SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version)
))
"""


@dataclass(frozen=True)
class Template:
    """What a database holds fresh from the template: its fingerprint, the rows of its
    non-empty tables and every sequence's state."""

    fingerprint: str
    tables: tuple[str, ...]
    rows: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
    sequences: dict[str, tuple[int, bool]]

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> Template:
        tables = tuple(
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' ORDER BY tablename"
            )
        )
        rows: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
        for table in tables:
            records = await conn.fetch(f'SELECT * FROM "{table}"')
            if records:
                rows[table] = (tuple(records[0].keys()), [tuple(r.values()) for r in records])
        sequences = {
            r["name"]: (r["last_value"], r["is_called"])
            for r in await conn.fetch(
                "SELECT sequencename AS name, coalesce(last_value, start_value) AS last_value, "
                "last_value IS NOT NULL AS is_called FROM pg_sequences "
                "WHERE schemaname = 'public'"
            )
        }
        return cls(str(await conn.fetchval(_FINGERPRINT)), tables, rows, sequences)

    async def restore(self, conn: asyncpg.Connection) -> bool:
        """Empty a database a test used back to the template's state; False when its schema
        changed (it cannot be reused)."""
        if await conn.fetchval(_FINGERPRINT) != self.fingerprint:
            return False
        # The tables the test wrote to, emptied by TRUNCATE: new files, so rows come back in
        # the order they are written, as in a new database (DELETE would leave dead rows whose
        # space later rows may take, and a query without ORDER BY would see another order).
        used = [
            r["name"]
            for r in await conn.fetch(
                " UNION ALL ".join(
                    f"SELECT '{t}' AS name WHERE EXISTS (SELECT 1 FROM \"{t}\")"
                    for t in self.tables
                )
            )
        ]
        async with conn.transaction():
            # The plugins' triggers stay quiet while the rows go and the template's come back.
            await conn.execute("SET LOCAL session_replication_role = replica")
            if used:
                await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in used) + " CASCADE")
            for table, (columns, records) in self.rows.items():
                await conn.copy_records_to_table(table, records=records, columns=list(columns))
            for name, (value, called) in self.sequences.items():
                await conn.execute(
                    "SELECT setval($1::regclass, $2, $3)", f'"{name}"', value, called
                )
        return True


async def evict_others(admin: asyncpg.Connection, database: str) -> None:
    """End every other connection to ``database`` (a server a test left, a listener)."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
