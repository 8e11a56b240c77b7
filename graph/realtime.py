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
from graph.events import decode_batch, encode_batch
from graph.fanout import Hub

if TYPE_CHECKING:
    from collections.abc import Mapping

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
        self.broadcast = Broadcast(broadcast_url)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self.published_through = 0

    async def start(self) -> None:
        await self.changelog.install()
        await self.broadcast.connect()
        async with self.engine.connect() as conn:
            self.published_through = await self.changelog.latest(conn)
        self._tasks = [
            asyncio.create_task(self._listen(), name="forgegraph-listen"),
            asyncio.create_task(self._capture(), name="forgegraph-capture"),
            asyncio.create_task(self._prune(), name="forgegraph-prune"),
        ]
        await self._listening.wait()

    async def stop(self) -> None:
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
        async with self.engine.connect() as conn:
            cursor = await self.changelog.check_cursor(conn, since)
        # Join first, holding live frames, so nothing committed meanwhile is missed.
        subscription = self.hub.join(key, table, where, render, outbox, frame, replaying=True)
        subscription.last_cursor = cursor
        try:
            while True:
                async with self.engine.connect() as conn:
                    events = await self.changelog.read(
                        conn, subscription.last_cursor, tables=[table.name], limit=REPLAY_PAGE
                    )
                if not events:
                    break
                self.hub.replayed(subscription, events)
        except BaseException:
            self.hub.leave(subscription)
            raise
        self.hub.go_live(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.hub.leave(subscription)
