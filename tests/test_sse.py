"""GET /realtime/sse: the raw protocol's events as Server-Sent Events, over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graph.access import EventView
from graph.app import create_app
from graph.auth import ANONYMOUS_SESSION
from graph.config import Limits
from graph.delivery import sse
from graph.delivery.forgebase import renderer, stream_key
from graph.delivery.message import Message
from graph.delivery.outbox import Outbox
from graph.delivery.sse import EventStream
from graph.events.change import ChangeEvent
from graph.events.hub import Hub
from graph.metrics import Metrics
from graph.model import Column, Kind, Table
from tests.conftest import LiveServer

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send
    from starlette.types import Message as ASGIMessage

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


class EventReader:
    """Splits an SSE body into events (dicts of field -> value) and comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.chunks = response.aiter_text()
        self.buffer = ""

    async def block(self, timeout: float = 5) -> str:
        """The next block of lines (an event or a comment), without its blank line."""
        try:
            async with asyncio.timeout(timeout):
                while "\n\n" not in self.buffer:
                    self.buffer += await anext(self.chunks)
        except TimeoutError:
            pytest.fail(f"no event within {timeout} s")
        block, self.buffer = self.buffer.split("\n\n", 1)
        return block

    async def event(self, timeout: float = 5) -> dict[str, str]:
        """The next event, skipping comments (heartbeats)."""
        while True:
            block = await self.block(timeout)
            if not block.startswith(":"):
                fields = dict(line.split(": ", 1) for line in block.split("\n"))
                assert list(fields) == ["id", "data"], block
                return fields

    async def message(self, timeout: float = 5) -> tuple[str, dict[str, Any]]:
        fields = await self.event(timeout)
        data: dict[str, Any] = json.loads(fields["data"])
        assert data["cursor"] == fields["id"]
        return fields["id"], data


@asynccontextmanager
async def events(server: LiveServer, *tables: str, **options: Any) -> AsyncIterator[EventReader]:
    params: list[tuple[str, str]] = [("table", t) for t in tables]
    params += list(options.pop("params", {}).items())
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http,
        http.stream("GET", "/realtime/sse", params=params, **options) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        yield EventReader(response)


