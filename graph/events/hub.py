"""The fan-out hub: change events to every subscription that wants them.

Subscriptions that would receive identical payloads share a `Stream` (same
table, filter, shape and visibility: the resolved row and column rules, not
the session), so an event is matched and rendered once per stream. Within a
stream, subscriptions whose `Framing`s have the same key (the same operation
id and protocol) share one message, which the transport encodes once; the
per-subscriber work is handing that message to the connection's sink (its
outbox, which writes it to the socket at once unless the socket pushes back).

An event is matched only against the streams it may reach: streams are filed
by the values their filters require (graph.events.index), so a thousand
subscribers each filtering on their own `user_id` cost an event one lookup,
not a thousand filters.

A filter through relationships is matched against the answers SQL gave
for the batch (`dispatch`'s `decided`, graph.events.decide), which the
streams' matchers read from the hub's `truths` while it dispatches.

A stream whose filter or renderer raises on an event misses that event only:
the other streams still get it, and the hub reports the failure once per event.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graph.events.decide import Shapes
from graph.events.index import TableStreams
from graph.rules.matcher import compile_matcher
from graph.rules.related import Truths, related_parts

if TYPE_CHECKING:
    from graph.events.change import ChangeEvent, ChangeType
    from graph.events.sink import Framing, Message, Sink
    from graph.model import Table
    from graph.rules.bool_exp import BoolExp
    from graph.rules.matcher import Matcher
    from graph.rules.related import Decided, RelatedPart

STALLED_SECONDS = 5.0
"""How long a replaying client may take nothing while its live frames overflow (see `Subscription.hold`)."""

Render = Callable[["ChangeEvent", "ChangeType"], str]
"""The payload of an event for a stream, given the change type as the stream sees it."""
Failed = Callable[["ChangeEvent", Exception], None]
"""Told once per event that some stream could not match or render."""
Ended = Callable[["Subscription", str], None]
"""Told that the hub ended a subscription, and why (graph.events.capture.Realtime.end_table)."""

log = logging.getLogger("forgegraph.realtime")


@dataclass(frozen=True)
class StreamKey:
    protocol: str
    table: str
    where: str
    shape: tuple[Any, ...] = ()


@dataclass(eq=False)
class Stream:
    key: StreamKey
    table: Table
    where: BoolExp | None
    render: Render
    members: dict[Subscription, None] = field(default_factory=dict)
    truths: Truths = field(default_factory=Truths)
    """Where the matcher finds its relationship parts decided for the batch (graph.events.decide)."""
    matcher: Matcher = field(init=False)
    """The filter compiled once for the stream's life, not per event."""
    parts: list[RelatedPart] = field(init=False)
    """The filter's parts that go through relationships."""

    def __post_init__(self) -> None:
        self.matcher = compile_matcher(self.where, self.table, self.truths)
        self.parts = related_parts(self.where, self.table)

    def view(self, event: ChangeEvent) -> ChangeType | None:
        """How the event looks through this stream's filter: a row leaving it is a delete."""
        if self.where is None:
            return event.type
        before = event.old is not None and self.matcher(event.old) is True
        after = event.new is not None and self.matcher(event.new) is True
        if before and after:
            return "update"
        if after:
            return "create"
        if before:
            return "delete"
        return None


@dataclass(eq=False, slots=True)
class Subscription:
    stream: Stream
    sink: Sink
    frame: Framing
    last_cursor: int = 0
    pending: list[tuple[int, Message]] | None = None
    """Live frames held back while the subscription replays the log."""
    dropped_through: int = 0
    """The newest held frame let go (see `hold`): the replay must read the log up to it."""
    hold_mark: int = 0
    """The sink's `accepted` count when `hold` last saw the client take something."""
    hold_since: float = 0.0
    """When that was (time.monotonic)."""
    owed: int = 0
    """Live frames held or let go since then."""
    ended: Ended | None = None
    """Told why, when the hub ends the subscription (its table was dropped): its connection's one
    callback, set by the transport (a pointer per subscription, no closure)."""

    def hold(self, cursor: int, message: Message) -> None:
        """Keep a live frame for when the replay ends, within the connection's send-queue limit.

        Held frames count against the limit with the queued ones. Once they
        reach it, they are let go: they are in the change log, and the
        replay reads on through `dropped_through` before it goes live, so a
        slow but steady reader loses nothing and costs no more memory. A
        client that takes nothing for `STALLED_SECONDS` while more live
        frames than the limit arrive has stopped reading: it is closed with
        1013, as a live subscriber whose queue overflows is.
        """
        sink = self.sink
        pending = self.pending
        assert pending is not None
        if sink.accepted != self.hold_mark:
            self.hold_mark = sink.accepted
            self.hold_since = time.monotonic()
            self.owed = 0
        self.owed += 1
        if self.owed > sink.limit and time.monotonic() - self.hold_since >= STALLED_SECONDS:
            sink.overflow()
        elif sink.can_hold():
            pending.append((cursor, message))
            sink.held += 1
        else:
            sink.let_go(len(pending))
            pending.clear()
            self.dropped_through = cursor

    def release(self) -> list[tuple[int, Message]]:
        """End holding: the held frames, no longer counted against the sink."""
        pending, self.pending = self.pending or [], None
        self.sink.let_go(len(pending))
        return pending


def _ignore(_event: ChangeEvent, _error: Exception) -> None:
    pass


