"""graph.client, the async Python SDK, against real servers over real sockets.

Reads and writes over HTTP on SQLite and PostgreSQL; permissions through a
token; subscriptions as callbacks and iterators; and the resume guarantee:
a connection cut mid-stream (a TCP proxy that drops it, a server killed and
started again) costs the callback no event and repeats none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from graph.client import Backoff, ChangeEvent, Client, ClientError, ConnectionFailed
from tests.conftest import LiveServer
from tests.test_auth import ADMIN_SECRET, PERMISSIONS, SECRET, mint
from tests.test_faults import ServerProcess
from tests.test_processes import demo_sqlite

POST_COLUMNS = ["id", "title", "body", "published", "user_id", "editor_id", "rating", "published_at"]
FAST = Backoff(initial=0.02, maximum=0.3)
README = Path(__file__).resolve().parent.parent / "README.md"
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def client_for(url: str, **options: Any) -> Client:
    options.setdefault("backoff", FAST)
    return Client(url, trust_env=False, **options)


@pytest.fixture
async def server(library_url: str, serve: Any) -> LiveServer:
    return serve(database=library_url)  # type: ignore[no-any-return]


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[Client]:
    async with client_for(server.url) as client:
        yield client


async def until(condition: Callable[[], bool], timeout: float = 15, what: str = "the condition") -> None:
    """Wait for `condition` (events arriving on another task); fail the test after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {timeout} s")


