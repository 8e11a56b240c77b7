"""SQLite: the engine, the mutations' driver and the query plans' reads of one database file.

None of these connections is shared between uses: SQLite serialises writers
itself, and each use wants its connection configured its own way (the
driver's loop connection never waits for a lock, the plans' is read-only
with a budget per statement). Every one is opened here, with the same
pragmas (`configure_sqlite`), and closed by `SQLiteDatabase.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
import sqlalchemy as sa
from sqlalchemy import event

from graph.dialect._pool import ConnectionPool
from graph.dialect._sqlite_driver import SQLiteDriver
from graph.dialect._url import async_engine, sqlite_path
from graph.errors import StartupError
from graph.like import ILIKE_FUNCTION, ilike
from graph.temporal import INSTANT_FUNCTION, instant_sql

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from graph.dialect import SQLFunction
    from graph.dialect._driver import Driver

SQLITE_BUSY_TIMEOUT_SECONDS = 30
READ_THREADS = 2  # threads for the plans' statements too long for the event loop
IN_LOOP_BUDGET_SECONDS = 0.002
"""CPU time a plan's statement may hold the event loop for before it is sent to a thread."""
PROGRESS_STEPS = 1000  # SQLite virtual machine steps between two looks at the clock
LONG_STATEMENTS = 1024
RUNS_IN_THREAD = 100
"""Runs of a long statement in a thread before it is tried in the loop again (data change)."""
PREPARED_STATEMENTS = 256  # a plan's statement is prepared once, not per request
SQLITE_BUSY = 5
SQLITE_INTERRUPT = 9


def configure_sqlite(dbapi_connection: Any, *, wal: bool = True) -> None:
    """What every SQLite connection of ours needs, pooled or not."""
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, per connection (SPEC: enforced).
    cursor.execute("PRAGMA foreign_keys=ON")
    if wal:
        # Write-ahead logging lets the change capture and queries read while a
        # writer commits, and with synchronous=NORMAL a commit needs no fsync
        # (a power cut may lose the last commits, never corrupt the file). This
        # is the journal mode every SQLite-backed server uses; it is persistent
        # (the mode found is kept in the change log's meta table, and
        # `forgegraph uninstall` restores it). Without capture
        # (`serve --no-capture`) the database keeps the mode it has.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # A filter's `_ilike` calls it (graph/rules/to_sql.py), on whichever connection runs the filter.
    dbapi_connection.create_function(ILIKE_FUNCTION, 2, ilike, deterministic=True)
    # Filters and orderings compare dates and times as instants (graph.rules.to_sql.comparable).
    dbapi_connection.create_function(INSTANT_FUNCTION, 2, instant_sql, deterministic=True)


def _connect(database: str, *, wal: bool = True, **options: Any) -> sqlite3.Connection:
    conn = sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, **options)
    configure_sqlite(conn, wal=wal)
    return conn


WAL_HEADER_VERSION = 2
"""Bytes 18 and 19 of a database file in WAL mode (1 in the rollback journal modes)."""


def journal_mode_of(path: Path | None) -> str:
    """The file's journal mode as a new connection finds it, read without connecting ("wal" or "delete").

    WAL is the only mode kept in the file; every other starts as DELETE. A
    file that does not exist yet (or is not a plain path) starts as DELETE.
    """
    if path is None:
        return "delete"
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return "delete"
    return "wal" if len(header) == 20 and header[18] == header[19] == WAL_HEADER_VERSION else "delete"


def set_journal_mode(database: str, mode: str, *, uri: bool = False) -> str:
    """Switch the file's journal mode; the mode it is in after (unchanged while others use it)."""
    conn = sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=uri)
    try:
        row = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()
    except sqlite3.OperationalError:
        return "wal"
    finally:
        conn.close()
    return str(row[0]).lower() if row else ""


def _install(conn: sqlite3.Connection, functions: Sequence[SQLFunction]) -> None:
    for function in functions:
        conn.create_function(
            function.name, function.arguments, function.function, deterministic=function.deterministic
        )


def _in_memory(database: str) -> bool:
    """Whether sqlite3 opens `database` (as SQLAlchemy hands it over) in memory."""
    return database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database


