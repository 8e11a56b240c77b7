"""A few SQLite connections kept open for the query plans' long statements, one request at a time.

Deliberately small: no reset on return (the plans only read, one statement
at a time, outside any transaction), no ping on checkout (a dead connection
fails its statement, is dropped, and the request goes the normal way).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Generic, TypeVar

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None]],
        size: int,
        keep_after: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._connect = connect
        self._close = close
        self._keep_after = keep_after
        """Errors that leave a connection usable (a statement the database refused)."""
        self._slots = asyncio.Semaphore(size)
        self._idle: list[C] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[C]:
        if self._closed:
            raise ConnectionError("the query plan connections are closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except self._keep_after:
                await self._release(conn)
                raise
            except BaseException:
                # Broken, or cancelled mid-statement: never hand it out again.
                with suppress(Exception):
                    await asyncio.shield(self._close(conn))
                raise
            await self._release(conn)

    async def _release(self, conn: C) -> None:
        if not self._closed:
            self._idle.append(conn)
            return
        with suppress(Exception):
            await self._close(conn)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                await self._close(conn)
