"""One `tableChanged` subscription: its resume point, its undelivered events, its consumer.

The connection puts events in; a callback task or an async iterator takes
them out, in cursor order. The buffer is bounded: when it is full the
connection stops reading, the server's send queue fills, and the server
drops the connection (1013), after which it resumes from the last cursor.
A slow consumer costs latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from graph.client._errors import ClientError

if TYPE_CHECKING:
    from graph.client._connection import Connection
    from graph.client._events import ChangeEvent

log = logging.getLogger("graph.client")

Callback = Callable[["ChangeEvent"], Awaitable[None] | None]
ErrorCallback = Callable[[ClientError], Awaitable[None] | None]


async def _call(function: Callable[[Any], Awaitable[None] | None], argument: Any) -> None:
    result = function(argument)
    if inspect.isawaitable(result):
        await result


class Subscription:
    """A live subscription; `await subscription.unsubscribe()` (or `await subscription()`) ends it."""

    def __init__(
        self,
        connection: Connection,
        table: str,
        where: Mapping[str, Any] | None,
        since: str | None,
        buffer: int,
    ) -> None:
        self._connection = connection
        self.table = table
        self.where = dict(where) if where else None
        self._since = since
        self.last: int | None = int(since) if since is not None and since.isdigit() else None
        """The highest cursor this subscription has seen, or is known to have nothing before."""
        self.op_id = ""
        self.sent_generation = -1
        """The connection generation this subscription was last sent on."""
        self.live_generation = -1
        """The generation on which the server confirmed it (its barrier pong arrived)."""
        self.ever_live = False
        self._buffer = buffer
        self._pending: deque[ChangeEvent] = deque()
        self._end: BaseException | None = None
        self._changed = asyncio.Event()
        self._taken = asyncio.Event()
        self._settled = asyncio.Event()
        self._consumer: asyncio.Task[None] | None = None

    # -- the connection's side ---------------------------------------------

    @property
    def ended(self) -> bool:
        return self._end is not None

    def since(self) -> str | None:
        """What to send as `since`: resume after the last cursor seen, else what the caller gave."""
        return str(self.last) if self.last is not None else self._since

    def advance(self, cursor: int) -> None:
        """Nothing of this subscription's at or before `cursor` is still to come."""
        if self.last is None or cursor > self.last:
            self.last = cursor

    async def room(self) -> None:
        """Wait until the buffer can take another event (or the subscription has ended)."""
        while len(self._pending) >= self._buffer and self._end is None:
            self._taken.clear()
            await self._taken.wait()

    def accept(self, event: ChangeEvent) -> bool:
        """Queue `event` unless it was seen before (a cursor at or below the last one)."""
        if self._end is not None or (self.last is not None and event.position <= self.last):
            return False
        self.last = event.position
        self._pending.append(event)
        self._changed.set()
        return True

    def went_live(self, generation: int) -> None:
        self.live_generation = generation
        self.ever_live = True
        self._settled.set()

    def fail(self, error: ClientError) -> None:
        """End with `error`, after the events already queued."""
        self._finish(error)

    def finish(self) -> None:
        """End cleanly, after the events already queued."""
        self._finish(StopAsyncIteration())

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
        self._changed.set()
        self._taken.set()
        self._settled.set()

    async def wait_live(self) -> None:
        """Return once the server has the subscription; raise what refused it."""
        await self._settled.wait()
        if not self.ever_live:
            end = self._end
            raise end if isinstance(end, ClientError) else ClientError("the subscription ended before it started")

    # -- the consumer's side ------------------------------------------------

    async def next(self) -> ChangeEvent:
        """The next event; StopAsyncIteration at the end, or the ClientError that ended it (once)."""
        while not self._pending:
            if self._end is not None:
                end, self._end = self._end, StopAsyncIteration()
                raise end
            self._changed.clear()
            await self._changed.wait()
        event = self._pending.popleft()
        self._taken.set()
        return event

    def deliver_to(self, callback: Callback, on_error: ErrorCallback | None) -> None:
        self._consumer = asyncio.create_task(
            self._deliver(callback, on_error), name=f"graph.client-{self.table}-{self.op_id}"
        )

    async def _deliver(self, callback: Callback, on_error: ErrorCallback | None) -> None:
        while True:
            try:
                event = await self.next()
            except StopAsyncIteration:
                return
            except ClientError as error:
                if on_error is None:
                    log.error("subscription to %r ended: %s", self.table, error)
                else:
                    await _call(on_error, error)
                return
            try:
                await _call(callback, event)
            except Exception:
                # One bad event must not end the stream for the ones after it.
                log.exception("a callback for %r raised on cursor %s", self.table, event.cursor)

    async def unsubscribe(self) -> None:
        """Stop: no event is delivered after this returns (or after the running callback, if called from it)."""
        self._pending.clear()
        self.finish()
        await self._connection.remove(self)
        await self._stop_consumer()

    async def __call__(self) -> None:
        await self.unsubscribe()

    async def _stop_consumer(self) -> None:
        task, self._consumer = self._consumer, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def shutdown(self) -> None:
        """The client is closing: end without delivering what is queued."""
        self._pending.clear()
        self.finish()
        await self._stop_consumer()

    @property
    def cursor(self) -> str | None:
        """The cursor to resume from (after the last event received), if there is one."""
        return self.since()


class ChangeStream:
    """`async for event in table.changes(...)`: subscribes on first use, unsubscribes on `aclose()`.

    Use it as `async with table.changes() as stream:` to end the subscription
    when the block ends; a bare `async for` that breaks early leaves it open
    until `aclose()` or the client's `close()`.
    """

    def __init__(self, start: Callable[[], Awaitable[Subscription]]) -> None:
        self._start = start
        self._subscription: Subscription | None = None
        self._lock = asyncio.Lock()

    async def subscription(self) -> Subscription:
        """Subscribe now (once) and return the subscription; events are buffered from here on."""
        async with self._lock:
            if self._subscription is None:
                self._subscription = await self._start()
            return self._subscription

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> ChangeEvent:
        subscription = await self.subscription()
        return await subscription.next()

    async def aclose(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def __aenter__(self) -> ChangeStream:
        await self.subscription()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
