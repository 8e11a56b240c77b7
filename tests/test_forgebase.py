"""ForgeBase's raw protocol on WS /realtime and --websocket-port, over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from graph.config import Limits
from tests.conftest import LiveServer, free_port

SECRET = "a-test-secret-that-is-long-enough-for-hs256"

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
POST_5 = {"id": 5, "title": "t", "body": None, "published": False, "user_id": 1,
          "editor_id": None, "rating": None, "published_at": None}


class RawClient:
    """A raw-protocol client: JSON messages in and out, with timeouts instead of hangs."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[RawClient]:
        async with connect(url, open_timeout=10, proxy=None) as connection:
            yield cls(connection)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                message: dict[str, Any] = json.loads(await self.connection.recv())
        except TimeoutError:
            pytest.fail(f"no message within {timeout} s")
        return message

    async def sync(self) -> None:
        """Wait until the server has handled everything sent so far.

        Messages are handled in order and an unknown type is answered with an
        error, so that answer means every earlier message took effect.
        """
        await self.send({"type": "sync"})
        assert await self.receive() == {"type": "error", "message": "unknown message type 'sync'"}

    async def subscribe(self, table: str, since: str | None = None) -> None:
        message = {"type": "subscribe", "table": table}
        if since is not None:
            message["since"] = since
        await self.send(message)
        await self.sync()

    async def error(self, message: dict[str, Any] | str | bytes) -> str:
        await self.send(message)
        answer = await self.receive()
        assert answer["type"] == "error" and list(answer) == ["type", "message"], answer
        return str(answer["message"])


def ws_url(server: LiveServer, path: str = "/realtime") -> str:
    return "ws" + server.url.removeprefix("http") + path


