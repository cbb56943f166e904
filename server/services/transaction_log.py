"""Reading a transaction log from a CSV file into the arrays that server.services.clv takes.

The file has a header row; the caller names the customer, date and (optional) amount columns.
Dates are ISO (``2024-03-01``, a time after it is ignored) or compact (``20240301``), found from
the first row; any other layout needs an explicit strptime ``date_format`` (slower). Every
error names the line, or the transaction (the data row, counting from 1), at fault.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.services.clv import InvalidTransactions

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
_COMPACT = re.compile(r"\d{8}$")


@dataclass(frozen=True)
class TransactionLog:
    """One entry per row of the file: customer ids (strings), days, amounts (or None)."""

    customers: npt.NDArray[np.str_]
    dates: npt.NDArray[np.datetime64]
    amounts: npt.NDArray[np.float64] | None

    @property
    def rows(self) -> int:
        return int(self.customers.shape[0])


def read_transactions_csv(
    path: Path,
    *,
    customer: str,
    date: str,
    amount: str | None = None,
    date_format: str | None = None,
) -> TransactionLog:
    """Read ``path``'s ``customer``, ``date`` and ``amount`` columns. Raises
    :class:`~server.services.clv.InvalidTransactions` for a missing column, a short row, a date
    or an amount that does not parse (naming the line), or a file without rows."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InvalidTransactions(f"{path.name} is empty")
        names = [h.strip() for h in header]
        wanted = [customer, date] + ([amount] if amount is not None else [])
        missing = [w for w in wanted if w not in names]
        if missing:
            raise InvalidTransactions(
                f"{path.name} has no column {', '.join(map(repr, missing))} "
                f"(its columns: {', '.join(names)})"
            )
        at_customer, at_date = names.index(customer), names.index(date)
        at_amount = names.index(amount) if amount is not None else -1
        width = max(at_customer, at_date, at_amount) + 1
        ids: list[str] = []
        days: list[str] = []
        spent: list[str] = []
        # One plain loop appending to a list per column: the fastest way with the csv module.
        for row in reader:
            if len(row) < width:
                if not row:
                    continue
                raise InvalidTransactions(f"{path.name}, line {reader.line_num}: too few columns")
            ids.append(row[at_customer])
            days.append(row[at_date])
            if at_amount >= 0:
                spent.append(row[at_amount])
    if not ids:
        raise InvalidTransactions(f"{path.name} has no transactions")
    customers = np.array([text.strip() for text in ids], dtype=np.str_)
    del ids
    dates = _parse_dates([text.strip() for text in days], date_format, path)
    del days
    amounts = _parse_amounts(spent, path) if amount is not None else None
    return TransactionLog(customers, dates, amounts)


def _parse_dates(raw: list[str], date_format: str | None, path: Path) -> npt.NDArray[np.datetime64]:
    if date_format is not None:
        days: list[str] = []
        for row, text in enumerate(raw, start=1):
            try:
                days.append(datetime.strptime(text, date_format).date().isoformat())
            except ValueError as exc:
                raise InvalidTransactions(
                    f"{path.name}, transaction {row}: date {text!r} is not {date_format!r}"
                ) from exc
        return np.array(days, dtype="datetime64[D]")
    if _ISO.match(raw[0]):
        iso = [text[:10] for text in raw]
    elif _COMPACT.match(raw[0]):
        iso = [f"{text[:4]}-{text[4:6]}-{text[6:8]}" for text in raw]
    else:
        raise InvalidTransactions(
            f"{path.name}, transaction 1: date {raw[0]!r} is neither YYYY-MM-DD nor YYYYMMDD; "
            "give its format (e.g. --date-format %d/%m/%Y)"
        )
    try:
        return np.array(iso, dtype="datetime64[D]")
    except ValueError:
        pass
    # Find the row at fault, to name it.
    for row, (text, candidate) in enumerate(zip(raw, iso, strict=True), start=1):
        try:
            np.datetime64(candidate, "D")
        except ValueError:
            raise InvalidTransactions(
                f"{path.name}, transaction {row}: bad date {text!r}"
            ) from None
    raise InvalidTransactions(f"{path.name}: the dates do not parse")  # pragma: no cover


def _parse_amounts(raw: list[str], path: Path) -> npt.NDArray[np.float64]:
    try:
        return np.array(raw, dtype=np.float64)
    except ValueError:
        pass
    for row, text in enumerate(raw, start=1):
        try:
            float(text)
        except ValueError:
            raise InvalidTransactions(
                f"{path.name}, transaction {row}: bad amount {text!r}"
            ) from None
    raise InvalidTransactions(f"{path.name}: the amounts do not parse")  # pragma: no cover
