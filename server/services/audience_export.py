"""Exporting an audience's members as CSV: customer id, e-mail, name and region, one row per
member (the rule evaluated now, in customer id order).

It is personal data: every export is audited — over GraphQL by the ``exportAudience``
mutation's own audit row, on the command line (``shopgraph insights export-audience``) by a
row this module writes under ``cli:<user>`` once the file is complete. A cell that a
spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.db import mark_write
from server.models import Audience, Customer
from server.progress import Progress
from server.services import audit
from server.services.audience_conditions import BuildContext
from server.services.audience_rules import Rule
from server.services.audiences import context, count_members, get_by_key, members_condition, rule_of
from server.services.errors import ValidationFailed

HEADER = ("customer_id", "email", "name", "region")
# The most rows the exportAudience mutation answers with; larger audiences go to a file.
GRAPHQL_MAX_ROWS = 10_000
BATCH = 1000
AUDITED_AS = "exportAudience"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Row = tuple[int, str, str, str]


def cell(value: str) -> str:
    """A text cell no spreadsheet takes for a formula."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def rows_query(
    rule: Rule, ctx: BuildContext, *, after: int, limit: int
) -> Select[int | None, str, str, str, str | None]:
    """The next ``limit`` members after customer id ``after``: id, e-mail, name, region."""
    return (
        select(
            col(Customer.id),
            col(Customer.email),
            col(Customer.last_name),
            col(Customer.first_name),
            col(Customer.region),
        )
        .where(members_condition(rule, ctx), col(Customer.id) > after)
        .order_by(col(Customer.id))
        .limit(limit)
    )


async def member_rows(
    session: AsyncSession, rule: Rule, ctx: BuildContext, *, batch: int = BATCH
) -> AsyncIterator[list[Row]]:
    """The members' rows, ``batch`` at a time (one statement each, keyset on the id)."""
    after = 0
    while True:
        found = (await session.execute(rows_query(rule, ctx, after=after, limit=batch))).all()
        if not found:
            return
        rows: list[Row] = []
        for customer_id, email, last, first, region in found:
            assert customer_id is not None  # a stored customer has its id
            # Chinese names are written family name first: 王小明 is last_name + first_name.
            rows.append((customer_id, email, f"{last}{first}", region or ""))
        yield rows
        if len(found) < batch:
            return
        after = rows[-1][0]


def _write(writer: Any, rows: Sequence[Row]) -> None:
    writer.writerows((i, cell(email), cell(name), cell(region)) for i, email, name, region in rows)


def filename(audience: Audience) -> str:
    return f"audience-{audience.key}.csv"


@dataclass(frozen=True)
class Export:
    audience: Audience
    filename: str
    rows: int
    csv: str


async def export_csv(
    session: AsyncSession, key: str, *, currency: str, max_rows: int | None = None
) -> Export:
    """The audience's members as CSV text (the ``exportAudience`` mutation). An audience of
    more than ``max_rows`` (GRAPHQL_MAX_ROWS) members is refused: export it to a file."""
    limit = GRAPHQL_MAX_ROWS if max_rows is None else max_rows
    audience = await get_by_key(session, key)
    rule = rule_of(audience, currency)
    ctx = context(session, currency)
    [count] = await count_members(session, [rule], ctx)
    if count > limit:
        raise ValidationFailed(
            f"audience {audience.key!r} has {count:,} members, more than the {limit:,} an "
            f"answer holds: export it with `shopgraph insights export-audience {audience.key} "
            "--output FILE.csv`",
            field="key",
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    rows = 0
    async for batch in member_rows(session, rule, ctx):
        _write(writer, batch)
        rows += len(batch)
    return Export(audience=audience, filename=filename(audience), rows=rows, csv=buffer.getvalue())


class CsvFile:
    """A CSV file written completely or not at all: rows go to a file beside ``path``, which
    :meth:`keep` renames to ``path`` and :meth:`discard` removes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        descriptor, partial = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
        self.partial = Path(partial)
        self.file = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(HEADER)

    def write(self, rows: Sequence[Row]) -> None:
        _write(self.writer, rows)

    def keep(self) -> None:
        self.file.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


async def export_to_file(session: AsyncSession, key: str, output: Path, *, currency: str) -> int:
    """Write the audience's members to ``output`` (complete or not at all) with a progress bar,
    and audit the export; the number of members written."""
    audience = await get_by_key(session, key)
    rule = rule_of(audience, currency)
    ctx = context(session, currency)
    [count] = await count_members(session, [rule], ctx)
    sink = CsvFile(output)
    rows = 0
    try:
        with Progress("export-audience", max(count, 1)) as progress:
            async for batch in member_rows(session, rule, ctx):
                sink.write(batch)
                rows += len(batch)
                progress.advance(f"{rows:,} members", len(batch))
            if not rows:
                progress.advance("no members")
        sink.keep()
    except BaseException:
        sink.discard()
        raise
    await session.commit()
    await mark_write(session)
    await audit.record_command(
        session,
        AUDITED_AS,
        {"key": audience.key, "output": output.name, "rows": rows},
        "ExportAudienceSuccess",
    )
    await session.commit()
    return rows


def export_command(settings: Settings, key: str, output: Path) -> str:
    """``shopgraph insights export-audience KEY --output FILE.csv``: what to print."""
    from server.db import create_engine, session_factory
    from server.migrate import run_async

    async def _main() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                return await export_to_file(session, key, output, currency=settings.currency)
        finally:
            await engine.dispose()

    rows = run_async(_main)
    return f"audience {key.strip().lower()!r}: {rows} members written to {output}"
