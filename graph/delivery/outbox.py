"""A connection's bounded send queue, and the writer task that empties it under back-pressure.

The hub never awaits a socket. It hands messages to the outbox, which writes
them at once when the connection can take them without waiting (`direct`,
a WebSocket's wire) and queues them otherwise: while the socket applies
back-pressure, while earlier messages are still queued (order is kept), or
for transports that are always written by a task (SSE). A writer task is
started the first time something is queued, so an idle connection holds
none. A consumer that lets its queue fill is closed with 1013 ("try again
later") instead of growing memory or slowing every other connection down.

The limit covers what a connection holds for its client: queued messages,
and the live frames held back while one of its subscriptions replays the
log (`held`, see `graph.events.hub.Subscription.hold`). When a connection fails, the
write in flight is abandoned too: a peer that stopped reading would
otherwise pin that batch, and the close, forever.

An outbox is what the hub delivers into: it meets `graph.events.sink.Sink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from graph.delivery.message import Message

if TYPE_CHECKING:
    from graph.metrics import TransportMeter

log = logging.getLogger("forgegraph.delivery")

TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
REPLAY_PAGE = 1000
"""The most events one read of the change log brings to a replaying connection."""

Write = Callable[[list[Message]], Awaitable[None]]
Direct = Callable[[Sequence[Message]], bool]
"""Write now without waiting and return True, or return False to have the messages queued."""


class Outbox:
    def __init__(
        self,
        write: Write,
        close: Callable[[int, str], Awaitable[None]],
        limit: int,
        meter: TransportMeter | None = None,
        *,
        direct: Direct | None = None,
        name: str = "forgegraph-writer",
    ) -> None:
        self._write = write
        self._close = close
        self._direct = direct
        self._limit = limit
        self._meter = meter
        self._name = name
        self._messages: list[Message] = []
        self._events = 0  # how many of the queued messages are events (for /metrics)
        self._flushing = False  # the writer holds a batch: later messages must queue behind it
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._freed: asyncio.Event | None = None  # made by `room`, the only one waiting on it
        self._in_flight: asyncio.Timeout | None = None  # the write under way, abandoned by `fail`
        self.accepted = 0
        """How many messages the socket has taken so far: the reader's progress."""
        self.held = 0
        """Live frames held back for this connection's replaying subscriptions (within the limit)."""
        self.reserved = 0
        """The room kept for a replay's next page (`reserve_replay`, `room`): held frames leave it free."""
        self.closed = False
        self._close_code: tuple[int, str] | None = None

    def push(self, messages: Sequence[Message]) -> None:
        """Send event messages."""
        self._send(messages, len(messages))

    def push_one(self, text: str) -> None:
        """Send a protocol message (an acknowledgement, an error): not an event."""
        self._send((Message(text),), 0)

    def _send(self, messages: Sequence[Message], events: int) -> None:
        if self.closed:
            return
        if self._direct is not None and not self._messages and not self._flushing:
            try:
                sent = self._direct(messages)
            except Exception:  # a broken socket must not break the hub's loop
                log.debug("writing to a connection failed", exc_info=True)
                self.fail(INTERNAL_ERROR, "writing to the socket failed")
                return
            if sent:
                self.accepted += len(messages)
                if events and self._meter is not None:
                    self._meter.delivered += events
                return
        self._messages.extend(messages)
        self._events += events
        if len(self._messages) + self.held > self._limit:
            self.overflow()
            return
        self._wake()

    def overflow(self) -> None:
        """The client holds more than the send queue allows: close it with 1013, counted."""
        if self.closed:
            return
        if self._meter is not None:
            self._meter.slow_consumers_closed += 1
        self.fail(TRY_AGAIN_LATER, "consumer too slow: send queue full")

    def fail(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the connection from the writer task, as soon as it runs.

        Queued messages are dropped (a slow consumer), or with `flush` sent
        first (an error message that explains the close). Without `flush`, a
        write still waiting for the peer is abandoned as well, so that a peer
        that does not read cannot hold its batch, or the close, indefinitely.
        """
        if self.closed:
            return
        self.closed = True
        if not flush:
            self._messages = []
            self._events = 0
            if self._in_flight is not None:
                self._in_flight.reschedule(asyncio.get_running_loop().time())
        self._close_code = (code, reason)
        self._wake()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def depth(self) -> int:
        return len(self._messages)

    @property
    def waiting(self) -> int:
        """Frames the connection holds for its client: queued, and held back by a replay."""
        return len(self._messages) + self.held

    @property
    def replay_page(self) -> int:
        """How many events a replay reads at a time: at most half the queue, the rest for held frames."""
        return max(1, min(REPLAY_PAGE, self._limit // 2))

    def reserve_replay(self) -> None:
        """Keep a replay page's room free from the moment a replaying subscription joins.

        Live frames can be dispatched before the replay first asks for room:
        held without the reserve, they could leave no room for the page.
        """
        self.reserved = max(self.reserved, self.replay_page)

    def can_hold(self) -> bool:
        """Whether one more live frame may be held back, leaving the replay's next page its room."""
        return self.waiting + self.reserved < self._limit

    def let_go(self, held: int) -> None:
        """`held` frames are no longer held back: a replay waiting for room may now have it."""
        if held:
            self.held -= held
            self._notify_freed()

    async def room(self, messages: int) -> bool:
        """Wait until `messages` more fit in the queue; False once the connection is gone.

        Replays use this so that a long backlog is paced by the reader
        instead of overflowing the queue. Frames held meanwhile leave that
        room free (`can_hold`), so the page fits when it comes. Woken when
        the queue is written and whenever held frames are let go.
        """
        self.reserved = messages
        while not self.closed and self.waiting + messages > self._limit:
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()
        return not self.closed

    async def stop(self, grace: float = 0.0) -> None:
        """End the writer task; with `grace`, first let a closing outbox send its last frames and close."""
        task = self._task
        if task is None:
            return
        if grace and self.closed:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def _wake(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._writer(), name=self._name)
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _writer(self) -> None:
        try:
            await self._write_until_closed()
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away mid-write: end the connection
            log.debug("writing to a connection failed", exc_info=True)
            self.closed = True
            self._messages = []
            self._notify_freed()
            with contextlib.suppress(Exception):
                await self._close(1000, "")

    async def _write_until_closed(self) -> None:
        """Write queued messages until the outbox fails, then close the connection."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._messages and self._close_code is None:
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
            if self._messages:
                # Everything queued so far goes out together: events committed in
                # one transaction reach each connection in one burst.
                await self._flush()
                self._notify_freed()
                continue
            assert self._close_code is not None
            code, reason = self._close_code
            self._notify_freed()
            log.info("closing a connection: %s", reason)
            await self._close(code, reason)
            return

    async def _flush(self) -> None:
        batch, self._messages = self._messages, []
        events, self._events = self._events, 0
        self._flushing = True
        try:
            async with asyncio.timeout(None) as self._in_flight:
                await self._write(batch)
        except TimeoutError:
            if self._close_code is None:
                raise  # the write's own, not `fail` abandoning it
            return  # abandoned by `fail`: the peer was not taking it
        finally:
            self._flushing = False
            self._in_flight = None
        self.accepted += len(batch)
        if events and self._meter is not None:
            self._meter.delivered += events

    def _notify_freed(self) -> None:
        if self._freed is not None:
            self._freed.set()
