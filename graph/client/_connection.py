"""The Client's one graphql-transport-ws socket, shared by all its subscriptions.

While any subscription is open the socket is kept up: after a drop it is
reopened (Backoff: exponential, capped, jittered) and every subscription is
sent again with `since` = the last cursor it received, so the server
replays what was committed meanwhile (SPEC section 5: no gap, no
duplicate). Events at or below a subscription's last cursor are dropped
here too, whatever the server sends.

Knowing when the server has a subscription: the protocol has no
acknowledgement for `subscribe`, but the server handles a connection's
messages in order, so a `ping` sent after it is answered (`pong`) only once
the subscription is joined, and after any replay it asked for is queued.
The SDK sends such a numbered ping (a barrier) after each batch of subscribes.

A subscription starts from the server's `changeCursor` (read when it is
opened), so even one that has received no event resumes without a gap; a
quiet one's cursor would still fall far behind (a long replay on every
reconnect). The barrier moves it on whenever a sibling on this socket receives a
live event: the server queues each event to all of a connection's
subscriptions before the next event, so when a sibling receives cursor c
after this subscription went live, this one has received everything of
its own before c. Only frames received while no barrier is outstanding
count (a replay in flight may carry older or newer cursors).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from graph.client import _protocol as protocol
from graph.client._documents import TABLE_CHANGED
from graph.client._errors import ClientError, ConnectionFailed
from graph.client._events import ChangeEvent

if TYPE_CHECKING:
    from graph.client._backoff import Backoff
    from graph.client._subscription import Subscription

log = logging.getLogger("graph.client")


class Pace:
    """At most `rate` messages a second, in bursts of up to `rate` (a token bucket)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._last = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.rate)
            self._last = time.monotonic()
            self._tokens = 1
        self._tokens -= 1


