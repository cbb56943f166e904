"""``shopgraph pricing import-competitors FILE.csv``: a CSV file of competitor prices, read,
checked whole, then recorded in one transaction (service.competitors.record_prices)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import ObservationSource
from plugins.pricing.service import competitors
from plugins.pricing.service.competitors import (
    GTIN_MAX,
    MAX_ROWS,
    SKU_MAX,
    PriceRow,
    Unmatched,
    UnmatchedReason,
)
from server.graphql.money import to_minor
from server.models import utcnow
from server.plugin import run_in_session

COLUMNS = ("gtin", "sku", "amount", "currency", "observed_at")


class BadLine(ValueError):
    """A line of the file that cannot be read: nothing is imported."""

    def __init__(self, line: int, column: str, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Line:
    number: int  # in the file: the header is line 1
    row: PriceRow


def read_csv(path: Path) -> list[Line]:
    """The file's rows, each with its line number; :class:`BadLine` for the first that is
    not a price (an amount in major units with no more decimals than its currency has, a
    3-letter currency, an ISO 8601 observed_at, a gtin or a sku)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or ()]
        missing = [c for c in ("amount", "currency", "observed_at") if c not in header]
        if missing or ("gtin" not in header and "sku" not in header):
            raise BadLine(1, ",".join(missing) or "gtin", f"the header needs {', '.join(COLUMNS)}")
        reader.fieldnames = header
        lines: list[Line] = []
        for record in reader:
            number = reader.line_num
            lines.append(Line(number, _row(number, record)))
    if not lines:
        raise BadLine(2, "gtin", "the file holds no prices")
    return lines


def _row(number: int, record: dict[str, Any]) -> PriceRow:
    def text(column: str) -> str:
        value = record.get(column)
        return value.strip() if isinstance(value, str) else ""

    currency = text("currency").upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise BadLine(number, "currency", f"{currency[:10]!r} is not a 3-letter currency code")
    try:
        amount = to_minor(Decimal(text("amount")), currency)
    except (InvalidOperation, ValueError) as exc:
        raise BadLine(
            number, "amount", f"{text('amount')[:20]!r} is not an amount ({exc})"
        ) from exc
    if amount <= 0:
        raise BadLine(number, "amount", "an amount is positive")
    try:
        observed_at = datetime.fromisoformat(text("observed_at"))
    except ValueError as exc:
        raise BadLine(number, "observed_at", "not an ISO 8601 date or moment") from exc
    if observed_at.tzinfo is None:
        observed_at = observed_at.replace(tzinfo=UTC)
    gtin, sku = text("gtin") or None, text("sku") or None
    if len(gtin or "") > GTIN_MAX:
        raise BadLine(number, "gtin", f"at most {GTIN_MAX} characters")
    if len(sku or "") > SKU_MAX:
        raise BadLine(number, "sku", f"at most {SKU_MAX} characters")
    return PriceRow(amount=amount, currency=currency, observed_at=observed_at, gtin=gtin, sku=sku)


@dataclass
class Report:
    competitor: str
    rows: int
    dry_run: bool
    recorded: int = 0
    duplicates: int = 0
    matched: int = 0
    alerts: int = 0
    unmatched: list[tuple[int, Unmatched]] = field(default_factory=list)  # (line, why)

    def describe(self) -> str:
        if self.dry_run:
            head = (
                f"{self.competitor}: {self.rows} rows, {self.matched} matched, "
                f"{len(self.unmatched)} unmatched (dry run: nothing written)"
            )
        else:
            head = (
                f"{self.competitor}: {self.rows} rows, {self.recorded} recorded, "
                f"{self.duplicates} duplicates, {len(self.unmatched)} unmatched, "
                f"{self.alerts} alerts raised"
            )
        out = [head]
        by_reason: dict[UnmatchedReason, list[int]] = {}
        for line, u in self.unmatched:
            by_reason.setdefault(u.reason, []).append(line)
        for reason, numbers in sorted(by_reason.items()):
            out.append(f"  {reason.value}: lines {', '.join(str(n) for n in numbers)}")
        return "\n".join(out)


async def import_lines(
    session: AsyncSession,
    lines: list[Line],
    competitor: str,
    config: Any,
    *,
    dry_run: bool,
    advance: Any = None,
) -> Report:
    """Record (or with ``dry_run`` only match) ``lines`` in chunks of MAX_ROWS, in the
    session's transaction (committed by the caller)."""
    report = Report(competitor=competitor, rows=len(lines), dry_run=dry_run)
    at = utcnow()
    for start in range(0, len(lines), MAX_ROWS):
        chunk = lines[start : start + MAX_ROWS]
        rows = [line.row for line in chunk]
        if dry_run:
            matches, unmatched = await competitors.match_rows(session, rows)
            report.matched += len(matches)
        else:
            done = await competitors.record_prices(
                session, config, competitor, rows, ObservationSource.CSV, at
            )
            report.competitor = done.competitor
            report.recorded += done.recorded
            report.duplicates += done.duplicates
            report.alerts += len(done.alert_ids)
            unmatched = done.unmatched
        report.unmatched.extend((chunk[u.row - 1].number, u) for u in unmatched)
        if advance is not None:
            advance(f"lines {chunk[0].number}–{chunk[-1].number}", len(chunk))
    return report


def run(lines: list[Line], competitor: str, config: Any, *, dry_run: bool) -> Report:
    """The command's work on the shop's database, with a progress bar on stderr."""
    from server.progress import Progress

    with Progress("pricing import-competitors", max(1, len(lines))) as progress:

        async def work(session: AsyncSession) -> Report:
            # Committed by run_in_session when writing; a dry run rolls back.
            return await import_lines(
                session, lines, competitor, config, dry_run=dry_run, advance=progress.advance
            )

        return run_in_session(work, write=not dry_run)