def test_the_sdk_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, graph.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('graph', 'starlette', 'sqlalchemy', "
        "'graphql', 'uvicorn') and not m.startswith('graph.client')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['graph']"


# -- reads and writes ---------------------------------------------------------------


async def test_select_filters_orders_and_limits(client: Client) -> None:
    posts = client.table("posts")
    rows = await posts.select(where={"published": {"_eq": True}}, order_by={"id": "desc"}, limit=2)
    assert [row["id"] for row in rows] == [4, 3]
    # Every column, and no relationship (user, comments, ...), unless columns= says otherwise.
    assert list(rows[0]) == POST_COLUMNS
    assert rows[0]["rating"] == "3.25"
    rows = await posts.select(
        where={"_or": [{"title": {"_ilike": "hello%"}}, {"body": {"_is_null": True}}]},
        order_by=[{"user_id": "desc"}, {"id": "asc"}], offset=1, columns=["id", "title"],
    )
    assert rows == [{"id": 1, "title": "Hello World"}, {"id": 2, "title": "second post"}]
    assert await posts.by_pk({"id": 3}, columns=["title"]) == {"title": "Third"}
    assert await posts.by_pk({"id": 99}) is None
    tags = await client.table("tags").by_pk({"post_id": 1, "name": "news"})
    assert tags == {"post_id": 1, "name": "news", "weight": 2}


async def test_insert_update_delete_return_the_rows(client: Client) -> None:
    posts = client.table("posts")
    (one,) = await posts.insert({"title": "new", "user_id": 2, "rating": "2.25"})
    assert one["title"] == "new" and one["published"] is False and one["rating"] == "2.25"
    two = await posts.insert([{"title": "a", "user_id": 1}, {"title": "b", "user_id": 1}], columns=["title"])
    assert sorted(r["title"] for r in two) == ["a", "b"]
    updated = await posts.update({"title": {"_in": ["a", "b"]}}, {"published": True}, columns=["title", "published"])
    assert sorted((r["title"], r["published"]) for r in updated) == [("a", True), ("b", True)]
    assert await posts.update({"id": {"_eq": -1}}, {"title": "none"}) == []
    deleted = await posts.delete({"id": {"_eq": one["id"]}})
    assert deleted == [one]
    assert await posts.by_pk({"id": one["id"]}) is None
    # Values are variables, never text in the document.
    (odd,) = await posts.insert({"title": 'quote " } mutation { x }', "user_id": 1}, columns=["title"])
    assert odd == {"title": 'quote " } mutation { x }'}


@sqlite_only
async def test_errors_carry_the_graphql_code(client: Client) -> None:
    posts = client.table("posts")
    with pytest.raises(ClientError) as error:
        await posts.insert({"id": 1, "title": "again", "user_id": 1})
    assert error.value.code == "constraint-violation"
    with pytest.raises(ClientError) as error:
        await posts.select(where={"nope": {"_eq": 1}})
    assert error.value.code == "validation-failed"
    with pytest.raises(ClientError) as error:
        await posts.select(limit=-1)
    assert error.value.code == "validation-failed"
    with pytest.raises(ClientError) as error:
        await client.table("nonexistent").select()
    assert error.value.code == "validation-failed"
    assert "does not exist" in str(error.value)
    with pytest.raises(ValueError, match="not a valid GraphQL name"):
        client.table("posts { id }")


async def test_an_unreachable_server_is_a_connection_error() -> None:
    from tests.conftest import free_port

    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(ConnectionFailed):
            await client.table("posts").select()
        with pytest.raises(ConnectionFailed):
            await client.table("posts").subscribe(print)


# -- permissions ----------------------------------------------------------------------


@pytest.fixture
async def guarded(library_url: str, serve: Any, tmp_path: Path) -> LiveServer:
    path = tmp_path / "permissions.yaml"
    path.write_text(PERMISSIONS)
    return serve(  # type: ignore[no-any-return]
        database=library_url, permissions=str(path), jwt_secret=SECRET, admin_secret=ADMIN_SECRET
    )


@sqlite_only
async def test_the_token_decides_rows_columns_and_writes(guarded: LiveServer) -> None:
    async with (
        client_for(guarded.url) as anonymous,
        client_for(guarded.url, token=mint("1")) as alice,
        client_for(guarded.url, admin_secret=ADMIN_SECRET) as admin,
    ):
        # Columns are learned per client, for its role.
        assert await anonymous.table("posts").select(order_by={"id": "asc"}) == [
            {"id": 1, "title": "Hello World"}, {"id": 3, "title": "Third"}, {"id": 4, "title": "hello again"},
        ]
        mine = await alice.table("posts").select(where={"user_id": {"_eq": 1}}, order_by={"id": "asc"})
        assert [(r["id"], list(r)) for r in mine] == [(1, POST_COLUMNS), (2, POST_COLUMNS)]
        (row,) = await alice.table("posts").insert({"title": "by alice"})
        assert row["user_id"] == 1  # the preset from the token
        with pytest.raises(ClientError) as error:
            await anonymous.table("posts").insert({"title": "nobody"})
        assert error.value.code == "validation-failed"  # not granted reads as not there
        assert await alice.table("posts").delete({"id": {"_eq": 3}}) == []  # not hers
        assert len(await admin.table("posts").delete({"id": {"_eq": 3}})) == 1
    async with client_for(guarded.url, token=mint("1", lifetime=-60)) as expired:
        with pytest.raises(ClientError) as error:
            await expired.table("posts").select()
        assert error.value.code == "invalid-jwt"
        with pytest.raises(ClientError) as error:
            await expired.table("posts").subscribe(print)
        assert error.value.code == "invalid-jwt"


@sqlite_only
async def test_subscriptions_see_what_the_role_may_see(guarded: LiveServer) -> None:
    async with (
        client_for(guarded.url) as anonymous,
        client_for(guarded.url, token=mint("1")) as alice,
    ):
        seen: list[ChangeEvent] = []
        await anonymous.table("posts").subscribe(seen.append)
        await alice.table("posts").insert([{"title": "draft"}, {"title": "out", "published": True}])
        await until(lambda: len(seen) == 1, what="the published post's event")
        (event,) = seen
        assert event.type == "create" and event.record == {"id": event.id, "title": "out"}
        with pytest.raises(ClientError) as error:
            await anonymous.table("comments").subscribe(print)
        assert error.value.code == "validation-failed"


@sqlite_only
async def test_an_expired_token_ends_subscriptions_without_retrying(guarded: LiveServer) -> None:
    async with client_for(guarded.url, token=mint("1", lifetime=2)) as alice:
        errors: list[ClientError] = []
        await alice.table("posts").subscribe(print, on_error=errors.append)
        stream = alice.table("users").changes()
        await stream.subscription()
        with pytest.raises(ClientError) as error:
            async with asyncio.timeout(15):
                await anext(stream)
        assert error.value.code == "invalid-jwt"  # the server closed with 4403 at expiry
        await until(lambda: len(errors) == 1, what="on_error")
        assert errors[0].code == "invalid-jwt"
        assert alice.connection.opened == 1 and not alice.connection.subscriptions


# -- subscriptions ------------------------------------------------------------------


async def test_a_callback_gets_each_change_in_order_until_unsubscribed(client: Client) -> None:
    posts = client.table("posts")
    got: list[ChangeEvent] = []

    async def on_change(event: ChangeEvent) -> None:
        got.append(event)

    unsubscribe = await posts.subscribe(on_change, where={"user_id": {"_eq": 1}})
    (row,) = await posts.insert({"title": "one", "user_id": 1})
    await posts.insert({"title": "not mine", "user_id": 2})
    await posts.update({"id": {"_eq": row["id"]}}, {"user_id": 2})  # leaves the filter: a delete
    await until(lambda: len(got) == 2, what="two events")
    assert [(e.type, e.id, e.table) for e in got] == [("create", row["id"], "posts"), ("delete", row["id"], "posts")]
    assert got[0].record == row and got[0].old_record is None
    assert got[1].record is None and got[1].old_record == row
    assert int(got[0].cursor) < int(got[1].cursor)
    assert unsubscribe.cursor == got[1].cursor

    await unsubscribe()
    # Proof that nothing more comes: a later subscription sees a later change, this one does not.
    async with posts.changes() as stream:
        await posts.insert({"title": "after", "user_id": 1})
        marker = await anext(stream)
    assert marker.record is not None and marker.record["title"] == "after"
    assert len(got) == 2


@sqlite_only
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_callback_that_raises_is_logged_and_delivery_goes_on(
    client: Client, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="graph.client")
    posts = client.table("posts")
    got: list[str] = []

    def record(event: ChangeEvent) -> None:
        assert event.record is not None
        got.append(event.record["title"])
        if event.record["title"].startswith("bad"):
            raise RuntimeError(f"callback failed on {event.cursor}")

    async def record_async(event: ChangeEvent) -> None:
        await asyncio.sleep(0)
        record(event)

    callback: Callable[[ChangeEvent], Any] = record if kind == "sync" else record_async
    unsubscribe = await posts.subscribe(callback)
    for title in ("bad 1", "after 1", "bad 2", "after 2"):
        await posts.insert({"title": title, "user_id": 1})
    await until(lambda: len(got) == 4, what="the events after the callbacks that raised")
    assert got == ["bad 1", "after 1", "bad 2", "after 2"]
    await unsubscribe()
    # Each exception is logged with its traceback, once.
    raised = [str(r.exc_info[1]) for r in caplog.records if r.name == "graph.client" and r.exc_info]
    assert len(raised) == 2 and all(m.startswith("callback failed on ") for m in raised), raised


async def test_changes_is_an_async_iterator(client: Client) -> None:
    posts = client.table("posts")
    stream = posts.changes(where={"published": {"_eq": True}})
    await stream.subscription()  # subscribed: what is committed from now on arrives
    await posts.insert([{"title": "draft", "user_id": 1}, {"title": "public", "user_id": 1, "published": True}])
    await posts.delete({"title": {"_eq": "public"}})
    seen = []
    async for event in stream:
        seen.append((event.type, event.record and event.record["title"]))
        if len(seen) == 2:
            break
    await stream.aclose()
    assert seen == [("create", "public"), ("delete", None)]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_since_replays_and_errors_end_the_iterator(client: Client) -> None:
    posts = client.table("posts")
    async with posts.changes() as stream:
        await posts.insert([{"title": t, "user_id": 1} for t in ("a", "b", "c")])
        first = await anext(stream)
    replayed: list[ChangeEvent] = []
    await posts.subscribe(replayed.append, since=first.cursor)
    await until(lambda: len(replayed) == 2, what="the replay")
    assert [e.record and e.record["title"] for e in replayed] == ["b", "c"]

    for since, code in (("not-a-cursor", "invalid-cursor"), ("999999999", "invalid-cursor")):
        with pytest.raises(ClientError) as error:
            await posts.subscribe(print, since=since)
        assert error.value.code == code
    with pytest.raises(ClientError) as error:
        await anext(client.table("posts").changes(where={"nope": {"_eq": 1}}))
    assert error.value.code == "validation-failed"


async def test_closing_the_client_ends_everything_it_started(server: LiveServer) -> None:
    client = client_for(server.url)
    stream = client.table("posts").changes()
    await stream.subscription()
    calls: list[ChangeEvent] = []
    await client.table("comments").subscribe(calls.append)
    reader = asyncio.create_task(anext(stream))
    await client.close()
    with pytest.raises(StopAsyncIteration):
        await reader
    assert not client.connection.subscriptions
    tasks = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("graph.client")]
    assert tasks == []
    with pytest.raises(ClientError):
        await client.table("posts").subscribe(print)


