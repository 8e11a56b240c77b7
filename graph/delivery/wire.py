"""uvicorn's WebSocket protocol, opened up so that fan-out can write frames itself.

Sending through ASGI costs a coroutine, a message dict, Starlette's and
uvicorn's checks and a frame built by `websockets`, per subscriber per
event. `WireProtocol.try_send` writes a `Message`'s ready-made frame (the
same bytes for every subscriber of a stream) straight to the transport,
synchronously, as long as the transport takes data without waiting; under
back-pressure the connection's outbox queues and calls `send_messages`
instead, which waits as uvicorn's own send does. Frames are always whole, so they interleave safely
with uvicorn's pings and close frame. A connection that negotiated
permessage-deflate gets its frames compressed by its `websockets` protocol,
still without a coroutine.

It is also lighter on memory, which matters with thousands of idle
subscribers: the handshake's request and response (their headers parsed
twice over) are dropped once the handshake is done, and the receive queue
and the flow-control flag hold a list and a boolean instead of asyncio's
Queue and Event, five deques between them.

`forgegraph serve` (and the tests' server) run uvicorn with `ws=WireProtocol`;
under any other server a connection has no wire and sends through ASGI.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from uvicorn._types import ASGISendEvent
    from websockets.http11 import Request

    from graph.delivery.message import Message

T = TypeVar("T")

EXTENSION = "forgegraph.wire"
"""The ASGI scope extension that holds a connection's `WireProtocol`."""


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, plus writing `Message`s without ASGI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn uses put_nowait/get/empty and set/clear/wait of these only.
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # Read only while accepting (uvicorn adds the accept's headers to the response).
            del self.request, self.response

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set only when the handshake is accepted
        if scope is not None:
            # The ASGI task is created but has not run yet: it sees the extension.
            scope["extensions"][EXTENSION] = self

    def try_send(self, messages: Sequence[Message]) -> bool:
        """Write now if the socket is open and not applying back-pressure; False otherwise."""
        if not self.writable.is_set() or self.close_sent or self.disconnected or self.transport.is_closing():
            return False
        self._write(messages)
        return True

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Write once the transport has room, as uvicorn's ASGI send does."""
        await self.writable.wait()
        if self.close_sent or self.disconnected or self.transport.is_closing():
            raise ClientDisconnected()
        self._write(messages)

    def _write(self, messages: Sequence[Message]) -> None:
        if self.conn.extensions:  # permessage-deflate: compressed in this connection's context
            for message in messages:
                self.conn.send_text(message.data)
            self.transport.write(b"".join(self.conn.data_to_send()))
        elif len(messages) == 1:
            self.transport.write(messages[0].frame)
        else:
            # One burst (the events of one transaction), one write.
            self.transport.write(b"".join([message.frame for message in messages]))


def wire_of(scope: Mapping[str, Any]) -> WireProtocol | None:
    """The connection's wire, when the server is running `WireProtocol`."""
    wire = (scope.get("extensions") or {}).get(EXTENSION)
    return wire if isinstance(wire, WireProtocol) else None


class Inbox(Generic[T]):
    """The received-messages queue: unbounded, nothing allocated while nobody waits."""

    __slots__ = ("_items", "_nonempty")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._nonempty = Flag()

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._nonempty.set()

    async def get(self) -> T:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Flag:
    """An asyncio.Event that allocates only while someone waits for it."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if self._waiters is not None and waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True
