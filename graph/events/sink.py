"""What the hub delivers into, as the event side sees a subscriber's connection.

The event side names no transport. A subscription holds a `Sink` (a
connection's bounded send queue; graph.delivery.outbox.Outbox is the one
there is) and a `Framing` that wraps its stream's payload in the message its
transport sends. The hub makes one message per event, stream and framing
key, and hands the same object to every sink that wants it: what the message
is (the transport's text, encoded at most once) is the transport's business.

The sink's counters and `can_hold`/`let_go` exist for replays: live frames
that arrive while a subscription reads the log are held against the same
limit as queued ones (see `hub.Subscription.hold`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol, TypeAlias

Message: TypeAlias = Any
"""What a `Framing` makes of a payload; the hub only passes it on."""


class Framing(Protocol):
    key: Hashable
    """Framings with equal keys wrap a payload alike: their subscriptions share one message per event."""

    def __call__(self, payload: str, cursor: int) -> Message: ...


class Sink(Protocol):
    closed: bool
    """The connection is closing: nothing more is delivered to it."""
    accepted: int
    """How many messages the client has taken so far: its progress."""
    held: int
    """Live frames held back for its replaying subscriptions (see `can_hold`)."""

    @property
    def limit(self) -> int:
        """How many frames it may hold for its client, queued and held together."""

    @property
    def replay_page(self) -> int:
        """How many events a replay reads from the log at a time."""

    def push(self, messages: Sequence[Message]) -> None:
        """Send event messages, in order, without waiting."""

    def overflow(self) -> None:
        """The client holds more than `limit`: close the connection as a slow consumer."""

    def can_hold(self) -> bool:
        """Whether one more live frame may be held, leaving the replay's next page its room."""

    def let_go(self, held: int) -> None:
        """`held` frames are no longer held back."""

    def reserve_replay(self) -> None:
        """Keep a replay page's room free from now on."""

    async def room(self, messages: int) -> bool:
        """Wait until `messages` more fit; False once the connection is gone."""
