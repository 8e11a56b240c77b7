"""What every WebSocket transport shares: the outbox (and the wire it writes to
directly), the session and its expiry, and releasing subscriptions however
the socket ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, ClassVar, NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from graph.auth import ANONYMOUS_SESSION, Session
from graph.delivery.changes import withdrawn
from graph.delivery.outbox import Outbox
from graph.delivery.ratelimit import TokenBucket
from graph.delivery.wire import wire_of
from graph.errors import ForgeError, NotFound, PermissionDenied, TooManyRequests

if TYPE_CHECKING:
    from graph.access import Access
    from graph.delivery.message import Message
    from graph.events.hub import Subscription
    from graph.runtime import Runtime

FORBIDDEN = 4403
# How long a closing socket may take to send its last frames and close frame.
CLOSE_GRACE_SECONDS = 5


class CloseConnection(Exception):
    """End the connection with this close code, after the frames already queued."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class EventSocket:
    subprotocol: ClassVar[str | None] = None
    transport: ClassVar[str]
    """The protocol's name in /metrics."""
    task_name: ClassVar[str] = "forgegraph-ws-writer"

    def __init__(self, runtime: Runtime, websocket: WebSocket) -> None:
        self.runtime = runtime
        # Held from the start: the runtime drops its Realtime on shutdown, before we unsubscribe.
        self.realtime = runtime.realtime
        self.websocket = websocket
        limit = runtime.settings.limits.send_queue_size
        meter = runtime.metrics.transport(self.transport)
        self.wire = wire_of(websocket.scope)
        direct = self.wire.try_send if self.wire is not None else None
        self.outbox = Outbox(self._write, self._close, limit, meter, direct=direct, name=self.task_name)
        self.subscriptions: dict[str, Subscription] = {}
        self.session: Session = ANONYMOUS_SESSION
        self._expiry: asyncio.TimerHandle | None = None
        self.message_rate = TokenBucket(runtime.settings.limits.max_messages_per_second)
        self.ended = self.subscription_ended
        """What each of its hub subscriptions is told when it is ended: bound once, shared by all."""

    @property
    def subscribed(self) -> int:
        """Its subscriptions of every kind (/metrics, the per-connection limit)."""
        return len(self.subscriptions)

    async def read_messages(self) -> None:
        """Read and act on client messages until the socket ends; raise CloseConnection to end it."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop what the transport holds beyond subscriptions (e.g. running operations)."""

    async def serve(self) -> None:
        await self.websocket.accept(subprotocol=self.subprotocol)
        self.runtime.connections.add(self)
        try:
            await self.read_messages()
        except CloseConnection as close:
            self.outbox.fail(close.code, close.reason, flush=True)
        except WebSocketDisconnect:
            pass
        finally:
            if self._expiry is not None:
                self._expiry.cancel()
            self.runtime.connections.discard(self)
            self.release()
            for subscription in self.subscriptions.values():
                self.realtime.unsubscribe(subscription)
            self.subscriptions.clear()
            # A closing outbox may first send its last frames and the close frame.
            await self.outbox.stop(grace=CLOSE_GRACE_SECONDS)

    def use_session(self, session: Session) -> None:
        """Act as `session` from now on; when its token expires, close with 4403."""
        self.session = session
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        left = session.seconds_left()
        if left is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, left), self.outbox.fail, FORBIDDEN, "Forbidden: the token has expired"
            )

    async def receive_frame(self) -> str | bytes:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if not self.message_rate.take():
            self.too_many_messages()
        text: str | None = message.get("text")
        return text if text is not None else (message.get("bytes") or b"")

    def charge(self, messages: int) -> None:
        """Count the message just received as `messages` more towards the rate limit (4429 when over)."""
        if messages > 0 and not self.message_rate.take(messages):
            self.too_many_messages()

    def too_many_messages(self) -> NoReturn:
        """Over --max-messages-per-second: close with 4429, on every protocol alike."""
        rate = self.message_rate.rate
        raise CloseConnection(TooManyRequests.close_code, f"Too many messages: at most {rate} per second")

    def subscription_ended(self, subscription: Subscription, reason: str) -> None:
        """The hub ended one of its subscriptions (its table was dropped): tell the client `reason`."""
        for key, held in self.subscriptions.items():
            if held is subscription:
                del self.subscriptions[key]
                self.end_subscription(key, NotFound(reason))
                return

    def rules_withdrawn(self, tables: frozenset[str], access: Access) -> None:
        """A schema change broke the select rules of `tables`: end what this session may no longer see."""
        view = access.for_session(self.session)
        for key, subscription in list(self.subscriptions.items()):
            name = subscription.stream.table.name
            if name in tables and name in access.model.tables and view.event_view(name) is None:
                self.realtime.unsubscribe(subscription)
                del self.subscriptions[key]
                self.end_subscription(key, PermissionDenied(withdrawn(name)))

    def end_subscription(self, key: str, error: ForgeError) -> None:
        """Tell the client that subscription `key` (an operation id, a table) was ended by the server."""
        raise NotImplementedError

    async def close_for_shutdown(self) -> None:
        self.outbox.fail(1001, "server shutting down")

    async def _write(self, messages: list[Message]) -> None:
        """Send what the outbox queued (under back-pressure, or without a wire)."""
        if self.wire is not None:
            await self.wire.send_messages(messages)
            return
        for message in messages:
            await self.websocket.send_text(message.text)

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self.websocket.close(code, reason)
