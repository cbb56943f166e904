"""The SQLite driver: aiosqlite, with short reads on the event loop's thread and one trip to
the driver's thread for everything else.

aiosqlite runs every sqlite3 call on a thread of its own, and SQLAlchemy's adapter makes four
calls per statement: open a cursor, execute, fetch the rows, close the cursor. Each call is a
round trip between the event loop and that thread (a queue, a wake-up, a callback), and sqlite3
hands the GIL back and forth with the loop's thread on every row. For a statement that reads a
page of an indexed table, that costs far more than the statement itself.

- A read (a ``SELECT``) runs on the event loop's thread, within a budget of work
  (:data:`INLINE_READ_SECONDS`). One that would take longer is interrupted by SQLite's progress
  handler, having changed nothing, and runs again on the driver's thread. In WAL mode a read
  waits for no lock, so the loop is never held up for longer than the budget.
- Everything else (writes, ``BEGIN IMMEDIATE``, which waits for the write lock, ``COMMIT``,
  which may checkpoint) takes one trip to the driver's thread: the cursor is opened, executed,
  read to the end and closed in one call there. SQLAlchemy then reads the rows from memory, as it
  already does for aiosqlite.
- A connection whose thread still has work in hand (a statement whose request was cancelled)
  sends its next statement after it, on the thread, never beside it.

A transaction's BEGIN waits for its first statement and goes with it (see
:class:`OneTripConnection`); ending a transaction with ROLLBACK needs no trip. Server-side
cursors (``stream()``) keep aiosqlite's own cursor, so a streamed result is still read in chunks
on the thread (its BEGIN, if pending, takes a trip of its own). Everything else (isolation
level, functions, closing) is SQLAlchemy's aiosqlite adapter unchanged.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util.concurrency import await_

# The most a read may take on the event loop's thread before it moves to the driver's thread.
INLINE_READ_SECONDS = 0.002
# How often (in SQLite virtual machine instructions) a read on the loop's thread checks the time.
_PROGRESS_STEPS = 1000

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


def _is_read(operation: str, begin: str | None, many: bool) -> bool:
    """Whether a statement only reads, and waits for no lock on the way: a ``SELECT``, not part
    of an ``executemany``, not opening a transaction with ``BEGIN IMMEDIATE``."""
    return not many and begin != "BEGIN IMMEDIATE" and operation.lstrip()[:6].upper() == "SELECT"


def _read_inline(conn: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome | None:
    """Runs a read on the calling thread; None if it ran past :data:`INLINE_READ_SECONDS`, in
    which case SQLite interrupted it and it changed nothing."""
    deadline = time.perf_counter() + INLINE_READ_SECONDS
    clock = time.perf_counter

    def past_budget() -> bool:
        return clock() > deadline

    conn.set_progress_handler(past_budget, _PROGRESS_STEPS)
    try:
        return _run(conn, sql, parameters, None, False)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT:
            return None
        raise
    finally:
        conn.set_progress_handler(None, 0)


class DriverThread(aiosqlite.Connection):
    """aiosqlite's connection, counting the calls it hands its thread and those the thread
    has finished: when the two agree, the sqlite3 connection is free to use from the loop."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self.handed = 0  # written on the loop's thread only
        self.finished = 0  # written on the driver's thread only

    @property
    def idle(self) -> bool:
        return self.handed == self.finished

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        self.handed += 1
        return await super()._execute(self._counted, fn, args, kwargs)

    def _counted(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self.finished += 1


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
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapted._execute_mutex:
            begin = adapted.take_begin()
            if _is_read(operation, begin, many) and adapted.on_loop_thread():
                conn = self._connection._conn
                if begin is not None:
                    conn.execute(begin)  # a deferred BEGIN takes no lock
                    begin = None
                outcome = _read_inline(conn, operation, parameters)
                if outcome is not None:
                    self._keep(outcome)
                    return
            outcome = await self._connection._execute(
                _run, self._connection._conn, operation, parameters, begin, many
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
    """SQLAlchemy's aiosqlite connection, with one-trip cursors, reads on the loop's thread and
    a deferred BEGIN.

    A transaction's BEGIN is sent with its first statement (:meth:`defer_begin`). A read-only
    request costs no trip at all: its reads and its ROLLBACK run on the loop's thread. A
    transaction that ends before any statement ran was never opened, and ending it sends
    nothing.
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

    def on_loop_thread(self) -> bool:
        """Whether the sqlite3 connection may be used from the loop's thread right now."""
        driver = self._connection
        return isinstance(driver, DriverThread) and driver.idle

    def rollback(self) -> None:
        if self.take_begin() is not None:
            return
        if not self.on_loop_thread():
            super().rollback()  # after what the thread has in hand
            return
        try:
            # In WAL mode this drops the transaction's uncommitted pages and releases its locks:
            # no wait, no I/O.
            self._connection._conn.rollback()
        except Exception as error:
            self._handle_exception(error)

    def commit(self) -> None:
        if self.take_begin() is None:
            super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API module, handing out :class:`OneTripConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        if "async_creator_fn" in kw:
            return OneTripConnection(self, super().connect(*arg, **kw)._connection)
        database, *rest = arg or (kw.pop("database"),)
        iter_chunk_size = kw.pop("iter_chunk_size", 64)
        # Made on the driver's thread, used from the loop's thread too (never at once).
        kw["check_same_thread"] = False

        def connector() -> sqlite3.Connection:
            return sqlite3.connect(database, *rest, **kw)

        driver = DriverThread(connector, iter_chunk_size)
        driver._thread.daemon = True  # as SQLAlchemy's adapter does
        return OneTripConnection(self, await_(driver))


def dbapi() -> OneTripDBAPI:
    """The module to give ``create_async_engine(module=...)`` for a ``sqlite+aiosqlite`` URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
