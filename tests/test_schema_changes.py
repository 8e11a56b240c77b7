"""The schema follows the database (SPEC section 4): DDL made by another program while serving.

The DDL runs through `sqlite3` / `psql`, never the server's connections. The
server notices it by polling (graph.schema_watch), or on SIGHUP and
`forgegraph reload`; tests wait for the outcome with a generous bound, never
a timed assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from graph.model import Column, DatabaseModel, Kind, Table
from graph.naming import name_model
from graph.reload import RELOAD_PATH
from graph.rules.permissions import (
    PermissionsError,
    parse_permissions,
    parse_permissions_after_change,
)
from graph.schema_watch import SchemaWatch, fingerprint
from tests.conftest import Api, Launch, free_port
from tests.conftest import by_another_program as ddl
from tests.test_forgebase import RawClient, ws_url
from tests.test_realtime import CHANGES, change, subscribe

WAIT_SECONDS = 20
ADMIN = "s3cret"


async def scalar(url: str, sql: str) -> Any:
    """One value read on a connection of the test's own (not the server's)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with contextlib.closing(sqlite3.connect(str(parsed.database))) as conn:
            return conn.execute(sql).fetchone()[0]
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username or "postgres",
                                 password=parsed.password, database=parsed.database)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `check()` holds (the server polls the schema every half second)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT_SECONDS} s")
        await asyncio.sleep(0.05)


def answers(api: Api, query: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return "errors" not in await api.raw(query)

    return check


@contextlib.asynccontextmanager
async def traffic(api: Api) -> AsyncIterator[list[Any]]:
    """Queries and mutations in a loop while the block runs; the failures they met, after."""
    failures: list[Any] = []
    stop = asyncio.Event()

    async def loop() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            for body in (
                await api.raw("{ posts(order_by: {id: asc}, limit: 2) { id title } users { id name } }"),
                await api.raw(f'mutation {{ update_users_by_pk(pk_columns: {{id: 2}}, _set: {{name: "Bob {turn}"}}) '
                              "{ id name } }"),
            ):
                if "errors" in body:
                    failures.append(body)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    try:
        yield failures
    finally:
        stop.set()
        await task


async def test_an_added_column_and_table_are_served_and_in_events(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "posts", "posts")
        async with traffic(api) as failures:
            await ddl(library_url, "ALTER TABLE posts ADD COLUMN subtitle TEXT")
            await ddl(library_url, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
            await eventually(answers(api, "{ posts_by_pk(id: 1) { subtitle } notes { id } }"), "the new schema")
            await asyncio.sleep(0.3)  # a few more rounds of traffic on the new schema
        assert failures == []
        assert (await api("{ posts_by_pk(id: 1) { id subtitle } }"))["posts_by_pk"] == {"id": 1, "subtitle": None}

        # The old subscription goes on, and its events carry the new column.
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {subtitle: "sub"}) { id } }')
        event = await change(ws, "posts")
        assert event["type"] == "update" and event["id"] == 1
        assert event["record"]["subtitle"] == "sub"
        assert event["old_record"]["subtitle"] is None

        # The new table can be written, queried and subscribed to.
        await subscribe(ws, "notes", "notes")
        inserted = await api('mutation { insert_notes_one(object: {id: 7, text: "hi"}) { id text } }')
        assert inserted == {"insert_notes_one": {"id": 7, "text": "hi"}}
        event = await change(ws, "notes")
        assert event["type"] == "create" and event["record"] == {"id": 7, "text": "hi"}
        assert (await api("{ notes { id text } }"))["notes"] == [{"id": 7, "text": "hi"}]


async def test_a_renamed_table_is_served_under_its_new_name_and_logged_once(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "comments", "comments")
        await ddl(library_url, "ALTER TABLE comments RENAME TO remarks")
        message = await ws.receive(timeout=WAIT_SECONDS)
        assert message["id"] == "comments" and message["type"] == "error", message
        await eventually(answers(api, "{ remarks(limit: 1) { id } }"), "the renamed table")
        await subscribe(ws, "remarks", "remarks")
        await api('mutation { insert_remarks_one(object: {id: 50, post_id: 1, body: "b"}) { id } }')
        event = await change(ws, "remarks")
        assert event["type"] == "create" and event["record"]["id"] == 50
    # Under its new name only: a table created later under the old one gets none of its changes.
    logged = await scalar(library_url, "SELECT count(*) FROM _forgegraph_changes WHERE table_name = 'comments'")
    assert logged == 0


