"""The wire: pre-framed messages written to uvicorn's transport, and its lighter queue and flag."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from graph.delivery._uvicorn_seam import Flag, Inbox
from graph.delivery.message import Message, websocket_frame
from graph.delivery.socket import EventSocket
from tests.conftest import GraphQLWS, LiveServer

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def parse(data: bytes) -> Frame:
    """`data` read back by websockets' own parser, as a client reads an unmasked frame."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_message_is_one_unmasked_text_frame_of_any_length(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte characters: lengths are in bytes
    frame = parse(Message(text).frame)
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1
    assert bytes(frame.data).decode() == text


def test_a_message_encodes_once() -> None:
    message = Message('{"a":1}')
    assert message.frame is message.frame and message.data is message.data
    assert websocket_frame(message.data) == message.frame


async def test_inbox_hands_items_over_in_order_and_survives_a_cancelled_reader() -> None:
    inbox: Inbox[int] = Inbox()
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await asyncio.wait_for(reader, 1) == 1
    assert not inbox.empty()
    assert await inbox.get() == 2 and inbox.empty()


async def test_flag_wakes_every_waiter_and_is_set_at_first() -> None:
    flag = Flag()
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True] * 3


# -- end to end: the tests' server runs the wire, as `forgegraph serve` does ---------


async def insert(server: LiveServer, body: str) -> None:
    mutation = 'mutation($b: String!) { insert_posts_one(object: {title: "w", body: $b, user_id: 1}) { id } }'
    async with httpx.AsyncClient(base_url=server.url) as http:
        reply = await http.post("/graphql", json={"query": mutation, "variables": {"b": body}})
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text


@sqlite_only
async def test_events_of_every_frame_length_reach_compressed_and_plain_subscribers(
    library_url: str, serve: Any
) -> None:
    server = serve(database=library_url)
    bodies = ["s", "m" * 300, "l" * 70_000]  # 7-bit, 16-bit and 64-bit payload lengths
    async with GraphQLWS.open(server) as deflated, GraphQLWS.open(server, compression=None) as plain:
        # Distinct operation ids: each connection gets its own frame around the shared payload.
        for ws, op_id in ((deflated, "a"), (plain, "b")):
            await ws.send({"id": op_id, "type": "subscribe", "payload": {
                "query": 'subscription { tableChanged(table: "posts") { type record } }'}})
            await ws.send({"type": "ping"})
            assert (await ws.receive())["type"] == "pong"  # messages are handled in order: joined
        sockets = [c for c in server.app.state.runtime.connections if isinstance(c, EventSocket)]
        wires = [s.wire for s in sockets if s.wire is not None]
        assert len(sockets) == len(wires) == 2
        assert sorted(bool(wire.conn.extensions) for wire in wires) == [False, True]
        for body in bodies:
            await insert(server, body)
        for ws, op_id in ((deflated, "a"), (plain, "b")):
            for body in bodies:
                message = await ws.receive()
                assert message["id"] == op_id and message["type"] == "next"
                assert message["payload"]["data"]["tableChanged"]["record"]["body"] == body
