"""Compiled statements run on the database driver's own connections.

A `Job` is a generator that yields `Statement`s and is sent each one's rows;
what it returns is the transaction's result. The same job runs on either
database: `transact` wraps it in one transaction, committed only when the
job returns, rolled back when anything raises.

SQLite runs a short job right in the event loop: the statements of a
one-row write take tens of microseconds, less than the two thread switches
aiosqlite would add, and a transaction that never awaits holds the write
lock only while it runs. That connection never waits for a lock (busy
timeout 0) and never checkpoints on its own: a job that finds the database
locked, or one that may run long, goes to a thread with an ordinary busy
timeout, which also checkpoints the write-ahead log.

PostgreSQL uses an asyncpg pool of its own: no ping on checkout and no reset
round trip on release (nothing a job does outlives its transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from graph.database import SQLITE_BUSY_TIMEOUT_SECONDS, configure_sqlite
from graph.errors import raise_commit_failure

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.sql.compiled import Statement

log = logging.getLogger("forgegraph")
T = TypeVar("T")
Rows = list[Sequence[Any]]
Job = Callable[[], Generator["Statement", Rows, T]]
"""Yields statements, is sent their rows (or thrown the statement's error, which it may catch
and carry on, as graphql-core carries on with the next root field); may be started again
from scratch (a retry)."""
StatementObserver = Callable[[str], None]

SQLITE_BUSY = 5
# In-loop commits between two checkpoints run by the worker thread (SQLite's own
# automatic checkpoint comes every 1000 pages, a few hundred one-row commits).
CHECKPOINT_EVERY = 200
POSTGRES_POOL_SIZE = 10
# Options of SQLAlchemy's asyncpg adapter that asyncpg.connect itself does not take.
SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")


class Driver(Protocol):
    dialect: str
    observers: list[StatementObserver]
    """Called with each statement's SQL before it runs (tests watch what reaches the database)."""

    async def transact(
        self, job: Job[T], *, on_commit: Callable[[], None] | None = None, short: bool = False
    ) -> T:
        """Run `job` in one transaction; `short` allows running it without leaving the loop.

        Raises only when the transaction did not commit (so that running the
        request again is safe; a refused commit raises graph.errors' error for
        it, after the rollback), or CommitOutcomeUnknown when the connection
        was lost while committing; `on_commit` is called once it has
        committed, even when the awaiting task is gone.
        """
        ...

    async def fetch(self, statement: Statement) -> Rows:
        """Run one read outside any transaction."""
        ...

    async def close(self) -> None: ...


def drive(
    job: Job[T], execute: Callable[[Statement], Rows], abort: Callable[[Exception], bool] | None = None
) -> T:
    """Run `job` to its end, executing each statement it yields with `execute`.

    A statement's error is thrown into the job, unless `abort` says it ends
    the run outright (a busy SQLite database: the job runs again elsewhere).
    """
    steps = job()
    try:
        statement = next(steps)
        while True:
            try:
                rows = execute(statement)
            except Exception as error:
                if abort is not None and abort(error):
                    steps.close()
                    raise
                statement = steps.throw(error)
            else:
                statement = steps.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


async def open_driver(engine: AsyncEngine) -> Driver | None:
    """A driver for the engine's database; None for an in-memory SQLite (one shared connection)."""
    args, options = engine.dialect.create_connect_args(engine.url)
    if engine.dialect.name == "sqlite":
        database = str(args[0]) if args else ""
        if database in ("", ":memory:") or "mode=memory" in database:
            return None
        return SQLiteDriver(database, dict(options))
    return await PostgresDriver.open({k: v for k, v in options.items() if k not in SQLALCHEMY_ONLY})


def _committed(on_commit: Callable[[], None] | None) -> None:
    """Tell of a commit; nothing after a commit may raise (the request would run again)."""
    if on_commit is None:
        return
    try:
        on_commit()
    except Exception:
        log.exception("telling of a commit failed")


def _busy_error(error: Exception) -> bool:
    return isinstance(error, sqlite3.OperationalError) and _busy(error)


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error)
    return bool(code & 0xFF == SQLITE_BUSY)


