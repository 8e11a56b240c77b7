"""Per-request state: the connections a request's resolvers share.

Query fields each borrow a pooled connection (graphql-core may run them
concurrently); mutation fields run one after another on a single
transaction that the endpoint commits only when every field succeeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

    from graph.access import SessionAccess


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
        """End the request's write transaction, if it opened one."""
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None or tx is None:
            return
        try:
            if commit:
                await tx.commit()
                if self.on_commit is not None:
                    self.on_commit()
            else:
                await tx.rollback()
        finally:
            await conn.close()
