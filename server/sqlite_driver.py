"""The SQLite driver: aiosqlite, with one trip to its thread per statement.

aiosqlite runs every sqlite3 call on a thread of its own, and SQLAlchemy's adapter makes four
calls per statement: open a cursor, execute, fetch the rows, close the cursor. Each call is a
round trip between the event loop and that thread (a queue, a wake-up, a callback), which costs
far more than the statement itself when the statement reads a page of an indexed table. Here a
statement's cursor is opened, executed, read to the end and closed in one call on the thread;
SQLAlchemy then reads the rows from memory, as it already does for aiosqlite.

A transaction's BEGIN waits for its first statement and goes with it, on the same trip (see
:class:`OneTripConnection`). Server-side cursors (``stream()``) keep aiosqlite's own cursor, so
a streamed result is still read in chunks (its BEGIN, if pending, takes a trip of its own). Everything else (transactions, isolation level, functions, closing) is
SQLAlchemy's aiosqlite adapter unchanged.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)

# What one statement leaves behind: description, rowcount, lastrowid and every row.
_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(
    conn: sqlite3.Connection, sql: str, parameters: Any, begin: str | None, many: bool
) -> _Outcome:
    """Runs on the driver's thread: the transaction's BEGIN if it is still to be sent, then the
    whole life of one cursor (``executemany`` when ``many``)."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A DB-API cursor whose statement takes one round trip to the driver's thread.

    There is no driver cursor to keep: the outcome of the last statement is held here.
    """

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No call to the base: it would open a driver cursor (a round trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        # The driver cursor is already closed; the rows stay until fetched.
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Sequence[Any] | None) -> Any:
        await self._trip(operation, () if parameters is None else parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            outcome = await self._connection._execute(
                _run,
                self._connection._conn,
                operation,
                parameters,
                self._adapt_connection.take_begin(),  # type: ignore[attr-defined]
                many,
            )
            self._keep(outcome)

    def _keep(self, outcome: _Outcome) -> None:
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        # sqlite3 has one result set per statement.
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class StreamingCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """aiosqlite's own cursor, for results read in chunks; sends a pending BEGIN first."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Sequence[Any] | None) -> Any:
        begin = self._adapt_connection.take_begin()  # type: ignore[attr-defined]
        if begin is not None:
            await self._connection._execute(self._connection._conn.execute, begin)
        return await super()._execute_async(operation, parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, with one-trip cursors and a deferred BEGIN.

    A transaction's BEGIN is sent with its first statement (:meth:`defer_begin`): a read-only
    request then costs two trips, its statement and its ROLLBACK. A transaction that ends
    before any statement ran was never opened, and ending it costs no trip at all.
    """

    __slots__ = ("_begin",)
    _cursor_cls = OneTripCursor
    _ss_cursor_cls = StreamingCursor

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None

    def defer_begin(self, statement: str) -> None:
        """Open the transaction with ``statement`` (``BEGIN`` or ``BEGIN IMMEDIATE``) right
        before the next statement, on the same trip."""
        self._begin = statement

    def take_begin(self) -> str | None:
        """The BEGIN still to be sent, if any; it is the caller's to send from now on."""
        begin, self._begin = self._begin, None
        return begin

    def rollback(self) -> None:
        if self.take_begin() is None:
            super().rollback()

    def commit(self) -> None:
        if self.take_begin() is None:
            super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API module, handing out :class:`OneTripConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    """The module to give ``create_async_engine(module=...)`` for a ``sqlite+aiosqlite`` URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
