"""Counting the SQL statements a request runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from starlette.applications import Starlette

# The app's background outbox dispatcher shares the engine: its statements (its tables, and the
# BEGIN/COMMIT around them on SQLite, where transaction control is explicit SQL) are not the
# request's.
_NOT_THE_REQUEST = ("outbox_", "job_lease")
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def counting(app: Starlette) -> Iterator[list[str]]:
    """Collect the data statements run on the app's engine while the block runs."""
    statements: list[str] = []
    engine = app.state.shopgraph.engine.sync_engine

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith(_TRANSACTION_CONTROL) or any(t in statement for t in _NOT_THE_REQUEST):
            return
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
