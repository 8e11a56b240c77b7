"""Replays and stalled readers obey the send queue (issue 12, item 11), over real sockets.

A client that stops reading (a small receive buffer it never empties) while
a `since` replay runs and writes go on is closed with 1013, and what the
server holds for it stays within the send-queue limit; a reader that reads
slowly but steadily still gets every event, replayed and live, with no gap.
The same for SSE, where "1013" means the server drops the response.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from graph.config import Limits
from graph.events.hub import STALLED_SECONDS
from tests.conftest import TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_metrics import by_transport, scrape
from tests.test_realtime import CHANGES, change, subscribe
from tests.test_sse import EventReader

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])

LIMIT = 50
RETAINED = 3000
BODY = os.urandom(2048).hex()  # 4 KiB of text per event: 3,000 of them overflow any TCP buffer
INSERT_MANY = "mutation($o: [posts_insert_input!]!) { insert_posts(objects: $o) { affected_rows } }"
SLOW = "forgegraph_slow_consumers_closed_total"


async def post(server: LiveServer, query: str, variables: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200 and "errors" not in response.json(), response.text


async def insert(server: LiveServer, titles: list[str], body: str = BODY) -> None:
    for start in range(0, len(titles), 200):  # within the request body limit
        rows = [{"title": t, "body": body, "user_id": 1} for t in titles[start:start + 200]]
        await post(server, INSERT_MANY, {"o": rows})


async def retained_log(server: LiveServer) -> str:
    """A cursor with RETAINED big events after it in the change log."""
    async with GraphQLWS.open(server) as ws:
        await subscribe(ws, "1", "posts")
        await insert(server, ["before"], body="")
        cursor: str = (await change(ws, "1"))["cursor"]
    await insert(server, [f"old-{n}" for n in range(RETAINED)])
    return cursor


def on_server(server: LiveServer, read: Callable[[Any], Any]) -> Any:
    """`read(runtime)` run on the server's own event loop (its state is not thread-safe)."""
    runtime = server.app.state.runtime
    loop = runtime.realtime._tasks[0].get_loop()

    async def run() -> Any:
        return read(runtime)

    return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=5)


def held_frames(runtime: Any) -> int:
    """Live frames the hub holds back for replaying subscriptions, over all connections."""
    return sum(
        len(sub.pending or ()) for stream in runtime.realtime.hub.streams.values() for sub in stream.members
    )


