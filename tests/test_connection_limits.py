"""Connection limits at their edges, over real sockets: connections per IP, messages per
second, subscriptions per connection, message size, send queue and connection_init wait.

Exactly at a limit passes; one past it gets the documented answer (HTTP 429,
close codes 4429, 1009, 1013, 4408, or an error message).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graph.config import Limits
from graph.delivery.message import Message
from graph.delivery.outbox import TRY_AGAIN_LATER, Outbox
from graph.delivery.ratelimit import TokenBucket
from tests.conftest import GraphQLWS, LiveServer, free_port
from tests.test_processes import serve_process


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CHANGES = 'subscription($t: String!) { tableChanged(table: $t) { type id } }'


def start(serve: Any, library_url: str, **limits: Any) -> LiveServer:
    server: LiveServer = serve(database=library_url, limits=Limits(**limits))
    return server


def ws_url(server: LiveServer, path: str) -> str:
    return "ws" + server.url.removeprefix("http") + path


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, open_timeout=10, proxy=None) as connection:
        yield connection


async def receive(connection: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = json.loads(await connection.recv())
    return message


async def close_code(connection: ClientConnection, timeout: float = 5) -> int | None:
    """Read until the server closes; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await connection.recv()
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def refused(error: pytest.ExceptionInfo[InvalidStatus]) -> dict[str, Any]:
    """The GraphQL error of a refused WebSocket handshake, which must be HTTP 429."""
    response = error.value.response
    assert response.status_code == 429
    (body,) = json.loads(response.body or b"{}")["errors"]
    assert body["extensions"]["code"] == "too-many-requests"
    return body  # type: ignore[no-any-return]


# -- connections per client IP ---------------------------------------------------


@asynccontextmanager
async def sse(server: LiveServer) -> AsyncIterator[httpx.Response]:
    async with (
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client,
        client.stream("GET", "/realtime/sse", params={"table": "users"}) as response,
    ):
        yield response


async def accepted_again(server: LiveServer) -> None:
    """Wait (bounded) until the server has noticed a closed connection and admits a new one."""
    deadline = time.monotonic() + 10
    while True:
        try:
            async with GraphQLWS.open(server):
                return
        except InvalidStatus:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_connections_per_ip_at_the_limit_pass_and_one_more_is_429(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_connections_per_ip=3)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(GraphQLWS.open(server))  # /graphql
        await stack.enter_async_context(raw(ws_url(server, "/realtime")))  # the raw protocol
        stream = await stack.enter_async_context(sse(server))  # an SSE stream counts too
        assert stream.status_code == 200
        with pytest.raises(InvalidStatus) as error:
            async with GraphQLWS.open(server):
                pass
        assert "at most 3 at a time" in refused(error)["message"]
        with pytest.raises(InvalidStatus) as error:
            async with raw(ws_url(server, "/realtime")):
                pass
        refused(error)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            over = await http.get("/realtime/sse", params={"table": "users"})
            assert over.status_code == 429
            assert over.json()["errors"][0]["extensions"]["code"] == "too-many-requests"
            # Plain requests are not connections: still answered.
            answer = await http.post("/graphql", json={"query": "{ users_by_pk(id: 1) { name } }"})
            assert answer.json() == {"data": {"users_by_pk": {"name": "Alice"}}}
        # The connections that were admitted work normally.
        await first.subscribe("1", CHANGES, {"t": "users"})
        await first.send({"type": "ping"})
        assert (await first.receive())["type"] == "pong"
        await first.connection.close()
        await accepted_again(server)


async def test_no_limit_on_connections_per_ip_by_default(serve: Any, library_url: str) -> None:
    assert Limits().max_connections_per_ip == 0
    server = start(serve, library_url, max_connections_per_ip=0)
    async with AsyncExitStack() as stack:
        for _ in range(5):
            await stack.enter_async_context(GraphQLWS.open(server))


def test_websocket_port_and_flags_reach_a_real_server(tmp_path: Path, library_url: str) -> None:
    """`forgegraph serve` flags end up in the running server; --websocket-port connections count."""
    ws_port = free_port()
    flags = ["--websocket-port", str(ws_port), "--max-connections-per-ip", "1", "--max-limit", "1",
             "--max-depth", "2"]
    with serve_process(library_url, "memory://", tmp_path, *flags) as url:
        body = httpx.post(url + "/graphql", json={"query": "{ users(order_by: {id: asc}) { id } }"},
                          trust_env=False).json()
        assert body == {"data": {"users": [{"id": 1}]}}
        deep = "{ posts { user { id } } }"
        body = httpx.post(url + "/graphql", json={"query": deep}, trust_env=False).json()
        assert "maximum depth of 2" in body["errors"][0]["message"]

        async def over_the_limit() -> None:
            async with raw(f"ws://127.0.0.1:{ws_port}/"):
                with pytest.raises(InvalidStatus) as error:
                    async with raw(url.replace("http", "ws", 1) + "/realtime"):
                        pass
                refused(error)

        asyncio.run(over_the_limit())


# -- messages per second -----------------------------------------------------------


async def test_messages_at_the_rate_pass_and_one_more_closes_with_4429(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_messages_per_second=2)
    async with GraphQLWS.open(server, init=False) as ws:
        # Sent together, well within the second it takes to earn another message.
        for message in ({"type": "connection_init"}, {"type": "ping"}, {"type": "ping"}):
            await ws.send(message)
        assert (await ws.receive())["type"] == "connection_ack"
        assert (await ws.receive())["type"] == "pong"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        assert closed.value.rcvd.reason == "Too many messages: at most 2 per second"


