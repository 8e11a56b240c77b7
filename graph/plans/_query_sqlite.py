"""SQLite: JSON built with json_object/json_group_array, run on the event loop's own connection.

SQLite keeps whatever a row was given, whatever the column's declared type,
so each value is checked with typeof(): the usual storage class is rendered
in SQL, anything else (a text in an integer column, NULL in a non-null key)
goes to `fg_value`. So do floats, numerics, JSON and blobs: `fg_value` runs
the driver-to-GraphQL conversion in Python (SQLite's own float printing is
not exact to the last digit), and writes a value GraphQL refuses as a marker
(`graph.plans._query_backend`), for graphql-core to refuse with its own error.

A statement runs right in the event loop, on a connection of its own: a
20-row answer takes SQLite about 100 us, less than handing it to a thread
and back (and the answer then waits for the thread to get the GIL). A
progress handler interrupts a statement that holds the loop longer than
`IN_LOOP_BUDGET_SECONDS`; it, and every later run of it, goes to a thread
(aiosqlite). So does one that finds the database locked (the loop never
waits). These connections are not SQLAlchemy's: a pooled connection's
checkout and reset cost more than the query.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite
import orjson
import sqlalchemy as sa

from graph.model import Kind
from graph.plans._query_backend import MARK, QueryFailed, literal, marker, quoted
from graph.plans._query_pool import ConnectionPool
from graph.schema import scalar_of
from graph.sql.values import to_api_or_stored

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.model import Column
    from graph.plans._query_backend import Fix

KINDS = tuple(Kind)
MAX_NESTING = 4
"""Relationship levels per statement: SQLite's parser stack (100 deep) holds about 9 of ours."""
BUSY_TIMEOUT_SECONDS = 30  # as graph.database's engine
IN_LOOP_BUDGET_SECONDS = 0.002
"""CPU time a statement may hold the event loop for before it is sent to a thread."""
PROGRESS_STEPS = 1000  # SQLite virtual machine steps between two looks at the clock
LONG_STATEMENTS = 1024
RUNS_IN_THREAD = 100
"""Runs of a long statement in a thread before it is tried in the loop again (data change)."""
PREPARED_STATEMENTS = 256  # a plan's statement is prepared once, not per request
SQLITE_BUSY = 5
SQLITE_INTERRUPT = 9
# Every character class JSON escapes differently (control, quote, backslash,
# DEL, non-ASCII, astral), to compare SQLite's JSON text with orjson's once.
ESCAPE_PROBE = "".join(chr(c) for c in range(0x80)) + "é€\u2028\U0001f600\ufeff"


def fg_value(code: int, nullable: int, value: Any) -> str | None:
    """One value as GraphQL answers it (`to_api_or_stored`, then the scalar), as JSON; else a marker.

    Never raises: an exception in a user-defined function would fail the whole statement.
    """
    if value is None:
        # NULL in a non-null column (SQLite allows it in some keys): GraphQL's non-null error.
        return None if nullable else marker(None)
    kind = KINDS[code]
    stored = to_api_or_stored(kind, value)
    try:
        return orjson.dumps(scalar_of(kind).serialize(stored)).decode()
    except Exception:  # noqa: BLE001 - refused by the scalar (or not JSON): graphql-core tells why
        return marker(stored)