def stalled_socket(server: LiveServer) -> socket.socket:
    """A connected TCP socket with a tiny receive buffer, which the test does not read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    return sock


async def write_live(
    server: LiveServer, count: int, check: Callable[[], None] | None = None, start: int = 0
) -> None:
    """`count` live events, in small transactions, checking the server between them."""
    for n in range(start, start + count, 5):
        await insert(server, [f"live-{m}" for m in range(n, n + 5)], body="x" * 512)
        if check is not None:
            check()


async def slow_consumers(server: LiveServer, transport: str, expected: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        closed = by_transport(await scrape(server), SLOW)[transport]
        if closed == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert closed == expected


async def write_until_closed(server: LiveServer, transport: str, check: Callable[[], None]) -> None:
    """Live events, as long as the stalled client is not closed (STALLED_SECONDS and then some)."""
    deadline = time.monotonic() + STALLED_SECONDS + 20
    n = 0
    while by_transport(await scrape(server), SLOW)[transport] == 0:
        assert time.monotonic() < deadline, "the stalled client was never closed"
        await write_live(server, 4 * LIMIT, check, start=n)
        n += 4 * LIMIT
    assert by_transport(await scrape(server), SLOW)[transport] == 1


@sqlite_only
async def test_a_reader_that_stops_mid_replay_is_closed_with_1013(library_url: str, serve: Any) -> None:
    server: LiveServer = serve(database=library_url, limits=Limits(send_queue_size=LIMIT))
    since = await retained_log(server)
    most_held = 0

    def check() -> None:
        nonlocal most_held
        most_held = max(most_held, on_server(server, held_frames))

    options = {"sock": stalled_socket(server), "compression": None, "max_queue": 1, "max_size": None}
    async with GraphQLWS.open(server, **options) as stalled:
        await stalled.subscribe("1", CHANGES, {"table": "posts", "since": since})  # and never reads
        await write_until_closed(server, TRANSPORT_WS, check)
        assert most_held <= LIMIT  # not one frame per live event
        # Read at last: what was in flight, then the close frame.
        got = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                async with asyncio.timeout(20):
                    await stalled.connection.recv()
                got += 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert got < RETAINED
    assert on_server(server, held_frames) == 0


@sqlite_only
async def test_a_slow_steady_reader_gets_the_whole_replay_and_every_live_event(
    library_url: str, serve: Any
) -> None:
    server: LiveServer = serve(database=library_url, limits=Limits(send_queue_size=LIMIT))
    since = await retained_log(server)
    live = 4 * LIMIT
    expected = [f"old-{n}" for n in range(RETAINED)] + [f"live-{n}" for n in range(live)]
    async with GraphQLWS.open(server, max_size=None) as ws:
        await ws.subscribe("1", CHANGES, {"table": "posts", "since": since})
        writer = asyncio.create_task(write_live(server, live))
        titles: list[str] = []
        cursors: list[int] = []
        while len(titles) < len(expected):
            event = await change(ws, "1", timeout=20)
            titles.append(event["record"]["title"])
            cursors.append(int(event["cursor"]))
            if len(titles) % 20 == 0:
                await asyncio.sleep(0.02)  # slow, but steady
        await writer
    assert titles == expected  # everything, in commit order: no gap, no duplicate
    assert cursors == sorted(set(cursors))
    assert by_transport(await scrape(server), SLOW)[TRANSPORT_WS] == 0


# -- SSE ------------------------------------------------------------------------


def sse_request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n".encode()


async def streams_open(server: LiveServer) -> int:
    return int(by_transport(await scrape(server), "forgegraph_connections")["sse"])


@asynccontextmanager
async def sse_reader(server: LiveServer, *params: tuple[str, str]) -> AsyncIterator[EventReader]:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http,
        http.stream("GET", "/realtime/sse", params=[("table", "posts"), *params]) as response,
    ):
        assert response.status_code == 200
        yield EventReader(response)


async def dropped(server: LiveServer, sock: socket.socket, timeout: float = 10) -> None:
    """The server ends the stalled stream: released on the server, and the socket ends once read."""
    deadline = time.monotonic() + timeout
    while await streams_open(server) != 0:
        assert time.monotonic() < deadline, "the stalled SSE stream was not released"
        await asyncio.sleep(0.1)
    sock.settimeout(20)
    while sock.recv(1 << 20):  # what was in flight, then the end of the connection
        pass


@sqlite_only
async def test_a_stalled_sse_reader_mid_replay_is_cut_off(library_url: str, serve: Any) -> None:
    server: LiveServer = serve(database=library_url, limits=Limits(send_queue_size=LIMIT))
    since = await retained_log(server)
    most_held = 0

    def check() -> None:
        nonlocal most_held
        most_held = max(most_held, on_server(server, held_frames))

    sock = stalled_socket(server)
    try:
        sock.sendall(sse_request(f"/realtime/sse?table=posts&since={since}"))
        await write_until_closed(server, "sse", check)
        assert most_held <= LIMIT
        await dropped(server, sock)
    finally:
        sock.close()
    assert on_server(server, held_frames) == 0


@sqlite_only
async def test_a_stalled_live_sse_reader_is_cut_off_and_others_carry_on(library_url: str, serve: Any) -> None:
    server: LiveServer = serve(database=library_url, limits=Limits(send_queue_size=LIMIT))
    big = os.urandom(16 * 1024).hex()  # 32 KiB per event
    total = 300
    sock = stalled_socket(server)
    try:
        async with sse_reader(server) as steady:
            sock.sendall(sse_request("/realtime/sse?table=posts"))
            while await streams_open(server) != 2:
                await asyncio.sleep(0.05)

            async def read_all() -> list[str]:
                return [json.loads((await steady.event(20))["data"])["record"]["title"] for _ in range(total)]

            reading = asyncio.create_task(read_all())
            for n in range(0, total, 10):
                await insert(server, [f"big-{m}" for m in range(n, n + 10)], body=big)
            assert await reading == [f"big-{n}" for n in range(total)]
            await slow_consumers(server, "sse", 1)
            deadline = time.monotonic() + 10
            while await streams_open(server) != 1:  # the steady reader's stream stays
                assert time.monotonic() < deadline, "the stalled SSE stream was not released"
                await asyncio.sleep(0.1)
        await dropped(server, sock)
    finally:
        sock.close()


def gate_replays(server: LiveServer) -> Callable[[], None]:
    """Make replays wait, just before their first read, until the returned function is called.

    The window this widens is real but one event-loop turn wide: an SSE
    stream joins its streams (holding live frames) when its response starts,
    and its replay task first runs a turn later. A transaction dispatched in
    that turn used to fill the send queue with held frames before the
    replay had reserved room for its first page. Patched on the server's
    `Realtime` instance, which the stream calls `resume` on.
    """
    realtime = server.app.state.runtime.realtime
    loop = realtime._tasks[0].get_loop()
    gate = asyncio.Event()
    resume = realtime.resume

    async def gated(*args: Any) -> None:
        await gate.wait()
        await resume(*args)

    realtime.resume = gated
    return lambda: loop.call_soon_threadsafe(gate.set)


async def dispatched(server: LiveServer) -> None:
    """Wait until the hub has dispatched everything committed so far (`changeCursor`)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        newest = int((await http.post("/graphql", json={"query": "{ changeCursor }"})).json()["data"]["changeCursor"])
    deadline = time.monotonic() + 10
    while on_server(server, lambda runtime: runtime.realtime.dispatched_through) < newest:
        assert time.monotonic() < deadline, "the change was never dispatched"
        await asyncio.sleep(0.02)