class SQLiteDatabase:
    name = "sqlite"

    def __init__(
        self, text: str, url: URL, pool_size: int, *, must_exist: bool = True, wal: bool = True
    ) -> None:
        self.url = url
        self.wal = wal
        self.pool_size = pool_size
        self.engine = async_engine(text, url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        args, options = self.engine.dialect.create_connect_args(url)
        self._database = str(args[0]) if args else ""
        """The file as sqlite3 opens it (a `file:` URI when the URL says `uri=true`)."""
        self._options: dict[str, Any] = dict(options)
        if _in_memory(self._database):
            # Each of our connections (the driver's, the plans' reads) would open
            # a database of its own: none would see another's tables or rows.
            raise StartupError(
                f"cannot serve the in-memory SQLite database {text!r}: every connection to it is a "
                "database of its own, and forgegraph reads and writes on several; "
                "use a file, e.g. sqlite+aiosqlite:///forgegraph.db"
            )
        path = sqlite_path(url)
        if must_exist and path is not None and not path.exists():
            raise StartupError(f"database file {str(path)!r} does not exist")
        self.journal_mode_found: str | None = journal_mode_of(path)
        """The journal mode before any connection of ours (which switch to WAL unless `wal` is False)."""

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            configure_sqlite(dbapi_connection, wal=wal)

        event.listen(self.engine.sync_engine, "connect", on_connect)
        self._driver: SQLiteDriver | None = None
        self._reads: list[SQLiteReads] = []
        self._functions: tuple[SQLFunction, ...] = ()
        """Those the reads call: a mutation's answer runs the same SQL on the driver's connections."""

    def set_journal_mode(self, mode: str) -> str:
        """Switch the file's journal mode (no connection of ours may be open); the mode after."""
        return set_journal_mode(self._database, mode, uri=bool(self._options.get("uri")))

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = SQLiteDriver(self._database, self._options, self._connect_driver)
        return self._driver

    def _connect_driver(self, database: str, **options: Any) -> sqlite3.Connection:
        conn = _connect(database, wal=self.wal, **options)
        _install(conn, self._functions)
        return conn

    def reads(self, functions: Sequence[SQLFunction] = ()) -> SQLiteReads:
        if self._driver is not None and functions:
            raise RuntimeError("the SQL functions must be known before the driver connects")
        self._functions = (*self._functions, *functions)
        reads = SQLiteReads(self._database, functions, uri=bool(self._options.get("uri")))
        self._reads.append(reads)
        return reads

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        try:
            driver, self._driver = self._driver, None
            if driver is not None:
                await driver.close()
            reads, self._reads = self._reads, []
            for each in reads:
                await each.close()
        finally:
            await self.engine.dispose()


class SQLiteReads:
    """The query plans' read-only connections: one used right in the event loop, a few in threads.

    A statement runs right in the event loop, on a connection of its own: a
    20-row answer takes SQLite about 100 us, less than handing it to a thread
    and back (and the answer then waits for the thread to get the GIL). A
    progress handler interrupts a statement that holds the loop longer than
    `IN_LOOP_BUDGET_SECONDS`; it, and every later run of it, goes to a thread
    (aiosqlite). So does one that finds the database locked (the loop never
    waits). These connections are not SQLAlchemy's: a pooled connection's
    checkout and reset cost more than the query.
    """

    def __init__(self, database: str, functions: Sequence[SQLFunction], *, uri: bool = False) -> None:
        self.database = database
        self.uri = uri
        self.functions = tuple(functions)
        self._loop_conn: sqlite3.Connection | None = None
        self._deadline = 0.0
        self._long: dict[str, int] = {}
        """Statements that ran past the budget in the loop: their next runs go to a thread."""
        self.pool: ConnectionPool[aiosqlite.Connection] = ConnectionPool(
            self._connect, self._close, READ_THREADS, keep_after=(sqlite3.Error,)
        )

    async def fetch_value(self, sql: str, params: Sequence[Any]) -> Any:
        in_thread = self._long.get(sql, 0)
        if in_thread:
            self._long[sql] = in_thread - 1
        else:
            try:
                return _first(self._in_loop(sql, params))
            except sqlite3.OperationalError as error:
                code = getattr(error, "sqlite_errorcode", 0) & 0xFF
                if code == SQLITE_INTERRUPT:
                    if len(self._long) >= LONG_STATEMENTS:
                        self._long.clear()
                    self._long[sql] = RUNS_IN_THREAD
                elif code != SQLITE_BUSY:
                    raise
        async with self.pool.connection() as conn:
            return _first(list(await conn.execute_fetchall(sql, params)))

    def _in_loop(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run on the event loop's own connection, interrupted past the budget (or if locked)."""
        conn = self._loop_conn
        if conn is None:
            conn = sqlite3.connect(
                self.database,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=PREPARED_STATEMENTS,
                uri=self.uri,
            )
            try:
                conn.execute("PRAGMA query_only=ON")  # the plans only read
                _install(conn, self.functions)
            except BaseException:
                conn.close()
                raise
            conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
            self._loop_conn = conn
        self._deadline = time.thread_time() + IN_LOOP_BUDGET_SECONDS
        return conn.execute(sql, params).fetchall()

    def _over_budget(self) -> bool:
        # CPU time, not wall time: a busy machine preempting the loop is not a long statement.
        return time.thread_time() > self._deadline

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(
            self.database,
            timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            cached_statements=PREPARED_STATEMENTS,
            uri=self.uri,
        )
        try:
            await conn.execute("PRAGMA query_only=ON")
            for function in self.functions:
                await conn.create_function(
                    function.name, function.arguments, function.function, deterministic=function.deterministic
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())
            raise
        return conn

    @staticmethod
    async def _close(conn: aiosqlite.Connection) -> None:
        await conn.close()

    async def close(self) -> None:
        try:
            await self.pool.close()
        finally:
            conn, self._loop_conn = self._loop_conn, None
            if conn is not None:
                conn.close()


def _first(rows: list[Any]) -> Any:
    first = next(iter(rows), None)
    return None if first is None else first[0]