class Hub:
    def __init__(self, failed: Failed = _ignore) -> None:
        self.failed = failed
        self.streams: dict[StreamKey, Stream] = {}
        self._by_table: dict[str, TableStreams] = {}
        self.truths = Truths()
        """The answers of the batch being dispatched, which every stream's matcher reads."""
        self.shapes = Shapes()
        """The live streams' relationship parts, which `decide` answers per batch."""

    def join(
        self,
        key: StreamKey,
        table: Table,
        where: BoolExp | None,
        render: Render,
        sink: Sink,
        frame: Framing,
        *,
        replaying: bool = False,
    ) -> Subscription:
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(key, table, where, render, truths=self.truths)
            self.shapes.add(stream.parts)
            streams = self._by_table.get(table.name)
            if streams is None:
                streams = self._by_table[table.name] = TableStreams(self.truths)
            streams.add(stream)
        subscription = Subscription(stream, sink, frame, pending=[] if replaying else None)
        if replaying:
            # The replay's first page is owed room from now on, not from when it
            # first asks: live frames may arrive before it runs (Sink.can_hold).
            sink.reserve_replay()
            subscription.hold_mark = sink.accepted
            subscription.hold_since = time.monotonic()
        stream.members[subscription] = None
        return subscription

    def leave(self, subscription: Subscription) -> None:
        subscription.release()
        stream = subscription.stream
        stream.members.pop(subscription, None)
        if not stream.members and self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
            self.shapes.remove(stream.parts)
            streams = self._by_table[stream.table.name]
            streams.remove(stream)
            if not streams:
                del self._by_table[stream.table.name]

    def end_table(self, name: str, reason: str) -> None:
        """End every subscription to table `name`, telling each `ended` (the table was dropped)."""
        for stream in [s for s in self.streams.values() if s.table.name == name]:
            for subscription in list(stream.members):
                self.leave(subscription)
                if subscription.ended is not None:
                    try:
                        subscription.ended(subscription, reason)
                    except Exception:
                        log.exception("ending a subscription to dropped table %r failed", name)

    @property
    def subscriptions(self) -> int:
        return sum(len(s.members) for s in self.streams.values())

    def dispatch(self, events: list[ChangeEvent], decided: Decided | None = None) -> None:
        """Send `events` (in cursor order) to every subscription; never waits on a socket.

        Each connection gets the events of the batch in one burst (one write).
        `decided`: the relationship parts answered for this batch (graph.events.decide).
        """
        self.truths.decided = decided
        try:
            self._dispatch(events)
        finally:
            self.truths.decided = None

    def _dispatch(self, events: list[ChangeEvent]) -> None:
        bursts: dict[Sink, list[Message]] = {}
        by_table = self._by_table
        for event in events:
            cursor = event.cursor
            error: Exception | None = None
            streams = by_table.get(event.table)
            for stream in streams.candidates(event) if streams is not None else ():
                # Per stream, not per subscriber: the try costs nothing unless it raises.
                try:
                    change = stream.view(event)
                    if change is None:
                        continue
                    payload = stream.render(event, change)
                except Exception as failure:  # noqa: BLE001 - this (event, stream) only
                    error = failure
                    continue
                messages: dict[Hashable, Message] = {}
                for sub in stream.members:
                    if sub.sink.closed:
                        continue  # a slow consumer being closed costs no more work
                    frame = sub.frame
                    message = messages.get(frame.key)
                    if message is None:
                        message = messages[frame.key] = frame(payload, cursor)
                    if sub.pending is not None:
                        sub.hold(cursor, message)
                    elif cursor > sub.last_cursor:
                        sub.last_cursor = cursor
                        burst = bursts.get(sub.sink)
                        if burst is None:
                            bursts[sub.sink] = [message]
                        else:
                            burst.append(message)
            if error is not None:
                self.failed(event, error)
        for sink, burst in bursts.items():
            sink.push(burst)

    @staticmethod
    def replayed(subscription: Subscription, events: list[ChangeEvent], decided: Decided | None = None) -> None:
        """Queue events read back from the log to one replaying subscription (`decided`: as for `dispatch`)."""
        stream = subscription.stream
        stream.truths.decided = decided
        try:
            Hub._replayed(subscription, events)
        finally:
            stream.truths.decided = None

    @staticmethod
    def _replayed(subscription: Subscription, events: list[ChangeEvent]) -> None:
        stream = subscription.stream
        frames = []
        for event in events:
            if event.table != stream.table.name or event.cursor <= subscription.last_cursor:
                continue
            subscription.last_cursor = event.cursor
            try:
                change = stream.view(event)
                if change is None:
                    continue
                payload = stream.render(event, change)
            except Exception as error:  # noqa: BLE001 - reported when it was live; skip it here too
                log.debug("replaying change %d: skipped it: %r", event.cursor, error)
                continue
            frames.append(subscription.frame(payload, event.cursor))
        subscription.sink.push(frames)

    @staticmethod
    def go_live(subscriptions: Sequence[Subscription], read_through: int | None = None) -> bool:
        """End a replay: release held live frames the replay did not already send.

        `read_through`: every event up to this cursor was committed before
        the replay's last read of the log, which found nothing newer to send.
        Frames let go after that (`dropped_through`) are not in that read:
        then nothing is released, and False says "read the log again".
        Frames held for several subscriptions (one SSE stream over several
        tables) go out merged in cursor order.
        """
        if read_through is not None and any(
            sub.dropped_through > read_through and not sub.sink.closed for sub in subscriptions
        ):
            return False
        held = heapq.merge(
            *([(cursor, frame, sub) for cursor, frame in sub.release()] for sub in subscriptions),
            key=lambda item: item[0],
        )
        bursts: dict[Sink, list[Message]] = defaultdict(list)
        for cursor, frame, sub in held:
            if cursor > sub.last_cursor:
                sub.last_cursor = cursor
                bursts[sub.sink].append(frame)
        for sink, frames in bursts.items():
            sink.push(frames)
        return True