async def test_installing_capture_after_a_change_is_not_itself_a_change(api: Api, library_url: str) -> None:
    runtime = api.server.app.state.runtime
    assert runtime.generation.number == 1
    first = weakref.ref(runtime.generation)
    await api("{ posts { id } }")
    await ddl(library_url, "CREATE TABLE extra (id INTEGER PRIMARY KEY)")
    await eventually(answers(api, "{ extra { id } }"), "the new table")
    gc.collect()
    assert first() is None, gc.get_referrers(first())  # nothing keeps a replaced generation
    # The triggers installed for it changed the schema too, which the watch ignores:
    # once it has polled again, the reflection of the change is still the last one.
    assert runtime.generation.number == 2
    polls = runtime._watch.polls
    while runtime._watch.polls < polls + 3:
        await asyncio.sleep(0.1)
    assert runtime.generation.number == 2


async def test_a_table_made_again_under_its_name_is_captured_again(api: Api, library_url: str) -> None:
    sqlite = sa.make_url(library_url).get_backend_name() == "sqlite"
    # The very same definition: as a migration that rebuilds a table leaves it.
    definition = (
        await scalar(library_url, "SELECT sql FROM sqlite_master WHERE name = 'tags'") if sqlite
        else "CREATE TABLE tags (post_id integer REFERENCES posts(id) ON DELETE CASCADE, name text, "
             "weight integer, PRIMARY KEY (post_id, name))"
    )
    async with api.ws() as ws:
        await subscribe(ws, "tags", "tags")
        await ddl(library_url, f"BEGIN; DROP TABLE tags; {definition}; COMMIT;")

        async def captured() -> bool:
            triggers = await scalar(library_url, (
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tags'" if sqlite
                else "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tags'::regclass AND NOT tgisinternal"))
            return bool(triggers)

        await eventually(captured, "the table made again captured again")
        await api('mutation { insert_tags_one(object: {post_id: 1, name: "again", weight: 3}) { name } }')
        event = await change(ws, "tags")
        assert event["type"] == "create" and event["record"] == {"post_id": 1, "name": "again", "weight": 3}


async def test_a_write_by_another_program_after_the_change_carries_the_new_column(
    api: Api, library_url: str
) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await ddl(library_url, "ALTER TABLE posts ADD COLUMN mood TEXT")
        await eventually(answers(api, "{ posts_by_pk(id: 1) { mood } }"), "the new column")
        await ddl(library_url, "INSERT INTO posts (id, title, user_id, published, mood) VALUES (90, 'x', 1, true, 'calm')")
        event = await change(ws, "1")
        assert event["type"] == "create" and event["record"]["mood"] == "calm"


async def test_a_renamed_column_keeps_subscriptions_and_records_follow(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await ddl(library_url, "ALTER TABLE posts RENAME COLUMN body TO content")
        await eventually(answers(api, "{ posts_by_pk(id: 1) { content } }"), "the renamed column")
        assert "errors" in await api.raw("{ posts_by_pk(id: 1) { body } }")
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {content: "new"}) { id } }')
        event = await change(ws, "1")
        assert event["record"]["content"] == "new"
        assert "body" not in event["record"]


# SQLite refuses to drop a column a capture trigger names (`forgegraph capture pause` first).
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_dropped_column_leaves_subscriptions_going_without_it(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await ddl(library_url, "ALTER TABLE posts DROP COLUMN body")

        async def gone() -> bool:
            # Refused by the schema (until the server notices, the database refuses it).
            body = await api.raw("{ posts_by_pk(id: 1) { body } }")
            return [e["extensions"]["code"] for e in body.get("errors", ())] == ["validation-failed"]

        await eventually(gone, "the dropped column")
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "t2"}) { id } }')
        event = await change(ws, "1")
        assert event["record"]["title"] == "t2"
        assert "body" not in event["record"] and "body" not in event["old_record"]


