"""A connection's bounded send queue and the one task that writes it to the socket.

The hub never awaits a socket: it appends frames here. A consumer that lets
its queue fill is closed with 1013 ("try again later") instead of growing
memory or slowing every other connection down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("forgegraph.delivery")

TRY_AGAIN_LATER = 1013


class Outbox:
    def __init__(
        self,
        write: Callable[[list[str]], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        limit: int,
    ) -> None:
        self._write = write
        self._close = close
        self._limit = limit
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self._written = asyncio.Event()
        self.closed = False
        self._close_code: tuple[int, str] | None = None

    def push(self, frames: Iterable[str]) -> None:
        if self.closed:
            return
        self._frames.extend(frames)
        if len(self._frames) > self._limit:
            self.fail(TRY_AGAIN_LATER, "consumer too slow: send queue full")
            return
        self._ready.set()

    def push_one(self, frame: str) -> None:
        self.push((frame,))

    def fail(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the connection as soon as the writer runs.

        Queued frames are dropped (a slow consumer), or with `flush` sent
        first (an error message that explains the close).
        """
        if self.closed:
            return
        self.closed = True
        if not flush:
            self._frames.clear()
        self._close_code = (code, reason)
        self._ready.set()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def depth(self) -> int:
        return len(self._frames)

    async def room(self, frames: int) -> bool:
        """Wait until `frames` more fit in the queue; False once the connection is gone.

        Replays use this so that a long backlog is paced by the reader
        instead of overflowing the queue.
        """
        while not self.closed and self.depth + frames > self._limit:
            self._written.clear()
            await self._written.wait()
        return not self.closed

    async def run(self) -> None:
        """Write queued frames until the outbox fails or the task is cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._close_code is not None:
                code, reason = self._close_code
                if self._frames:
                    await self._write(list(self._frames))
                    self._frames.clear()
                self._written.set()
                log.info("closing a connection: %s", reason)
                await self._close(code, reason)
                return
            # Everything queued so far goes out together: events committed in
            # one transaction reach each connection in one burst.
            batch = list(self._frames)
            self._frames.clear()
            if batch:
                await self._write(batch)
            self._written.set()