@sqlite_only
async def test_a_bulk_insert_as_an_sse_stream_resumes_leaves_its_replay_room(library_url: str, serve: Any) -> None:
    # 40 left held of the last 50 (LIMIT) once the bulk insert is dispatched: with nothing
    # reserved, the replay's first page (25) did not fit and nothing woke it again.
    bulk = 6 * LIMIT + 40
    server: LiveServer = serve(database=library_url, limits=Limits(send_queue_size=LIMIT))
    async with sse_reader(server) as reader:
        await insert(server, ["seen"], body="")
        since = (await reader.event())["id"]
    await insert(server, [f"missed-{n}" for n in range(10)], body="")
    open_gate = gate_replays(server)
    async with sse_reader(server, ("since", since)) as reader:
        while on_server(server, lambda runtime: runtime.realtime.hub.subscriptions) != 1:
            await asyncio.sleep(0.02)
        # One transaction, dispatched while the stream holds live frames and its replay has not run.
        await post(server, INSERT_MANY, {"o": [{"title": f"bulk-{n}", "user_id": 1} for n in range(bulk)]})
        await dispatched(server)
        open_gate()
        expected = [f"missed-{n}" for n in range(10)] + [f"bulk-{n}" for n in range(bulk)]
        got = [json.loads((await reader.event())["data"]) for _ in expected]
        assert [event["record"]["title"] for event in got] == expected  # in order, no gap, no duplicate
        await insert(server, ["live"], body="")
        assert json.loads((await reader.event())["data"])["record"]["title"] == "live"
    cursors = [int(event["cursor"]) for event in got]
    assert cursors == sorted(set(cursors)) and cursors[0] > int(since)
    assert by_transport(await scrape(server), SLOW)["sse"] == 0  # never closed with 1013
