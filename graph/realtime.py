"""Capture -> broadcast -> hub: the path of every committed change to subscribers.

A capture loop reads the change log after each commit it is told about (and
every `poll_interval` for other programs' writes), publishes each batch on
the broadcast channel, and a listener hands what arrives to the hub. With
`memory://` both ends are this process; a shared broker carries the same
batches between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcaster import Broadcast
from broadcaster._base import Unsubscribed

from graph.changelog import ChangeLog, Retention
from graph.errors import StartupError
from graph.events import decode_batch, encode_batch
from graph.fanout import Hub

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.delivery.outbox import Outbox
    from graph.fanout import Frame, Render, StreamKey, Subscription
    from graph.model import DatabaseModel, Table

log = logging.getLogger("forgegraph.realtime")
CHANNEL = "forgegraph.changes"
REPLAY_PAGE = 1000


@dataclass(frozen=True)
class RealtimeSettings:
    poll_interval: float = 0.2
    prune_interval: float = 300.0
    retention: Retention = field(default_factory=Retention)


class Realtime:
    def __init__(
        self,
        engine: AsyncEngine,
        model: DatabaseModel,
        broadcast_url: str,
        settings: RealtimeSettings | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.settings = settings or RealtimeSettings()
        self.changelog = ChangeLog(engine, model)
        self.hub = Hub()
        try:
            self.broadcast = Broadcast(broadcast_url)
        except (ValueError, ImportError) as error:
            raise StartupError(f"cannot use broadcast URL {broadcast_url!r}: {error}") from None
        self.broadcast_url = broadcast_url
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self.published_through = 0

    async def start(self) -> None:
        await self.changelog.install()
        try:
            await self.broadcast.connect()
        except Exception as error:  # noqa: BLE001 - each backend raises its own kind
            raise StartupError(f"cannot connect to broadcast {self.broadcast_url!r}: {error}") from None
        async with self.engine.connect() as conn:
            self.published_through = await self.changelog.latest(conn)
        self._tasks = [
            asyncio.create_task(self._listen(), name="forgegraph-listen"),
            asyncio.create_task(self._capture(), name="forgegraph-capture"),
            asyncio.create_task(self._prune(), name="forgegraph-prune"),
        ]
        await self._listening.wait()

    async def stop(self) -> None:
        if not self._tasks:
            return  # never started (export-schema) or already stopped
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.broadcast.disconnect()

    def nudge(self) -> None:
        """A transaction that may have changed captured rows has committed."""
        self._wake.set()

    async def _capture(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()
            try:
                while True:
                    async with self.engine.connect() as conn:
                        events = await self.changelog.read(conn, self.published_through)
                    if not events:
                        break
                    self.published_through = events[-1].cursor
                    await self.broadcast.publish(CHANNEL, encode_batch(events))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the change log failed; retrying")
                await asyncio.sleep(self.settings.poll_interval)

    async def _listen(self) -> None:
        async with self.broadcast.subscribe(CHANNEL) as subscriber:
            self._listening.set()
            while True:
                try:
                    message = await subscriber.get()
                except Unsubscribed:
                    return
                try:
                    self.hub.dispatch(decode_batch(message.message))
                except Exception:
                    log.exception("dispatching a change batch failed")

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(self.settings.prune_interval)
            try:
                removed = await self.changelog.prune(self.settings.retention)
                if removed:
                    log.info("pruned %d events from the change log", removed)
            except Exception:
                log.exception("pruning the change log failed")

    async def check_cursor(self, since: str) -> int:
        """The cursor `since` names; InvalidCursor when it cannot be resumed from."""
        async with self.engine.connect() as conn:
            return await self.changelog.check_cursor(conn, since)

    async def subscribe(
        self,
        key: StreamKey,
        table: Table,
        where: Mapping[str, Any] | None,
        render: Render,
        outbox: Outbox,
        frame: Frame,
        since: str | None = None,
    ) -> Subscription:
        """Join a stream; with `since`, first replay the retained log after that cursor.

        Raises InvalidCursor before joining when `since` cannot be resumed from.
        """
        if since is None:
            return self.hub.join(key, table, where, render, outbox, frame)
        cursor = await self.check_cursor(since)
        # Join first, holding live frames, so nothing committed meanwhile is missed.
        subscription = self.hub.join(key, table, where, render, outbox, frame, replaying=True)
        subscription.last_cursor = cursor
        try:
            await self.resume([subscription], outbox)
        except BaseException:
            self.hub.leave(subscription)
            raise
        return subscription

    async def resume(self, subscriptions: Sequence[Subscription], outbox: Outbox) -> None:
        """Replay the log after the subscriptions' `last_cursor` into `outbox`, then go live.

        The subscriptions (one per table, joined with `replaying=True`) share
        the outbox; their events are replayed in one cursor-ordered pass, so a
        client cut off mid-replay resumes from a cursor that lost nothing.
        Pages wait for room in the outbox: the reader sets the pace.
        """
        by_table = {s.stream.table.name: s for s in subscriptions}
        after = min(s.last_cursor for s in subscriptions)
        page = max(1, min(REPLAY_PAGE, outbox.limit // 2))
        while await outbox.room(page):
            async with self.engine.connect() as conn:
                events = await self.changelog.read(conn, after, tables=list(by_table), limit=page)
            if not events:
                break
            after = events[-1].cursor
            for event in events:
                self.hub.replayed(by_table[event.table], [event])
        self.hub.go_live(subscriptions)

    def unsubscribe(self, subscription: Subscription) -> None:
        self.hub.leave(subscription)