# -- dropped connections ----------------------------------------------------------------


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5)
    for attempt, base in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (500, 2.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1


async def test_a_subscription_never_delivers_a_cursor_twice() -> None:
    from graph.client import Subscription

    subscription = Subscription(None, "posts", None, since="5", buffer=10)  # type: ignore[arg-type]

    def event(cursor: int) -> ChangeEvent:
        return ChangeEvent("create", "posts", cursor, {"id": cursor}, None, str(cursor))

    accepted = [c for c in (4, 5, 6, 6, 8, 7, 9) if subscription.accept(event(c))]
    assert accepted == [6, 8, 9]
    subscription.advance(12)  # a sibling's live event: nothing of ours before 12 is still to come
    assert not subscription.accept(event(11)) and subscription.accept(event(13))
    assert subscription.cursor == "13"
    subscription.finish()
    assert [(await subscription.next()).cursor for _ in range(4)] == ["6", "8", "9", "13"]
    with pytest.raises(StopAsyncIteration):
        await subscription.next()


class Proxy:
    """A TCP proxy between the SDK and the server that the test can cut, and hold shut."""

    def __init__(self, target: str) -> None:
        self.host, port = target.removeprefix("http://").split(":")
        self.port = int(port)
        self.accepting = True
        self.cuts = 0
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cut(self) -> None:
        """Reset every open connection, both ways, as a network failure would."""
        self.cuts += 1
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._links |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._links.discard(sink)


class Writer:
    """Changes posts one commit at a time, recording the (type, id) each one must produce."""

    def __init__(self, posts: Any) -> None:
        self.posts = posts
        self.expected: list[tuple[str, int]] = []

    async def run(self, count: int, pause: Callable[[int], Awaitable[None]] | None = None) -> None:
        live: list[int] = []
        for i in range(count):
            if i % 5 == 3 and live:
                post_id = live.pop(0)
                await self.posts.delete({"id": {"_eq": post_id}})
                self.expected.append(("delete", post_id))
            elif i % 5 == 1 and live:
                await self.posts.update({"id": {"_eq": live[-1]}}, {"title": f"edit {i}"})
                self.expected.append(("update", live[-1]))
            else:
                (row,) = await self.posts.insert({"title": f"post {i}", "user_id": 1}, columns=["id"])
                live.append(row["id"])
                self.expected.append(("create", row["id"]))
            if pause is not None:
                await pause(i)


def exactly_once(got: list[ChangeEvent], expected: list[tuple[str, int]]) -> None:
    assert [(e.type, e.id) for e in got] == expected
    cursors = [int(e.cursor) for e in got]
    assert cursors == sorted(set(cursors))


MUTATIONS = 200


async def test_a_cut_connection_costs_the_callback_nothing(server: LiveServer) -> None:
    async with Proxy(server.url) as proxy, client_for(proxy.url) as client, client_for(server.url) as direct:
        got: list[ChangeEvent] = []
        cut_at = {30, 80, 81, 140}

        def on_change(event: ChangeEvent) -> None:
            got.append(event)
            if len(got) in cut_at:
                proxy.cut()

        await client.table("posts").subscribe(on_change)
        writer = Writer(direct.table("posts"))
        await writer.run(MUTATIONS)
        # One more change, after the others: once it has arrived, so has everything before it.
        (marker,) = await direct.table("posts").insert({"title": "marker", "user_id": 1}, columns=["id"])
        writer.expected.append(("create", marker["id"]))
        await until(lambda: len(got) >= len(writer.expected), what=f"{len(writer.expected)} events")
        exactly_once(got, writer.expected)
        assert proxy.cuts == len(cut_at)
        assert client.connection.opened > len(cut_at) - 1


async def test_a_subscription_without_events_resumes_from_its_siblings(server: LiveServer) -> None:
    """A quiet subscription has no cursor of its own; a busy sibling's live events give it one."""
    async with Proxy(server.url) as proxy, client_for(proxy.url) as client, client_for(server.url) as direct:
        busy: list[ChangeEvent] = []
        quiet: list[ChangeEvent] = []
        await client.table("comments").subscribe(quiet.append)
        await client.table("posts").subscribe(busy.append)
        await direct.table("posts").insert({"title": "tick", "user_id": 1})
        await until(lambda: len(busy) == 1, what="the busy subscription's event")

        proxy.accepting = False
        proxy.cut()
        (comment,) = await direct.table("comments").insert({"post_id": 1, "body": "while away"})
        proxy.accepting = True
        await until(lambda: len(quiet) == 1, what="the comment made while disconnected")
        assert quiet[0].id == comment["id"] and quiet[0].type == "create"
        assert len(busy) == 1


async def test_a_server_restart_costs_the_callback_nothing(tmp_path: Path) -> None:
    """SIGKILL the server mid-stream and start it again on the same port and SQLite file.

    The writer writes straight into the file (another program, as SPEC allows),
    so changes keep being committed while no server is running.
    """
    database = demo_sqlite(tmp_path)
    process = ServerProcess(database, "memory://", tmp_path)
    process.start()
    try:
        async with client_for(process.url) as client:
            got: list[ChangeEvent] = []
            await client.table("posts").subscribe(got.append)
            db = sqlite3.connect(tmp_path / "shared.db", timeout=30, isolation_level=None)
            expected: list[tuple[str, int]] = []

            def write(i: int) -> None:
                if i % 4 == 3:
                    db.execute("UPDATE posts SET title = ? WHERE id = ?", (f"edit {i}", expected[-1][1]))
                    expected.append(("update", expected[-1][1]))
                else:
                    cursor = db.execute("INSERT INTO posts (title, body, user_id) VALUES (?, '', 1)", (f"p{i}",))
                    assert cursor.lastrowid is not None
                    expected.append(("create", cursor.lastrowid))

            restarted = False
            for i in range(MUTATIONS):
                write(i)
                await asyncio.sleep(0.005)
                if not restarted and len(got) >= 40:
                    process.kill()
                    for j in range(10):  # committed while no server runs: replayed after the restart
                        write(MUTATIONS + j)
                    await asyncio.to_thread(process.start)
                    restarted = True
            assert restarted, "the events did not arrive in time to restart the server mid-stream"
            write(MUTATIONS + 10)
            await until(lambda: len(got) >= len(expected), timeout=20, what=f"{len(expected)} events")
            exactly_once(got, expected)
            assert client.connection.opened >= 2
            db.close()
    finally:
        process.stop()


# -- the README ---------------------------------------------------------------------------


def readme_example() -> str:
    section = README.read_text().split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README's Python SDK section has no python example"
    return match.group(1)


async def test_the_readme_example_runs_as_printed(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # the example uses the environment's proxy settings
    server = serve(database=demo_sqlite(tmp_path))
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    await namespace["main"](server.url)
    lines = capsys.readouterr().out.splitlines()
    assert "published: create Hello" in lines
    assert "[{'title': 'Hello', 'published': True}, {'title': 'Again', 'published': False}]" in lines
    changes = [line.split()[0] for line in lines if line.split()[0] in ("create", "update")]
    # The callback's update may come after the iterator's event, and so after unsubscribing.
    assert changes[:2] == ["create", "create"] and changes[2:] in ([], ["update"])
