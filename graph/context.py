"""Per-request state: the connections a request's resolvers share.

Query fields each borrow a pooled connection (graphql-core may run them
concurrently); mutation fields run one after another on a single
transaction that the endpoint commits only when every field succeeded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import exc

from graph.errors import raise_commit_failure

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

    from graph.access import SessionAccess

log = logging.getLogger("forgegraph")


class RequestContext:
    def __init__(
        self,
        engine: AsyncEngine,
        access: SessionAccess,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.access = access
        self.on_commit = on_commit
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def writing(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.engine.connect()
            self._tx = await self._conn.begin()
        return self._conn

    async def finish(self, *, commit: bool) -> None:
        """End the request's write transaction, if it opened one.

        A failed COMMIT raises what graph.errors makes of it (a refused commit:
        the client's error; a connection lost while committing: the outcome is
        unknown) once the connection is discarded; a failed rollback raises
        nothing, since nothing was committed either way.
        """
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None or tx is None:
            return
        if not commit:
            rolled_back = False
            try:
                await tx.rollback()
                rolled_back = True
            except Exception as error:  # noqa: BLE001 - the connection is discarded below
                log.warning("rolling back a request failed: %s", str(error).splitlines()[0])
            finally:
                # Cancelled mid-rollback (shutdown) or failed: never pool a connection
                # whose transaction may still be open.
                await (conn.close() if rolled_back else _discard(conn))
            return
        try:
            await tx.commit()
        except BaseException as error:
            lost = conn.invalidated or (isinstance(error, exc.DBAPIError) and error.connection_invalidated)
            await _discard(conn)
            if not isinstance(error, Exception):
                raise  # cancelled while committing: the connection went with it
            raise_commit_failure(error, connection_lost=lost)
        try:
            if self.on_commit is not None:
                self.on_commit()
        finally:
            await conn.close()


async def _discard(conn: AsyncConnection) -> None:
    """Close `conn` and the database connection under it instead of pooling it again.

    After a failed COMMIT SQLAlchemy takes the transaction as ended, but SQLite
    keeps it open (holding the write lock until the connection closes), and a
    connection lost meanwhile is no use to anyone: a new one serves the next request.
    """
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
