"""broadcaster's internals, touched in this module only: a Redis backend of our own, inside its Broadcast.

broadcaster's own Redis backend delivers nothing with redis-py 8: its
listener task starts before SUBSCRIBE completes, finds no subscription and
parks for good. `RedisBackend` subscribes first and listens after, and
turns a lost connection into an error the caller can see (the capture
loop's listener then rebuilds the connection).

The seam, as tested with broadcaster 0.3.1 (pyproject.toml holds it below 0.4):

- `BroadcastBackend` is subclassed. `Broadcast` calls on its backend
  connect(), disconnect(), subscribe(channel), unsubscribe(channel),
  publish(channel, message) and next_published(), and nothing else (read
  from its code);
- `Broadcast(backend=...)` takes that backend instead of the one its URL names;
- next_published() returns `Event(channel, message)`.

`mismatch()` checks all of that against the installed broadcaster once, at
import. When something does not fit, there is no `RedisBackend`: one
warning says why, and redis:// gets broadcaster's own backend through its
public API (`Broadcast(url)`). Should that deliver nothing, no change is
lost: other processes find it at their next poll instead of at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

from graph import _seams

if TYPE_CHECKING:
    from broadcaster import BroadcastBackend

log = logging.getLogger("forgegraph.realtime")

SCHEMES = ("redis://", "rediss://")
BACKEND = {
    "connect": ["self"],
    "disconnect": ["self"],
    "subscribe": ["self", "channel"],
    "unsubscribe": ["self", "channel"],
    "publish": ["self", "channel", "message"],
    "next_published": ["self"],
}
"""The backend methods `RedisBackend` implements (all coroutines), with their parameters."""
CALLED = frozenset({"connect", "disconnect", "subscribe", "publish", "next_published"})
"""Of those, the ones `Broadcast` must call: else it gets its events some other way."""


def mismatch() -> str | None:
    """Why the installed broadcaster does not fit the seam above; None when it does."""
    try:
        import broadcaster
    except ImportError as error:
        return f"cannot import {error.name}"
    broadcast = getattr(broadcaster, "Broadcast", None)
    base = getattr(broadcaster, "BroadcastBackend", None)
    event = getattr(broadcaster, "Event", None)
    if not (isinstance(broadcast, type) and isinstance(base, type) and isinstance(event, type)):
        return "broadcaster does not export Broadcast, BroadcastBackend and Event"
    if "backend" not in (_seams.parameters(broadcast) or ()):
        return "Broadcast() takes no backend="
    if _seams.parameters(event) != ["channel", "message"]:
        return "Event is not Event(channel, message)"
    for name, expected in BACKEND.items():
        method = getattr(base, name, None)
        found = _seams.parameters(method)
        if not inspect.iscoroutinefunction(method) or found is None or len(found) != len(expected):
            return f"BroadcastBackend.{name} is not a coroutine {name}({', '.join(expected)})"
    called = _seams.attribute_uses(broadcast).get("_backend", set())
    if missing := CALLED - called:
        return f"Broadcast does not call its backend's {', '.join(sorted(missing))}"
    if extra := called - BACKEND.keys():
        return f"Broadcast calls its backend's {', '.join(sorted(extra))}, which RedisBackend lacks"
    return None


def backend_for(url: str) -> BroadcastBackend | None:
    """Our backend for `url`, or None to let broadcaster pick its own."""
    if MISMATCH is None and url.startswith(SCHEMES):
        return RedisBackend(url)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


MISMATCH = mismatch()
"""Why the installed broadcaster does not fit, as found at import; None when it does."""

if MISMATCH is None:
    from broadcaster import BroadcastBackend, Event

    class RedisBackend(BroadcastBackend):
        def __init__(self, url: str) -> None:
            self._url = url
            self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
            self._listener: asyncio.Task[None] | None = None

        async def connect(self) -> None:
            from redis import asyncio as redis

            self._conn = redis.Redis.from_url(self._url)
            await self._conn.ping()  # fail now, not at the first publish
            self._pubsub = self._conn.pubsub(ignore_subscribe_messages=True)

        async def disconnect(self) -> None:
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(BaseException):
                    await self._listener
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            await self._conn.aclose()

        async def subscribe(self, channel: str) -> None:
            await self._pubsub.subscribe(channel)
            if self._listener is None:
                self._listener = asyncio.create_task(self._listen(), name="forgegraph-redis")

        async def unsubscribe(self, channel: str) -> None:
            await self._pubsub.unsubscribe(channel)

        async def publish(self, channel: str, message: Any) -> None:
            await self._conn.publish(channel, message)

        async def next_published(self) -> Event:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            return item

        async def _listen(self) -> None:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        channel, data = message["channel"], message["data"]
                        self._queue.put_nowait(Event(channel=_text(channel), message=_text(data)))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - handed to the reader, who reconnects
                self._queue.put_nowait(error)

else:
    log.warning(
        "broadcaster %s does not fit graph/events/_broadcaster_seam.py (tested with 0.3.1): %s; "
        "redis:// broadcasts use broadcaster's own Redis backend",
        _seams.version("broadcaster"), MISMATCH,
    )