async def mutate(base_url: str, query: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def insert_post(base_url: str, title: str = "t") -> int:
    data = await mutate(base_url, f'mutation {{ insert_posts_one(object: {{title: "{title}", user_id: 1}}) {{ id }} }}')
    return int(data["insert_posts_one"]["id"])


# -- the event format ------------------------------------------------------------


@sqlite_only
async def test_create_update_delete_have_forgebase_shapes(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await insert_post(server.url)
        await mutate(server.url, 'mutation { update_posts_by_pk(pk_columns: {id: 5}, _set: {title: "u"}) { id } }')
        await mutate(server.url, "mutation { delete_posts_by_pk(id: 5) { id } }")
        created, updated, deleted = [await client.receive() for _ in range(3)]

    assert list(created) == ["type", "table", "record", "cursor"]
    assert created == {"type": "create", "table": "posts", "record": POST_5, "cursor": created["cursor"]}
    assert updated == {"type": "update", "table": "posts", "record": {**POST_5, "title": "u"},
                       "cursor": updated["cursor"]}
    assert list(deleted) == ["type", "table", "id", "cursor"]
    assert deleted == {"type": "delete", "table": "posts", "id": 5, "cursor": deleted["cursor"]}
    cursors = [m["cursor"] for m in (created, updated, deleted)]
    assert all(isinstance(c, str) and c.isdigit() for c in cursors)
    assert [int(c) for c in cursors] == sorted({int(c) for c in cursors})


@sqlite_only
async def test_a_composite_key_is_deleted_by_an_object_id(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("tags")
        await mutate(server.url, 'mutation { delete_tags_by_pk(post_id: 1, name: "intro") { name } }')
        deleted = await client.receive()
    assert deleted == {"type": "delete", "table": "tags", "id": {"post_id": 1, "name": "intro"},
                       "cursor": deleted["cursor"]}


@pytest.mark.parametrize("backend", ["postgres"])
async def test_events_on_postgres(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await client.subscribe("tags")
        await insert_post(server.url)
        await mutate(server.url, 'mutation { delete_tags_by_pk(post_id: 1, name: "news") { name } }')
        created, deleted = await client.receive(), await client.receive()
    assert created == {"type": "create", "table": "posts", "record": POST_5, "cursor": created["cursor"]}
    assert deleted == {"type": "delete", "table": "tags", "id": {"post_id": 1, "name": "news"},
                       "cursor": deleted["cursor"]}
    assert int(deleted["cursor"]) > int(created["cursor"])


# -- subscriptions ---------------------------------------------------------------


@sqlite_only
async def test_subscribing_twice_is_one_subscription(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await client.subscribe("posts")
        await insert_post(server.url)
        assert (await client.receive())["type"] == "create"
        await client.sync()  # the only message before the barrier's answer: no second event


@sqlite_only
async def test_raw_subscribers_of_a_table_share_one_stream(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    hub = server.app.state.runtime.realtime.hub
    async with RawClient.open(ws_url(server)) as one, RawClient.open(ws_url(server)) as two:
        await one.subscribe("posts")
        await two.subscribe("posts")
        (stream,) = hub.streams.values()
        assert stream.key.protocol == "forgebase" and stream.key.table == "posts"
        assert len(stream.members) == 2
        await insert_post(server.url)
        assert await one.receive() == await two.receive()
    for _ in range(100):  # the server notices both disconnects shortly
        if not hub.streams:
            break
        await asyncio.sleep(0.05)
    assert hub.streams == {}


@sqlite_only
async def test_unsubscribe_stops_that_tables_events(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await client.subscribe("comments")
        await client.send({"type": "unsubscribe", "table": "posts"})
        await client.sync()
        await insert_post(server.url)
        await mutate(server.url, 'mutation { insert_comments_one(object: {post_id: 1, body: "b"}) { id } }')
        event = await client.receive()  # the post's event, had it come, would be first
        assert (event["type"], event["table"]) == ("create", "comments")
        await client.send({"type": "unsubscribe", "table": "posts"})  # not subscribed: a no-op
        await client.sync()


@sqlite_only
async def test_since_replays_exactly_the_missed_events(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await insert_post(server.url, "seen")
        seen = await client.receive()
    await insert_post(server.url, "missed 1")
    await mutate(server.url, 'mutation { insert_comments_one(object: {post_id: 1, body: "x"}) { id } }')
    await insert_post(server.url, "missed 2")

    async with RawClient.open(ws_url(server)) as client:
        await client.send({"type": "subscribe", "table": "posts", "since": seen["cursor"]})
        replayed = [await client.receive(), await client.receive()]
        await client.sync()  # nothing else was replayed
        await insert_post(server.url, "live")
        live = await client.receive()
    assert [m["record"]["title"] for m in replayed] == ["missed 1", "missed 2"]
    assert live["record"]["title"] == "live"
    cursors = [int(m["cursor"]) for m in (seen, *replayed, live)]
    assert cursors == sorted(set(cursors))


# -- errors keep the connection open --------------------------------------------


@sqlite_only
async def test_errors_are_messages_and_the_connection_stays_open(library_url: str, serve: Any) -> None:
    limits = Limits(max_subscriptions_per_connection=1)
    server = serve(database=library_url, limits=limits)
    async with RawClient.open(ws_url(server)) as client:
        assert await client.error("{not json") == "malformed message: not JSON"
        assert await client.error(b"\xff\x00") == "malformed message: not JSON"
        assert await client.error("[1, 2]") == 'malformed message: expected a JSON object with a string "type"'
        assert await client.error({"type": "hello"}) == "unknown message type 'hello'"
        assert await client.error({"type": "subscribe"}) == 'missing "table": a subscribe message names a table'
        assert await client.error({"type": "unsubscribe", "table": 7}) == (
            'missing "table": a unsubscribe message names a table'
        )
        unknown = "table 'nope' does not exist or is not available to this role"
        assert await client.error({"type": "subscribe", "table": "nope"}) == unknown
        assert await client.error({"type": "unsubscribe", "table": "nope"}) == unknown
        # A table without a primary key has no events: the same answer as an unknown one.
        assert "'audit_log' does not exist" in await client.error({"type": "subscribe", "table": "audit_log"})
        assert "malformed cursor 'abc'" in await client.error(
            {"type": "subscribe", "table": "posts", "since": "abc"}
        )
        assert "never issued" in await client.error(
            {"type": "subscribe", "table": "posts", "since": "99999999"}
        )
        assert await client.error({"type": "auth"}) == 'malformed message: "auth" needs a "token" string'
        await client.subscribe("posts")
        assert await client.error({"type": "subscribe", "table": "comments"}) == (
            "at most 1 subscriptions per connection"
        )
        await insert_post(server.url)
        assert (await client.receive())["type"] == "create"


@sqlite_only
async def test_a_message_over_the_size_limit_closes_with_1009(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as steady:
        await steady.subscribe("posts")
        async with RawClient.open(ws_url(server)) as big:
            await big.connection.send("x" * 70_000)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(big.connection.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await insert_post(server.url)
        assert (await steady.receive())["type"] == "create"


@sqlite_only
async def test_malformed_frames_do_not_hurt_other_clients(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as steady:
        await steady.subscribe("posts")
        for garbage in ("", "\x00", "{{{", b"\x80", '{"type": null}', "null"):
            async with RawClient.open(ws_url(server)) as rude:
                assert (await rude.error(garbage)).startswith("malformed message")
        async with RawClient.open(ws_url(server)) as rude:
            await rude.subscribe("posts")
            rude.connection.transport.abort()  # gone without a close frame
        await insert_post(server.url)
        assert (await steady.receive())["type"] == "create"
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}


@sqlite_only
async def test_tokens_set_the_session_and_shutdown_sends_a_close_frame(
    library_url: str, serve: Any, tmp_path: Path
) -> None:
    """The query-string token and a later `auth` decide what arrives (rows and columns, TWO_VIEWS)."""
    rules = tmp_path / "permissions.yaml"
    rules.write_text(TWO_VIEWS)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET, admin_secret=ADMIN_SECRET)
    runtime = server.app.state.runtime
    first = jwt.encode({"sub": "1", "role": "user"}, SECRET, algorithm="HS256")
    second = jwt.encode({"sub": "2", "role": "editor"}, SECRET, algorithm="HS256")
    async with RawClient.open(ws_url(server) + f"?token={first}") as client:
        await client.subscribe("posts")
        # As user 1 (from ?token=): user 2's post is not delivered, user 1's is, narrowed.
        await insert_as_admin(server.url, "theirs", 2)
        mine = await insert_as_admin(server.url, "mine", 1)
        event = await client.receive()
        assert (event["type"], event["record"]) == ("create", seen_as("user", mine, "mine", 1))
        await client.send({"type": "auth", "token": second})
        await client.sync()  # `auth` has no answer of its own
        # As the editor: every post, every column, on the same subscription.
        theirs = await insert_as_admin(server.url, "theirs again", 2)
        event = await client.receive()
        assert (event["type"], event["record"]) == ("create", seen_as("editor", theirs, "theirs again", 2))
        # What runtime.stop() does to every connection, run on the server's loop.
        (connection,) = runtime.connections
        loop = runtime.realtime._tasks[0].get_loop()
        asyncio.run_coroutine_threadsafe(connection.close_for_shutdown(), loop).result(timeout=5)
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


ADMIN_SECRET = "a-test-admin-secret"
TWO_VIEWS = """\
tables:
  posts:
    select:
      editor: {columns: "*"}
      user: {filter: {user_id: {_eq: X-User-Id}}, columns: [id, title, user_id]}
"""


async def insert_as_admin(base_url: str, title: str, user_id: int) -> int:
    query = f'mutation {{ insert_posts_one(object: {{title: "{title}", user_id: {user_id}}}) {{ id }} }}'
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": query}, headers={"X-Admin-Secret": ADMIN_SECRET})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return int(body["data"]["insert_posts_one"]["id"])


def seen_as(role: str, post_id: int, title: str, user_id: int) -> dict[str, Any]:
    """A post as TWO_VIEWS shows it to `role`."""
    if role == "editor":
        return {**POST_5, "id": post_id, "title": title, "user_id": user_id}
    return {"id": post_id, "title": title, "user_id": user_id}


@sqlite_only
@pytest.mark.parametrize("roles", [("editor", "user", "editor"), ("user", "editor", "user")])
async def test_auth_moves_live_subscriptions_to_the_new_tokens_view_both_ways(
    library_url: str, serve: Any, tmp_path: Path, roles: tuple[str, ...]
) -> None:
    """An editor sees every post and column; user 1 only their own posts' id, title and user_id.

    One connection subscribes, then sends `auth` with the other role's token and
    back: after each, what arrives (rows and columns) is what the new token may see.
    """
    rules = tmp_path / "permissions.yaml"
    rules.write_text(TWO_VIEWS)
    server = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET, admin_secret=ADMIN_SECRET)
    tokens = {
        "editor": jwt.encode({"sub": "9", "role": "editor"}, SECRET, algorithm="HS256"),
        "user": jwt.encode({"sub": "1", "role": "user"}, SECRET, algorithm="HS256"),
    }
    async with RawClient.open(ws_url(server) + f"?token={tokens[roles[0]]}") as client:
        await client.subscribe("posts")
        for step, role in enumerate(roles):
            if step:
                await client.send({"type": "auth", "token": tokens[role]})
                await client.sync()  # `auth` has no answer of its own
            # User 2's post, then user 1's: the editor gets both, whole; user 1 only its own, narrow.
            written = [(await insert_as_admin(server.url, f"{role} {step} by {u}", u), u) for u in (2, 1)]
            expected = [seen_as(role, i, f"{role} {step} by {u}", u) for i, u in written if role == "editor" or u == 1]
            got = [await client.receive() for _ in expected]
            assert [(m["type"], m["record"]) for m in got] == [("create", e) for e in expected], (step, role)


@sqlite_only
async def test_an_invalid_token_closes_with_4403(library_url: str, serve: Any) -> None:
    server = serve(database=library_url, jwt_secret=SECRET)
    forged = jwt.encode({"sub": "1"}, "not-the-secret-" * 3, algorithm="HS256")
    for url, first in ((ws_url(server) + f"?token={forged}", None), (ws_url(server), forged)):
        async with RawClient.open(url) as client:
            if first is not None:
                await client.send({"type": "auth", "token": first})
            message = json.loads(await asyncio.wait_for(client.connection.recv(), 5))
            assert message["type"] == "error" and "invalid token" in message["message"]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.connection.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


# -- --websocket-port ------------------------------------------------------------


@sqlite_only
async def test_websocket_port_serves_the_raw_protocol_at_its_root(library_url: str, tmp_path: Path) -> None:
    port, ws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "graph", "serve", "--database", library_url,
         "--port", str(port), "--websocket-port", str(ws_port)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_healthy(base, proc)
        async with RawClient.open(f"ws://127.0.0.1:{ws_port}/") as client:
            await client.subscribe("posts")
            await insert_post(base)
            event = await client.receive()
            assert (event["type"], event["table"], event["record"]) == ("create", "posts", POST_5)
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await client.receive(timeout=15)
        assert closed.value.rcvd is not None  # a close frame, not a dropped connection
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _wait_until_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        while True:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                assert proc.stderr is not None
                pytest.fail(f"the server did not start: {proc.stderr.read()}")
            await asyncio.sleep(0.1)