class Connection:
    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        backoff: Backoff,
        *,
        open_timeout: float,
        trust_env: bool,
    ) -> None:
        self.url = url
        self.headers = headers
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.proxy: Literal[True] | None = True if trust_env else None
        self.subscriptions: dict[str, Subscription] = {}
        self.opened = 0
        """How many sockets were opened and acknowledged so far."""
        self._ids = itertools.count(1)
        self._barrier_ids = itertools.count(1)
        self._barriers: dict[int, list[Subscription]] = {}
        self._pace = Pace(protocol.MESSAGES_PER_SECOND)
        self._ws: ClientConnection | None = None
        self._generation = 0
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    # -- what subscriptions ask -----------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def add(self, subscription: Subscription) -> None:
        """Subscribe; return once the server has it, or raise the ClientError that refused it.

        A server that cannot be reached right now is a ConnectionFailed here;
        once a subscription has started, drops are retried until it ends.
        """
        if self._closed:
            raise ClientError("the client is closed")
        subscription.op_id = str(next(self._ids))
        self.subscriptions[subscription.op_id] = subscription
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):  # the runner sends it again on the next socket
                await self._send_subscribes([subscription])
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="graph.client-connection")
            self._runner.add_done_callback(self._runner_ended)
        try:
            await subscription.wait_live()
        except BaseException:
            self.subscriptions.pop(subscription.op_id, None)
            raise

    async def remove(self, subscription: Subscription) -> None:
        if self.subscriptions.pop(subscription.op_id, None) is None:
            return
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            if not self.subscriptions:
                await ws.close()  # the runner ends with the last subscription
            elif subscription.sent_generation == self._generation:
                await self._send(protocol.complete(subscription.op_id))

    async def close(self) -> None:
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        subscriptions = list(self.subscriptions.values())
        self.subscriptions.clear()
        for subscription in subscriptions:
            await subscription.shutdown()

    # -- the socket's life ------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while self.subscriptions:
            try:
                acknowledged, lost = await self._connect_and_read()
            except ClientError as error:
                log.error("%s: %s; not reconnecting", self.url, error)
                self._fail(list(self.subscriptions.values()), error)
                return
            if acknowledged:
                attempt = 0
            else:
                # Subscriptions that never started fail at once instead of waiting for a server that is not there.
                self._fail([s for s in self.subscriptions.values() if not s.ever_live], lost)
            if not self.subscriptions:
                return
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.info("%s; reconnecting in %.2f s", lost, delay)
            await asyncio.sleep(delay)

    def _runner_ended(self, runner: asyncio.Task[None]) -> None:
        if runner.cancelled() or runner.exception() is None:
            return
        # A bug here must not leave subscribers waiting forever for events.
        log.error("the connection task failed", exc_info=runner.exception())
        error = ClientError(f"the connection task failed: {runner.exception()!r}")
        self._fail(list(self.subscriptions.values()), error)

    def _fail(self, subscriptions: list[Subscription], error: ClientError) -> None:
        for subscription in subscriptions:
            self.subscriptions.pop(subscription.op_id, None)
            subscription.fail(error)

    async def _connect_and_read(self) -> tuple[bool, ConnectionFailed]:
        """One socket, from connecting to its end: (whether it was acknowledged, why it ended).

        Raises ClientError when the end is final (bad credentials, a refused URL).
        """
        try:
            ws = await connect(
                self.url,
                subprotocols=[Subprotocol(protocol.SUBPROTOCOL)],
                open_timeout=self.open_timeout,
                close_timeout=2,
                max_size=None,
                proxy=self.proxy,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            message = f"{self.url} refused the WebSocket upgrade with HTTP {status}"
            if status in protocol.FINAL_HTTP_STATUSES:
                raise ClientError(message, protocol.FINAL_HTTP_STATUSES[status]) from None
            return False, ConnectionFailed(message)
        except (OSError, InvalidHandshake, TimeoutError) as error:
            return False, ConnectionFailed(f"cannot connect to {self.url}: {error}")
        acknowledged = False
        code: int | None = None
        reason = ""
        try:
            await ws.send(json.dumps(protocol.connection_init(self.headers)))
            async with asyncio.timeout(self.open_timeout):
                await self._acknowledgement(ws)
            acknowledged = True
            self._open(ws)
            await self._send_subscribes(list(self.subscriptions.values()))
            async for raw in ws:
                await self._receive(raw)
            code, reason = ws.close_code, ws.close_reason or ""
        except ConnectionClosed as closed:
            if closed.rcvd is not None:
                code, reason = closed.rcvd.code, closed.rcvd.reason
        except TimeoutError:
            reason = "no connection_ack in time"
        except (ValueError, KeyError, TypeError) as error:
            reason = f"unreadable message from the server: {error!r}"
        finally:
            self._ws = None
            self._barriers.clear()
            await ws.close()
        final = protocol.FINAL_CLOSE_CODES.get(code or 0)
        if final is not None:
            raise ClientError(f"the server closed the connection with {code}: {reason}", final)
        ended = f"the connection to {self.url} closed" + (f" with {code}" if code else "")
        return acknowledged, ConnectionFailed(ended + (f": {reason}" if reason else ""))

    async def _acknowledgement(self, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "connection_ack":
                return
            if message.get("type") == "ping":
                await ws.send(json.dumps(protocol.pong(message.get("payload"))))
        raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)

    def _open(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._generation += 1
        self.opened += 1

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise ConnectionClosed(None, None)
        ws = self._ws
        await self._pace.wait()
        await ws.send(json.dumps(message))

    async def _send_subscribes(self, subscriptions: list[Subscription]) -> None:
        """Send the subscriptions not yet sent on this socket, then one barrier ping for them."""
        fresh = [
            s for s in subscriptions
            if s.sent_generation != self._generation and not s.ended and s.op_id in self.subscriptions
        ]
        if self._ws is None or not fresh:
            return
        barrier = next(self._barrier_ids)
        self._barriers[barrier] = fresh
        for subscription in fresh:
            subscription.sent_generation = self._generation
        for subscription in fresh:
            variables: dict[str, Any] = {"table": subscription.table}
            if subscription.where is not None:
                variables["where"] = subscription.where
            since = subscription.since()
            if since is not None:
                variables["since"] = since
            await self._send(protocol.subscribe(subscription.op_id, TABLE_CHANGED, variables))
        await self._send(protocol.ping(barrier))

    # -- what the server sends ------------------------------------------------

    async def _receive(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        kind = message.get("type")
        op_id = message.get("id")
        if kind == "next":
            await self._next(op_id, message.get("payload") or {})
        elif kind == "pong":
            payload = message.get("payload")
            barrier = payload.get("barrier") if isinstance(payload, dict) else None
            confirmed = self._barriers.pop(barrier, []) if isinstance(barrier, int) else []
            for subscription in confirmed:
                if not subscription.ended:
                    subscription.went_live(self._generation)
        elif kind == "ping":
            await self._send(protocol.pong(message.get("payload")))
        elif kind == "error":
            errors = message.get("payload")
            self._end(op_id, ClientError.from_graphql(errors if isinstance(errors, list) else [errors]))
        elif kind == "complete":
            self._end(op_id, None)

    def _end(self, op_id: Any, error: ClientError | None) -> None:
        subscription = self.subscriptions.pop(op_id, None) if isinstance(op_id, str) else None
        if subscription is None:
            return
        if error is None:
            subscription.finish()
        else:
            subscription.fail(error)

    async def _next(self, op_id: Any, payload: dict[str, Any]) -> None:
        subscription = self.subscriptions.get(op_id) if isinstance(op_id, str) else None
        if subscription is None:
            return  # completed by us; its last frames were already on the way
        if payload.get("errors"):
            self._end(op_id, ClientError.from_graphql(payload["errors"]))
            with contextlib.suppress(ConnectionClosed):
                await self._send(protocol.complete(op_id))
            return
        event = ChangeEvent.from_payload((payload.get("data") or {})["tableChanged"])
        # Decided on arrival: the barrier state is what held when the server sent this frame.
        siblings = [] if self._barriers else [
            s for s in self.subscriptions.values()
            if s is not subscription and s.live_generation == self._generation
        ]
        await subscription.room()
        subscription.accept(event)
        for sibling in siblings:
            # c - 1, not c: the sibling's own frame for this same event may still be on its way.
            sibling.advance(event.position - 1)
