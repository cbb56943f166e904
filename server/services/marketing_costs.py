"""Marketing costs: what the shop spent per shop day, channel and campaign, imported by staff
from rows or a CSV file (``importMarketingCosts``, ``shopgraph insights import-costs``).

An import is all or nothing: every row is checked first, and the first bad one is refused
with an :class:`~server.services.errors.InvalidImportRow` naming its number and column, before
anything is written. Importing a (day, channel, campaign) that is already there replaces its
amount: rows are written with ``INSERT … ON CONFLICT DO UPDATE``, which is atomic on
PostgreSQL, and SQLite runs one writer at a time, so concurrent imports never fail on the
unique key nor leave two rows for one key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.graphql.money import exponent
from server.models import MarketingCost, SalesChannel, utcnow
from server.models.channels import CAMPAIGN_MAX
from server.progress import Progress
from server.services import audit
from server.services.channels import parse_channel
from server.services.errors import InvalidImportRow, ValidationFailed
from server.services.insight_runs import dialect_of, insert

MAX_ROWS = 10_000
MAX_CSV_BYTES = 1_048_576  # 1 MiB of UTF-8
COLUMNS = ("day", "channel", "campaign", "amount")
# One day's cost of one channel and campaign: a trillion minor units is nobody's budget.
MAX_AMOUNT_MINOR = 10**12
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
CHUNK = 1000
AUDITED_AS = "importMarketingCosts"


@dataclass(frozen=True)
class CostRow:
    """A row as given: text (CSV) or values a GraphQL input already typed."""

    day: str | date
    channel: str | None
    campaign: str | None
    amount: str | Decimal


@dataclass(frozen=True)
class Cost:
    """A checked row."""

    day: date
    channel: SalesChannel
    campaign: str
    amount: int  # minor units


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    replaced: int  # rows whose (day, channel, campaign) was there before
    total: int  # the imported amounts, minor units
    currency: str
    first_day: date
    last_day: date

    def describe(self) -> str:
        return (
            f"{self.rows} marketing cost rows imported ({self.replaced} replaced), "
            f"{self.first_day} to {self.last_day}"
        )


def _day(value: str | date, bad: Any) -> date:
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise bad("day", f"{value.strip()[:40]!r} is not a day (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise bad("day", f"{day} is out of range ({FIRST_DAY} to {LAST_DAY})")
    return day


def _amount(value: str | Decimal, currency: str, bad: Any) -> int:
    if isinstance(value, Decimal):
        amount = value
    else:
        text = value.strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise bad("amount", f"{text[:40]!r} is not a decimal amount (e.g. 1280.50)") from None
    if not amount.is_finite():
        raise bad("amount", f"{amount} is not an amount")
    if amount < 0:
        raise bad("amount", f"{amount} is negative: a cost is zero or more")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise bad("amount", f"{amount} has more decimals than {currency} allows")
    minor = int(scaled)
    if minor > MAX_AMOUNT_MINOR:
        raise bad("amount", f"{amount} is out of range for one day's cost")
    return minor


def check_rows(rows: Sequence[CostRow], currency: str, *, field: str) -> list[Cost]:
    """Every row checked, in order, or the first bad one refused. ``field`` names the input in
    errors: ``rows`` (an error's field is then ``rows.<index>.<column>``) or ``csv``."""
    if not rows:
        raise ValidationFailed("no rows to import", field=field)
    if len(rows) > MAX_ROWS:
        raise ValidationFailed(
            f"{len(rows):,} rows: at most {MAX_ROWS:,} per import (split the file)", field=field
        )
    checked: list[Cost] = []
    seen: dict[tuple[date, SalesChannel, str], int] = {}
    for number, row in enumerate(rows, start=1):

        def bad(column: str, message: str, number: int = number) -> InvalidImportRow:
            where = f"rows.{number - 1}.{column}" if field == "rows" else field
            return InvalidImportRow(number, column, message, field=where)

        day = _day(row.day, bad)
        try:
            channel = parse_channel(row.channel)
        except ValidationFailed as exc:
            raise bad("channel", exc.message) from None
        if channel is None:
            raise bad("channel", "a cost needs its channel")
        campaign = (row.campaign or "").strip()
        if len(campaign) > CAMPAIGN_MAX:
            raise bad("campaign", f"at most {CAMPAIGN_MAX} characters")
        amount = _amount(row.amount, currency, bad)
        key = (day, channel, campaign)
        if key in seen:
            raise bad(
                "campaign",
                f"the same day, channel and campaign as row {seen[key]}: give each once",
            )
        seen[key] = number
        checked.append(Cost(day, channel, campaign, amount))
    return checked


def parse_csv(text: str) -> list[CostRow]:
    """The rows of a CSV text with the header ``day,channel,campaign,amount`` (in any order,
    any case; a byte-order mark and empty lines are ignored). At most :data:`MAX_CSV_BYTES`."""
    if len(text.encode("utf-8")) > MAX_CSV_BYTES:
        raise ValidationFailed(
            f"the CSV text is over {MAX_CSV_BYTES:,} bytes: split it", field="csv"
        )
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except csv.Error as exc:
        raise ValidationFailed(f"not CSV: {exc}", field="csv") from None
    if not lines:
        raise ValidationFailed(
            f"the CSV text is empty: its header is {','.join(COLUMNS)}", field="csv"
        )
    header = [cell.strip().lower() for cell in lines[0][1]]
    if sorted(header) != sorted(COLUMNS):
        raise ValidationFailed(
            f"the header must name the columns {','.join(COLUMNS)}, found {','.join(header)[:200]}",
            field="csv",
        )
    position = {name: header.index(name) for name in COLUMNS}
    rows: list[CostRow] = []
    for number, (_, cells) in enumerate(lines[1:], start=1):
        if len(cells) != len(header):
            raise InvalidImportRow(
                number,
                "row",
                f"{len(cells)} cells where the header has {len(header)}",
                field="csv",
            )
        rows.append(
            CostRow(
                day=cells[position["day"]],
                channel=cells[position["channel"]],
                campaign=cells[position["campaign"]],
                amount=cells[position["amount"]],
            )
        )
    return rows


def _chunks(costs: Sequence[Cost]) -> Iterator[Sequence[Cost]]:
    for start in range(0, len(costs), CHUNK):
        yield costs[start : start + CHUNK]


async def write_costs(
    session: AsyncSession,
    costs: Sequence[Cost],
    currency: str,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Upsert checked rows in the session's transaction (not committed), :data:`CHUNK` at a
    time (one step of ``progress`` each)."""
    now = utcnow()
    replaced = 0
    upsert = insert(dialect_of(session))(MarketingCost)
    upsert = upsert.on_conflict_do_update(
        index_elements=["day", "channel", "campaign"],
        set_={name: upsert.excluded[name] for name in ("amount", "currency", "updated_at")},
    )
    for chunk in _chunks(costs):
        keys = [(c.day, c.channel, c.campaign) for c in chunk]
        existing = tuple_(
            col(MarketingCost.day), col(MarketingCost.channel), col(MarketingCost.campaign)
        ).in_(keys)
        replaced += (
            await session.scalar(select(func.count()).select_from(MarketingCost).where(existing))
            or 0
        )
        await session.execute(
            upsert,
            [
                {
                    "day": c.day,
                    "channel": c.channel,
                    "campaign": c.campaign,
                    "amount": c.amount,
                    "currency": currency,
                    "updated_at": now,
                }
                for c in chunk
            ],
        )
        if progress is not None:
            progress.advance(f"{len(chunk)} rows written")
    return ImportSummary(
        rows=len(costs),
        replaced=replaced,
        total=sum(c.amount for c in costs),
        currency=currency,
        first_day=min(c.day for c in costs),
        last_day=max(c.day for c in costs),
    )


async def import_costs(
    session: AsyncSession,
    currency: str,
    *,
    rows: Sequence[CostRow] | None = None,
    csv_text: str | None = None,
) -> ImportSummary:
    """Check and write one import: exactly one of ``rows`` and ``csv_text``, in the shop's
    ``currency``. Nothing is written when anything is refused."""
    if (rows is None) == (csv_text is None):
        raise ValidationFailed("give either rows or csv, not both nor neither", field="rows")
    if csv_text is not None:
        costs = check_rows(parse_csv(csv_text), currency, field="csv")
    else:
        costs = check_rows(rows or [], currency, field="rows")
    return await write_costs(session, costs, currency)


def import_file_command(settings: Settings, path: Path) -> str:
    """``shopgraph insights import-costs FILE.csv``: the file checked and written in one
    transaction with a progress bar, and audited (as ``importMarketingCosts`` by
    ``cli:<user>``); what to print."""
    from server.db import create_engine, mark_write, session_factory
    from server.migrate import run_async

    if path.stat().st_size > MAX_CSV_BYTES:
        raise ValidationFailed(
            f"{path.name} is over {MAX_CSV_BYTES:,} bytes: split it into files of at most "
            f"{MAX_ROWS:,} rows",
            field="csv",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{path.name} is not UTF-8 text", field="csv") from None
    currency = settings.currency

    async def _main() -> ImportSummary:
        engine = create_engine(settings.database_url)
        try:
            costs = check_rows(parse_csv(text), currency, field="csv")
            chunks = -(-len(costs) // CHUNK)
            with Progress("import-costs", 1 + chunks) as progress:
                progress.advance(f"{len(costs)} rows checked")
                async with session_factory(engine)() as session:
                    await mark_write(session)
                    summary = await write_costs(session, costs, currency, progress=progress)
                    await audit.record_command(
                        session,
                        AUDITED_AS,
                        {"file": path.name, "rows": summary.rows},
                        "ImportMarketingCostsSuccess",
                    )
                    await session.commit()
            return summary
        finally:
            await engine.dispose()

    return run_async(_main).describe()
