"""SQLite's driver: compiled statements run on sqlite3 connections of our own.

A short job runs right in the event loop: the statements of a one-row write
take tens of microseconds, less than the two thread switches aiosqlite
would add, and a transaction that never awaits holds the write lock only
while it runs. That connection never waits for a lock (busy timeout 0) and
never checkpoints on its own: a job that finds the database locked, or one
that may run long, goes to a thread with an ordinary busy timeout, which
also checkpoints the write-ahead log.

A job that awaits (`Awaited`: a custom mutation's resolver) runs in that
thread too, which blocks while the event loop runs the coroutine; the
statements the coroutine sends run on the loop, on the thread's connection,
in its open transaction (the thread is waiting, so the connection is not
shared meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from graph.dialect._driver import Awaited, committed, drive
from graph.errors import raise_commit_failure

if TYPE_CHECKING:
    from graph.dialect._driver import Job, Rows, StatementObserver
    from graph.sql.compiled import Statement

T = TypeVar("T")
SQLITE_BUSY = 5
# In-loop commits between two checkpoints run by the worker thread (SQLite's own
# automatic checkpoint comes every 1000 pages, a few hundred one-row commits).
CHECKPOINT_EVERY = 200


def _busy_error(error: Exception) -> bool:
    return isinstance(error, sqlite3.OperationalError) and _busy(error)


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error)
    return bool(code & 0xFF == SQLITE_BUSY)


class SQLiteDriver:
    dialect = "sqlite"

    def __init__(
        self, database: str, options: dict[str, Any], connect: Callable[..., sqlite3.Connection]
    ) -> None:
        self._connect_args = (database, {**options, "check_same_thread": False, "isolation_level": None})
        self._open = connect
        self._loop_conn = self._connect()
        self._loop_conn.execute("PRAGMA busy_timeout=0")
        self._loop_conn.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgegraph-sqlite")
        self._thread_conn: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpoint: Future[None] | None = None
        self.observers: list[StatementObserver] = []

    def _connect(self) -> sqlite3.Connection:
        database, options = self._connect_args
        return self._open(database, **options)

    def _thread_connection(self) -> sqlite3.Connection:
        """The worker thread's connection, opened there on first use."""
        if self._thread_conn is None:
            self._thread_conn = self._connect()
        return self._thread_conn

    def _execute(self, conn: sqlite3.Connection, statement: Statement) -> Rows:
        for observe in self.observers:
            observe(statement.sql)
        return conn.execute(statement.sql, statement.args).fetchall()

    def _run(
        self,
        conn: sqlite3.Connection,
        job: Job[T],
        *,
        in_loop: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> T:
        conn.execute("BEGIN IMMEDIATE")
        # In the loop a busy database ends the run (transact runs the job again in the thread).
        abort = _busy_error if in_loop else None
        wait = None if loop is None else functools.partial(self._wait, conn, loop)
        try:
            result = drive(job, lambda statement: self._execute(conn, statement), abort, wait)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            # A COMMIT that fails (a deferred foreign key, a busy database) leaves
            # the transaction open, holding the write lock: end it here, or every
            # later write waits for it. SQLite is local: nothing was committed.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise_commit_failure(error, connection_lost=False)
        return result

    def _wait(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop, step: Awaited) -> Any:
        """Run an awaiting step on the loop, its statements on `conn` (this thread waits meanwhile)."""

        async def execute(statement: Statement) -> Rows:
            return self._execute(conn, statement)

        return asyncio.run_coroutine_threadsafe(_awaited(step, execute), loop).result()

    def _in_thread(
        self, job: Job[T], on_commit: Callable[[], None] | None, loop: asyncio.AbstractEventLoop
    ) -> T:
        result = self._run(self._thread_connection(), job, loop=loop)
        if on_commit is not None:
            # Told from here, not by the awaiting request, which may be gone (the
            # client hung up) while the commit stands.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(committed, on_commit)
        return result

    async def transact(
        self, job: Job[T], *, on_commit: Callable[[], None] | None = None, short: bool = False
    ) -> T:
        if short:
            try:
                result = self._run(self._loop_conn, job, in_loop=True)
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
            else:
                committed(on_commit)
                self._committed_in_loop()
                return result
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._in_thread, job, on_commit, loop)

    def _checkpoint_idle(self) -> bool:
        return self._checkpoint is None or self._checkpoint.done()

    def _committed_in_loop(self) -> None:
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and self._checkpoint_idle():
            self._commits = 0
            with contextlib.suppress(RuntimeError):  # shutting down: no more checkpoints
                self._checkpoint = self._thread.submit(self._run_checkpoint)

    def _run_checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # busy readers: the next one catches up
            self._thread_connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def fetch(self, statement: Statement) -> Rows:
        try:
            return self._execute(self._loop_conn, statement)
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._fetch_in_thread, statement)

    def _fetch_in_thread(self, statement: Statement) -> Rows:
        return self._execute(self._thread_connection(), statement)

    async def close(self) -> None:
        def close_thread_conn() -> None:
            if self._thread_conn is not None:
                self._thread_conn.close()
                self._thread_conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, close_thread_conn)
        self._thread.shutdown(wait=True)
        self._loop_conn.close()


async def _awaited(step: Awaited, execute: Callable[[Statement], Any]) -> Any:
    return await step.run(execute)
