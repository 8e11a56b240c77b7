"""The broadcast connection between server processes, picked by URL scheme.

broadcaster's own Redis backend delivers nothing with redis-py 8: its
listener task starts before SUBSCRIBE completes, finds no subscription and
parks for good. This backend subscribes first and listens after, and turns a
lost connection into an error the caller can see (the Realtime listener then
rebuilds the connection). Other schemes use broadcaster's backends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend


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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def make_broadcast(url: str) -> Broadcast:
    """A Broadcast for `url` (memory://, redis://, rediss://, postgres://); ValueError if unknown."""
    if url.startswith(("redis://", "rediss://")):
        return Broadcast(backend=RedisBackend(url))
    return Broadcast(url)