class SQLiteBackend:
    def __init__(self, database: str, dialect: Dialect, pool_size: int) -> None:
        self.dialect = dialect
        self.database = database
        self.splices = False
        self.max_nesting: int | None = MAX_NESTING
        self.observers: list[Callable[[str], None]] = []
        self._loop_conn: sqlite3.Connection | None = None
        self._deadline = 0.0
        self._long: dict[str, int] = {}
        """Statements that ran past the budget in the loop: their next runs go to a thread."""
        self.pool: ConnectionPool[aiosqlite.Connection] = ConnectionPool(
            self._connect, self._close, pool_size, keep_after=(sqlite3.Error,)
        )

    # -- rendering ---------------------------------------------------------------

    def value(self, column: Column, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        kind = column.kind
        typeof = sa.func.typeof(expr)
        code = literal(str(KINDS.index(kind)))
        nullable = literal("1" if column.nullable else "0")
        # Whatever SQL does not render below (and NULL in a non-null column) is Python's.
        in_python = sa.func.json(sa.func.fg_value(code, nullable, expr))
        null: list[tuple[Any, Any]] = [(expr.is_(None), sa.null())] if column.nullable else []
        if kind is Kind.INTEGER or kind is Kind.BIGINT:
            # Every SQLite integer is 64-bit, which Int and bigint answer alike.
            return sa.case((typeof == literal("'integer'"), expr), *null, else_=in_python), None
        if kind in (Kind.STRING, Kind.DATETIME, Kind.DATE, Kind.TIME):
            # Text as it is, an integer's digits; str() of anything else, in Python.
            return sa.case(
                (typeof == literal("'text'"), expr),
                (typeof == literal("'integer'"), sa.cast(expr, sa.Text)),
                *null,
                else_=in_python,
            ), None
        if kind is Kind.BOOLEAN:
            number = typeof.in_([literal("'integer'"), literal("'real'")])
            truth = sa.func.json(
                sa.case((expr != literal("0"), literal("'true'")), else_=literal("'false'"))
            )
            return sa.case((number, truth), *null, else_=in_python), None
        return in_python, None

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_object(*(part for key, value in pairs for part in (quoted(key), value)))

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.json_group_array(element)

    def json_list(self, values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_array(*values)

    def cut(self, number: int, keys: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_object(
            literal(f"'{MARK}'"), sa.func.json_array(literal("'c'"), literal(str(number)), *keys)
        )

    def embed(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        # A subquery's value loses its JSON subtype in some SQLite versions: say it again.
        return sa.func.json(subquery)

    # -- running -------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        for observe in self.observers:
            observe(sql)
        in_thread = self._long.get(sql, 0)
        if in_thread:
            self._long[sql] = in_thread - 1
        else:
            try:
                return _answer(self._in_loop(sql, params))
            except sqlite3.OperationalError as error:
                code = getattr(error, "sqlite_errorcode", 0) & 0xFF
                if code == SQLITE_INTERRUPT:
                    if len(self._long) >= LONG_STATEMENTS:
                        self._long.clear()
                    self._long[sql] = RUNS_IN_THREAD
                elif code != SQLITE_BUSY:
                    raise QueryFailed(str(error)) from error
            except Exception as error:  # whatever it is, graph.errors classifies its cause
                raise QueryFailed(str(error)) from error
        try:
            async with self.pool.connection() as conn:
                return _answer(list(await conn.execute_fetchall(sql, params)))
        except Exception as error:  # whatever it is, graph.errors classifies its cause
            raise QueryFailed(str(error)) from error

    def _in_loop(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run on the event loop's own connection, interrupted past the budget (or if locked)."""
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = sqlite3.connect(
                self.database,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=PREPARED_STATEMENTS,
            )
            self._prepare(conn)
            conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
        self._deadline = time.thread_time() + IN_LOOP_BUDGET_SECONDS
        return conn.execute(sql, params).fetchall()

    def _over_budget(self) -> bool:
        # CPU time, not wall time: a busy machine preempting the loop is not a long statement.
        return time.thread_time() > self._deadline

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA query_only=ON")  # the plans only read
        conn.create_function("fg_value", 3, fg_value, deterministic=True)
        # Answers are spliced into the response unparsed only when SQLite writes
        # JSON strings exactly as orjson does (checked, since versions differ).
        (written,) = conn.execute("SELECT json_object('k', ?)", (ESCAPE_PROBE,)).fetchone()
        self.splices = written == orjson.dumps({"k": ESCAPE_PROBE}).decode()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(
            self.database,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            cached_statements=PREPARED_STATEMENTS,
        )
        try:
            await conn.execute("PRAGMA query_only=ON")
            await conn.create_function("fg_value", 3, fg_value, deterministic=True)
        except BaseException:
            await conn.close()
            raise
        return conn

    @staticmethod
    async def _close(conn: aiosqlite.Connection) -> None:
        await conn.close()

    async def close(self) -> None:
        await self.pool.close()
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None:
            conn.close()


def _answer(rows: list[Any]) -> str | None:
    first = next(iter(rows), None)
    value = None if first is None else first[0]
    if value is not None and not isinstance(value, str):
        raise QueryFailed(f"unexpected answer {type(value).__name__}")
    return value