async def test_a_dropped_table_ends_its_subscriptions_with_an_error(api: Api, library_url: str) -> None:
    async with api.ws() as ws, RawClient.open(ws_url(api.server)) as raw:
        await subscribe(ws, "comments", "comments")
        await subscribe(ws, "posts", "posts")
        await raw.subscribe("comments")
        await raw.subscribe("posts")
        await ddl(library_url, "DROP TABLE comments")
        message = await ws.receive(timeout=WAIT_SECONDS)
        assert message == {"id": "comments", "type": "error", "payload": [
            {"message": "table 'comments' was dropped", "extensions": {"code": "not-found"}}]}
        assert await raw.receive(timeout=WAIT_SECONDS) == {"type": "error", "message": "table 'comments' was dropped"}

        # The other table's subscriptions go on, from where they were.
        await api('mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {title: "still here"}) { id } }')
        event = await change(ws, "posts")
        assert event["record"]["title"] == "still here"
        raw_event = await raw.receive()
        assert raw_event["type"] == "update" and raw_event["record"]["title"] == "still here"
        assert raw_event["cursor"] == event["cursor"]

        # The id is free again, and the table is gone for new subscriptions too.
        await ws.subscribe("comments", CHANGES, {"table": "comments"})
        gone = await ws.receive()
        assert gone["id"] == "comments" and gone["type"] == "error", gone
        assert "errors" in await api.raw("{ comments { id } }")


