"""The fan-out hub: change events to every subscription that wants them.

Subscriptions that would receive identical payloads share a `Stream` (same
table, filter, shape and visibility: the resolved row and column rules, not
the session), so an event is matched and rendered once per stream. Within a
stream, subscriptions whose `Frame`s have the same key (the same operation
id and protocol) share one `Message`, whose bytes are encoded once; the
per-subscriber work is handing that message to the connection's outbox,
which writes it to the socket at once unless the socket pushes back.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graph.delivery.message import Message
from graph.matching import compile_filter

if TYPE_CHECKING:
    from graph.delivery.outbox import Outbox
    from graph.events import ChangeEvent, ChangeType
    from graph.matching import Matcher
    from graph.model import Table

Render = Callable[["ChangeEvent", "ChangeType"], str]
"""The payload of an event for a stream, given the change type as the stream sees it."""


class Frame:
    """One subscription's message around a payload: `prefix + payload + suffix`.

    Frames with equal `key`s wrap a payload alike, so the subscriptions that
    hold them share one encoded message per event.
    """

    __slots__ = ("key", "prefix", "suffix")

    def __init__(self, prefix: str = "", suffix: str = "") -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.key: Hashable = (type(self), prefix, suffix)

    def __call__(self, payload: str, cursor: int) -> str:
        return self.prefix + payload + self.suffix


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
    where: Mapping[str, Any] | None
    render: Render
    members: dict[Subscription, None] = field(default_factory=dict)
    matcher: Matcher = field(init=False)
    """The filter compiled once for the stream's life, not per event."""

    def __post_init__(self) -> None:
        self.matcher = compile_filter(self.where)

    def view(self, event: ChangeEvent) -> ChangeType | None:
        """How the event looks through this stream's filter: a row leaving it is a delete."""
        if not self.where:
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
    outbox: Outbox
    frame: Frame
    last_cursor: int = 0
    pending: list[tuple[int, Message]] | None = None
    """Live frames held back while the subscription replays the log."""


class Hub:
    def __init__(self) -> None:
        self.streams: dict[StreamKey, Stream] = {}
        self._by_table: dict[str, list[Stream]] = defaultdict(list)

    def join(
        self,
        key: StreamKey,
        table: Table,
        where: Mapping[str, Any] | None,
        render: Render,
        outbox: Outbox,
        frame: Frame,
        *,
        replaying: bool = False,
    ) -> Subscription:
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(key, table, where, render)
            self._by_table[table.name].append(stream)
        subscription = Subscription(stream, outbox, frame, pending=[] if replaying else None)
        stream.members[subscription] = None
        return subscription

    def leave(self, subscription: Subscription) -> None:
        stream = subscription.stream
        stream.members.pop(subscription, None)
        if not stream.members and self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
            self._by_table[stream.table.name].remove(stream)
            if not self._by_table[stream.table.name]:
                del self._by_table[stream.table.name]

    @property
    def subscriptions(self) -> int:
        return sum(len(s.members) for s in self.streams.values())

    def dispatch(self, events: list[ChangeEvent]) -> None:
        """Send `events` (in cursor order) to every subscription; never waits on a socket.

        Each connection gets the events of the batch in one burst (one write).
        """
        bursts: dict[Outbox, list[Message]] = {}
        for event in events:
            cursor = event.cursor
            for stream in self._by_table.get(event.table, ()):
                change = stream.view(event)
                if change is None:
                    continue
                payload = stream.render(event, change)
                messages: dict[Hashable, Message] = {}
                for sub in stream.members:
                    if sub.outbox.closed:
                        continue  # a slow consumer being closed costs no more work
                    frame = sub.frame
                    message = messages.get(frame.key)
                    if message is None:
                        message = messages[frame.key] = Message(frame(payload, cursor))
                    if sub.pending is not None:
                        sub.pending.append((cursor, message))
                    elif cursor > sub.last_cursor:
                        sub.last_cursor = cursor
                        burst = bursts.get(sub.outbox)
                        if burst is None:
                            bursts[sub.outbox] = [message]
                        else:
                            burst.append(message)
        for outbox, burst in bursts.items():
            outbox.push(burst)

    @staticmethod
    def replayed(subscription: Subscription, events: list[ChangeEvent]) -> None:
        """Queue events read back from the log to one replaying subscription."""
        stream = subscription.stream
        frames = []
        for event in events:
            if event.table != stream.table.name or event.cursor <= subscription.last_cursor:
                continue
            subscription.last_cursor = event.cursor
            change = stream.view(event)
            if change is not None:
                frames.append(Message(subscription.frame(stream.render(event, change), event.cursor)))
        subscription.outbox.push(frames)

    @staticmethod
    def go_live(subscriptions: Sequence[Subscription]) -> None:
        """End a replay: release held live frames the replay did not already send.

        Frames held for several subscriptions (one SSE stream over several
        tables) go out merged in cursor order.
        """
        held = heapq.merge(
            *([(cursor, frame, sub) for cursor, frame in sub.pending or ()] for sub in subscriptions),
            key=lambda item: item[0],
        )
        bursts: dict[Outbox, list[Message]] = defaultdict(list)
        for cursor, frame, sub in held:
            if cursor > sub.last_cursor:
                sub.last_cursor = cursor
                bursts[sub.outbox].append(frame)
        for sub in subscriptions:
            sub.pending = None
        for outbox, frames in bursts.items():
            outbox.push(frames)
