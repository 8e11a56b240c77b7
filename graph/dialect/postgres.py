"""PostgreSQL: one bounded pool of connections for everything a worker does with the database.

The pool is SQLAlchemy's (`pool_size` connections, no overflow): the engine
uses it as usual, and the mutations' driver and the query plans' reads
borrow the asyncpg connection under a pooled one (`_borrowed`), so a worker
never holds more than `pool_size` connections, however its requests are
answered. A borrower returns the connection as it found it (no transaction
open) or, when it may not be (cancelled mid-statement, connection lost),
invalidates it so the pool opens a fresh one.

Every connection reads values in one session: ISO dates, times in UTC,
floats with exact digits (the query plans render text from them; the
change log's trigger sets the same for itself). The engine's queries,
which decode binary values, read the same values in it as in the
server's default session. A connection idle for a
while is pinged when checked out, one that was just used is not: a ping is
a round trip, as long as the statement it would precede.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.util import greenlet_spawn

from graph.dialect._driver import Awaited, committed
from graph.dialect._url import async_engine
from graph.errors import raise_commit_failure

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import PoolProxiedConnection

    from graph.dialect import SQLFunction
    from graph.dialect._driver import Job, Rows, StatementObserver
    from graph.sql.compiled import Statement

T = TypeVar("T")
APPLICATION_NAME = "forgegraph"
"""Every pooled connection's application_name: pg_stat_activity shows them, and the capture
trigger sends no NOTIFY for their writes (graph.events.changelog)."""
SERVER_SETTINGS = {
    "application_name": APPLICATION_NAME,
    "DateStyle": "ISO",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
}
MIN_PLAN_SERVER_VERSION = (12,)  # shortest exact float output, which the query plans' JSON relies on
PREPARED_STATEMENTS = 256  # per connection: a plan's statement is prepared once
IDLE_PING_SECONDS = 1.0
"""A connection returned longer ago than this is pinged before it is handed out."""
RETURNED_AT = "forgegraph_returned_at"
ENGINE_RESERVE = 2
"""Connections the stash never keeps: they go back to SQLAlchemy's pool, for the engine's users."""


class PostgresDatabase:
    name = "postgresql"
    journal_mode_found: str | None = None

    def __init__(self, text: str, url: URL, pool_size: int) -> None:
        self.url = url
        self.pool_size = pool_size
        self.engine = async_engine(
            text,
            url,
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"server_settings": SERVER_SETTINGS, "statement_cache_size": PREPARED_STATEMENTS},
        )
        event.listen(self.engine.sync_engine, "checkout", _ping_if_idle)
        event.listen(self.engine.sync_engine, "checkin", _returned)
        self._driver = PostgresDriver(self)
        self._reads = PostgresReads(self)
        # Connections the driver and the reads gave back, still checked out of
        # SQLAlchemy's pool (so still counted in pool_size): taking one costs a
        # list pop, where a checkout and check-in through the pool cost ~30 us
        # of CPU, a seventh of a whole query's. The leases take turns at
        # `_turns` (first come, first served) and never hold more connections
        # than the stash keeps, so a lease never waits in SQLAlchemy's queue,
        # where a stashed connection handed to each newcomer would starve it,
        # and `ENGINE_RESERVE` connections stay for the engine's users.
        self._stash: list[tuple[PoolProxiedConnection, float]] = []
        self._stash_size = max(1, pool_size - ENGINE_RESERVE)
        self._turns = asyncio.Semaphore(self._stash_size)

    @property
    def driver(self) -> PostgresDriver:
        return self._driver

    def reads(self, functions: Sequence[SQLFunction] = ()) -> PostgresReads:
        if functions:
            raise ValueError("PostgreSQL calls no Python functions from SQL")
        return self._reads

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @asynccontextmanager
    async def borrowed(self, keep_after: tuple[type[BaseException], ...] = ()) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg connection, for one use; given back or invalidated after.

        It goes back to the pool after the block, or after one of `keep_after`
        (errors that leave it usable); after anything else, or when it is left
        closed or inside a transaction, it is invalidated.
        """
        async with self._turns:
            pooled = await self._lease()
            conn: asyncpg.Connection = pooled.driver_connection
            try:
                yield conn
            except keep_after:
                await self._give_back(pooled, conn)
                raise
            except BaseException:
                await _invalidate(pooled)
                raise
            await self._give_back(pooled, conn)

    async def _lease(self) -> PoolProxiedConnection:
        while self._stash:
            pooled, returned = self._stash.pop()
            if time.monotonic() - returned < IDLE_PING_SECONDS:
                return pooled
            # Idle a while: back through the pool, whose checkout pings it.
            await _check_in(pooled)
        return await self.engine.raw_connection()

    async def _give_back(self, pooled: PoolProxiedConnection, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or conn.is_in_transaction():
            await _invalidate(pooled)
        elif len(self._stash) < self._stash_size:
            self._stash.append((pooled, time.monotonic()))
        else:
            await _check_in(pooled)

    async def close(self) -> None:
        stash, self._stash = self._stash, []
        for pooled, _returned in stash:
            await _check_in(pooled)
        await self.engine.dispose()


async def _check_in(pooled: PoolProxiedConnection) -> None:
    # Checking in may close the connection (a pool disposed meanwhile): SQLAlchemy awaits in a greenlet.
    with contextlib.suppress(Exception):
        await greenlet_spawn(pooled.close)


async def _invalidate(pooled: PoolProxiedConnection) -> None:
    with contextlib.suppress(Exception):
        await greenlet_spawn(pooled.invalidate)
    with contextlib.suppress(Exception):
        await greenlet_spawn(pooled.close)


def _returned(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[RETURNED_AT] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Check a connection that sat idle (the server may have restarted); runs in SQLAlchemy's greenlet."""
    returned = record.info.get(RETURNED_AT)
    if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool replaces the connection and tries again.
        raise exc.DisconnectionError(str(error)) from error


def _raise_if_lost(conn: asyncpg.Connection, error: Exception) -> None:
    """Raise the outage a failed statement means when the connection went with it.

    A backend terminated while a statement is being parsed can leave asyncpg's
    protocol mid-operation, reported as InternalClientError ("cannot switch
    to state ..."), not as the lost connection it is: such a connection is
    never used again (terminated, so `borrowed` invalidates it), and the
    request is told the database is unreachable, which is safe to retry.
    """
    import asyncpg

    if isinstance(error, asyncpg.InternalClientError) and not conn.is_closed():
        conn.terminate()
    if conn.is_closed():
        raise ConnectionError(f"the connection to the database was lost: {error}") from error


def _server_error() -> type[BaseException]:
    import asyncpg

    error: type[BaseException] = asyncpg.PostgresError
    return error


class PostgresReads:
    """The query plans' statements, each on a connection borrowed from the pool."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self._keep_after = (_server_error(),)

    async def fetch_value(self, sql: str, params: Sequence[Any]) -> Any:
        version = self._database.engine.dialect.server_version_info
        if version is not None and version < MIN_PLAN_SERVER_VERSION:
            raise ConnectionError("PostgreSQL before 12 does not write floats exactly")
        async with self._database.borrowed(self._keep_after) as conn:
            try:
                return await conn.fetchval(sql, *params)
            except Exception as error:
                _raise_if_lost(conn, error)
                raise


class PostgresDriver:
    """Compiled statements on pooled connections: no ping when busy, no reset round trip on return."""

    dialect = "postgresql"

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self.observers: list[StatementObserver] = []

    async def _execute(self, conn: Any, statement: Statement) -> Rows:
        for observe in self.observers:
            observe(statement.sql)
        try:
            rows: Rows = await conn.fetch(statement.sql, *statement.args)
        except Exception as error:
            _raise_if_lost(conn, error)
            raise
        return rows

    async def transact(
        self, job: Job[T], *, on_commit: Callable[[], None] | None = None, short: bool = False
    ) -> T:
        # Any Exception leaves the connection usable once rolled back (`borrowed` checks that).
        async with self._database.borrowed((Exception,)) as conn:
            result = await self._run(conn, job)
        committed(on_commit)
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
                        if isinstance(statement, Awaited):
                            # A custom resolver: its statements in this transaction.
                            rows = await statement.run(functools.partial(self._execute, conn))
                        else:
                            rows = await self._execute(conn, statement)
                    except Exception as error:  # noqa: BLE001 - the job's to handle, as `drive` does
                        statement = steps.throw(error)
                    else:
                        statement = steps.send(rows)
            except StopIteration as done:
                result: T = done.value
        except BaseException:
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await transaction.rollback()
            raise
        try:
            await transaction.commit()
        except Exception as error:  # noqa: BLE001 - raised again, as what it means
            lost = conn.is_closed()
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
        async with self._database.borrowed(self._keep_after()) as conn:
            return await self._execute(conn, statement)

    @staticmethod
    def _keep_after() -> tuple[type[BaseException], ...]:
        return (_server_error(),)