async def test_the_raw_protocol_says_why_before_4429(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_messages_per_second=2)
    async with raw(ws_url(server, "/realtime")) as connection:
        for _ in range(3):
            await connection.send(json.dumps({"type": "hello"}))
        assert (await receive(connection))["message"] == "unknown message type 'hello'"
        assert (await receive(connection))["message"] == "unknown message type 'hello'"
        assert await receive(connection) == {
            "type": "error", "message": "too many messages: at most 2 per second"
        }
        assert await close_code(connection) == 4429


async def test_legacy_graphql_ws_is_closed_with_4429_too(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_messages_per_second=1)
    async with GraphQLWS.open(server, protocol="graphql-ws", init=False) as ws:
        await ws.send({"type": "connection_init"})
        await ws.send({"type": "connection_init"})
        assert (await ws.receive())["type"] == "connection_ack"
        assert await ws.close_code() == 4429


async def test_no_message_rate_limit_when_0(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_messages_per_second=0)
    async with GraphQLWS.open(server) as ws:
        for _ in range(300):
            await ws.send({"type": "ping"})
        for _ in range(300):
            assert (await ws.receive())["type"] == "pong"


def test_the_bucket_refills_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(4, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    now[0] += 0.25  # one token's worth
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60  # never more than one second's worth
    assert sum(bucket.take() for _ in range(10)) == 4
    assert all(TokenBucket(0).take() for _ in range(1000))


# -- subscriptions per connection --------------------------------------------------


async def test_subscriptions_per_connection_at_the_limit_pass(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_subscriptions_per_connection=2)
    async with GraphQLWS.open(server) as ws:
        for op_id, table in (("1", "users"), ("2", "posts"), ("3", "comments")):
            await ws.subscribe(op_id, CHANGES, {"t": table})
        message = await ws.receive()
        assert message["id"] == "3" and message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "validation-failed"
        assert message["payload"][0]["message"] == "at most 2 subscriptions per connection"
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http:
        two = {"table": ["users", "posts"]}
        async with http.stream("GET", "/realtime/sse", params=two) as response:
            assert response.status_code == 200
        three = {"table": ["users", "posts", "comments"]}
        over = await http.get("/realtime/sse", params=three)
        assert over.status_code == 400
        assert over.json()["errors"][0]["extensions"]["code"] == "validation-failed"
    async with raw(ws_url(server, "/realtime")) as connection:
        for table in ("users", "posts", "comments"):
            await connection.send(json.dumps({"type": "subscribe", "table": table}))
        assert await receive(connection) == {
            "type": "error", "message": "at most 2 subscriptions per connection"
        }


async def test_no_subscription_limit_when_0(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_subscriptions_per_connection=0, max_messages_per_second=0)
    async with GraphQLWS.open(server) as ws:
        for n, table in enumerate(["users", "posts", "comments", "tags"] * 30):
            await ws.subscribe(str(n), CHANGES, {"t": table})
        await ws.send({"type": "ping"})
        assert (await ws.receive())["type"] == "pong"  # no error came before it


# -- message size and send queue ---------------------------------------------------


async def test_a_message_of_exactly_the_maximum_size_passes(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, max_message_bytes=1000)

    def ping(size: int) -> str:
        text = json.dumps({"type": "ping", "payload": {"pad": ""}})
        padded = json.dumps({"type": "ping", "payload": {"pad": "x" * (size - len(text))}})
        assert len(padded.encode()) == size
        return padded

    async with GraphQLWS.open(server, max_size=None) as ws:
        await ws.send(ping(1000))
        assert (await ws.receive())["type"] == "pong"
        await ws.send(ping(1001))
        assert await ws.close_code() == 1009


def test_a_send_queue_holds_exactly_its_size() -> None:
    asyncio.run(_send_queue_edge())


async def _send_queue_edge() -> None:
    async def write(_messages: list[Message]) -> None:
        pass

    closed: list[int] = []

    async def close(code: int, _reason: str) -> None:
        closed.append(code)

    outbox = Outbox(write, close, 3)
    outbox.push([Message("a"), Message("b"), Message("c")])
    assert not outbox.closed and outbox.depth == 3
    outbox.push([Message("d")])
    assert outbox.closed
    await outbox.stop(grace=5)
    assert closed == [TRY_AGAIN_LATER]


# -- connection_init wait ------------------------------------------------------------


async def test_connection_init_in_time_is_acknowledged_and_stays_open(serve: Any, library_url: str) -> None:
    server = start(serve, library_url, connection_init_timeout=0.5)
    async with GraphQLWS.open(server) as ws:  # connection_init sent at once
        await asyncio.sleep(1)  # past the timeout: acknowledged connections are not timed
        await ws.send({"type": "ping"})
        assert (await ws.receive())["type"] == "pong"
    async with GraphQLWS.open(server, init=False) as late:
        assert await late.close_code() == 4408


async def test_no_connection_init_timeout_when_0(serve: Any, library_url: str) -> None:
    """0 is "no limit", not "the default": the socket outlives the default's 10 s and still inits."""
    server = start(serve, library_url, connection_init_timeout=0)
    async with GraphQLWS.open(server, init=False) as ws:
        past_the_default = Limits().connection_init_timeout + 0.5
        with pytest.raises(TimeoutError):  # no close frame (4408), nothing at all, in that time
            await asyncio.wait_for(ws.connection.recv(), past_the_default)
        await ws.init()
