"""A connection's wire: fan-out writes each event's frame to the socket itself.

Sending through ASGI costs a coroutine, a message dict, Starlette's and
uvicorn's checks and a frame built by `websockets`, per subscriber per
event. A wire's `try_send` writes a `Message`'s ready-made frame (the same
bytes for every subscriber of a stream) straight to the transport,
synchronously, as long as the transport takes data without waiting; under
back-pressure the connection's outbox queues and calls `send_messages`
instead, which waits as uvicorn's own send does. Frames are always whole,
so they interleave safely with uvicorn's pings and close frame. A connection
that negotiated permessage-deflate gets its frames compressed by its
`websockets` protocol, still without a coroutine.

The wire is uvicorn's websockets-sansio protocol, extended in
graph/delivery/_uvicorn_seam.py, the one module that touches uvicorn's
internals. `forgegraph serve` (and the tests' server) run uvicorn with
`ws=PROTOCOL`; under another server, or when the installed uvicorn does not
fit the seam (then `PROTOCOL` is uvicorn's stock protocol), a connection has
no wire and sends through ASGI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from graph.delivery._uvicorn_seam import EXTENSION, PROTOCOL

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from graph.delivery.message import Message

__all__ = ["PROTOCOL", "Wire", "wire_of"]


class Wire(Protocol):
    def try_send(self, messages: Sequence[Message]) -> bool:
        """Write now if the socket is open and not applying back-pressure; False otherwise."""

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Write once the transport has room; ClientDisconnected (uvicorn's) once it is gone."""


def wire_of(scope: Mapping[str, Any]) -> Wire | None:
    """The connection's wire, when the server runs `PROTOCOL` and it is the seam's."""
    wire: Wire | None = (scope.get("extensions") or {}).get(EXTENSION)
    return wire