async def mutate(server: LiveServer, query: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def insert_post(server: LiveServer, title: str) -> None:
    await mutate(server, f'mutation {{ insert_posts_one(object: {{title: "{title}", user_id: 1}}) {{ id }} }}')


async def delete_tag(server: LiveServer, post_id: int, name: str) -> None:
    await mutate(server, f'mutation {{ delete_tags_by_pk(post_id: {post_id}, name: "{name}") {{ name }} }}')


async def wait_until_released(server: LiveServer) -> None:
    runtime = server.app.state.runtime
    for _ in range(100):
        if not runtime.connections and runtime.realtime.hub.subscriptions == 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the stream was not released after the client left")


# -- events ---------------------------------------------------------------------


@sqlite_only
async def test_events_carry_the_raw_protocols_json_and_the_cursor_as_id(
    library_url: str, serve: Any
) -> None:
    server = serve(database=library_url)
    async with events(server, "posts", "tags", headers={"Accept-Encoding": "gzip"}) as reader:
        headers = reader.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in headers
        await insert_post(server, "t")
        await delete_tag(server, 1, "intro")
        (c1, created), (c2, deleted) = await reader.message(), await reader.message()
    assert created == {"type": "create", "table": "posts", "cursor": c1, "record": {
        "id": 5, "title": "t", "body": None, "published": False, "user_id": 1,
        "editor_id": None, "rating": None, "published_at": None}}
    assert list(created) == ["type", "table", "record", "cursor"]
    assert deleted == {"type": "delete", "table": "tags", "id": {"post_id": 1, "name": "intro"},
                       "cursor": c2}
    assert int(c2) > int(c1)
    await wait_until_released(server)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_events_on_postgres(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with events(server, "posts") as reader:
        await mutate(server, 'mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "x"}) { id } }')
        _, updated = await reader.message()
    assert updated["type"] == "update" and updated["record"]["title"] == "x"


@sqlite_only
async def test_heartbeats_keep_an_idle_stream_alive(
    library_url: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "HEARTBEAT_SECONDS", 0.1)
    server = serve(database=library_url)
    async with events(server, "posts") as reader:
        assert await reader.block() == ": keep-alive"
        await insert_post(server, "after a heartbeat")
        _, created = await reader.message()
    assert created["record"]["title"] == "after a heartbeat"


# -- resuming -------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("resume", ["Last-Event-ID", "since"])
async def test_resuming_sends_exactly_the_missed_events(library_url: str, serve: Any, resume: str) -> None:
    server = serve(database=library_url)
    async with events(server, "posts", "tags") as reader:
        await insert_post(server, "seen")
        last_id, _ = await reader.message()
    await wait_until_released(server)
    # Missed while away: interleaved across both tables, an unwatched table between.
    await insert_post(server, "missed 1")
    await delete_tag(server, 1, "intro")
    await mutate(server, 'mutation { insert_comments_one(object: {post_id: 1, body: "x"}) { id } }')
    await insert_post(server, "missed 2")
    await delete_tag(server, 3, "misc")

    options: dict[str, Any] = (
        {"headers": {"Last-Event-ID": last_id}} if resume == "Last-Event-ID" else {"params": {"since": last_id}}
    )
    async with events(server, "posts", "tags", **options) as reader:
        missed = [(await reader.message())[1] for _ in range(4)]
        await insert_post(server, "live")
        live = (await reader.message())[1]  # the fifth message: nothing else was replayed
    assert [m["type"] for m in missed] == ["create", "delete", "create", "delete"]
    assert [m.get("record", {}).get("title") or m["id"] for m in missed] == [
        "missed 1", {"post_id": 1, "name": "intro"}, "missed 2", {"post_id": 3, "name": "misc"}
    ]
    assert live["record"]["title"] == "live"
    # In commit order, after the last seen one: no gap, no duplicate.
    cursors = [int(m["cursor"]) for m in (*missed, live)]
    assert cursors == sorted(set(cursors)) and cursors[0] > int(last_id)


@sqlite_only
async def test_a_long_replay_is_paced_by_the_reader(library_url: str, serve: Any) -> None:
    server = serve(database=library_url, limits=Limits(send_queue_size=10))
    async with events(server, "posts") as reader:
        await insert_post(server, "first")
        first, _ = await reader.message()
    titles = ", ".join(f'{{title: "p{i}", user_id: 1}}' for i in range(60))
    await mutate(server, f"mutation {{ insert_posts(objects: [{titles}]) {{ affected_rows }} }}")
    async with events(server, "posts", headers={"Last-Event-ID": first}) as reader:
        replayed = [(await reader.message())[1]["record"]["title"] for _ in range(60)]
    assert replayed == [f"p{i}" for i in range(60)]


# -- errors before streaming ----------------------------------------------------


@sqlite_only
async def test_bad_requests_are_answered_before_streaming(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)

    async def error(params: list[tuple[str, str]], headers: dict[str, str] | None = None) -> tuple[str, str]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            response = await http.get("/realtime/sse", params=params, headers=headers)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        (only,) = response.json()["errors"]
        return only["extensions"]["code"], only["message"]

    assert await error([]) == ("validation-failed", "no table: name one or more with ?table=<name>")
    unknown = ("validation-failed", "table 'nope' does not exist or is not available to this role")
    assert await error([("table", "posts"), ("table", "nope")]) == unknown
    assert (await error([("table", "audit_log")]))[1].startswith("table 'audit_log' does not exist")
    code, message = await error([("table", "posts")], {"Last-Event-ID": "abc"})
    assert (code, message) == ("invalid-cursor", "malformed cursor 'abc': expected decimal digits")
    code, message = await error([("table", "posts"), ("since", "99999999")])
    assert code == "invalid-cursor" and "never issued" in message
    await wait_until_released(server)


# -- ownership: disconnects, slow readers, shutdown -------------------------------


@sqlite_only
async def test_a_disconnect_releases_the_stream_and_its_tasks(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    runtime = server.app.state.runtime
    loop = runtime.realtime._tasks[0].get_loop()

    async def task_names() -> set[str]:
        return {t.get_name() for t in asyncio.all_tasks()}

    async with events(server, "posts", "comments") as reader:
        assert len(runtime.connections) == 1
        assert runtime.realtime.hub.subscriptions == 2
        await insert_post(server, "t")
        await reader.message()
        names = asyncio.run_coroutine_threadsafe(task_names(), loop).result(timeout=5)
        assert "forgegraph-sse-writer" in names  # started by the first event
    await wait_until_released(server)
    names = asyncio.run_coroutine_threadsafe(task_names(), loop).result(timeout=5)
    assert not {n for n in names if n.startswith("forgegraph-sse")}


class FailingSend:
    """ASGI middleware: an SSE response's `send` raises OSError after `after` body chunks.

    That is what an ASGI 2.4 server (hypercorn, granian) does when the
    client's socket breaks mid-stream: the response body ends with an error.
    uvicorn's HTTP `send` returns quietly once the client is gone, so a real
    disconnect cannot provoke it here; the fault is the server's, outside us.
    """

    def __init__(self, app: ASGIApp, after: int) -> None:
        self.app = app
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/realtime/sse":
            await self.app(scope, receive, send)
            return
        chunks = 0

        async def failing(message: ASGIMessage) -> None:
            nonlocal chunks
            if message["type"] == "http.response.body":
                chunks += 1
                if chunks > self.after:
                    raise OSError("connection reset by peer")
            await send(message)

        await self.app(scope, receive, failing)


async def sse_gauges(server: LiveServer) -> tuple[float, float]:
    """/metrics: the SSE streams open, and their subscriptions."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        text = (await http.get("/metrics")).text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("transport") == "sse"
    }
    return samples["forgegraph_connections"], samples["forgegraph_subscriptions"]


@sqlite_only
async def test_a_body_that_fails_still_releases_the_stream(library_url: str) -> None:
    server = LiveServer(create_app(database=library_url))
    server.app.add_middleware(FailingSend, after=1)
    server.start()
    try:
        runtime = server.app.state.runtime
        for attempt in range(3):
            with pytest.raises(httpx.HTTPError):  # the server drops the response
                async with events(server, "posts", "comments") as reader:
                    await insert_post(server, f"delivered {attempt}")
                    await reader.message()
                    await insert_post(server, f"failed {attempt}")  # its send raises
                    await reader.message()
            gauges = await sse_gauges(server)
            for _ in range(50):
                if gauges == (0, 0):
                    break
                await asyncio.sleep(0.1)
                gauges = await sse_gauges(server)
            assert gauges == (0, 0), f"attempt {attempt}: SSE streams and subscriptions left: {gauges}"
            assert runtime.realtime.hub.subscriptions == 0 and not runtime.connections
    finally:
        server.stop()


_VIEW = EventView(None, ("id", "title"))


def _posts() -> Table:
    return Table("posts", (Column("id", Kind.INTEGER, False), Column("title", Kind.STRING, True)), ("id",))


class _Realtime:
    def __init__(self) -> None:
        self.hub = Hub()

    def unsubscribe(self, subscription: Any) -> None:
        self.hub.leave(subscription)


class _Runtime:
    def __init__(self, limits: Limits) -> None:
        self.realtime = _Realtime()
        self.settings = type("Settings", (), {"limits": limits})()
        self.connections: set[Any] = set()
        self.metrics = Metrics(self.connections)


def _event(cursor: int) -> ChangeEvent:
    return ChangeEvent(cursor, "posts", "create", None, {"id": cursor, "title": "t"})


async def _drain(stream: EventStream) -> list[str]:
    async with asyncio.timeout(5):
        return [chunk async for chunk in stream.frames()]


async def test_a_slow_reader_ends_the_stream_instead_of_growing_memory() -> None:
    runtime = _Runtime(Limits(send_queue_size=4))
    stream = EventStream(runtime, [(_posts(), _VIEW)], None, ANONYMOUS_SESSION, heartbeat=60)  # type: ignore[arg-type]
    stream.open()
    hub = runtime.realtime.hub
    try:
        for cursor in range(1, 3):  # one burst in the hand-over, one held by the writer
            hub.dispatch([_event(cursor)])
            await asyncio.sleep(0.01)
        hub.dispatch([_event(c) for c in range(3, 9)])  # more than the queue holds
        chunks = await _drain(stream)
    finally:
        await stream.close()
    # Burst 1 was handed over; burst 2, still waiting for the hand-over when the
    # queue overflowed, was abandoned with the rest.
    assert [c.split("\n")[0] for c in chunks] == ["id: 1"]
    assert hub.subscriptions == 0 and not runtime.connections


async def test_shutdown_ends_the_stream() -> None:
    runtime = _Runtime(Limits())
    stream = EventStream(runtime, [(_posts(), _VIEW)], None, ANONYMOUS_SESSION, heartbeat=60)  # type: ignore[arg-type]
    stream.open()
    try:
        (connection,) = runtime.connections
        runtime.realtime.hub.dispatch([_event(1)])
        await asyncio.sleep(0.01)
        await connection.close_for_shutdown()
        chunks = await _drain(stream)
    finally:
        await stream.close()
    assert chunks == ['id: 1\ndata: {"type":"create","table":"posts","record":{"id":1,"title":"t"},"cursor":"1"}\n\n']


async def test_held_live_frames_of_several_tables_are_released_in_commit_order() -> None:
    sent: list[str] = []

    async def write(messages: list[Message]) -> None:
        sent.extend(message.text for message in messages)

    async def close(_code: int, _reason: str) -> None:
        pass

    outbox = Outbox(write, close, 100)
    hub = Hub()
    tags = Table("tags", (Column("name", Kind.STRING, False),), ("name",))
    subs = [
        hub.join(
            stream_key(t, v), t, None, renderer(t, v), outbox, sse.SSE_FRAME, replaying=True
        )
        for t, v in ((_posts(), _VIEW), (tags, EventView(None, ("name",))))
    ]
    for sub in subs:
        sub.last_cursor = 2
    hub.dispatch([
        _event(2),  # already replayed: dropped
        ChangeEvent(3, "tags", "create", None, {"name": "a"}),
        _event(4),
        ChangeEvent(5, "tags", "delete", {"name": "a"}, None),
        _event(6),
    ])
    Hub.go_live(subs)
    await asyncio.sleep(0.01)
    await outbox.stop()
    assert [frame.split("\n")[0] for frame in sent] == ["id: 3", "id: 4", "id: 5", "id: 6"]
    assert all(sub.pending is None for sub in subs)
