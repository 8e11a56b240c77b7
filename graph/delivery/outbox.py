"""A connection's bounded send queue and the one task that writes it to the socket.

The hub never awaits a socket: it appends frames here. A consumer that lets
its queue fill is closed with 1013 ("try again later") instead of growing
memory or slowing every other connection down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.metrics import TransportMeter

log = logging.getLogger("forgegraph.delivery")

TRY_AGAIN_LATER = 1013


class Outbox:
    def __init__(
        self,
        write: Callable[[list[str]], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        limit: int,
        meter: TransportMeter | None = None,
    ) -> None:
        self._write = write
        self._close = close
        self._limit = limit
        self._meter = meter
        self._frames: deque[str] = deque()
        self._events = 0  # how many of the queued frames are events (for /metrics)
        self._writing = 0  # ... and of the batch being written
        self._ready = asyncio.Event()
        self._written = asyncio.Event()
        self.closed = False
        self._close_code: tuple[int, str] | None = None

    def push(self, frames: Collection[str]) -> None:
        """Queue event frames."""
        self._queue(frames, len(frames))

    def push_one(self, frame: str) -> None:
        """Queue a protocol message (an acknowledgement, an error): not an event."""
        self._queue((frame,), 0)

    def _queue(self, frames: Collection[str], events: int) -> None:
        if self.closed:
            return
        self._frames.extend(frames)
        self._events += events
        if len(self._frames) > self._limit:
            if self._meter is not None:
                self._meter.slow_consumers_closed += 1
            self.fail(TRY_AGAIN_LATER, "consumer too slow: send queue full")
            return
        self._ready.set()

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
            self._events = 0
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
                    await self._write(self._take())
                    self._count_written()
                self._written.set()
                log.info("closing a connection: %s", reason)
                await self._close(code, reason)
                return
            # Everything queued so far goes out together: events committed in
            # one transaction reach each connection in one burst.
            batch = self._take()
            if batch:
                await self._write(batch)
                self._count_written()
            self._written.set()

    def _take(self) -> list[str]:
        """Everything queued, as one batch; its events are counted once it is written."""
        batch = list(self._frames)
        self._frames.clear()
        self._writing, self._events = self._events, 0
        return batch

    def _count_written(self) -> None:
        if self._meter is not None:
            self._meter.delivered += self._writing