async def test_streams_and_live_queries_of_a_dropped_table_end_with_an_error(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await ws.subscribe("stream", "subscription { comments_stream(batch_size: 100, "
                                     "cursor: {initial_value: {id: 0}}) { id } }")
        assert (await ws.next("stream"))["data"]["comments_stream"]
        await ws.subscribe("live", "subscription { comments(order_by: {id: asc}) { id } }")
        assert (await ws.next("live"))["data"]["comments"]
        await ws.subscribe("other", "subscription { users(where: {id: {_eq: 1}}) { id name } }")
        assert (await ws.next("other"))["data"]["users"] == [{"id": 1, "name": "Alice"}]
        await ddl(library_url, "DROP TABLE comments")
        ended: dict[str, list[str]] = {}
        while set(ended) != {"stream", "live"}:
            message = await ws.receive(timeout=WAIT_SECONDS)
            assert message["id"] in ("stream", "live"), message
            ended.setdefault(message["id"], []).append(message["type"])
            if message["id"] == "stream":
                assert message["payload"] == [
                    {"message": "table 'comments' was dropped", "extensions": {"code": "not-found"}}]
            else:
                assert message["payload"]["errors"], message
        # The stream ends with an error message; the live query with its failed answer, then complete.
        assert ended["stream"] == ["error"]
        assert ended["live"] == ["next"]
        assert await ws.receive() == {"id": "live", "type": "complete"}
        # The other live query goes on.
        await api('mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {name: "A"}) { id } }')
        assert (await ws.next("other"))["data"]["users"] == [{"id": 1, "name": "A"}]


async def test_an_sse_stream_of_a_dropped_table_says_so_and_ends(api: Api, library_url: str) -> None:
    async with api.http.stream("GET", "/realtime/sse", params={"table": "comments"}) as response:
        assert response.status_code == 200
        await ddl(library_url, "DROP TABLE comments")
        lines = []
        async with asyncio.timeout(WAIT_SECONDS):
            async for line in response.aiter_lines():
                lines.append(line)
    assert 'data: {"type":"error","message":"table \'comments\' was dropped"}' in lines


RULES = """
tables:
  posts:
    select:
      anonymous: {filter: {published: {_eq: true}}, columns: [id, title, body]}
  comments:
    select:
      anonymous: {columns: "*"}
"""


async def test_a_change_that_breaks_a_rule_denies_it_and_healthz_lists_it(
    launch: Launch, library_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    api = await launch(permissions=str(rules), admin_secret=ADMIN)
    assert (await api("{ posts(where: {id: {_eq: 1}}) { id body } }"))["posts"] == [{"id": 1, "body": "first"}]
    health = await api.http.get("/healthz")
    assert health.json() == {"status": "ok"}

    await ddl(library_url, "ALTER TABLE posts RENAME COLUMN body TO content")

    async def denied() -> bool:
        body = await api.raw("{ posts { id } }")
        return [e["extensions"]["code"] for e in body.get("errors", ())] == ["validation-failed"]

    await eventually(denied, "the broken rule denied")
    # Never wider: the role sees no posts at all now; its other rules still hold.
    assert (await api("{ comments(limit: 1) { id } }"))["comments"]
    admin = await api.http.post("/graphql", json={"query": "{ posts_by_pk(id: 1) { content } }"},
                                headers={"X-Admin-Secret": ADMIN})
    assert admin.json() == {"data": {"posts_by_pk": {"content": "first"}}}
    health = await api.http.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    [broken] = body["broken_rules"]
    assert broken == f"{rules}: tables.posts.select.anonymous.columns: unknown column 'body'"

    # Restored: the rule as read at start-up holds again.
    await ddl(library_url, "ALTER TABLE posts RENAME COLUMN content TO body")
    await eventually(answers(api, "{ posts(where: {id: {_eq: 1}}) { id body } }"), "the rule granted again")
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}


async def test_subscriptions_under_a_rule_a_change_breaks_end_and_the_admins_go_on(
    launch: Launch, library_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    api = await launch(permissions=str(rules), admin_secret=ADMIN)
    denied = {"message": "table 'posts' is no longer available to this role: a schema change broke its "
                         "permission rule", "extensions": {"code": "permission-denied"}}
    async with api.ws() as ws, api.ws(init=False) as admin, RawClient.open(ws_url(api.server)) as raw:
        await admin.init({"headers": {"X-Admin-Secret": ADMIN}})
        await subscribe(ws, "changes", "posts")
        await subscribe(ws, "comments", "comments")
        await ws.subscribe("live", "subscription { posts(where: {id: {_eq: 1}}) { id title } }")
        assert (await ws.next("live"))["data"]["posts"] == [{"id": 1, "title": "Hello World"}]
        await subscribe(admin, "changes", "posts")
        await raw.subscribe("posts")
        await ddl(library_url, "ALTER TABLE posts RENAME COLUMN body TO content")
        ended = {}
        while len(ended) < 2:
            message = await ws.receive(timeout=WAIT_SECONDS)
            assert message["type"] == "error", message
            ended[message["id"]] = message["payload"]
        assert ended == {"changes": [denied], "live": [denied]}
        assert await raw.receive(timeout=WAIT_SECONDS) == {"type": "error", "message": denied["message"]}

        # The admin's subscription and the session's others go on.
        await api.http.post("/graphql", headers={"X-Admin-Secret": ADMIN}, json={"query":
            'mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {content: "c"}) { id } }'})
        event = await change(admin, "changes")
        assert event["record"]["content"] == "c"
        await api.http.post("/graphql", headers={"X-Admin-Secret": ADMIN}, json={"query":
            'mutation { update_comments_by_pk(pk_columns: {id: 1}, _set: {body: "b"}) { id } }'})
        assert (await change(ws, "comments"))["record"]["body"] == "b"


async def test_reload_endpoint_rereads_on_demand_with_the_admin_secret(launch: Launch, library_url: str) -> None:
    api = await launch(schema_poll=0, admin_secret=ADMIN)
    await ddl(library_url, "ALTER TABLE users ADD COLUMN nickname TEXT")
    await asyncio.sleep(1)  # nothing polls: still the old schema
    assert "errors" in await api.raw("{ users { nickname } }")

    assert (await api.http.post(RELOAD_PATH)).status_code == 401
    assert (await api.http.post(RELOAD_PATH, headers={"X-Admin-Secret": "wrong"})).status_code == 403
    answer = await api.http.post(RELOAD_PATH, headers={"X-Admin-Secret": ADMIN})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"changed": True, "generation": 2, "tables": 5, "broken_rules": []}
    assert (await api("{ users_by_pk(id: 1) { nickname } }")) == {"users_by_pk": {"nickname": None}}

    again = await api.http.post(RELOAD_PATH, headers={"X-Admin-Secret": ADMIN})
    assert again.json()["changed"] is False


def _server(url: str, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "graph", "serve", "--database", url, "--port", str(port), "--schema-poll", "0",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )


def _wait_serving(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(base + "/healthz", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


def _query(base: str, query: str) -> dict[str, Any]:
    return httpx.post(base + "/graphql", json={"query": query}, timeout=10, trust_env=False).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_and_forgegraph_reload_reread_a_running_servers_schema(library_url: str, workers: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _server(library_url, port, "--workers", str(workers))
    try:
        _wait_serving(base, process)
        asyncio.run(ddl(library_url, "ALTER TABLE users ADD COLUMN nickname TEXT"))
        assert "errors" in _query(base, "{ users { nickname } }")

        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_SECONDS
        # Every worker: the answers come from either.
        seen = 0
        while seen < 10:
            body = _query(base, "{ users(limit: 1) { nickname } }")
            seen = seen + 1 if "errors" not in body else 0
            assert time.monotonic() < deadline, body
            time.sleep(0.05)

        asyncio.run(ddl(library_url, "ALTER TABLE users ADD COLUMN motto TEXT"))
        done = subprocess.run(
            [sys.executable, "-m", "graph", "reload", "--url", base], capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"reloaded {base}: schema changed, 5 tables\n"
        deadline = time.monotonic() + WAIT_SECONDS
        seen = 0
        while seen < 10:
            body = _query(base, "{ users(limit: 1) { motto } }")
            seen = seen + 1 if "errors" not in body else 0
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_forgegraph_reload_says_when_no_server_answers() -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "graph", "reload", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"forgegraph: error: cannot reach a server at http://127.0.0.1:{port}")


# -- rules after a change (pure) ------------------------------------------------------


def _model(*, body: bool, users: bool) -> DatabaseModel:
    def col(name: str, kind: Kind) -> Column:
        return Column(name, kind, name != "body")

    posts = (col("id", Kind.INTEGER), col("title", Kind.STRING), *((col("body", Kind.STRING),) if body else ()))
    tables = {"posts": Table("posts", posts, ("id",))}
    if users:
        tables["users"] = Table("users", (col("id", Kind.INTEGER), col("name", Kind.STRING)), ("id",))
    return name_model(DatabaseModel("sqlite", tables))


CHANGED_RULES = {"tables": {
    "posts": {
        "select": {"anonymous": {"columns": ["id", "body"]}, "user": {"columns": "*"}},
        "update": {"user": {"filter": {"body": {"_eq": "x"}}, "columns": ["title"]}},
    },
    "users": {"select": {"user": {"columns": "*"}}},
}}


def test_rules_a_change_breaks_are_left_out_denying_what_they_granted() -> None:
    assert parse_permissions(CHANGED_RULES, _model(body=True, users=True), "rules.yaml")
    after = _model(body=False, users=False)
    with pytest.raises(PermissionsError):  # at start-up: refused
        parse_permissions(CHANGED_RULES, after, "rules.yaml")
    permissions, broken = parse_permissions_after_change(CHANGED_RULES, after, "rules.yaml")
    assert [b.split(":")[1].strip() for b in broken] == [
        "tables.posts.select.anonymous.columns", "tables.posts.update.user.filter", "tables.users"]
    assert all(b.startswith("rules.yaml: ") for b in broken)
    posts = after.tables["posts"]
    assert permissions.select("anonymous", posts) is None
    assert permissions.update("user", posts) is None
    user = permissions.select("user", posts)
    assert user is not None and user.columns == ("id", "title")  # "*": the columns there are now
    assert permissions.roles() == {"anonymous", "user"}


def test_rules_a_change_leaves_whole_are_kept_as_they_are() -> None:
    model = _model(body=True, users=True)
    permissions, broken = parse_permissions_after_change(CHANGED_RULES, model, "rules.yaml")
    assert broken == ()
    select = permissions.select("anonymous", model.tables["posts"])
    assert select is not None and select.columns == ("id", "body")


# -- the watch ---------------------------------------------------------------------------


async def test_a_rebuild_that_fails_is_tried_once_per_schema(tmp_path: Path) -> None:
    path = tmp_path / "watched.db"
    with contextlib.closing(sqlite3.connect(path, timeout=WAIT_SECONDS)) as conn:
        conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY)")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    served = await fingerprint(engine)
    calls: list[str] = []

    async def migrate(sql: str) -> None:
        # In a thread, as another program would: the watch's read holds its lock until the
        # loop takes its rows, so a write blocking the loop would wait on itself.
        def run() -> None:
            with contextlib.closing(sqlite3.connect(path, timeout=WAIT_SECONDS)) as conn:
                conn.execute(sql)

        await asyncio.to_thread(run)

    async def changed() -> None:
        calls.append(await fingerprint(engine))
        raise RuntimeError("this schema cannot be served")

    watch = SchemaWatch(engine, 0.01, lambda: served, changed)

    async def polled(count: int) -> None:
        start = watch.polls
        while watch.polls < start + count:
            await asyncio.sleep(0.01)

    watch.start()
    try:
        await polled(3)
        assert calls == []  # unchanged: nothing to rebuild
        await migrate("ALTER TABLE a ADD COLUMN b TEXT")
        await polled(5)
        assert len(calls) == 1 and calls[0] != served
        await migrate("CREATE TABLE _forgegraph_x (id INTEGER)")  # ours: not a change
        await polled(5)
        assert len(calls) == 1
        await migrate("ALTER TABLE a ADD COLUMN c TEXT")
        await polled(5)
        assert len(calls) == 2 and calls[1] != calls[0]
    finally:
        await watch.stop()
        await engine.dispose()