class SQLiteDriver:
    dialect = "sqlite"

    def __init__(self, database: str, options: dict[str, Any]) -> None:
        self._connect_args = (database, {**options, "check_same_thread": False, "isolation_level": None})
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
        conn = sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, **options)
        configure_sqlite(conn)
        # The functions the compiled JSON calls: a mutation's answer reads its rows'
        # relationships with the query compiler's SQL, in its own transaction.
        from graph.plans._query_sqlite import install_functions

        install_functions(conn)
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        """The worker thread's connection, opened there on first use."""
        if self._thread_conn is None:
            self._thread_conn = self._connect()
        return self._thread_conn

    def _execute(self, conn: sqlite3.Connection, statement: Statement) -> Rows:
        for observe in self.observers:
            observe(statement.sql)
        return conn.execute(statement.sql, statement.args).fetchall()

    def _run(self, conn: sqlite3.Connection, job: Job[T], *, in_loop: bool = False) -> T:
        conn.execute("BEGIN IMMEDIATE")
        # In the loop a busy database ends the run (transact runs the job again in the thread).
        abort = _busy_error if in_loop else None
        try:
            result = drive(job, lambda statement: self._execute(conn, statement), abort)
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

    def _in_thread(
        self, job: Job[T], on_commit: Callable[[], None] | None, loop: asyncio.AbstractEventLoop
    ) -> T:
        result = self._run(self._thread_connection(), job)
        if on_commit is not None:
            # Told from here, not by the awaiting request, which may be gone (the
            # client hung up) while the commit stands.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_committed, on_commit)
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
                _committed(on_commit)
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


class PostgresDriver:
    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.observers: list[StatementObserver] = []

    @classmethod
    async def open(cls, options: dict[str, Any]) -> PostgresDriver:
        import asyncpg

        pool = await asyncpg.create_pool(
            **options,
            min_size=0,
            max_size=POSTGRES_POOL_SIZE,
            init=_same_codecs_as_sqlalchemy,
            reset=_keep_session,
        )
        return cls(pool)

    async def _execute(self, conn: Any, statement: Statement) -> Rows:
        for observe in self.observers:
            observe(statement.sql)
        rows: Rows = await conn.fetch(statement.sql, *statement.args)
        return rows

    async def transact(
        self, job: Job[T], *, on_commit: Callable[[], None] | None = None, short: bool = False
    ) -> T:
        conn = await self._pool.acquire()
        try:
            result = await self._run(conn, job)
        finally:
            # After a commit nothing may raise; before one, the job's error is the one to tell.
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
        _committed(on_commit)
        return result

    async def _run(self, conn: Any, job: Job[T]) -> T:
        transaction = conn.transaction()
        await transaction.start()
        try:
            steps = job()
            try:
                statement = next(steps)
                while True:
                    try:
                        rows = await self._execute(conn, statement)
                    except Exception as error:  # noqa: BLE001 - the job's to handle, as `drive` does
                        statement = steps.throw(error)
                    else:
                        statement = steps.send(rows)
            except StopIteration as done:
                result: T = done.value
        except BaseException:
            if not _lost(conn):
                with contextlib.suppress(Exception):
                    await transaction.rollback()
            raise
        try:
            await transaction.commit()
        except Exception as error:  # noqa: BLE001 - raised again, as what it means
            lost = _lost(conn)
            if not lost and conn.is_in_transaction():
                # PostgreSQL ends a transaction whose COMMIT fails; should one
                # stay open, the connection goes rather than back to the pool.
                try:
                    await conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection is closed either way
                    conn.terminate()
            raise_commit_failure(error, connection_lost=lost)
        return result

    async def fetch(self, statement: Statement) -> Rows:
        async with self._pool.acquire() as conn:
            return await self._execute(conn, statement)

    async def close(self) -> None:
        await self._pool.close()


def _lost(conn: Any) -> bool:
    """Whether the connection is gone.

    asyncpg's pool takes back a connection the moment it is lost (it detaches
    the proxy we hold), after which every method of the proxy, `is_closed()`
    included, raises InterfaceError: that too means lost.
    """
    try:
        return bool(conn.is_closed())
    except Exception:  # noqa: BLE001 - the proxy's "released back to the pool"
        return True


async def _keep_session(_conn: Any) -> None:
    """Nothing to reset: jobs leave no session state behind their transaction."""


async def _same_codecs_as_sqlalchemy(conn: Any) -> None:
    """Decode json and jsonb as SQLAlchemy's asyncpg dialect does, so both paths see the same values."""
    await conn.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=lambda raw: json.loads(raw.decode()),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda raw: json.loads(raw[1:].decode()),
        schema="pg_catalog",
        format="binary",
    )
