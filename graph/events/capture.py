"""Capture -> hub: the path of every committed change to this process's subscribers.

A capture loop reads the change log after each commit it is told about, and
every `poll_interval` for anyone else's writes, and hands each batch to the
hub in cursor order. The log, not the broker, is the source of truth: every
server process reads it for itself, so a change reaches the subscribers of
every process once and in order, whichever process (or program) made it,
and a broker that restarts loses nothing.

`broadcaster` carries the wake-up instead of the rows: after reading new
events a process publishes the newest cursor, and the others read the log
at once instead of at their next poll. On PostgreSQL the capture trigger
also NOTIFYs the same channel for other programs' writes (forgegraph's own
are published by the process that wrote them), so `--broadcast
postgres://...` wakes every process for any writer. This keeps wide rows
clear of NOTIFY's 8000-byte payload limit and lets a broker outage cost
latency, never events. The publishing is a task of its own, so a slow
broker never delays local delivery.

Without capture (`serve --no-capture`) there is no trigger and no log: the
mutations tell `written` the rows they wrote, once committed, and those are
the events, numbered by this process from 1 (see `written` for what that
costs: nothing from other programs, no replay).

A change that cannot be turned into events (a captured row that will not
convert, a filter or renderer that raises on it) is contained to that
change: logged once with its cursor, counted in `/metrics`
(`forgegraph_events_failed_total`), and the log moves on. A failure to read
the log itself (the database went away) is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.config import Capture
from graph.errors import InvalidCursor, StartupError
from graph.events.broker import make_broadcast
from graph.events.change import ChangeEvent, driver_row_image
from graph.events.changelog import (
    LOG,
    NOTIFY_CHANNEL,
    READ_LIMIT,
    Batch,
    ChangeLog,
    Retention,
    Undecodable,
)
from graph.events.decide import Shapes, merged, shapes_of
from graph.events.hub import Hub
from graph.metrics import CaptureMeter

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.events.decide import Decider
    from graph.events.hub import Render, StreamKey, Subscription
    from graph.events.sink import Framing, Sink
    from graph.model import DatabaseModel, Table
    from graph.rules.bool_exp import BoolExp
    from graph.rules.related import Decided

log = logging.getLogger("forgegraph.realtime")
CHANNEL = NOTIFY_CHANNEL  # the capture trigger's NOTIFY channel too, on PostgreSQL
HEARTBEAT_PREFIX = "heartbeat:"
BROKER_HEARTBEAT_SECONDS = 1.0
BROKER_RETRY_SECONDS = 1.0


class Realtime:
    def __init__(
        self,
        engine: AsyncEngine,
        model: DatabaseModel,
        broadcast_url: str,
        settings: Capture | None = None,
        meter: CaptureMeter | None = None,
        *,
        capture: bool = True,
    ) -> None:
        self.engine = engine
        self.capture = capture
        """False: no triggers, no log; the events are the API's writes (`written`)."""
        self.model = model
        self.settings = settings or Capture()
        self.meter = meter or CaptureMeter()
        self.changelog = ChangeLog(engine, model, self.meter)
        self.hub = Hub(self._dispatch_failed)
        self.watchers: list[Callable[[frozenset[str]], None]] = []
        """Told the tables each batch of committed changes touched, after the hub (live queries)."""
        # broadcaster's Postgres backend hands the URL to asyncpg, which knows no "+asyncpg".
        url = broadcast_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            self.broadcast = make_broadcast(url)
        except (ValueError, ImportError) as error:
            raise StartupError(f"cannot use broadcast URL {broadcast_url!r}: {error}") from None
        self.broadcast_url = broadcast_url
        # memory:// reaches only this process, which wakes itself already.
        self.shared = not url.startswith("memory://")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._broadcast_target = url
        self.dispatched_through = 0
        self._publish_wanted = asyncio.Event()
        self._to_publish = 0
        self._broker_failing = False
        self.broker_healthy = True
        self.decider: Decider | None = None
        self._direct_cursor = 0
        self._direct_events: asyncio.Queue[list[ChangeEvent]] = asyncio.Queue()

    def use_decider(self, decider: Decider) -> None:
        """Decide the relationship parts of stream filters on these connections (graph.events.decide)."""
        self.decider = decider

    def use_model(self, model: DatabaseModel, decider: Decider) -> None:
        """Read the log with a new schema's model from the next batch on (graph.generation).

        Streams go on from their cursors: an added column is in the images of
        changes captured from now on, a dropped one is no longer.
        """
        self.model = model
        self.changelog.model = model
        self.decider = decider

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def end_table(self, name: str, reason: str) -> None:
        """End every subscription to table `name` (dropped): each transport tells its client `reason`.

        Live queries reading it are refreshed, and end with the error their
        statement now meets.
        """
        self.hub.end_table(name, reason)
        for watcher in list(self.watchers):
            try:
                watcher(frozenset((name,)))
            except Exception:
                log.exception("a watcher of dropped table %r failed", name)

    async def start(self) -> None:
        if not self.capture:
            # Nothing in the database: events are what `written` is told, in its order.
            await self._warn_if_installed()
            self._tasks = [asyncio.create_task(self._direct(), name="forgegraph-direct-events")]
            return
        await self.changelog.install()
        try:
            await self.broadcast.connect()
        except Exception as error:  # noqa: BLE001 - each backend raises its own kind
            raise StartupError(f"cannot connect to broadcast {self.broadcast_url!r}: {error}") from None
        async with self.engine.connect() as conn:
            self.dispatched_through = await self.changelog.latest(conn)
        self._tasks = [
            asyncio.create_task(self._capture(), name="forgegraph-capture"),
            asyncio.create_task(self._prune(), name="forgegraph-prune"),
        ]
        if self.shared:
            self._tasks.append(asyncio.create_task(self._publish(), name="forgegraph-publish"))
            self._tasks.append(asyncio.create_task(self._listen(), name="forgegraph-listen"))
            await self._listening.wait()

    async def _warn_if_installed(self) -> None:
        """Triggers an earlier `serve` installed go on logging every write, which nobody prunes now."""

        def installed(sync_conn: sa.Connection) -> bool:
            return bool(sa.inspect(sync_conn).has_table(LOG))

        async with self.engine.connect() as conn:
            if await conn.run_sync(installed):
                log.warning(
                    "--no-capture, but capture is installed in this database (%s and its triggers): "
                    "they log every write and nothing prunes the log; remove them with `forgegraph uninstall`",
                    LOG,
                )

    async def stop(self) -> None:
        if not self._tasks:
            return  # never started (export-schema) or already stopped
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop_broadcast()

    async def _drop_broadcast(self) -> None:
        """Disconnect, whatever state the broker connection is in."""
        try:
            await self.broadcast.disconnect()
        except asyncio.CancelledError:
            # broadcaster re-raises its own listener task's cancellation here;
            # only a cancellation of this task itself must go on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception:  # noqa: BLE001 - a broker that died has nothing left to close
            pass

    def nudge(self) -> None:
        """A transaction that may have changed captured rows has committed."""
        self._wake.set()

    def written(self, changes: Sequence[tuple[Table, str, list[Any]]], dialect: str) -> None:
        """A committed mutation's rows (without capture): its events, dispatched in commit order.

        (table, type, rows as the driver returned them): new rows for creates,
        (old, new) pairs for updates, old rows for deletes. What the write did
        not return is not known: rows changed by ON DELETE CASCADE or by a
        custom mutation's own statements, and the old image of a row an upsert
        updated (an upsert's rows are creates unless a permission check needed
        them told apart).
        """
        events: list[ChangeEvent] = []
        for table, op, rows in changes:
            for row in rows:
                old: Any = row if op == "delete" else row[0] if op == "update" else None
                new: Any = None if op == "delete" else row[1] if op == "update" else row
                old_image, old_bad = driver_row_image(table, old, dialect) if old is not None else (None, [])
                new_image, new_bad = driver_row_image(table, new, dialect) if new is not None else (None, [])
                self._direct_cursor += 1
                events.append(ChangeEvent(
                    self._direct_cursor, table.name, op,  # type: ignore[arg-type]
                    old_image, new_image, (*old_bad, *new_bad),
                ))
        if events:
            self._direct_events.put_nowait(events)

    async def _direct(self) -> None:
        while True:
            events = await self._direct_events.get()
            self.dispatched_through = events[-1].cursor
            self.meter.captured += len(events)
            decided = await self._decide(events, self.hub.shapes)
            self._dispatch(events, decided)
            self._tell_watchers(Batch(events, events[-1].cursor, []))

    @property
    def latest_direct(self) -> int:
        """The newest cursor this process has handed out without capture (`changeCursor`)."""
        return self._direct_cursor

    async def _capture(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for drops a
            # cancellation that arrives as the event is set (a commit just before
            # shutdown), and stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while True:
                    batch = await self.changelog.read_new(self.dispatched_through)
                    if batch.through == self.dispatched_through:
                        break
                    # Moved on first: whatever fails below is that change's alone,
                    # and would fail the same way on every retry.
                    self.dispatched_through = batch.through
                    self.meter.captured += len(batch.events)
                    for failure in batch.failed:
                        self._undecodable(failure)
                    self._publish_soon(batch.through)
                    # Awaited in the loop, so batches still reach the hub one at a time, in order.
                    decided = await self._decide(batch.events, self.hub.shapes)
                    self._dispatch(batch.events, decided)
                    self._tell_watchers(batch)
                    if batch.rows < READ_LIMIT:
                        # The log held no more when read. A commit since has set `_wake`
                        # again (its nudge, the broker, or the poll), so reading once
                        # more now would mostly find nothing: one statement per wake.
                        break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the change log failed; retrying")
                await asyncio.sleep(self.settings.poll_interval)

    async def _decide(self, events: list[ChangeEvent], shapes: Shapes) -> Decided | None:
        """The relationship parts of `shapes` answered for a batch; None when that failed.

        A failure leaves those parts UNKNOWN for this batch: their streams
        miss its events, reported as failed events, and everything else is
        delivered.
        """
        if self.decider is None or not shapes or not events:
            return None
        try:
            decided = await self.decider.decide(events, shapes)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the database failing the statement
            self._decision_failed(events, error)
            return None
        if shapes is self.hub.shapes:
            decided = await self._decide_joined(events, decided)
        return decided

    def _decision_failed(self, events: list[ChangeEvent], error: Exception) -> None:
        self.meter.failed += len(events)
        log.error(
            "deciding relationship filters for changes %d to %d failed; streams filtering "
            "through relationships miss them: %r", events[0].cursor, events[-1].cursor, error,
        )

    async def _decide_joined(self, events: list[ChangeEvent], decided: Decided) -> Decided:
        """`decided`, with the values of the streams that joined while it was being decided.

        The hub dispatches the batch to every stream it has then, so a stream
        that joined during the statement (with values no other stream has)
        must not find itself undecided: that would cost it the batch's events,
        which a stream without relationship parts joining at the same moment
        receives. Each round decides only the newcomers' values; it ends when
        none joined during the last one (no await between it and dispatch).
        A failure costs only the newcomers the batch.
        """
        assert self.decider is not None
        tables = {event.table for event in events}
        while True:
            joined = self.hub.shapes.undecided(decided, tables)
            if not joined:
                return decided
            try:
                decided = merged(decided, await self.decider.decide(events, joined))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database failing the statement
                self._decision_failed(events, error)
                return decided

    def _dispatch(self, events: list[ChangeEvent], decided: Decided | None = None) -> None:
        """Hand a batch to the hub; a fault there costs this batch, never the loop.

        The hub contains a failing filter or renderer to its (event, stream);
        anything else that raises is a bug of ours, reported as what it is
        rather than as a failed read of the log, which would not be retried.
        """
        try:
            self.hub.dispatch(events, decided)
        except Exception:
            self.meter.failed += len(events)
            log.exception(
                "dispatching changes %d to %d failed; some subscribers may have missed them",
                events[0].cursor, events[-1].cursor,
            )

    def _tell_watchers(self, batch: Batch) -> None:
        """Tell each watcher (live queries) which tables the batch changed, once it is dispatched."""
        if not self.watchers:
            return
        tables = frozenset(event.table for event in batch.events) | frozenset(f.table for f in batch.failed)
        if not tables:
            return
        for watcher in list(self.watchers):
            try:
                watcher(tables)
            except Exception:
                log.exception("a watcher of changes to %s failed", sorted(tables))

    def _undecodable(self, failure: Undecodable) -> None:
        self.meter.failed += 1
        log.error(
            "change %d (table %s) could not be turned into an event; skipped it: %r",
            failure.cursor, failure.table, failure.error,
        )

    def _dispatch_failed(self, event: ChangeEvent, error: Exception) -> None:
        self.meter.failed += 1
        log.error(
            "change %d (table %s) could not be matched or rendered for some subscribers; "
            "skipped it for them: %r",
            event.cursor, event.table, error,
        )

    def _publish_soon(self, cursor: int) -> None:
        """Have the publisher announce `cursor`, without waiting for the broker."""
        if self.shared:
            self._to_publish = cursor
            self._publish_wanted.set()

    async def _publish(self) -> None:
        """Announce the newest cursor, one publish at a time, coalescing what came meanwhile.

        Apart from the capture loop, so local subscribers never wait on a slow broker.
        """
        while True:
            await self._publish_wanted.wait()
            self._publish_wanted.clear()
            await self._announce(self._to_publish)
            _cancelled_meanwhile()  # redis-py may swallow stop()'s cancellation, as in _listen

    async def _announce(self, cursor: int) -> None:
        """Tell the other processes that the log has grown to `cursor`."""
        if not self.shared:
            return
        try:
            await self.broadcast.publish(CHANNEL, str(cursor))
        except Exception as error:  # noqa: BLE001 - the poll still finds every event
            if not self._broker_failing:
                log.warning("broadcast %s is failing (%s); other processes poll", self.broadcast_url, error)
            self._broker_failing = True
        else:
            self.meter.published += 1
            self._broker_failing = False

    async def _listen(self) -> None:
        """Wake the capture loop on the broker's messages, rebuilding a broker connection that died.

        broadcaster's backends do not all survive their server restarting
        (the Redis one's listener task just ends), so the subscription proves
        itself alive with a heartbeat it must hear back; when it does not, the
        Broadcast object is replaced. Meanwhile the capture loop polls.
        """
        while True:
            _cancelled_meanwhile()
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any broker failure: reconnect
                if self.broker_healthy:
                    log.warning("lost broadcast %s (%s); reconnecting", self.broadcast_url, error)
                self.broker_healthy = False
                self._listening.set()  # start-up must not wait on a broker that went away
                await self._drop_broadcast()
                _cancelled_meanwhile()
                await asyncio.sleep(BROKER_RETRY_SECONDS)
                self.broadcast = make_broadcast(self._broadcast_target)
                with contextlib.suppress(Exception):
                    await self.broadcast.connect()

    async def _listen_once(self) -> None:
        async with self.broadcast.subscribe(CHANNEL) as subscriber:
            heartbeat = f"{HEARTBEAT_PREFIX}{id(self)}"
            await self.broadcast.publish(CHANNEL, heartbeat)
            heard = time.monotonic()
            while True:
                try:
                    # asyncio.timeout, not wait_for: see _capture (a lost cancellation hangs shutdown).
                    async with asyncio.timeout(BROKER_HEARTBEAT_SECONDS):
                        message = await subscriber.get()
                except TimeoutError:
                    if time.monotonic() - heard > 2.5 * BROKER_HEARTBEAT_SECONDS:
                        raise ConnectionError("the broker stopped answering") from None
                    await self.broadcast.publish(CHANNEL, heartbeat)
                    continue
                heard = time.monotonic()
                if not self.broker_healthy:
                    log.info("broadcast %s is back", self.broadcast_url)
                    self._wake.set()  # whatever was committed meanwhile: read it now
                self.broker_healthy = True
                self._listening.set()
                text = message.message
                if text.startswith(HEARTBEAT_PREFIX):
                    continue
                # The trigger's NOTIFY carries no cursor: any other message means "read the log".
                if not (text.isascii() and text.isdigit()) or int(text) > self.dispatched_through:
                    self._wake.set()

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(self.settings.prune_interval)
            try:
                retention = Retention(self.settings.retention_hours, self.settings.retention_events)
                removed = await self.changelog.prune(retention)
                if removed:
                    log.info("pruned %d events from the change log", removed)
            except Exception:
                log.exception("pruning the change log failed")

    async def check_cursor(self, since: str) -> int:
        """The cursor `since` names; InvalidCursor when it cannot be resumed from.

        Without capture nothing is kept to replay: only "0" and this process's
        newest cursor (nothing missed) can be resumed from.
        """
        if not self.capture:
            return self._check_direct(since)
        async with self.engine.connect() as conn:
            return await self.changelog.check_cursor(conn, since)

    def _check_direct(self, since: str) -> int:
        if not (since.isascii() and since.isdigit()) or len(since) > 19:
            raise InvalidCursor(f"malformed cursor {since!r}: expected decimal digits")
        cursor = int(since)
        if cursor > self._direct_cursor:
            raise InvalidCursor(f"cursor {since} was never issued by this server")
        if cursor not in (0, self._direct_cursor):
            raise InvalidCursor(
                f"cursor {since} cannot be resumed from: this server keeps no change log (--no-capture); "
                "query the current rows instead"
            )
        return cursor

    async def subscribe(
        self,
        key: StreamKey,
        table: Table,
        where: BoolExp | None,
        render: Render,
        sink: Sink,
        frame: Framing,
        since: str | None = None,
    ) -> Subscription:
        """Join a stream; with `since`, first replay the retained log after that cursor.

        Raises InvalidCursor before joining when `since` cannot be resumed from.
        """
        if since is None:
            return self.hub.join(key, table, where, render, sink, frame)
        cursor = await self.check_cursor(since)
        # Join first, holding live frames, so nothing committed meanwhile is missed.
        subscription = self.hub.join(key, table, where, render, sink, frame, replaying=True)
        subscription.last_cursor = cursor
        try:
            await self.resume([subscription], sink)
        except BaseException:
            self.hub.leave(subscription)
            raise
        return subscription

    async def resume(self, subscriptions: Sequence[Subscription], sink: Sink) -> None:
        """Replay the log after the subscriptions' `last_cursor` into `sink`, then go live.

        The subscriptions (one per table, joined with `replaying=True`) share
        the sink; their events are replayed in one cursor-ordered pass, so a
        client cut off mid-replay resumes from a cursor that lost nothing.
        Pages wait for room in the sink: the reader sets the pace. Live
        frames held meanwhile count against the send queue (`Subscription.hold`).
        Each page checks, in the snapshot it reads, that the pruner has not
        overtaken the cursor it continues from: InvalidCursor then, never a gap.
        Without capture there is nothing to replay (`check_cursor` let only
        cursors through that miss nothing): live at once.
        """
        if not self.capture:
            self.hub.go_live(subscriptions)
            return
        by_table = {s.stream.table.name: s for s in subscriptions}
        shapes = shapes_of(part for s in subscriptions for part in s.stream.parts)
        # The related tables' changes are read too, not sent: a related row deleted
        # in the same batch is decided from its old image (graph.events.decide).
        tables = list(by_table) + sorted(
            {rel.remote_table for s in subscriptions for rel in s.stream.table.relationships
             if any(part.relationship == rel.name for part in s.stream.parts)} - set(by_table)
        )
        after = min(s.last_cursor for s in subscriptions)
        page = sink.replay_page
        while await sink.room(page):
            # Everything dispatched so far was committed before this read starts.
            read_through = self.dispatched_through
            async with self.engine.connect() as conn:
                batch = await self.changelog.read_retained(conn, after, tables, limit=page)
            if batch.through == after:
                if self.hub.go_live(subscriptions, read_through):
                    return
                continue  # live frames let go after this read began: read them from the log
            after = batch.through
            # Decided as live batches are: one statement per shape for the page.
            decided = await self._decide(batch.events, shapes)
            for event in batch.events:
                subscription = by_table.get(event.table)
                if subscription is not None:
                    self.hub.replayed(subscription, [event], decided)
        self.hub.go_live(subscriptions)  # the connection is gone: just stop holding

    def unsubscribe(self, subscription: Subscription) -> None:
        self.hub.leave(subscription)


def _cancelled_meanwhile() -> None:
    """Raise CancelledError if this task was cancelled inside a call that swallowed it.

    redis-py's disconnect, called on a broker that stopped answering, can catch
    the cancellation stop() sends; without this the listener would go on
    reconnecting and shutdown would wait for it forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
