"""`GET /realtime/sse?table=a&table=b`: the raw protocol's events as Server-Sent Events.

Each event is `id: <cursor>` plus `data: <the raw protocol's JSON>`, so an
EventSource that reconnects sends `Last-Event-ID` and resumes with no gap
(`?since=<cursor>` does the same for clients that cannot set headers). A
comment line every `HEARTBEAT_SECONDS` keeps idle connections and proxies
from timing out. Bad requests are answered before streaming starts, with a
GraphQL-style error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response, StreamingResponse

from graph.delivery.changes import withdrawn
from graph.delivery.forgebase import error_message, renderer, served_table, stream_key
from graph.delivery.message import Frame, Message
from graph.delivery.outbox import Outbox
from graph.errors import ForgeError, InvalidCursor, ValidationFailed, contained

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from graph.access import Access, EventView
    from graph.auth import Session
    from graph.events.hub import Subscription
    from graph.model import Table
    from graph.runtime import Runtime

log = logging.getLogger("forgegraph.delivery")

HEARTBEAT_SECONDS = 15.0
KEEP_ALIVE = ": keep-alive\n\n"
# No caching, and no buffering by nginx-style proxies: events must flow as they happen.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"
ENDED = 1000
"""The close code of a stream that ended normally (its tables were dropped), as a WebSocket's."""


class SSEFrame(Frame):
    """`id: <cursor>` and `data: <the raw protocol's JSON>`, one SSE event."""

    __slots__ = ()

    def __call__(self, payload: str, cursor: int) -> Message:
        return Message(f"id: {cursor}\ndata: {payload}\n\n")


SSE_FRAME = SSEFrame()


class EventStream:
    """One SSE response's subscriptions, send queue and tasks; `close()` releases them all.

    Frames go hub -> Outbox (bounded; a slow reader ends the stream) -> a
    one-slot hand-over -> the response body. The hand-over holds one burst,
    so a reader that stops reading makes the outbox fill up and fail. SSE
    has no close frame: the body ends after what was handed over, or, when
    the reader has not even taken that (its TCP window is full, so the body
    is stuck writing), the response is dropped at once (`cut`).
    """

    transport = "sse"

    def __init__(
        self,
        runtime: Runtime,
        tables: list[tuple[Table, EventView]],
        after: int | None,
        session: Session,
        heartbeat: float,
    ) -> None:
        self.runtime = runtime
        self.realtime = runtime.realtime
        self.tables = tables
        self.after = after
        self.session = session
        self.heartbeat = heartbeat
        self._expiry: asyncio.TimerHandle | None = None
        limit = runtime.settings.limits.send_queue_size
        meter = runtime.metrics.transport(self.transport)
        self.outbox = Outbox(self._write, self._close, limit, meter, name="forgegraph-sse-writer")
        self.subscriptions: list[Subscription] = []
        self._chunks: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1)
        self._tasks: list[asyncio.Task[None]] = []
        self._ended = self._table_dropped
        """What each of its hub subscriptions is told when its table is dropped: bound once."""
        self.cut = asyncio.Event()
        """Set when the stream must end without waiting for the body to finish writing."""

    @property
    def subscribed(self) -> int:
        return len(self.subscriptions)

    def open(self) -> None:
        # Joining takes no await: the streams are live before the response
        # headers go out, so a client that has its headers misses nothing.
        replaying = self.after is not None
        for table, view in self.tables:
            subscription = self.realtime.hub.join(
                stream_key(table, view), table, view.filter, renderer(table, view), self.outbox,
                SSE_FRAME, replaying=replaying,
            )
            if self.after is not None:
                subscription.last_cursor = self.after
            subscription.ended = self._ended
            self.subscriptions.append(subscription)
        self.runtime.connections.add(self)
        left = self.session.seconds_left()
        if left is not None:
            # The stream ends when its token does; EventSource reconnects with a new one.
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, left), self.outbox.fail, 4403, "the token has expired"
            )
        if replaying:
            # Replayed while the body streams, so a long replay is paced by the reader.
            self._tasks.append(asyncio.create_task(self._replay(), name="forgegraph-sse-replay"))

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self.runtime.connections.discard(self)
        for subscription in self.subscriptions:
            self.realtime.unsubscribe(subscription)
        self.subscriptions.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.outbox.stop()

    def rules_withdrawn(self, tables: frozenset[str], access: Access) -> None:
        """A schema change broke the select rules of `tables`: end what this session may no longer see."""
        view = access.for_session(self.session)
        for subscription in list(self.subscriptions):
            name = subscription.stream.table.name
            if name in tables and name in access.model.tables and view.event_view(name) is None:
                self.realtime.unsubscribe(subscription)
                self._table_dropped(subscription, withdrawn(name))

    def _table_dropped(self, subscription: Subscription, reason: str) -> None:
        """The hub ended one table's subscription: an error event; the stream ends with its last table."""
        if subscription not in self.subscriptions:
            return
        self.subscriptions.remove(subscription)
        self.outbox.push_one(f"data: {error_message(reason)}\n\n")
        if not self.subscriptions:
            self.outbox.fail(ENDED, reason, flush=True)

    async def close_for_shutdown(self) -> None:
        self.outbox.fail(1001, "server shutting down")

    async def frames(self) -> AsyncIterator[str]:
        while True:
            try:
                # asyncio.timeout, not wait_for, which on Python 3.11 can drop a
                # cancellation that arrives as a chunk does and keep the stream open.
                async with asyncio.timeout(self.heartbeat):
                    chunk = await self._chunks.get()
            except TimeoutError:
                yield KEEP_ALIVE
                continue
            if chunk is None:
                return
            yield chunk

    async def _write(self, messages: list[Message]) -> None:
        await self._chunks.put("".join([message.text for message in messages]))

    async def _close(self, code: int, _reason: str) -> None:
        # The end of the body; the outbox has logged why. A hand-over still
        # not taken means the body is stuck writing to a reader that does not
        # read: waiting for it would keep the stream, and its memory, forever.
        if code == ENDED:
            # Its last table was dropped: the reader gets the error event, then the end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat):
                    await self._chunks.put(None)
                    return
        try:
            self._chunks.put_nowait(None)
        except asyncio.QueueFull:
            self.cut.set()

    async def _replay(self) -> None:
        try:
            await self.realtime.resume(self.subscriptions, self.outbox)
        except InvalidCursor as error:
            # The pruner overtook the replay: end the stream; the reconnect's
            # Last-Event-ID then gets the invalid-cursor answer, never a gap.
            log.info("an SSE replay was overtaken by pruning: %s", error.message)
            self.outbox.fail(1011, "replay overtaken by pruning")
        except Exception:
            log.exception("replaying the change log to an SSE stream failed")
            self.outbox.fail(1011, "replay failed")


