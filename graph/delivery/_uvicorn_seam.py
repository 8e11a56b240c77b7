"""uvicorn's private internals, touched in this module only: its websockets-sansio protocol, opened up.

graph/delivery/wire.py says why fan-out writes frames to the socket itself;
this is how, and what of uvicorn it takes. The seam, as tested with uvicorn
0.55 (pyproject.toml holds uvicorn below 0.56):

- `uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol`
  is subclassed as `WireProtocol`, which extends
  - `send(self, message)`, uvicorn's ASGI send: the handshake's `request`
    and `response` (their headers parsed twice over) are dropped once
    `handshake_complete`, which matters with thousands of idle subscribers;
  - `handle_connect(self, event)`, which sets `scope` when it accepts: the
    protocol goes into the scope's extensions, for `wire.wire_of`.
- Of what its constructor sets: `queue` (an asyncio.Queue, of which uvicorn
  calls put_nowait, get and empty) and `writable` (an asyncio.Event: set,
  clear, wait) are replaced by `Inbox` and `Flag`, which hold a list and a
  boolean instead of asyncio's five deques; `close_sent`, `disconnected`,
  `transport` (written to directly) and `conn` (websockets' public
  ServerProtocol: `send_text`, `data_to_send`, `extensions`) are read.
- `uvicorn.protocols.utils.ClientDisconnected` is raised where uvicorn's
  send raises it.

`mismatch()` checks all of that against the installed uvicorn once, at
import. When something does not fit, there is no `WireProtocol`: `PROTOCOL`
is uvicorn's stock protocol, one warning says why, and every connection
sends through ASGI (slower; the same frames).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from graph import _seams

if TYPE_CHECKING:
    from collections.abc import Sequence

    from uvicorn._types import ASGISendEvent
    from websockets.http11 import Request

    from graph.delivery.message import Message

T = TypeVar("T")
log = logging.getLogger("forgegraph.delivery")

EXTENSION = "forgegraph.wire"
"""The ASGI scope extension that holds a connection's `WireProtocol`."""

EXTENDED = {"send": ["self", "message"], "handle_connect": ["self", "event"]}
"""The methods `WireProtocol` overrides and calls, with their parameters."""
READ = {
    "handshake_complete": frozenset(),
    "close_sent": frozenset(),
    "disconnected": frozenset(),
    "request": frozenset(),
    "response": frozenset(),
    "scope": frozenset(),
    "transport": frozenset({"write", "is_closing"}),
    "conn": frozenset({"send_text", "data_to_send"}),
    "queue": frozenset(),
    "writable": frozenset(),
}
"""Attributes the protocol's own code must use, and what it must use on them: so they are what we take them for."""
REPLACED = {
    "queue": frozenset({"put_nowait", "get", "empty"}),
    "writable": frozenset({"set", "clear", "wait", "is_set"}),
}
"""Attributes replaced by our own objects, and all that uvicorn may call on them (what those have)."""


def mismatch() -> str | None:
    """Why the installed uvicorn does not fit the seam above; None when it does."""
    try:
        from uvicorn.protocols import utils
        from uvicorn.protocols.websockets import websockets_sansio_impl
    except ImportError as error:
        return f"cannot import {error.name}"
    base = getattr(websockets_sansio_impl, "WebSocketsSansIOProtocol", None)
    if not isinstance(base, type):
        return "there is no WebSocketsSansIOProtocol class"
    disconnected = getattr(utils, "ClientDisconnected", None)
    if not (isinstance(disconnected, type) and issubclass(disconnected, Exception)):
        return "there is no uvicorn.protocols.utils.ClientDisconnected exception"
    for name, expected in EXTENDED.items():
        if _seams.parameters(getattr(base, name, None)) != expected:
            return f"WebSocketsSansIOProtocol.{name} is not {name}({', '.join(expected)})"
    if not inspect.iscoroutinefunction(getattr(base, "send", None)):
        return "WebSocketsSansIOProtocol.send is not a coroutine function"
    uses = _seams.attribute_uses(base)
    for attribute, needed in READ.items():
        if attribute not in uses:
            return f"WebSocketsSansIOProtocol has no attribute {attribute!r}"
        if missing := needed - uses[attribute]:
            return f"WebSocketsSansIOProtocol does not use {attribute}.{', '.join(sorted(missing))}"
    for attribute, allowed in REPLACED.items():
        if extra := uses[attribute] - allowed:
            return f"WebSocketsSansIOProtocol uses {attribute}.{', '.join(sorted(extra))}, which our replacement lacks"
    return None


def stock_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's own protocol for what `WireProtocol` extends, or its default when that is gone."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return "auto"
    return WebSocketsSansIOProtocol


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


MISMATCH = mismatch()
"""Why the installed uvicorn does not fit, as found at import; None when it does."""

PROTOCOL: type[asyncio.Protocol] | str
"""What uvicorn should run for WebSockets (`uvicorn.Config(ws=...)`)."""

if MISMATCH is None:
    from uvicorn.protocols.utils import ClientDisconnected
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class WireProtocol(WebSocketsSansIOProtocol):
        """uvicorn's websockets-sansio protocol, plus writing `Message`s without ASGI."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # uvicorn calls only what these have (REPLACED, checked by mismatch()).
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

    PROTOCOL = WireProtocol
else:
    log.warning(
        "uvicorn %s does not fit graph/delivery/_uvicorn_seam.py (tested with 0.55): %s; "
        "WebSocket events are sent through ASGI, on uvicorn's stock protocol",
        _seams.version("uvicorn"), MISMATCH,
    )
    PROTOCOL = stock_protocol()
