"""The outbox: direct writes while the socket takes them, an ordered queue under back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from graph.delivery.message import Frame, Message
from graph.delivery.outbox import INTERNAL_ERROR, TRY_AGAIN_LATER, Outbox
from graph.events.change import ChangeEvent
from graph.events.hub import Hub, StreamKey, Subscription
from graph.metrics import TransportMeter
from graph.model import Column, Kind, Table


class Socket:
    """A fake connection: writes directly while `open`, else through the (awaited) writer."""

    def __init__(self) -> None:
        self.open = True
        self.direct: list[str] = []
        self.queued: list[str] = []
        self.closed: list[int] = []
        self.unblock = asyncio.Event()
        self.unblock.set()

    def try_send(self, messages: Sequence[Message]) -> bool:
        if not self.open:
            return False
        self.direct.extend(m.text for m in messages)
        return True

    async def write(self, messages: list[Message]) -> None:
        await self.unblock.wait()
        self.queued.extend(m.text for m in messages)

    async def close(self, code: int, _reason: str) -> None:
        self.closed.append(code)


def outbox_for(socket: Socket, limit: int = 10, meter: TransportMeter | None = None) -> Outbox:
    return Outbox(socket.write, socket.close, limit, meter, direct=socket.try_send)


def texts(*names: str) -> list[Message]:
    return [Message(name) for name in names]


async def test_messages_go_out_at_once_without_a_writer_task() -> None:
    socket, meter = Socket(), TransportMeter()
    outbox = outbox_for(socket, meter=meter)
    outbox.push_one("ack")
    outbox.push(texts("e1", "e2"))
    assert socket.direct == ["ack", "e1", "e2"] and outbox.depth == 0
    assert meter.delivered == 2  # events, not protocol messages
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "forgegraph-writer"]


async def test_under_back_pressure_later_messages_queue_behind_earlier_ones() -> None:
    socket, meter = Socket(), TransportMeter()
    outbox = outbox_for(socket, meter=meter)
    socket.open = False  # the transport is paused
    socket.unblock.clear()
    outbox.push(texts("e1"))
    await asyncio.sleep(0)  # the writer takes e1 and waits for room
    socket.open = True  # the transport would take data again, but e1 is not written yet
    outbox.push(texts("e2"))
    outbox.push_one("pong")
    assert socket.direct == [] and outbox.depth == 2
    socket.unblock.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert socket.queued == ["e1", "e2", "pong"] and outbox.depth == 0
    outbox.push(texts("e3"))  # drained: straight to the socket again
    assert socket.direct == ["e3"]
    assert meter.delivered == 3
    await outbox.stop()


async def test_a_full_queue_closes_with_1013_and_is_counted() -> None:
    socket, meter = Socket(), TransportMeter()
    outbox = outbox_for(socket, limit=2, meter=meter)
    socket.open = False
    socket.unblock.clear()
    outbox.push(texts("e1"))
    await asyncio.sleep(0)  # e1 is being written
    outbox.push(texts("e2", "e3"))
    assert not outbox.closed
    outbox.push(texts("e4"))
    assert outbox.closed and meter.slow_consumers_closed == 1
    await outbox.stop(grace=5)
    # e1 was still waiting for the socket: abandoned, so a peer that never reads
    # again pins neither that batch nor the close.
    assert socket.closed == [TRY_AGAIN_LATER] and socket.queued == []


async def test_a_socket_that_fails_to_write_is_closed_without_breaking_the_caller() -> None:
    socket = Socket()

    def broken(_messages: Sequence[Message]) -> bool:
        raise OSError("gone")

    outbox = Outbox(socket.write, socket.close, 10, direct=broken)
    outbox.push(texts("e1"))  # no exception here: the hub's loop goes on to other connections
    assert outbox.closed
    await outbox.stop(grace=5)
    assert socket.closed == [INTERNAL_ERROR]


async def test_a_close_with_flush_sends_what_was_queued_first() -> None:
    socket = Socket()
    outbox = outbox_for(socket)
    socket.open = False
    outbox.push_one("error: bad request")
    outbox.fail(4400, "bad request", flush=True)
    outbox.push(texts("late"))  # after the close: dropped
    await outbox.stop(grace=5)
    assert socket.queued == ["error: bad request"] and socket.closed == [4400]


# -- live frames held while a subscription replays the log ------------------------


def _replaying(outbox: Outbox) -> tuple[Hub, Subscription]:
    posts = Table("posts", (Column("id", Kind.INTEGER, False),), ("id",))
    hub = Hub()
    key = StreamKey("test", "posts", "")
    sub = hub.join(key, posts, None, lambda event, change: str(event.cursor), outbox, Frame(), replaying=True)
    return hub, sub


def _events(*cursors: int) -> list[ChangeEvent]:
    return [ChangeEvent(c, "posts", "create", None, {"id": c}) for c in cursors]


async def test_held_frames_count_against_the_limit_and_leave_the_page_its_room() -> None:
    socket = Socket()
    outbox = outbox_for(socket, limit=10)
    hub, sub = _replaying(outbox)
    assert await outbox.room(4)  # the replay's page
    hub.dispatch(_events(1, 2, 3, 4, 5, 6, 7))
    # 6 held (10 - the page of 4); the 7th lets them go: the replay reads them from the log.
    assert sub.pending == [] and outbox.held == 0 and sub.dropped_through == 7
    assert not outbox.closed
    hub.dispatch(_events(8))
    assert [c for c, _ in sub.pending or ()] == [8] and outbox.waiting == 1
    # A read that began before 7 was dispatched cannot end the replay; one after it can.
    assert not hub.go_live([sub], read_through=6)
    assert hub.go_live([sub], read_through=8)
    assert socket.direct == ["8"] and outbox.held == 0 and sub.pending is None


async def test_a_replaying_subscription_reserves_its_page_as_it_joins() -> None:
    socket = Socket()
    outbox = outbox_for(socket, limit=10)
    hub, _sub = _replaying(outbox)
    # Live frames before the replay first asks for room leave its page (5, half the queue)
    # free: 5 held, the 6th lets them go, 3 held again; never the 9 that leave no room.
    hub.dispatch(_events(*range(1, 10)))
    assert outbox.held == 3
    assert await asyncio.wait_for(outbox.room(outbox.replay_page), 1)


async def test_a_replay_waiting_for_room_goes_on_when_held_frames_are_let_go() -> None:
    socket = Socket()
    outbox = outbox_for(socket, limit=10)
    hub, sub = _replaying(outbox)
    hub.dispatch(_events(1, 2, 3, 4, 5))
    assert outbox.held == 5
    waiting = asyncio.create_task(outbox.room(6))  # more than the 5 held frames leave
    await asyncio.sleep(0.01)
    assert not waiting.done()
    hub.dispatch(_events(6))  # no room to hold it: all let go, which frees the room (no writer runs)
    assert outbox.held == 0 and sub.dropped_through == 6
    assert await asyncio.wait_for(waiting, 1)
    # Ending the replay frees the room too.
    hub.dispatch(_events(7, 8, 9, 10))
    waiting = asyncio.create_task(outbox.room(7))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert hub.go_live([sub], read_through=10)
    assert await asyncio.wait_for(waiting, 1)


async def test_a_replaying_client_that_takes_nothing_is_closed_with_1013(monkeypatch: Any) -> None:
    monkeypatch.setattr("graph.events.hub.STALLED_SECONDS", 0.0)
    socket, meter = Socket(), TransportMeter()
    socket.open = False
    outbox = outbox_for(socket, limit=10, meter=meter)
    hub, _sub = _replaying(outbox)
    hub.dispatch(_events(*range(1, 11)))  # held, then let go: nothing is lost yet
    assert not outbox.closed
    hub.dispatch(_events(11))  # more than the limit owed, and nothing taken
    assert outbox.closed and meter.slow_consumers_closed == 1
    await outbox.stop(grace=5)
    assert socket.closed == [TRY_AGAIN_LATER]


async def test_a_replaying_client_that_reads_is_not_closed(monkeypatch: Any) -> None:
    monkeypatch.setattr("graph.events.hub.STALLED_SECONDS", 0.0)
    socket = Socket()
    outbox = outbox_for(socket, limit=10)
    hub, sub = _replaying(outbox)
    for cursor in range(1, 100):
        outbox.push_one("replayed")  # the reader takes something between live frames
        hub.dispatch(_events(cursor))
    assert not outbox.closed and outbox.waiting <= 10 and sub.dropped_through > 0