class EventStreamResponse(StreamingResponse):
    """The body of an `EventStream`, which it opens before the headers and closes after."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(stream.frames(), media_type=MEDIA_TYPE, headers=HEADERS)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Owned here rather than in the body generator: a generator cancelled
        # while suspended at `yield` runs its `finally` only when collected.
        # The stream is closed whatever happens, even if opening it fails
        # halfway or the body raises: its subscriptions, its place in
        # `runtime.connections` and its expiry timer must never outlive it.
        try:
            self.stream.open()
            body = asyncio.create_task(super().__call__(scope, receive, send), name="forgegraph-sse-body")
            cut = asyncio.create_task(self.stream.cut.wait(), name="forgegraph-sse-cut")
            ended = False
            try:
                await asyncio.wait((body, cut), return_when=asyncio.FIRST_COMPLETED)
                ended = body.done()
            finally:
                # Cut off (or cancelled): returning without finishing the body makes
                # the server drop the connection, which is what SSE has for 1013.
                for task in (body, cut):
                    task.cancel()
                for task in (body, cut):
                    # A body that ended with an error is answered below, once.
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if ended and not body.cancelled():
                # The client went away, or the stream ended: as a plain
                # StreamingResponse would, and an error goes to the server,
                # which logs it and drops the connection.
                body.result()
        finally:
            await self.stream.close()


class SSEEndpoint:
    def __init__(self, runtime: Runtime, heartbeat: float | None = None) -> None:
        self.runtime = runtime
        self.heartbeat = heartbeat

    async def handle(self, request: Request) -> Response:
        try:
            session = self._session(request)
            tables = self._tables(request, session)
            after = await self._after(request)
        except ForgeError as error:
            body = orjson.dumps({"errors": [error.to_graphql()]})
            return Response(body, status_code=error.http_status, media_type="application/json")
        heartbeat = HEARTBEAT_SECONDS if self.heartbeat is None else self.heartbeat
        return EventStreamResponse(EventStream(self.runtime, tables, after, session, heartbeat))

    def _session(self, request: Request) -> Session:
        """`?token=` (EventSource cannot send headers) or the usual HTTP headers."""
        token = request.query_params.get("token")
        if token:
            return self.runtime.authenticator.from_token(token)
        return self.runtime.authenticator.from_headers(request.headers)

    def _tables(self, request: Request, session: Session) -> list[tuple[Table, EventView]]:
        names = list(dict.fromkeys(request.query_params.getlist("table")))
        if not names:
            raise ValidationFailed("no table: name one or more with ?table=<name>")
        limit = self.runtime.settings.limits.max_subscriptions_per_connection
        if limit and len(names) > limit:
            raise ValidationFailed(f"at most {limit} subscriptions per connection")
        return [served_table(self.runtime, name, session) for name in names]

    async def _after(self, request: Request) -> int | None:
        since = request.headers.get("last-event-id") or request.query_params.get("since")
        if since is None:
            return None
        try:
            return await self.runtime.realtime.check_cursor(since.strip())
        except Exception as error:  # noqa: BLE001 - the database failing: a coded answer, not a 500
            raise contained(error, "resuming an event stream") from None
